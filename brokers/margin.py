"""Margin rules as behaviour: one class per kind of :class:`brokers.rules.Rules`.

A rule set's ``kind`` picks its class from :data:`MARGIN_RULES` (:func:`margin_rule`); each
class owns what differs between kinds, vectorised over accounts:

- the **ratio** the rules judge an account by (:meth:`MarginRule.ratio`);
- the **intraday trigger**, or none (:meth:`MarginRule.intraday`);
- the **close test**: which accounts a close calls, and which are breached and must cure or
  be sold (:meth:`MarginRule.close_breaches`);
- the **cure**: what an account that tops up pays down (:meth:`MarginRule.cure_payment`),
  and what a deposit must bring to cure now (:meth:`MarginRule.deposit_to_cure`);
- the **sale size** of a forced sale (:meth:`MarginRule.sale_qty`).

The kinds (docs/reference/krx.md: 신용융자, 미수, CFD):

- ``credit`` (:class:`CreditMargin`): (holdings + cash) / loan below the maintenance ratio
  at a close opens a call due ``grace_days`` trading days later; a loan at its term is due.
- ``instant`` (:class:`InstantMargin`): the same ratio on every trade, sold at once.
- ``cfd`` (:class:`CfdMargin`): the margin level, equity / (margin_rate x value), below the
  call level at a close opens a call; at or under the liquidation level, sold at once.
- ``misu`` (:class:`MisuMargin`): a purchase unpaid on its settlement day (T+2) is sold the
  next morning, without a call.

**The trigger inequality**, in integers, written once (:func:`breaches`, inverted in closed
form by :func:`trigger_price`): holdings worth ``V`` with cash ``C`` and loan ``L`` breach
ratio ``r`` when ``V * BP < r_bp * L - cash_bp * C`` (``<=`` when not strict). With
``cash_bp = BP`` it is the collateral ratio ``(V + C) / L < r``; with ``cash_bp = r_bp`` a
CFD's ``V / (L - C) <= r``.

A new kind is a subclass registered under its name (:func:`register`); docs/brokers.md,
"Adding a margin rule kind", shows one run on a tiny population.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, NamedTuple

import numpy as np
from numba import njit

from brokers import rules as _rules
from brokers.rules import Rules

BP = 10_000
# Account states.
OK, CALLED, SELLING, FROZEN = 0, 1, 2, 3
STATE_NAMES = ("ok", "called", "selling", "frozen")


# -- the trigger inequality ----------------------------------------------------------------------
@njit(cache=True)
def breach_bound(loan, cash, ratio_bp, cash_bp):
    """The right side of the trigger inequality: ``ratio_bp * loan - cash_bp * cash``."""
    return ratio_bp * loan - cash_bp * cash


@njit(cache=True)
def breaches(value, loan, cash, ratio_bp, cash_bp, strict):
    """The trigger inequality: holdings worth ``value`` breach when ``value * BP`` is below
    (``strict``) or at most :func:`breach_bound`."""
    lhs = value * BP
    rhs = breach_bound(loan, cash, ratio_bp, cash_bp)
    return lhs < rhs if strict else lhs <= rhs


@njit(cache=True)
def trigger_price(shares, others, loan, cash, ratio_bp, cash_bp, strict):
    """The highest price ``P`` at which ``shares`` of a name (and ``others`` won of other
    holdings) :func:`breaches`: ``P * shares * BP < bound - others * BP`` solved in closed
    form, ``ceil(num / (shares * BP)) - 1`` (the floor when not strict). -1 where no
    positive price breaches (no loan, no shares, or cash and other holdings cover it)."""
    num = breach_bound(loan, cash, ratio_bp, cash_bp) - others * BP
    if loan <= 0 or shares <= 0 or num <= 0:
        return -1
    den = shares * BP
    return (num + den - 1) // den - 1 if strict else num // den


@njit(cache=True)
def position_triggers(shares, others, loan, cash, ratio_bp, cash_bp, strict):
    """:func:`trigger_price` of each position (arrays of one length)."""
    out = np.empty(shares.shape[0], np.int64)
    for i in range(shares.shape[0]):
        out[i] = trigger_price(shares[i], others[i], loan[i], cash[i], ratio_bp, cash_bp,
                               strict)
    return out


@njit(cache=True)
def accounts_breached(value, loan, cash, ratio_bp, cash_bp, strict):
    """:func:`breaches` of each account (arrays of one length)."""
    out = np.empty(value.shape[0], np.bool_)
    for i in range(value.shape[0]):
        out[i] = breaches(value[i], loan[i], cash[i], ratio_bp, cash_bp, strict)
    return out


def _ints(x: Any) -> np.ndarray:
    return np.ascontiguousarray(x, np.int64)


def trigger_prices(shares: Any, loan: Any, ratio_bp: int, *, strict: bool = True,
                   cash: Any = None, cash_bp: int = BP) -> np.ndarray:
    """Each position's :func:`trigger_price` with no other holdings: the highest ``P`` with
    ``shares * P * BP`` below (``strict``) or at most ``ratio_bp * loan - cash_bp * cash``.
    -1 where no positive price breaches."""
    shares, loan = _ints(shares), _ints(loan)
    cash = np.zeros_like(loan) if cash is None else _ints(cash)
    return position_triggers(shares, np.zeros_like(shares), loan, cash, int(ratio_bp),
                             int(cash_bp), bool(strict))


class Trigger(NamedTuple):
    """An intraday trigger: the ratio (bp) whose crossing sells at once, whether strictly
    below it, and the weight of cash against the loan (:func:`breaches`)."""

    ratio_bp: int
    strict: bool
    cash_bp: int

    def prices(self, shares: np.ndarray, loan: np.ndarray, cash: np.ndarray,
               others: np.ndarray | None = None) -> np.ndarray:
        """Each position's trigger price (:func:`trigger_price`); ``others``: the value of
        the account's other names."""
        shares = _ints(shares)
        others = np.zeros_like(shares) if others is None else _ints(others)
        return position_triggers(shares, others, _ints(loan), _ints(cash), self.ratio_bp,
                                 self.cash_bp, self.strict)

    def breached(self, value: np.ndarray, loan: np.ndarray, cash: np.ndarray) -> np.ndarray:
        """Per account, whether holdings worth ``value`` breach (:func:`breaches`)."""
        return accounts_breached(_ints(value), _ints(loan), _ints(cash), self.ratio_bp,
                                 self.cash_bp, self.strict)


