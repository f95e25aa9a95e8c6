"""``sweep.html``: what a sweep found, for a reader (docs/sweeps.md: the sweep page).

From the top: a headline (the spec, the cells ok and failed, the axes, the baseline, and
one sentence on the largest paired effect on the drawdown the forced sales added and on
the shares force-sold); each variant's paired difference against the baseline, per key
figure, with its bootstrap interval (replay.sweep.stats), as a table and as intervals;
each variant's tails (the 95th and 99th percentiles of the drawdowns, the chance of a
limit-locked-down session and of a circuit breaker); each key figure's distribution over
the days and seeds, a box per variant with its cells as points; and the cells behind them,
each with the one command that re-makes its full run directory. A click on a point shows
its cell. Failed cells are counted at the top, listed with their error, and left out of
every statistic. Drawn with the render kit the run report shares (replay/render/), so
values read alike and the page opens offline; the same table gives the same bytes.
``cascade sweep report DIR`` draws it again from the directory's files (:func:`redraw`).
"""

from __future__ import annotations

import html
import json
import math
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from replay.comparison_page import COLUMNS, colour
from replay.render.cells import MISSING, cell, currency_of, with_unit, words
from replay.render.page import Page, Plot, html_table
from replay.sweep.stats import (
    LEVEL,
    PAIR_AXES,
    QUANTILES,
    RESAMPLES,
    SEED,
    paired_differences,
    tail_figures,
)

#: The figures the page draws and differences, in its order, where the table has them.
KEY_FIGURES = ("forced_volume", "forced_value", "excess_drawdown", "max_drawdown",
               "accounts_force_sold", "accounts_wiped_out", "broker_shortfall",
               "limit_locked_days", "circuit_breakers", "index_return", "strategy_return")
#: The figures the headline's sentence reads.
HEADLINE_FIGURES = ("excess_drawdown", "forced_volume")
#: Figure -> (name, unit): the comparison page's, and the two it does not show.
NAMES: dict[str, tuple[str, str]] = {
    **COLUMNS, "index_return": ("KOSPI close vs its prior close", "%"),
    "strategy_return": ("strategy: return", "%")}
#: Cells listed in the table, at most; a larger sweep lists its failed cells, then the
#: first ok ones in the spec's order, and says so.
MAX_ROWS = 2000
#: A variant with at most this many ok cells has every cell drawn as a point; a larger one
#: the cells beyond its box's whiskers farthest from its median, at most MAX_OUTLIERS.
ALL_POINTS = 400
MAX_OUTLIERS = 200
#: Fewer pairs than this and the headline calls the interval rough: a bootstrap of n pairs
#: cannot reach past their smallest and largest difference.
FEW_PAIRS = 10
#: The command that re-makes a cell's full run directory (replay.sweep.run: ``only``).
COMMAND = "cascade sweep {spec} -o {out} --cell {key} --keep-runs"

CSS = """
p.note { color: #444; } p.headline { font-size: 15px; }
div.wide { overflow-x: auto; }
div.numbers td { text-align: right; font-variant-numeric: tabular-nums;
                 white-space: nowrap; }
div.numbers td:first-child, div.keys2 td:nth-child(2) { text-align: left; }
table.cells td { white-space: nowrap; } table.cells tr.run td { border-bottom-color: #ccc;
  padding-top: 0; white-space: normal; color: #555; } table.cells code { font-size: 12px; }
table.cells tbody tr:first-child td { border-bottom: none; } table.cells .error { color: #a00; }
table.cells tbody.failed td { background: #fdf0f0; }
table.cells tbody.picked td { background: #fff1b8; }
div.picked { border: 1px solid #e0c060; background: #fff8dc; padding: 6px 10px;
             margin: 0 0 16px; } div.picked code { font-size: 12px; }
"""

