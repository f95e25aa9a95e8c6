"""The liquidation engine: a broker attached to a replay, selling out accounts that breach.

**Intraday rules** (``instant``, and a CFD's liquidation level). Each single-name account's
trigger price is computed in closed form, and the triggers are kept sorted per instrument.
The compiled loop compares the last price with one number per instrument: the broker's wake
price (:meth:`replay.engine.Replay.wake_below`), the highest trigger not yet breached. When
that price is reached the loop stops. The broker then walks the sorted triggers to find
every account breached at that price (no scan of the population) and submits their forced
orders. The orders go through the venue like any other.

**Close-valued rules** (``krx-credit``, ``krx-misu``, a CFD's margin call). These need the
KRX venue's sessions.
- At each day's end the broker values every account of its kind at the close,
  vectorised over positions:
  - *credit*: (holdings + cash) / loan below the maintenance ratio opens a margin call;
  - *misu*: a purchase whose settlement day (T+2) has come is unpaid;
  - *cfd*: the margin level (equity / required margin) is below the call level.
- The account cures or not:
  - at the deadline (``grace_days`` trading days later) it tops up with probability
    ``cure_probability``, or if its loss is below ``cure_max_loss``;
  - a credit account whose ratio has recovered by then is cured by the price.
- If it does not cure, the forced sale is entered in the next morning's pre-open auction at
  the lower limit:
  - it is sized to restore the target ratio (credit), to cover the shortfall at the prior
    close less the haircut (misu), or is the whole position;
  - forced quantity left unfilled at a limit-locked close is carried to the next pre-open.

**Cascade generations.** The loop records who set each instrument's last price (its
``last_generation`` column: 0 for the tape or any order that is not a forced sale, ``k + 1``
for a generation-``k`` forced order; an auction takes the highest generation it filled).
Accounts breached at that price, or at a close it set, get that generation.

**What each kind does** (its ratio, intraday trigger, close test, cure and sale size) is
its class in :mod:`brokers.margin`, picked by the rules' kind (:attr:`Broker.margin`); this
module holds the accounts, the watch and the orders. Triggers are in integers only: the
collateral ratio (담보유지비율, krx.md:78) is the collateral, holdings plus the account's
cash, over the loan, and an account with ``shares``, cash ``C`` and loan ``L`` breaches
ratio ``m`` when ``P * shares * 10_000 < m_bp * L - C * 10_000``
(:func:`brokers.margin.breaches`, the CFD's with the cash weighted by its ratio). Its
trigger is the highest such price.

**Days** (a call's deadline, a 미수 settlement) are those of the calendar of the replay the
broker is attached to (``replay.calendar``, :class:`venues.calendar.Calendar`).

**The account API.** :meth:`Broker.account` gives one account as the one who trades it sees
it (:class:`Account`: position, cash, loan, state, deadline; book_fill, deposit, repay,
settle); the strategy host uses nothing else.

Proceeds repay the loan first. An account sold out with debt left is the broker's
shortfall.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from brokers.margin import (
    BP,
    CALLED,
    FROZEN,
    OK,
    SELLING,
    STATE_NAMES,
    Close,
    MarginRule,
    margin_rule,
    trigger_prices,
)
from brokers.population import KIND_CODES
from venues.codes import (
    ASK,
    LIMIT,
    MARKET,
)
from venues.participants import Participant

__all__ = ["BP", "CALLED", "FROZEN", "NO_LOAN_DATE", "OK", "SELLING", "STATE_NAMES", "Account",
           "Broker", "trigger_prices"]

#: ``pos_trade_date`` of a position with no loan open (an account that trades sets it when
#: its loan opens: the 미수 settlement and the credit term count from it)
NO_LOAN_DATE = np.datetime64("2200-01-01", "D").astype(np.int64)


@njit(cache=True)
def _is_identity(a):
    for i in range(a.shape[0]):
        if a[i] != i:
            return False
    return True


def _account_triggers(shares, loan, cash, ratio_bp, cash_bp, strict):
    """:func:`trigger_prices` for one position per account, in account order."""
    return trigger_prices(shares, loan, ratio_bp, strict=strict, cash=cash, cash_bp=cash_bp)


@dataclass
class _Watch:
    """One instrument's single-name accounts, by trigger price, highest first.

    Until the watch first fires it holds only the population's triggers and which positions
    are watched (``select``); it picks and sorts them then, so a day with no breach costs
    one ``max`` over the triggers."""

    triggers: np.ndarray  # every position's trigger, or once ordered the watched ones sorted
    select: np.ndarray | None  # watched positions (bool over positions); None: all
    rows: np.ndarray | None = None  # once ordered: position rows, by trigger descending
    cursor: int = 0  # rows[:cursor] are breached
    top: int = -1

    def __post_init__(self) -> None:
        t = self.triggers if self.select is None else self.triggers[self.select]
        self.top = int(t.max()) if len(t) else -1

    def order(self) -> None:
        if self.rows is None:
            watched = self.triggers > 0
            if self.select is not None:
                watched &= self.select
            rows = np.flatnonzero(watched)
            key = np.argsort(-self.triggers[rows], kind="stable")  # ties: by position row
            self.rows, self.triggers = rows[key], self.triggers[rows[key]]

    def next_trigger(self) -> int:
        if self.rows is None:
            return self.top
        return int(self.triggers[self.cursor]) if self.cursor < len(self.rows) else -1


@dataclass(eq=False)
class Broker(Participant):
    """The accounts of ``population`` whose kind is ``rules.kind``, under ``rules``
    (:class:`brokers.rules.Rules`), attached to a :class:`replay.engine.Replay` with
    :meth:`attach`. ``submit_orders=False`` evaluates the accounts but never sends a
    forced order: the counterfactual run.

    Each close's account snapshot goes to ``snapshot_sink`` as the close happens (a run
    streams them to disk), and is then dropped; with no sink they are kept in
    :attr:`snapshots`."""

    rules: Any
    population: Any
    seed: int = 0
    submit_orders: bool = True
    forced: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[pd.DataFrame] = field(default_factory=list)
    snapshot_sink: Callable[[pd.DataFrame], None] | None = None

    def __post_init__(self) -> None:
        pop = self.population
        #: the rules' behaviour, by their kind (brokers/margin.py)
        self.margin: MarginRule = margin_rule(self.rules)
        self.kind = KIND_CODES[self.rules.kind]
        self.managed = np.asarray(pop.kind) == self.kind
        if not self.managed.any():
            raise ValueError(f"rules {self.rules.name!r} ({self.rules.kind}): the population "
                             f"has no {self.rules.kind} account")
        self._replay = None
        self._watch: dict[int, _Watch] = {}
        # the population's own arrays until the broker first changes one (see _own)
        self._loan = np.asarray(pop.loan, np.int64)
        self._cash = np.asarray(pop.cash, np.int64)
        self._shares = np.asarray(pop.pos_shares, np.int64)  # held, after settled sales
        self._owned = False
        self._pending = np.zeros(len(self._shares), np.int64)  # in forced orders now
        self._state = np.zeros(len(pop.account_id), np.int8)
        self._deadline = np.zeros(len(pop.account_id), np.int64)  # day ordinal, 0: none
        self._gen = np.zeros(len(pop.account_id), np.int64)
        self._matured = np.zeros(len(pop.account_id), bool)
        #: accounts that breached their rule at least once (summary: accounts_called)
        self.called = np.zeros(len(pop.account_id), bool)
        self._frozen_until = np.zeros(len(pop.account_id), np.int64)  # day ordinal
        self._portfolio: np.ndarray | None = None  # position rows of multi-name accounts
        self._pf_names: list[int] = []
        self._last_day: date | None = None
        self._to_sell: list[tuple[int, int, int, int, float]] = []  # pos row, qty, gen, ...
        # per submitted forced order: its result row, its position row, and what of its
        # fills (filled, notional) has been booked
        self._order_ids = np.zeros(0, np.int64)
        self._order_rows = np.zeros(0, np.int64)
        self._settled = np.zeros((0, 2), np.int64)
        # accounts that trade during the run (a strategy's): their positions change, so they
        # are revalued whenever the broker wakes, and they cure a call only by paying
        self.self_directed = np.zeros(len(pop.account_id), bool)

    role = "broker"

    def attach(self, replay) -> Broker:
        """Join ``replay`` as a participant (venues/participants.py)."""
        if self.rules.valuation == "close":
            if replay.venue is None:
                raise ValueError(f"rules {self.rules.name!r} value accounts at the close: they "
                                 "need the KRX venue's sessions (--venue krx)")
        replay.attach(self)
        return self

    # -- intraday ----------------------------------------------------------------------------
    def _intraday_ratio(self):
        """The rules' intraday trigger (:class:`brokers.margin.Trigger`: the ratio in bp,
        whether strictly below, the weight of cash), or None."""
        return self.margin.intraday()

    def ratios(self, value, loan, cash) -> np.ndarray:
        """The rules' ratio (:meth:`brokers.margin.MarginRule.ratio`): (value + cash) / loan,
        or for a CFD value / (loan - cash); inf where nothing is owed."""
        return self.margin.ratio(value, loan, cash)

    def start(self, replay) -> None:
        """Arm the intraday watch prices (the replay starts)."""
        self._replay = replay
        intraday = self._intraday_ratio()
        if intraday is None:
            return
        ratio_bp, strict, cash_bp = intraday
        pop = self.population
        n = len(pop.pos_account)
        if (n == len(pop.account_id) and not self.self_directed.any()
                and _is_identity(pop.pos_account)):
            single = self.managed  # one position per account, in account order
            trig = _account_triggers(self._shares, self._loan, self._cash, ratio_bp, cash_bp,
                                     strict)
        else:
            n_pos = np.bincount(pop.pos_account, minlength=len(pop.account_id))
            single = ((n_pos[pop.pos_account] == 1) & self.managed[pop.pos_account]
                      & ~self.self_directed[pop.pos_account])
            trig = trigger_prices(self._shares, self._loan[pop.pos_account], ratio_bp,
                                  strict=strict, cash=self._cash[pop.pos_account],
                                  cash_bp=cash_bp)
        everyone = bool(single.all())
        names = pop.pos_instrument if everyone else pop.pos_instrument[single]
        one_name = len(names) > 0 and names.min() == names.max()
        present = names[:1] if one_name else np.flatnonzero(np.bincount(names))
        for inst in present:
            if everyone and one_name:
                select = None  # the common case: one name, every position watched
            else:
                select = single & (pop.pos_instrument == inst)
            w = _Watch(trig, select)
            self._watch[int(inst)] = w
            replay.wake_below(self, int(inst), w.next_trigger())
        if not everyone:
            multi = self.managed[pop.pos_account] & ~single
            if multi.any():
                self._portfolio = np.flatnonzero(multi)
                self._pf_names = [int(i) for i in np.unique(pop.pos_instrument[multi])]
                self._arm()

    def on_wake(self, inst: int, ts: int) -> None:
        """The loop stopped: ``inst``'s last price reached the broker's wake price."""
        book = self._replay.book
        price = int(book.column("last")[inst])
        generation = int(book.column("last_generation")[inst])
        w = self._watch.get(inst)
        if w is not None:
            w.order()
            start = w.cursor
            while w.cursor < len(w.rows) and w.triggers[w.cursor] >= price:
                w.cursor += 1
            rows = w.rows[start:w.cursor]
            rows = rows[self._shares[rows] - self._pending[rows] > 0]
            if len(rows):
                acct = self.population.pos_account[rows]
                ratio = self.ratios(self._shares[rows] * price, self._loan[acct],
                                    self._cash[acct])
                self._sell(ts, rows, self._shares[rows] - self._pending[rows], MARKET, 0,
                           np.full(len(rows), generation), w.triggers[start:w.cursor][
                               np.isin(w.rows[start:w.cursor], rows)], ratio)
        if self._portfolio is not None:
            self._revalue_portfolios(ts)
        self._arm(inst)

    def _arm(self, inst: int | None = None) -> None:
        """Set the watch price of ``inst`` (None: every watched instrument): the highest
        trigger of its single-name accounts or of the portfolio accounts holding it."""
        names = [inst] if inst is not None and self._portfolio is None else \
            sorted(set(self._watch) | set(self._pf_names))
        pf = self._portfolio_triggers() if self._portfolio is not None else {}
        for i in names:
            w = self._watch.get(i)
            self._replay.wake_below(self, i, max(w.next_trigger() if w is not None else -1,
                                                 pf.get(i, -1)))

    # -- accounts holding several names: revalued whenever the broker is woken ---------------
    def _portfolio_triggers(self) -> dict[int, int]:
        """Per instrument, the highest price at which a portfolio account holding it breaches
        with its other names at their last prices."""
        pop = self.population
        rows = self._portfolio
        live = self._state[pop.pos_account[rows]] != SELLING
        rows = rows[live]
        if not len(rows):
            return {}
        last = self._replay.book.column("last")
        priced = self._priced()[pop.pos_account[rows]]
        out: dict[int, int] = {}
        for i in np.unique(pop.pos_instrument[rows[~priced]]):
            # an account not yet valued: wake the broker at the next print of its names
            out[int(i)] = np.iinfo(np.int64).max
        rows = rows[priced]
        acct = pop.pos_account[rows]
        value_pos = self._shares[rows] * last[pop.pos_instrument[rows]]
        value = np.zeros(len(pop.account_id), np.int64)
        np.add.at(value, acct, value_pos)
        others = value[acct] - value_pos
        # s P + others + C < m L  <=>  P < (m L - C - others) / s  (a CFD: C weighted by m)
        trig = self._intraday_ratio().prices(self._shares[rows], self._loan[acct],
                                             self._cash[acct], others)
        top = np.full(len(last), -1, np.int64)
        np.maximum.at(top, pop.pos_instrument[rows], trig)
        for i in np.unique(pop.pos_instrument[rows]):
            out[int(i)] = max(out.get(int(i), -1), int(top[i]))
        return out

    def _priced(self) -> np.ndarray:
        """Per account: every name it holds has a last price (it can be valued)."""
        pop = self.population
        unpriced = np.zeros(len(pop.account_id), bool)
        last = self._replay.book.column("last")
        np.logical_or.at(unpriced, pop.pos_account,
                         (last[pop.pos_instrument] <= 0) & (self._shares > 0))
        return ~unpriced

    def _revalue_portfolios(self, ts: int) -> None:
        """Sell out every portfolio account below its ratio at the last prices."""
        pop = self.population
        rows = self._portfolio
        book = self._replay.book
        last = book.column("last")
        acct = pop.pos_account[rows]
        value = np.zeros(len(pop.account_id), np.int64)
        np.add.at(value, acct, self._shares[rows] * last[pop.pos_instrument[rows]])
        breached = self._intraday_ratio().breached(value, self._loan, self._cash) & (
            self._loan > 0) & (self._state != SELLING) & self._priced()
        sell = rows[breached[acct] & (self._shares[rows] - self._pending[rows] > 0)]
        if len(sell):
            a = pop.pos_account[sell]
            gen = np.zeros(len(pop.account_id), np.int64)
            np.maximum.at(gen, acct, book.column("last_generation")[pop.pos_instrument[rows]])
            self._sell(ts, sell, self._shares[sell] - self._pending[sell], MARKET, 0, gen[a],
                       last[pop.pos_instrument[sell]],
                       self.ratios(value[a], self._loan[a], self._cash[a]))

    def _sell(self, ts: int, rows: np.ndarray, qty: np.ndarray, typ: int,
              price: int | np.ndarray, gen: np.ndarray, trigger: np.ndarray,
              ratio: np.ndarray) -> None:
        """Forced sell orders for position ``rows``."""
        pop = self.population
        n = len(rows)
        acct = pop.pos_account[rows]
        self._state[acct] = SELLING
        self.called[acct] = True
        price = np.broadcast_to(price, n).copy()
        if not self.submit_orders:
            for k in range(n):
                self.forced.append(self._row(ts, rows[k], trigger[k], ratio[k], gen[k],
                                             qty[k], price[k], -1))
            return
        ids = self._replay.submit(np.full(n, ts), pop.pos_instrument[rows], np.full(n, ASK),
                                  np.full(n, typ), price, qty, gen)
        self._pending[rows] += qty
        for k in range(n):
            self.forced.append(self._row(ts, rows[k], trigger[k], ratio[k], gen[k], qty[k],
                                         price[k], ids[k]))
        self._order_ids = np.concatenate([self._order_ids, ids])
        self._order_rows = np.concatenate([self._order_rows, np.asarray(rows, np.int64)])
        self._settled = np.concatenate([self._settled, np.zeros((n, 2), np.int64)])

    def _row(self, ts, row, trigger, ratio, gen, qty, price, order) -> dict[str, Any]:
        """A forced order's record: ``price`` is its limit (0: market), ``order`` its result
        row (-1: not sent, the counterfactual)."""
        pop = self.population
        return {"ts": int(ts), "account_id": int(pop.account_id[pop.pos_account[row]]),
                "instrument": int(pop.pos_instrument[row]), "trigger": int(trigger),
                "ratio_at_trigger": float(ratio), "generation": int(gen), "qty": int(qty),
                "price": int(price), "order": int(order), "position": int(row)}

    # -- an account that trades (a strategy's) ---------------------------------------------
    def book_trade(self, account: int, row: int, shares: int, cash: int, loan: int) -> None:
        """Add ``shares`` to position ``row`` and ``cash`` and ``loan`` to ``account``: a
        self-directed account's own fill, deposit or repayment. Intraday watch prices are
        recomputed from the new holdings."""
        self._own()
        self._shares[row] += shares
        self._cash[account] += cash
        self._loan[account] += loan
        if self._portfolio is not None and self._replay is not None:
            self._arm()

    def account(self, index: int) -> Account:
        """Account ``index`` of the population (a row of ``population.account_id``), as
        whoever trades it sees and changes it (:class:`Account`)."""
        if not 0 <= index < len(self.population.account_id):
            raise IndexError(f"account {index}: the population has "
                             f"{len(self.population.account_id)} accounts")
        return Account(self, int(index))

    # -- settlement ------------------------------------------------------------------------
    def _own(self) -> None:
        """Copy the loans, cash and holdings before the first change: the population
        itself is never modified (a counterfactual run shares it)."""
        if not self._owned:
            self._loan, self._cash, self._shares = (self._loan.copy(), self._cash.copy(),
                                                    self._shares.copy())
            self._owned = True

    def settle(self) -> None:
        """Book the fills of forced orders since the last settlement: shares leave, the
        proceeds repay the loan first, the rest is cash."""
        if not len(self._order_ids):
            return
        self._own()
        rows = self._order_rows
        book = self._replay.book
        now = np.column_stack([book.result("filled")[self._order_ids],
                               book.result("notional")[self._order_ids]])
        delta = now - self._settled
        self._settled = now.copy()
        acct = self.population.pos_account[rows]
        np.add.at(self._shares, rows, -delta[:, 0])
        np.add.at(self._pending, rows, -delta[:, 0])
        proceeds = np.zeros(len(self._loan), np.int64)
        np.add.at(proceeds, acct, delta[:, 1])
        repay = np.minimum(proceeds, self._loan)
        self._loan -= repay
        self._cash += proceeds - repay

    # -- the KRX venue calls these ------------------------------------------------------------
    def _first_trade(self) -> np.ndarray:
        """Each account's earliest position date (datetime64[D])."""
        pop = self.population
        first = np.full(len(pop.account_id), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first, pop.pos_account, pop.pos_trade_date)
        return first.astype("datetime64[D]")

    def _accrue(self, day: date) -> None:
        """Interest on the loans since the last close: calendar days / 365 of the annual
        rate, rounded to the won."""
        rate = self.rules.interest_rate
        if rate > 0 and self._last_day is not None:
            self._own()
            days = (day - self._last_day).days
            self._loan += np.rint(self._loan * (rate * days / 365.0)).astype(np.int64)
        self._last_day = day

    def on_day_end(self, day: date, at: int) -> None:
        """After the close: settle, carry unfilled forced quantity, accrue interest, value
        the accounts."""
        self.settle()
        self._accrue(day)
        rp = self._replay
        resting = rp.book.result("resting")
        carry: list[tuple[int, int, int, int, float]] = []
        if self.submit_orders:
            for f in self.forced:
                left = int(resting[f["order"]]) if f["order"] >= 0 else 0
                if left > 0 and f.get("carried_to") is None:
                    f["carried_to"] = day  # what a limit-locked close left, sold next morning
                    carry.append((f["position"], left, f["generation"], f["trigger"],
                                  f["ratio_at_trigger"]))
                    self._pending[f["position"]] -= left
        pending = np.bincount(self.population.pos_account, weights=self._pending,
                              minlength=len(self._state))
        queued = np.zeros(len(self._state), bool)
        queued[self.population.pos_account[[c[0] for c in carry + self._to_sell]]] = True
        # a sale that is done: the account is judged again from this close
        self._state[(self._state == SELLING) & (pending == 0) & ~queued] = OK
        book = rp.book
        close_px, last = book.column("close"), book.column("last")
        close = np.where(close_px > 0, close_px, last)
        gen_at_close = book.column("last_generation").copy()
        pop = self.population
        free = self._shares - self._pending
        value_pos = free * close[pop.pos_instrument]
        n = len(pop.account_id)
        value = np.bincount(pop.pos_account, weights=value_pos, minlength=n).astype(np.int64)
        debt = self._loan - self._cash
        if self.rules.valuation == "close":
            self._close_rules(day, value, debt, close, gen_at_close, carry)
        self._to_sell = carry + self._to_sell
        ratio = self.ratios(value, self._loan, self._cash)
        state = np.where((self._state == OK) & (self._frozen_until > day.toordinal()),
                         FROZEN, self._state).astype(np.int8)
        snapshot = pd.DataFrame({
            "day": day, "account_id": pop.account_id, "value": value, "loan": self._loan.copy(),
            "cash": self._cash.copy(), "collateral_ratio": ratio,
            "state": pd.Categorical.from_codes(state, STATE_NAMES)})[self.managed]
        if self.snapshot_sink is not None:
            self.snapshot_sink(snapshot)
        else:
            self.snapshots.append(snapshot)

    def _close_rules(self, day, value, debt, close, gen_at_close, carry) -> None:
        """The rules' close test (:meth:`brokers.margin.MarginRule.close_breaches`), then
        for each breached account: a top-up (:meth:`_cures`), or a sale queued for the
        next pre-open auction."""
        pop = self.population
        today = day.toordinal()
        c = Close(day=day, calendar=self._replay.calendar, value=value, loan=self._loan,
                  cash=self._cash, debt=debt, eligible=self.managed & (self._state != SELLING),
                  generation_at_close=self._account_generations(gen_at_close),
                  first_trade=self._first_trade, state=self._state, deadline=self._deadline,
                  generation=self._gen, called=self.called, matured=self._matured)
        breached = self.margin.close_breaches(c)
        self.called |= breached
        cured = self._cures(day, breached, value)
        topup = cured & (self._loan > 0)
        pay = self.margin.cure_payment(c)
        if topup.any():
            self._own()
            self._loan[topup] -= np.minimum(pay[topup], self._loan[topup])
        self._state[cured] = OK
        sell = np.flatnonzero(breached & ~cured)
        self._state[sell] = SELLING
        for a in sell:
            rows = np.flatnonzero(pop.pos_account == a)
            qty = self.margin.sale_qty(self._shares[rows] - self._pending[rows],
                                       close[pop.pos_instrument[rows]], value[a],
                                       self._loan[a], self._cash[a], debt[a],
                                       bool(self._matured[a]))
            ratio = float(self.ratios(value[a], self._loan[a], self._cash[a]))
            for row, q in zip(rows, qty, strict=True):
                if q > 0:
                    px = close[pop.pos_instrument[row]]
                    self._to_sell.append((int(row), int(q), int(self._gen[a]), int(px),
                                          ratio))
            until = self.margin.frozen_until(today, debt[a])
            if until is not None:
                self._frozen_until[a] = until

    def _account_generations(self, gen_at_close: np.ndarray) -> np.ndarray:
        """Per account, the generation it is breached at by a close: the highest of its
        names' (``gen_at_close``, per instrument)."""
        pop = self.population
        g = np.zeros(len(pop.account_id), np.int64)
        np.maximum.at(g, pop.pos_account, gen_at_close[pop.pos_instrument])
        return g

    def _cures(self, day: date, breached: np.ndarray, value) -> np.ndarray:
        r = self.rules
        cured = np.zeros(len(breached), bool)
        idx = np.flatnonzero(breached & ~self.self_directed)
        if not len(idx):
            return cured
        if r.cure_probability > 0:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
                [self.seed, day.toordinal(), 7])))
            cured[idx] = rng.random(len(idx)) < r.cure_probability
        elif r.cure_max_loss >= 0:
            pop = self.population
            cost = np.bincount(pop.pos_account, weights=pop.pos_shares * pop.pos_entry,
                               minlength=len(pop.account_id))
            loss = 1.0 - value / np.maximum(cost, 1)
            cured[idx] = loss[idx] < r.cure_max_loss
        return cured

    def on_pre_open(self, day: date, at: int, lower_limits: dict[int, int]) -> None:
        """Enter the day's forced sales in the pre-open auction, at the lower limit."""
        if not self._to_sell:
            return
        todo, self._to_sell = self._to_sell, []
        rows = np.array([t[0] for t in todo])
        qty = np.array([t[1] for t in todo])
        gen = np.array([t[2] for t in todo])
        trigger = np.array([t[3] for t in todo])
        ratio = np.array([t[4] for t in todo])
        inst = self.population.pos_instrument[rows]
        if self.rules.execution == "preopen_lower_limit":
            price = np.array([lower_limits[int(i)] for i in inst])
            self._sell(at, rows, qty, LIMIT, price, gen, trigger, ratio)
        else:
            self._sell(at, rows, qty, MARKET, 0, gen, trigger, ratio)

    # -- results ---------------------------------------------------------------------------
    def finish(self) -> None:
        self.settle()

    def forced_orders(self) -> pd.DataFrame:
        """One row per forced order: ts, account_id, instrument, trigger, ratio_at_trigger,
        generation, qty, filled_qty, avg_price, limit_price (0: a market order)."""
        cols = ["ts", "account_id", "instrument", "trigger", "ratio_at_trigger", "generation",
                "qty", "filled_qty", "avg_price", "limit_price"]
        if not self.forced:
            return pd.DataFrame(columns=cols)
        frame = pd.DataFrame(self.forced)
        if self.submit_orders:
            book = self._replay.book
            filled = book.result("filled")[frame.order.to_numpy()]
            notional = book.result("notional")[frame.order.to_numpy()]
        else:
            filled = notional = np.zeros(len(frame), np.int64)
        frame["filled_qty"] = filled
        frame["avg_price"] = np.where(filled > 0, notional / np.maximum(filled, 1), np.nan)
        frame["limit_price"] = frame.price
        return frame[cols]

    def accounts(self) -> pd.DataFrame:
        """Each account of the broker's kind now: shares left, the forced sales' proceeds
        (which repaid the loan first), the loan and cash left, and the broker's shortfall
        where an account sold out still owes."""
        self.settle()
        pop = self.population
        n = len(pop.account_id)
        held = np.bincount(pop.pos_account, weights=self._shares, minlength=n).astype(np.int64)
        proceeds = np.zeros(n, np.int64)
        np.add.at(proceeds, pop.pos_account[self._order_rows], self._settled[:, 1])
        loan, cash = self._loan.copy(), self._cash.copy()
        # a sold-out account whose loan is still open: its cash covers what it can
        cover = np.where(held == 0, np.minimum(cash, loan), 0)
        loan, cash = loan - cover, cash - cover
        shortfall = np.where(held == 0, loan, 0)
        frame = pd.DataFrame({"account_id": pop.account_id, "shares_left": held,
                              "proceeds": proceeds, "loan_left": loan, "cash_left": cash,
                              "shortfall": shortfall})
        return frame[self.managed].reset_index(drop=True)


