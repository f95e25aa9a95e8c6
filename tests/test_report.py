"""``cascade report``: the page drawn from the shipped small-cap CFD unwind's run directory
(tests/test_broker_scenario.py), with a hand-made strategy, injected orders, circuit
breakers or another venue added to copies of it. The figures are inspected as plotly builds
them (their data and layout), the page as HTML, and, where Chromium is installed, as a
browser draws it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.report import (
    Plot,
    broker_rows,
    build_sections,
    halt_table,
    read_run,
    thin,
    write_report,
)
from tests.render_report import find_chromium, plot_counts, render

EXAMPLES = Path(__file__).resolve().parents[1] / "brokers" / "examples"
needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="no chromium, chromium-browser or google-chrome on PATH (or CASCADE_CHROMIUM)")
#: A report page's bound: plotly.js packed (about 2 MB) and the thinned data.
PAGE_BYTES = 3_000_000


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, unwind_tape) -> Path:
    run = tmp_path_factory.mktemp("report") / "run"
    r = CliRunner().invoke(app, ["replay", str(unwind_tape), "--venue", "krx", "--mode",
                                 "relative", "--broker", "cfd", "--population",
                                 str(EXAMPLES / "unwind-heavy.csv"), "-o", str(run)])
    assert r.exit_code == 0, r.output
    return run


def copy_run(run_dir: Path, to: Path, summary: dict | None = None) -> Path:
    """A copy of the run directory, its summary.json updated with ``summary``."""
    shutil.copytree(run_dir, to)
    if summary is not None:
        s = json.loads((to / "summary.json").read_text())
        s.update(summary)
        (to / "summary.json").write_text(json.dumps(s))
    return to


@pytest.fixture(scope="module")
def strategy_run(run_dir, tmp_path_factory) -> Path:
    """The run with a strategy's equity and events written beside it: it buys 10,000 shares
    at the first trade and its equity is recorded only then, at two margin calls and at the
    end, as a strategy without bars or timers records it."""
    run = tmp_path_factory.mktemp("strategy") / "run"
    shutil.copytree(run_dir, run)
    trades = pd.read_parquet(run / "trades.parquet").sort_values("ts", kind="stable")
    first, last = trades.iloc[0], trades.iloc[-1]
    shares = 10_000
    loan = shares * int(first.price) - 20_000_000  # 20 M won of equity at the start

    def snapshot(ts):
        held = shares * trades.price[trades.ts <= ts].iloc[-1]
        return (ts, held - loan, 0.0, loan, held, held / (held - loan), held / loan)

    ts = [int(first.ts), int(trades.ts.iloc[len(trades) // 3]),
          int(trades.ts.iloc[len(trades) // 2]), int(last.ts)]
    equity = pd.DataFrame([snapshot(t) for t in ts],
                          columns=["ts", "equity", "cash", "loan", "position_value",
                                   "leverage", "collateral_ratio"])
    equity.to_parquet(run / "strategy_equity.parquet")
    pd.DataFrame({"ts": [ts[0], ts[1], ts[1], ts[2], ts[2], ts[3]],
                  "kind": ["fill", "margin_call", "margin_call", "call_ended", "liquidation",
                           "deposit"],
                  "instrument": [int(first.instrument), -1, -1, -1, 1, -1],
                  "side": ["buy", "", "", "", "sell", ""], "qty": [shares, 0, 0, 0, 150, 0],
                  "price": [int(first.price), 0, 0, 0, 3420, 0],
                  "detail": ["", "ratio 1.35", "ratio 1.31 <b>", "topped up",
                             "sold at the lower limit", "5,000,000 won"]}).to_parquet(
        run / "strategy_events.parquet")
    summary = json.loads((run / "summary.json").read_text())
    summary["strategy"] = {"name": "Hand", "initial_cash": 20e6, "final_equity": 20e6,
                           "return": -0.6, "fills": 1, "margin_calls": 2, "liquidations": 1,
                           "max_leverage": 2.5, "kind": "credit"}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def plots(run: Path, section: str) -> list[Plot]:
    found = [s for s in build_sections(read_run(run)) if s.id == section]
    return [p for s in found for p in s.parts if isinstance(p, Plot)]


def traces(plot: Plot, name: str) -> list:
    return [t for t in plot.figure.data if t.name == name]


def section_ids(page: str) -> list[str]:
    return re.findall(r"<section id='([a-z]+)'>", page)


def kst_ms(ts_ns) -> np.ndarray:
    """Epoch ns as the milliseconds of the Seoul wall clock a date axis shows."""
    stamps = pd.to_datetime(np.atleast_1d(np.asarray(ts_ns, dtype=np.int64)), utc=True)
    return stamps.tz_convert("Asia/Seoul").tz_localize(None).asi8 / 1e6


# -- the price path --------------------------------------------------------------------------

def test_price_path_draws_the_run_and_its_counterfactual_with_their_extremes(run_dir):
    (price,) = plots(run_dir, "price")
    (real,) = traces(price, "with the forced sales")
    (without,) = traces(price, "without the forced sales (counterfactual)")
    trades = pd.read_parquet(run_dir / "trades.parquet")
    cf = pd.read_parquet(run_dir / "counterfactual_trades.parquet")
    # thinned to the low and high of time buckets: the limit-down low survives
    assert len(real.y) < len(trades) and len(without.y) < len(cf)
    assert (real.y.min(), real.y.max()) == (trades.price_natural.min(), trades.price_natural.max())
    assert (without.y.min(), without.y.max()) == (cf.price.min(), cf.price.max())
    assert real.y.min() < without.y.min()  # the forced sales took the price lower
    assert "Thinned" in price.caption and "KST" in price.caption


@pytest.fixture(scope="module")
def provider_run(tmp_path_factory, unwind_tape) -> Path:
    """The unwind with the liquidity provider: its bids at the lower limit pull day 4's
    opening uncross to the limit, and the run trades no more after that day while the
    counterfactual trades to the last close."""
    run = tmp_path_factory.mktemp("report") / "lp"
    strategy = EXAMPLES.parents[1] / "strategies" / "liquidity_provider.py"
    r = CliRunner().invoke(app, ["replay", str(unwind_tape), "--venue", "krx", "--mode",
                                 "relative", "--broker", "cfd", "--population",
                                 str(EXAMPLES / "unwind-heavy.csv"), "--strategy",
                                 f"{strategy}:LiquidityProvider", "-o", str(run)])
    assert r.exit_code == 0, r.output
    return run


def test_the_price_line_runs_to_the_end_of_the_data(provider_run):
    # limit-locked, the run's own line prints its last trade a day before the end while the
    # counterfactual trades on to the close: both lines reach the end, at their last price
    run_dir = provider_run
    (price,) = plots(run_dir, "price")
    (real,) = traces(price, "with the forced sales")
    (without,) = traces(price, "without the forced sales (counterfactual)")
    trades = pd.read_parquet(run_dir / "trades.parquet").sort_values("ts", kind="stable")
    cf = pd.read_parquet(run_dir / "counterfactual_trades.parquet")
    assert trades.ts.max() < cf.ts.max() - 3600 * 10**9  # the case this pins
    # the end of the data: the last trade of either, or the strategy's last equity mark
    equity = pd.read_parquet(run_dir / "strategy_equity.parquet")
    end = max(trades.ts.max(), cf.ts.max(), equity.ts.max())
    assert real.x[-1] == kst_ms(end)[0] and without.x[-1] == kst_ms(end)[0]
    assert real.y[-1] == trades.price_natural.iloc[-1]


def test_forced_sales_are_drawn_at_their_fill_price_and_unfilled_ones_at_their_limit(run_dir):
    (price,) = plots(run_dir, "price")
    forced = pd.read_parquet(run_dir / "forced_orders.parquet")
    trades = pd.read_parquet(run_dir / "trades.parquet").sort_values("ts", kind="stable")
    filled = forced.filled_qty > 0
    at_trade = trades.price_natural.to_numpy()[
        np.searchsorted(trades.ts.to_numpy(), forced.ts.to_numpy(), side="right") - 1]
    # filled: the average fill price; not filled: the limit, a market order the price then
    want = np.where(filled, forced.avg_price, np.where(forced.limit_price > 0,
                                                       forced.limit_price, at_trade))
    weight = np.where(filled, forced.filled_qty, forced.qty)
    unfilled = ~filled
    assert (unfilled & (forced.limit_price > 0)).any()  # both kinds of unfilled order
    assert (unfilled & (forced.limit_price == 0)).any()
    assert "one marker per instant" in price.caption  # many orders: one marker per instant
    expected = (forced.assign(y=want * weight, w=weight, filled=filled,
                              market=forced.limit_price == 0)
                .groupby(["ts", "generation", "filled", "market"]).agg(y=("y", "sum"),
                                                                        w=("w", "sum")))
    for (gen, done), g in expected.groupby(level=["generation", "filled"]):
        (marks,) = traces(price, f"forced sales, generation {gen}"
                                 + ("" if done else ", not filled"))
        assert marks.marker.symbol == ("circle" if done else "circle-open")
        drawn = sorted(zip(marks.x, np.round(marks.y, 6), strict=True))
        wanted = sorted(zip(kst_ms(g.index.get_level_values("ts")),
                            np.round(g.y / np.maximum(g.w, 1), 6), strict=True))
        assert drawn == wanted
    assert sum(t.customdata[:, 0].sum() for t in price.figure.data
               if t.name.startswith("forced")) == len(forced)  # every order in a marker


def test_legends_name_only_what_is_drawn(run_dir, tmp_path):
    (price,) = plots(run_dir, "price")
    shown = [t.name for t in price.figure.data if t.showlegend is not False]
    assert len(shown) == len(set(shown))  # each once
    (cascade,) = plots(run_dir, "forced")
    assert all(np.asarray(t.y).any() for t in cascade.figure.data)  # no empty bars
    # a generation's "filled" entry is drawn only when some of its orders filled
    forced = pd.read_parquet(run_dir / "forced_orders.parquet")
    for g, orders in forced.groupby("generation"):
        assert bool(traces(cascade, f"generation {g} filled")) == bool(
            (orders.filled_qty > 0).any()), g
    bare = copy_run(run_dir, tmp_path / "bare")
    for stem in ("counterfactual_trades", "forced_orders", "accounts"):
        (bare / f"{stem}.parquet").unlink()
    s = json.loads((bare / "summary.json").read_text())
    for key in ("broker", "counterfactual"):
        del s[key]
    s["config"]["broker"] = None
    (bare / "summary.json").write_text(json.dumps(s))
    (price,) = plots(bare, "price")
    assert [t.name for t in price.figure.data if t.mode == "lines"] == ["trade price"]


def test_every_time_axis_and_table_is_in_kst(run_dir, tmp_path):
    # a generic-venue run is shown in Seoul time too (it used to be UTC)
    run = copy_run(run_dir, tmp_path / "generic", {"venue": "generic"})
    (price,) = plots(run, "price")
    assert price.figure.layout.xaxis.title.text is None or "KST" in (
        price.figure.layout.xaxis.title.text)
    bottom = [a for a in price.figure.layout if a.startswith("xaxis")][-1]
    assert price.figure.layout[bottom].title.text == "time (KST)"
    trades = pd.read_parquet(run / "trades.parquet")
    (real,) = traces(price, "trade price") or traces(price, "with the forced sales")
    assert real.x[0] == kst_ms(trades.ts.min())[0]
    page = write_report(run).read_text()
    forced = pd.read_parquet(run / "forced_orders.parquet")
    first = pd.Timestamp(forced.ts.min(), tz="UTC").tz_convert("Asia/Seoul")
    assert first.strftime("%Y-%m-%d %H:%M:%S") in page
    assert "first order (KST)" in page and "time (KST)" in page


def test_units_are_named_on_axes_and_in_tables(run_dir):
    (price,) = plots(run_dir, "price")
    assert price.figure.layout.yaxis.title.text == "SYNTH-SMALL price (won)"
    page = write_report(run_dir).read_text()
    for label in ("value force-sold (won)", "shares force-sold (filled) (shares)",
                  "broker shortfall (won)", "max drawdown (%)", "value filled (won)",
                  "lower limit (won)", "ask qty at lower limit (shares)"):
        assert f">{label}<" in page, label
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{summary['broker']['amplification']:.2%}" in page  # a share, as %


# -- the summary -----------------------------------------------------------------------------

def test_the_counterfactual_column_shows_it_sent_no_forced_order(run_dir):
    run = read_run(run_dir)
    rows = {label: (mine, theirs) for label, mine, theirs in broker_rows(run)}
    b, c = run.summary["broker"], run.summary["counterfactual"]
    assert c["forced_orders"] > 0  # the orders it held back are recorded ...
    assert rows["forced orders sent"] == (f"{b['forced_orders']:,}", "0")  # ... not sent
    assert rows["shares ordered by forced orders (shares)"][1] == "0"
    assert rows["forced orders due, not sent (the counterfactual's)"] == (
        "–", f"{c['forced_orders']:,}")
    page = write_report(run_dir).read_text()
    row = (f"<td>shares force-sold (filled) (shares)</td><td class='num'>"
           f"{b['forced_volume']:,}</td><td class='num'>{c['forced_volume']:,}</td>")
    assert row in page and f"{b['max_drawdown']:.2%}" in page


def test_broker_figures_are_read_through_one_mapping(run_dir, tmp_path):
    # figures renamed or added in summary.json: the known ones under their labels, the
    # rest under their own names, none dropped
    run = copy_run(run_dir, tmp_path / "renamed")
    s = json.loads((run / "summary.json").read_text())
    for side in ("broker", "counterfactual"):
        s[side]["accounts_called"] = 2661
        s[side]["accounts_ignored"] = {"misu": 3000}
        s[side]["accounts_topped_up"] = 12
    (run / "summary.json").write_text(json.dumps(s))
    labels = [label for label, _, _ in broker_rows(read_run(run))]
    assert "accounts called (margin call)" in labels
    assert "accounts force-sold (a fill)" in labels
    assert "accounts topped up" in labels
    rows = {label: mine for label, mine, _ in broker_rows(read_run(run))}
    assert rows["accounts of other kinds, not handled"] == "misu 3,000"
    assert labels.index("accounts called (margin call)") < labels.index("broker shortfall (won)")


# -- the venue -------------------------------------------------------------------------------

def test_circuit_breaker_rows_are_in_index_points(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "cb")
    events = pd.read_parquet(run / "venue_events.parquet")
    at = int(events.ts.iloc[0])
    cb = pd.DataFrame({"ts": [at], "instrument": [-1], "symbol": [""],
                       "kind": ["circuit_breaker_1"], "reference": [418_481_756_755_000],
                       "price": [344_456_453_135_000], "volume": [0],
                       "release_ts": [at + 1800 * 10**9], "index": [0.823110],
                       "threshold_bp": [800.0]})
    pd.concat([events, cb], ignore_index=True).to_parquet(run / "venue_events.parquet")
    html = halt_table(read_run(run), read_run(run).table("venue_events").tail(1))
    assert ">82.31<" in html and "index points (prior close = 100)" in html
    assert ">-17.69%<" in html and "344,456" not in html
    # with --index-prior-close the venue's index is in points; an older run directory
    # without the index column gets it from the constituents' sums
    s = json.loads((run / "summary.json").read_text())
    s["config"]["index_prior_close"] = 2700.0
    (run / "summary.json").write_text(json.dumps(s))
    for index in (2700 * 0.823110, None):
        cb["index"] = index
        pd.concat([events, cb], ignore_index=True).to_parquet(run / "venue_events.parquet")
        html = halt_table(read_run(run), read_run(run).table("venue_events").tail(1))
        assert ">2,700<" in html and ">2,222<" in html and ">index points<" in html


# -- the accounts ----------------------------------------------------------------------------

def test_cfd_accounts_are_drawn_in_margin_level_against_the_call_and_liquidation_levels(
        run_dir):
    (ratios,) = plots(run_dir, "ratios")
    (box,) = traces(ratios, "margin level")
    levels = sorted(round(s.y0, 9) for s in ratios.figure.layout.shapes)
    assert levels == [50.0, 70.0]  # cfd preset: liquidation 50%, call 70%
    accounts = pd.read_parquet(run_dir / "accounts.parquet")
    day = accounts[accounts.day == accounts.day.min()]
    debt = day.loan - day.cash
    level = 100 * (day.value - debt) / (0.4 * day.value)
    assert box.median[0] == pytest.approx(level[debt > 0].median())
    assert ratios.figure.layout.yaxis.ticksuffix == "%"


def test_credit_accounts_are_drawn_against_the_maintenance_ratio(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "credit")
    s = json.loads((run / "summary.json").read_text())
    # the rules as the run applied them (summary.json "rules") decide, whatever the config
    # names: a rules file may be gone or changed since
    from dataclasses import asdict

    from brokers.rules import load_rules

    s["rules"] = asdict(load_rules("krx-credit", ["maintenance_ratio=1.3"]))
    s["config"]["broker"], s["config"]["overrides"] = "/gone/rules.toml", []
    (run / "summary.json").write_text(json.dumps(s))
    (ratios,) = plots(run, "ratios")
    (box,) = traces(ratios, "collateral ratio")
    assert [round(s.y0, 9) for s in ratios.figure.layout.shapes] == [130.0]
    accounts = pd.read_parquet(run / "accounts.parquet")
    last = accounts[accounts.day == accounts.day.max()].collateral_ratio
    assert box.upperfence[-1] == pytest.approx(100 * last[np.isfinite(last)].max())
    page = write_report(run).read_text()
    assert "below maintenance ratio (accounts)" in page


# -- the strategy ----------------------------------------------------------------------------

def test_strategy_equity_is_marked_to_market_at_each_bar(strategy_run):
    (equity,) = plots(strategy_run, "strategy")
    (line,) = traces(equity, "equity")
    snaps = pd.read_parquet(strategy_run / "strategy_equity.parquet")
    trades = pd.read_parquet(strategy_run / "trades.parquet").sort_values("ts", kind="stable")
    assert len(line.x) > 10 * len(snaps)  # between its four snapshots, every bar
    # a bar between the first two snapshots: 10,000 shares at that bar's last trade
    x = np.asarray(line.x)
    bar = x[(x > kst_ms(snaps.ts.iloc[0])[0]) & (x < kst_ms(snaps.ts.iloc[1])[0])][5]
    k = int(np.flatnonzero(x == bar)[0])
    bar_ns = int(pd.Timestamp(bar, unit="ms").tz_localize("Asia/Seoul").value)
    px = trades.price[trades.ts <= bar_ns].iloc[-1]
    assert line.y[k] == pytest.approx(10_000 * px - snaps.loan.iloc[0])
    assert min(line.y) <= snaps.equity.min()  # the low between snapshots is drawn
    assert len(traces(equity, "margin call")[0].x) == 2
    assert len(traces(equity, "liquidation")[0].x) == 1
    assert len(traces(equity, "call ended")[0].x) == 1
    assert not traces(equity, "fill")
    page = write_report(strategy_run).read_text()
    assert "strategy" in section_ids(page)
    assert "ratio 1.31 &lt;b&gt;" in page and "ratio 1.31 <b>" not in page  # escaped


# -- injected orders -------------------------------------------------------------------------

def injected_run(run_dir: Path, to: Path) -> tuple[Path, pd.DataFrame]:
    """A copy whose injected.parquet ties three orders to an input file: one filled, one
    resting unfilled at its limit, one market order rejected; and a forced order's row
    (no input row), which is not the file's."""
    run = copy_run(run_dir, to)
    trades = pd.read_parquet(run / "trades.parquet").sort_values("ts", kind="stable")
    ts = trades.ts.to_numpy()
    orders = pd.DataFrame({
        "input_row": [2, 3, 4, None], "ts": [ts[100], ts[200], ts[300], ts[400]],
        "instrument": [1, 1, 1, 1], "symbol": ["SYNTH-SMALL"] * 4,
        "side": ["sell", "buy", "sell", "sell"], "type": ["limit", "limit", "market", "limit"],
        "limit_price": [5000, 4000, 0, 3420], "size": [500, 300, 200, 50],
        "filled": [500, 0, 0, 50], "filled_value": [2_600_000, 0, 0, 171_000],
        "avg_price": [5200.0, np.nan, np.nan, 3420.0],
        "status": ["filled", "resting", "rejected", "filled"],
        "reason": ["", "", "halted", ""]})
    orders.to_parquet(run / "injected.parquet")
    return run, orders


