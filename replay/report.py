"""A run's report: one self-contained HTML page drawn from its run directory.

``cascade report RUN_DIR`` reads what ``cascade replay`` wrote (replay/results.py,
replay/broker_run.py) and draws, each only when its file is there: the price path with and
without the broker's forced sales, the forced sales by cascade generation, the accounts'
collateral ratios (담보유지비율) at each close, the venue's VI and circuit breakers, a
strategy's equity, and the summary figures. plotly.js is embedded once, inline, so the page
opens offline and makes no request; the same run directory gives the same bytes. Long
tapes are thinned to the high and low of fixed time buckets, and the caption says so.
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

REPORT = "report.html"
#: Points of the price figure, shared by its lines; beyond it a line is thinned.
PRICE_POINTS = 60_000
#: Points of a strategy's equity line.
EQUITY_POINTS = 20_000
#: Forced orders drawn one by one; beyond it, grouped by instant (or time bucket).
FORCED_MARKERS = 10_000
#: Price panels: the instruments with forced sales first, then the most traded.
PANELS = 8
#: Halts shaded on the price figure.
HALT_SHAPES = 300
TABLE_ROWS = 200
#: Time buckets (seconds) tried, finest first, when a line must be thinned.
BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 86400)
#: A gap in the tape longer than this (a night, a weekend) is cut out of the time axis.
GAP_NS = 2 * 3600 * 10**9
#: Bars of the cascade figure: orders grouped by instant, else by minute, hour or day.
CASCADE_BARS = 60
CASCADE_BUCKETS = (("s", "%m-%d %H:%M:%S", "second"), ("min", "%m-%d %H:%M", "minute"),
                   ("h", "%m-%d %H:00", "hour"), ("D", "%Y-%m-%d", "day"))
KRX_TZ = "Asia/Seoul"
#: The columns read of the trade prints (all of a file when None).
TRADE_COLUMNS = ["ts", "instrument", "symbol", "price", "price_natural"]
OPTIONAL: dict[str, list[str] | None] = {
    "counterfactual_trades": ["ts", "instrument", "price"], "forced_orders": None,
    "accounts": None, "venue_events": None, "sessions": None, "strategy_equity": None,
    "strategy_events": None}
PERCENT_KEYS = frozenset({"max_drawdown", "return"})
STATES = ("ok", "called", "selling", "frozen")
STRATEGY_MARKS = {"margin_call": ("#ff7f0e", "triangle-down"),
                  "liquidation": ("#d62728", "x"), "call_ended": ("#2ca02c", "circle-open"),
                  "deposit": ("#1f77b4", "triangle-up")}
PRICE_COLOUR, COUNTERFACTUAL_COLOUR, HALT_COLOUR = "#1f77b4", "#8c8c8c", "#ff7f0e"


@dataclass(frozen=True)
class Run:
    """A run directory's contents: summary.json and trades always, each other table under
    its file's stem when it was written (``tables["forced_orders"]``)."""

    path: Path
    summary: dict
    trades: pd.DataFrame  # ts, instrument, symbol, price (units), price_natural
    tables: dict[str, pd.DataFrame]

    @property
    def tz(self) -> str:
        """The clock times are shown in: Seoul at the KRX venue, else UTC."""
        return KRX_TZ if self.summary.get("venue") == "krx" else "UTC"

    def table(self, stem: str) -> pd.DataFrame | None:
        """The table, or None when its file is absent or empty."""
        frame = self.tables.get(stem)
        return frame if frame is not None and len(frame) else None


@dataclass(frozen=True)
class Plot:
    """A figure and the sentence under it (what is drawn, and how it was thinned)."""

    figure: go.Figure
    caption: str


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
    return Run(run_dir, summary, trades, tables)