#: A click on a cell's point scrolls to its row of the table, or, when the table does not
#: list it, shows it (its axes, key and command) under the figure. Hooked once the figures
#: are drawn (replay.render.page sets data-plots).
_CLICKS = """
(() => {
  const root = document.documentElement;
  const extra = JSON.parse(document.getElementById("sweep-cells").textContent);
  const box = document.getElementById("picked-cell");
  const show = (row) => {
    for (const old of document.querySelectorAll("tbody.picked")) old.classList.remove("picked");
    const rows = document.getElementById("cell-" + row);
    if (rows) {
      box.hidden = true;
      rows.classList.add("picked");
      rows.scrollIntoView({block: "center"});
      return;
    }
    const [key, label, status] = extra[row];
    const command = box.dataset.before + key + box.dataset.after;
    box.replaceChildren();
    const line = document.createElement("div");
    line.textContent = `cell ${row + 1}: ${label}, ${status}, key ${key} (not in the ` +
                       "table below; cells.parquet has every cell)";
    const code = document.createElement("code");
    code.textContent = command;
    box.append(line, code);
    box.hidden = false;
  };
  const hook = () => {
    const div = document.getElementById("chart-distributions");
    if (div && div.on) div.on("plotly_click", (event) => {
      const p = event.points && event.points[0];
      if (p && typeof p.customdata === "number") show(p.customdata);
    });
  };
  if (root.dataset.plots === "drawn") hook();
  else new MutationObserver((_, watch) => {
    if (root.dataset.plots !== "loading") { watch.disconnect(); hook(); }
  }).observe(root, {attributes: true, attributeFilter: ["data-plots"]});
})();
"""


def write_page(out: Path, frame: pd.DataFrame, info: dict) -> Path:
    """Write ``out/sweep.html`` (atomically) for the cells ``frame`` (cells.parquet) and
    ``info`` (sweep.json: ``spec``, ``baseline``, ``axes``, ``cells``); returns its path."""
    from replay.rundir import write_text

    return write_text(Path(out) / "sweep.html", sweep_html(Path(out), frame, info))