def test_injected_orders_are_marked_on_the_price(run_dir, tmp_path):
    run, orders = injected_run(run_dir, tmp_path / "injected")
    (price,) = plots(run, "price")
    (filled,) = traces(price, "injected orders, filled")
    (other,) = traces(price, "injected orders, not filled or rejected")
    assert list(filled.y) == [5200.0] and list(filled.marker.symbol) == ["triangle-down"]
    trades = pd.read_parquet(run / "trades.parquet").sort_values("ts", kind="stable")
    at_ts = trades.price_natural[trades.ts <= orders.ts[2]].iloc[-1]
    assert list(other.y) == [4000.0, at_ts]  # at its limit; a market order at the price
    assert list(other.marker.symbol) == ["triangle-up-open", "triangle-down-open"]
    assert "input row 3" in other.text[0] and "resting" in other.text[0]
    assert "rejected (halted)" in other.text[1]
    assert list(filled.x) == list(kst_ms(orders.ts[:1]))
    page = write_report(run).read_text()
    assert ("Orders injected from the input file: 3; filled 1, partly filled 0, not filled 1,"
            " rejected 1 (halted: 1).") in page


def test_a_run_directory_without_the_injected_columns_draws_no_injected_marks(run_dir,
                                                                              tmp_path):
    # a run directory written before injected.parquet carried its orders' input columns
    run = copy_run(run_dir, tmp_path / "older")
    table = pq.read_table(run / "injected.parquet")
    older = table.select(["filled", "status", "reason"])
    pq.write_table(older.replace_schema_metadata(table.schema.metadata),
                   run / "injected.parquet")
    (price,) = plots(run, "price")
    assert not [t for t in price.figure.data if t.name.startswith("injected")]


