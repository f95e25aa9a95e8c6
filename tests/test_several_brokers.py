"""Several brokers in one market: a CFD broker's forced sale pushes a credit account under
140% at the close, and the credit broker sells it the next morning as generation 1 of the
CFD sale (docs/brokers.md: several brokers; docs/reference/krx.md: 신용융자, CFD)."""

from __future__ import annotations

import json
from datetime import time as t

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from brokers.engine import Broker
from brokers.population import Population
from brokers.rules import load_rules
from replay.cli import app
from replay.engine import Replay
from replay.tape import (
    ASK,
    BID,
    F_LAST,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
    write_tape,
)
from tests.test_broker_cascade import book_tape
from tests.test_broker_close_rules import FRI, MON, NO_VI, STOCK, tape
from venues.krx.session import seoul_ns

# Friday: the open at 10,000, a bid of 100 at 7,400, then the tape's own prints walk down
# to 7,500. Monday: a bid of 10 at 7,300 in the opening auction.
BOOK = [(FRI, t(8, 40), BID, 10_000, 10), (FRI, t(8, 40), ASK, 10_000, 10),
        (FRI, t(9, 30), BID, 7_400, 100), (MON, t(8, 40), BID, 7_300, 10)]
PRINTS = [(t(10, 0), 9_000), (t(10, 1), 7_600), (t(10, 2), 7_500)]


def day_tape() -> Events:
    ev = tape(BOOK)
    cols = {c: [] for c in ("ts", "instrument", "action", "side", "price", "size")}
    for at, px in PRINTS:
        for c, v in zip(cols, (seoul_ns(FRI, at), 1, TRADE, ASK, px, 1), strict=True):
            cols[c].append(v)
    prints = Events.from_columns({c: np.array(v, np.int64) for c, v in cols.items()}
                                 | {"flags": np.full(len(PRINTS), F_LAST)})
    ev = Events.concat([ev, prints])
    return ev.take(np.argsort(ev.ts, kind="stable"))


def accounts() -> Population:
    """Account 1: credit (kind 0), 100 shares, loan 530,000. Account 2: CFD (kind 2), 100
    shares bought at 10,000 with 40% down, loan 600,000."""
    day = (FRI - FRI.replace(year=1970, month=1, day=1)).days
    return Population(account_id=[1, 2], kind=[0, 2], cash=[0, 0], loan=[530_000, 600_000],
                      pos_account=[0, 1], pos_instrument=[1, 1], pos_shares=[100, 100],
                      pos_entry=[10_000, 10_000], pos_trade_date=[day, day])


def run(submit: bool = True):
    rp = Replay(STOCK, "relative", venue="krx", seed=1, krx_rules=NO_VI)
    pop = accounts()
    cfd = Broker(load_rules("cfd"), pop, submit_orders=submit).attach(rp)
    credit = Broker(load_rules("krx-credit", ["grace_days=0"]), pop,
                    submit_orders=submit).attach(rp)
    rp.run([day_tape()])
    return rp, cfd, credit


