"""Strategies: Python callbacks driven by the replay, trading through the simulated book.

A strategy subclasses :class:`Strategy` and overrides the callbacks it needs; the names are
Nautilus Trader's (``on_start``, ``on_trade``, ``on_bar`` ...). It says in ``on_start`` what
it wants to hear about (``subscribe_trades``, ``subscribe_book``, ``subscribe_bars``,
``set_timer``): the compiled loop stops for nothing else, so a strategy that subscribes to
little costs little, and a replay without a strategy runs exactly as before.

**Time.** A callback runs at a simulated time, :attr:`Strategy.now` (ns since the epoch,
UTC). An order submitted then arrives at the venue ``latency_ns`` later and is matched
against the book as it is at that time. ``on_trade`` runs after the event that printed the
trade; ``on_bar`` when the bar's period has ended; ``on_book`` at most once per interval, on
the interval's grid, when something happened since the last one; ``on_timer`` at its times.

**The account.** ``account`` names its kind: ``cash`` (no borrowing), or a margin account of
the broker: ``credit`` (신용융자), ``misu`` (미수), ``cfd`` or ``instant``. A margin account is
an account of the run's broker (``--broker``; with none, the KRX preset of its kind) under
the same rules as the population: buys are financed at the rules' ``margin_rate``, calls
come at the close, uncured calls are sold in the next pre-open auction, and forced sales
reach the strategy as ``on_liquidation`` and ``on_fill(fill.forced=True)``. A call is cured
only by the strategy itself (``deposit``, ``repay`` or selling), never by the rules'
``cure_probability``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brokers.engine import NO_LOAN_DATE, Account
from brokers.rules import MAX_WON
from venues.codes import (
    ASK,
    BID,
    ORDER_TYPES,
    REASON_NAMES,
    SOURCE_NAMES,
    ST_CANCELLED,
    ST_EXPIRED,
    ST_FILLED,
    ST_NO_LIQUIDITY,
    ST_PARTIAL,
    ST_REJECTED,
    STATUS_NAMES,
)
from venues.matching import (
    TRADES,
)
from venues.participants import Participant
from venues.rules import PHASES

ACCOUNT_KINDS = ("cash", "credit", "misu", "cfd", "instant")
#: the broker preset a margin account uses when the run has no --broker
DEFAULT_RULES = {"credit": "krx-credit", "misu": "krx-misu", "cfd": "cfd", "instant": "instant"}
NEVER = np.iinfo(np.int64).max
# result statuses after which an order is done (a partial one too when nothing rests: an
# IOC's rest is cancelled)
_DONE = (ST_FILLED, ST_REJECTED, ST_CANCELLED, ST_NO_LIQUIDITY, ST_EXPIRED)
_AGGRESSOR = {BID: "buy", ASK: "sell"}


def duration_ns(value: int | str | pd.Timedelta) -> int:
    """``"5min"``, ``"1s"``, a Timedelta or integer nanoseconds, as nanoseconds > 0."""
    ns = int(value) if isinstance(value, int | np.integer) else pd.Timedelta(value).value
    if ns <= 0:
        raise ValueError(f"interval {value!r} must be positive")
    return ns


# -- what callbacks receive --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trade:
    ts: int
    instrument: int
    price: int
    size: int
    aggressor: str  # "buy", "sell" or "" (an auction print)
    source: str  # history, injected, reapplied, history_cross, auction


@dataclass(frozen=True, slots=True)
class Bar:
    start: int  # the bar covers [start, end)
    end: int
    instrument: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    trades: int


@dataclass(frozen=True, slots=True)
class Book:
    ts: int
    instrument: int
    bids: tuple[tuple[int, int], ...]  # (price, size), best first
    asks: tuple[tuple[int, int], ...]

    @property
    def best_bid(self) -> int | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> int | None:
        return self.asks[0][0] if self.asks else None


@dataclass(frozen=True, slots=True)
class Fill:
    ts: int
    order_id: int
    instrument: int
    side: str
    qty: int
    notional: int  # price x qty summed over the executions, in price units
    forced: bool  # a forced sale of the broker, not the strategy's own order

    @property
    def price(self) -> float:
        return self.notional / self.qty


@dataclass(frozen=True, slots=True)
class MarginCall:
    ts: int
    day: date
    kind: str  # the account's kind
    collateral_ratio: float  # value / (loan - cash) at the close
    deadline: date  # cure by this day's close, else sold the next morning
    shortfall: int  # won to deposit to cure now (0: not curable, a 미수 due unpaid)


@dataclass(frozen=True, slots=True)
class Liquidation:
    ts: int
    order_id: int
    instrument: int
    qty: int
    price: int  # the order's limit (0: market)
    generation: int  # cascade generation (brokers/engine.py)


@dataclass(frozen=True, slots=True)
class Timer:
    ts: int
    name: str


@dataclass
class Order:
    order_id: int
    ts: int  # arrival at the venue
    instrument: int
    side: str
    type: str
    price: int
    qty: int
    filled: int = 0
    notional: int = 0
    status: str = "pending"
    forced: bool = False


# -- the class users write ----------------------------------------------------------------------
class Strategy:
    """Base class of strategies. Class attributes are parameters: ``cash`` (won at the
    start), ``account`` (its kind, :data:`ACCOUNT_KINDS`), ``latency_ns`` (order arrival
    delay); subclasses add their own. Every parameter can be set as a keyword of the
    constructor (``cascade replay --param KEY=VALUE``)."""

    account: str = "cash"
    cash: int = 100_000_000
    latency_ns: int = 0

    def __init__(self, **params: Any) -> None:
        known = self.parameters()
        types = self.parameter_types()
        for key, value in params.items():
            if key not in known:
                raise ParameterError(f"{type(self).__name__}: unknown parameter {key!r}; its "
                                     f"parameters: {', '.join(known)}")
            setattr(self, key, _typed(type(self).__name__, key, value, types[key]))
        if self.account not in ACCOUNT_KINDS:
            raise ValueError(f"{type(self).__name__}: account {self.account!r} is not one of "
                             f"{ACCOUNT_KINDS}")
        _check_range(self, "cash", 0, MAX_WON, "won at the start")
        _check_range(self, "latency_ns", 0, 3_600 * 10**9, "nanoseconds, at most an hour")
        self._host: StrategyHost | None = None

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        out = {}
        for klass in reversed(cls.__mro__):
            for k, v in vars(klass).items():
                if not k.startswith("_") and not callable(v) and not isinstance(
                        v, property | classmethod | staticmethod):
                    out[k] = v
        return out

    @classmethod
    def parameter_types(cls) -> dict[str, type | None]:
        """Each parameter's type: its annotation on the class (``take_profit: float =
        0.05``), else the type of its default; one of :data:`PARAMETER_TYPES`, or None
        (any value, kept as given)."""
        hints: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            try:
                hints.update(typing.get_type_hints(klass))
            except Exception:  # an annotation that does not resolve: use the default's type
                hints.update({k: v for k, v in vars(klass).get("__annotations__", {}).items()
                              if not isinstance(v, str)})
        out: dict[str, type | None] = {}
        for key, default in cls.parameters().items():
            hint = _unwrap_optional(hints.get(key))
            if hint in PARAMETER_TYPES:
                out[key] = hint
            else:
                out[key] = next((t for t in PARAMETER_TYPES if type(default) is t), None)
        return out

    @property
    def name(self) -> str:
        return type(self).__name__

    # callbacks: override what you need ----------------------------------------------------
    def on_start(self) -> None: ...
    def on_stop(self) -> None: ...
    def on_trade(self, trade: Trade) -> None: ...
    def on_book(self, book: Book) -> None: ...
    def on_bar(self, bar: Bar) -> None: ...
    def on_timer(self, timer: Timer) -> None: ...
    def on_fill(self, fill: Fill) -> None: ...
    def on_order_rejected(self, order: Order, reason: str) -> None: ...
    def on_margin_call(self, call: MarginCall) -> None: ...
    def on_liquidation(self, order: Liquidation) -> None: ...
    def on_close(self, day: date) -> None:
        """After a KRX session's close (and after the broker valued the accounts)."""

    # what a strategy can do ----------------------------------------------------------------
    @property
    def host(self) -> StrategyHost:
        if self._host is None:
            raise RuntimeError(f"{self.name} is not attached to a replay")
        return self._host

    @property
    def now(self) -> int:
        return self.host.now

    def instrument(self, symbol: str | int) -> int:
        """An instrument id from its symbol (or id)."""
        return self.host.instrument_id(symbol)

    def subscribe_trades(self, instrument: str | int) -> None:
        self.host.subscribe_trades(self.instrument(instrument))

    def subscribe_book(self, instrument: str | int, interval: int | str = "1s",
                       depth: int = 5) -> None:
        self.host.subscribe_book(self.instrument(instrument), duration_ns(interval), depth)

    def subscribe_bars(self, instrument: str | int, interval: int | str = "1min") -> None:
        self.host.subscribe_bars(self.instrument(instrument), duration_ns(interval))

    def set_timer(self, name: str, *, interval: int | str | None = None,
                  at: int | None = None, daily: time | None = None) -> None:
        """Call ``on_timer`` every ``interval``, once ``at`` a time (ns), or ``daily`` at a
        Seoul wall-clock time on each XKRX trading day."""
        if sum(x is not None for x in (interval, at, daily)) != 1:
            raise ValueError("set_timer: give exactly one of interval, at, daily")
        self.host.set_timer(name, None if interval is None else duration_ns(interval), at,
                            daily)

    def cancel_timer(self, name: str) -> None:
        self.host.timers.pop(name, None)

    def submit_order(self, instrument: str | int, side: str, qty: int, type: str = "market",
                     price: int | None = None) -> Order | None:
        """A ``market``, ``limit`` or ``ioc`` order arriving ``latency_ns`` from now; None
        if refused at once (``on_order_rejected`` says why)."""
        return self.host.submit(self.instrument(instrument), side, int(qty), type, price)

    def cancel_order(self, order: Order | int) -> None:
        self.host.cancel(order if isinstance(order, int) else order.order_id)

    def position(self, instrument: str | int) -> int:
        return self.host.position(self.instrument(instrument))

    def open_orders(self) -> list[Order]:
        """Orders sent and not done (a resting rest, or not yet arrived)."""
        return self.host.live_orders()

    @property
    def balance(self) -> int:
        """Cash (won; negative is owed to the broker on a margin account)."""
        return self.host.cash

    @property
    def loan(self) -> int:
        return self.host.loan

    @property
    def equity(self) -> float:
        return self.host.equity()

    @property
    def collateral_ratio(self) -> float:
        """(Holdings at the last price + cash) / loan (a CFD: holdings / (loan - cash)); inf
        without a loan."""
        return self.host.collateral_ratio()

    @property
    def ledger(self) -> Account | CashAccount:
        """The account as its broker keeps it (:class:`brokers.engine.Account`: position,
        cash, loan, state, deadline, frozen_until); a :class:`CashAccount` for ``cash``."""
        return self.host.ledger

    @property
    def rules(self):
        """The margin rules of the account (:class:`brokers.rules.Rules`; None for cash)."""
        return self.host.broker.rules if self.host.broker is not None else None

    def holdings_value(self) -> float:
        """The positions at their last prices, in won."""
        return self.host.holdings()

    def buying_power(self) -> int:
        """Won of stock the account can buy now (cash / margin rate)."""
        return self.host.buying_power()

    def deposit(self, amount: int) -> None:
        self.host.deposit(int(amount))

    def repay(self, amount: int | None = None) -> int:
        """Repay the loan from cash (all of it that cash covers by default); returns won
        repaid."""
        return self.host.repay(amount)

    def last_price(self, instrument: str | int) -> int:
        return self.host.last_price(self.instrument(instrument))

    def limits(self, instrument: str | int) -> tuple[int, int]:
        """The day's (lower, upper) price limits at the KRX venue ((0, 0) elsewhere)."""
        return self.host.limits(self.instrument(instrument))

    def phase(self, instrument: str | int) -> str:
        return self.host.phase(self.instrument(instrument))

    def book(self, instrument: str | int, depth: int = 5) -> Book:
        return self.host.book(self.instrument(instrument), depth)

    def to_tick(self, instrument: str | int, price: float, up: bool = False) -> int:
        """``price`` rounded down (or ``up``) to the instrument's tick grid, within the
        day's limits at the KRX venue."""
        return self.host.to_tick(self.instrument(instrument), price, up)

    def log(self, text: str) -> None:
        self.host.record(self.now, "log", -1, "", 0, 0, text)

    @property
    def today(self) -> date:
        return self.host.today()