def _read(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    try:
        table = pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (cascade replay writes it)") from None
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    return table.to_pandas()


# -- the sections ----------------------------------------------------------------------------

def build_sections(run: Run) -> list[Section]:
    """The page's sections, in order, each only when the run has its data."""
    builders = (summary_section, price_section, forced_section, ratios_section,
                end_accounts_section, venue_section, strategy_section, run_section)
    return [s for build in builders if (s := build(run)) is not None]


def summary_section(run: Run) -> Section | None:
    """The broker's figures beside the counterfactual's, and the strategy's."""
    s = run.summary
    parts: list[str | Plot] = []
    if "broker" in s:
        without = s.get("counterfactual", {})
        rows = [(_label(k), _cell(v, k), _cell(without.get(k), k)) for k, v in s["broker"].items()]
        parts.append(_table(("", "with the forced sales", "without (counterfactual)"), rows))
    if "strategy" in s:
        parts.append("<h3>Strategy</h3>")
        parts.append(_table(("", "value"),
                            [(_label(k), _cell(v, k)) for k, v in s["strategy"].items()]))
    if not parts:
        return None
    return Section("summary", "Summary", tuple(parts))


def price_section(run: Run) -> Section:
    """Trade prices with and without the forced sales, forced sales and halts on top."""
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
        rows.append((_cell(gen), _cell(len(g)), _cell(g.account_id.nunique()),
                     _cell(int(g.qty.sum())), _cell(int(g.filled_qty.sum())),
                     f"{g.filled_qty.sum() / max(g.qty.sum(), 1):.2%}",
                     _cell(float(g.value.sum())), _clock(g.ts.min(), run.tz),
                     _clock(g.ts.max(), run.tz)))
    table = _table(("generation", "orders", "accounts", "qty ordered", "qty filled", "filled",
                    "value filled", "first order", "last order"), rows)
    intro = ("<p>Generation 0 is sold on the tape's own prices; generation k+1 on a price a "
             f"generation-k forced sale set (brokers/engine.py). Reason: "
             f"{html.escape(_reason(run))}.</p>")
    return Section("forced", "Forced sales by generation",
                   (intro, table, cascade_figure(run, forced)))


def ratios_section(run: Run) -> Section | None:
    """Collateral ratios and account states at each close (KRX venue)."""
    accounts = run.table("accounts")
    if accounts is None or not {"day", "collateral_ratio"} <= set(accounts.columns):
        return None
    plot, rows = ratios_figure(accounts)
    table = _table(("close", "accounts", "lowest", "median", "highest", "no debt",
                    *STATES), rows)
    return Section("ratios", "Collateral ratios at each close", (plot, table))


def end_accounts_section(run: Run) -> Section | None:
    """The accounts at the end of a generic-venue run (no per-close rows there)."""
    accounts = run.table("accounts")
    if accounts is None or "day" in accounts.columns:
        return None
    rows = [("accounts", _cell(len(accounts)))]
    for column in ("shares_left", "proceeds", "loan_left", "cash_left", "shortfall"):
        if column in accounts.columns:
            values = accounts[column]
            rows.append((f"{_label(column)} (accounts with any)", _cell(int((values > 0).sum()))))
            rows.append((f"{_label(column)} (total)", _cell(values.sum().item())))
    return Section("accounts", "Accounts at the end", (_table(("", "value"), rows),))


def venue_section(run: Run) -> Section | None:
    """VI, circuit breakers and sidecars; the venue's summary; the daily sessions."""
    venue = run.summary.get("venue_summary")
    halts = _halts(run)
    sessions = run.table("sessions")
    if venue is None and halts is None and sessions is None:
        return None
    parts: list[str | Plot] = []
    if venue:
        parts.append(_table(("", "value"), _flat_rows(venue)))
    if halts is not None:
        scale = _scales(run)
        rows = [(_clock(h.ts, run.tz), h.symbol or "market", h.kind,
                 _cell(h.reference * scale.get(h.instrument, 1.0)),
                 _cell(h.price * scale.get(h.instrument, 1.0)), _cell(h.volume),
                 _clock(h.release_ts, run.tz), _cell((h.release_ts - h.ts) / 1e9))
                for h in halts.head(TABLE_ROWS).itertuples()]
        parts.append("<h3>Halts</h3>")
        parts.append(_note_cut(len(halts)) + _table(
            ("time", "symbol", "kind", "reference", "price", "volume", "released",
             "halted (s)"), rows))
    if sessions is not None:
        columns = [c for c in ("day", "symbol", "base", "lower_limit", "upper_limit", "open",
                               "close", "ask_qty_at_lower_limit", "limit_locked_down",
                               "closed_at_lower_limit") if c in sessions.columns]
        rows = [tuple(_cell(v) for v in r)
                for r in sessions[columns].head(TABLE_ROWS).itertuples(index=False)]
        parts.append("<h3>Sessions</h3>")
        parts.append(_note_cut(len(sessions)) + _table(tuple(_label(c) for c in columns),
                                                       rows))
    return Section("venue", "Venue: VI, circuit breakers, sessions", tuple(parts))


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
        parts.append("<p>" + ", ".join(f"{html.escape(str(k))}: {v:,}"
                                       for k, v in sorted(counts.items())) + "</p>")
        if len(marks):
            rows = [(_clock(e.ts, run.tz), *(_cell(getattr(e, c, None)) for c in
                                              ("kind", "instrument", "side", "qty", "price",
                                               "detail")))
                    for e in marks.head(TABLE_ROWS).itertuples()]
            parts.append(_note_cut(len(marks)) + _table(
                ("time", "kind", "instrument", "side", "qty", "price", "detail"), rows))
    return Section("strategy", "Strategy", tuple(parts))


def run_section(run: Run) -> Section:
    """How the run was made: its config, counts, counters and versions."""
    s = run.summary
    info = [(_label(k), _cell(s[k], k)) for k in
            ("mode", "venue", "seed", "events_processed", "wall_seconds", "events_per_second",
             "injected_orders") if k in s]
    info += [(f"rows: {k}", _cell(v)) for k, v in s.get("rows", {}).items()]
    parts: list[str | Plot] = [_table(("", "value"), info)]
    for key in ("config", "counters", "versions"):
        if s.get(key):
            parts.append(f"<details><summary>{key}</summary>"
                         f"{_table(('', 'value'), _flat_rows(s[key]))}</details>")
    return Section("run", "Run", tuple(parts))


# -- the figures -----------------------------------------------------------------------------

def price_figure(run: Run) -> Plot | None:
    """One panel per instrument: the trade price, the counterfactual's, the forced sales
    by generation and the halts."""
    trades = run.trades
    if trades.empty:
        return None
    panels = _panels(run)
    counterfactual = run.table("counterfactual_trades")
    forced = run.table("forced_orders")
    halts = _halts(run)
    scale = _scales(run)
    lines = len(panels) * (2 if counterfactual is not None else 1)
    budget = max(PRICE_POINTS // lines, 1000)
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.04)
    notes: list[str] = []
    points, grouped = _forced_points(forced, scale) if forced is not None else (None, None)
    generations = sorted(points.generation.unique()) if points is not None else []
    for row, (inst, symbol) in enumerate(panels, start=1):
        first = row == 1
        if counterfactual is not None:  # beneath: before the first forced sale they coincide
            cf = counterfactual[counterfactual.instrument == inst]
            x, y, note = _line(cf.ts.to_numpy(), cf.price.to_numpy() * scale.get(inst, 1.0),
                               budget, run.tz)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines", name="without (counterfactual)",
                line={"width": 1, "color": COUNTERFACTUAL_COLOUR, "shape": "hv"},
                legendgroup="counterfactual", showlegend=first,
                hovertemplate="%{x|%m-%d %H:%M:%S.%L}<br>%{y:,}<extra>counterfactual</extra>"),
                row=row, col=1)
            if note:
                notes.append(f"{symbol} counterfactual: {note}")
        mine = trades[trades.instrument == inst]
        x, y, note = _line(mine.ts.to_numpy(), mine.price_natural.to_numpy(), budget, run.tz)
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", line={"width": 1, "color": PRICE_COLOUR, "shape": "hv"},
            name="with the forced sales", legendgroup="real", showlegend=first,
            hovertemplate="%{x|%m-%d %H:%M:%S.%L}<br>%{y:,}<extra>" + html.escape(symbol)
                          + "</extra>"), row=row, col=1)
        if note:
            notes.append(f"{symbol}: {note}")
        if points is not None:
            for gen in generations:
                _add_forced(fig, points[(points.instrument == inst) & (points.generation == gen)],
                            gen, generations, grouped is not None, _reason(run), run.tz, row)
        if halts is not None:
            _add_halt_marks(fig, halts[halts.instrument == inst], scale.get(inst, 1.0), run.tz,
                            row, first)
    if halts is not None:
        _shade_halts(fig, halts, panels, run.tz)
    fig.update_xaxes(type="date", rangebreaks=_breaks(run), hoverformat="%m-%d %H:%M:%S")
    fig.update_xaxes(title_text=f"time ({run.tz})", row=len(panels), col=1)
    for row, (_, symbol) in enumerate(panels, start=1):
        fig.update_yaxes(title_text=f"{symbol} price", row=row, col=1)
    _style(fig, height=260 + 240 * len(panels))
    caption = ["Price of each trade, held until the next, in " + run.tz + " time."]
    if counterfactual is not None:
        caption.append("Grey: the same tape replayed without the broker's forced orders.")
    if points is not None:
        caption.append("Markers: forced sale orders at their average fill price (filled) or "
                       "at the price that triggered them (open: not filled), coloured by "
                       "cascade generation" + (f", {grouped}" if grouped else "") + ".")
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
    labels, word = _batches(forced.ts.to_numpy(), run.tz)
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
            fig.add_trace(go.Bar(
                x=batches, y=g[column].to_numpy(), name=f"generation {gen} {label}",
                marker={"color": colour, "opacity": opacity}, legendgroup=f"g{gen}",
                hovertemplate="%{x}<br>%{y:,} shares<extra>generation " + str(gen) + " "
                              + label + "</extra>"))
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category", title_text=f"orders entered ({run.tz})")
    fig.update_yaxes(title_text="shares")
    _style(fig, height=400)
    return Plot(fig, f"Shares of forced sale orders entered in each {word}, by "
                     "cascade generation: filled (solid) and left unfilled (pale).")