def test_a_cfd_sale_breaks_a_credit_account_sold_next_morning_as_generation_1():
    """By hand (docs/reference/krx.md):

    - CFD: sold at once when equity / (0.4 x value) <= 50%, i.e. value <= 750,000: the
      tape's 7,500 print. The sale, a market order, is priced at the lower limit (7,000)
      and takes the bid of 100 at 7,400: the last price is 7,400, set by a generation-0
      forced order.
    - Friday's closing auction has nothing to cross: the close is 7,400, of generation 1.
      Credit: (100 x 7,400) / 530,000 = 1.396 < 1.40, a margin call due the same day
      (grace_days 0), not met: sold in Monday's pre-open auction at Monday's lower limit,
      7,400 - 30% = 5,180, enough to restore 140%: (740,000 - x) / (530,000 - x) = 1.4,
      x = 5,000, one share. It is generation 1: the close that breached it was set by the
      generation-0 CFD sale.
    - Monday's opening auction: in relative mode the tape's later prices move by the forced
      sales' impact, 7,400 - 7,500 = -100, so its bid of 10 at 7,300 stands at 7,200. One
      share offered at 5,180 against it: every price from 5,180 to 7,200 executes 1; the
      one closest to the base (7,400) is 7,200.
    """
    rp, cfd, credit = run()
    c = cfd.forced_orders()
    assert (c.ts.tolist(), c.generation.tolist()) == ([seoul_ns(FRI, t(10, 2))], [0])
    assert (c.filled_qty.iloc[0], c.avg_price.iloc[0]) == (100, 7_400)
    k = credit.forced_orders()
    assert k.ts.tolist() == [seoul_ns(MON, t(8, 30))]
    assert (k.qty.iloc[0], k.generation.iloc[0], k.limit_price.iloc[0]) == (1, 1, 5_180)
    assert (k.filled_qty.iloc[0], k.avg_price.iloc[0]) == (1, 7_200)
    friday = credit.snapshots[0]
    assert friday.state.iloc[0] == "selling"
    assert np.isclose(friday.collateral_ratio.iloc[0], 740_000 / 530_000)
    # each broker keeps to its kind: the CFD broker values only the CFD account
    assert cfd.snapshots[0].account_id.tolist() == [2]
    assert friday.account_id.tolist() == [1]


def test_without_forced_orders_the_close_breaks_nobody():
    """The counterfactual switches every broker off: the CFD sale is recorded, not sent, so
    Friday closes at the tape's 7,500 and the credit account, at 750,000 / 530,000 = 1.415,
    is not called."""
    _, cfd, credit = run(submit=False)
    assert len(cfd.forced_orders()) == 1 and cfd.forced_orders().filled_qty.iloc[0] == 0
    assert credit.forced_orders().empty
    assert credit.snapshots[0].state.iloc[0] == "ok"