#: The types a parameter can have (``--param`` values are parsed to them).
PARAMETER_TYPES: tuple[type, ...] = (bool, int, float, str, time, date)
_TYPE_WORDS = {bool: "a boolean (true or false)", int: "an integer", float: "a number",
               str: "a string", time: "a time HH:MM[:SS]", date: "a date YYYY-MM-DD"}
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


class ParameterError(ValueError, TypeError):
    """An unknown strategy parameter, or a value not of its type (a ValueError, and a
    TypeError as Python's own unknown-keyword error)."""


def _unwrap_optional(hint: Any) -> Any:
    """``X | None`` as ``X``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return hint


def _typed(owner: str, key: str, value: Any, want: type | None) -> Any:
    """``value`` as a parameter of type ``want``: text (``--param``) is parsed strictly
    (ASCII digits, no ``1_0``), other values must already be of the type (an integral float
    is an integer)."""
    if want is None:
        return value

    def fail() -> ParameterError:
        return ParameterError(f"{owner}: parameter {key} = {value!r} is not "
                              f"{_TYPE_WORDS[want]}")

    if isinstance(value, str) and want is not str:
        text = value.strip()
        if want is bool:
            if text.lower() not in _BOOLS:
                raise fail()
            return _BOOLS[text.lower()]
        if want is int:
            if _INT.fullmatch(text):
                return int(text)
            if _FLOAT.fullmatch(text) and float(text).is_integer() and abs(float(text)) < 2**53:
                return int(float(text))  # 5e7
            raise fail()
        if want is float:
            if not _FLOAT.fullmatch(text):
                raise fail()
            return float(text)
        try:
            if want is time and re.fullmatch(r"[0-9]{2}:[0-9]{2}(:[0-9]{2})?", text, re.ASCII):
                return time.fromisoformat(text)
            if want is date and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text, re.ASCII):
                return date.fromisoformat(text)
        except ValueError:
            pass
        raise fail()
    if want is bool:
        if not isinstance(value, bool):
            raise fail()
        return value
    if isinstance(value, bool):
        raise fail()
    if want is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if want is float and isinstance(value, int):
        return float(value)
    if want is date and isinstance(value, datetime):
        raise fail()
    if not isinstance(value, want) or (want is float and not math.isfinite(value)):
        raise fail()
    return value


def _check_range(strategy: Strategy, key: str, low: int, high: int, unit: str) -> None:
    value = getattr(strategy, key)
    if not isinstance(value, int | float) or isinstance(value, bool) or \
            not low <= value <= high:
        raise ParameterError(f"{strategy.name}: parameter {key} = {value!r} is outside "
                             f"[{low:,}, {high:,}] ({unit})")


def load_strategy(spec: str) -> type[Strategy]:
    """``FILE.py:Class`` or ``package.module:Class`` as a :class:`Strategy` subclass."""
    where, sep, cls_name = spec.rpartition(":")
    if not sep or not where or not cls_name:
        raise ValueError(f"--strategy {spec!r}: expected FILE.py:Class or module:Class, e.g. "
                         "strategies/credit_momentum.py:CreditMomentum")
    if where.endswith(".py") and not Path(where).is_file() and where.startswith("strategies/"):
        where = where[:-3].replace("/", ".")  # the shipped examples, from any directory
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise FileNotFoundError(f"--strategy {spec!r}: no file {path}")
        name = "cascade_strategy_" + path.stem
        mod_spec = importlib.util.spec_from_file_location(name, path)
        if mod_spec is None or mod_spec.loader is None:
            raise ValueError(f"--strategy {spec!r}: {path} is not a Python file")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:  # the user's file: one line, not our traceback
            raise ValueError(f"--strategy {spec!r}: {path} failed to load: "
                             f"{_one_line(exc)}") from None
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            if exc.name and where.startswith(exc.name):
                raise FileNotFoundError(f"--strategy {spec!r}: no module {where!r} (give "
                                        "FILE.py:Class or module:Class)") from None
            raise ValueError(f"--strategy {spec!r}: {where} failed to load: "
                             f"{_one_line(exc)}") from None
        except Exception as exc:
            raise ValueError(f"--strategy {spec!r}: {where} failed to load: "
                             f"{_one_line(exc)}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        found = [k for k, v in vars(module).items()
                 if isinstance(v, type) and issubclass(v, Strategy) and v is not Strategy]
        raise ValueError(f"--strategy {spec!r}: {where} has no class {cls_name!r} (its "
                         f"strategies: {', '.join(found) or 'none'})")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ValueError(f"--strategy {spec!r}: {cls_name} is not a strategies.base.Strategy")
    return cls


def _one_line(exc: BaseException) -> str:
    """An exception as one line: its type, message and, for a syntax error, the line."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def attach_strategy(replay, strategy: Strategy, *, rules=None, population=None,
                    seed: int = 0, submit_forced: bool = True) -> StrategyHost:
    """Attach ``strategy`` to ``replay``. Its margin account joins ``population`` under
    ``rules`` (with no rules: the KRX preset of its kind, and no other account)."""
    from brokers.engine import Broker
    from brokers.rules import load_rules

    broker = None
    account = row0 = 0
    kind = strategy.account
    n_inst = len(replay.book.ins)
    if kind != "cash":
        if rules is None:
            rules = load_rules(DEFAULT_RULES[kind], [])
        elif rules.kind != kind:
            raise ValueError(f"strategy {strategy.name} trades a {kind} account, but the "
                             f"run's broker has {rules.kind} rules ({rules.name}); give a "
                             f"{kind} broker or set the strategy's account")
        population, account, row0 = _with_account(population, n_inst, kind, strategy.cash)
        broker = Broker(rules, population, seed=seed, submit_orders=submit_forced)
        broker.self_directed[account] = True
        broker.attach(replay)
    elif rules is not None:
        broker = Broker(rules, population, seed=seed, submit_orders=submit_forced)
        broker.attach(replay)
    host = StrategyHost(replay, strategy, broker if kind != "cash" else None, account, row0)
    host.population_broker = broker  # the run's broker (a cash strategy has none of its own)
    return host


