"""The example strategies do what they say on the synthetic KRX scenarios: the credit
momentum strategy is margin-called after a gap down and force-sold at the next pre-open at
the lower limit (or meets the call with a deposit); the 미수 buyer of a dip is sold on D+3
when it leaves the rest unpaid at T+2 (or pays it); the liquidity provider buys forced sales
at the lower limit in the opening auction."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from replay.cli import app

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "strategies"
EXAMPLES = ROOT / "brokers" / "examples"


def synth(path: Path, days: int, shock: str) -> Path:
    r = CliRunner().invoke(app, ["data", "synth", "--profile", "krx-smallcap", "--days",
                                 str(days), "--seed", "5", "--shock", shock, "-o", str(path)])
    assert r.exit_code == 0, r.output
    return path


@pytest.fixture(scope="module")
def crash(tmp_path_factory):
    """Four small-cap days with a -25% gap before the second day's open."""
    return synth(tmp_path_factory.mktemp("crash") / "crash.parquet", 4, "1:-0.25")


@pytest.fixture(scope="module")
def unwind(unwind_tape):
    """The CFD unwind of tests/test_broker_scenario.py: -12% before day 2."""
    return unwind_tape


def replay(tape: Path, out: Path, strategy: str | None, *extra: str) -> dict:
    args = ["replay", str(tape), "--venue", "krx", "--mode", "relative", "-o", str(out),
            *extra]
    if strategy:
        args += ["--strategy", strategy]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads((out / "summary.json").read_text())


def events(out: Path) -> pd.DataFrame:
    e = pq.read_table(out / "strategy_events.parquet").to_pandas()
    e["seoul"] = pd.to_datetime(e.ts, utc=True).dt.tz_convert("Asia/Seoul")
    e["day"] = e.seoul.dt.date
    return e


def sessions(out: Path) -> pd.DataFrame:
    return pq.read_table(out / "sessions.parquet").to_pandas().set_index("day")


def test_credit_momentum_is_margin_called_and_force_sold_in_the_crash(crash, tmp_path):
    out = tmp_path / "m"
    summary = replay(crash, out, f"{STRATEGIES}/credit_momentum.py:CreditMomentum")
    ev, ses = events(out), sessions(out)
    days = list(ses.index)
    buys = ev[(ev.kind == "fill") & (ev.side == "buy")]
    assert set(buys.day) == {days[0]}  # it went long on the first day, before the gap
    # leveraged: it bought more than its cash (a 40% down payment: up to 2.5x)
    assert (buys.qty * buys.price).sum() > 2 * 50_000_000
    call = ev[ev.kind == "margin_call"]
    assert list(call.day) == [days[1]]  # valued at the close of the gap day: below 140%
    ratio = float(call.detail.iloc[0].split()[1].rstrip(","))
    assert ratio < 1.4
    # not topped up by D+1: sold in the pre-open auction of D+2, at the lower limit
    liq = ev[ev.kind == "liquidation"]
    assert list(liq.day) == [days[3]]
    assert liq.seoul.iloc[0].time() < time(9, 0)
    assert int(liq.price.iloc[0]) == int(ses.loc[days[3], "lower_limit"])
    sold = ev[ev.kind == "liquidation_fill"]
    assert sold.qty.sum() > 0 and set(sold.day) == {days[3]}
    assert sold.qty.sum() < buys.qty.sum()  # sized to restore the ratio, not the whole
    st = summary["strategy"]
    assert (st["margin_calls"], st["liquidations"]) == (1, 1)
    eq = pq.read_table(out / "strategy_equity.parquet").to_pandas()
    # the forced sale repaid part of the loan
    assert eq.loan.iloc[-1] < eq.loan.max()


def test_credit_momentum_meeting_the_call_is_not_sold(crash, tmp_path):
    out = tmp_path / "m"
    replay(crash, out, f"{STRATEGIES}/credit_momentum.py:CreditMomentum", "--param",
           "meet_calls=true")
    ev = events(out)
    assert (ev.kind == "margin_call").sum() == 1
    deposit = ev[ev.kind == "deposit"]
    assert len(deposit) == 1 and deposit.day.iloc[0] == ev[ev.kind == "margin_call"].day.iloc[0]
    assert not (ev.kind == "liquidation").any()