def test_two_brokers_from_the_command_line(tmp_path):
    """The cascade of tests/test_broker_cli.py with its three accounts split between two
    brokers, each with its own population file: A and C at one, B at the other. The
    generations run across them (A's sale breaches B, B's breaches C); the tables name each
    row's broker; the summary has each broker's figures and their total; the counterfactual
    switches both off."""
    tape_path = write_tape(tmp_path / "book.parquet", book_tape(),
                           InstrumentTable([Instrument(1, "X", tick_units=100)]))
    header = "account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
    one, two = tmp_path / "a.csv", tmp_path / "b.csv"
    one.write_text(header + "101,instant,X,60,10000,0,426450,1970-01-01\n"
                   "103,instant,X,120,10000,0,835757,1970-01-01\n")
    two.write_text(header + "102,instant,X,100,10000,0,703607,1970-01-01\n")
    sells = tmp_path / "sells.csv"
    sells.write_text("ts,instrument,side,type,price,size\n3,X,sell,market,,150\n")
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["replay", str(tape_path), "--broker", "instant",
                                 "--population", str(one), "--broker", "instant",
                                 "--population", str(two), "--inject", str(sells),
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    forced = pq.read_table(out / "forced_orders.parquet").to_pandas()
    rows = sorted(zip(forced.account_id, forced.broker, forced.generation, forced.filled_qty,
                      strict=True))
    assert rows == [(101, "instant", 0, 60), (102, "instant-2", 1, 100),
                    (103, "instant", 2, 120)]
    assert forced.ts.is_monotonic_increasing
    summary = json.loads((out / "summary.json").read_text())
    per = summary["brokers"]
    assert list(per) == ["instant", "instant-2"]
    assert (per["instant"]["broker"]["forced_volume"],
            per["instant-2"]["broker"]["forced_volume"]) == (180, 100)
    total, cf = summary["broker"], summary["counterfactual"]
    assert (total["forced_volume"], total["accounts_managed"], total["max_generation"]) == \
        (280, 3, 2)
    assert abs(total["max_drawdown"] - 0.04) < 1e-12 and abs(cf["max_drawdown"] - 0.01) < 1e-12
    # without forced orders only A is ever breached, and nothing is sold
    assert (cf["accounts_called"], cf["forced_volume"]) == (1, 0)
    assert summary["config"]["brokers"] == ["instant", "instant-2"]
    accounts = pq.read_table(out / "accounts.parquet").to_pandas()
    assert sorted(zip(accounts.account_id, accounts.broker, strict=True)) == [
        (101, "instant"), (102, "instant-2"), (103, "instant")]
    assert "broker instant-2:" in r.output and "broker total:" in r.output


def test_brokers_and_populations_must_pair(tmp_path):
    pop = tmp_path / "a.csv"
    r = CliRunner().invoke(app, ["replay", "x.parquet", "--broker", "instant", "--broker",
                                 "cfd", "--population", str(pop), "--population", str(pop),
                                 "--population", str(pop)])
    assert r.exit_code == 2 and "one population per broker" in r.output
    r = CliRunner().invoke(app, ["replay", "x.parquet", "--broker", "instant", "--broker",
                                 "cfd", "--population", str(pop), "--set", "grace_days=0"])
    assert r.exit_code == 2 and "after commas" in r.output


def test_a_strategy_of_another_kind_than_the_brokers_has_a_broker_of_its_own():
    """A credit strategy in a market whose one broker is a CFD broker: its account is held
    by a broker of the krx-credit preset, alone; the CFD broker keeps the population."""
    from replay.runner import BrokerSpec  # noqa: F401  (the spec the CLI builds)
    from strategies.base import Strategy, attach_strategy

    class Holder(Strategy):
        account = "credit"
        cash = 1_000_000

    rp = Replay(STOCK, "relative", venue="krx", seed=1, krx_rules=NO_VI)
    pop = accounts()
    cfd = Broker(load_rules("cfd"), pop).attach(rp)
    host = attach_strategy(rp, Holder())
    assert [b.rules.name for b in rp.brokers] == ["cfd", "krx-credit"]
    assert host.broker is rp.brokers[1] and host.broker is not cfd
    rp.run([day_tape()])
    assert len(cfd.forced_orders()) == 1  # the CFD account, sold as before


def test_the_report_shows_each_brokers_share_and_its_accounts(tmp_path):
    """Credit and 미수 accounts at two brokers on the three-day tape of
    tests/test_broker_close_rules.py (credit called on Friday and sold on Tuesday, 미수 sold
    on T+3 = Wednesday): the report has each broker's share of the cascade and each one's
    accounts at each close in its own rules' measure."""
    from datetime import date

    from tests.test_broker_close_rules import THREE_DAYS, TUE

    days = THREE_DAYS + [(TUE, t(15, 25), BID, 9_600, 5), (TUE, t(15, 25), ASK, 9_600, 5),
                         (date(2024, 1, 10), t(8, 40), BID, 9_500, 1_000)]
    path = write_tape(tmp_path / "days.parquet", tape(days), STOCK)
    pop = tmp_path / "accounts.csv"
    pop.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                   "1,credit,S,100,10000,0,700000,2024-01-05\n"
                   "2,misu,S,100,10000,0,600000,2024-01-05\n")
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["replay", str(path), "--seed", "1", "--broker", "krx-credit",
                                 "--broker", "krx-misu", "--population", str(pop),
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    forced = pq.read_table(out / "forced_orders.parquet").to_pandas()
    assert sorted(set(forced.broker)) == ["krx-credit", "krx-misu"]
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    page = (out / "report.html").read_text()
    assert "Each broker&#x27;s share of the cascade" in page or \
        "Each broker's share of the cascade" in page
    assert "Accounts at each close (krx-credit): collateral ratio" in page
    assert "Accounts at each close (krx-misu)" in page
