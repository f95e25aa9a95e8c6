"""comparison.html (replay/comparison_page.py), drawn from a comparison table and small
hand-made run directories: percentages as %, readable headers with units, the figures that
are zero everywhere named instead of drawn, a line saying what the variants' runs differ in,
and a page that fits a 1280 px window."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replay.comparison_page import (
    comparison_html,
    config_differences,
    differences,
    run_config,
)
from replay.tape import Instrument, InstrumentTable
from tests.render_report import find_chromium, measure

INSTRUMENTS = InstrumentTable([Instrument(1, "SYNTH-LARGE", venue="XKRX")])
T0 = 1704153600 * 10**9  # 2024-01-02 09:00 KST
needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no chromium")


def run_dir(path: Path, config: dict, fall: int) -> Path:
    """A run directory with what the page reads: summary.json's config, trades, the
    counterfactual's trades and forced orders."""
    path.mkdir(parents=True)
    ts = T0 + np.arange(2_000, dtype=np.int64) * 10**9
    price = np.full(len(ts), 70_000) - np.where(np.arange(len(ts)) > 1_000, fall, 0)
    pd.DataFrame({"ts": ts, "instrument": 1, "price": price}).to_parquet(
        path / "trades.parquet")
    pd.DataFrame({"ts": ts, "instrument": 1, "price": np.full(len(ts), 70_000)}).to_parquet(
        path / "counterfactual_trades.parquet")
    pd.DataFrame({"ts": [ts[1_000]], "instrument": [1], "filled_qty": [fall]}).to_parquet(
        path / "forced_orders.parquet")
    (path / "summary.json").write_text(json.dumps({"config": config}))
    return path


CONFIG = {"tape": "/data/crash.parquet", "population": "/data/crash-credit.csv", "seed": 3,
          "mode": "relative", "venue": "krx", "inject": None, "index_prior_close": 0.0,
          "strategy": None, "strategy_params": {}}


def comparison(tmp_path: Path, second: dict | None = None) -> pd.DataFrame:
    dirs = [run_dir(tmp_path / "ratio-140", {**CONFIG, "broker": "krx-credit"}, 5_000),
            run_dir(tmp_path / "ratio-130", {**CONFIG, "broker": "krx-credit",
                                             **(second or {})}, 1_000)]
    return pd.DataFrame({
        "label": ["ratio-140", "ratio-130"], "broker": ["krx-credit", "krx-credit"],
        "overrides": ["", "maintenance_ratio=1.3"], "forced_volume": [464_537, 93_378],
        "forced_value": [24_701_910_400.0, 5_229_168_000.0],
        "amplification": [0.02198, 0.004232], "max_drawdown": [0.2653, 0.2054],
        "counterfactual_max_drawdown": [0.1912, 0.1912],
        "excess_drawdown": [0.0741, 0.0142], "accounts_force_sold": [744, 214],
        "accounts_wiped_out": [0, 0], "broker_shortfall": [0, 0],
        "limit_locked_days": pd.array([0, 0], dtype="Int64"),
        "vi_count": pd.array([3, 2], dtype="Int64"),
        "circuit_breakers": pd.array([2, 1], dtype="Int64"), "max_generation": [0, 0],
        "run_dir": [str(d) for d in dirs]})


def page_of(table: pd.DataFrame) -> str:
    return comparison_html(table, INSTRUMENTS, "krx", title="crash.parquet: 2 variants")


def visible(page: str) -> str:
    """The page's text outside the packed scripts."""
    return re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)


def test_percentages_units_and_readable_headers(tmp_path):
    page = visible(page_of(comparison(tmp_path)))
    for text in ("26.53%", "19.12%", "2.20%", "0.42%", "7.41%"):
        assert f">{text}<" in page, text
    for label in ("max drawdown (%)", "value force-sold (won)", "shares force-sold (shares)",
                  "accounts force-sold", "volatility interruptions (VI)"):
        assert f">{label}<" in page, label
    assert not re.search(r">[a-z]+(_[a-z]+)+<", page)  # no snake_case header or label
    assert ">24,701,910,400<" in page