# -- what a close shows a rule ---------------------------------------------------------------------
@dataclass
class Close:
    """One close as a rule judges it: arrays over the broker's accounts. The rule reads
    the values and updates ``state``, ``deadline``, ``generation``, ``called`` and
    ``matured`` in place (the broker's own arrays)."""

    day: date
    calendar: Any  # venues.calendar.Calendar
    value: np.ndarray  # holdings not in forced orders, at the close (won)
    loan: np.ndarray
    cash: np.ndarray
    debt: np.ndarray  # loan - cash
    eligible: np.ndarray  # the broker's accounts not being sold
    generation_at_close: np.ndarray  # the highest generation that set its names' closes
    first_trade: Callable[[], np.ndarray]  # each account's earliest position (datetime64[D])
    state: np.ndarray
    deadline: np.ndarray  # day ordinal of a call's deadline
    generation: np.ndarray
    called: np.ndarray
    matured: np.ndarray

    @property
    def today(self) -> int:
        return self.day.toordinal()


# -- the rule classes ------------------------------------------------------------------------------
#: kind -> the class that runs rules of that kind (:func:`register`).
MARGIN_RULES: dict[str, type[MarginRule]] = {}


def register(kind: str, *, uses: Iterable[str] | None = None) -> Callable[[type], type]:
    """Class decorator: rules of ``kind`` are run by the class. A kind that
    :mod:`brokers.rules` does not know yet is added to its kinds (``KINDS``, and a code in
    :data:`brokers.population.KIND_CODES`), ``uses`` naming the kind-specific fields it
    reads (:data:`brokers.rules.USED_BY_KIND`; the others must stay 0)."""

    def add(cls: type) -> type:
        if kind not in _rules.KINDS:
            from brokers.population import KIND_CODES

            unknown = set(uses or ()) - set(_rules.field_types())
            if unknown:
                raise ValueError(f"margin kind {kind!r}: uses unknown field(s) "
                                 f"{', '.join(sorted(unknown))}")
            _rules.KINDS.append(kind)
            _rules.USED_BY_KIND[kind] = frozenset(uses or ())
            KIND_CODES[kind] = _rules.KINDS.index(kind)
        cls.kind = kind
        MARGIN_RULES[kind] = cls
        return cls

    return add