def redraw(out: Path) -> Path:
    """Write ``out/sweep.html`` again from ``out/cells.parquet`` and ``out/sweep.json``
    (``cascade sweep report DIR``); a missing or unreadable file is an error naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    cells, summary = out / "cells.parquet", out / "sweep.json"
    for path in (cells, summary):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file; is {out} a sweep directory "
                                    "(cascade sweep SPEC -o DIR writes it)?")
    try:
        frame = pq.read_table(cells).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{cells}: not a cells table ({exc})") from None
    missing = [c for c in ("variant", *PAIR_AXES, "status", "error", "key")
               if c not in frame.columns]
    if missing:
        raise ValueError(f"{cells}: no column {', '.join(missing)}; not a sweep's cells table")
    try:
        info = json.loads(summary.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{summary}: not JSON ({exc})") from None
    absent = [k for k in ("spec", "baseline", "axes", "cells")
              if not isinstance(info, dict) or k not in info]
    if absent:
        raise ValueError(f"{summary}: no key {', '.join(absent)}; not a sweep's summary")
    return write_page(out, frame, info)


def sweep_html(out: Path, frame: pd.DataFrame, info: dict) -> str:
    """The page for the sweep in ``out``."""
    frame = frame.reset_index(drop=True)
    baseline = str(info["baseline"])
    currency = currency_of(info.get("venue") or _venue(frame))
    ok = frame[frame["status"] == "ok"]
    drawn, skipped = split_figures(ok, [f for f in KEY_FIGURES if f in frame.columns],
                                   currency)
    diffs = pd.concat([paired_differences(frame, baseline, f) for f in drawn],
                      ignore_index=True) if drawn else pd.DataFrame()
    spec_name = Path(str(info["spec"])).name
    variants = list(frame["variant"].drop_duplicates())
    page = Page(f"sweep {spec_name}", CSS)
    page.add(headline(frame, info, spec_name), "<p class='headline'>"
             + html.escape(effect_sentence(diffs, baseline, drawn, skipped, currency,
                                           len(info["axes"]["variants"]), len(ok)))
             + "</p>")
    failed = len(frame) - len(ok)
    page.add("<p class='note'>" + html.escape(
        (f"{_count(failed, 'cell')} failed: left out of every statistic and figure on this "
         f"page, listed with {'its error' if failed == 1 else 'their errors'} in the cells "
         "table. " if failed else "")
        + "Statistics are over the ok cells only.") + "</p>")
    if skipped:
        page.add("<p class='note'>Not drawn or differenced: "
                 + html.escape(_skipped_line(skipped, currency)) + ".</p>")

    page.add("<h2>Paired differences against the baseline</h2>",
             f"<p class='note'>{html.escape(_method(baseline))}</p>")
    if len(diffs):
        page.add("<div class='numbers keys2'>" + differences_table(diffs, currency)
                 + "</div>")
        page.plot(Plot(interval_chart(diffs, baseline, variants, currency),
                       f"Each variant's mean difference from {baseline} with its "
                       f"{LEVEL:.0%} bootstrap interval; the line is no difference."),
                  "chart-differences")
    else:
        page.add("<p>No figure to difference.</p>")

    page.add("<h2>Tails</h2>", "<div class='numbers'>" + tails_table(frame) + "</div>",
             "<p class='note'>" + html.escape(
                 "Per variant, over its ok cells (the days and seeds): the 95th and 99th "
                 "percentiles (linear interpolation) of the max drawdown and of the drawdown "
                 "the forced sales added; the share of cells with a limit-locked-down "
                 "session and with a circuit breaker, of the cells with a value (– where "
                 "the venue gives none: the generic venue has no limits and no circuit "
                 "breakers).") + "</p>")

    page.add("<h2>Distributions over days and seeds</h2>")
    shown = table_rows(frame)
    extra: dict[int, list[str]] = {}
    if drawn:
        fig, points = distribution_chart(ok, drawn, variants, currency)
        page.plot(Plot(fig, _distribution_caption(points, len(ok), len(drawn))),
                  "chart-distributions")
        listed = set(shown.tolist())
        unlisted = [r for r in points if r not in listed]
        if unlisted:
            part = frame.loc[unlisted]
            extra = {r: list(c) for r, c in zip(unlisted, zip(
                part["key"].astype(str).str[:16].tolist(), _labels(part).tolist(),
                part["status"].astype(str).tolist(), strict=True), strict=True)}
    else:
        page.add("<p>No figure varies across the ok cells.</p>")
    before, _, after = COMMAND.format(spec=shlex.quote(str(info["spec"])),
                                      out=shlex.quote(str(out.resolve())),
                                      key="\0").partition("\0")  # no path holds NUL
    page.add(f"<div id='picked-cell' class='picked' hidden "
             f"data-before='{html.escape(before, quote=True)}' "
             f"data-after='{html.escape(after, quote=True)}'></div>")

    page.add("<h2>Cells</h2>", "<p class='note'>" + html.escape(_rows_note(frame, shown))
             + "</p>",
             "<div class='wide'>" + cells_table(frame, shown, drawn, info, out, currency)
             + "</div>",
             "<script type='application/json' id='sweep-cells'>"
             + json.dumps(extra, sort_keys=True).replace("</", "<\\/") + "</script>",
             f"<script>{_CLICKS}</script>")
    return page.html()


# -- the headline --------------------------------------------------------------------------

def headline(frame: pd.DataFrame, info: dict, spec_name: str) -> str:
    """The spec, its cells (ok and failed), its axes' sizes and its baseline."""
    axes = info["axes"]
    ok = int((frame["status"] == "ok").sum())
    recorded = "" if len(frame) == info["cells"] else \
        f" ({len(frame):,} of the spec's {info['cells']:,} cells have a record)"
    sizes = ", ".join(_count(len(axes[k]), k[:-1]) for k in ("variants", "tapes",
                                                             "populations", "modes"))
    sizes += ", " + _count(int(axes["seeds"]), "seed")
    text = (f"{_count(len(frame), 'cell')}: {ok:,} ok, {len(frame) - ok:,} failed{recorded}. "
            f"Axes: {sizes}. Baseline: {info['baseline']}.")
    return (f"<h1>cascade sweep: {html.escape(spec_name)}</h1>"
            f"<p class='note'>{html.escape(str(info['spec']))}</p>"
            f"<p>{html.escape(text)}</p>")