def _with_account(population, n_instruments: int, kind: str, cash: int):
    """``population`` plus one account of ``kind`` with ``cash`` and an empty position in
    every instrument: (population, account index, its first position row)."""
    from brokers.population import KIND_CODES, Population

    if population is None:
        z = np.zeros(0, np.int64)
        population = Population(z, z.astype(np.int8), z, z, z, z, z, z, z)
    a = len(population.account_id)
    row0 = len(population.pos_account)
    new_id = int(population.account_id.max()) + 1 if a else 1
    inst = np.arange(n_instruments, dtype=np.int64)
    cat = np.concatenate
    return Population(
        account_id=cat([population.account_id, [new_id]]),
        kind=cat([population.kind, [KIND_CODES[kind]]]),
        cash=cat([population.cash, [int(cash)]]),
        loan=cat([population.loan, [0]]),
        pos_account=cat([population.pos_account, np.full(n_instruments, a)]),
        pos_instrument=cat([population.pos_instrument, inst]),
        pos_shares=cat([population.pos_shares, np.zeros(n_instruments, np.int64)]),
        pos_entry=cat([population.pos_entry, np.zeros(n_instruments, np.int64)]),
        pos_trade_date=cat([population.pos_trade_date,
                            np.full(n_instruments, NO_LOAN_DATE)]),
    ), a, row0


