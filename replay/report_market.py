"""The report of a market run: many names on one tape, the indices computed from them
(docs/reports.md: a market run).

``cascade report RUN_DIR`` adds these sections when the run replayed more than one name
(summary.json's ``market``, or the trade prints): the indices through the run's days in %
of each day's prior close, with their circuit-breaker halts shaded, sidecars marked and the
-8/-15/-20% stages drawn; the names' paths (the largest by capitalisation and the most
force-sold); the forced sales by name and by generation across names; and how a ``[market]``
population laid its balances. When the run directory holds ``reported_vs_simulated.csv``
(an episode's facts beside the simulation's), that table is the page's first.

The indices are recomputed from the trade prints as the venue computes them
(venues/krx/venue.py: capitalisation-weighted over the names with shares, each day
against that day's base prices; the futures proxy the index times ``1 + basis``), and the
caption gives each day's close beside the venue's own, from summary.json.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from replay.render.bands import SIDECAR_COLOUR, Band, add_bands, add_levels
from replay.render.cells import cell
from replay.render.clock import TZ_LABEL, time_gaps, wall_ms
from replay.render.page import Plot, html_table
from replay.render.thinning import held_line
from replay.report import Run, Section, _generation_colour, _scales, _style, _symbols

REPORTED = "reported_vs_simulated.csv"
REPORTED_COLUMNS = ("fact", "reported", "simulated", "gap", "unit", "note")
#: Names drawn on the paths figure: the largest by capitalisation, then the most force-sold.
LARGEST, MOST_FORCED = 5, 5
#: Names given a bar of their own in the forced-sales figures; the rest are one "others" bar.
NAME_BARS = 15
#: Names listed in the population split's table; the rest are one "others" row.
SPLIT_ROWS = 20
INDEX_POINTS, PATH_POINTS = 12_000, 16_000
MARKETS = ("KOSPI", "KOSDAQ")
PROXY = "KOSPI200F"
DAY_NS = 86_400 * 10**9
SEOUL_NS = 9 * 3600 * 10**9  # KST is UTC+9, without summer time
INDEX_COLOURS = {"KOSPI": "#1f77b4", "KOSDAQ": "#2ca02c", PROXY: "#8c564b"}


def first_sections(run: Run) -> list[Section]:
    """The sections before the summary: the reported facts beside the simulated ones."""
    path = run.path / REPORTED
    if not path.exists():
        return []
    return [reported_section(read_reported(path))]


def market_sections(run: Run) -> list[Section]:
    """The market's sections, after the price path; none for a run of one name."""
    if not is_market(run):
        return []
    out = [indices_section(run), paths_section(run), forced_by_name_section(run),
           split_section(run)]
    return [s for s in out if s is not None]


def is_market(run: Run) -> bool:
    """A run of more than one name: summary.json's ``market``, else the trade prints."""
    market = run.summary.get("market")
    if isinstance(market, dict) and "names" in market:
        return int(market["names"]) > 1
    return run.trades.instrument.nunique() > 1


# -- reported vs simulated -------------------------------------------------------------------

def read_reported(path: Path) -> pd.DataFrame:
    """reported_vs_simulated.csv, every cell as text; a missing column is an error naming
    the file and the column."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    missing = [c for c in REPORTED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: no column {missing[0]!r} (the columns are "
                         f"{', '.join(REPORTED_COLUMNS)})")
    return frame


def reported_section(frame: pd.DataFrame) -> Section:
    rows = [tuple(r) for r in frame[list(REPORTED_COLUMNS)].itertuples(index=False)]
    intro = ("<p>Each fact as it was reported, the simulation's value and the gap "
             f"(simulated - reported), from {REPORTED}.</p>")
    return Section("reported", "Reported vs simulated",
                   (intro, html_table(REPORTED_COLUMNS, rows)))


# -- the names and the indices ---------------------------------------------------------------

def constituents(run: Run) -> pd.DataFrame | None:
    """summary.json's ``market.constituents`` (instrument, symbol, market, shares,
    prior_close, kospi200); None for a run directory without it."""
    table = (run.summary.get("market") or {}).get("constituents")
    if not table:
        return None
    frame = pd.DataFrame(table["rows"], columns=table["columns"])
    frame["market"] = frame.market.replace("", "KOSPI")  # the venue's default
    return frame


def _day(ts: np.ndarray) -> np.ndarray:
    """The Seoul calendar day of each UTC nanosecond time stamp, as days since 1970."""
    return (np.asarray(ts, dtype=np.int64) + SEOUL_NS) // DAY_NS


def _bases(run: Run) -> pd.DataFrame | None:
    """Each name's base price (its prior close) per day, from sessions.parquet."""
    sessions = run.table("sessions")
    if sessions is None or not {"day", "instrument", "base"} <= set(sessions.columns):
        return None
    day = pd.to_datetime(sessions.day.astype(str)).to_numpy().astype("datetime64[D]")
    return pd.DataFrame({"day": day.astype(np.int64), "instrument": sessions.instrument
                         .to_numpy(dtype=np.int64), "base": sessions.base.to_numpy(float)})