def _batches(ts_ns: np.ndarray, tz: str) -> tuple[pd.Index, str]:
    """Each time stamp's label at the finest of CASCADE_BUCKETS giving at most CASCADE_BARS
    labels, and that bucket's name."""
    stamps = pd.to_datetime(ts_ns, utc=True).tz_convert(tz)
    for floor, fmt, word in CASCADE_BUCKETS:
        when = stamps.floor(floor)
        if when.nunique() <= CASCADE_BARS or floor == "D":
            return when.strftime(fmt), word
    raise AssertionError("unreachable: the last bucket is a day")


def ratios_figure(accounts: pd.DataFrame) -> tuple[Plot, list[tuple]]:
    """Box per close of the finite collateral ratios, and the account states beneath;
    also the rows of the table that goes with it."""
    days, stats, states, rows = [], [], {s: [] for s in STATES}, []
    for day, g in accounts.groupby("day", sort=True):
        ratio = g.collateral_ratio.to_numpy(dtype=float)
        finite = ratio[np.isfinite(ratio)]
        q = np.quantile(finite, [0, 0.25, 0.5, 0.75, 1]) if len(finite) else [np.nan] * 5
        days.append(str(day))
        stats.append(q)
        counts = g.state.value_counts() if "state" in g.columns else pd.Series(dtype=int)
        for s in STATES:
            states[s].append(int(counts.get(s, 0)))
        rows.append((str(day), _cell(len(g)), _cell(q[0]), _cell(q[2]), _cell(q[4]),
                     _cell(int(np.isinf(ratio).sum())),
                     *(_cell(states[s][-1]) for s in STATES)))
    q = np.array(stats, dtype=float)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                        vertical_spacing=0.06)
    fig.add_trace(go.Box(x=days, lowerfence=q[:, 0], q1=q[:, 1], median=q[:, 2], q3=q[:, 3],
                         upperfence=q[:, 4], name="collateral ratio", marker_color=PRICE_COLOUR,
                         showlegend=False), row=1, col=1)
    palette = {"ok": "#2ca02c", "called": "#ff7f0e", "selling": "#d62728", "frozen": "#7f7f7f"}
    for s in STATES:
        if any(states[s]):
            fig.add_trace(go.Bar(x=days, y=states[s], name=s, marker_color=palette[s]),
                          row=2, col=1)
    fig.update_layout(barmode="stack")
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="collateral ratio", row=1, col=1)
    fig.update_yaxes(title_text="accounts", row=2, col=1)
    _style(fig, height=520)
    caption = ("Collateral ratio (value / debt) of every account at each close: box = "
               "quartiles, whiskers = lowest and highest. Accounts without debt (ratio "
               "infinite) are counted in the table, not drawn. Below: the accounts' states.")
    return Plot(fig, caption), rows