class CashAccount:
    """The account of a strategy with no broker (``account = "cash"``): no loan, no rules,
    buys paid in full. It offers the interface of :class:`brokers.engine.Account`, so the
    host treats both alike."""

    rules = None
    margin = None
    state = "ok"
    deadline: date | None = None
    frozen_until: date | None = None
    loan = 0

    def __init__(self, n_instruments: int, cash: int) -> None:
        self._shares = np.zeros(n_instruments, np.int64)
        self._cash = int(cash)

    def __repr__(self) -> str:
        return f"CashAccount(cash={self.cash:,})"

    @property
    def cash(self) -> int:
        return self._cash

    def position(self, instrument: int) -> int:
        return int(self._shares[instrument])

    def positions(self, n_instruments: int) -> np.ndarray:
        return self._shares[:n_instruments].copy()

    def pending(self, instrument: int) -> int:
        return 0  # no broker, no forced order

    def margin_rate(self, day: date) -> float:
        return 1.0

    def ratio(self, value: float) -> float:
        return math.inf

    def shortfall(self, value: float) -> int:
        return 0

    def book_fill(self, instrument: int, side: str, qty: int, notional: int,
                  day: date) -> None:
        sign = 1 if side == "buy" else -1
        self._shares[instrument] += sign * qty
        self._cash -= sign * notional

    def deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError("deposit: amount must be positive")
        self._cash += int(amount)

    def repay(self, amount: int | None = None) -> int:
        return min(self.loan, max(self.cash, 0), self.loan if amount is None else int(amount))

    def settle(self) -> None:
        pass