def index_members(names: pd.DataFrame, index: str, entry: dict) -> np.ndarray:
    """The instruments an index holds as the venue counts them: the names of its market
    with shares; the futures proxy's, the KOSPI200 members among them, or KOSPI's."""
    held = names[(names.shares > 0) & names.market.isin(MARKETS)]
    if index == PROXY:
        source = entry.get("follows", "KOSPI")
        held = held[held.kospi200] if source == "KOSPI200" else held[held.market == "KOSPI"]
    else:
        held = held[held.market == index]
    return held.instrument.to_numpy(dtype=np.int64)


def index_path(run: Run, names: pd.DataFrame, members: np.ndarray,
               bases: pd.DataFrame) -> pd.DataFrame:
    """ts, day and the index's return vs the day's prior close after every print of its
    names: the sum of shares x last price over the sum of shares x base, the last price
    being the day's base until the name's first print."""
    shares = names.set_index("instrument").shares
    t = run.trades[run.trades.instrument.isin(members)]
    t = t.sort_values("ts", kind="stable")
    inst = t.instrument.to_numpy(dtype=np.int64)
    day = _day(t.ts.to_numpy())
    frame = pd.DataFrame({"ts": t.ts.to_numpy(dtype=np.int64), "day": day,
                          "instrument": inst, "price": t.price.to_numpy(float)})
    frame = frame.merge(bases, on=["day", "instrument"], how="left", sort=False)
    if frame.base.isna().any():
        bad = frame[frame.base.isna()].iloc[0]
        raise ValueError(f"{run.path / 'sessions.parquet'}: no session of instrument "
                         f"{int(bad.instrument)} on the day of its print at ts {int(bad.ts)}")
    before = frame.groupby(["day", "instrument"], sort=False).price.shift(1)
    frame["w"] = frame.instrument.map(shares).to_numpy(float)
    frame["delta"] = frame.w * (frame.price - before.fillna(frame.base))
    held = bases[bases.instrument.isin(members)].assign(
        w=lambda b: b.instrument.map(shares).to_numpy(float))
    den = (held.w * held.base).groupby(held.day).sum()
    frame["den"] = frame.day.map(den)
    frame["num"] = frame.den + frame.groupby("day", sort=False).delta.cumsum()
    frame["ret"] = frame.num / frame.den - 1
    return frame[["ts", "day", "ret"]]


def indices_section(run: Run) -> Section | None:
    """The indices through the run's days, with their halts, sidecars and stages, and a
    table of each index's levels and events from summary.json."""
    indices = run.summary.get("indices")
    if not indices:
        return None
    parts: list[str | Plot] = [index_table(indices)]
    names, bases = constituents(run), _bases(run)
    if names is None or bases is None:
        why = ("summary.json has no market.constituents (a run directory written before "
               "they were recorded)" if names is None else "the run has no sessions.parquet")
        parts.append(f"<p>The indices are not drawn through the day: {html.escape(why)}.</p>")
    else:
        parts.append(index_figure(run, indices, names, bases))
    return Section("indices", "Indices", tuple(parts))