def strategy_figure(run: Run, equity: pd.DataFrame, events: pd.DataFrame | None) -> Plot:
    """Equity with the margin calls, liquidations and cures marked; leverage beneath."""
    equity = equity.sort_values("ts", kind="stable")
    ts = equity.ts.to_numpy()
    keep, note = thin(ts, equity.equity.to_numpy(dtype=float), EQUITY_POINTS)
    x = _wall_ms(ts[keep], run.tz)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                        vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=x, y=equity.equity.to_numpy(dtype=float)[keep], mode="lines",
                             name="equity", line={"color": PRICE_COLOUR, "shape": "hv"}),
                  row=1, col=1)
    if "leverage" in equity.columns:
        fig.add_trace(go.Scatter(x=x, y=equity.leverage.to_numpy(dtype=float)[keep],
                                 mode="lines", name="leverage",
                                 line={"color": "#9467bd", "shape": "hv"}), row=2, col=1)
    if events is not None:
        at = np.clip(np.searchsorted(ts, events.ts.to_numpy(), side="right") - 1, 0, len(ts) - 1)
        level = equity.equity.to_numpy(dtype=float)[at]
        for kind, (colour, symbol) in STRATEGY_MARKS.items():
            mask = (events.kind == kind).to_numpy()
            if not mask.any():
                continue
            e = events[mask]
            text = [f"{_hover(side)} {qty:,} @ {price:,}<br>{_hover(detail)}"
                    for side, qty, price, detail in zip(e.side, e.qty, e.price, e.detail,
                                                        strict=True)]
            fig.add_trace(go.Scatter(
                x=_wall_ms(e.ts.to_numpy(), run.tz), y=level[mask], mode="markers",
                name=_label(kind), text=text,
                marker={"color": colour, "symbol": symbol, "size": 10,
                        "line": {"width": 2, "color": colour}},
                hovertemplate="%{x|%m-%d %H:%M:%S}<br>%{text}<extra>" + _label(kind)
                              + "</extra>"), row=1, col=1)
    stamps = [ts] + ([events.ts.to_numpy()] if events is not None else [])
    fig.update_xaxes(type="date", rangebreaks=_gaps(stamps, run.tz))
    fig.update_xaxes(title_text=f"time ({run.tz})", row=2, col=1)
    fig.update_yaxes(title_text="equity", row=1, col=1)
    fig.update_yaxes(title_text="leverage", row=2, col=1)
    _style(fig, height=520)
    caption = "The strategy's equity (marked: margin calls, liquidations, cures) and leverage."
    if note:
        caption += f" Thinned: equity {note}."
    return Plot(fig, caption)