class Account:
    """One account of a :class:`Broker`, as the one who trades it sees and changes it (a
    strategy's host): its positions, cash, loan, state under the rules and a call's
    deadline, read from the broker each time; its own fills, deposits and repayments
    booked with :meth:`book_fill`, :meth:`deposit`, :meth:`repay`.

    A buy is paid at the rules' ``margin_rate`` (in full while a 미수 account is frozen) and
    the rest lent; a sale's proceeds repay the loan first (docs/strategies.md: the account
    under the broker's rules)."""

    def __init__(self, broker: Broker, index: int) -> None:
        self._broker = broker
        self.index = index
        pop = broker.population
        self._rows = np.flatnonzero(np.asarray(pop.pos_account) == index)
        inst = pop.pos_instrument[self._rows]
        self._row_of = {int(i): self._rows[inst == i] for i in np.unique(inst)}
        # a strategy's account: one row per instrument id 0, 1, ... in consecutive rows
        dense = len(inst) > 0 and (inst == np.arange(len(inst))).all() and (
            self._rows[-1] - self._rows[0] == len(inst) - 1)
        self._row0 = int(self._rows[0]) if dense else -1

    def __repr__(self) -> str:
        return (f"Account({self.account_id}, {self.rules.kind}, cash={self.cash:,}, "
                f"loan={self.loan:,}, {self.state})")

    @property
    def account_id(self) -> int:
        return int(self._broker.population.account_id[self.index])

    @property
    def rules(self) -> Any:
        """The broker's :class:`brokers.rules.Rules`."""
        return self._broker.rules

    @property
    def margin(self) -> MarginRule:
        """The rules' behaviour (:mod:`brokers.margin`)."""
        return self._broker.margin

    # -- what it holds and owes ------------------------------------------------------------
    def position(self, instrument: int) -> int:
        """Shares held in ``instrument`` (forced sales leave when their fills are booked)."""
        if 0 <= self._row0 and 0 <= instrument < len(self._rows):
            return int(self._broker._shares[self._row0 + instrument])
        rows = self._row_of.get(int(instrument))
        return 0 if rows is None else int(self._broker._shares[rows].sum())

    def positions(self, n_instruments: int) -> np.ndarray:
        """Shares held per instrument id ``0 .. n_instruments - 1`` (read only)."""
        if 0 <= self._row0 and n_instruments == len(self._rows):
            return self._broker._shares[self._row0:self._row0 + n_instruments]
        out = np.zeros(n_instruments, np.int64)
        np.add.at(out, self._broker.population.pos_instrument[self._rows],
                  self._broker._shares[self._rows])
        return out

    def pending(self, instrument: int) -> int:
        """Shares of ``instrument`` in the broker's forced orders, not yet filled."""
        rows = self._row_of.get(int(instrument))
        return 0 if rows is None else int(self._broker._pending[rows].sum())

    @property
    def cash(self) -> int:
        """Won held (negative: owed)."""
        return int(self._broker._cash[self.index])

    @property
    def loan(self) -> int:
        """Won lent by the broker, interest included."""
        return int(self._broker._loan[self.index])

    # -- under the rules -----------------------------------------------------------------
    @property
    def state(self) -> str:
        """``ok``, ``called`` (a margin call is open) or ``selling`` (forced sales are due or
        working); :attr:`frozen_until` says whether buys are paid in full."""
        return STATE_NAMES[int(self._broker._state[self.index])]

    @property
    def deadline(self) -> date | None:
        """The open call's deadline: cure by this day's close, else sold the next morning;
        None without a call."""
        b = self._broker
        if b._state[self.index] != CALLED:
            return None
        return date.fromordinal(int(b._deadline[self.index]))

    @property
    def frozen_until(self) -> date | None:
        """After a 미수 forced sale: buys are paid in full before this day; None: never."""
        day = int(self._broker._frozen_until[self.index])
        return date.fromordinal(day) if day else None

    def margin_rate(self, day: date) -> float:
        """The share of a purchase on ``day`` paid in cash: the rules' ``margin_rate``, or 1
        while frozen."""
        if self._broker._frozen_until[self.index] > day.toordinal():
            return 1.0
        return self.rules.margin_rate

    def ratio(self, value: float) -> float:
        """The rules' ratio with holdings worth ``value`` (:meth:`Broker.ratios`)."""
        return float(self._broker.ratios(value, self.loan, self.cash))

    def shortfall(self, value: float) -> int:
        """Won to deposit that cure a call with holdings worth ``value``
        (:meth:`brokers.margin.MarginRule.deposit_to_cure`)."""
        return self.margin.deposit_to_cure(value, self.loan, self.cash)

    # -- what the account does -----------------------------------------------------------
    def book_fill(self, instrument: int, side: str, qty: int, notional: int,
                  day: date) -> None:
        """An execution of the account's own order on ``day``: a buy pays
        :meth:`margin_rate` of ``notional`` (rounded up to the won) and borrows the rest; a
        sale's proceeds repay the loan first, the rest is cash."""
        b = self._broker
        row = int(self._row_of[int(instrument)][0])
        if side == "buy":
            own = -(-notional * int(round(self.margin_rate(day) * BP)) // BP)
            lent = notional - own
            if lent > 0 and self.loan == 0:
                self._loan_opened(day)
            b.book_trade(self.index, row, qty, -own, lent)
        else:
            repay = min(notional, self.loan)
            b.book_trade(self.index, row, -qty, notional - repay, -repay)
            if repay and self.loan == 0:
                self._loan_opened(None)

    def deposit(self, amount: int) -> None:
        """Add ``amount`` won of cash (> 0)."""
        if amount <= 0:
            raise ValueError("deposit: amount must be positive")
        self._broker.book_trade(self.index, int(self._rows[0]), 0, int(amount), 0)

    def repay(self, amount: int | None = None) -> int:
        """Repay the loan from cash: ``amount`` won, or all that cash covers; returns the
        won repaid."""
        pay = min(self.loan, max(self.cash, 0), self.loan if amount is None else int(amount))
        if pay > 0:
            self._broker.book_trade(self.index, int(self._rows[0]), 0, -pay, -pay)
            if self.loan == 0:
                self._loan_opened(None)
        return pay

    def settle(self) -> None:
        """Book the fills of the broker's forced orders so far (:meth:`Broker.settle`)."""
        self._broker.settle()

    def _loan_opened(self, day: date | None) -> None:
        """The loan's start (미수 settlement, credit maturity count from it); None: repaid."""
        value = NO_LOAN_DATE if day is None else np.datetime64(day, "D").astype(np.int64)
        self._broker.population.pos_trade_date[self._rows] = value