def index_table(indices: dict) -> str:
    rows = []
    for name, ix in indices.items():
        events = "; ".join(f"{e['kind'].replace('_', ' ')} {e['time_seoul']}-"
                           f"{e['release_time_seoul']} at {e['level']:,.2f} "
                           f"({e['return']:+.2%})" for e in ix.get("events", [])) or "–"
        given = "" if ix.get("prior_close_given") else " (rebased: none given)"
        rows.append((name, cell(ix.get("names")), f"{ix['prior_close']:,.2f}{given}",
                     f"{ix['close']:,.2f}", cell(ix["close_return"], "%"),
                     f"{ix['low']:,.2f}", cell(ix["low_return"], "%"), events))
    return html_table(("index", "names", "prior close (points)", "close (points)",
                       "close vs prior (%)", "low (points)", "low vs prior (%)",
                       f"circuit breakers and sidecars ({TZ_LABEL})"), rows)


def halt_bands(ix: dict) -> list[Band]:
    """An index's circuit-breaker halts, from its start to its release, as summary.json
    records them."""
    return [Band(int(e["ts_ns"]), int(e["release_ts_ns"]),
                 f"{e['kind'].replace('_', ' ')} {e['time_seoul']}-{e['release_time_seoul']}"
                 f", {e['level']:,.2f} ({e['return']:+.2%})")
            for e in ix.get("events", []) if e["kind"].startswith("circuit_breaker")]


def index_figure(run: Run, indices: dict, names: pd.DataFrame,
                 bases: pd.DataFrame) -> Plot:
    """One panel per market index, in % of each day's prior close; the futures proxy on
    KOSPI's panel (dotted) with its sidecars marked."""
    from venues.krx.venue import KrxRules

    markets = [m for m in MARKETS if m in indices]
    panels = markets or [PROXY]
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=[f"{m} (% of the prior close)" for m in panels])
    stages = [(f"stage {k + 1}: -{bp / 100:g}%", -bp / 100)
              for k, bp in enumerate(KrxRules().cb_stages_bp)]
    notes, stamps = [], [np.array([run.end_ts])]
    for name, ix in indices.items():
        row = panels.index(name) + 1 if name in panels else 1
        path = index_path(run, names, index_members(names, name, ix), bases)
        if name == PROXY:
            scale = 1 + ix.get("basis_bp", 0) / 1e4
            path = path.assign(ret=(1 + path.ret) * scale - 1)
        stamps.append(path.ts.to_numpy())
        x, y, note = held_line(path.ts.to_numpy(), 100 * path.ret.to_numpy(), INDEX_POINTS,
                               run.end_ts)
        label = (f"{PROXY} (futures proxy of {ix.get('follows', 'KOSPI')}, basis "
                 f"{ix.get('basis_bp', 0)} bp)" if name == PROXY else name)
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", name=label,
            line={"width": 1.2, "color": INDEX_COLOURS.get(name, "#444"), "shape": "hv",
                  "dash": "dot" if name == PROXY else "solid"},
            hovertemplate="%{x|%m-%d %H:%M:%S}<br>%{y:.2f}%<extra>" + html.escape(name)
                          + "</extra>"), row=row, col=1)
        if note:
            notes.append(f"{name}: {note}")
        closes = path.groupby("day").ret.last()
        venue_days = [d["close_return"] for d in ix.get("days", [])]
        notes.append(f"{name} closes (recomputed / the venue's): " + ", ".join(
            f"{c:+.2%} / {v:+.2%}" for c, v in zip(closes, venue_days, strict=False)))
        if name in panels:
            add_bands(fig, halt_bands(ix), row=row)
            add_levels(fig, stages, row=row)
        sidecars = [e for e in ix.get("events", []) if e["kind"].startswith("sidecar")]
        if sidecars:
            fig.add_trace(go.Scatter(
                x=wall_ms(np.array([e["ts_ns"] for e in sidecars])),
                y=[100 * e["return"] for e in sidecars], mode="markers+text",
                name=f"sidecar ({name})", text=[f"{e['kind'].replace('_', ' ')} "
                                                f"{e['time_seoul']}" for e in sidecars],
                textposition="bottom center",
                marker={"symbol": "star", "size": 12, "color": SIDECAR_COLOUR},
                hovertemplate="%{text}<br>%{y:.2f}%<extra></extra>"), row=row, col=1)
    fig.update_xaxes(type="date", rangebreaks=time_gaps(stamps))
    fig.update_xaxes(title_text=f"time ({TZ_LABEL})", row=len(panels), col=1)
    fig.update_yaxes(ticksuffix="%")
    _style(fig, height=300 + 220 * len(panels))
    caption = ("Each index after every print of its names, in % of the day's prior close, "
               "recomputed from the trade prints as the venue computes it "
               "(capitalisation-weighted over the names with shares); shaded: the "
               "circuit-breaker halts from trigger to release, with time and level; stars: "
               "sidecars; dashed: the stages (docs/reference/krx.md). " + "; ".join(notes)
               + ".")
    return Plot(fig, caption)