def _line(ts: np.ndarray, price: np.ndarray, budget: int,
          tz: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    order = np.argsort(ts, kind="stable")
    ts, price = ts[order], np.asarray(price, dtype=float)[order]
    keep, note = thin(ts, price, budget)
    return _wall_ms(ts[keep], tz), price[keep], note


def thin(ts: np.ndarray, values: np.ndarray, budget: int) -> tuple[np.ndarray, str | None]:
    """Rows to draw of a line sorted by time: all when they fit in ``budget``, else the
    lowest and the highest of each time bucket, with the finest bucket that fits (so a
    limit-down low survives); the note says what was done."""
    n = len(ts)
    if n <= budget:
        return np.arange(n), None
    for width_s in BUCKETS_S:
        bucket = ts // (width_s * 10**9)
        if 2 * (np.count_nonzero(np.diff(bucket)) + 1) <= budget:
            break
    series = pd.Series(values)
    grouped = series.groupby(bucket, sort=False)
    keep = np.unique(np.concatenate([grouped.idxmin().to_numpy(), grouped.idxmax().to_numpy()]))
    return keep, f"{n:,} → {len(keep):,} points, the low and high of every {_duration(width_s)}"


def _forced_points(forced: pd.DataFrame,
                   scale: dict[int, float]) -> tuple[pd.DataFrame, str | None]:
    """A marker per forced order, y at its average fill price, else at its trigger price.
    Past FORCED_MARKERS orders, one marker per instrument, generation, filled-or-not and
    instant (or the finest time bucket that fits), and a note saying which."""
    f = forced.assign(filled=forced.filled_qty > 0,
                      value=forced.filled_qty * forced.avg_price.fillna(0))
    if "reason" not in f.columns:
        f["reason"] = ""
    note = None
    if len(f) > FORCED_MARKERS:
        keys = ["at", "instrument", "generation", "filled"]
        for width_s in (0, *BUCKETS_S):
            width = width_s * 10**9 or 1  # 0: the exact instant
            grouped = f.assign(at=f.ts // width).groupby(keys, sort=True)
            if grouped.ngroups <= FORCED_MARKERS:
                break
        f = (grouped.agg(ts=("ts", "first"), account_id=("account_id", "size"),
                         qty=("qty", "sum"), filled_qty=("filled_qty", "sum"),
                         value=("value", "sum"), trigger=("trigger", "max"),
                         ratio_at_trigger=("ratio_at_trigger", "min"), reason=("reason", "first"))
             .reset_index())
        note = (f"one marker per {'instant' if not width_s else _duration(width_s)}, "
                f"instrument and generation ({len(forced):,} orders)")
    units = np.where(f.filled, f.value / np.maximum(f.filled_qty, 1), f.trigger)
    s = f.instrument.map(scale).fillna(1.0).to_numpy()
    return f.assign(y=units * s, trigger_natural=f.trigger * s), note


def _add_forced(fig: go.Figure, points: pd.DataFrame, gen: int, generations: list[int],
                aggregated: bool, reason: str, tz: str, row: int) -> None:
    if points.empty:
        return
    colour = _generation_colour(gen, generations)
    who = "accounts %{customdata[0]:,}" if aggregated else "account %{customdata[0]}"
    per_point = bool(points.reason.astype(bool).any())  # a reason column was written
    why = "%{text}" if per_point else html.escape(reason)
    custom = np.column_stack([points.account_id.to_numpy(), points.qty.to_numpy(),
                              points.filled_qty.to_numpy(),
                              points.trigger_natural.to_numpy(dtype=float),
                              points.ratio_at_trigger.to_numpy(dtype=float)])
    fig.add_trace(go.Scatter(
        x=_wall_ms(points.ts.to_numpy(), tz), y=points.y.to_numpy(dtype=float),
        mode="markers", name=f"forced sales, generation {gen}", legendgroup=f"g{gen}",
        showlegend=row == 1, customdata=custom,
        text=points.reason.astype(str).map(html.escape).to_numpy() if per_point else None,
        marker={"color": colour, "size": 8, "line": {"width": 1.5, "color": colour},
                "symbol": np.where(points.filled, "circle", "circle-open")},
        hovertemplate=(f"generation {gen}<br>{who}<br>qty %{{customdata[1]:,}}, filled "
                       "%{customdata[2]:,}<br>trigger %{customdata[3]:,} (ratio "
                       f"%{{customdata[4]:.3f}})<br>{why}<br>"
                       "%{x|%m-%d %H:%M:%S}<extra></extra>")), row=row, col=1)


def _add_halt_marks(fig: go.Figure, halts: pd.DataFrame, scale: float, tz: str, row: int,
                    first: bool) -> None:
    if halts.empty:
        return
    released = [_clock(t, tz) for t in halts.release_ts]
    text = [html.escape(f"{k}: reference {r * scale:,g}, price {p * scale:,g}, released {t}")
            for k, r, p, t in zip(halts.kind, halts.reference, halts.price, released,
                                  strict=True)]
    fig.add_trace(go.Scatter(
        x=_wall_ms(halts.ts.to_numpy(), tz), y=halts.price.to_numpy(dtype=float) * scale,
        mode="markers", name="VI / halt", legendgroup="halt", showlegend=first, text=text,
        marker={"color": HALT_COLOUR, "symbol": "diamond", "size": 9},
        hovertemplate="%{x|%m-%d %H:%M:%S}<br>%{text}<extra></extra>"), row=row, col=1)


def _shade_halts(fig: go.Figure, halts: pd.DataFrame, panels: list[tuple[int, str]],
                 tz: str) -> None:
    """A band from each halt to its release: in its instrument's panel, or in all of them
    for a market-wide one (circuit breaker, or an instrument not drawn such as a future)."""
    rows = {inst: row for row, (inst, _) in enumerate(panels, start=1)}
    for h in halts.head(HALT_SHAPES).itertuples():
        start, end = _stamp(h.ts, tz), _stamp(max(h.release_ts, h.ts), tz)
        fig.add_vrect(x0=start, x1=end, row=rows.get(h.instrument, "all"), col=1,
                      fillcolor=HALT_COLOUR, opacity=0.25, layer="below",
                      line={"width": 1, "color": HALT_COLOUR})


def _breaks(run: Run) -> list[dict]:
    """The price figure's rangebreaks: the gaps between all the run's time stamps."""
    stamps = [run.trades.ts.to_numpy()]
    for stem in ("counterfactual_trades", "forced_orders", "venue_events"):
        frame = run.table(stem)
        if frame is not None:
            stamps.append(frame.ts.to_numpy())
    return _gaps(stamps, run.tz)


def _gaps(stamps: list[np.ndarray], tz: str) -> list[dict]:
    """Rangebreaks hiding each stretch longer than GAP_NS without a single time stamp, with
    a margin of a tenth of the gap (at most ten minutes) on both sides."""
    ts = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in stamps]))
    if len(ts) < 2:
        return []
    at = np.flatnonzero(np.diff(ts) > GAP_NS)
    breaks = []
    for i in at[:500]:
        a, b = int(ts[i]), int(ts[i + 1])
        pad = min((b - a) // 10, 600 * 10**9)
        breaks.append({"bounds": [_stamp(a + pad, tz), _stamp(b - pad, tz)]})
    return breaks


def _panels(run: Run) -> list[tuple[int, str]]:
    """(instrument, symbol) of the price panels: those with forced sales, then the most
    traded, at most PANELS, in instrument order."""
    counts = run.trades.instrument.value_counts()
    forced = run.table("forced_orders")
    first = set(forced.instrument.unique()) if forced is not None else set()
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
                      margin={"l": 70, "r": 20, "t": 40, "b": 50},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0})


