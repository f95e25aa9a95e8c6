"""A run's report: one self-contained HTML page drawn from its run directory.

``cascade report RUN_DIR`` reads what ``cascade replay`` wrote (replay/results.py,
replay/broker_run.py) and draws, each only when its file is there: the price path with and
without the broker's forced sales (the forced sales at their fill price, unfilled ones at
their limit; the orders injected from a file), the forced sales by cascade generation, the
accounts at each close in the rules' own measure with the rules' thresholds, the venue's VI
and circuit breakers, a strategy's equity marked to market at each bar, and the summary
figures. Every number carries its unit (won, shares, index points, %) and every time is
Seoul time (KST). The page is drawn with the render kit the comparison page shares
(replay/render/: cells, clock, thinning, page): plotly.js once, inline, compressed, so it
opens offline; the same run directory gives the same bytes. Long tapes are thinned to the
first, last, lowest and highest point of fixed time buckets, and the caption says so.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.parquet as pq
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from brokers.margin import STATE_NAMES
from replay.render.cells import cell, currency_of, hover, with_unit, words
from replay.render.clock import TZ, TZ_LABEL, clock, duration, stamp, time_gaps, wall_ms
from replay.render.page import Page, Plot, html_table
from replay.render.thinning import BUCKETS_S, held_line, thin

REPORT = "report.html"
#: Points of the price figure, shared by its lines; beyond it a line is thinned.
PRICE_POINTS = 16_000
#: Points of a strategy's equity line.
EQUITY_POINTS = 4_000
#: Forced orders drawn one by one; beyond it, grouped by instant (or time bucket).
FORCED_MARKERS = 2_000
#: Injected orders drawn one by one; beyond it, the first ones only (the caption says so).
INJECTED_MARKERS = 2_000
#: Price panels: the instruments with forced sales or injected orders first, then the most
#: traded.
PANELS = 8
#: Halts shaded on the price figure.
HALT_SHAPES = 300
TABLE_ROWS = 200
#: Bars of the cascade figure: orders grouped by instant, else by minute, hour or day.
CASCADE_BARS = 60
CASCADE_BUCKETS = (("s", "%m-%d %H:%M:%S", "second"), ("min", "%m-%d %H:%M", "minute"),
                   ("h", "%m-%d %H:00", "hour"), ("D", "%Y-%m-%d", "day"))
#: A strategy's equity is marked to market at the end of every bar of this length.
EQUITY_BAR_NS = 60 * 10**9
#: The columns read of the trade prints (all of a file when None).
TRADE_COLUMNS = ["ts", "instrument", "symbol", "price", "price_natural"]
OPTIONAL: dict[str, list[str] | None] = {
    "counterfactual_trades": ["ts", "instrument", "price"], "forced_orders": None,
    "accounts": None, "venue_events": None, "sessions": None, "strategy_equity": None,
    "strategy_events": None, "injected": None}
#: injected.parquet's columns that tie an order back to its input file; without them (an
#: older run directory) the injected orders are not drawn.
INJECTED_COLUMNS = frozenset({"input_row", "ts", "instrument", "side", "type", "limit_price",
                              "size", "filled", "avg_price", "status", "reason"})
STATES = STATE_NAMES  # the broker's account states (brokers/margin.py), in its order
STRATEGY_MARKS = {"margin_call": ("#ff7f0e", "triangle-down"),
                  "liquidation": ("#d62728", "x"), "call_ended": ("#2ca02c", "circle-open"),
                  "deposit": ("#1f77b4", "triangle-up")}
PRICE_COLOUR, COUNTERFACTUAL_COLOUR, HALT_COLOUR = "#1f77b4", "#8c8c8c", "#ff7f0e"
INJECTED_COLOUR = "#2ca02c"

# -- the broker's figures in summary.json ----------------------------------------------------
#: The broker figures read from summary.json's ``broker`` and ``counterfactual`` sections,
#: in the order shown: key -> (what it counts, unit). The one place their names are read:
#: a key missing from a run is left out; a key not listed here is still shown, under its
#: own name.
BROKER_FIGURES: dict[str, tuple[str, str]] = {
    "forced_orders": ("forced orders sent", ""),
    "forced_qty_ordered": ("shares ordered by forced orders", "shares"),
    "forced_volume": ("shares force-sold (filled)", "shares"),
    "forced_value": ("value force-sold", "won"),
    "accounts_managed": ("accounts under the broker's rules", ""),
    "accounts_ignored": ("accounts of other kinds, not handled", ""),
    "accounts_called": ("accounts called (margin call)", ""),
    "accounts_force_ordered": ("accounts with a forced order", ""),
    "accounts_force_sold": ("accounts force-sold (a fill)", ""),
    "accounts_wiped_out": ("accounts wiped out (owing after selling out)", ""),
    "broker_shortfall": ("broker shortfall", "won"),
    "max_generation": ("deepest cascade generation", "generation"),
    "tape_sell_volume": ("the tape's own sell volume", "shares"),
    "amplification": ("amplification (force-sold / the tape's sell volume)", "%"),
    "max_drawdown": ("max drawdown", "%"),
}
#: Figures of orders the broker sent. The counterfactual evaluates the same accounts but
#: sends nothing, so its column shows 0, and what it held back is a row of its own.
SENT = ("forced_orders", "forced_qty_ordered")
WITHHELD = {"forced_orders": ("forced orders due, not sent (the counterfactual's)", ""),
            "forced_qty_ordered": ("shares due, not sent (the counterfactual's)", "shares")}
STRATEGY_FIGURES: dict[str, tuple[str, str]] = {
    "initial_cash": ("initial cash", "won"), "deposits": ("deposits", "won"),
    "final_equity": ("final equity", "won"), "return": ("return", "%"),
    "min_equity": ("lowest equity", "won"), "max_leverage": ("highest leverage", "×"),
    "fills": ("fills", ""), "orders_rejected": ("orders rejected", ""),
    "margin_calls": ("margin calls", ""), "liquidations": ("forced sales", ""),
}
RUN_FIGURES: dict[str, tuple[str, str]] = {
    "mode": ("mode", ""), "venue": ("venue", ""), "seed": ("seed", ""),
    "events_processed": ("events processed", ""),
    "wall_seconds": ("wall time, the whole command", "s"),
    "load_seconds": ("loading inputs and compiled kernels", "s"),
    "replay_seconds": ("replay", "s"),
    "events_per_second": ("events per second of the replay", "events/s"),
    "injected_orders": ("orders injected (forced, strategy and from a file)", ""),
}
VENUE_UNITS = {"unfilled_quantity": "shares"}


@dataclass(frozen=True)
class Run:
    """A run directory's contents: summary.json and trades always, each other table under
    its file's stem when it was written (``tables["forced_orders"]``)."""

    path: Path
    summary: dict
    trades: pd.DataFrame  # ts, instrument, symbol, price (units), price_natural
    tables: dict[str, pd.DataFrame]
    end_ts: int  # the last time stamp of any table of the run (-1: none)

    @property
    def currency(self) -> str:
        """The prices' unit: won at the KRX venue, else the tape's quote currency."""
        return currency_of(self.summary.get("venue"))

    @property
    def has_broker(self) -> bool:
        return "broker" in self.summary or self.table("forced_orders") is not None

    def table(self, stem: str) -> pd.DataFrame | None:
        """The table, or None when its file is absent or empty."""
        frame = self.tables.get(stem)
        return frame if frame is not None and len(frame) else None