# -- the names' paths ------------------------------------------------------------------------

def forced_by_instrument(run: Run) -> pd.DataFrame | None:
    """Per instrument: forced orders, shares ordered and filled, value filled (in the
    instrument's price), sorted by value, then shares filled, then instrument."""
    forced = run.table("forced_orders")
    if forced is None:
        return None
    scale = _scales(run)
    f = forced.assign(value=forced.filled_qty * forced.avg_price.fillna(0)
                      * forced.instrument.map(scale).fillna(1.0))
    per = f.groupby("instrument").agg(orders=("qty", "size"), qty=("qty", "sum"),
                                      filled=("filled_qty", "sum"), value=("value", "sum"))
    per = per.reset_index()
    return per.sort_values(["value", "filled", "instrument"], ascending=[False, False, True],
                           kind="stable", ignore_index=True)


def drawn_names(run: Run) -> list[tuple[int, str]]:
    """(instrument, why) of the paths figure: the LARGEST by capitalisation at the first
    prior close, then the MOST_FORCED by value force-sold that are not already in."""
    names = constituents(run)
    chosen: list[tuple[int, str]] = []
    if names is not None:
        cap = names.assign(cap=names.shares * names.prior_close)
        cap = cap[cap.cap > 0].sort_values(["cap", "instrument"], ascending=[False, True])
        chosen = [(int(i), "largest") for i in cap.instrument.head(LARGEST)]
    else:
        symbols = {s: i for i, s in _symbols(run).items()}
        weights: dict[str, float] = {}
        for ix in (run.summary.get("indices") or {}).values():
            weights.update(ix.get("largest_weights", {}))
        chosen = [(symbols[s], "largest") for s in weights if s in symbols][:LARGEST]
    per = forced_by_instrument(run)
    if per is not None:
        have = {i for i, _ in chosen}
        more = [int(i) for i in per.instrument[per.filled > 0] if int(i) not in have]
        chosen += [(i, "most force-sold") for i in more[:MOST_FORCED]]
    return chosen