def margin_rule(rules: Rules) -> MarginRule:
    """The rule object of ``rules``, by its kind."""
    try:
        cls = MARGIN_RULES[rules.kind]
    except KeyError:
        raise ValueError(f"rules {rules.name!r}: no margin rule class for kind "
                         f"{rules.kind!r} (registered: {', '.join(MARGIN_RULES)})") from None
    return cls(rules)


class MarginRule(ABC):
    """What every kind shares: the collateral ratio (holdings + cash) / loan, no intraday
    trigger, and the sale sized by :meth:`sale_need`, spread over the names by value. A
    kind implements the close test, the cure and :meth:`sale_need`."""

    kind: ClassVar[str] = ""
    #: a breach at the close opens a margin call with a deadline; False: the account is
    #: sold without one (미수), and its sale's notice is its call
    calls: ClassVar[bool] = True

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.rules.name!r})"

    # -- the ratio ------------------------------------------------------------------------
    def ratio(self, value: Any, loan: Any, cash: Any) -> np.ndarray:
        """(value + cash) / loan; inf where nothing is owed."""
        value, loan, cash = (np.asarray(x, np.float64) for x in (value, loan, cash))
        return _quotient(value + cash, loan)

    # -- intraday ---------------------------------------------------------------------------
    def intraday(self) -> Trigger | None:
        """The trigger that sells at once as the price crosses it; None: valued at the close
        only."""
        return None

    # -- the close ----------------------------------------------------------------------------
    @abstractmethod
    def close_breaches(self, c: Close) -> np.ndarray:
        """The accounts that are due at this close: cured now or sold the next morning."""

    @abstractmethod
    def cure_payment(self, c: Close) -> np.ndarray:
        """Per account, what an account that tops up pays down its loan with."""

    @abstractmethod
    def deposit_to_cure(self, value: float, loan: int, cash: int) -> int:
        """Won to deposit that bring an account back to its target at this close."""

    def frozen_until(self, today: int, debt: int) -> int | None:
        """After a forced sale: the day ordinal until which the account buys with cash only;
        None: no freeze."""
        return None

    # -- the sale -----------------------------------------------------------------------------
    @abstractmethod
    def sale_need(self, px: np.ndarray, value: float, loan: int, cash: int, debt: int,
                  matured: bool) -> tuple[float, np.ndarray]:
        """A "restore" sale: the won of holdings to sell, and each name's price per share
        for it."""

    def sale_qty(self, held: np.ndarray, px: np.ndarray, value: float, loan: int, cash: int,
                 debt: int, matured: bool) -> np.ndarray:
        """Shares to sell per position of one account (``held`` shares not yet in forced
        orders, at close prices ``px``): all, or :meth:`sale_need`, spread over the names in
        proportion to their value."""
        if self.rules.size == "all":
            return held
        px = px.astype(np.int64)
        need_value, unit = self.sale_need(px, value, loan, cash, debt, matured)
        share = held * px / max(float((held * px).sum()), 1.0)
        qty = np.ceil(need_value * share / unit).astype(np.int64)
        return np.minimum(qty, held)