# -- the page --------------------------------------------------------------------------------

def test_page_is_self_contained_small_and_the_same_for_the_same_run(run_dir):
    first = write_report(run_dir).read_bytes()
    assert write_report(run_dir).read_bytes() == first
    page = first.decode()
    assert len(first) < PAGE_BYTES, f"{len(first):,} bytes"
    assert page.count("id='packed-plotly-js'") == 1 and "Plotly.newPlot(" in page
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "http" not in page  # plotly.js's own links are inside the packed bundle
    assert page.count("class='plotly-graph-div'") == 3
    assert section_ids(page) == ["summary", "price", "forced", "ratios", "venue", "run"]
    assert "vi_static" in page and "broker cfd" in page


def test_sections_are_left_out_when_their_files_are(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "bare")
    for stem in ("counterfactual_trades", "forced_orders", "accounts", "venue_events",
                 "sessions"):
        (run / f"{stem}.parquet").unlink()
    summary = json.loads((run / "summary.json").read_text())
    for key in ("broker", "counterfactual", "venue_summary"):
        del summary[key]
    (run / "summary.json").write_text(json.dumps(summary))
    page = write_report(run).read_text()
    assert section_ids(page) == ["price", "run"]
    (price,) = plots(run, "price")
    assert [t.name for t in price.figure.data] == ["trade price"]
    assert page.count("class='plotly-graph-div'") == 1
    assert page.count("id='packed-plotly-js'") == 1


