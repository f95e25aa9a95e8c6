"""Attribution (replay/attribution.py, docs/attribution.md): the exogenous bars whose tape,
replayed with a population's forced sales, closes at the observed closes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from replay.anchor import plan_from_bars, write_anchored_tape
from replay.attribution import AttributionError, attribute, recipe_from_bars
from replay.loaders.daily_bars import read_bars
from replay.runner import RunSpec
from venues.krx.ticks import tick_size

# One made-up KOSPI name over three XKRX days, its prior close 50,000 (change on the first
# day), 10 M shares listed so the venue computes a KOSPI from it.
BARS = """code,date,open,high,low,close,volume,change,shares,market
900001,2024-07-31,50000,50600,49500,50000,200000,0.0,10000000,KOSPI
900001,2024-08-01,50000,50500,48000,48500,200000,-0.03,10000000,KOSPI
900001,2024-08-02,48500,48800,45000,45500,220000,-0.06185567010309278,10000000,KOSPI
"""


def bars(tmp_path: Path) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(BARS)
    return path


def recipe(tmp_path: Path):
    return recipe_from_bars(bars(tmp_path), start="2024-07-31", days=3, market=False,
                            rate=1.0, seed=3)


def population(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "accounts.csv"
    path.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                    + "\n".join(rows) + "\n")
    return path


def spec(pop: Path, broker: str) -> RunSpec:
    return RunSpec(tape=None, output=Path("unused"), broker=broker, population=pop,
                   index_closes={"KOSPI": 2700.0})


def misu_accounts(tmp_path: Path) -> Path:
    # bought on 07-29, unpaid at T+2 (07-31): sold in the 08-01 pre-open auction
    return population(tmp_path, [f"{k},misu,900001,1000,50000,0,30000000,2024-07-29"
                                 for k in range(1, 41)])


def test_a_population_that_sells_nothing_leaves_the_observed_path(tmp_path):
    # one credit account with a loan far below its collateral: never called
    pop = population(tmp_path, ["1,credit,900001,10,50000,0,1000,2024-07-29"])
    out = tmp_path / "att"
    result = attribute(recipe(tmp_path), spec(pop, "krx-credit"), out)
    assert result.converged and len(result.history) == 1
    t = result.table
    assert (t.exogenous_close == t.observed_close).all()
    assert (t.simulated_close == t.observed_close).all()
    assert (t.forced_sale_impact == 0).all()
    fell = t.observed_close < t.prior_close
    assert fell.sum() == 2 and (t.share_of_fall[fell] == 0).all()
    # the index: the exogenous replay's KOSPI is the observed one
    ix = result.indices
    assert list(ix["index"].unique()) == ["KOSPI"] and len(ix) == 3
    assert np.allclose(ix.exogenous_close, ix.observed_close)
    # the exogenous bars read back are the observed days
    back = plan_from_bars(read_bars(out / "exogenous_bars.csv"))
    assert back.names[0].days == recipe(tmp_path).plan.names[0].days


def test_forced_sales_attributed_and_the_final_replay_closes_at_the_observed(tmp_path):
    out = tmp_path / "att"
    r = recipe(tmp_path)
    result = attribute(r, spec(misu_accounts(tmp_path), "krx-misu"), out)
    assert result.converged
    assert result.history[0]["max_gap_ticks"] > 1  # there was a gap to close
    assert result.history[-1]["max_gap_ticks"] <= 1
    # the final run with the forced sales closes within a tick of every observed close
    ses = pd.read_parquet(out / "forced" / "sessions.parquet")
    for d in r.plan.names[0].days:
        close = int(ses.loc[pd.to_datetime(ses.day).dt.date == d.day, "close"].iloc[0])
        assert abs(close - d.close) <= tick_size(d.close, on=d.day, market="KOSPI")
    # the counterfactual (exogenous bars, no forced sales) closes at the exogenous closes
    t = result.table
    assert (t.counterfactual_close == t.exogenous_close).all()
    # the sale day: the forced sales took exo - sim off the close; the share is of the fall
    sale = t[t.date == "2024-08-01"].iloc[0]
    impact = sale.exogenous_close - sale.simulated_close
    assert impact > 0 and sale.forced_sale_impact == impact
    assert sale.share_of_fall == pytest.approx(impact / (sale.prior_close
                                                         - sale.observed_close), abs=1e-6)
    assert (t[t.date == "2024-07-31"].forced_sale_impact == 0).all()
    # the exogenous bars file builds the exogenous tape again, row for row
    back = plan_from_bars(read_bars(out / "exogenous_bars.csv"))
    assert [d.close for d in back.names[0].days] == list(t.exogenous_close)
    write_anchored_tape(tmp_path / "again.parquet", back, 3, event_rate=1.0)
    assert pq.read_table(tmp_path / "again.parquet").equals(
        pq.read_table(out / "exogenous.parquet"))
    saved = json.loads((out / "attribution.json").read_text())
    assert saved["converged"] is True and saved["iterations"] == len(result.history)
    assert saved["method"]["tolerance_ticks"] == 1.0


def test_no_convergence_within_the_cap_names_the_name_days(tmp_path):
    out = tmp_path / "att"
    with pytest.raises(AttributionError, match=r"did not converge.*2024-08-01 still apart "
                                               r"after 1 iteration.*900001 2024-08-01 "
                                               r"[0-9.]+ ticks"):
        attribute(recipe(tmp_path), spec(misu_accounts(tmp_path), "krx-misu"), out,
                  max_iter=1)
    saved = json.loads((out / "attribution.json").read_text())
    assert saved["converged"] is False
    assert saved["history"][0]["not_converged"][0]["code"] == "900001"


def test_cli_attributes_a_tape_and_replays_a_variant_on_the_exogenous_path(tmp_path):
    from typer.testing import CliRunner

    from replay.cli import app

    r = recipe(tmp_path)
    tape = r.write(tmp_path / "tape.parquet")
    pop = misu_accounts(tmp_path)
    runner = CliRunner()
    common = ["--broker", "krx-misu", "--population", str(pop), "--rate", "1"]
    # a tape of cascade data synth --anchor does not hold its bars: said, and what to give
    res = runner.invoke(app, ["attribute", str(tape), *common, "-o", str(tmp_path / "no")])
    assert res.exit_code == 2 and "give --bars FILE" in " ".join(res.output.split())
    out = tmp_path / "att"
    res = runner.invoke(app, ["attribute", str(tape), "--bars", str(bars(tmp_path)), *common,
                              "--variant", "haircut=0.3", "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "converged in" in text and "at haircut=0.3 900001 would close 2024-08-01 at" in text
    saved = json.loads((out / "attribution.json").read_text())
    assert saved["variant"]["applied_to"] == {"krx-misu": ["haircut=0.3"]}
    assert (out / "variant" / "summary.json").is_file()
    assert (out / "forced" / "forced_orders.parquet").is_file()