def paths_section(run: Run) -> Section | None:
    bases = _bases(run)
    if bases is None:
        return None
    chosen = drawn_names(run)
    if not chosen:
        return Section("names", "The names' paths", (
            "<p>No name to draw: none has shares outstanding (its capitalisation is not "
            "known: build the tape with a listing, docs/data-formats.md: listings) and none "
            "was force-sold.</p>",))
    symbols = _symbols(run)
    per = forced_by_instrument(run)
    sold = per.set_index("instrument").value if per is not None else pd.Series(dtype=float)
    fig = go.Figure()
    budget = max(PATH_POINTS // len(chosen), 500)
    notes, stamps = [], [np.array([run.end_ts])]
    for inst, why in chosen:
        t = run.trades[run.trades.instrument == inst].sort_values("ts", kind="stable")
        if t.empty:
            continue
        frame = pd.DataFrame({"day": _day(t.ts.to_numpy()), "instrument": inst})
        base = frame.merge(bases, on=["day", "instrument"], how="left").base.to_numpy()
        ret = 100 * (t.price.to_numpy(float) / base - 1)
        stamps.append(t.ts.to_numpy())
        x, y, note = held_line(t.ts.to_numpy(), ret, budget, run.end_ts)
        symbol = symbols.get(inst, str(inst))
        value = float(sold.get(inst, 0.0))
        label = f"{symbol} ({why}" + (f", {value:,.0f} {run.currency} force-sold)"
                                      if value else ")")
        fig.add_trace(go.Scatter(
            x=x, y=y, mode="lines", name=label,
            line={"width": 1, "shape": "hv", "dash": "solid" if why == "largest" else "dot"},
            hovertemplate="%{x|%m-%d %H:%M:%S}<br>%{y:.2f}%<extra>" + html.escape(symbol)
                          + "</extra>"))
        if note:
            notes.append(f"{symbol}: {note}")
    fig.update_xaxes(type="date", rangebreaks=time_gaps(stamps), title_text=f"time ({TZ_LABEL})")
    fig.update_yaxes(ticksuffix="%", title_text="% of the day's prior close")
    _style(fig, height=480)
    largest = sum(why == "largest" for _, why in chosen)
    caption = (f"The {largest} largest names by capitalisation at the first prior close "
               f"(solid; no name without shares outstanding counts) and the "
               f"{len(chosen) - largest} most force-sold by value among the others "
               "(dotted), each in % of its own prior close of the day, on one time axis.")
    if notes:
        caption += " Thinned: " + "; ".join(notes) + "."
    return Section("names", "The names' paths", (Plot(fig, caption),))


# -- forced sales by name and generation -----------------------------------------------------

def name_rows(run: Run, per: pd.DataFrame) -> pd.DataFrame:
    """The NAME_BARS names with the most value force-sold, one row each, and the rest as
    one "others (k names)" row, so that the rows add up to the run's forced sales."""
    symbols = _symbols(run)
    top = per.head(NAME_BARS).assign(
        label=lambda p: [symbols.get(int(i), str(i)) for i in p.instrument])
    rest = per.iloc[NAME_BARS:]
    if len(rest):
        others = pd.DataFrame({"instrument": [-1], "orders": [rest.orders.sum()],
                               "qty": [rest.qty.sum()], "filled": [rest.filled.sum()],
                               "value": [rest.value.sum()],
                               "label": [f"others ({len(rest):,} names)"]})
        top = pd.concat([top, others], ignore_index=True)
    return top


def forced_by_name_section(run: Run) -> Section | None:
    """Forced sales by name (value and shares), and by generation across names."""
    per = forced_by_instrument(run)
    if per is None:
        return None
    rows = name_rows(run, per)
    money = run.currency
    table = html_table(
        ("name", "forced orders", "shares ordered", "shares force-sold",
         f"value force-sold ({money})", "of all value force-sold (%)"),
        [(r.label, cell(int(r.orders)), cell(int(r.qty)), cell(int(r.filled)),
          cell(float(r.value)), cell(float(r.value) / max(per.value.sum(), 1.0), "%"))
         for r in rows.itertuples()]
        + [("all names", cell(int(per.orders.sum())), cell(int(per.qty.sum())),
            cell(int(per.filled.sum())), cell(float(per.value.sum())), cell(1.0, "%"))])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.add_trace(go.Bar(x=rows.label, y=rows.value, name=f"value force-sold ({money})",
                         marker_color="#d62728",
                         hovertemplate="%{x}<br>%{y:,.0f} " + money + "<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Bar(x=rows.label, y=rows.filled, name="shares force-sold",
                         marker_color="#ff7f0e",
                         hovertemplate="%{x}<br>%{y:,} shares<extra></extra>"), row=2, col=1)
    fig.update_yaxes(title_text=f"value ({money})", tickformat=",", row=1, col=1)
    fig.update_yaxes(title_text="shares", tickformat=",", row=2, col=1)
    fig.update_xaxes(type="category")
    _style(fig, height=520)
    first = Plot(fig, f"Value and shares force-sold per name: the {NAME_BARS} names with the "
                      "most value, the rest summed as one bar that says how many names it "
                      "holds.")
    return Section("forced-names", "Forced sales by name",
                   (table, first, *generation_parts(run, per, rows)))


def generation_parts(run: Run, per: pd.DataFrame, rows: pd.DataFrame) -> list[str | Plot]:
    """Shares force-sold per name, stacked by cascade generation, and per generation the
    names it sold in: generations count across names (a sale of A that breaks an account
    through its holding of B is one generation later in B)."""
    forced = run.table("forced_orders")
    shown = set(rows.instrument[rows.instrument >= 0].astype(int))
    label = {int(i): lab for i, lab in zip(rows.instrument, rows.label, strict=True)}
    other = rows.label.iloc[-1] if (rows.instrument < 0).any() else None
    key = forced.instrument.map(lambda i: label[int(i)] if int(i) in shown else other)
    grid = forced.assign(name=key).groupby(["generation", "name"]).filled_qty.sum()
    generations = sorted(int(g) for g in forced.generation.unique())
    fig = go.Figure()
    for g in generations:
        y = [int(grid.get((g, lab), 0)) for lab in rows.label]
        fig.add_trace(go.Bar(x=list(rows.label), y=y, name=f"generation {g}",
                             marker_color=_generation_colour(g, generations),
                             hovertemplate="%{x}<br>%{y:,} shares<extra>generation " + str(g)
                                           + "</extra>"))
    fig.update_layout(barmode="stack", showlegend=True)  # named even with one generation
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="shares force-sold", tickformat=",")
    _style(fig, height=440)
    scale = _scales(run)
    value = forced.filled_qty * forced.avg_price.fillna(0) * forced.instrument.map(scale)
    f = forced.assign(value=value)
    table = html_table(
        ("generation", "names sold in it", "shares force-sold", f"value ({run.currency})"),
        [(cell(g), cell(int(x[x.filled_qty > 0].instrument.nunique())),
          cell(int(x.filled_qty.sum())), cell(float(x.value.sum())))
         for g, x in f.groupby("generation", sort=True)])
    return [Plot(fig, "Shares force-sold per name, stacked by cascade generation "
                      "(generations run across names)."), table]


