"""Close-valued broker rules at the KRX venue, on hand-built three-day tapes: a credit
margin call at the close, the D+1 deadline, the forced sale in the next pre-open auction at
the lower limit sized to restore 140%; a 미수 purchase unpaid on T+2 sold on T+3
(docs/reference/krx.md, 신용융자 and 미수)."""

from __future__ import annotations

from datetime import date
from datetime import time as t

import numpy as np

from brokers.engine import Broker
from brokers.population import Population
from brokers.rules import load_rules
from replay.engine import Replay
from replay.tape import ADD, ASK, BID, F_LAST, TRADE, Events, Instrument, InstrumentTable
from venues.krx.session import seoul_ns
from venues.krx.venue import KrxRules

FRI, MON, TUE = date(2024, 1, 5), date(2024, 1, 8), date(2024, 1, 9)


def tape(rows):
    """(day, time, side, price, size) adds, one order id each."""
    cols = {c: [] for c in ("ts", "instrument", "action", "side", "price", "size",
                            "order_id", "flags")}
    for k, (day, at, side, px, sz) in enumerate(sorted(rows, key=lambda r: (r[0], r[1]))):
        for c, v in zip(cols, (seoul_ns(day, at), 1, ADD, side, px, sz, k + 1, F_LAST),
                        strict=True):
            cols[c].append(v)
    return Events.from_columns({c: np.array(v, np.int64) for c, v in cols.items()})


THREE_DAYS = [
    (FRI, t(8, 40), BID, 10_000, 100), (FRI, t(8, 40), ASK, 10_000, 100),  # opens 10,000
    (FRI, t(15, 25), BID, 9_700, 50), (FRI, t(15, 25), ASK, 9_700, 50),  # closes 9,700
    (MON, t(8, 40), BID, 9_700, 10), (MON, t(8, 40), ASK, 9_700, 10),
    (MON, t(15, 25), BID, 9_700, 10), (MON, t(15, 25), ASK, 9_700, 10),  # closes 9,700
    (TUE, t(8, 40), BID, 9_600, 10),  # a buyer in Tuesday's opening auction
]
STOCK = InstrumentTable([Instrument(1, "S", venue="XKRX", prev_close_units=10_000,
                                    market="KOSPI")])


def one_account(kind, loan, shares=100, trade_day=FRI, cash=0):
    epoch = (trade_day - date(1970, 1, 1)).days
    return Population(account_id=[7], kind=[kind], cash=[cash], loan=[loan], pos_account=[0],
                      pos_instrument=[1], pos_shares=[shares], pos_entry=[10_000],
                      pos_trade_date=[epoch])


def test_credit_margin_call_deadline_and_pre_open_sale_at_the_lower_limit():
    # 100 shares, loan 700,000 (krx.md:77-82). Friday's close 9,700: 970,000 / 700,000 =
    # 1.386 < 1.40 -> margin call, top-up due D+1 = Monday (krx.md:80-81). Nobody tops up
    # (cure_probability 0). Monday's close 9,700: still called, deadline reached -> sold in
    # Tuesday's pre-open auction at Tuesday's lower limit: base 9,700 -> 6,790.
    # Restore 140%: sell value x with (970,000 - x) / (700,000 - x) = 1.4 -> x = 25,000,
    # 3 shares at the 9,700 close (ceil(25,000 / 9,700)).
    rp = Replay(STOCK, venue="krx", seed=1)
    broker = Broker(load_rules("krx-credit"), one_account(0, 700_000)).attach(rp)
    rp.run([tape(THREE_DAYS)])
    forced = broker.forced_orders()
    assert len(forced) == 1
    f = forced.iloc[0]
    assert f.ts == seoul_ns(TUE, t(8, 30))  # entered at the pre-open
    assert (f.qty, f.generation, f.trigger) == (3, 0, 9_700)
    sale = rp.injected_orders()[-1]
    assert sale[4] == 6_790  # the lower limit (krx.md:22-25: 9,700 - 2,910)
    # Tuesday's uncross: 3 shares offered at 6,790 against a 9,600 bid; every price from
    # 6,790 to 9,600 executes 3; the base 9,700 is closest to 9,600 (krx.md:37-41)
    assert (f.filled_qty, f.avg_price) == (3, 9_600)
    acc = broker.accounts().iloc[0]
    assert (acc.shares_left, acc.proceeds, acc.loan_left) == (97, 28_800, 671_200)
    snaps = broker.snapshots
    # called on Friday; the sale is scheduled on Monday; after Tuesday's sale at 9,600 the
    # account, judged again at Tuesday's 9,600 close, is below 140% again:
    # 97 x 9,600 / 671,200 = 1.387 -> a new call
    assert [s.state.iloc[0] for s in snaps] == ["called", "selling", "called"]
    assert np.isclose(snaps[0].collateral_ratio.iloc[0], 970_000 / 700_000)


