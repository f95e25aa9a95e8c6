"""``cascade demo``: the bundled scenarios run end to end and say what they claim."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from replay.cli import app


def test_the_demo_writes_both_reports_and_the_comparison(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "demo-summary.json").read_text())
    for name in ("smallcap-unwind", "largecap-crash"):
        report = out / name / "report.html"
        assert report.is_file() and str(report) in r.output  # printed for the user to open
        s = summary[name]
        # the forced sales deepened the fall: the counterfactual drawdown is smaller
        assert s["broker"]["forced_volume"] > 0
        assert s["broker"]["max_drawdown"] > s["counterfactual"]["max_drawdown"]
    # the small-cap unwind locks the stock limit-down; the large-cap gap halts the market
    assert summary["smallcap-unwind"]["venue"]["limit_locked_down_sessions"] >= 1
    assert summary["largecap-crash"]["venue"]["circuit_breakers"] >= 1
    # the leveraged momentum strategy is called and sold in the crash
    st = summary["largecap-crash"]["strategy"]
    assert (st["margin_calls"], st["liquidations"]) == (1, 1)
    # 140% sells more than 130% on the same tape, population and seed
    table = pd.read_csv(out / "compare-140-130" / "comparison.csv").set_index("label")
    assert table.loc["ratio-140", "forced_volume"] > table.loc["ratio-130", "forced_volume"]
    assert (table.counterfactual_max_drawdown.nunique()) == 1
    assert str(out / "compare-140-130" / "comparison.html") in r.output
    # the crash run trades a strategy and the comparison does not: the output says so
    assert ("largecap crash and crash at 140% (the same tape and rules) also differ in "
            "strategy: largecap crash strategies.credit_momentum:CreditMomentum; crash at "
            "140% none") in " ".join(r.output.split())

    # one market, its credit laid two ways on the same tape: concentrated in the
    # semiconductor names, more of the forced selling falls on them; without the forced
    # sales the two runs are the same market
    conc, spread = summary["market-concentrated"], summary["market-spread"]
    assert conc["forced_value_semis"] > spread["forced_value_semis"] > 0
    assert conc["counterfactual"]["max_drawdown"] == spread["counterfactual"]["max_drawdown"]
    for s in (conc, spread):
        assert s["broker"]["max_drawdown"] > s["counterfactual"]["max_drawdown"]
        assert s["broker"]["forced_value"] == pytest.approx(
            s["forced_value_semis"] + s["forced_value_others"])
    assert "one market, its credit laid two ways" in r.output

    # every run directory of the demo is complete, its tables one run's
    from replay.rundir import verify

    for name in ("smallcap-unwind", "largecap-crash", "market-concentrated", "market-spread"):
        assert verify(out / name)["run_id"] == summary[name]["run_id"]
    for label in ("ratio-140", "ratio-130"):
        verify(out / "compare-140-130" / label)
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]


def test_the_demo_refuses_a_directory_it_did_not_write(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    r = CliRunner().invoke(app, ["demo", "-o", str(out)])
    assert r.exit_code == 2 and str(out / "thesis.tex") in r.output
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]
