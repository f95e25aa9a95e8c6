"""``cascade compare``: rule variants on the identical tape, population and seed, each in its
own process. The scenario is the shipped small-cap CFD unwind (tests/test_broker_scenario.py):
the ``cfd`` preset force-sells the heavily leveraged population into two limit-down days;
with the call at 60% and the intraday liquidation at 30% no account is ever sold."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.compare import VariantError, compare, parse_variant, variant_labels
from replay.render.thinning import thin

EXAMPLES = Path(__file__).resolve().parents[1] / "brokers" / "examples"
POPULATION = EXAMPLES / "unwind-heavy.csv"
VARIANTS = ["cfd", "cfd,call_level=0.6,liquidation_level=0.3"]
TIGHT, LOOSE = "cfd", "cfd_call_level=0.6_liquidation_level=0.3"


@pytest.fixture(scope="module")
def tape(unwind_tape):
    return unwind_tape


@pytest.fixture(scope="module")
def compared(tape, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    finished: list[str] = []
    table = compare(tape, VARIANTS, POPULATION, out,
                    progress=lambda label, _: finished.append(label))
    return table.set_index("label", drop=False), out, finished


def summary(run_dir) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def test_parse_variant_splits_the_preset_from_its_overrides():
    assert parse_variant("krx-credit") == ("krx-credit", [])
    assert parse_variant("krx-credit, maintenance_ratio=1.3,grace_days=2") == (
        "krx-credit", ["maintenance_ratio=1.3", "grace_days=2"])
    with pytest.raises(ValueError, match="grace_days"):
        parse_variant("krx-credit,grace_days")


def test_labels_are_filesystem_safe_and_unique():
    assert variant_labels(["krx-credit", "krx-credit,maintenance_ratio=1.3",
                           "my rules/strict.toml,grace_days=0", "krx-credit"]) == [
        "krx-credit", "krx-credit_maintenance_ratio=1.3", "strict_grace_days=0",
        "krx-credit-2"]
    assert variant_labels(["a", "b"], ["base", "strict"]) == ["base", "strict"]
    with pytest.raises(ValueError, match="one label per variant"):
        variant_labels(["a", "b"], ["only-one"])
    with pytest.raises(ValueError, match="must be different"):
        variant_labels(["a", "b"], ["x", "x"])
    with pytest.raises(ValueError, match="run directory"):
        variant_labels(["a", "b"], ["x", "../y"])


def test_thinned_price_path_keeps_the_trough_and_the_last_point():
    # the comparison's price paths are thinned as a report's (replay/render/thinning.py)
    price = pd.Series(range(1_000_000, 0, -1)).to_numpy()
    price[123_457] = -5  # a one-print trough that every-n-th sampling would miss
    ts = np.arange(len(price), dtype=np.int64) * 10**9  # a print a second
    keep, _ = thin(ts, price, 1_000)
    assert len(keep) <= 1_003 and 123_457 in keep and keep[-1] == len(price) - 1
    assert (thin(ts[:10], price[:10], 1_000)[0] == range(10)).all()


def test_each_row_is_its_own_run_summary(compared):
    table, out, finished = compared
    assert list(table.label) == [TIGHT, LOOSE] and sorted(finished) == sorted(table.label)
    for label, row in table.iterrows():
        assert Path(row.run_dir) == out / label
        s = summary(row.run_dir)
        b, c, v = s["broker"], s["counterfactual"], s["venue_summary"]
        assert s["compare"]["variant"] in VARIANTS and s["compare"]["label"] == label
        assert (row.forced_volume, row.forced_value, row.accounts_called,
                row.accounts_force_sold, row.accounts_wiped_out, row.broker_shortfall,
                row.max_generation) == (
            b["forced_volume"], b["forced_value"], b["accounts_called"],
            b["accounts_force_sold"], b["accounts_wiped_out"], b["broker_shortfall"],
            b["max_generation"])
        assert row.amplification == pytest.approx(b["amplification"])
        assert (row.max_drawdown, row.counterfactual_max_drawdown) == (
            b["max_drawdown"], c["max_drawdown"])
        assert row.excess_drawdown == pytest.approx(b["max_drawdown"] - c["max_drawdown"])
        assert (row.limit_locked_days, row.vi_count, row.circuit_breakers) == (
            v["limit_locked_down_sessions"], v["volatility_interruptions"],
            v["circuit_breakers"])
        assert s["seed"] == 5  # the tape's own session seed
    assert table.loc[LOOSE, "overrides"] == "call_level=0.6,liquidation_level=0.3"


def test_a_looser_rule_sells_less_and_moves_the_price_less(compared):
    table, _, _ = compared
    tight, loose = table.loc[TIGHT], table.loc[LOOSE]
    assert tight.forced_volume > 50_000 and tight.limit_locked_days >= 1
    assert loose.forced_volume < tight.forced_volume
    assert loose.max_drawdown < tight.max_drawdown
    assert tight.excess_drawdown > 0.2
    # nothing sold: the price path is the counterfactual's
    assert loose.forced_volume == 0 and loose.excess_drawdown == 0


def test_the_counterfactual_is_common_to_every_variant(compared):
    table, _, _ = compared
    assert table.counterfactual_max_drawdown.nunique() == 1
    paths = [pq.read_table(Path(d) / "counterfactual_trades.parquet") for d in table.run_dir]
    assert paths[0].num_rows > 0 and all(p.equals(paths[0]) for p in paths[1:])


def test_the_variants_ran_in_worker_processes(compared):
    """A comparison is a sweep of one axis: its cells run in the sweep's workers (kept for
    the whole comparison, replay/sweep/run.py), never in the calling process, and each is
    recorded in DIR/cells/."""
    table, out, _ = compared
    pids = [summary(d)["compare"]["worker_pid"] for d in table.run_dir]
    assert os.getpid() not in pids
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert sorted(r["axes"]["variant"] for r in records) == sorted(table.label)
    assert {r["worker_pid"] for r in records} == set(pids)


def test_the_comparison_files_hold_the_table_and_the_page_loads_nothing(compared):
    table, out, _ = compared
    from_csv = pd.read_csv(out / "comparison.csv", keep_default_na=False, na_values=[""])
    assert list(from_csv.label) == list(table.label)
    assert (from_csv.forced_volume.to_numpy() == table.forced_volume.to_numpy()).all()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "comparison.parquet"),
                                  table.reset_index(drop=True))
    page = (out / "comparison.html").read_text()
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", page, re.I)
    assert page.count("id='packed-plotly-js'") == 1  # plotly.js inline, once
    assert LOOSE in page and "counterfactual" in page


def test_a_bad_rule_key_fails_before_any_run(tape, tmp_path):
    with pytest.raises(ValueError, match="call_levle"):
        compare(tape, ["cfd", "cfd,call_levle=0.5"], POPULATION, tmp_path / "out")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                     "1,cfd,SYNTH-SMALL,10,10000,0,60000,2024-01-02\n"
                     "2,misu,SYNTH-SMALL,10,10000,0,60000,2024-01-02\n")
    with pytest.raises(ValueError, match="holds misu, cfd accounts"):
        compare(tape, ["cfd", "krx-credit"], mixed, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_variants_of_another_kind_take_the_population_as_their_own(tmp_path):
    """A one-kind population compared under rules of another kind: its accounts are taken as
    the variant's kind (brokers.population.rekind, docs/brokers.md) instead of refused.
    100 shares, loan 700,000, on a day that prints 9,700 at 10:00 and closes there:

    - as an instant account (140% at every trade): 100 x P / 700,000 < 1.4 below 9,800,
      so the 9,700 print sells it at once;
    - as a credit account (krx-credit, grace_days 0): 970,000 / 700,000 = 1.386 at the
      close, a call not met, sold in Monday's pre-open auction."""
    from datetime import time as t

    from replay.tape import ASK, BID, F_LAST, TRADE, Events, write_tape
    from tests.test_broker_close_rules import FRI, MON, STOCK
    from tests.test_broker_close_rules import tape as book
    from venues.krx.session import seoul_ns

    ev = book([(FRI, t(8, 40), BID, 10_000, 10), (FRI, t(8, 40), ASK, 10_000, 10),
               (FRI, t(9, 30), BID, 9_700, 100), (MON, t(8, 40), BID, 9_600, 10)])
    prints = Events.from_columns({
        "ts": np.array([seoul_ns(FRI, t(10, 0))]), "instrument": np.array([1]),
        "action": np.array([TRADE]), "side": np.array([ASK]), "price": np.array([9_700]),
        "size": np.array([1]), "flags": np.array([F_LAST])})
    ev = Events.concat([ev, prints])
    path = write_tape(tmp_path / "day.parquet", ev.take(np.argsort(ev.ts, kind="stable")),
                      STOCK)
    pop = tmp_path / "credit.csv"
    pop.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                   "1,credit,S,100,10000,0,700000,2024-01-05\n")
    table = compare(path, ["krx-credit,grace_days=0", "instant"], pop, tmp_path / "out",
                    venue="krx", seed=1, jobs=1)
    labels = list(table.label)
    summaries = [json.loads((tmp_path / "out" / label / "summary.json").read_text())
                 for label in labels]
    assert [s["broker"]["kind"] for s in summaries] == ["credit", "instant"]
    assert [s["broker"]["accounts_managed"] for s in summaries] == [1, 1]
    assert summaries[1]["config"]["rekind"] is True and "rekind" not in summaries[0]["config"]
    forced = [pq.read_table(tmp_path / "out" / label / "forced_orders.parquet").to_pandas()
              for label in labels]
    assert forced[1].ts.tolist() == [seoul_ns(FRI, t(10, 0))]
    assert forced[0].ts.tolist() == [seoul_ns(MON, t(8, 30))]


