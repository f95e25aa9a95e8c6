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
  - at the deadline (``grace_days`` XKRX days later) it tops up with probability
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

**Triggers, in integers only.** The collateral ratio (담보유지비율, krx.md:78) is the
collateral, holdings plus the account's cash, over the loan.
- An account with ``shares``, cash ``C`` and loan ``L`` breaches ratio ``m`` when
  ``(shares * P + C) / L < m``, i.e. ``P * shares * 10_000 < m_bp * L - C * 10_000``. Its
  trigger is the highest such price.
- A CFD is liquidated when ``equity / (margin_rate * value) <= liquidation_level``, equity
  being ``value + C - L``. That is ``value / (L - C)`` at or under
  ``r = 1 / (1 - liquidation_level * margin_rate)``: ``P * shares * 10_000 <= r_bp * L -
  r_bp * C``, the same form with the cash weighted by the ratio.

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

from brokers.population import KIND_CODES
from venues.codes import (
    ASK,
    LIMIT,
    MARKET,
)
from venues.krx.calendar import sessions, trading_days_after
from venues.participants import Participant

BP = 10_000
# Account states.
OK, CALLED, SELLING, FROZEN = 0, 1, 2, 3
STATE_NAMES = ("ok", "called", "selling", "frozen")


def trigger_prices(shares: np.ndarray, loan: np.ndarray, ratio_bp: int, *,
                   strict: bool = True, cash: np.ndarray | None = None,
                   cash_bp: int = BP) -> np.ndarray:
    """The highest price ``P`` at which ``shares * P * BP`` is below (``strict``) or at most
    ``ratio_bp * loan - cash_bp * cash``: ``ceil(num / (shares * BP)) - 1``, or the floor
    when not strict. ``cash_bp = BP`` is the collateral ratio ``(shares * P + cash) / loan``;
    ``cash_bp = ratio_bp`` a CFD's ``shares * P / (loan - cash)``. -1 where no positive price
    breaches (no loan, no shares, or the cash alone covers it)."""
    shares = np.asarray(shares, np.int64)
    loan = np.asarray(loan, np.int64)
    num = loan * ratio_bp  # in place from here: 10^6 accounts, few temporaries
    if cash is not None:
        num -= np.asarray(cash, np.int64) * cash_bp
    never = (loan <= 0) | (shares <= 0) | (num <= 0)
    den = np.maximum(shares, 1)
    den *= BP
    if strict:  # ceil(num / den) - 1 = -floor(-num / den) - 1
        np.negative(num, out=num)
        np.floor_divide(num, den, out=num)
        np.negative(num, out=num)
        num -= 1
    else:
        np.floor_divide(num, den, out=num)
    num[never] = -1
    return num


@njit(cache=True)
def _is_identity(a):
    for i in range(a.shape[0]):
        if a[i] != i:
            return False
    return True


