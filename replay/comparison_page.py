"""``comparison.html``: the rule variants of one ``cascade compare`` side by side, for a reader.

One column per variant, one row per figure, each figure with its unit (won, shares, %) and
a readable name, so the key figures fit a 1280 px window without scrolling; a line saying
what the variants' runs differ in (their rules, and anything else their configs show);
a bar chart per figure that is not zero in every variant (those are named in a line, not
drawn); the max drawdown with and without the forced sales; and each variant's price path
against the common counterfactual, in Seoul time. Drawn with the render kit the run report
shares (replay/render/): values and units read as in a report, lines thinned alike, and
plotly.js packed once, inline, so the page opens offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pyarrow.parquet as pq
from plotly.subplots import make_subplots

from replay.render.cells import cell, currency_of, hover, with_unit, words
from replay.render.clock import TZ, TZ_LABEL, time_gaps
from replay.render.page import Page, Plot, html_table
from replay.render.thinning import held_line

#: The comparison table's columns as the page names them: column -> (name, unit). The one
#: place their names are read; a column not listed is shown under its own name, without a
#: unit. "won" is the currency at the KRX venue.
COLUMNS: dict[str, tuple[str, str]] = {
    "forced_volume": ("shares force-sold", "shares"),
    "forced_value": ("value force-sold", "won"),
    "amplification": ("amplification (force-sold / the tape's sell volume)", "%"),
    "max_drawdown": ("max drawdown", "%"),
    "counterfactual_max_drawdown": ("max drawdown without the forced sales", "%"),
    "excess_drawdown": ("drawdown the forced sales added", "%"),
    "accounts_called": ("accounts called", ""),
    "accounts_force_ordered": ("accounts with a forced order", ""),
    "accounts_force_sold": ("accounts force-sold", ""),
    "accounts_wiped_out": ("accounts wiped out", ""),
    "broker_shortfall": ("broker shortfall", "won"),
    "limit_locked_days": ("limit-locked-down sessions", ""),
    "vi_count": ("volatility interruptions (VI)", ""),
    "circuit_breakers": ("circuit breakers", ""),
    "max_generation": ("deepest cascade generation", "generation"),
    "strategy_final_equity": ("strategy: final equity", "won"),
    "strategy_margin_calls": ("strategy: margin calls", ""),
    "strategy_liquidations": ("strategy: forced sales", ""),
}
#: Columns that name the variant rather than measure it.
KEYS = ("label", "broker", "overrides", "run_dir")
#: The config keys every variant of a comparison shares; a difference is said on the page.
SHARED = ("tape", "population", "seed", "mode", "venue", "inject", "index_prior_close",
          "strategy", "strategy_params")
CAPTIONS = {
    "drawdown": "The largest fall from a running peak of the trade price, with the forced "
                "sales, without them (the counterfactual: the same tape and seed, no forced "
                "order sent), and the difference.",
    "figures": "Each figure of the table that is not zero in every variant, one bar per "
               "variant.",
    "prices": "Grey: the counterfactual, common to every variant. Each line is held at its "
              "last trade to the end of the data; long paths keep the first, last, lowest "
              "and highest trade of each time bucket.",
}
#: Price-path points drawn in all, and instruments drawn.
MAX_POINTS = 20_000
MAX_INSTRUMENTS = 4

#: The page's own style, after the render kit's (replay/render/page.py): the variants'
#: columns right-aligned, in tabular figures, each cell on one line.
CSS = """
p.note { color: #444; }
th, td { text-align: right; } td:first-child, th:first-child { text-align: left; }
td { font-variant-numeric: tabular-nums; white-space: nowrap; }
"""


def comparison_html(table: pd.DataFrame, instruments, venue: str, title: str) -> str:
    """The page for the comparison ``table`` (replay/compare.py: one row per variant, with
    each variant's run directory)."""
    currency = currency_of(venue)
    configs = [run_config(Path(d)) for d in table.run_dir]
    measured = [c for c in table.columns if c not in KEYS]
    zero = [c for c in measured if _all_zero(table[c])]
    page = Page(title, CSS)
    page.add(f"<h1>cascade compare</h1><p>{html.escape(title)}</p>",
             f"<p class='note'>{html.escape(differences(table, configs))}</p>",
             figures_table(table, currency))
    if zero:
        page.add("<p class='note'>Zero in every variant, so not drawn: "
                 + html.escape(", ".join(_name(c, currency) for c in zero)) + ".</p>")
    for name, fig in (("drawdown", drawdown_chart(table)),
                      ("figures", figure_charts(table, [c for c in measured if c not in zero
                                                        and "drawdown" not in c], currency)),
                      ("prices", price_chart(table, instruments, venue, currency))):
        if fig is not None:
            page.plot(Plot(fig, CAPTIONS[name]), f"chart-{name}")
    return page.html()


def figures_table(table: pd.DataFrame, currency: str) -> str:
    """The figures as rows, the variants as columns: a few variants fit any screen."""
    rows = [("rules", *(_rules(b, o) for b, o in zip(table.broker, table.overrides,
                                                      strict=True)))]
    for column in table.columns:
        if column in KEYS:
            continue
        unit = _unit(column)
        rows.append((_name(column, currency), *(cell(v, unit) for v in table[column])))
    return html_table(("", *(str(v) for v in table.label)), rows)


def differences(table: pd.DataFrame, configs: list[dict[str, Any]]) -> str:
    """What the variants' runs differ in: their rules, and any other config key (a strategy
    in one and not another, another seed, tape or population), from each run's
    summary.json."""
    labels = [str(v) for v in table.label]
    rules = "; ".join(f"{label}: {_rules(b, o)}" for label, b, o in
                      zip(labels, table.broker, table.overrides, strict=True))
    text = f"The variants differ in their rules ({rules})"
    other = config_differences(labels, configs)
    if other:
        return text + ", and also in " + " | ".join(other) + "."
    same = configs[0] if configs else {}
    facts = [f"{k} {_plain(same.get(k))}" for k in ("tape", "population", "seed", "mode",
                                                      "venue") if k in same]
    strategy = same.get("strategy")
    facts.append(f"strategy {strategy}" if strategy else "no strategy")
    return text + "; everything else is the same: " + ", ".join(facts) + "."


def config_differences(labels: list[str], configs: list[dict[str, Any]],
                       keys: tuple[str, ...] = SHARED) -> list[str]:
    """Each of ``keys`` on which the runs' configs (summary.json's ``config``) differ, as
    ``"strategy: a none; b strategies.credit_momentum:CreditMomentum"``: why two runs of
    "the same" case give different figures."""
    out = []
    for key in keys:
        values = [c.get(key) for c in configs]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            out.append(f"{key}: " + "; ".join(
                f"{label} {_plain(v)}" for label, v in zip(labels, values, strict=True)))
    return out


def drawdown_chart(table: pd.DataFrame) -> go.Figure | None:
    if "max_drawdown" not in table:
        return None
    fig = go.Figure([go.Bar(name=name, x=table.label, y=table[column].astype(float),
                            hovertemplate="%{x}: %{y:.2%}<extra>" + name + "</extra>")
                     for column, name in (("max_drawdown", "with the forced sales"),
                                          ("counterfactual_max_drawdown",
                                           "without them (counterfactual)"),
                                          ("excess_drawdown", "added by the forced sales"))
                     if column in table])
    fig.update_layout(barmode="group", title="Max drawdown (%)", yaxis_tickformat=".0%",
                      height=380, template="plotly_white", showlegend=True)
    return fig


def figure_charts(table: pd.DataFrame, columns: list[str], currency: str) -> go.Figure | None:
    """A bar per variant for each figure in ``columns`` (not the all-zero ones)."""
    columns = [c for c in columns if pd.to_numeric(table[c], errors="coerce").notna().any()]
    if not columns:
        return None
    ncols = 2
    nrows = -(-len(columns) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, vertical_spacing=0.5 / nrows,
                        subplot_titles=[_name(c, currency) for c in columns])
    for i, column in enumerate(columns):
        unit = _unit(column)
        values = pd.to_numeric(table[column], errors="coerce").astype(float)
        fig.add_trace(go.Bar(x=table.label, y=values, name=_name(column, currency),
                             marker_color=[colour(k) for k in range(len(table))],
                             showlegend=False,
                             hovertemplate="%{x}: %{y" + (":.2%" if unit == "%" else ":,")
                                           + "}<extra></extra>"),
                      row=i // ncols + 1, col=i % ncols + 1)
        if unit == "%":
            fig.update_yaxes(tickformat=".1%", row=i // ncols + 1, col=i % ncols + 1)
        else:
            fig.update_yaxes(tickformat=",", row=i // ncols + 1, col=i % ncols + 1)
    fig.update_layout(title="Figures per variant", height=260 * nrows + 80,
                      template="plotly_white")
    return fig


def price_chart(table: pd.DataFrame, instruments, venue: str,
                currency: str) -> go.Figure | None:
    """Each variant's trade price over time and the counterfactual's (the same for every
    variant: same tape and seed, no forced order), for the instruments the broker sold most
    (at most :data:`MAX_INSTRUMENTS`), each line to the end of the data."""
    run_dirs = [Path(d) for d in table.run_dir]
    sold: dict[int, int] = {}
    for d in run_dirs:
        if not (d / "forced_orders.parquet").exists():
            continue
        forced = pq.read_table(d / "forced_orders.parquet").to_pandas()
        for inst, qty in forced.groupby("instrument").filled_qty.sum().items():
            sold[int(inst)] = sold.get(int(inst), 0) + int(qty)
    ids = sorted(sold, key=lambda i: (-sold[i], i)) or [i.instrument_id for i in instruments]
    ids = ids[:MAX_INSTRUMENTS]
    if not ids:
        return None
    columns = ["ts", "instrument", "price"]
    paths = []
    if (run_dirs[0] / "counterfactual_trades.parquet").exists():
        # the counterfactual first, wide and grey, so the variants that did not move the
        # price are drawn on top of it
        paths.append(("without the forced sales (counterfactual)",
                      pq.read_table(run_dirs[0] / "counterfactual_trades.parquet",
                                    columns=columns).to_pandas(),
                      {"width": 4, "color": "rgba(0,0,0,0.3)"}))
    paths += [(str(label), pq.read_table(d / "trades.parquet", columns=columns).to_pandas(),
               {"width": 1.3, "color": colour(k)})
              for k, (label, d) in enumerate(zip(table.label, run_dirs, strict=True))]
    end = max(int(p.ts.max()) for _, p, _ in paths if len(p))
    budget = max(500, MAX_POINTS // (len(paths) * len(ids)))
    fig = make_subplots(rows=len(ids), cols=1, shared_xaxes=True,
                        subplot_titles=[instruments[i].symbol for i in ids])
    for row, inst in enumerate(ids, start=1):
        scale = 10.0 ** -instruments[inst].price_decimals
        for label, trades, line in paths:
            g = trades[trades.instrument == inst]
            x, px, _ = held_line(g.ts.to_numpy(), g.price.to_numpy(dtype=float) * scale,
                                 budget, end)
            fig.add_trace(go.Scatter(x=x, y=px, name=label, mode="lines",
                                     line={"shape": "hv", **line}, legendgroup=label,
                                     showlegend=row == 1,
                                     hovertemplate="%{x|%m-%d %H:%M:%S}<br>%{y:,} " + currency
                                                   + "<extra>" + hover(label)
                                                   + "</extra>"), row=row, col=1)
        fig.update_yaxes(title_text=f"price ({currency})", tickformat=",", row=row, col=1)
    fig.update_xaxes(type="date", rangebreaks=time_gaps([p.ts.to_numpy() for _, p, _ in paths]))
    fig.update_xaxes(title_text=f"time ({TZ_LABEL})", row=len(ids), col=1)
    fig.update_layout(title=f"Trade price ({TZ_LABEL}, {TZ}): each variant and the "
                            "counterfactual, held to the end of the data",
                      height=max(420, 320 * len(ids)), template="plotly_white",
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "x": 0})
    return fig


def colour(k: int) -> str:
    """Variant ``k``'s colour, the same in every chart."""
    return f"hsl({(k * 137) % 360},55%,45%)"


def run_config(run_dir: Path) -> dict[str, Any]:
    """A run's config from its summary.json, with the seed it used (a config's seed None
    means the tape's own); {} when the summary cannot be read."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    config = dict(summary.get("config") or {})
    if summary.get("seed") is not None:
        config["seed"] = summary["seed"]
    return config


def _rules(broker: Any, overrides: Any) -> str:
    text = str(broker)
    return f"{text} with {overrides}" if isinstance(overrides, str) and overrides else text


def _plain(value: Any) -> str:
    if value is None or value == {} or value == []:
        return "none"
    if isinstance(value, str) and ("/" in value or "\\" in value):
        return Path(value).name
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)


def _unit(column: str) -> str:
    return COLUMNS.get(column, ("", ""))[1]


def _name(column: str, currency: str) -> str:
    return with_unit(*COLUMNS.get(column, (words(column), "")), currency)


def _all_zero(values: pd.Series) -> bool:
    numbers = pd.to_numeric(values, errors="coerce")
    return bool(numbers.notna().all() and (numbers == 0).all())
