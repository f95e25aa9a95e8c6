"""``cascade report``: the page drawn from the shipped small-cap CFD unwind's run directory
(tests/test_broker_scenario.py), with a hand-made strategy added to a copy of it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.report import Plot, build_sections, read_run, thin, write_report
from tests.render_report import find_chromium, plot_counts, render

EXAMPLES = Path(__file__).resolve().parents[1] / "brokers" / "examples"
needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="no chromium, chromium-browser or google-chrome on PATH (or CASCADE_CHROMIUM)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, unwind_tape) -> Path:
    run = tmp_path_factory.mktemp("report") / "run"
    r = CliRunner().invoke(app, ["replay", str(unwind_tape), "--venue", "krx", "--mode",
                                 "relative", "--broker", "cfd", "--population",
                                 str(EXAMPLES / "unwind-heavy.csv"), "-o", str(run)])
    assert r.exit_code == 0, r.output
    return run


@pytest.fixture(scope="module")
def strategy_run(run_dir, tmp_path_factory) -> Path:
    """The run with a strategy's equity and events written beside it."""
    run = tmp_path_factory.mktemp("strategy") / "run"
    shutil.copytree(run_dir, run)
    trades = pd.read_parquet(run / "trades.parquet", columns=["ts"])
    ts = np.linspace(trades.ts.min(), trades.ts.max(), 400).astype(np.int64)
    equity = np.linspace(50e6, 20e6, len(ts))
    pd.DataFrame({"ts": ts, "equity": equity, "cash": 0.0, "loan": 30e6,
                  "position_value": equity + 30e6, "leverage": (equity + 30e6) / equity,
                  "collateral_ratio": (equity + 30e6) / 30e6}).to_parquet(
        run / "strategy_equity.parquet")
    kinds = ["fill", "fill", "margin_call", "margin_call", "call_ended", "liquidation"]
    pd.DataFrame({"ts": ts[[5, 50, 200, 300, 320, 390]], "kind": kinds, "instrument": 1,
                  "side": ["buy", "buy", "", "", "", "sell"], "qty": [100, 50, 0, 0, 0, 150],
                  "price": [6000, 5900, 0, 0, 0, 3420],
                  "detail": ["", "", "ratio 1.35", "ratio 1.31 <b>", "topped up",
                             "sold at the lower limit"]}).to_parquet(
        run / "strategy_events.parquet")
    summary = json.loads((run / "summary.json").read_text())
    summary["strategy"] = {"name": "Hand", "initial_cash": 50e6, "final_equity": 20e6,
                           "return": -0.6, "fills": 2, "margin_calls": 2, "liquidations": 1,
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


def test_price_path_draws_the_run_and_its_counterfactual_with_their_extremes(run_dir):
    (price,) = plots(run_dir, "price")
    (real,) = traces(price, "with the forced sales")
    (without,) = traces(price, "without (counterfactual)")
    trades = pd.read_parquet(run_dir / "trades.parquet")
    cf = pd.read_parquet(run_dir / "counterfactual_trades.parquet")
    # thinned to the low and high of time buckets: the limit-down low survives
    assert len(real.y) < len(trades) and len(without.y) < len(cf)
    assert (real.y.min(), real.y.max()) == (trades.price_natural.min(), trades.price_natural.max())
    assert (without.y.min(), without.y.max()) == (cf.price.min(), cf.price.max())
    assert real.y.min() < without.y.min()  # the forced sales took the price lower
    assert "Thinned" in price.caption and "Asia/Seoul" in price.caption


def test_forced_sales_are_one_marker_per_order_by_generation(run_dir):
    (price,) = plots(run_dir, "price")
    forced = pd.read_parquet(run_dir / "forced_orders.parquet")
    counts = forced.generation.value_counts()
    assert len(counts) == 2  # the scenario cascades into generation 1
    for gen, n in counts.items():
        (marks,) = traces(price, f"forced sales, generation {gen}")
        assert len(marks.x) == n
        filled = forced[(forced.generation == gen)].filled_qty.to_numpy() > 0
        assert sorted(marks.customdata[:, 0]) == sorted(forced[forced.generation == gen]
                                                        .account_id)
        assert list(marks.marker.symbol).count("circle") == filled.sum()
    assert not traces(price, f"forced sales, generation {counts.index.max() + 1}")
    filled = forced[(forced.filled_qty > 0) & (forced.generation == 0)]
    (gen0,) = traces(price, "forced sales, generation 0")
    drawn = gen0.y[np.asarray(gen0.marker.symbol) == "circle"]
    assert sorted(drawn) == sorted(filled.avg_price)  # filled ones at their fill price


def test_cascade_bars_add_up_to_the_forced_quantities(run_dir):
    (cascade,) = plots(run_dir, "forced")
    forced = pd.read_parquet(run_dir / "forced_orders.parquet")
    for gen, g in forced.groupby("generation"):
        (filled,) = traces(cascade, f"generation {gen} filled")
        (unfilled,) = traces(cascade, f"generation {gen} not filled")
        assert filled.y.sum() == g.filled_qty.sum()
        assert unfilled.y.sum() == (g.qty - g.filled_qty).sum()
    assert len(filled.x) == forced.ts.nunique()  # one bar per batch of orders here


def test_collateral_ratios_are_drawn_per_close_without_the_infinite_ones(run_dir):
    (ratios,) = plots(run_dir, "ratios")
    accounts = pd.read_parquet(run_dir / "accounts.parquet")
    (box,) = traces(ratios, "collateral ratio")
    assert len(box.x) == accounts.day.nunique()
    finite = accounts[np.isfinite(accounts.collateral_ratio)]
    last = finite[finite.day == finite.day.max()].collateral_ratio
    assert box.upperfence[-1] == last.max() and np.isfinite(box.upperfence).all()


def test_page_shows_the_broker_beside_the_counterfactual(run_dir):
    page = write_report(run_dir).read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    b, c = summary["broker"], summary["counterfactual"]
    row = (f"<td>forced volume</td><td class='num'>{b['forced_volume']:,}</td>"
           f"<td class='num'>{c['forced_volume']:,}</td>")
    assert row in page
    assert f"{b['max_drawdown']:.2%}" in page
    assert section_ids(page) == ["summary", "price", "forced", "ratios", "venue", "run"]
    assert "vi_static" in page and "broker cfd" in page


def test_page_is_self_contained_and_the_same_for_the_same_run(run_dir):
    first = write_report(run_dir).read_bytes()
    assert write_report(run_dir).read_bytes() == first
    page = first.decode()
    assert page.count("window.PlotlyConfig") == 1  # plotly.js once, inline
    bundle = page.index("<script>/**\n* plotly.js v")
    # the page outside the bundle (whose unused map and logo code holds links)
    page = page[:bundle] + page[page.index("</script>", bundle):]
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "http" not in page
    assert page.count("Plotly.newPlot(") == 3
    assert len(first) < 10_000_000


def test_sections_are_left_out_when_their_files_are(run_dir, tmp_path):
    run = tmp_path / "bare"
    shutil.copytree(run_dir, run)
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
    assert [t.name for t in price.figure.data] == ["with the forced sales"]
    assert page.count("Plotly.newPlot(") == 1 and page.count("window.PlotlyConfig") == 1


def test_strategy_equity_marks_its_margin_calls_and_liquidations(strategy_run):
    (equity,) = plots(strategy_run, "strategy")
    assert len(traces(equity, "margin call")[0].x) == 2
    assert len(traces(equity, "liquidation")[0].x) == 1
    assert len(traces(equity, "call ended")[0].x) == 1
    assert not traces(equity, "fill")
    page = write_report(strategy_run).read_text()
    assert "strategy" in section_ids(page)
    assert "ratio 1.31 &lt;b&gt;" in page and "ratio 1.31 <b>" not in page  # escaped


@pytest.mark.parametrize("missing", ["summary.json", "trades.parquet"])
def test_a_missing_file_is_named(run_dir, tmp_path, missing):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / missing).unlink()
    with pytest.raises(ValueError, match=re.escape(missing)):
        write_report(run)


def test_an_unreadable_trades_file_is_named(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "trades.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="trades.parquet: unreadable"):
        write_report(run)


def test_cli_prints_the_report_path_or_the_missing_file(run_dir, tmp_path):
    r = CliRunner().invoke(app, ["report", str(run_dir)])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == str(run_dir / "report.html")
    r = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 2 and "summary.json" in r.output


def test_thinning_keeps_each_buckets_low_and_high():
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 6 * 3600 * 10**9, 500_000))
    values = rng.normal(size=len(ts)).cumsum()
    keep, note = thin(ts, values, 10_000)
    assert len(keep) <= 10_000 and np.all(np.diff(keep) > 0)
    assert values.argmin() in keep and values.argmax() in keep
    assert note.startswith(f"500,000 → {len(keep):,} points")
    assert thin(ts[:100], values[:100], 10_000)[1] is None


@needs_chromium
def test_page_renders_in_chromium_without_errors(strategy_run):
    dom, errors = render(write_report(strategy_run))
    assert errors == []
    assert plot_counts(dom) == (4, 4)  # price, cascade, ratios, strategy: all drawn


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
