"""Each margin rule class on a case small enough to compute by hand (brokers/margin.py): its
ratio, its trigger, its close test, its cure and its sale size; the trigger inequality and
its closed-form inverse agree; a strategy reads its account through the broker's Account."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from datetime import time as t

import numpy as np
import pytest

from brokers.engine import Account, Broker
from brokers.margin import (
    BP,
    CALLED,
    MARGIN_RULES,
    OK,
    CfdMargin,
    Close,
    CreditMargin,
    InstantMargin,
    MisuMargin,
    breaches,
    margin_rule,
    register,
    trigger_price,
)
from brokers.rules import KINDS, list_presets, load_rules
from replay.engine import Replay
from replay.tape import ADD, ASK, BID, F_LAST, Events, Instrument, InstrumentTable
from strategies.base import CashAccount, Strategy, attach_strategy
from venues.krx.calendar import KRX_CALENDAR
from venues.krx.session import seoul_ns

WED, THU, FRI = date(2024, 1, 3), date(2024, 1, 4), date(2024, 1, 5)


def close(day, value, loan, cash, first_trade=WED, state=None, deadline=None):
    """A close over accounts of one position each, nothing sold, generation 0."""
    n = len(value)
    value, loan, cash = (np.asarray(x, np.int64) for x in (value, loan, cash))
    return Close(day=day, calendar=KRX_CALENDAR, value=value, loan=loan, cash=cash,
                 debt=loan - cash, eligible=np.ones(n, bool),
                 generation_at_close=np.zeros(n, np.int64),
                 first_trade=lambda: np.full(n, np.datetime64(first_trade, "D")),
                 state=np.zeros(n, np.int8) if state is None else np.asarray(state, np.int8),
                 deadline=np.zeros(n, np.int64) if deadline is None else np.asarray(deadline),
                 generation=np.zeros(n, np.int64), called=np.zeros(n, bool),
                 matured=np.zeros(n, bool))


def test_each_kind_has_its_class_chosen_by_the_rules_kind():
    for rules in list_presets():
        assert type(margin_rule(rules)) is MARGIN_RULES[rules.kind]
    assert {k: MARGIN_RULES[k] for k in ("credit", "misu", "cfd", "instant")} == {
        "credit": CreditMargin, "misu": MisuMargin, "cfd": CfdMargin, "instant": InstantMargin}
    assert all(kind in MARGIN_RULES for kind in KINDS)  # every kind a rules file may give


def test_the_trigger_price_is_the_highest_price_that_breaches():
    """``trigger_price`` inverts ``breaches`` exactly: at the trigger the account breaches,
    one won above it does not, for any holdings, cash, loan and ratio."""
    rng = np.random.default_rng(3)
    for _ in range(3_000):
        shares = int(rng.integers(1, 10**4))
        others, loan, cash = (int(x) for x in rng.integers(0, 10**9, 3))
        ratio_bp = int(rng.integers(10_000, 30_000))
        cash_bp = int(rng.choice([BP, ratio_bp]))
        strict = bool(rng.integers(2))
        p = trigger_price(shares, others, loan, cash, ratio_bp, cash_bp, strict)
        args = (loan, cash, ratio_bp, cash_bp, strict)
        if p >= 0:
            assert breaches(p * shares + others, *args)
        else:  # not even a price of 0 breaches
            assert not breaches(others, *args)
        assert not breaches((p + 1) * shares + others, *args)


def test_credit_ratio_call_cure_and_sale_size():
    """krx-credit: 140%, D+1, restore to 140%.

    - ratio: (1,000,000 + 120,000) / 800,000 = 1.40; (1,000,000 + 100,000) / 800,000 =
      1.375.
    - close test on Wednesday: 1.375 < 1.40 is called, due D+1 = Thursday; 1.40 is not (the
      test is strict). Not breached yet: the deadline is Thursday's close.
    - cure: pay the loan down to (value + cash) / 1.4 = 785,714.28 -> 800,000 - 785,714 =
      14,286; or deposit 1.4 x 800,000 - 1,100,000 = 20,000.
    - sale, with 90,000 of cash: (1,090,000 - x) / (800,000 - x) = 1.4 -> x = 75,000: 7.5,
      so 8 shares at 10,000 (7 leave 1,020,000 / 730,000 = 1.397).
    - a matured loan: enough to repay the whole debt 700,000: 70 shares at 10,000.
    """
    m = margin_rule(load_rules("krx-credit"))
    assert m.ratio([1_000_000, 1_000_000], [800_000] * 2, [120_000, 100_000]).tolist() == \
        [1.4, 1.375]
    assert m.intraday() is None
    c = close(WED, [1_000_000, 1_000_000], [800_000] * 2, [100_000, 120_000])
    assert not m.close_breaches(c).any()
    assert c.state.tolist() == [CALLED, OK] and c.called.tolist() == [True, False]
    assert c.deadline[0] == THU.toordinal()
    c2 = close(THU, [1_000_000], [800_000], [100_000], state=c.state[:1],
               deadline=c.deadline[:1])
    assert m.close_breaches(c2).tolist() == [True]
    assert m.cure_payment(c2).tolist() == [14_286]
    assert m.deposit_to_cure(1_000_000, 800_000, 100_000) == 20_000
    held, px = np.array([100]), np.array([10_000])
    assert m.sale_qty(held, px, 1_000_000, 800_000, 90_000, 710_000, False).tolist() == [8]
    assert m.sale_qty(held, px, 1_000_000, 800_000, 100_000, 700_000, True).tolist() == [70]


def test_a_credit_loan_reaches_its_term():
    """A loan opened on 2023-10-06 is 90 calendar days old on 2024-01-04: breached at that
    close although its ratio (3.0) is fine."""
    m = margin_rule(load_rules("krx-credit"))
    c = close(THU, [3_000_000], [1_000_000], [0], first_trade=date(2023, 10, 6))
    assert m.close_breaches(c).tolist() == [True] and c.matured.tolist() == [True]
    assert m.cure_payment(c).tolist() == [1_000_000]  # a matured loan is paid off


def test_instant_trigger_and_sale_size():
    """instant: 140% on every trade, strictly.

    10 shares, loan 10,000: 10 P x 10^4 < 14,000 x 10,000 -> P < 1,400: trigger 1,399. With
    1,000 of cash: 10 P x 10^4 < 1.4 x 10^8 - 1,000 x 10^4 = 1.3 x 10^8 -> P < 1,300:
    trigger 1,299; 10 shares at 1,299 (12,990) breach, at 1,300 (13,000) not. The whole
    position is sold.
    """
    m = margin_rule(load_rules("instant"))
    trig = m.intraday()
    assert trig == (14_000, True, BP)
    assert trig.prices([10, 10], [10_000, 10_000], [0, 1_000]).tolist() == [1_399, 1_299]
    assert trig.breached([12_990, 13_000], [10_000] * 2, [1_000] * 2).tolist() == [True, False]
    assert m.sale_qty(np.array([10]), np.array([1_299]), 12_990, 10_000, 1_000, 9_000,
                      False).tolist() == [10]


def test_cfd_ratio_trigger_call_and_cure():
    """cfd: margin 40%, call below 70% at the close, sold at or under 50% intraday.

    - the 50% level is value / (loan - cash) = 1 / (1 - 0.5 x 0.4) = 1.25: 12,500 bp, the
      cash weighted by it.
    - 100 shares, loan 800,000: 100 P x 10^4 <= 12,500 x 800,000 -> P <= 10,000 (at 10,000
      equity 200,000 is 50% of the 400,000 required); with 40,000 of cash: 100 P x 10^4 <=
      12,500 x 760,000 -> P <= 9,500.
    - ratio: 1,000,000 / 800,000 = 1.25.
    - close: value 1,000,000, debt 800,000: level 200,000 / 400,000 = 0.5 < 0.7, called;
      value 1,500,000: 700,000 / 600,000 = 1.17, not.
    - cure: bring the debt to value x (1 - 0.7 x 0.4) = 720,000: pay or deposit 80,000.
    """
    m = margin_rule(load_rules("cfd"))
    trig = m.intraday()
    assert trig == (12_500, False, 12_500)
    assert trig.prices([100, 100], [800_000] * 2, [0, 40_000]).tolist() == [10_000, 9_500]
    assert m.ratio(1_000_000, 800_000, 0) == 1.25
    c = close(WED, [1_000_000, 1_500_000], [800_000] * 2, [0, 0])
    m.close_breaches(c)
    assert c.state.tolist() == [CALLED, OK]
    assert m.cure_payment(c)[0] == 80_000
    assert m.deposit_to_cure(1_000_000, 800_000, 0) == 80_000
    # the whole position is sold, with size "all" (the preset) and with "restore" too: a
    # CFD has no restore ratio (0), so (0 x L - V - 0 x C) / (0 - 1) = V, all of it
    held, px = np.array([100]), np.array([10_000])
    for size in ("all", "restore"):
        rule = margin_rule(replace(load_rules("cfd"), size=size))
        assert rule.sale_qty(held, px, 1_000_000, 800_000, 0, 800_000, False).tolist() == [100]
    # no intraday trigger without a liquidation level
    assert margin_rule(replace(load_rules("cfd"), liquidation_level=0.0)).intraday() is None


def test_misu_due_date_sale_size_and_freeze():
    """krx-misu: bought Wednesday 2024-01-03, the rest due T+2 = Friday 2024-01-05.

    - Thursday's close: not due; Friday's: due, unpaid -> breached, with no call first.
    - sale: the loan 600,000 at the close 10,000 less 15%: ceil(600,000 / 8,500) = 71.
    - a shortfall above 100,000 freezes the account for 30 calendar days; 50,000 does not.
    """
    m = margin_rule(load_rules("krx-misu"))
    assert not m.calls and m.intraday() is None
    assert not m.close_breaches(close(THU, [1_000_000], [600_000], [0])).any()
    c = close(FRI, [1_000_000], [600_000], [0])
    assert m.close_breaches(c).tolist() == [True] and c.state.tolist() == [OK]
    assert m.cure_payment(c).tolist() == [600_000]
    assert m.sale_qty(np.array([100]), np.array([10_000]), 1_000_000, 600_000, 0, 600_000,
                      False).tolist() == [71]
    assert m.frozen_until(FRI.toordinal(), 600_000) == FRI.toordinal() + 30
    assert m.frozen_until(FRI.toordinal(), 50_000) is None


def test_registering_a_kind_with_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match="unknown field.*margin_ratio"):
        register("typo-kind", uses={"margin_ratio"})(type("T", (InstantMargin,), {}))
    assert "typo-kind" not in KINDS and "typo-kind" not in MARGIN_RULES


# -- the account the strategy host uses --------------------------------------------------------
MON, TUE = date(2024, 1, 8), date(2024, 1, 9)
STOCK = InstrumentTable([Instrument(1, "S", venue="XKRX", prev_close_units=10_000,
                                    market="KOSPI")])


def tape(rows):
    cols = {c: [] for c in ("ts", "instrument", "action", "side", "price", "size",
                            "order_id", "flags")}
    for k, (day, at, side, px, sz) in enumerate(sorted(rows, key=lambda r: (r[0], r[1]))):
        for c, v in zip(cols, (seoul_ns(day, at), 1, ADD, side, px, sz, k + 1, F_LAST),
                        strict=True):
            cols[c].append(v)
    return Events.from_columns({c: np.array(v, np.int64) for c, v in cols.items()})


class Holder(Strategy):
    """Buys 100 on credit in Friday's opening auction and never meets a call."""

    account = "credit"
    cash = 400_000

    def on_start(self):
        self.seen = []
        self.submit_order("S", "buy", 100, "limit", 10_000)

    def note(self, what):
        a = self.ledger
        self.seen.append((what, a.state, a.deadline, a.position(1), a.cash, a.loan))

    def on_margin_call(self, call):
        self.note("call")
        self.shortfall = call.shortfall

    def on_fill(self, fill):
        self.note("forced fill" if fill.forced else "fill")


