"""A liquidation cascade computed by hand: a small book, three ``instant`` accounts with
staggered trigger prices, one exogenous sell. Every forced fill, generation and price below
is worked out in the comments."""

from __future__ import annotations

import numpy as np

from brokers.engine import Broker, trigger_prices
from brokers.population import Population
from brokers.rules import load_rules
from replay.engine import InjectedOrders, Replay
from replay.tape import ADD, ASK, BID, F_LAST, TRADE, Events, Instrument, InstrumentTable
from venues.codes import (
    ORDER_TYPES,
)

MARKET = ORDER_TYPES["market"]


RULES = load_rules("instant")  # maintenance 140% on every trade, all sold at market


def book_tape():
    """A print at 10,000 (the last price), then bids of 100 at 10,000 .. 9,700 and 500 at
    9,600."""
    rows = [(1, 1, TRADE, ASK, 10_000, 1, 0)]
    for k, (px, sz) in enumerate([(10_000, 100), (9_900, 100), (9_800, 100), (9_700, 100),
                                  (9_600, 500)]):
        rows.append((2, 1, ADD, BID, px, sz, k + 1))
    rows.append((2, 1, ADD, ASK, 10_100, 100, 99))
    cols = ["ts", "instrument", "action", "side", "price", "size", "order_id"]
    ev = {c: np.array([r[i] for r in rows], np.int64) for i, c in enumerate(cols)}
    ev["flags"] = np.full(len(rows), F_LAST)
    return Events.from_columns(ev)


# Loans chosen so each trigger sits halfway between two ticks: the account breaches when
# shares * P / loan < 1.40, i.e. P < 1.40 * loan / shares:
#   A:  60 shares, loan 426,450: 1.40 * 426,450 / 60  = 9,950.5 -> trigger 9,950
#   B: 100 shares, loan 703,607: 1.40 * 703,607 / 100 = 9,850.498 -> trigger 9,850
#   C: 120 shares, loan 835,757: 1.40 * 835,757 / 120 = 9,750.498 -> trigger 9,750
# At the last price 10,000 their ratios are 1.407, 1.421 and 1.436: none is breached.
ACCOUNTS = Population(account_id=[101, 102, 103], kind=[3, 3, 3], cash=[0, 0, 0],
                      loan=[426_450, 703_607, 835_757], pos_account=[0, 1, 2],
                      pos_instrument=[1, 1, 1], pos_shares=[60, 100, 120],
                      pos_entry=[10_000] * 3, pos_trade_date=[19_723] * 3)


def test_the_instant_preset_is_what_the_cascade_assumes():
    assert (RULES.valuation, RULES.maintenance_ratio, RULES.size, RULES.execution) == \
        ("last", 1.4, "all", "market")


def test_trigger_prices_in_closed_form():
    # with cash: 60 P + 60,000 < 1.4 x 426,450 = 597,030 -> P < 8,950.5 -> 8,950; cash
    # covering 1.4 x the loan leaves no trigger; a CFD's cash is weighted by its ratio:
    # 60 P <= 1.4 x (426,450 - 60,000) = 513,030 -> P <= 8,550.5 -> 8,550
    assert trigger_prices([60, 60], [426_450, 426_450], 14_000,
                          cash=[60_000, 597_030]).tolist() == [8_950, -1]
    assert trigger_prices([60], [426_450], 14_000, strict=False, cash=[60_000],
                          cash_bp=14_000).tolist() == [8_550]
    assert trigger_prices(ACCOUNTS.pos_shares, ACCOUNTS.loan, 14_000).tolist() == \
        [9_950, 9_850, 9_750]


def test_a_hand_computed_three_generation_cascade():
    instruments = InstrumentTable([Instrument(1, "X", tick_units=100)])
    rp = Replay(instruments)
    broker = Broker(RULES, ACCOUNTS).attach(rp)
    # the exogenous sell: 150 at market takes 100 @ 10,000 and 50 @ 9,900; last 9,900
    sell = InjectedOrders(np.array([3]), np.array([1]), np.array([ASK]), np.array([MARKET]),
                          np.array([0]), np.array([150]))
    result = rp.run([book_tape()], sell)
    forced = broker.forced_orders()
    # 9,900 <= A's trigger 9,950: A is breached by a price the exogenous order set:
    # generation 0. A sells 60: 50 @ 9,900, 10 @ 9,800 -> last 9,800 (set by generation 0).
    # 9,800 <= B's 9,850: generation 1. B sells 100: 90 @ 9,800, 10 @ 9,700 -> last 9,700.
    # 9,700 <= C's 9,750: generation 2. C sells 120: 90 @ 9,700, 30 @ 9,600.
    assert forced.account_id.tolist() == [101, 102, 103]
    assert forced.generation.tolist() == [0, 1, 2]
    assert forced.trigger.tolist() == [9_950, 9_850, 9_750]
    assert forced.qty.tolist() == [60, 100, 120] and forced.filled_qty.tolist() == [60, 100, 120]
    inj = result.fills[result.fills.source == 1]
    by_taker = [list(zip(g.price, g["size"], strict=True)) for _, g in inj.groupby("taker")]
    assert by_taker == [[(10_000, 100), (9_900, 50)],  # the exogenous sell
                        [(9_900, 50), (9_800, 10)],  # A
                        [(9_800, 90), (9_700, 10)],  # B
                        [(9_700, 90), (9_600, 30)]]  # C
    assert forced.avg_price.tolist() == [(50 * 9_900 + 10 * 9_800) / 60,
                                         (90 * 9_800 + 10 * 9_700) / 100,
                                         (90 * 9_700 + 30 * 9_600) / 120]
    # ratios at the trigger: shares x price / loan
    assert np.allclose(forced.ratio_at_trigger, [60 * 9_900 / 426_450, 100 * 9_800 / 703_607,
                                                 120 * 9_700 / 835_757])