def effect_sentence(diffs: pd.DataFrame, baseline: str, drawn: list[str],
                    skipped: dict[str, str], currency: str, variants: int,
                    ok_cells: int) -> str:
    """One sentence: for each of :data:`HEADLINE_FIGURES`, the variant whose mean paired
    difference from the baseline is largest in size, with its interval and whether the
    interval excludes 0."""
    if variants < 2:
        return f"The sweep has one variant, {baseline}: there is nothing to difference."
    if not ok_cells:
        return "No cell is ok: there is nothing to measure."
    parts = []
    for figure in HEADLINE_FIGURES:
        if figure in skipped:
            parts.append(f"{NAMES[figure][0]} is {skipped[figure]}")
            continue
        if figure not in drawn:  # not a column of the table
            continue
        rows = diffs[(diffs.figure == figure) & (diffs.pairs > 0)]
        if not len(rows):
            parts.append(f"for {NAMES[figure][0]}, no variant has a pair with {baseline} "
                         "(both cells ok)")
            continue
        best = rows.loc[rows["mean"].abs().idxmax()]
        unit = _unit(figure)
        if best["mean"] == 0:
            parts.append(f"for {NAMES[figure][0]}, every variant's mean paired difference "
                         f"from {baseline} is 0")
            continue
        if math.isnan(best["low"]):
            interval = "one pair, so no interval"
        else:
            interval = (f"{LEVEL:.0%} CI {_diff(best.low, unit, currency)} to "
                        f"{_diff(best.high, unit, currency)}, which "
                        + ("excludes 0" if best.excludes_zero else "includes 0")
                        + ("; with so few pairs the interval is rough"
                           if best.pairs < FEW_PAIRS else ""))
        parts.append(f"for {NAMES[figure][0]}, the variant that differs most from "
                     f"{baseline} on average is {best.variant}: "
                     f"{_diff(best['mean'], unit, currency)} over "
                     f"{_count(int(best.pairs), 'pair')} ({interval})")
    if not parts:
        return "Neither the drawdown the forced sales added nor the shares force-sold is in " \
               "the table."
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def split_figures(ok: pd.DataFrame, figures: list[str],
                  currency: str) -> tuple[list[str], dict[str, str]]:
    """The figures that vary across the ok cells (drawn), and why each other one is not:
    no ok cell has it, or it is the same in every ok cell that has it (with the value)."""
    drawn, skipped = [], {}
    for figure in figures:
        values = pd.to_numeric(ok[figure], errors="coerce").dropna()
        if not len(values):
            skipped[figure] = "missing in every ok cell"
        elif values.nunique() == 1:
            skipped[figure] = (f"{cell(values.iloc[0], _unit(figure))} in every ok cell"
                               + (" that has it" if len(values) < len(ok) else ""))
        else:
            drawn.append(figure)
    return drawn, skipped


def _skipped_line(skipped: dict[str, str], currency: str) -> str:
    return "; ".join(f"{_name(f, currency)}: {why}" for f, why in skipped.items())


def _method(baseline: str) -> str:
    return (f"For each variant and figure: the mean of (variant − {baseline}) over the pairs, "
            f"the cells that share {', '.join(PAIR_AXES)} and are both ok with the figure; "
            f"the {LEVEL:.0%} interval is the {(1 - LEVEL) / 2:.1%} to {(1 + LEVEL) / 2:.1%} "
            f"percentiles of that mean over {RESAMPLES:,} bootstrap resamples of the pairs "
            f"(with replacement, numpy default_rng({SEED})), none for a single pair. "
            f"With few pairs (under {FEW_PAIRS}) the interval is rough: it cannot reach past "
            "the smallest and largest difference of the pairs. Left out: the variant's cells "
            "without such a pair. A difference of a share (%) is in percentage points (pp).")


# -- tables --------------------------------------------------------------------------------

def differences_table(diffs: pd.DataFrame, currency: str) -> str:
    rows = []
    for r in diffs.itertuples(index=False):  # one row per (figure, variant): few
        unit = _unit(r.figure)
        none = math.isnan(r.low)
        rows.append((_name(r.figure, currency), r.variant, cell(r.pairs), cell(r.left_out),
                     cell(r.baseline_mean, unit), _diff(r.mean, unit, currency),
                     MISSING if none else f"{_diff(r.low, unit, currency)} to "
                                          f"{_diff(r.high, unit, currency)}",
                     MISSING if none else ("yes" if r.excludes_zero else "no")))
    return html_table(("figure", "variant", "pairs", "left out", "baseline mean",
                       "mean difference", f"{LEVEL:.0%} CI", "CI excludes 0"), rows)