def test_one_variant_is_not_a_comparison(tape, tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        compare(tape, ["cfd"], POPULATION, tmp_path / "out")
    r = CliRunner().invoke(app, ["compare", str(tape), "--population", str(POPULATION),
                                 "--broker", "cfd", "-o", str(tmp_path / "out")])
    assert r.exit_code == 2 and "at least two" in r.output


def test_a_variant_that_fails_while_running_is_named(tape, tmp_path):
    # both rule sets are valid and the population holds accounts of both kinds, but CFD calls
    # are valued at the close, which the generic venue does not have
    population = tmp_path / "mixed.csv"
    population.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                          "1,instant,SYNTH-SMALL,100,6000,0,300000,2024-01-02\n"
                          "2,cfd,SYNTH-SMALL,100,6000,0,360000,2024-01-02\n")
    with pytest.raises(VariantError, match=r"variant 'cfd' \(cfd\) failed: .*--venue krx") as e:
        compare(tape, ["instant", "cfd"], population, tmp_path / "out", venue="generic")
    assert "'instant'" not in str(e.value)
    assert not (tmp_path / "out" / "comparison.csv").exists()


def test_cli_compare_resumes_the_same_comparison(compared, tape):
    table, out, _ = compared
    before = (out / "comparison.csv").read_bytes()
    pids = [summary(d)["compare"]["worker_pid"] for d in table.run_dir]
    r = CliRunner().invoke(app, ["compare", str(tape), "--population", str(POPULATION),
                                 *[a for v in VARIANTS for a in ("--broker", v)],
                                 "--jobs", "2", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "comparison.csv").read_bytes() == before  # same inputs, same bytes
    # both run directories are complete and made the same way: reused, not run again
    assert [summary(d)["compare"]["worker_pid"] for d in table.run_dir] == pids
    assert r.output.count("reused") >= 2
    # the console prints the table's own figure (the tight rule's excess drawdown)
    tight_excess = f"{table.loc[TIGHT].excess_drawdown:.2%}"
    assert "excess drawdown" in r.stdout and tight_excess in r.stdout
    assert str(out / "comparison.html") in r.stdout.replace("\n", "")


def test_cli_compare_names_a_mistyped_key(tape, tmp_path):
    r = CliRunner().invoke(app, ["compare", str(tape), "--population", str(POPULATION),
                                 "--broker", "cfd", "--broker", "cfd", "--set", "grace_dayz=2",
                                 "-o", str(tmp_path / "out")])
    assert r.exit_code == 2 and "grace_dayz" in r.output
    assert not (tmp_path / "out").exists()