def test_figures_zero_in_every_variant_are_named_not_drawn(tmp_path):
    table = comparison(tmp_path)
    page = page_of(table)
    assert ("Zero in every variant, so not drawn: accounts wiped out, broker shortfall (won), "
            "limit-locked-down sessions, deepest cascade generation.") in page
    # the bar panels are the figures that are not zero everywhere
    from replay.comparison_page import figure_charts

    columns = ["forced_volume", "accounts_force_sold", "accounts_wiped_out", "vi_count"]
    kept = [c for c in columns if not (table[c] == 0).all()]
    fig = figure_charts(table, kept, "won")
    assert [a.text for a in fig.layout.annotations] == [
        "shares force-sold (shares)", "accounts force-sold", "volatility interruptions (VI)"]


def test_a_line_says_what_the_runs_differ_in(tmp_path):
    table = comparison(tmp_path)
    page = visible(page_of(table))
    assert ("The variants differ in their rules (ratio-140: krx-credit; ratio-130: krx-credit "
            "with maintenance_ratio=1.3); everything else is the same: tape crash.parquet, "
            "population crash-credit.csv, seed 3, mode relative, venue krx, no strategy.") in page
    other = comparison(tmp_path / "other", {"strategy": "strategies.credit_momentum:"
                                                        "CreditMomentum", "seed": 4})
    line = differences(other, [run_config(Path(d)) for d in other.run_dir])
    assert "and also in seed: ratio-140 3; ratio-130 4" in line
    assert "strategy: ratio-140 none; ratio-130 strategies.credit_momentum:CreditMomentum" in line


def test_runs_of_the_same_case_are_told_apart_by_their_configs(tmp_path):
    # the demo's crash run (with a strategy, the tape's own seed) beside a comparison's
    # variant of it (no strategy, seed 3 given): only the strategy differs
    a = run_dir(tmp_path / "crash", {**CONFIG, "seed": None, "strategy": "m:Momentum"}, 10)
    b = run_dir(tmp_path / "ratio-140", CONFIG, 10)
    for path in (a, b):
        s = json.loads((path / "summary.json").read_text())
        (path / "summary.json").write_text(json.dumps({**s, "seed": 3}))
    assert config_differences(["crash", "ratio-140"], [run_config(a), run_config(b)]) == [
        "strategy: crash m:Momentum; ratio-140 none"]


def test_the_price_lines_run_to_the_end_and_times_are_kst(tmp_path):
    from replay.comparison_page import price_chart

    table = comparison(tmp_path)
    fig = price_chart(table, INSTRUMENTS, "krx", "won")
    names = [t.name for t in fig.data]
    assert names == ["without the forced sales (counterfactual)", "ratio-140", "ratio-130"]
    end = pd.Timestamp(T0 + 1_999 * 10**9, tz="UTC").tz_convert("Asia/Seoul")
    for trace in fig.data:
        assert trace.x[-1] == end.tz_localize(None).value / 1e6
    assert fig.layout.yaxis.title.text == "price (won)"
    assert "KST" in fig.layout.xaxis.title.text


def test_the_page_is_packed_once_and_small(tmp_path):
    page = page_of(comparison(tmp_path))
    assert page.count("id='packed-plotly-js'") == 1
    assert len(page.encode()) < 3_000_000
    assert "http" not in visible(page)


@needs_chromium
def test_the_key_figures_fit_1280_px_without_scrolling(tmp_path):
    table = comparison(tmp_path)
    table["label"] = ["krx-credit_maintenance_ratio=1.4", "krx-credit_maintenance_ratio=1.3"]
    path = tmp_path / "comparison.html"
    path.write_text(page_of(table))
    widths, errors = measure(path, "JSON.stringify({page: document.documentElement."
                                   "scrollWidth, table: document.querySelector('table')"
                                   ".getBoundingClientRect().right, window: innerWidth})")
    assert errors == []
    widths = json.loads(widths)
    assert widths["window"] == 1280
    assert widths["page"] <= 1280 and widths["table"] <= 1280, widths