def tails_table(frame: pd.DataFrame) -> str:
    t = tail_figures(frame)
    rows = []
    for r in t.to_dict("records"):  # one row per variant
        row = [r["variant"], cell(r["cells"])]
        for figure in ("max_drawdown", "excess_drawdown"):
            row += [cell(r[f"{figure}_p{round(q * 100)}"], "%") for q in QUANTILES]
        for name in ("p_limit_locked", "p_circuit_breaker"):
            n = r[f"{name}_cells"]
            row.append(MISSING if not n else
                       f"{cell(r[name], '%')} ({round(r[name] * n):,} of {n:,})")
        rows.append(row)
    header = ["variant", "ok cells"]
    for figure in ("max drawdown", "added drawdown"):
        header += [f"{figure} p{round(q * 100)} (%)" for q in QUANTILES]
    header += ["P(limit-locked session)", "P(circuit breaker)"]
    return html_table(header, rows)


def table_rows(frame: pd.DataFrame) -> np.ndarray:
    """The rows the cells table lists: all, in the spec's order, up to :data:`MAX_ROWS`;
    else the failed cells, then the first ok ones."""
    if len(frame) <= MAX_ROWS:
        return np.arange(len(frame))
    failed = np.flatnonzero((frame["status"] != "ok").to_numpy())
    ok = np.flatnonzero((frame["status"] == "ok").to_numpy())
    return np.concatenate([failed, ok])[:MAX_ROWS]


def _rows_note(frame: pd.DataFrame, shown: np.ndarray) -> str:
    text = ("Each row's command re-makes the cell's full run directory, DIR/runs/KEY16 "
            "(KEY16: the first 16 hex digits of the cell's key; cascade report draws it). ")
    if len(shown) == len(frame):
        return text + f"All {_count(len(frame), 'cell')}, in the spec's order."
    failed = int((frame["status"] != "ok").sum())
    which = (f"the {failed:,} failed, then the first ok ones in the spec's order"
             if failed < len(shown) else
             f"the first {len(shown):,} of the {failed:,} failed in the spec's order")
    return text + (f"{len(shown):,} of {len(frame):,} cells shown: {which}; cells.parquet "
                   "holds them all, and a click on any point of the distributions shows "
                   "its cell.")


def cells_table(frame: pd.DataFrame, shown: np.ndarray, figures: list[str], info: dict,
                out: Path, currency: str) -> str:
    """The cells ``shown``: a row of axes, status and ``figures``, and under it the
    command that re-makes the cell's run directory (and a failed cell's error); each cell's
    two rows a tbody ``cell-<row>``, for the clicks."""
    part = frame.iloc[shown]
    columns = [("cell", [str(r + 1) for r in shown], True)]
    for axis in ("variant", *PAIR_AXES, "status"):
        columns.append((axis, [cell(v) for v in part[axis]], axis == "seed"))
    for figure in figures:
        unit = _unit(figure)
        columns.append((_name(figure, currency), [cell(v, unit) for v in part[figure]], True))
    spec, where = shlex.quote(str(info["spec"])), shlex.quote(str(out.resolve()))
    errors = ["" if e is None or (isinstance(e, float) and math.isnan(e)) else str(e)
              for e in part["error"]]
    commands = [COMMAND.format(spec=spec, out=where, key=str(k)[:16]) for k in part["key"]]
    head = "".join(f"<th>{html.escape(name)}</th>" for name, _, _ in columns)
    body = []
    for i, row in enumerate(shown):
        tds = "".join(f"<td class='num'>{html.escape(values[i])}</td>" if numeric else
                      f"<td>{html.escape(values[i])}</td>" for _, values, numeric in columns)
        failed = " class='failed'" if part["status"].iat[i] != "ok" else ""
        error = (f"<div class='error'>{html.escape(errors[i])}</div>" if errors[i] else "")
        body.append(f"<tbody id='cell-{row}'{failed}><tr>{tds}</tr><tr class='run'><td></td>"
                    f"<td colspan='{len(columns) - 1}'>{error}<code>"
                    f"{html.escape(commands[i])}</code></td></tr></tbody>")
    return (f"<table class='cells'><thead><tr>{head}</tr></thead>{''.join(body)}</table>")


# -- figures -------------------------------------------------------------------------------