def test_misu_dip_unpaid_at_settlement_is_sold_on_d3(unwind, tmp_path):
    out = tmp_path / "d"
    replay(unwind, out, f"{STRATEGIES}/misu_dip.py:MisuDip", "--param", "take_profit=0.5")
    ev, ses = events(out), sessions(out)
    days = list(ses.index)
    buy = ev[(ev.kind == "fill") & (ev.side == "buy")]
    assert len(buy) == 1 and buy.day.iloc[0] == days[1]  # the gap day: 12% under the close
    assert buy.price.iloc[0] <= ses.loc[days[0], "close"] * 0.92 + 50
    eq = pq.read_table(out / "strategy_equity.parquet").to_pandas()
    after = eq[eq.ts <= buy.ts.iloc[0]].iloc[-1]  # the row written at the fill
    notional = int(buy.qty.iloc[0]) * int(buy.price.iloc[0])
    # 미수: 40% paid, the rest owed (within rounding of the average price)
    assert after.loan == pytest.approx(0.6 * notional, rel=1e-3)
    liq = ev[ev.kind == "liquidation"]
    assert list(liq.day) == [days[4]]  # bought D = days[1], due T+2 = days[3], sold D+3
    assert int(liq.price.iloc[0]) == int(ses.loc[days[4], "lower_limit"])
    assert liq.seoul.iloc[0].time() < time(9, 0)


def test_misu_dip_paying_at_settlement_keeps_the_shares(unwind, tmp_path):
    out = tmp_path / "d"
    summary = replay(unwind, out, f"{STRATEGIES}/misu_dip.py:MisuDip", "--param",
                     "take_profit=0.5", "--param", "pay_at_settlement=true")
    ev = events(out)
    assert (ev.kind == "repay").sum() == 1 and not (ev.kind == "liquidation").any()
    eq = pq.read_table(out / "strategy_equity.parquet").to_pandas()
    assert eq.loan.iloc[-1] == 0
    assert summary["strategy"]["liquidations"] == 0


def test_liquidity_provider_buys_forced_sales_at_the_lower_limit(unwind, tmp_path):
    broker = ["--broker", "cfd", "--population", str(EXAMPLES / "unwind-heavy.csv")]
    alone = replay(unwind, tmp_path / "alone", None, *broker)
    with_lp = replay(unwind, tmp_path / "lp", f"{STRATEGIES}/liquidity_provider.py:"
                     "LiquidityProvider", *broker)
    ev, ses = events(tmp_path / "lp"), sessions(tmp_path / "lp")
    buys = ev[(ev.kind == "fill") & (ev.side == "buy")]
    assert len(buys) >= 1
    for _, b in buys.iterrows():
        # at the lower limit, on a day the broker entered forced sales there
        assert b.price == ses.loc[b.day, "lower_limit"]
    forced = pq.read_table(tmp_path / "lp" / "forced_orders.parquet").to_pandas()
    forced_days = set(pd.to_datetime(forced.ts, utc=True).dt.tz_convert("Asia/Seoul").dt.date)
    assert set(buys.day) <= forced_days
    # its bids were the other side of forced sales: it bought no more than they sold there
    assert 0 < buys.qty.sum() <= with_lp["broker"]["forced_volume"]
    # and they moved the uncross: its bids at the lower limit are volume there, so the
    # opening auction of the day it bought prints at the limit (alone, it did not)
    ses_alone = sessions(tmp_path / "alone")
    day = buys.day.iloc[0]
    assert ses.loc[day, "open"] == ses.loc[day, "lower_limit"] < ses_alone.loc[day, "open"]
    assert alone["broker"]["forced_volume"] > 0
    fills = pq.read_table(tmp_path / "lp" / "fills.parquet").to_pandas()
    assert set(fills[fills.ts.isin(buys.ts)].source.astype(str)) == {"auction"}


def test_compare_runs_the_strategy_under_each_rule(crash, tmp_path, monkeypatch):
    pop = tmp_path / "one.csv"
    pop.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                   "1,credit,SYNTH-SMALL,1000,6000,0,2000000,2023-12-20\n")
    monkeypatch.chdir(tmp_path)  # the shipped examples load by their path from anywhere
    r = CliRunner().invoke(app, ["compare", str(crash), "--population", str(pop),
                                 "--broker", "krx-credit", "--broker",
                                 "krx-credit,maintenance_ratio=1.1", "--label", "r140",
                                 "--label", "r110", "--strategy",
                                 "strategies/credit_momentum.py:CreditMomentum", "-o", "cmp"])
    assert r.exit_code == 0, r.output
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("label")
    # called and sold at 140%; at 110% the same fall is no call at all
    assert (table.loc["r140", "strategy_margin_calls"],
            table.loc["r140", "strategy_liquidations"]) == (1, 1)
    assert (table.loc["r110", "strategy_margin_calls"],
            table.loc["r110", "strategy_liquidations"]) == (0, 0)
    for label in ("r140", "r110"):
        st = json.loads((tmp_path / "cmp" / label / "summary.json").read_text())["strategy"]
        assert table.loc[label, "strategy_final_equity"] == pytest.approx(st["final_equity"])