def test_the_strategy_reads_its_account_through_the_brokers_account_api():
    # Friday: 100 bought at 10,000 in the opening auction, 40% paid (400,000), 600,000 lent.
    # Friday's close 8,000: 800,000 / 600,000 = 1.33 < 1.40 -> called, due Monday; deposit
    # to cure 1.4 x 600,000 - 800,000 = 40,000. Monday closes 8,000 again: sold in
    # Tuesday's pre-open at the lower limit (5,600), enough to restore 140%:
    # (800,000 - x) / (600,000 - x) = 1.4 -> x = 100,000 -> ceil(100,000 / 8,000) = 13.
    # Tuesday's opening auction: 13 offered against a bid of 100 at 7,900; 7,900 is the
    # executable price nearest the base 8,000: 102,700 repays the loan to 497,300. The tape
    # has nothing after 08:40 on Tuesday, so the strategy hears of the fill at the session's
    # end, after the broker valued the account at the 7,900 close: 87 x 7,900 / 497,300 =
    # 1.38 -> called again, due Wednesday 2024-01-10.
    rows = [(FRI, t(8, 40), ASK, 10_000, 100),
            (FRI, t(15, 25), BID, 8_000, 10), (FRI, t(15, 25), ASK, 8_000, 10),
            (MON, t(15, 25), BID, 8_000, 10), (MON, t(15, 25), ASK, 8_000, 10),
            (TUE, t(8, 40), BID, 7_900, 100)]
    rp = Replay(STOCK, venue="krx", seed=1)
    strategy = Holder()
    host = attach_strategy(rp, strategy)
    assert isinstance(host.ledger, Account) and host.ledger.index == host.account
    rp.run([tape(rows)])
    assert strategy.seen == [
        ("fill", "ok", None, 100, 0, 600_000),
        ("call", "called", MON, 100, 0, 600_000),
        ("forced fill", "called", date(2024, 1, 10), 87, 0, 497_300),
    ]
    assert strategy.shortfall == 40_000
    # what the strategy saw is the broker's own book of the account
    acc = host.broker.accounts().iloc[-1]
    assert (acc.shares_left, acc.loan_left, acc.cash_left) == (87, 497_300, 0)
    forced = host.broker.forced_orders()
    assert (forced.qty.tolist(), forced.avg_price.tolist()) == ([13], [7_900])