def interval_chart(diffs: pd.DataFrame, baseline: str, variants: list[str],
                   currency: str) -> go.Figure:
    """One panel per figure: each variant's mean difference and its interval (a variant
    coloured by its place in ``variants``, as in the distributions)."""
    figures = list(dict.fromkeys(diffs.figure))
    fig = make_subplots(rows=len(figures), cols=1, vertical_spacing=0.35 / len(figures),
                        subplot_titles=[f"{_name(f, currency)}: variant − {baseline}"
                                        + (" (pp)" if _unit(f) == "%" else "")
                                        for f in figures])
    for i, figure in enumerate(figures, start=1):
        d = diffs[diffs.figure == figure]
        scale = 100.0 if _unit(figure) == "%" else 1.0
        unit = _unit(figure)
        text = [f"{_diff(m, unit, currency)} over {_count(n, 'pair')}"
                + ("" if math.isnan(lo) else f"; {LEVEL:.0%} CI {_diff(lo, unit, currency)} "
                                             f"to {_diff(hi, unit, currency)}")
                for m, n, lo, hi in zip(d["mean"], d.pairs, d.low, d.high, strict=True)]
        fig.add_trace(go.Scatter(
            x=d["mean"] * scale, y=d.variant, mode="markers", text=text, showlegend=False,
            marker={"size": 9, "color": [colour(variants.index(v)) for v in d.variant]},
            error_x={"type": "data", "symmetric": False, "array": (d.high - d["mean"]) * scale,
                     "arrayminus": (d["mean"] - d.low) * scale, "thickness": 1.5},
            hovertemplate="%{y}: %{text}<extra></extra>"), row=i, col=1)
        fig.add_vline(x=0, row=i, col=1, line={"color": "#888", "dash": "dash", "width": 1})
        fig.update_yaxes(autorange="reversed", type="category", row=i, col=1)
        fig.update_xaxes(tickformat="+,", row=i, col=1)
    fig.update_layout(height=len(figures) * (70 + 26 * (len(variants) - 1)) + 60,
                      template="plotly_white", margin={"t": 40})
    return fig