def test_a_credit_account_above_140_is_left_alone():
    rp = Replay(STOCK, venue="krx", seed=1)
    broker = Broker(load_rules("krx-credit"), one_account(0, 690_000)).attach(rp)
    rp.run([tape(THREE_DAYS)])  # 970,000 / 690,000 = 1.406
    assert broker.forced_orders().empty
    assert [s.state.iloc[0] for s in broker.snapshots] == ["ok", "ok", "ok"]


def test_a_top_up_cures_the_call():
    # cure_probability 1: at the deadline the account pays the loan down to value / 1.4
    rules = load_rules("krx-credit", ["cure_probability=1"])
    rp = Replay(STOCK, venue="krx", seed=1)
    broker = Broker(rules, one_account(0, 700_000)).attach(rp)
    rp.run([tape(THREE_DAYS)])
    assert broker.forced_orders().empty
    assert broker.accounts().loan_left.iloc[0] == int(970_000 / 1.4)


def test_misu_unpaid_on_t_plus_2_is_sold_on_t_plus_3():
    # krx.md:69-72: bought Friday (T) with 40% down; the rest, 600,000, is due T+2 =
    # Tuesday; unpaid -> sold in the T+3 pre-open auction at the lower limit, enough to
    # cover 600,000 at the prior close less 15%: ceil(600,000 / (9,600 x 0.85)) = 74 shares.
    days = THREE_DAYS + [(TUE, t(15, 25), BID, 9_600, 5), (TUE, t(15, 25), ASK, 9_600, 5),
                         (date(2024, 1, 10), t(8, 40), BID, 9_500, 1_000)]
    rp = Replay(STOCK, venue="krx", seed=1)
    broker = Broker(load_rules("krx-misu"), one_account(1, 600_000)).attach(rp)
    rp.run([tape(days)])
    forced = broker.forced_orders()
    assert len(forced) == 1
    f = forced.iloc[0]
    assert f.ts == seoul_ns(date(2024, 1, 10), t(8, 30))
    assert f.qty == -(-600_000 // int(9_600 * 0.85))
    assert rp.injected_orders()[-1][4] == 6_720  # Wednesday's lower limit, base 9,600


def test_a_credit_loan_at_maturity_is_sold_the_next_morning():
    # krx.md:77 ("term 90 days") and :82 ("At maturity, unpaid: sold next morning"): bought
    # 2023-10-07, 90 calendar days later is Friday 2024-01-05. 100 shares, loan 300,000:
    # the ratio (3.2) is fine, but the loan is due: sold in Monday's pre-open auction at
    # the lower limit, enough to repay 300,000 at the 9,700 close: ceil(300,000 / 9,700)
    # = 31 shares. Monday's opening auction has one bid of 10 at 9,700 and its closing
    # auction another: 10 fill in each (at 9,700), 11 are left at the lower limit at the
    # close and entered again on Tuesday.
    epoch = (date(2023, 10, 7) - date(1970, 1, 1)).days
    pop = Population(account_id=[7], kind=[0], cash=[0], loan=[300_000], pos_account=[0],
                     pos_instrument=[1], pos_shares=[100], pos_entry=[10_000],
                     pos_trade_date=[epoch])
    rp = Replay(STOCK, venue="krx", seed=1)
    broker = Broker(load_rules("krx-credit"), pop).attach(rp)
    rp.run([tape(THREE_DAYS)])
    forced = broker.forced_orders()
    assert forced.qty.tolist() == [31, 11]
    assert forced.ts.tolist() == [seoul_ns(MON, t(8, 30)), seoul_ns(TUE, t(8, 30))]
    assert forced.filled_qty.iloc[0] == 20 and forced.avg_price.iloc[0] == 9_700
    # a loan that is not due yet is left alone: 89 days
    early = Population(account_id=[7], kind=[0], cash=[0], loan=[300_000], pos_account=[0],
                       pos_instrument=[1], pos_shares=[100], pos_entry=[10_000],
                       pos_trade_date=[epoch + 1 + 3])  # matures after Tuesday
    rp = Replay(STOCK, venue="krx", seed=1)
    assert Broker(load_rules("krx-credit"), early).attach(rp) is not None
    rp.run([tape(THREE_DAYS)])
    assert rp.brokers[0].forced_orders().empty


def test_interest_accrues_on_the_loan_between_closes():
    # 3.65% a year is 0.01% a calendar day: Friday -> Monday (3 days) adds 0.03%,
    # Monday -> Tuesday 0.01%: 690,000 -> 690,207 -> 690,276
    rules = load_rules("krx-credit", ["interest_rate=0.0365"])
    rp = Replay(STOCK, venue="krx", seed=1)
    broker = Broker(rules, one_account(0, 690_000)).attach(rp)
    rp.run([tape(THREE_DAYS)])
    assert [int(s.loan.iloc[0]) for s in broker.snapshots] == [690_000, 690_207, 690_276]


NO_VI = KrxRules(static_vi_bp=0, dynamic_vi_bp_other=0, closing_vi_bp_other=0)


def test_cfd_sold_at_once_at_a_50pct_margin_level():
    # krx.md:87-89: 40% margin; <= 50% intraday -> sold at once. 100 shares bought at
    # 10,000 with 400,000 down: loan 600,000. Margin level = (V - 600,000) / (0.4 V) <= 0.5
    # <=> V <= 750,000 <=> P <= 7,500. (VIs are switched off so prints can walk down.)
    rows = [(FRI, t(8, 40), BID, 10_000, 10), (FRI, t(8, 40), ASK, 10_000, 10),
            (FRI, t(9, 30), BID, 7_400, 100)]
    ev = tape(rows)
    prints = [(t(10, 0), 9_000), (t(10, 1), 7_600), (t(10, 2), 7_500), (t(10, 3), 7_450)]
    extra = {c: [] for c in ("ts", "instrument", "action", "side", "price", "size")}
    for at, px in prints:
        for c, v in zip(extra, (seoul_ns(FRI, at), 1, TRADE, ASK, px, 1), strict=True):
            extra[c].append(v)
    ev = Events.concat([ev, Events.from_columns({c: np.array(v, np.int64)
                                                 for c, v in extra.items()} |
                                                {"flags": np.full(4, F_LAST)})])
    ev = ev.take(np.argsort(ev.ts, kind="stable"))
    rp = Replay(STOCK, venue="krx", seed=1, krx_rules=NO_VI)
    broker = Broker(load_rules("cfd"), one_account(2, 600_000)).attach(rp)
    rp.run([ev])
    forced = broker.forced_orders()
    assert forced.ts.tolist() == [seoul_ns(FRI, t(10, 2))]  # the 7,500 print, not 7,600
    assert (forced.qty.iloc[0], forced.filled_qty.iloc[0], forced.avg_price.iloc[0]) == \
        (100, 100, 7_400)


def test_cfd_margin_call_below_70pct_at_the_close():
    # krx.md:88: margin level < 70% after the close -> top-up by the next day, else sold.
    # (V - 600,000) / (0.4 V) < 0.7 <=> V < 833,333.3: a close of 8,300 (V 830,000) calls,
    # 8,400 (V 840,000) does not. Called on Friday, due Monday, sold at Tuesday's pre-open.
    def closes(px):
        return [(FRI, t(8, 40), BID, 10_000, 10), (FRI, t(8, 40), ASK, 10_000, 10),
                (FRI, t(15, 25), BID, px, 10), (FRI, t(15, 25), ASK, px, 10),
                (MON, t(15, 25), BID, px, 10), (MON, t(15, 25), ASK, px, 10),
                (TUE, t(8, 40), BID, px, 10)]
    for px, sold in ((8_300, True), (8_400, False)):
        rp = Replay(STOCK, venue="krx", seed=1, krx_rules=NO_VI)
        broker = Broker(load_rules("cfd"), one_account(2, 600_000)).attach(rp)
        rp.run([tape(closes(px))])
        forced = broker.forced_orders()
        assert (not forced.empty) == sold
        if sold:
            assert forced.ts.tolist() == [seoul_ns(TUE, t(8, 30))]
            assert forced.qty.tolist() == [100]  # "sold": the whole position
            assert [s.state.iloc[0] for s in broker.snapshots[:2]] == ["called", "selling"]


def test_misu_freeze_after_a_sale_above_100000_won():
    # krx.md:73-74: frozen 30 days if the shortfall exceeded 100,000 won
    days = THREE_DAYS + [(TUE, t(15, 25), BID, 9_600, 5), (TUE, t(15, 25), ASK, 9_600, 5),
                         (date(2024, 1, 10), t(8, 40), BID, 9_500, 1_000)]
    for loan, frozen in ((600_000, True), (90_000, False)):
        rp = Replay(STOCK, venue="krx", seed=1)
        broker = Broker(load_rules("krx-misu"), one_account(1, loan)).attach(rp)
        rp.run([tape(days)])
        assert (broker.snapshots[-1].state.iloc[0] == "frozen") == frozen


def test_cure_while_the_loss_is_below_a_threshold():
    # the investor tops up while the loss vs the entry price is below x: at Monday's close
    # the loss is 1 - 9,700 / 10,000 = 3%
    for max_loss, sold in ((0.05, False), (0.02, True)):
        rules = load_rules("krx-credit", [f"cure_max_loss={max_loss}"])
        rp = Replay(STOCK, venue="krx", seed=1)
        broker = Broker(rules, one_account(0, 700_000)).attach(rp)
        rp.run([tape(THREE_DAYS)])
        assert (not broker.forced_orders().empty) == sold


def test_cash_in_the_account_counts_as_collateral():
    # krx.md:78: collateral value / loan. 100 shares at Friday's 9,700 close, 80,000 won of
    # cash, loan 760,000: (970,000 + 80,000) / 760,000 = 1.382 < 1.40 -> called (netting
    # the cash against the loan instead would give 970,000 / 680,000 = 1.426: no call).
    # Restore 140% by Monday's deadline: sell x with (1,050,000 - x) / (760,000 - x) = 1.4
    # -> x = 35,000: 4 shares at 9,700 (ceil(35,000 / 9,700)).
    rp = Replay(STOCK, venue="krx", seed=1)
    broker = Broker(load_rules("krx-credit"),
                    one_account(0, 760_000, cash=80_000)).attach(rp)
    rp.run([tape(THREE_DAYS)])
    snaps = broker.snapshots
    assert np.isclose(snaps[0].collateral_ratio.iloc[0], 1_050_000 / 760_000)
    assert snaps[0].state.iloc[0] == "called"
    assert broker.forced_orders().qty.tolist() == [4]
    # 95,000 more cash: 1,145,000 / 760,000 = 1.507 -> never called
    rp = Replay(STOCK, venue="krx", seed=1)
    broker = Broker(load_rules("krx-credit"),
                    one_account(0, 760_000, cash=175_000)).attach(rp)
    rp.run([tape(THREE_DAYS)])
    assert broker.forced_orders().empty
    assert [s.state.iloc[0] for s in broker.snapshots] == ["ok", "ok", "ok"]