@njit(cache=True)
def _account_triggers(shares, loan, cash, ratio_bp, cash_bp, strict):
    """:func:`trigger_prices` for one position per account, in one compiled pass."""
    out = np.empty(shares.shape[0], np.int64)
    for i in range(shares.shape[0]):
        s = shares[i]
        num = ratio_bp * loan[i] - cash_bp * cash[i]
        if loan[i] <= 0 or s <= 0 or num <= 0:
            out[i] = -1
            continue
        den = s * BP
        out[i] = (num + den - 1) // den - 1 if strict else num // den
    return out


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
    def _intraday_ratio(self) -> tuple[int, bool, int] | None:
        """The ratio (bp) whose crossing sells at once, whether strictly below, and the
        weight of cash against the loan (:func:`trigger_prices`)."""
        r = self.rules
        if r.kind == "instant":
            return int(round(r.maintenance_ratio * BP)), True, BP
        if r.kind == "cfd" and r.liquidation_level > 0:
            # equity / (mr * value) <= lvl  <=>  value / (loan - cash) <= 1 / (1 - lvl * mr)
            ratio_bp = int(BP / (1.0 - r.liquidation_level * r.margin_rate))
            return ratio_bp, False, ratio_bp
        return None

    def ratios(self, value, loan, cash) -> np.ndarray:
        """The rules' ratio: (value + cash) / loan, or for a CFD value / (loan - cash); inf
        where nothing is owed."""
        value, loan, cash = (np.asarray(x, np.float64) for x in (value, loan, cash))
        if self.rules.kind == "cfd":
            num, den = value, loan - cash
        else:
            num, den = value + cash, loan
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)

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
        loan, cash = self._loan[acct], self._cash[acct]
        ratio_bp, strict, cash_bp = self._intraday_ratio()
        # s P + others + C < m L  <=>  P < (m L - C - others) / s  (a CFD: C weighted by m)
        need = ratio_bp * loan - cash_bp * cash - others * BP
        den = np.maximum(self._shares[rows], 1) * BP
        trig = (-((-need) // den) - 1) if strict else need // den
        trig = np.where((loan > 0) & (need > 0) & (self._shares[rows] > 0), trig, -1)
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
        ratio_bp, strict, cash_bp = self._intraday_ratio()
        lhs, rhs = value * BP + cash_bp * self._cash, ratio_bp * self._loan
        breached = ((lhs < rhs) if strict else (lhs <= rhs)) & (self._loan > 0) & (
            self._state != SELLING) & self._priced()
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

    # -- settlement ------------------------------------------------------------------------
    def _own(self) -> None:
        """Copy the loans, cash and holdings before the first change: the population
        itself is never modified (a counterfactual run shares it)."""
        if not self._owned:
            self._loan, self._cash, self._shares = (self._loan.copy(), self._cash.copy(),
                                                    self._shares.copy())
            self._owned = True

    def _settle(self) -> None:
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

    def _settlement_days(self, lag: int) -> np.ndarray:
        """Each account's first trade date + ``lag`` XKRX trading days (datetime64[D])."""
        days = sessions()
        i = np.searchsorted(days, self._first_trade()) + lag
        return days[np.minimum(i, len(days) - 1)]

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
        self._settle()
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
        r = self.rules
        pop = self.population
        managed = self.managed & (self._state != SELLING)
        today = day.toordinal()
        if r.kind == "misu":
            # the rest of the purchase was due on T+2 (XKRX days): unpaid -> sold next morning
            settles = self._settlement_days(r.grace_days)
            breached = managed & (self._loan > 0) & (self._state == OK) & (
                settles == np.datetime64(day, "D"))
        else:
            if r.kind == "cfd":
                required = r.margin_rate * value
                level = np.where(value > 0, (value - debt) / np.maximum(required, 1), -np.inf)
                below = level < r.call_level
            else:
                # (holdings + cash) / loan < m (krx.md:78)
                m_bp = int(round(r.maintenance_ratio * BP))
                below = (value + self._cash) * BP < m_bp * self._loan
            owes = (debt > 0) if r.kind == "cfd" else (self._loan > 0)
            newly = managed & below & (self._state == OK) & owes
            self._state[newly] = CALLED
            self.called |= newly
            self._deadline[newly] = (trading_days_after(day, r.grace_days).toordinal()
                                     if r.grace_days else today)
            self._gen[newly] = self._account_gen(newly, gen_at_close)
            recovered = managed & (self._state == CALLED) & ~below
            self._state[recovered & (self._deadline <= today)] = OK
            breached = managed & (self._state == CALLED) & (self._deadline <= today)
            if r.kind == "credit" and r.loan_term_days:
                # at maturity the loan is due: unpaid, sold the next morning (krx.md:82)
                matured = managed & (self._loan > 0) & (self._state == OK) & (
                    self._first_trade() + r.loan_term_days <= np.datetime64(day, "D"))
                self._matured |= matured
                self._gen[matured] = self._account_gen(matured, gen_at_close)
                breached |= matured
        if r.kind == "misu":
            self._gen[breached] = self._account_gen(breached, gen_at_close)
        self.called |= breached
        cured = self._cures(day, breached, value)
        topup = cured & (self._loan > 0)
        if r.kind == "cfd":
            # top up so that value / (loan - cash) is back at the call level's ratio
            target = 1.0 / (1.0 - r.call_level * r.margin_rate)
            pay = np.maximum(debt - (value / target).astype(np.int64), 0)
        elif r.kind != "misu":
            # top up so that (holdings + cash) / loan is back at the target ratio
            target = r.restore_ratio
            pay = np.maximum(self._loan - ((value + self._cash) / target).astype(np.int64), 0)
            pay = np.where(self._matured, self._loan, pay)  # a matured loan is paid off
        else:
            pay = self._loan
        if topup.any():
            self._own()
            self._loan[topup] -= np.minimum(pay[topup], self._loan[topup])
        self._state[cured] = OK
        sell = np.flatnonzero(breached & ~cured)
        self._state[sell] = SELLING
        for a in sell:
            rows = np.flatnonzero(pop.pos_account == a)
            qty = self._sale_qty(a, rows, value, debt, close)
            ratio = float(self.ratios(value[a], self._loan[a], self._cash[a]))
            for row, q in zip(rows, qty, strict=True):
                if q > 0:
                    px = close[pop.pos_instrument[row]]
                    self._to_sell.append((int(row), int(q), int(self._gen[a]), int(px),
                                          ratio))
            if r.kind == "misu" and r.freeze_days and debt[a] > r.freeze_threshold:
                # after the sale, 100% cash for new buys during freeze_days calendar days
                self._frozen_until[a] = today + r.freeze_days

    def _account_gen(self, mask: np.ndarray, gen_at_close: np.ndarray) -> np.ndarray:
        """The generation of accounts breached at the close: the highest of their names'."""
        pop = self.population
        g = np.zeros(len(pop.account_id), np.int64)
        np.maximum.at(g, pop.pos_account, gen_at_close[pop.pos_instrument])
        return g[mask]

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

    def _sale_qty(self, a: int, rows: np.ndarray, value, debt, close) -> np.ndarray:
        """Shares to sell per position of account ``a``: all, or enough to restore the
        target ratio (credit) or cover the shortfall at the haircut price (misu), spread
        over the names in proportion to their value."""
        r = self.rules
        pop = self.population
        held = self._shares[rows] - self._pending[rows]
        if r.size == "all":
            return held
        px = close[pop.pos_instrument[rows]].astype(np.int64)
        if self._matured[a]:  # enough to repay the whole loan at the close
            need_value = max(float(debt[a]), 0.0)
            unit = np.maximum(px, 1)
        elif r.kind == "misu":
            need_value = self._loan[a]
            unit = np.maximum((px * (1.0 - r.haircut)).astype(np.int64), 1)
        else:
            m = r.restore_ratio
            # (V + C - x) / (L - x) >= m  <=>  x >= (m L - V - C) / (m - 1), x = value sold
            # (a CFD: V / (L - C) with C weighted by m: the same with m C in place of C)
            held_cash = self._cash[a] * (m if r.kind == "cfd" else 1.0)
            need_value = max(0.0, (m * self._loan[a] - value[a] - held_cash) / (m - 1.0))
            unit = np.maximum(px, 1)
        share = held * px / max(float((held * px).sum()), 1.0)
        qty = np.ceil(need_value * share / unit).astype(np.int64)
        return np.minimum(qty, held)

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
        self._settle()

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
        self._settle()
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