class StrategyHost(Participant):
    """Runs one strategy inside a :class:`replay.engine.Replay`, as one of its participants
    (venues/participants.py): it begins at the first event, runs at its timers' and
    subscriptions' times (:meth:`next_ts`, :meth:`on_time`), reads fills and prints after
    every stop (:meth:`observe`) and before each flush (:meth:`tap`), and hears the venue's
    session events (:meth:`on_pre_open`, :meth:`on_day_end`)."""

    role = "strategy"

    def __init__(self, replay, strategy: Strategy, broker, account: int, row0: int) -> None:
        self.rp = replay
        self.strategy = strategy
        self.broker = broker
        self.account = account
        self.row0 = row0
        n = len(replay.book.ins)
        #: the account as its broker keeps it (brokers.engine.Account), or a CashAccount
        self.ledger: Account | CashAccount = (broker.account(account) if broker is not None
                                              else CashAccount(n, strategy.cash))
        #: the venue's trading days and clock (venues.calendar.Calendar)
        self.calendar = replay.calendar
        self.symbols = {i.symbol: i.instrument_id for i in replay.instruments}
        self.now = 0
        self.started = False
        self.orders: dict[int, Order] = {}
        self._live: set[int] = set()
        self._forced_seen = 0
        self._trade_seen = 0
        self._trade_subs = np.zeros(n, bool)
        self._any_trade_sub = False
        self._books: dict[int, list[int]] = {}  # inst -> [interval, depth, next due]
        # inst -> [interval, current bar dict | None, the period end to pause at when no bar
        # is open: that of the period holding the next input, so that every bar is told at
        # its end (on_time), never later]
        self._bars: dict[int, list[Any]] = {}
        self.timers: dict[str, list[Any]] = {}  # name -> [next due, interval, daily time]
        self._events: list[tuple] = []
        self._equity: list[tuple] = []
        self._last_equity_ts = -NEVER
        self._called = False
        self.deposits = 0
        self.margin_calls = 0
        self.liquidations = 0
        self.fills = 0
        self.rejected = 0
        strategy._host = self
        replay.attach(self)

    # -- account ---------------------------------------------------------------------------
    def instrument_id(self, symbol: str | int) -> int:
        if isinstance(symbol, int | np.integer):
            if int(symbol) not in self.symbols.values():
                raise KeyError(f"instrument id {symbol} is not in the tape (ids "
                               f"{sorted(self.symbols.values())})")
            return int(symbol)
        if symbol not in self.symbols:
            raise KeyError(f"instrument {symbol!r} is not in the tape (symbols "
                           f"{sorted(self.symbols)})")
        return self.symbols[symbol]

    def position(self, inst: int) -> int:
        return self.ledger.position(inst)

    @property
    def cash(self) -> int:
        return self.ledger.cash

    @property
    def loan(self) -> int:
        return self.ledger.loan

    def last_price(self, inst: int) -> int:
        book = self.rp.book
        return int(book.column("last")[inst]) or int(book.column("close")[inst])

    def holdings(self) -> float:
        n = len(self.rp.book.ins)
        shares = self.ledger.positions(n)
        return float((shares * self.rp.book.column("last")[:n]).sum())

    def equity(self) -> float:
        return self.holdings() + self.cash - self.loan

    def collateral_ratio(self) -> float:
        """The broker's ratio for the account: (holdings + cash) / loan, a CFD's holdings /
        (loan - cash); inf with nothing owed or no broker."""
        if self.broker is None:
            return math.inf
        return self.ledger.ratio(self.holdings())

    def _rate(self) -> float:
        """The share of a purchase paid in cash: the margin rate, 100% for a cash account or
        a 미수 account frozen after a forced sale."""
        return self.ledger.margin_rate(self.today())

    def live_orders(self) -> list[Order]:
        return [self.orders[j] for j in sorted(self._live)]

    def buying_power(self) -> int:
        reserved = sum(o.price * (o.qty - o.filled) for o in self.live_orders()
                       if o.side == "buy")
        return int(max(self.cash, 0) / self._rate()) - reserved

    def deposit(self, amount: int) -> None:
        self.ledger.deposit(amount)
        self.deposits += amount
        self.record(self.now, "deposit", -1, "", 0, 0, f"{amount:,} won")

    def repay(self, amount: int | None = None) -> int:
        pay = self.ledger.repay(amount)
        if pay > 0:
            self.record(self.now, "repay", -1, "", 0, 0, f"{pay:,} won")
        return pay

    def limits(self, inst: int) -> tuple[int, int]:
        book = self.rp.book
        return int(book.column("lower_limit")[inst]), int(book.column("upper_limit")[inst])

    def phase(self, inst: int) -> str:
        if self.rp.venue is None:
            return "continuous"
        return PHASES[int(self.rp.book.column("phase")[inst])]

    def book(self, inst: int, depth: int) -> Book:
        q = self.rp.book.top_levels(inst, depth).tolist()
        bids = tuple((p, s) for p, s, _, _ in q if p > 0 and s > 0)
        asks = tuple((p, s) for _, _, p, s in q if p > 0 and s > 0)
        return Book(self.now, inst, bids, asks)

    def to_tick(self, inst: int, price: float, up: bool) -> int:
        tick = self.rp.book.tick_at(inst, int(price))
        p = -(-int(math.ceil(price)) // tick) * tick if up else int(price) // tick * tick
        lo, hi = self.limits(inst)
        return min(max(p, lo), hi) if hi > 0 else max(p, tick)

    def today(self) -> date:
        venue = self.rp.venue
        if venue is not None and venue.day is not None:
            return venue.day
        return self.calendar.local_date(self.now)

    # -- orders ----------------------------------------------------------------------------
    def submit(self, inst: int, side: str, qty: int, typ: str, price: int | None):
        if side not in ("buy", "sell"):
            raise ValueError(f"submit_order: side {side!r} must be 'buy' or 'sell'")
        if typ not in ("market", "limit", "ioc"):
            raise ValueError(f"submit_order: type {typ!r} must be market, limit or ioc")
        if typ != "market" and (price is None or int(price) <= 0):
            raise ValueError(f"submit_order: a {typ} order needs a positive price")
        ts = self.now + int(self.strategy.latency_ns)
        px = int(price) if typ != "market" else 0
        order = Order(-1, ts, inst, side, typ, px, qty)
        reason = self._refuse(order)
        if reason:
            self.rejected += 1
            order.status = "rejected"
            self.record(self.now, "rejected", inst, side, qty, px, reason)
            self.strategy.on_order_rejected(order, reason)
            return None
        if typ == "market" and side == "buy":
            order.price = self._buy_estimate(inst)  # reserved buying power
        code = BID if side == "buy" else ASK
        ids = self.rp.submit(np.array([ts]), np.array([inst]), np.array([code]),
                             np.array([ORDER_TYPES[typ]]), np.array([px]), np.array([qty]),
                             np.array([-1]))
        order.order_id = int(ids[0])
        self.orders[order.order_id] = order
        self._live.add(order.order_id)
        self._watch(inst)
        return order

    def _buy_estimate(self, inst: int) -> int:
        """What a market buy may pay per share: the upper limit at KRX, else the best ask or
        the last price."""
        lo, hi = self.limits(inst)
        if hi > 0:
            return hi
        b = self.book(inst, 1)
        return b.best_ask or int(self.rp.book.column("last")[inst])

    def _refuse(self, o: Order) -> str:
        if o.qty <= 0:
            return "quantity must be positive"
        if o.side == "sell":
            selling = sum(x.qty - x.filled for x in self.live_orders()
                          if x.instrument == o.instrument and x.side == "sell" and not x.forced)
            forced = self.ledger.pending(o.instrument)
            if o.qty > self.position(o.instrument) - selling - forced:
                return (f"sell {o.qty:,} exceeds the position left to sell "
                        f"({self.position(o.instrument) - selling - forced:,}): no short sales")
            return ""
        px = o.price if o.type != "market" else self._buy_estimate(o.instrument)
        if px <= 0:
            return "no price to value a market buy yet"
        if o.qty * px > self.buying_power():
            return (f"buy {o.qty:,} x {px:,} exceeds the buying power "
                    f"{self.buying_power():,} (cash {self.cash:,}, margin rate "
                    f"{self._rate():.0%})")
        return ""

    def cancel(self, order_id: int) -> None:
        o = self.orders.get(order_id)
        if o is None or o.forced:
            raise ValueError(f"cancel_order: {order_id} is not an order of this strategy")
        if order_id not in self._live:
            return
        ts = self.now + int(self.strategy.latency_ns)
        self.rp.submit(np.array([ts]), np.array([o.instrument]), np.array([BID]),
                       np.array([ORDER_TYPES["cancel"]]), np.array([order_id]),
                       np.array([0]), np.array([-1]))

    def _watch(self, inst: int) -> None:
        """Stop the loop after trades on ``inst`` while it has live orders or a trade
        subscription."""
        live = any(self.orders[j].instrument == inst for j in self._live)
        self.rp.wake_on_prints(self, inst, bool(live or self._trade_subs[inst]))

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe_trades(self, inst: int) -> None:
        self._trade_subs[inst] = True
        self._any_trade_sub = True
        self._watch(inst)

    def subscribe_book(self, inst: int, interval: int, depth: int) -> None:
        self._books[inst] = [interval, depth, self._first_due(interval)]

    def subscribe_bars(self, inst: int, interval: int) -> None:
        self._bars[inst] = [interval, None, self._first_due(interval)]

    def set_timer(self, name: str, interval: int | None, at: int | None,
                  daily: time | None) -> None:
        if at is not None:
            due = int(at)
        elif interval is not None:
            due = self._first_due(interval)
        else:
            due = self._next_daily(daily, self.now)
        self.timers[name] = [due, interval, daily]

    def _first_due(self, interval: int) -> int:
        """The first time on the ``interval`` grid after now (subscriptions are made in
        ``on_start``, once the first event's time is known)."""
        return (self.now // interval + 1) * interval

    def _next_daily(self, at: time, after: int) -> int:
        """The first ``at`` (the venue's local time) on a trading day after ``after``."""
        cal = self.calendar
        day = cal.local_date(after) if after > 0 else self.today()
        if not cal.is_trading_day(day):
            day = cal.next_trading_day(day)
        due = cal.local_ns(day, at)
        return due if due > after else cal.local_ns(cal.next_trading_day(day), at)

    # -- the replay calls these ---------------------------------------------------------------
    def begin(self, ts: int) -> None:
        """The first event's time: the strategy starts."""
        self.now = ts
        self.started = True
        self.strategy.on_start()
        self._snapshot(ts, force=True)

    def next_ts(self) -> int:
        due = NEVER
        for t in self.timers.values():
            due = min(due, t[0])
        for sub in self._books.values():
            due = min(due, sub[2])
        for _interval, bar, end in self._bars.values():
            due = min(due, bar["end"] if bar is not None else end)
        return due

    def on_time(self, t: int, next_event: int) -> None:
        """The loop paused at ``t``: everything before it has happened."""
        self.now = t
        self.poll(t)
        for inst, (interval, bar, end) in sorted(self._bars.items()):
            if bar is not None and bar["end"] <= t:
                self._bars[inst][1] = None
                self.strategy.on_bar(Bar(**bar))
            if end <= t:  # the next pause: the end of the period of the next input
                self._bars[inst][2] = (max(t, next_event) // interval + 1) * interval \
                    if next_event < NEVER - interval else NEVER
        for inst, sub in sorted(self._books.items()):
            if sub[2] <= t:
                self.strategy.on_book(self.book(inst, sub[1]))
                # the next snapshot: the next grid time after the next event
                sub[2] = max(t + sub[0], (next_event // sub[0] + 1) * sub[0])
        for name, timer in sorted(self.timers.items(), key=lambda kv: kv[1][0]):
            due, interval, daily = timer
            if due > t:
                continue
            if interval is not None:
                timer[0] = due + interval * ((t - due) // interval + 1)
            elif daily is not None:
                timer[0] = self._next_daily(daily, t)
            else:
                del self.timers[name]
            self.strategy.on_timer(Timer(t, name))
        self._snapshot(t)

    def poll(self, t: int) -> None:
        """After any stop of the loop: fills of the strategy's orders, forced sales of its
        account, trades it subscribed to."""
        self.now = max(self.now, t)
        self._fills()
        self._forced()
        self.tap()

    def observe(self, ts: int) -> None:
        self.poll(ts)

    def before_flush(self) -> None:
        self.tap()

    def after_flush(self) -> None:
        self.flushed()

    def tap(self) -> None:
        """Read the trade prints written since the last tap (before the replay flushes
        them): feed the bars, call ``on_trade``."""
        out = self.rp.reports.view(TRADES)
        rows = out[self._trade_seen:]
        self._trade_seen = len(out)
        if not len(rows) or not (self._bars or self._any_trade_sub):
            return
        ts, inst, px, size, side, src = (rows[:, k] for k in range(6))
        one = inst[0] == inst[-1] and (len(inst) < 3 or (inst == inst[0]).all())
        for i, (interval, _bar, _end) in self._bars.items():
            if one:
                if inst[0] == i:
                    self._add_to_bars(i, interval, ts, px, size)
                continue
            m = inst == i
            if m.any():
                self._add_to_bars(i, interval, ts[m], px[m], size[m])
        if not self._any_trade_sub:
            return
        sub = self._trade_subs[inst]
        for k in np.flatnonzero(sub):
            self.now = max(self.now, int(ts[k]))
            aggressor = _AGGRESSOR.get(int(side[k]), "")
            self.strategy.on_trade(Trade(int(ts[k]), int(inst[k]), int(px[k]), int(size[k]),
                                         aggressor, SOURCE_NAMES.get(int(src[k]), "?")))

    def flushed(self) -> None:
        self._trade_seen = 0

    def _add_to_bars(self, inst: int, interval: int, ts, px, size) -> None:
        start = ts // interval * interval
        for s in (start[:1] if start[0] == start[-1] else np.unique(start)):
            m = start == s if start[0] != start[-1] else slice(None)
            bar = self._bars[inst][1]
            if bar is not None and bar["start"] != s:
                # a later bar begins before the pause at this one's end: emit it now
                self._bars[inst][1] = None
                self.strategy.on_bar(Bar(**bar))
                bar = None
            p, q = px[m], size[m]
            if bar is None:
                bar = {"start": int(s), "end": int(s) + interval, "instrument": inst,
                       "open": int(p[0]), "high": int(p.max()), "low": int(p.min()),
                       "close": int(p[-1]), "volume": int(q.sum()), "trades": int(len(p))}
            else:
                bar.update(high=max(bar["high"], int(p.max())), low=min(bar["low"],
                           int(p.min())), close=int(p[-1]), volume=bar["volume"] + int(q.sum()),
                           trades=bar["trades"] + int(len(p)))
            self._bars[inst][1] = bar

    def _fills(self) -> None:
        if not self._live:
            return
        book = self.rp.book
        filled_, notional_, status_ = (book.result(k) for k in ("filled", "notional", "status"))
        resting, reasons = book.result("resting"), book.result("reason")
        for j in sorted(self._live):
            o = self.orders[j]
            filled, notional = int(filled_[j]), int(notional_[j])
            status = int(status_[j])
            if filled > o.filled:
                dq, dn = filled - o.filled, notional - o.notional
                o.filled, o.notional = filled, notional
                if not o.forced:
                    self._book_fill(o.instrument, o.side, dq, dn)
                self._fill(Fill(self.now, j, o.instrument, o.side, dq, dn, o.forced))
            o.status = STATUS_NAMES[status]
            if status in _DONE or (status == ST_PARTIAL and resting[j] == 0):
                self._live.discard(j)
                self._watch(o.instrument)
                if status == ST_REJECTED and not o.forced:  # refused by the venue
                    reason = REASON_NAMES[int(reasons[j])]
                    self.rejected += 1
                    self.record(self.now, "rejected", o.instrument, o.side, o.qty, o.price,
                                reason)
                    self.strategy.on_order_rejected(o, reason)

    def _fill(self, fill: Fill) -> None:
        self.fills += 1
        self.record(fill.ts, "liquidation_fill" if fill.forced else "fill", fill.instrument,
                    fill.side, fill.qty, round(fill.price), "")
        self._snapshot(fill.ts, force=True)
        self.strategy.on_fill(fill)

    def _book_fill(self, inst: int, side: str, qty: int, notional: int) -> None:
        """The account's side of its own execution (:meth:`brokers.engine.Account.book_fill`):
        a buy is paid at the margin rate and the rest lent; a sale's proceeds repay the loan
        first."""
        self.ledger.book_fill(inst, side, qty, notional, self.today())

    def _forced(self) -> None:
        b = self.broker
        if b is None or len(b.forced) == self._forced_seen:
            return
        new = b.forced[self._forced_seen:]
        self._forced_seen = len(b.forced)
        acct_id = int(b.population.account_id[self.account])
        for f in new:
            if f["account_id"] != acct_id or f["order"] < 0:
                continue
            j = int(f["order"])
            self.liquidations += 1
            o = Order(j, int(f["ts"]), int(f["instrument"]), "sell", "forced", 0,
                      int(f["qty"]), forced=True)
            self.orders[j] = o
            self._live.add(j)
            self._watch(o.instrument)
            price = o.price = int(f["price"])
            self.record(self.now, "liquidation", o.instrument, "sell", o.qty, price,
                        f"generation {f['generation']}")
            self.strategy.on_liquidation(Liquidation(o.ts, j, o.instrument, o.qty, price,
                                                     int(f["generation"])))
        if any(self.orders[j].forced for j in self._live):
            self.ledger.settle()
            self._fills()

    # -- the KRX venue calls these ------------------------------------------------------------
    def on_pre_open(self, day: date, at: int, lower_limits: dict[int, int]) -> None:
        self.now = max(self.now, at)
        self._forced()

    def on_day_end(self, day: date, at: int) -> None:
        """After the broker valued the accounts at the close: margin calls, on_close."""
        self.now = max(self.now, at)
        self.poll(at)
        b = self.broker
        if b is not None:
            acct = self.ledger
            state = acct.state
            ratio = self.collateral_ratio()
            # a rule without calls (미수) sells at once: the sale's notice is the call
            called = state == "called" or (state == "selling" and not acct.margin.calls
                                           and not self._called)
            if called and not self._called:
                self.margin_calls += 1
                deadline = acct.deadline if state == "called" else day
                shortfall = self._shortfall() if state == "called" else 0
                self.record(at, "margin_call", -1, "", 0, 0,
                            f"ratio {ratio:.3f}, deadline {deadline}, shortfall {shortfall:,}")
                self.strategy.on_margin_call(MarginCall(at, day, b.rules.kind, ratio,
                                                        deadline, shortfall))
            elif self._called and state not in ("called", "selling"):
                self.record(at, "call_ended", -1, "", 0, 0, f"ratio {ratio:.3f}")
            self._called = state in ("called", "selling")
        self.strategy.on_close(day)
        self._snapshot(at, force=True)

    def _shortfall(self) -> int:
        """Won to deposit that bring the account back to its target ratio at this close."""
        return self.ledger.shortfall(self.holdings())

    def finish(self) -> None:
        """The replay ended: last fills and bars, then on_stop."""
        self.poll(self.now)
        for inst, (_interval, bar, _end) in sorted(self._bars.items()):
            if bar is not None:
                self._bars[inst][1] = None
                self.strategy.on_bar(Bar(**bar))
        self.strategy.on_stop()
        self._snapshot(self.now, force=True)

    # -- records ----------------------------------------------------------------------------
    def record(self, ts: int, kind: str, inst: int, side: str, qty: int, price: int,
               detail: str) -> None:
        self._events.append((int(ts), kind, int(inst), side, int(qty), int(price), detail))

    def _snapshot(self, ts: int, force: bool = False) -> None:
        """One row of the equity curve (at most one a minute unless ``force``)."""
        if not force and ts - self._last_equity_ts < 60 * 10**9:
            return
        self._last_equity_ts = ts
        hold = self.holdings()
        eq = hold + self.cash - self.loan
        self._equity.append((int(ts), eq, float(self.cash), float(self.loan), hold,
                             hold / eq if eq > 0 else math.inf, self.collateral_ratio()))

    def summary(self) -> dict[str, Any]:
        eq = [e[1] for e in self._equity]
        lev = [e[5] for e in self._equity if math.isfinite(e[5])]
        start = float(self.strategy.cash)
        final = eq[-1] if eq else start
        return {"name": self.strategy.name, "kind": self.strategy.account,
                "parameters": {k: _plain(getattr(self.strategy, k)) for k in
                               self.strategy.parameters()},
                "initial_cash": start, "deposits": self.deposits, "final_equity": final,
                "return": (final - start - self.deposits) / start if start else None,
                "fills": self.fills, "orders_rejected": self.rejected,
                "margin_calls": self.margin_calls, "liquidations": self.liquidations,
                "max_leverage": max(lev) if lev else 0.0,
                "min_equity": min(eq) if eq else start}

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        equity = pd.DataFrame(self._equity, columns=["ts", "equity", "cash", "loan",
                                                     "position_value", "leverage",
                                                     "collateral_ratio"])
        events = pd.DataFrame(self._events, columns=["ts", "kind", "instrument", "side",
                                                     "qty", "price", "detail"])
        return equity, events

    def write_tables(self, run_dir: Path, run_id: str | None = None) -> dict[str, Any]:
        """strategy_equity.parquet and strategy_events.parquet, each written atomically and
        carrying the run's id (replay/rundir.py); returns the summary."""
        import pyarrow as pa

        from replay.rundir import write_parquet

        equity, events = self.tables()
        for name, frame in (("strategy_equity", equity), ("strategy_events", events)):
            write_parquet(Path(run_dir) / f"{name}.parquet",
                          pa.Table.from_pandas(frame, preserve_index=False), run_id)
        return self.summary()


def _plain(value: Any) -> Any:
    """A parameter as JSON can hold it (times and other objects as text)."""
    return value if isinstance(value, bool | int | float | str | type(None)) else str(value)