@dataclass(frozen=True)
class Section:
    """One part of the page: ``parts`` are HTML strings and plots, in order."""

    id: str
    title: str
    parts: tuple[str | Plot, ...]


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` and return its path.

    Raises ValueError naming the file when summary.json or trades.parquet is missing or
    unreadable (or another table of the run directory is unreadable)."""
    from replay.rundir import write_text

    run = read_run(Path(run_dir))
    return write_text(run.path / REPORT, render_page(run, build_sections(run)))


def read_run(run_dir: Path) -> Run:
    """Read a run directory: summary.json, trades.parquet and whichever of the other
    tables (:data:`OPTIONAL`) it holds; of the trade prints only the columns drawn."""
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{summary_path}: missing; is {run_dir} a run directory written by "
                         "cascade replay?") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{summary_path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{summary_path}: unreadable (not a JSON object)")
    trades = _read(run_dir / "trades.parquet", TRADE_COLUMNS)
    tables = {stem: _read(run_dir / f"{stem}.parquet", columns)
              for stem, columns in OPTIONAL.items() if (run_dir / f"{stem}.parquet").exists()}
    return Run(run_dir, summary, trades, tables, _end_ts(run_dir, trades, tables))


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (cascade replay writes it)") from None
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    return table.to_pandas()


def _end_ts(run_dir: Path, trades: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> int:
    """The run's last time stamp: of the tables read, and of top_of_book.parquet (from its
    statistics, without reading it), so the price line is drawn to the end of the data."""
    ends = [int(f.ts.max()) for f in (trades, *tables.values())
            if "ts" in f.columns and len(f)]
    top = run_dir / "top_of_book.parquet"
    if top.exists():
        try:
            meta = pq.ParquetFile(top).metadata
            at = meta.schema.to_arrow_schema().get_field_index("ts")
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(at).statistics
                if stats is not None and stats.has_min_max:
                    ends.append(int(stats.max))
        except (OSError, pa.ArrowException, KeyError):
            pass  # the table is not drawn; its end only extends the line
    return max(ends, default=-1)


# -- the sections ----------------------------------------------------------------------------

def build_sections(run: Run) -> list[Section]:
    """The page's sections, in order, each only when the run has its data (a market run's:
    replay/report_market.py)."""
    from replay.report_market import first_sections, market_sections

    builders = (first_sections, summary_section, price_section, market_sections,
                forced_section, brokers_section, ratios_sections, end_accounts_section,
                venue_section, strategy_section, run_section)
    out: list[Section] = []
    for build in builders:
        made = build(run)
        out += made if isinstance(made, list) else [made] if made is not None else []
    return out


def summary_section(run: Run) -> Section | None:
    """The broker's figures beside the counterfactual's (which sent no order), the
    injected orders' outcome, and the strategy's figures."""
    s = run.summary
    parts: list[str | Plot] = []
    if "broker" in s:
        parts.append(html_table(("", "with the forced sales",
                                 "counterfactual (no forced order sent)"), broker_rows(run)))
    injected = injected_orders(run)
    if injected is not None:
        parts.append(f"<p>{html.escape(_injected_sentence(injected))}</p>")
    if "strategy" in s:
        st = s["strategy"]
        parts.append(f"<h3>Strategy {html.escape(str(st.get('name', '')))}</h3>")
        if st.get("parameters"):
            parts.append(f"<p>{html.escape(str(st.get('kind', '')))} account; parameters: "
                         f"{html.escape(cell(st['parameters']))}</p>")
        rest = {k: v for k, v in st.items() if k not in ("name", "kind", "parameters")}
        parts.append(html_table(("", "value"),
                                _figure_rows(rest, STRATEGY_FIGURES, run.currency)))
    if not parts:
        return None
    return Section("summary", "Summary", tuple(parts))


def broker_rows(run: Run) -> list[tuple[str, str, str]]:
    """The summary table's rows: each figure of :data:`BROKER_FIGURES` the run has, then
    any other figure under its own name; the counterfactual's sent orders are 0, and what
    it held back follows."""
    broker = run.summary.get("broker", {})
    without = run.summary.get("counterfactual", {})
    keys = [k for k in BROKER_FIGURES if k in broker or k in without]
    keys += [k for k in (*broker, *without) if k not in BROKER_FIGURES and k not in keys]
    rows = []
    for key in keys:
        label, unit = BROKER_FIGURES.get(key, (words(key), ""))
        label = with_unit(label, unit, run.currency)
        theirs = 0 if key in SENT and key in without else without.get(key)
        rows.append((label, cell(broker.get(key), unit), cell(theirs, unit)))
    for key in SENT:
        if without.get(key):
            label, unit = WITHHELD[key]
            rows.append((with_unit(label, unit, run.currency), "–",
                         cell(without[key], unit)))
    return rows


def price_section(run: Run) -> Section:
    """Trade prices with and without the forced sales, forced sales, injected orders and
    halts on top."""
    plot = price_figure(run)
    if plot is None:
        return Section("price", "Price path", ("<p>The run printed no trade.</p>",))
    return Section("price", "Price path", (plot,))


def forced_section(run: Run) -> Section | None:
    """The forced sales by cascade generation: a table, and the shares per batch."""
    forced = run.table("forced_orders")
    if forced is None:
        return None
    scale = _scales(run)
    value = forced.filled_qty * forced.avg_price.fillna(0) * forced.instrument.map(scale)
    rows = []
    for gen, g in forced.assign(value=value).groupby("generation", sort=True):
        rows.append((cell(gen), cell(len(g)), cell(g.account_id.nunique()),
                     cell(int(g.qty.sum())), cell(int(g.filled_qty.sum())),
                     cell(g.filled_qty.sum() / max(g.qty.sum(), 1), "%"),
                     cell(float(g.value.sum())), clock(g.ts.min()), clock(g.ts.max())))
    table = html_table(("generation", "orders", "accounts", "shares ordered",
                        "shares filled", "filled (%)", f"value filled ({run.currency})",
                        f"first order ({TZ_LABEL})", f"last order ({TZ_LABEL})"), rows)
    intro = ("<p>Generation 0 is sold on the tape's own prices; generation k+1 on a price a "
             f"generation-k forced sale set (brokers/engine.py). Reason: "
             f"{html.escape(_reason(run))}.</p>")
    return Section("forced", "Forced sales by generation",
                   (intro, table, cascade_figure(run, forced)))


def brokers_section(run: Run) -> Section | None:
    """With several brokers: each one's share of the cascade (what it sold, of the whole,
    and in which generations), from forced_orders.parquet's ``broker`` column and
    summary.json's ``brokers`` sections."""
    forced = run.table("forced_orders")
    per = run.summary.get("brokers")
    if forced is None or "broker" not in forced.columns or not per:
        return None
    scale = _scales(run)
    forced = forced.assign(value=forced.filled_qty * forced.avg_price.fillna(0)
                           * forced.instrument.map(scale))
    shares, value = max(int(forced.filled_qty.sum()), 1), max(float(forced.value.sum()), 1.0)
    rows = []
    for label, sections in per.items():
        b = sections["broker"]
        mine = forced[forced.broker == label]
        gens = sorted(mine.generation[mine.filled_qty > 0].unique().tolist())
        rows.append((label, b["kind"], cell(b["accounts_managed"]), cell(b["accounts_called"]),
                     cell(b["accounts_force_sold"]), cell(int(mine.filled_qty.sum())),
                     cell(mine.filled_qty.sum() / shares, "%"), cell(float(mine.value.sum())),
                     cell(mine.value.sum() / value, "%"),
                     ", ".join(str(g) for g in gens) or "–"))
    table = html_table(("broker", "kind", "accounts", "called", "force-sold", "shares sold",
                        "of all shares sold (%)", f"value sold ({run.currency})",
                        "of all value sold (%)", "generations sold"), rows)
    gens = sorted(forced.generation.unique().tolist())
    by_gen = forced.groupby(["generation", "broker"]).filled_qty.sum()
    grid = [(cell(g), *(cell(int(by_gen.get((g, label), 0))) for label in per))
            for g in gens]
    cross = html_table(("generation", *(f"{label}: shares sold" for label in per)), grid)
    intro = ("<p>Each broker's forced sales, and their share of the run's. Generations run "
             "across brokers: a sale at a price another broker's sale set is one generation "
             "later than that sale, whoever the brokers are.</p>")
    return Section("brokers", "Each broker's share of the cascade", (intro, table, cross))


def ratios_sections(run: Run) -> list[Section]:
    """The accounts at each close (KRX venue) in the rules' own measure, against the
    rules' thresholds, and their states: one section per broker when there are several."""
    accounts = run.table("accounts")
    if accounts is None or not {"day", "collateral_ratio"} <= set(accounts.columns):
        return []
    if "broker" not in accounts.columns:
        return [_ratios_section(accounts, account_measure(run), "ratios", "")]
    from brokers.rules import Rules

    recorded = run.summary.get("rules_by_broker") or {}
    out = []
    for k, (label, mine) in enumerate(accounts.groupby("broker", sort=False)):
        rules = Rules(**recorded[label]) if label in recorded else None
        measure = account_measure(run, rules) if rules is not None else Measure(
            "collateral ratio", "(%)", (), "Thresholds not drawn: summary.json has no "
            f"rules for broker {label}.")
        out.append(_ratios_section(mine, measure, f"ratios-{k}", f" ({label})"))
    return out


def _ratios_section(accounts: pd.DataFrame, measure: Measure, anchor: str,
                    whose: str) -> Section:
    plot, rows = ratios_figure(accounts, measure)
    below = [f"below {name} (accounts)" for name, _ in measure.levels]
    table = html_table((f"close ({TZ_LABEL} date)", "accounts", f"lowest {measure.unit}",
                        f"median {measure.unit}", f"highest {measure.unit}", "no debt",
                        *below, *STATES), rows)
    return Section(anchor, f"Accounts at each close{whose}: {measure.name}", (plot, table))


def end_accounts_section(run: Run) -> Section | None:
    """The accounts at the end of a generic-venue run (no per-close rows there)."""
    accounts = run.table("accounts")
    if accounts is None or "day" in accounts.columns:
        return None
    rows = [("accounts", cell(len(accounts)))]
    units = {"shares_left": "shares", "proceeds": "won", "loan_left": "won",
             "cash_left": "won", "shortfall": "won"}
    for column, unit in units.items():
        if column in accounts.columns:
            values = accounts[column]
            rows.append((f"{words(column)}: accounts with any", cell(int((values > 0).sum()))))
            rows.append((with_unit(f"{words(column)}: total", unit, run.currency),
                         cell(values.sum().item())))
    return Section("accounts", "Accounts at the end", (html_table(("", "value"), rows),))


def venue_section(run: Run) -> Section | None:
    """VI, circuit breakers and sidecars; the venue's summary; the daily sessions."""
    venue = run.summary.get("venue_summary")
    halts = _halts(run)
    sessions = run.table("sessions")
    if venue is None and halts is None and sessions is None:
        return None
    parts: list[str | Plot] = []
    if venue:
        rows = [(with_unit(words(k), VENUE_UNITS.get(k, ""), run.currency), cell(v))
                for k, v in venue.items() if not isinstance(v, dict)]
        rows += [(f"events: {words(k)}", cell(v))
                 for k, v in venue.get("events_by_kind", {}).items()]
        parts.append(html_table(("", "value"), rows))
    if halts is not None:
        parts.append("<h3>Halts</h3>")
        parts.append(_note_cut(len(halts)) + halt_table(run, halts))
    if sessions is not None:
        units = {"base": run.currency, "lower_limit": run.currency,
                 "upper_limit": run.currency, "open": run.currency, "close": run.currency,
                 "ask_qty_at_lower_limit": "shares"}
        columns = [c for c in ("day", "symbol", "base", "lower_limit", "upper_limit", "open",
                               "close", "ask_qty_at_lower_limit", "limit_locked_down",
                               "closed_at_lower_limit") if c in sessions.columns]
        rows = [tuple(cell(v) for v in r)
                for r in sessions[columns].head(TABLE_ROWS).itertuples(index=False)]
        header = tuple(f"{words(c)} ({units[c]})" if c in units
                       else f"day ({TZ_LABEL})" if c == "day" else words(c) for c in columns)
        parts.append("<h3>Sessions</h3>")
        parts.append(_note_cut(len(sessions)) + html_table(header, rows))
    return Section("venue", "Venue: VI, circuit breakers, sessions", tuple(parts))


def halt_table(run: Run, halts: pd.DataFrame) -> str:
    """Each halt with its reference and trigger: a stock's in its price, a circuit
    breaker's in index points (docs/reference/krx.md: circuit breakers)."""
    scale = _scales(run)
    rows = []
    for h in halts.head(TABLE_ROWS).itertuples():
        proxy = h.instrument < 0 and str(h.kind).startswith("sidecar")  # the futures proxy
        if str(h.kind).startswith("circuit_breaker") or proxy:
            # the venue's index (its market's, or the proxy's): rebased to 1 at the prior
            # close unless one was given; the row's own prior close where it has one
            name = h.symbol if proxy else getattr(h, "market", None) or "KOSPI"
            base, rebased = _index_base(run, name)
            level = getattr(h, "index", float("nan"))
            prior = getattr(h, "index_prior_close", float("nan"))
            if level is not None and math.isfinite(level):
                points = level * (100.0 if rebased else 1.0)
                if prior is not None and math.isfinite(prior) and prior > 0:
                    base = prior * (100.0 if rebased else 1.0)
            else:  # an older run directory: from the constituents' sums
                points = base * h.price / h.reference if h.reference else float("nan")
            reference, price = base, points
            unit = "index points" + (" (prior close = 100)" if rebased else "")
        else:
            s = scale.get(h.instrument, 1.0)
            reference, price, unit = h.reference * s, h.price * s, run.currency
        fall = price / reference - 1 if reference else float("nan")
        rows.append((clock(h.ts), h.symbol or "market", h.kind, cell(reference),
                     cell(price), unit, cell(fall, "%"), cell(h.volume),
                     clock(h.release_ts), cell((h.release_ts - h.ts) / 1e9)))
    return html_table((f"time ({TZ_LABEL})", "symbol", "kind", "reference", "trigger",
                       "unit", "move (%)", "volume (shares)", f"released ({TZ_LABEL})",
                       "halted (s)"), rows)


def _index_base(run: Run, market: str = "KOSPI") -> tuple[float, bool]:
    """A market index's prior close in points, and whether it is a rebased 100 (none was
    given: ``--index-close``, or ``--index-prior-close`` for KOSPI)."""
    config = run.summary.get("config", {})
    entry = run.summary.get("indices", {}).get(market)
    if entry is not None:  # the venue's own word (the futures proxy's too)
        given = float(entry["prior_close"]) if entry.get("prior_close_given") else 0.0
        return (given, False) if given > 0 else (100.0, True)
    given = float((config.get("index_closes") or {}).get(market) or 0.0)
    if not given and market == "KOSPI":
        given = float(config.get("index_prior_close") or 0.0)
    return (given, False) if given > 0 else (100.0, True)


def strategy_section(run: Run) -> Section | None:
    """The strategy's equity and leverage with its margin calls and liquidations."""
    equity, events = run.table("strategy_equity"), run.table("strategy_events")
    if equity is None and events is None:
        return None
    parts: list[str | Plot] = []
    if equity is not None:
        parts.append(strategy_figure(run, equity, events))
    if events is not None:
        marks = events[events.kind != "fill"]
        counts = events.kind.value_counts()
        parts.append("<p>" + ", ".join(f"{html.escape(words(k))}: {v:,}"
                                       for k, v in sorted(counts.items())) + "</p>")
        if len(marks):
            symbols = _symbols(run)
            scale = _scales(run)
            rows = [(clock(e.ts), words(e.kind),
                     symbols.get(e.instrument, "–") if e.instrument >= 0 else "–",
                     e.side or "–", cell(e.qty) if e.qty else "–",
                     cell(e.price * scale.get(e.instrument, 1.0)) if e.price else "–",
                     e.detail or "")
                    for e in marks.head(TABLE_ROWS).itertuples()]
            parts.append(_note_cut(len(marks)) + html_table(
                (f"time ({TZ_LABEL})", "kind", "symbol", "side", "shares",
                 f"price ({run.currency})", "detail"), rows))
    return Section("strategy", "Strategy", tuple(parts))


def run_section(run: Run) -> Section:
    """How the run was made: its config, counts, counters and versions."""
    s = run.summary
    info = [(with_unit(label, unit, run.currency), cell(s[k], unit))
            for k, (label, unit) in RUN_FIGURES.items() if k in s]
    info += [(f"rows written: {k}", cell(v)) for k, v in s.get("rows", {}).items()]
    parts: list[str | Plot] = [html_table(("", "value"), info)]
    for key in ("config", "counters", "versions"):
        if s.get(key):
            parts.append(f"<details><summary>{key}</summary>"
                         f"{html_table(('', 'value'), _flat_rows(s[key]))}</details>")
    return Section("run", "Run", tuple(parts))


# -- the figures -----------------------------------------------------------------------------

def price_figure(run: Run) -> Plot | None:
    """One panel per instrument: the trade price to the end of the data, the
    counterfactual's, the forced sales by generation, the injected orders and the halts."""
    trades = run.trades
    if trades.empty:
        return None
    panels = _panels(run)
    counterfactual = run.table("counterfactual_trades")
    forced = run.table("forced_orders")
    injected = injected_orders(run)
    halts = _halts(run)
    scale = _scales(run)
    lines = len(panels) * (2 if counterfactual is not None else 1)
    budget = max(PRICE_POINTS // lines, 500)
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.04)
    notes: list[str] = []
    points, grouped = _forced_points(run, forced, scale) if forced is not None else (None, None)
    generations = sorted(points.generation.unique()) if points is not None else []
    own = "with the forced sales" if run.has_broker else "trade price"
    for row, (inst, symbol) in enumerate(panels, start=1):
        if counterfactual is not None:  # beneath: before the first forced sale they coincide
            cf = counterfactual[counterfactual.instrument == inst]
            x, y, note = held_line(cf.ts.to_numpy(),
                                   cf.price.to_numpy() * scale.get(inst, 1.0), budget,
                                   run.end_ts)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines", name="without the forced sales (counterfactual)",
                line={"width": 1, "color": COUNTERFACTUAL_COLOUR, "shape": "hv"},
                legendgroup="counterfactual",
                hovertemplate="%{x|%m-%d %H:%M:%S.%L}<br>%{y:,} " + run.currency
                              + "<extra>counterfactual</extra>"), row=row, col=1)
            if note:
                notes.append(f"{symbol} counterfactual: {note}")
        mine = trades[trades.instrument == inst]
        x, y, note = held_line(mine.ts.to_numpy(), mine.price_natural.to_numpy(), budget,
                               run.end_ts)
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", line={"width": 1, "color": PRICE_COLOUR, "shape": "hv"},
            name=own, legendgroup="real",
            hovertemplate="%{x|%m-%d %H:%M:%S.%L}<br>%{y:,} " + run.currency + "<extra>"
                          + html.escape(symbol) + "</extra>"), row=row, col=1)
        if note:
            notes.append(f"{symbol}: {note}")
        if points is not None:
            for gen in generations:
                _add_forced(fig, points[(points.instrument == inst) & (points.generation == gen)],
                            gen, generations, grouped is not None, run, row)
        if injected is not None:
            _add_injected(fig, injected[injected.instrument == inst], run, row)
        if halts is not None:
            _add_halt_marks(fig, halts[halts.instrument == inst], scale.get(inst, 1.0), run,
                            row)
    if halts is not None:
        _shade_halts(fig, halts, panels, trades.instrument.unique())
    fig.update_xaxes(type="date", rangebreaks=_breaks(run), hoverformat="%m-%d %H:%M:%S")
    fig.update_xaxes(title_text=f"time ({TZ_LABEL})", row=len(panels), col=1)
    for row, (_, symbol) in enumerate(panels, start=1):
        fig.update_yaxes(title_text=f"{symbol} price ({run.currency})", tickformat=",",
                         row=row, col=1)
    _style(fig, height=260 + 240 * len(panels))
    _legend_once(fig)
    caption = [f"Price of each trade, held until the next and to the end of the data, in "
               f"{TZ_LABEL} ({TZ})."]
    if counterfactual is not None:
        caption.append("Grey: the same tape replayed without the broker's forced orders.")
    if points is not None:
        limits = ("at their limit (not filled; a market order at the last trade price)"
                  if "limit_price" in forced.columns else "at the last trade price (not "
                  "filled: this run directory does not record their limits)")
        caption.append("Circles: forced sale orders when they were entered, at their average "
                       f"fill price (filled) or, open, {limits}, coloured by cascade generation"
                       + (f", {grouped}" if grouped else "") + ".")
    if injected is not None:
        shown = min(len(injected), INJECTED_MARKERS)
        caption.append("Triangles: the orders injected from the input file (up: buy, down: "
                       "sell) at their average fill price, or, open, at their limit (at the "
                       "last trade price for a market order) when not filled or rejected"
                       + (f"; the first {shown:,} of {len(injected):,}"
                          if shown < len(injected) else "") + ".")
    if halts is not None:
        caption.append("Shaded: VI, circuit breaker and sidecar halts.")
    if len(panels) < trades.instrument.nunique():
        caption.append(f"{len(panels)} of {trades.instrument.nunique()} instruments drawn.")
    if notes:
        caption.append("Thinned: " + "; ".join(notes) + ".")
    return Plot(fig, " ".join(caption))


def cascade_figure(run: Run, forced: pd.DataFrame) -> Plot:
    """Shares of forced orders entered per second (or per coarser bucket when there are
    many), stacked by generation: filled solid, left unfilled pale."""
    labels, word = _batches(forced.ts.to_numpy())
    table = (forced.assign(when=labels, unfilled=forced.qty - forced.filled_qty)
             .groupby(["when", "generation"], sort=True)[["filled_qty", "unfilled"]].sum())
    batches = sorted(set(labels))
    fig = go.Figure()
    generations = sorted(forced.generation.unique())
    for gen in generations:
        g = table.xs(gen, level="generation").reindex(batches, fill_value=0)
        colour = _generation_colour(gen, generations)
        for column, label, opacity in (("filled_qty", "filled", 1.0),
                                       ("unfilled", "not filled", 0.35)):
            if not g[column].any():  # nothing of it: no bar, no legend entry
                continue
            fig.add_trace(go.Bar(
                x=batches, y=g[column].to_numpy(), name=f"generation {gen} {label}",
                marker={"color": colour, "opacity": opacity}, legendgroup=f"g{gen}",
                hovertemplate="%{x}<br>%{y:,} shares<extra>generation " + str(gen) + " "
                              + label + "</extra>"))
    fig.update_layout(barmode="stack", showlegend=True)
    fig.update_xaxes(type="category", title_text=f"orders entered ({TZ_LABEL})")
    fig.update_yaxes(title_text="shares", tickformat=",")
    _style(fig, height=400)
    return Plot(fig, f"Shares of forced sale orders entered in each {word} ({TZ_LABEL}), by "
                     "cascade generation: filled (solid) and left unfilled (pale).")


def _batches(ts_ns: np.ndarray) -> tuple[pd.Index, str]:
    """Each time stamp's label at the finest of CASCADE_BUCKETS giving at most CASCADE_BARS
    labels, and that bucket's name."""
    stamps = pd.to_datetime(ts_ns, utc=True).tz_convert(TZ)
    for floor, fmt, word in CASCADE_BUCKETS:
        when = stamps.floor(floor)
        if when.nunique() <= CASCADE_BARS or floor == "D":
            return when.strftime(fmt), word
    raise AssertionError("unreachable: the last bucket is a day")


# -- the accounts' measure -------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """What the broker's rule compares with its thresholds, for every account at a close:
    the name, the unit, the thresholds (name, value in the unit) and why none is drawn."""

    name: str
    unit: str
    levels: tuple[tuple[str, float], ...]
    note: str
    margin_rate: float = 0.0  # a CFD's: the required margin's share of the holdings

    def of(self, accounts: pd.DataFrame) -> np.ndarray:
        """Each account's value of the measure, in percent (inf: no debt)."""
        if self.name == "margin level":
            # equity / required margin (docs/reference/krx.md: CFD; brokers/engine.py)
            value = accounts.value.to_numpy(dtype=float)
            debt = (accounts.loan - accounts.cash).to_numpy(dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                required = np.maximum(self.margin_rate * value, 1)
                level = np.where(value > 0, (value - debt) / required, -np.inf)
            return np.where(debt > 0, 100.0 * level, np.inf)
        return 100.0 * accounts.collateral_ratio.to_numpy(dtype=float)


def run_rules(run: Run) -> tuple[Any | None, str]:
    """The run's broker rules (brokers/rules.py): from summary.json's ``rules`` section
    when it has one, else the preset or TOML the config names with its overrides; None and
    why when neither can be read."""
    from brokers.rules import Rules, load_rules

    recorded = run.summary.get("rules") or run.summary.get("config", {}).get("rules")
    if isinstance(recorded, dict):
        try:
            return Rules(**recorded), ""
        except (TypeError, ValueError) as exc:
            return None, f"the rules in summary.json are unreadable ({exc})"
    config = run.summary.get("config", {})
    name = config.get("broker")
    if not name:
        return None, "summary.json names no broker"
    try:
        return load_rules(name, list(config.get("overrides") or [])), ""
    except (ValueError, OSError) as exc:
        return None, f"the rules {name!r} could not be loaded ({exc})"


def account_measure(run: Run, rules: Any | None = None) -> Measure:
    """The rules' own measure and thresholds (the run's, or ``rules``): a credit (or
    instant) account's collateral ratio against the maintenance ratio
    (docs/reference/krx.md: 신용융자), a CFD's margin level against the call and liquidation
    levels (docs/reference/krx.md: CFD)."""
    why = ""
    if rules is None:
        rules, why = run_rules(run)
    if rules is None:
        return Measure("collateral ratio", "(%)", (), f"Thresholds not drawn: {why}.")
    if rules.kind == "cfd":
        return Measure("margin level", "(%)",
                       (("call level", 100 * rules.call_level),
                        ("liquidation level", 100 * rules.liquidation_level)),
                       f"Margin level = equity / required margin ({rules.margin_rate:.0%} of "
                       "the holdings' value), at the close; below the call level a top-up "
                       "is due, at or below the liquidation level the position is sold.",
                       margin_rate=rules.margin_rate)
    if rules.kind in ("credit", "instant"):
        levels = [("maintenance ratio", 100 * rules.maintenance_ratio)]
        if rules.target_ratio and rules.target_ratio != rules.maintenance_ratio:
            levels.append(("target ratio", 100 * rules.target_ratio))
        return Measure("collateral ratio", "(%)", tuple(levels),
                       "Collateral ratio = (holdings' value + cash) / loan, at the close; "
                       "below the maintenance ratio the account is called.")
    return Measure("collateral ratio", "(%)", (),
                   f"{rules.kind} accounts are sold for an unpaid settlement, not for a ratio: "
                   "no threshold to draw.")


def ratios_figure(accounts: pd.DataFrame, measure: Measure) -> tuple[Plot, list[tuple]]:
    """Box per close of the finite values of the measure, the thresholds across, and the
    account states beneath; also the rows of the table that goes with it."""
    values = measure.of(accounts)
    days, stats, states, rows = [], [], {s: [] for s in STATES}, []
    for day, index in accounts.groupby("day", sort=True).indices.items():
        g = accounts.iloc[index]
        v = values[index]
        finite = v[np.isfinite(v)]
        q = np.quantile(finite, [0, 0.25, 0.5, 0.75, 1]) if len(finite) else [np.nan] * 5
        days.append(str(day))
        stats.append(q)
        counts = g.state.value_counts() if "state" in g.columns else pd.Series(dtype=int)
        for s in STATES:
            states[s].append(int(counts.get(s, 0)))
        below = [cell(int((v < level).sum())) for _, level in measure.levels]
        rows.append((str(day), cell(len(g)), cell(q[0] / 100, "%"), cell(q[2] / 100, "%"),
                     cell(q[4] / 100, "%"), cell(int(np.isposinf(v).sum())), *below,
                     *(cell(states[s][-1]) for s in STATES)))
    q = np.array(stats, dtype=float)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                        vertical_spacing=0.06)
    fig.add_trace(go.Box(x=days, lowerfence=q[:, 0], q1=q[:, 1], median=q[:, 2], q3=q[:, 3],
                         upperfence=q[:, 4], name=measure.name, marker_color=PRICE_COLOUR,
                         hoverinfo="x+y"), row=1, col=1)
    dashes = ("dash", "dot", "dashdot")
    for k, (name, level) in enumerate(measure.levels):  # across the panel, named on it
        fig.add_hline(y=level, row=1, col=1, line={"color": "#d62728", "dash": dashes[k % 3],
                                                   "width": 2},
                      annotation_text=f"{name} {level:g}%",
                      annotation_position="top left" if k % 2 == 0 else "bottom left",
                      annotation_font_color="#d62728")
    palette = {"ok": "#2ca02c", "called": "#ff7f0e", "selling": "#d62728", "frozen": "#7f7f7f"}
    for s in STATES:
        if any(states[s]):
            fig.add_trace(go.Bar(x=days, y=states[s], name=s, marker_color=palette[s]),
                          row=2, col=1)
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category")
    fig.update_xaxes(title_text=f"close ({TZ_LABEL} date)", row=2, col=1)
    fig.update_yaxes(title_text=f"{measure.name} (%)", ticksuffix="%", row=1, col=1)
    fig.update_yaxes(title_text="accounts", tickformat=",", row=2, col=1)
    _style(fig, height=520)
    caption = (f"The {measure.name} of every account at each close: box = quartiles, whiskers "
               "= lowest and highest; dashed: the rules' thresholds. " + measure.note
               + " Accounts without debt are counted in the table, not drawn. Below: the "
               "accounts' states.")
    return Plot(fig, caption), rows


# -- the strategy ----------------------------------------------------------------------------

def marked_equity(run: Run, equity: pd.DataFrame,
                  events: pd.DataFrame | None) -> tuple[pd.DataFrame, str]:
    """The strategy's equity at its own snapshots and, between them, marked to market at
    the end of every EQUITY_BAR_NS bar with a trade of the name it holds: the snapshot's
    equity with its shares (holdings / the last trade price then) revalued at the bar's
    last trade price. Returns ts, equity, leverage and how it was marked; the snapshots
    alone (and the note says why) for a strategy holding several names, whose shares per
    name the snapshots do not carry."""
    snaps = (equity.sort_values("ts", kind="stable").groupby("ts", sort=True).last()
             .reset_index())  # the last snapshot of each instant is the state after it
    recorded = pd.DataFrame({"ts": snaps.ts.to_numpy(dtype=np.int64),
                             "equity": snaps.equity.to_numpy(dtype=float),
                             "leverage": snaps.leverage.to_numpy(dtype=float)
                             if "leverage" in snaps.columns else np.nan})
    if events is None or "position_value" not in snaps.columns:
        return recorded, "at its own snapshots"
    names = sorted({int(i) for i in events[events.kind.isin(["fill", "liquidation_fill"])]
                    .instrument if i >= 0})
    if len(names) != 1:
        return recorded, ("at its own snapshots" if not names else
                          "at its own snapshots (it held several names, whose shares the "
                          "snapshots do not carry one by one)")
    trades = run.trades[run.trades.instrument == names[0]].sort_values("ts", kind="stable")
    t_ts, t_px = trades.ts.to_numpy(dtype=np.int64), trades.price.to_numpy(dtype=float)
    if not len(t_ts):
        return recorded, "at its own snapshots"

    def price(at: np.ndarray) -> np.ndarray:
        return t_px[np.maximum(np.searchsorted(t_ts, at, side="right") - 1, 0)]

    s_ts = recorded.ts.to_numpy()
    held = snaps.position_value.to_numpy(dtype=float)
    shares = np.divide(held, price(s_ts), out=np.zeros(len(held)), where=held != 0)
    # a snapshot taken while a trade of the same instant was still to print gives no whole
    # number of shares: it is not re-marked until the next snapshot
    whole = np.abs(shares - np.round(shares)) <= 1e-6 * np.maximum(np.abs(shares), 1)
    bars = np.unique((t_ts // EQUITY_BAR_NS + 1) * EQUITY_BAR_NS)
    bars = bars[(bars > s_ts[0]) & (bars <= s_ts[-1]) & ~np.isin(bars, s_ts)]
    k = np.searchsorted(s_ts, bars, side="right") - 1
    value = np.where(whole[k], np.round(shares[k]) * price(bars), held[k])
    marked = recorded.equity.to_numpy()[k] - held[k] + value
    with np.errstate(divide="ignore", invalid="ignore"):
        leverage = np.where(marked > 0, value / marked, np.inf)
    out = pd.concat([recorded, pd.DataFrame({"ts": bars, "equity": marked,
                                             "leverage": leverage})], ignore_index=True)
    return (out.sort_values("ts", kind="stable").reset_index(drop=True),
            f"marked to market at the end of every {duration(EQUITY_BAR_NS // 10**9)} bar "
            "with a trade, and at its own snapshots")


def strategy_figure(run: Run, equity: pd.DataFrame, events: pd.DataFrame | None) -> Plot:
    """Equity marked to market at each bar, with the margin calls, liquidations and cures
    marked; leverage beneath."""
    marked, how = marked_equity(run, equity, events)
    ts = marked.ts.to_numpy()
    keep, note = thin(ts, marked.equity.to_numpy(dtype=float), EQUITY_POINTS)
    x = wall_ms(ts[keep])
    money = run.currency
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                        vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=x, y=marked.equity.to_numpy(dtype=float)[keep], mode="lines",
                             name="equity", line={"color": PRICE_COLOUR, "shape": "hv"},
                             hovertemplate="%{x|%m-%d %H:%M}<br>%{y:,.0f} " + money
                                           + "<extra>equity</extra>"), row=1, col=1)
    lev = marked.leverage.to_numpy(dtype=float)[keep]
    if np.isfinite(lev).any():
        fig.add_trace(go.Scatter(x=x, y=np.where(np.isfinite(lev), lev, np.nan), mode="lines",
                                 name="leverage", line={"color": "#9467bd", "shape": "hv"},
                                 hovertemplate="%{x|%m-%d %H:%M}<br>%{y:.2f}×"
                                               "<extra>leverage</extra>"), row=2, col=1)
    if events is not None:
        full = marked.equity.to_numpy(dtype=float)
        at = np.clip(np.searchsorted(ts, events.ts.to_numpy(), side="right") - 1, 0, len(ts) - 1)
        level = full[at]
        for kind, (colour, symbol) in STRATEGY_MARKS.items():
            mask = (events.kind == kind).to_numpy()
            if not mask.any():
                continue
            e = events[mask]
            text = [(f"{hover(side)} {qty:,} shares @ {price:,} {money}<br>" if qty else "")
                    + hover(detail)
                    for side, qty, price, detail in zip(e.side, e.qty, e.price, e.detail,
                                                        strict=True)]
            fig.add_trace(go.Scatter(
                x=wall_ms(e.ts.to_numpy()), y=level[mask], mode="markers",
                name=words(kind), text=text,
                marker={"color": colour, "symbol": symbol, "size": 10,
                        "line": {"width": 2, "color": colour}},
                hovertemplate="%{x|%m-%d %H:%M:%S}<br>%{text}<extra>" + words(kind)
                              + "</extra>"), row=1, col=1)
    stamps = [ts] + ([events.ts.to_numpy()] if events is not None else [])
    fig.update_xaxes(type="date", rangebreaks=time_gaps(stamps))
    fig.update_xaxes(title_text=f"time ({TZ_LABEL})", row=2, col=1)
    fig.update_yaxes(title_text=f"equity ({money})", tickformat=",", row=1, col=1)
    fig.update_yaxes(title_text="leverage (×)", row=2, col=1)
    _style(fig, height=520)
    caption = (f"The strategy's equity, {how} (marked: margin calls, liquidations, cures), "
               "and its leverage (holdings / equity).")
    if note:
        caption += f" Thinned: equity {note}."
    return Plot(fig, caption)


# -- prices at a time ------------------------------------------------------------------------

def _price_at(run: Run, inst: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Each instrument's last trade price (natural units) at or before ``ts`` (the first
    trade's before any); NaN for an instrument that never traded."""
    out = np.full(len(ts), np.nan)
    for i in np.unique(inst):
        t = run.trades[run.trades.instrument == i].sort_values("ts", kind="stable")
        if t.empty:
            continue
        mine = inst == i
        j = np.searchsorted(t.ts.to_numpy(), ts[mine], side="right") - 1
        out[mine] = t.price_natural.to_numpy(dtype=float)[np.maximum(j, 0)]
    return out


# -- forced sales ----------------------------------------------------------------------------

def _forced_points(run: Run, forced: pd.DataFrame,
                   scale: dict[int, float]) -> tuple[pd.DataFrame, str | None]:
    """A marker per forced order: at its average fill price when it filled, else at its
    limit (``limit_price``; a market order, or an older run without the column, at the last
    trade price). Past FORCED_MARKERS orders, one marker per instrument, generation,
    filled-or-not and instant (or the finest time bucket that fits), and a note saying
    which."""
    s = forced.instrument.map(scale).fillna(1.0).to_numpy()
    limit = (forced.limit_price.to_numpy(dtype=float) if "limit_price" in forced.columns
             else np.zeros(len(forced)))
    at_trade = _price_at(run, forced.instrument.to_numpy(), forced.ts.to_numpy())
    filled = forced.filled_qty.to_numpy() > 0
    y = np.where(filled, forced.avg_price.fillna(0).to_numpy(dtype=float) * s,
                 np.where(limit > 0, limit * s, at_trade))
    unknown = ("not filled: at the last trade price (the run directory does not record "
               "the limit)" if "limit_price" not in forced.columns
               else "not filled: a market order, at the last trade price")
    where = np.where(filled, "filled", np.where(limit > 0, "not filled: at its limit", unknown))
    f = forced.assign(filled=filled, y=y, where=where, weight=np.where(
        filled, forced.filled_qty, forced.qty), trigger_natural=forced.trigger * s)
    note = None
    if len(f) > FORCED_MARKERS:
        keys = ["at", "instrument", "generation", "filled", "where"]
        for width_s in (0, *BUCKETS_S):
            width = width_s * 10**9 or 1  # 0: the exact instant
            grouped = f.assign(at=f.ts // width, wy=f.y * f.weight).groupby(keys, sort=True)
            if grouped.ngroups <= FORCED_MARKERS:
                break
        f = (grouped.agg(ts=("ts", "first"), account_id=("account_id", "size"),
                         qty=("qty", "sum"), filled_qty=("filled_qty", "sum"),
                         wy=("wy", "sum"), weight=("weight", "sum"),
                         trigger_natural=("trigger_natural", "max"),
                         ratio_at_trigger=("ratio_at_trigger", "min"))
             .reset_index())
        f["y"] = f.wy / np.maximum(f.weight, 1)
        note = (f"one marker per {'instant' if not width_s else duration(width_s)}, "
                f"instrument and generation ({len(forced):,} orders)")
    return f, note


def _add_forced(fig: go.Figure, points: pd.DataFrame, gen: int, generations: list[int],
                aggregated: bool, run: Run, row: int) -> None:
    """Two traces per generation and panel: the filled forced sales, solid, and the
    unfilled ones, open."""
    colour = _generation_colour(gen, generations)
    who = "accounts %{customdata[0]:,}" if aggregated else "account %{customdata[0]}"
    money = run.currency
    for filled, symbol, label in ((True, "circle", ""), (False, "circle-open", ", not filled")):
        p = points[points.filled == filled]
        if p.empty:
            continue
        custom = np.column_stack([p.account_id.to_numpy(), p.qty.to_numpy(),
                                  p.filled_qty.to_numpy(),
                                  p.trigger_natural.to_numpy(dtype=float),
                                  p.ratio_at_trigger.to_numpy(dtype=float)])
        where = str(p["where"].iloc[0]) if p["where"].nunique() == 1 else "%{text}"
        fig.add_trace(go.Scatter(
            x=wall_ms(p.ts.to_numpy()), y=p.y.to_numpy(dtype=float), mode="markers",
            name=f"forced sales, generation {gen}{label}", legendgroup=f"g{gen}{label}",
            customdata=custom, text=p["where"].to_numpy() if where == "%{text}" else None,
            marker={"color": colour, "size": 8, "symbol": symbol,
                    "line": {"width": 1.5, "color": colour}},
            hovertemplate=(f"generation {gen}, {where}<br>{who}<br>%{{customdata[1]:,}} "
                           "shares ordered, %{customdata[2]:,} filled<br>%{y:,.0f} "
                           f"{money}; trigger %{{customdata[3]:,}} {money} (ratio "
                           "%{customdata[4]:.3f})<br>%{x|%m-%d %H:%M:%S}<extra></extra>")),
            row=row, col=1)


# -- injected orders -------------------------------------------------------------------------

def injected_orders(run: Run) -> pd.DataFrame | None:
    """The orders injected from the input file, with the columns that tie them to it
    (:data:`INJECTED_COLUMNS`); None when there are none or the run directory predates
    those columns. Rows without an input row (the broker's and a strategy's orders) are
    not the file's."""
    injected = run.table("injected")
    if injected is None or not INJECTED_COLUMNS <= set(injected.columns):
        return None
    rows = pd.to_numeric(injected.input_row, errors="coerce")
    mine = injected[rows.notna() & (rows >= 0)]
    return mine.reset_index(drop=True) if len(mine) else None


def _injected_sentence(injected: pd.DataFrame) -> str:
    filled = pd.to_numeric(injected.filled, errors="coerce").fillna(0)
    size = pd.to_numeric(injected["size"], errors="coerce").fillna(0)
    status = injected.status.astype(str)
    full = int((filled >= size).sum())
    partial = int(((filled > 0) & (filled < size)).sum())
    rejected = status == "rejected"
    unfilled = int(((filled == 0) & ~rejected).sum())
    text = (f"Orders injected from the input file: {len(injected):,}; filled {full:,}, "
            f"partly filled {partial:,}, not filled {unfilled:,}, rejected "
            f"{int(rejected.sum()):,}")
    reasons = injected.reason[rejected | (filled == 0)].astype(str)
    reasons = reasons[reasons.str.len() > 0].value_counts()
    if len(reasons):
        text += " (" + ", ".join(f"{k}: {v:,}" for k, v in reasons.items()) + ")"
    return text + "."


def _add_injected(fig: go.Figure, orders: pd.DataFrame, run: Run, row: int) -> None:
    """The injected orders of one panel: filled at their average price, the others at their
    limit (a market order at the last trade price), with status and reason on hover."""
    orders = orders.head(INJECTED_MARKERS)
    if orders.empty:
        return
    scale = _scales(run).get(int(orders.instrument.iloc[0]), 1.0)
    ts = orders.ts.to_numpy(dtype=np.int64)
    filled = pd.to_numeric(orders.filled, errors="coerce").fillna(0).to_numpy()
    avg = pd.to_numeric(orders.avg_price, errors="coerce").to_numpy(dtype=float) * scale
    limit = pd.to_numeric(orders.limit_price, errors="coerce").fillna(0).to_numpy(dtype=float)
    at_trade = _price_at(run, orders.instrument.to_numpy(), ts)
    y = np.where(filled > 0, avg, np.where(limit > 0, limit * scale, at_trade))
    buy = orders.side.astype(str).str.lower().str[0].isin(["b"]).to_numpy()
    money = run.currency
    text = [html.escape(f"input row {int(r)}: {side} {kind} {int(size):,} shares"
                        + (f" limit {lim * scale:,g} {money}" if lim > 0 else "")
                        + f"<br>filled {int(fl):,}"
                        + (f" at {a:,.0f} {money}" if fl > 0 else "")
                        + f"; {status}" + (f" ({reason})" if str(reason) else ""),
                        quote=False).replace("&lt;br&gt;", "<br>")
            for r, side, kind, size, lim, fl, a, status, reason in zip(
                orders.input_row, orders.side, orders["type"], orders["size"], limit, filled, avg,
                orders.status.astype(str), orders.reason.fillna("").astype(str), strict=True)]
    text = np.array(text, dtype=object)
    for done, label in ((True, "injected orders, filled"),
                        (False, "injected orders, not filled or rejected")):
        mask = (filled > 0) == done
        if not mask.any():
            continue
        symbol = np.where(buy[mask], "triangle-up", "triangle-down")
        fig.add_trace(go.Scatter(
            x=wall_ms(ts[mask]), y=y[mask], mode="markers", name=label,
            legendgroup=label, text=text[mask],
            marker={"color": INJECTED_COLOUR, "size": 10,
                    "symbol": symbol if done else np.char.add(symbol.astype(str), "-open"),
                    "line": {"width": 1.5, "color": INJECTED_COLOUR}},
            hovertemplate="%{text}<br>%{x|%m-%d %H:%M:%S}<extra></extra>"), row=row, col=1)


# -- halts -----------------------------------------------------------------------------------

def _add_halt_marks(fig: go.Figure, halts: pd.DataFrame, scale: float, run: Run,
                    row: int) -> None:
    if halts.empty:
        return
    money = run.currency
    released = [clock(t) for t in halts.release_ts]
    text = [html.escape(f"{k}: reference {r * scale:,g} {money}, trigger {p * scale:,g} "
                        f"{money}, released {t}")
            for k, r, p, t in zip(halts.kind, halts.reference, halts.price, released,
                                  strict=True)]
    kinds = halts.kind.astype(str)
    name = "VI" if kinds.str.startswith("vi_").all() else "VI / halt"
    fig.add_trace(go.Scatter(
        x=wall_ms(halts.ts.to_numpy()), y=halts.price.to_numpy(dtype=float) * scale,
        mode="markers", name=name, legendgroup=name, text=text,
        marker={"color": HALT_COLOUR, "symbol": "diamond", "size": 9},
        hovertemplate="%{x|%m-%d %H:%M:%S}<br>%{text}<extra></extra>"), row=row, col=1)


def _shade_halts(fig: go.Figure, halts: pd.DataFrame, panels: list[tuple[int, str]],
                 traded_instruments) -> None:
    """A band from each halt to its release: in its instrument's panel, or in all of them
    for a market-wide one (a circuit breaker, or an instrument that prints no trade such as
    a future). A stock's halt (its VI) whose stock has no panel is not drawn: on a market
    tape those are thousands, and each would otherwise shade every panel."""
    rows = {inst: row for row, (inst, _) in enumerate(panels, start=1)}
    traded = set(traded_instruments)
    wide = halts.kind.astype(str).str.startswith("circuit_breaker").to_numpy()
    keep = halts.instrument.isin(rows.keys()).to_numpy() | wide \
        | ~halts.instrument.isin(traded).to_numpy()
    for h in halts[keep].head(HALT_SHAPES).itertuples():
        start, end = stamp(h.ts), stamp(max(h.release_ts, h.ts))
        fig.add_vrect(x0=start, x1=end, row=rows.get(h.instrument, "all"), col=1,
                      fillcolor=HALT_COLOUR, opacity=0.25, layer="below",
                      line={"width": 1, "color": HALT_COLOUR})


def _breaks(run: Run) -> list[dict]:
    """The price figure's rangebreaks: the gaps between all the run's time stamps."""
    stamps = [run.trades.ts.to_numpy(), np.array([run.end_ts])]
    for stem in ("counterfactual_trades", "forced_orders", "venue_events"):
        frame = run.table(stem)
        if frame is not None:
            stamps.append(frame.ts.to_numpy())
    return time_gaps(stamps)


def _panels(run: Run) -> list[tuple[int, str]]:
    """(instrument, symbol) of the price panels: those with forced sales or injected orders,
    then the most traded, at most PANELS, in instrument order."""
    counts = run.trades.instrument.value_counts()
    first: set = set()
    for frame in (run.table("forced_orders"), injected_orders(run)):
        if frame is not None:
            first |= set(frame.instrument.unique())
    ranked = sorted(counts.index, key=lambda i: (i not in first, -counts[i], i))
    chosen = sorted(int(i) for i in ranked[:PANELS])
    symbols = _symbols(run)
    return [(i, symbols.get(i, str(i))) for i in chosen]


def _symbols(run: Run) -> dict[int, str]:
    firsts = run.trades.drop_duplicates("instrument")
    return {int(i): str(s) for i, s in zip(firsts.instrument, firsts.symbol, strict=True)}


def _scales(run: Run) -> dict[int, float]:
    """Natural price per integer price unit, per instrument, from the trades
    (price_natural / price; 1 for KRX stocks, whose prices have no decimals)."""
    t = run.trades[run.trades.price != 0].drop_duplicates("instrument")
    return {int(i): float(n) / float(p)
            for i, n, p in zip(t.instrument, t.price_natural, t.price, strict=True)}


def _halts(run: Run) -> pd.DataFrame | None:
    """The venue's halts: every event but the routine auctions' uncrosses."""
    events = run.table("venue_events")
    if events is None:
        return None
    halts = events[~events.kind.astype(str).str.startswith("uncross")]
    return halts.sort_values("ts", kind="stable") if len(halts) else None


def _reason(run: Run) -> str:
    config = run.summary.get("config", {})
    broker = config.get("broker")
    overrides = config.get("overrides") or []
    if not broker:
        return "margin rules"
    return f"broker {broker}" + (f" with {' '.join(overrides)}" if overrides else "")


def _generation_colour(gen: int, generations: list[int]) -> str:
    top = max(max(generations), 1)
    return sample_colorscale("OrRd", [0.45 + 0.55 * gen / top])[0]


def _style(fig: go.Figure, height: int) -> None:
    fig.update_layout(template="plotly_white", height=height, hovermode="closest",
                      margin={"l": 80, "r": 20, "t": 40, "b": 50},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0})


def _legend_once(fig: go.Figure) -> None:
    """One legend entry per legend group, on its first trace, whichever panel it is in."""
    seen: set[str] = set()
    for trace in fig.data:
        group = trace.legendgroup or trace.name
        trace.showlegend = group not in seen
        seen.add(group)


# -- HTML ------------------------------------------------------------------------------------

#: The report's own style, after the render kit's (replay/render/page.py).
CSS = """
.config { color: #555; } nav a { margin-right: 12px; }
"""


def render_page(run: Run, sections: list[Section]) -> str:
    """The whole page: header, table of contents, the sections, packed with plotly.js."""
    s = run.summary
    config = s.get("config", {})
    facts = [f"{s.get('mode', '?')} replay", f"venue {s.get('venue', '?')}",
             f"seed {s.get('seed', '?')}"]
    for key in ("tape", "profile", "broker", "population", "strategy", "inject"):
        if config.get(key):
            facts.append(f"{key} {config[key]}")
    if config.get("overrides"):
        facts.append("set " + " ".join(map(str, config["overrides"])))
    facts.append(f"times in {TZ_LABEL} ({TZ})")
    page = Page(f"cascade run {run.path.name}", CSS)
    page.add(f"<h1>cascade run {html.escape(run.path.name)}</h1>",
             f"<p class='config'>{html.escape('; '.join(facts))}</p>",
             "<nav>" + "".join(f"<a href='#{x.id}'>{html.escape(x.title)}</a>"
                               for x in sections) + "</nav>")
    for section in sections:
        page.add(f"<section id='{section.id}'><h2>{html.escape(section.title)}</h2>")
        for part in section.parts:
            if isinstance(part, Plot):
                page.plot(part, f"plot-{section.id}-{page.plots + 1}")
            else:
                page.add(part)
        page.add("</section>")
    return page.html()


def _figure_rows(mapping: dict, figures: dict[str, tuple[str, str]],
                 currency: str) -> list[tuple[str, str]]:
    """A summary section's rows: the figures listed first, with their units, then the
    rest under their own names."""
    rows = [(with_unit(label, unit, currency), cell(mapping[k], unit))
            for k, (label, unit) in figures.items() if k in mapping]
    rows += [(words(k), cell(v)) for k, v in mapping.items() if k not in figures]
    return rows


def _flat_rows(mapping: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            rows += _flat_rows(value, f"{prefix}{words(key)}: ")
        else:
            rows.append((prefix + words(key), cell(value)))
    return rows


def _note_cut(total: int) -> str:
    return f"<p>The first {TABLE_ROWS} of {total:,} rows.</p>" if total > TABLE_ROWS else ""