def test_a_cash_strategy_has_a_cash_account_of_the_same_interface():
    account = CashAccount(2, 1_000)
    account.book_fill(1, "buy", 3, 300, FRI)
    account.deposit(50)
    assert (account.position(1), account.positions(2).tolist(), account.cash,
            account.loan, account.state, account.repay()) == (3, [0, 3], 750, 0, "ok", 0)
    for name in ("position", "positions", "pending", "cash", "loan", "state", "deadline",
                 "frozen_until", "margin_rate", "ratio", "shortfall", "book_fill",
                 "deposit", "repay", "settle"):
        assert hasattr(Account, name) and hasattr(account, name), name


def test_a_broker_account_out_of_range_is_an_error():
    broker = Broker(load_rules("instant"), _one(KINDS.index("instant"), loan=1_000, shares=1))
    with pytest.raises(IndexError, match="account 5: the population has 1 accounts"):
        broker.account(5)


# -- the calendar comes from the replay ----------------------------------------------------------
class _OneDayMoreGrace:
    """The KRX calendar, but every "n trading days after" is one trading day later."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def trading_days_after(self, day, n):
        return self.inner.trading_days_after(day, n + 1)


def test_the_broker_counts_a_deadline_on_the_replays_calendar():
    # Friday's close 9,700 calls the account (970,000 / 700,000 = 1.386), due D+1 = Monday
    # on XKRX days, and Tuesday's pre-open sells it. On a calendar whose D+1 is Tuesday the
    # deadline has not come by Monday's close: nothing is sold on Tuesday morning.
    rows = [(FRI, t(8, 40), BID, 10_000, 100), (FRI, t(8, 40), ASK, 10_000, 100),
            (FRI, t(15, 25), BID, 9_700, 50), (FRI, t(15, 25), ASK, 9_700, 50),
            (MON, t(15, 25), BID, 9_700, 10), (MON, t(15, 25), ASK, 9_700, 10),
            (TUE, t(8, 40), BID, 9_600, 10)]
    pop = _one(KINDS.index("credit"), loan=700_000, shares=100)
    sold = []
    for calendar in (KRX_CALENDAR, _OneDayMoreGrace(KRX_CALENDAR)):
        rp = Replay(STOCK, venue="krx", seed=1)
        assert rp.calendar is KRX_CALENDAR  # what a replay hands its broker and strategy
        rp.calendar = calendar
        broker = Broker(load_rules("krx-credit"), pop).attach(rp)
        rp.run([tape(rows)])
        sold.append(len(broker.forced_orders()))
    assert sold == [1, 0]


class _Today(Strategy):
    def on_start(self):
        self.day = self.today


class _FixedClock:
    def __getattr__(self, name):
        return getattr(KRX_CALENDAR, name)

    def local_date(self, ts_ns):
        return date(1999, 12, 31)


def test_the_strategy_host_tells_the_date_on_the_replays_calendar():
    rows = [(FRI, t(8, 40), BID, 10_000, 100)]
    rp = Replay(STOCK, venue="generic")
    assert rp.calendar is KRX_CALENDAR  # the generic venue keeps XKRX days and Seoul time
    rp.calendar = _FixedClock()
    strategy = _Today()
    attach_strategy(rp, strategy)
    rp.run([tape(rows)])
    assert strategy.day == date(1999, 12, 31)


def _one(kind, loan, shares):
    from brokers.population import Population

    return Population(account_id=[7], kind=[kind], cash=[0], loan=[loan], pos_account=[0],
                      pos_instrument=[1], pos_shares=[shares], pos_entry=[10_000],
                      pos_trade_date=[(FRI - date(1970, 1, 1)).days])


def test_a_population_accounts_positions_cash_and_loan():
    from brokers.population import Population

    # account 0 holds 5 of name 1; account 1 holds 7 of name 2 and 3 of name 1
    pop = Population(account_id=[10, 11], kind=[0, 0], cash=[100, 200], loan=[1_000, 2_000],
                     pos_account=[0, 1, 1], pos_instrument=[1, 2, 1], pos_shares=[5, 7, 3],
                     pos_entry=[10_000] * 3, pos_trade_date=[19_723] * 3)
    a = Broker(load_rules("krx-credit"), pop).account(1)
    assert (a.account_id, a.position(1), a.position(2), a.position(0)) == (11, 3, 7, 0)
    assert a.positions(3).tolist() == [0, 3, 7]
    assert (a.cash, a.loan, a.state, a.deadline, a.frozen_until) == (200, 2_000, "ok", None,
                                                                       None)
    a.deposit(50)
    assert (a.cash, pop.cash[1]) == (250, 200)  # the broker's copy; the population is kept