# -- time ------------------------------------------------------------------------------------

def _wall_ms(ts_ns: np.ndarray, tz: str) -> np.ndarray:
    """UTC epoch nanoseconds -> milliseconds of the wall clock in ``tz``, which a plotly
    date axis shows as they are."""
    local = pd.DatetimeIndex(pd.to_datetime(np.asarray(ts_ns, dtype=np.int64), utc=True))
    return local.tz_convert(tz).tz_localize(None).asi8 / 1e6


def _stamp(ts_ns: int, tz: str) -> str:
    return pd.Timestamp(int(ts_ns), tz="UTC").tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S.%f")


def _clock(ts_ns: Any, tz: str) -> str:
    if ts_ns is None or pd.isna(ts_ns) or int(ts_ns) < 0:
        return "–"
    return _stamp(int(ts_ns), tz)[:-3]


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


# -- HTML ------------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1280px;
       margin: 0 auto; padding: 0 16px 48px; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 18px; margin-top: 36px;
     border-bottom: 1px solid #ddd; } h3 { font-size: 15px; }
.config { color: #555; } nav a { margin-right: 12px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 8px 0 20px; } figcaption { color: #555; font-size: 12.5px; }
"""


def render_page(run: Run, sections: list[Section]) -> str:
    """The whole page: header, table of contents, the sections; plotly.js inline once."""
    s = run.summary
    config = s.get("config", {})
    facts = [f"{s.get('mode', '?')} replay", f"venue {s.get('venue', '?')}",
             f"seed {s.get('seed', '?')}"]
    for key in ("tape", "profile", "broker", "population", "strategy", "inject"):
        if config.get(key):
            facts.append(f"{key} {config[key]}")
    if config.get("overrides"):
        facts.append("set " + " ".join(map(str, config["overrides"])))
    body = [f"<h1>cascade run {html.escape(run.path.name)}</h1>",
            f"<p class='config'>{html.escape('; '.join(facts))}</p>",
            "<nav>" + "".join(f"<a href='#{x.id}'>{html.escape(x.title)}</a>"
                              for x in sections) + "</nav>"]
    with_plotly = True
    for section in sections:
        body.append(f"<section id='{section.id}'><h2>{html.escape(section.title)}</h2>")
        figures = 0
        for part in section.parts:
            if isinstance(part, Plot):
                figures += 1
                div = part.figure.to_html(
                    full_html=False, include_plotlyjs=with_plotly,
                    div_id=f"plot-{section.id}-{figures}",
                    default_height=f"{part.figure.layout.height}px",
                    config={"displaylogo": False, "responsive": True})
                with_plotly = False
                body.append(f"<figure>{div}<figcaption>{html.escape(part.caption)}"
                            "</figcaption></figure>")
            else:
                body.append(part)
        body.append("</section>")
    title = html.escape(f"cascade run {run.path.name}")
    return ("<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
            f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    """A plain HTML table; numbers (formatted by :func:`_cell`) right-aligned."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for value in row:
            text = str(value)
            numeric = text[:1].isdigit() or (text[:1] in "-−" and text[1:2].isdigit())
            cells.append(f"<td class='num'>{html.escape(text)}</td>" if numeric
                         else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: Any, key: str = "") -> str:
    """One value as the tables show it: thousands separated, percent for drawdowns and
    returns, – for missing, ∞ for infinite."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if key in PERCENT_KEYS:
            return f"{value:.2%}"
        if abs(value) >= 1000 or value == int(value):
            return f"{value:,.0f}"
        return f"{value:.4g}"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _flat_rows(mapping: dict, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            rows += _flat_rows(value, f"{prefix}{_label(key)}: ")
        else:
            rows.append((prefix + _label(key), _cell(value, key)))
    return rows


def _hover(value: Any) -> str:
    """A value for plotly hover text, which reads a few HTML tags: escaped."""
    return html.escape("" if value is None else str(value), quote=False)


def _label(key: str) -> str:
    return str(key).replace("_", " ")


def _note_cut(total: int) -> str:
    return f"<p>The first {TABLE_ROWS} of {total:,} rows.</p>" if total > TABLE_ROWS else ""