def test_without_the_exogenous_sell_nobody_is_liquidated():
    rp = Replay(InstrumentTable([Instrument(1, "X", tick_units=100)]))
    broker = Broker(RULES, ACCOUNTS).attach(rp)
    rp.run([book_tape()])
    assert broker.forced_orders().empty


def test_proceeds_repay_the_loan_and_a_wiped_out_account_leaves_a_shortfall():
    # The same book, but the first print (10,000) comes after it: all three accounts are
    # already below 140% there and are sold at once (generation 0), highest trigger first.
    # Triggers: (shares x P + cash) / loan < 1.4 (krx.md:78, cash counts as collateral):
    #   F: 50 P + 20,000 < 1.4 x 600,000 = 840,000 -> P < 16,400 -> 16,399
    #   D: 990,000 x 1.4 / 100 = 13,860 -> 13,859;  E: 2,900,000 x 1.4 / 300 = 13,533.3 -> 13,533
    # F sells 50 @ 10,000 = 500,000: the loan keeps 100,000, the cash 20,000 pays part of it,
    #   the broker's shortfall is 80,000.
    # D sells 50 @ 10,000 + 50 @ 9,900 = 995,000: the loan 990,000 is repaid, 5,000 left.
    # E sells 50 @ 9,900, 100 @ 9,800, 100 @ 9,700, 50 @ 9,600 = 2,925,000: 25,000 left.
    pop = Population(account_id=[1, 2, 3], kind=[3, 3, 3], cash=[0, 0, 20_000],
                     loan=[990_000, 2_900_000, 600_000], pos_account=[0, 1, 2],
                     pos_instrument=[1, 1, 1], pos_shares=[100, 300, 50],
                     pos_entry=[10_000] * 3, pos_trade_date=[19_723] * 3)
    tape = book_tape()
    tape.ts[0] = 3  # the print after the book (rows stay in time order once sorted)
    tape = tape.take(np.argsort(tape.ts, kind="stable"))
    rp = Replay(InstrumentTable([Instrument(1, "X", tick_units=100)]))
    broker = Broker(RULES, pop).attach(rp)
    rp.run([tape])
    forced = broker.forced_orders()
    assert forced.account_id.tolist() == [3, 1, 2]
    assert forced.trigger.tolist() == [16_399, 13_859, 13_533]
    assert forced.generation.tolist() == [0, 0, 0]
    acc = broker.accounts().set_index("account_id")
    cols = ["shares_left", "proceeds", "loan_left", "cash_left", "shortfall"]
    assert acc.loc[3, cols].tolist() == [0, 500_000, 80_000, 0, 80_000]
    assert acc.loc[1, cols].tolist() == [0, 995_000, 0, 5_000, 0]
    assert acc.loc[2, cols].tolist() == [0, 2_925_000, 0, 25_000, 0]


def test_an_account_holding_two_names_is_revalued_across_both():
    # 50 X + 50 Y at 10,000, loan 710,000: breached when 50 X + 50 Y < 1.4 x 710,000 =
    # 994,000. With Y at 10,000, X's trigger is the highest P with 50 P + 500,000 < 994,000:
    # 9,879. A sell of 250 X takes 100 @ 10,000, 100 @ 9,900, 50 @ 9,800: X's last 9,800,
    # the account is worth 990,000 < 994,000 and both names are sold at market:
    # 50 X @ 9,800 and 50 Y @ 10,000.
    rows = [(1, 1, TRADE, ASK, 10_000, 1, 0), (1, 2, TRADE, ASK, 10_000, 1, 0)]
    for k, px in enumerate([10_000, 9_900, 9_800, 9_700]):
        rows.append((2, 1, ADD, BID, px, 100, k + 1))
    rows.append((2, 2, ADD, BID, 10_000, 100, 10))
    cols = ["ts", "instrument", "action", "side", "price", "size", "order_id"]
    ev = {c: np.array([r[i] for r in rows], np.int64) for i, c in enumerate(cols)}
    ev["flags"] = np.full(len(rows), F_LAST)
    pop = Population(account_id=[5], kind=[3], cash=[0], loan=[710_000], pos_account=[0, 0],
                     pos_instrument=[1, 2], pos_shares=[50, 50], pos_entry=[10_000] * 2,
                     pos_trade_date=[19_723] * 2)
    rp = Replay(InstrumentTable([Instrument(1, "X", tick_units=100),
                                 Instrument(2, "Y", tick_units=100)]))
    broker = Broker(RULES, pop).attach(rp)
    sell = InjectedOrders(np.array([3]), np.array([1]), np.array([ASK]), np.array([MARKET]),
                          np.array([0]), np.array([250]))
    rp.run([Events.from_columns(ev)], sell)
    forced = broker.forced_orders()
    assert forced.instrument.tolist() == [1, 2]
    assert forced.filled_qty.tolist() == [50, 50]
    assert forced.avg_price.tolist() == [9_800, 10_000]
    assert forced.generation.tolist() == [0, 0]
    # a sell of 150 X (last 9,900: 995,000 >= 994,000) breaches nobody
    rp = Replay(InstrumentTable([Instrument(1, "X", tick_units=100),
                                 Instrument(2, "Y", tick_units=100)]))
    broker = Broker(RULES, pop).attach(rp)
    sell.size[:] = 150
    rp.run([Events.from_columns(ev)], sell)
    assert broker.forced_orders().empty
