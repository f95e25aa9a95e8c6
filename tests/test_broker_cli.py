"""``cascade replay --broker --population``: the hand-computed cascade of
tests/test_broker_cascade.py from the command line, with its counterfactual."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from replay.cli import app
from replay.tape import Instrument, InstrumentTable, write_tape
from tests.test_broker_cascade import book_tape


def test_cascade_and_counterfactual_from_the_command_line(tmp_path):
    tape = write_tape(tmp_path / "book.parquet", book_tape(),
                      InstrumentTable([Instrument(1, "X", tick_units=100)]))
    pop = tmp_path / "accounts.csv"
    pop.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                   "101,instant,X,60,10000,0,426450,1970-01-01\n"
                   "102,instant,X,100,10000,0,703607,1970-01-01\n"
                   "103,instant,X,120,10000,0,835757,1970-01-01\n")
    sells = tmp_path / "sells.csv"
    sells.write_text("ts,instrument,side,type,price,size\n3,X,sell,market,,150\n")
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["replay", str(tape), "--broker", "instant", "--population",
                                 str(pop), "--inject", str(sells), "-o", str(out)])
    assert r.exit_code == 0, r.output
    forced = pq.read_table(out / "forced_orders.parquet").to_pandas()
    assert forced.generation.tolist() == [0, 1, 2]
    assert forced.filled_qty.tolist() == [60, 100, 120]
    summary = json.loads((out / "summary.json").read_text())
    b, c = summary["broker"], summary["counterfactual"]
    assert (b["forced_volume"], b["accounts_force_sold"], b["max_generation"]) == (280, 3, 2)
    # the price fell from 10,000 to 9,600 with the forced sales, to 9,900 without
    assert abs(b["max_drawdown"] - 0.04) < 1e-12 and abs(c["max_drawdown"] - 0.01) < 1e-12
    # without forced orders only A is ever breached (at 9,900), and nothing is sold
    assert (c["accounts_called"], c["accounts_force_ordered"], c["forced_volume"]) == (1, 1, 0)
    assert summary["config"]["broker"] == "instant"
    accounts = pq.read_table(out / "accounts.parquet").to_pandas()
    assert accounts.shares_left.tolist() == [0, 0, 0]
    # the price path without the forced sales: the print, then the exogenous sell's two
    # prints, and nothing below 9,900
    cf = pq.read_table(out / "counterfactual_trades.parquet").to_pandas()
    assert cf.price.tolist() == [10_000, 10_000, 9_900]


def test_set_overrides_a_rule(tmp_path):
    tape = write_tape(tmp_path / "book.parquet", book_tape(),
                      InstrumentTable([Instrument(1, "X", tick_units=100)]))
    pop = tmp_path / "accounts.csv"
    pop.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                   "101,instant,X,60,10000,0,426450,1970-01-01\n")
    sells = tmp_path / "sells.csv"
    sells.write_text("ts,instrument,side,type,price,size\n3,X,sell,market,,150\n")
    out = tmp_path / "run"
    # at 130% A's trigger is 1.3 x 426,450 / 60 = 9,239.75 -> 9,239: 9,900 breaches nobody
    r = CliRunner().invoke(app, ["replay", str(tape), "--broker", "instant", "--population",
                                 str(pop), "--inject", str(sells), "--set",
                                 "maintenance_ratio=1.3", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert pq.read_table(out / "forced_orders.parquet").num_rows == 0
    r = CliRunner().invoke(app, ["replay", str(tape), "--set", "maintenance_ratio=1.3",
                                 "-o", str(out)])
    assert r.exit_code != 0 and "--broker" in r.output