def distribution_chart(ok: pd.DataFrame, figures: list[str], variants: list[str],
                       currency: str) -> tuple[go.Figure, list[int]]:
    """A panel per figure: a box per variant (quartiles, whiskers to the furthest cell
    within 1.5 IQR, mean) and its cells as points (all, or for a large variant those
    beyond the whiskers farthest from the median); a point's customdata is its row of the
    table. ``variants``: the order (and colours) of the boxes. Returns the figure and the
    rows drawn as points (sorted)."""
    code = pd.Series(pd.Categorical(ok.variant, categories=variants).codes, index=ok.index)
    labels = _labels(ok)
    ncols = 2 if len(figures) > 1 else 1
    nrows = -(-len(figures) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, vertical_spacing=0.3 / nrows,
                        horizontal_spacing=0.08,
                        subplot_titles=[_name(f, currency) for f in figures])
    rows = np.asarray(ok.index, dtype=np.int64)
    jitter = 0.32 * (np.modf(rows * 0.6180339887498949)[0] - 0.5)
    points: set[int] = set()
    for i, figure in enumerate(figures):
        at = {"row": i // ncols + 1, "col": i % ncols + 1}
        values = pd.to_numeric(ok[figure], errors="coerce").astype("float64")
        box = _box_stats(values, code, len(variants))
        pick = _points(values, code, box)
        pct = _unit(figure) == "%"
        fmt = ":.2%" if pct else ":,"
        for k, name in enumerate(variants):
            if not box["n"][k]:
                continue
            fig.add_trace(go.Box(
                x=[k], q1=[box["q1"][k]], median=[box["median"][k]], q3=[box["q3"][k]],
                lowerfence=[box["low"][k]], upperfence=[box["high"][k]],
                mean=[box["mean"][k]], boxmean=True, name=name, showlegend=False,
                marker_color=colour(k), line={"width": 1.2}, width=0.6,
                hoverinfo="y"), **at)
            mine = pick & (code.to_numpy() == k)
            points.update(rows[mine].tolist())
            fig.add_trace(go.Scatter(
                x=k + jitter[mine], y=values.to_numpy()[mine], mode="markers", name=name,
                customdata=rows[mine], text=labels.to_numpy()[mine], showlegend=False,
                marker={"size": 5, "color": colour(k), "opacity": 0.6},
                hovertemplate=f"{html.escape(name, quote=False)}<br>%{{text}}<br>"
                              f"%{{y{fmt}}}<br>click: its cell<extra></extra>"), **at)
        fig.update_xaxes(tickvals=list(range(len(variants))), ticktext=variants,
                         range=[-0.6, len(variants) - 0.4], **at)
        fig.update_yaxes(tickformat=".1%" if pct else ",", **at)
    fig.update_layout(height=nrows * 300 + 60, template="plotly_white", margin={"t": 40})
    return fig, sorted(points)


def _box_stats(values: pd.Series, code: pd.Series, n: int) -> dict[str, np.ndarray]:
    """Per variant code 0..n-1: count, quartiles (linear, as plotly's own), mean, and the
    whiskers: the furthest values within 1.5 IQR of the quartiles."""
    g = values.groupby(code)
    stat = {name: s.reindex(range(n)).to_numpy() for name, s in (
        ("n", g.count()), ("q1", g.quantile(0.25)), ("median", g.median()),
        ("q3", g.quantile(0.75)), ("mean", g.mean()))}
    stat["n"] = np.nan_to_num(stat["n"]).astype(np.int64)
    iqr = stat["q3"] - stat["q1"]
    c = code.to_numpy()
    lo, hi = (stat["q1"] - 1.5 * iqr)[c], (stat["q3"] + 1.5 * iqr)[c]
    v = values.to_numpy()
    inside = pd.Series(np.where((v >= lo) & (v <= hi), v, np.nan), index=values.index)
    stat["low"] = inside.groupby(code).min().reindex(range(n)).to_numpy()
    stat["high"] = inside.groupby(code).max().reindex(range(n)).to_numpy()
    return stat


def _points(values: pd.Series, code: pd.Series, box: dict[str, np.ndarray]) -> np.ndarray:
    """Which cells are drawn as points: every cell of a variant with at most
    :data:`ALL_POINTS`; else those beyond the whiskers, the :data:`MAX_OUTLIERS` farthest
    from the median."""
    c = code.to_numpy()
    v = values.to_numpy()
    has = ~np.isnan(v)
    small = box["n"][c] <= ALL_POINTS
    beyond = has & ((v < box["low"][c]) | (v > box["high"][c]))
    far = pd.Series(np.where(beyond & ~small, np.abs(v - box["median"][c]), np.nan))
    rank = far.groupby(c).rank(method="first", ascending=False).to_numpy()
    return has & (small | (rank <= MAX_OUTLIERS))


def _distribution_caption(points: list[int], cells: int, figures: int) -> str:
    return (f"Each box: a variant's ok cells, its quartiles, whiskers to the furthest cell "
            f"within 1.5 IQR, and its mean (dashed). Points are cells: all of a variant's "
            f"when it has at most {ALL_POINTS:,}, else at most {MAX_OUTLIERS:,} beyond the "
            f"whiskers, those farthest from the median ({len(points):,} of the {cells:,} ok "
            f"cells are a point in at least one of the {figures} panels). Click a point for "
            "its cell.")


# -- words and numbers ---------------------------------------------------------------------

def _labels(part: pd.DataFrame) -> pd.Series:
    """A cell's axes but its variant, as one line: ``crash · credit · relative · seed 3``."""
    return (part["tape"].astype(str) + " · " + part["population"].astype(str) + " · "
            + part["mode"].astype(str) + " · seed " + part["seed"].astype(str))


def _venue(frame: pd.DataFrame) -> str | None:
    """The KRX venue when a cell has its figures (the generic venue gives no limit-locked
    sessions: missing, never 0), else unknown."""
    if "limit_locked_days" in frame.columns and frame["limit_locked_days"].notna().any():
        return "krx"
    return None


def _unit(figure: str) -> str:
    return NAMES.get(figure, ("", ""))[1]


def _name(figure: str, currency: str) -> str:
    return with_unit(*NAMES.get(figure, (words(figure), "")), currency)


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _diff(value: Any, unit: str, currency: str) -> str:
    """A difference with its sign and unit: ``+1.23 pp`` for a share (%), ``+12,000
    shares``, ``-3 won``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    value = float(value)
    if unit == "%":
        text = f"{value * 100:+.3g} pp" if value else "0 pp"
    else:
        text = cell(value)
        text = f"+{text}" if value > 0 else text
        text += {"won": f" {currency}", "shares": " shares"}.get(unit, "")
    return text