@pytest.mark.parametrize("missing", ["summary.json", "trades.parquet"])
def test_a_missing_file_is_named(run_dir, tmp_path, missing):
    run = copy_run(run_dir, tmp_path / "run")
    (run / missing).unlink()
    with pytest.raises(ValueError, match=re.escape(missing)):
        write_report(run)


def test_an_unreadable_trades_file_is_named(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    (run / "trades.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="trades.parquet: unreadable"):
        write_report(run)


def test_cli_prints_the_report_path_or_the_missing_file(run_dir, tmp_path):
    r = CliRunner().invoke(app, ["report", str(run_dir)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == str(run_dir / "report.html")
    r = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 2 and "summary.json" in r.output


def test_thinning_keeps_each_buckets_low_and_high_and_both_ends():
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 6 * 3600 * 10**9, 500_000))
    values = rng.normal(size=len(ts)).cumsum()
    keep, note = thin(ts, values, 10_000)
    assert len(keep) <= 10_000 and np.all(np.diff(keep) > 0)
    assert values.argmin() in keep and values.argmax() in keep
    assert keep[0] == 0 and keep[-1] == len(ts) - 1
    assert note.startswith(f"500,000 → {len(keep):,} points")
    assert thin(ts[:100], values[:100], 10_000)[1] is None


@needs_chromium
def test_page_renders_in_chromium_without_errors(strategy_run, tmp_path):
    run, _ = injected_run(strategy_run, tmp_path / "all")
    dom, errors = render(write_report(run))
    assert errors == []
    assert plot_counts(dom) == (4, 4)  # price, cascade, ratios, strategy: all drawn
    assert "data-plots=\"drawn\"" in dom


@needs_chromium
def test_the_chromium_check_catches_errors(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("""<html><body><div class="plotly-graph-div"></div>
<script>console.log("fine"); console.error("logged-error");</script>
<script>setTimeout(() => { throw new Error("late-throw"); }, 50);</script>
<script>Promise.reject(new Error("rejected"));</script>
<img src="http://127.0.0.1:9/x.png">
<script>throw new Error("uncaught-now");</script></body></html>""")
    dom, errors = render(page)
    text = "\n".join(errors)
    for expected in ("console.error: logged-error", "late-throw", "rejected", "uncaught-now",
                     "request leaves the machine: http://127.0.0.1:9/x.png"):
        assert expected in text
    assert "fine" not in text
    assert plot_counts(dom) == (1, 0)  # a figure div plotly never drew


@needs_chromium
def test_a_packed_page_that_cannot_draw_says_so(run_dir, tmp_path):
    page = tmp_path / "broken.html"
    text = write_report(run_dir).read_text()
    start = text.index("id='packed-figures'>") + len("id='packed-figures'>")
    page.write_text(text[:start] + "AAAA" + text[text.index("</script>", start):])
    dom, errors = render(page)
    assert any(e.startswith("console.error") for e in errors)
    assert "data-plots=\"failed\"" in dom and "The figure could not be drawn" in dom