def _quotient(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.inf)


class CollateralMargin(MarginRule):
    """Kinds with a margin call: below the line at a close, the account is called and has
    until ``grace_days`` trading days later; still below at that close, it is breached.
    The line is the collateral ratio (holdings + cash) / loan < maintenance_ratio
    (docs/reference/krx.md: 신용융자, "collateral value at the day's close")."""

    def _cash_weight(self, m: float) -> float:
        """The weight of cash against the loan at ratio ``m``: 1 as collateral (a CFD: m)."""
        return 1.0

    def below(self, c: Close) -> np.ndarray:
        """The accounts under the line at the close: (holdings + cash) / loan < m."""
        m_bp = int(round(self.rules.maintenance_ratio * BP))
        return Trigger(m_bp, True, BP).breached(c.value, c.loan, c.cash)

    def owes(self, c: Close) -> np.ndarray:
        return c.loan > 0

    def close_breaches(self, c: Close) -> np.ndarray:
        r = self.rules
        below = self.below(c)
        newly = c.eligible & below & (c.state == OK) & self.owes(c)
        c.state[newly] = CALLED
        c.called |= newly
        c.deadline[newly] = (c.calendar.trading_days_after(c.day, r.grace_days).toordinal()
                             if r.grace_days else c.today)
        c.generation[newly] = c.generation_at_close[newly]
        recovered = c.eligible & (c.state == CALLED) & ~below
        c.state[recovered & (c.deadline <= c.today)] = OK
        return c.eligible & (c.state == CALLED) & (c.deadline <= c.today)

    def cure_payment(self, c: Close) -> np.ndarray:
        # top up so that (holdings + cash) / loan is back at the target ratio
        target = self.rules.restore_ratio
        return np.maximum(c.loan - ((c.value + c.cash) / target).astype(np.int64), 0)

    def deposit_to_cure(self, value: float, loan: int, cash: int) -> int:
        # (value + cash + x) / loan >= target
        return max(0, math.ceil(self.rules.restore_ratio * loan - value - cash))

    def sale_need(self, px, value, loan, cash, debt, matured):
        # (V + C - x) / (L - x) >= m  <=>  x >= (m L - V - C) / (m - 1), x = value sold
        # (a CFD: V / (L - C) with C weighted by m: the same with m C in place of C)
        m = self.rules.restore_ratio
        held_cash = cash * self._cash_weight(m)
        return max(0.0, (m * loan - value - held_cash) / (m - 1.0)), np.maximum(px, 1)


@register("credit")
class CreditMargin(CollateralMargin):
    """신용융자 (docs/reference/krx.md: 신용융자): the margin call at the close, and the loan
    due at ``loan_term_days`` calendar days (krx.md:82 "At maturity, unpaid: sold next
    morning"), sold to repay it whole."""

    def close_breaches(self, c: Close) -> np.ndarray:
        breached = super().close_breaches(c)
        term = self.rules.loan_term_days
        if term:
            matured = c.eligible & (c.loan > 0) & (c.state == OK) & (
                c.first_trade() + term <= np.datetime64(c.day, "D"))
            c.matured |= matured
            c.generation[matured] = c.generation_at_close[matured]
            breached |= matured
        return breached

    def cure_payment(self, c: Close) -> np.ndarray:
        return np.where(c.matured, c.loan, super().cure_payment(c))  # a matured loan is paid off

    def sale_need(self, px, value, loan, cash, debt, matured):
        if matured:  # enough to repay the whole loan at the close
            return max(float(debt), 0.0), np.maximum(px, 1)
        return super().sale_need(px, value, loan, cash, debt, matured)


@register("instant")
class InstantMargin(CollateralMargin):
    """Crypto-style maintenance: the collateral ratio on every trade; strictly below
    ``maintenance_ratio``, sold at once (DESIGN.md: Brokers)."""

    def intraday(self) -> Trigger | None:
        return Trigger(int(round(self.rules.maintenance_ratio * BP)), True, BP)