# -- the population split --------------------------------------------------------------------

def split_section(run: Run) -> Section | None:
    """How each ``[market]`` population laid its balances: per market, the concentration
    group against the rest, and per name, beside what the run force-sold there."""
    splits = run.summary.get("population_split")
    if not splits:
        return None
    parts: list[str | Plot] = []
    for spec, split in splits.items():
        parts.append(f"<h3>{html.escape(Path(spec).name)}</h3>")
        rows = []
        for m, info in split.get("markets", {}).items():
            credit = int(info.get("credit_krw", 0))
            group = info.get("concentrate_krw")
            rows.append((m, cell(credit), str(info.get("credit_source", "")),
                         cell(info.get("names")), str(info.get("weight", "")),
                         ", ".join(info.get("concentrate_codes", [])) or "–",
                         cell(group), cell(info.get("concentrate_held"), "%"),
                         cell(credit - group if group is not None else None),
                         cell(info.get("misu_krw")), cell(info.get("cfd_krw")),
                         cell(info.get("left_out_krw"))))
        parts.append(html_table(
            ("market", "credit (won)", "from", "names", "split by", "group of names",
             "group's credit (won)", "group's share (%)", "the other names' credit (won)",
             "미수, unpaid purchases (won)", "CFD (won)", "left out (won)"), rows))
        accounts = split.get("accounts", {})
        if accounts:
            parts.append(f"<p>Accounts drawn: {cell(accounts.get('accounts'))}, of which "
                         f"portfolio accounts {cell(accounts.get('portfolio_accounts'))}; "
                         f"positions {cell(accounts.get('positions'))}.</p>")
        parts.append(_split_names(run, split))
    return Section("split", "Population split", tuple(parts))


def _split_names(run: Run, split: dict) -> str:
    """The names holding the most credit, with their 미수, CFD and the value force-sold in
    them; the rest as one row."""
    table = split.get("names")
    if not table:
        return ""
    names = pd.DataFrame(table["rows"], columns=table["columns"])
    names = names.assign(total=names.credit_krw + names.misu_krw + names.cfd_krw)
    names = names.sort_values(["total", "code"], ascending=[False, True], kind="stable")
    by_symbol = {s: i for i, s in _symbols(run).items()}
    per = forced_by_instrument(run)
    sold = per.set_index("instrument").value if per is not None else pd.Series(dtype=float)
    value = names.code.map(lambda c: float(sold.get(by_symbol.get(c, -1), 0.0)))
    names = names.assign(sold=value)
    rows = [(r.code, r.market, r.rule, cell(int(r.credit_krw)), cell(int(r.misu_krw)),
             cell(int(r.cfd_krw)), cell(float(r.sold)))
            for r in names.head(SPLIT_ROWS).itertuples()]
    rest = names.iloc[SPLIT_ROWS:]
    if len(rest):
        rows.append((f"others ({len(rest):,} names)", "", "", cell(int(rest.credit_krw.sum())),
                     cell(int(rest.misu_krw.sum())), cell(int(rest.cfd_krw.sum())),
                     cell(float(rest.sold.sum()))))
    return html_table(("name", "market", "rule", "credit (won)", "미수 (won)", "CFD (won)",
                       f"value force-sold ({run.currency})"), rows)
