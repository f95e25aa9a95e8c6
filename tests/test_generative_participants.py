"""Generative mode with everything: the reactive flow at the KRX venue with a broker and a
strategy, and its counterfactual (docs/replay-modes.md: generative)."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from brokers.engine import Broker
from brokers.population import KIND_CODES, Population
from brokers.rules import load_rules
from replay.cli import app
from replay.engine import InjectedOrders
from replay.generative import generative_replay, run_generative
from replay.synth import INSTRUMENT_ID, _resolve

START = _resolve("krx-smallcap").start_price


def cfd_accounts(n: int = 200) -> Population:
    """``n`` CFD accounts of 100 shares bought at the flow's start price, 28-38% down: each
    is sold at once when equity / (40% of value) falls to 50%, i.e. 12-22% down."""
    loan = (np.random.default_rng(0).uniform(0.62, 0.72, n) * START * 100).astype(np.int64)
    day = (date(2024, 1, 2) - date(1970, 1, 1)).days
    return Population(account_id=np.arange(1, n + 1), kind=np.full(n, KIND_CODES["cfd"]),
                      cash=np.zeros(n, np.int64), loan=loan, pos_account=np.arange(n),
                      pos_instrument=np.full(n, INSTRUMENT_ID), pos_shares=np.full(n, 100),
                      pos_entry=np.full(n, START), pos_trade_date=np.full(n, day))


def gap_run(submit: bool):
    rp = generative_replay("krx-smallcap", venue="krx", seed=3)
    broker = Broker(load_rules("cfd"), cfd_accounts(), submit_orders=submit).attach(rp)
    result = run_generative("krx-smallcap", days=2, seed=3, shocks={1: -0.2}, replay=rp)
    return result, broker


@pytest.fixture(scope="module")
def runs():
    return gap_run(True), gap_run(False)


def test_a_gap_in_the_reactive_flow_sells_cfd_accounts_and_the_counterfactual_none(runs):
    """A 20% gap down in the flow's value at the second day's open, at the KRX venue: the
    flow finds its way down through the VIs, the CFD accounts are liquidated (intraday at
    50%, or called at the close below 70%) and their sales, through the flow, break others
    (generation 1). With the broker's orders switched off the same flow sells nobody, and
    falls less."""
    (forced_run, broker), (cf_run, cf_broker) = runs
    forced = broker.forced_orders()
    assert forced.filled_qty.sum() > 0 and forced.generation.max() >= 1
    would = cf_broker.forced_orders()
    assert len(would) > 0 and would.filled_qty.sum() == 0  # recorded, never sent
    assert forced_run.trades.price.min() < cf_run.trades.price.min()
    # the flow trades at the venue: VIs fire and each day opens and closes by auction
    kinds = set(forced_run.venue_events.kind)
    assert {"vi_static", "uncross_open", "uncross_close"} <= kinds
    assert len(forced_run.sessions) == 2


def test_the_flow_at_the_venue_stays_inside_the_daily_limits(runs):
    (result, _), _ = runs
    days = result.sessions.set_index("day")
    from venues.krx.session import seoul_date

    day = np.array([seoul_date(int(t)) for t in result.trades.ts])
    for d, row in days.iterrows():
        px = result.trades.price[day == d]
        assert px.between(row.lower_limit, row.upper_limit).all()


def test_an_injected_order_trades_once_against_the_flow():
    """Each injected fill is printed once (the flow's own driver used to print it twice)."""
    ts = np.array([1704157200000000000])  # 2024-01-02 10:00 KST
    sells = InjectedOrders(ts, np.array([INSTRUMENT_ID]), np.array([65]), np.zeros(1, int),
                           np.zeros(1, int), np.array([2_000]))
    result = run_generative("krx-smallcap", days=1, seed=1, injected=sells)
    printed = result.trades[result.trades.source == 1]["size"].sum()
    assert printed == result.injected.filled.iloc[0] > 0


def test_generative_with_venue_broker_and_strategy_from_the_command_line(tmp_path):
    pop = tmp_path / "cfd.csv"
    rows = [f"{k},cfd,SYNTH-SMALL,100,{START},0,{int(START * 100 * f)},2024-01-02"
            for k, f in enumerate(np.linspace(0.62, 0.72, 50), start=1)]
    pop.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                   + "\n".join(rows) + "\n")
    out = tmp_path / "gen"
    r = CliRunner().invoke(app, [
        "replay", "--mode", "generative", "--profile", "krx-smallcap", "--days", "2",
        "--seed", "3", "--shock", "1:-0.2", "--venue", "krx", "--broker", "cfd",
        "--population", str(pop), "--strategy",
        "strategies/liquidity_provider.py:LiquidityProvider", "-o", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "generative" and summary["venue"] == "krx"
    assert summary["config"]["shocks"] == {"1": -0.2}
    assert summary["broker"]["forced_volume"] > 0
    assert summary["counterfactual"]["forced_volume"] == 0
    assert "strategy" in summary
    assert pq.read_table(out / "sessions.parquet").num_rows == 2