@register("cfd")
class CfdMargin(CollateralMargin):
    """CFD (docs/reference/krx.md: CFD): the margin level, equity / (margin_rate x value),
    equity = value + cash - loan. Below ``call_level`` at a close, a call; at or under
    ``liquidation_level`` intraday, sold at once.

    A level ``l`` is the ratio value / (loan - cash) = 1 / (1 - l x margin_rate)
    (:meth:`level_ratio`), so the intraday trigger is :func:`breaches` with the cash
    weighted by that ratio."""

    def level_ratio(self, level: float) -> float:
        """value / (loan - cash) at margin level ``level``."""
        return 1.0 / self._level_den(level)

    def _level_den(self, level: float) -> float:
        return 1.0 - level * self.rules.margin_rate

    def _cash_weight(self, m: float) -> float:
        return m

    def ratio(self, value: Any, loan: Any, cash: Any) -> np.ndarray:
        """value / (loan - cash); inf where nothing is owed."""
        value, loan, cash = (np.asarray(x, np.float64) for x in (value, loan, cash))
        return _quotient(value, loan - cash)

    def intraday(self) -> Trigger | None:
        lvl = self.rules.liquidation_level
        if lvl <= 0:
            return None
        # equity / (mr * value) <= lvl  <=>  value / (loan - cash) <= 1 / (1 - lvl * mr)
        ratio_bp = int(BP / self._level_den(lvl))
        return Trigger(ratio_bp, False, ratio_bp)

    def below(self, c: Close) -> np.ndarray:
        r = self.rules
        value, debt = c.value, c.debt
        required = r.margin_rate * value
        level = np.where(value > 0, (value - debt) / np.maximum(required, 1), -np.inf)
        return level < r.call_level

    def owes(self, c: Close) -> np.ndarray:
        return c.debt > 0

    def cure_payment(self, c: Close) -> np.ndarray:
        # top up so that value / (loan - cash) is back at the call level's ratio
        target = self.level_ratio(self.rules.call_level)
        return np.maximum(c.debt - (c.value / target).astype(np.int64), 0)

    def deposit_to_cure(self, value: float, loan: int, cash: int) -> int:
        # value / (loan - cash - x) >= 1 / (1 - call_level * mr)
        target = self.level_ratio(self.rules.call_level)
        return max(0, math.ceil(loan - cash - value / target))


@register("misu")
class MisuMargin(MarginRule):
    """미수 (docs/reference/krx.md: 미수): the rest of a purchase is due ``grace_days``
    trading days after it (T+2); unpaid at that close, it is sold the next morning, enough
    to cover the loan at the close less ``haircut``; after a sale whose shortfall exceeded
    ``freeze_threshold``, the account buys with cash only for ``freeze_days``."""

    calls = False

    def close_breaches(self, c: Close) -> np.ndarray:
        # the rest of the purchase was due on T+2 (trading days): unpaid -> sold next morning
        days = c.calendar.sessions()
        i = np.searchsorted(days, c.first_trade()) + self.rules.grace_days
        settles = days[np.minimum(i, len(days) - 1)]
        breached = c.eligible & (c.loan > 0) & (c.state == OK) & (
            settles == np.datetime64(c.day, "D"))
        c.generation[breached] = c.generation_at_close[breached]
        return breached

    def cure_payment(self, c: Close) -> np.ndarray:
        return c.loan

    def deposit_to_cure(self, value: float, loan: int, cash: int) -> int:
        return max(0, int(loan) - int(cash))  # cash enough to pay the purchase off

    def frozen_until(self, today: int, debt: int) -> int | None:
        r = self.rules
        if r.freeze_days and debt > r.freeze_threshold:
            # after the sale, 100% cash for new buys during freeze_days calendar days
            return today + r.freeze_days
        return None

    def sale_need(self, px, value, loan, cash, debt, matured):
        return loan, np.maximum((px * (1.0 - self.rules.haircut)).astype(np.int64), 1)
