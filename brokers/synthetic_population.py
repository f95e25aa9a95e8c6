"""Synthetic populations: single-name accounts calibrated to daily bars and a credit balance
(KRW or % of shares outstanding), positions spread over entry dates by volume and over down
payment rates; seeded (docs/brokers.md: synthesised from daily bars).

The method only, over data already read: a :class:`PopulationSpec` checked from the spec's
keys, and :class:`DailyBars`. The spec file and the bars file are read in replay/
(:func:`replay.loaders.population.synthesize_population`,
:func:`replay.loaders.daily_bars.read_daily_bars`); nothing here opens a file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from brokers.population import MAX_ACCOUNTS, Population
from brokers.rules import KINDS, MAX_WON

if TYPE_CHECKING:
    from replay.tape import Instrument, InstrumentTable

_Fail = Callable[[str, str], ValueError]  # (key, reason) -> the error naming both
SPEC_KEYS = ("bars", "instrument", "kind", "kinds", "accounts", "credit_balance_krw",
             "credit_balance_pct_shares", "loan_term_days", "margin_rate", "as_of")


@dataclass(frozen=True)
class DailyBars:
    """Daily bars: ``date`` as days since 1970-01-01, ``close`` natural price, ``volume``;
    ``source`` names where they were read from, for messages."""

    date: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = field(default="the daily bars", compare=False)


@dataclass(frozen=True)
class PopulationSpec:
    """The keys of a population spec, checked (:meth:`from_mapping`):

    - ``bars``: the daily-bar file, as written (read by the caller); ``instrument``: its
      symbol;
    - ``kind = "credit"`` or ``kinds = {credit = 0.7, misu = 0.3}`` (shares summing to 1);
    - ``accounts``: how many (1 to 10^7); ``as_of``: the last bar used (default: the last
      bar), on or before the replay's first day (positions are held when the replay starts);
    - ``credit_balance_krw``, or ``credit_balance_pct_shares`` (% of the instrument's
      ``shares_outstanding``, valued at the ``as_of`` close): the total of the loans;
    - ``loan_term_days`` (default 90, calendar days): entries lie within the term before
      ``as_of``; ``margin_rate``: a rate or ``[low, high]`` drawn uniformly.
    """

    where: str  # the spec file, or "population spec": the start of every message
    bars: str
    instrument: Instrument
    kind_shares: tuple[float, ...]  # in KINDS order
    accounts: int
    loan_term_days: int
    margin_rate: tuple[float, float]
    as_of: int | None  # days since 1970-01-01
    credit_balance_krw: float | None
    credit_balance_pct_shares: float | None
    given: Mapping[str, Any] = field(repr=False, compare=False)  # the keys as written

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], instruments: InstrumentTable,
                     where: str) -> PopulationSpec:
        """Every check the keys allow without the bars; the first failure is a ValueError
        naming ``where``, the key, its value and what is allowed."""
        data = MappingProxyType(dict(data))

        def fail(key: str, reason: str) -> ValueError:
            return _key_error(where, data, key, reason)

        for key in data:
            if key not in SPEC_KEYS:
                raise ValueError(f"{where}: unknown key {key!r}; valid keys: "
                                 f"{', '.join(SPEC_KEYS)}")
        for key in ("bars", "instrument", "accounts"):
            if key not in data:
                raise ValueError(f"{where}: missing key {key!r}")
        if not isinstance(data["bars"], str):
            raise fail("bars", "must be the path of a daily-bar CSV")
        try:
            inst = instruments.by_symbol(str(data["instrument"]))
        except KeyError:
            raise fail("instrument", "not in the instrument table (symbols: "
                       f"{', '.join(i.symbol for i in instruments)})") from None
        shares_by_kind = _kind_shares(data, fail, where)
        accounts = data["accounts"]
        if not isinstance(accounts, int) or isinstance(accounts, bool) or \
                not 1 <= accounts <= MAX_ACCOUNTS:
            raise fail("accounts", f"must be an integer in [1, {MAX_ACCOUNTS:,}]")
        term = data.get("loan_term_days", 90)
        if not isinstance(term, int) or isinstance(term, bool) or not 1 <= term <= 3650:
            raise fail("loan_term_days", "must be an integer number of calendar days in "
                       "[1, 3650]")
        low, high = _margin_range(data, fail)
        as_of = None
        if "as_of" in data:
            as_of = _as_date(data["as_of"])
            if as_of is None:
                raise fail("as_of", "must be a date YYYY-MM-DD")

        krw = pct = None
        if ("credit_balance_krw" in data) == ("credit_balance_pct_shares" in data):
            raise ValueError(f"{where}: give exactly one of credit_balance_krw or "
                             "credit_balance_pct_shares")
        if "credit_balance_krw" in data:
            krw = _positive_number(data, "credit_balance_krw", fail)
            if krw > MAX_WON * accounts:
                raise fail("credit_balance_krw", f"is above 10^12 won per account x "
                           f"{accounts:,} accounts, the bound of a loan")
        else:
            pct = _positive_number(data, "credit_balance_pct_shares", fail)
            if pct > 100:
                raise fail("credit_balance_pct_shares", "is a percentage: must be <= 100")
            if inst.shares_outstanding <= 0:
                raise fail("credit_balance_pct_shares",
                           f"instrument {inst.symbol} has no shares_outstanding in the table")
        return cls(where=where, bars=data["bars"], instrument=inst,
                   kind_shares=tuple(float(s) for s in shares_by_kind), accounts=accounts,
                   loan_term_days=term, margin_rate=(low, high), as_of=as_of,
                   credit_balance_krw=krw, credit_balance_pct_shares=pct, given=data)

    def error(self, key: str, reason: str) -> ValueError:
        """A one-line error naming the spec, ``key`` and its value as written."""
        return _key_error(self.where, self.given, key, reason)


def _key_error(where: str, data: Mapping[str, Any], key: str, reason: str) -> ValueError:
    return ValueError(f"{where}: {key} = {data.get(key)!r}: {reason}")


def synthesize(spec: PopulationSpec, bars: DailyBars, seed: int,
               held_by: date | None = None) -> Population:
    """A seeded population of ``spec.accounts`` single-name accounts calibrated to
    ``bars``; ``held_by`` is the replay's first day (every position is dated on or before
    it, or this stops naming ``as_of``, or ``bars`` when ``as_of`` is the last bar).

    Method (all draws from ``numpy.random.Generator(PCG64(seed))``, in this order):
    1. kinds: exact counts by largest remainder of ``share x accounts``, randomly permuted;
    2. entry day: a bar dated in ``(as_of - loan_term_days, as_of]``, drawn with
       probability proportional to its volume; entry price = that day's close;
    3. down payment ``m`` uniform in ``margin_rate``;
    4. each account's target loan ``L = balance x w / sum(w)``, ``w`` exponential(1) (a
       uniform split of the balance, Dirichlet(1, ..., 1));
    5. ``shares = max(1, round(L / ((1 - m) x entry)))``, ``loan = round((1 - m) x shares x
       entry)`` won, ``cash = 0``. Each loan is within one share's price of its target,
       so the loans sum to the balance within ``sum(entry)`` (one share per account).
    """
    where, fail, inst, accounts = spec.where, spec.error, spec.instrument, spec.accounts
    last = len(bars.date) - 1
    if spec.as_of is not None:
        last = int(np.searchsorted(bars.date, spec.as_of, side="right")) - 1
        if last < 0:
            raise fail("as_of", f"is before the first bar ({_day(bars.date[0])})")
    as_of_day = int(bars.date[last])
    # the positions are as of as_of (or the last bar): held when the replay starts
    stated = spec.as_of if spec.as_of is not None else as_of_day
    if held_by is not None and stated > _day_number(held_by):
        key = "as_of" if spec.as_of is not None else "bars"
        raise ValueError(f"{where}: {key}: the positions are as of {_day(stated)}"
                         f"{'' if key == 'as_of' else ' (the last bar)'}, after the replay's "
                         f"first day ({held_by}); a position must be held when the replay "
                         f"starts: set as_of = \"{held_by}\" or earlier")
    start = as_of_day - spec.loan_term_days + 1
    if bars.date[0] > start:
        raise fail("loan_term_days", f"the term starts on {_day(start)} but {bars.source} "
                   f"starts on {_day(bars.date[0])}; give earlier bars or a shorter term")
    window = np.flatnonzero((bars.date >= start) & (bars.date <= as_of_day))
    volume = bars.volume[window]
    if volume.sum() <= 0:
        raise fail("loan_term_days", f"no volume in {bars.source} within the term")
    if spec.credit_balance_krw is not None:
        balance = spec.credit_balance_krw
    else:
        balance = spec.credit_balance_pct_shares / 100 * inst.shares_outstanding * \
            bars.close[last]

    low, high = spec.margin_rate
    rng = np.random.Generator(np.random.PCG64(seed))
    kind = rng.permutation(_exact_counts(np.array(spec.kind_shares), accounts)).astype(np.int8)
    day = window[rng.choice(len(window), size=accounts, p=volume / volume.sum())]
    m = rng.uniform(low, high, accounts)
    w = rng.exponential(1.0, accounts)
    target = balance * w / w.sum()
    if target.max() > MAX_WON:
        key = "credit_balance_krw" if spec.credit_balance_krw is not None \
            else "credit_balance_pct_shares"
        raise fail(key, f"gives a loan of {target.max():,.0f} won, above the bound of 10^12 "
                   "won per account; spread the balance over more accounts")
    price = bars.close[day]  # natural units (won)
    shares = np.maximum(1, np.rint(target / ((1 - m) * price))).astype(np.int64)
    loan = np.rint((1 - m) * shares * price).astype(np.int64)

    ids = np.arange(accounts, dtype=np.int64)
    return Population(
        account_id=ids, kind=kind, cash=np.zeros(accounts, np.int64), loan=loan,
        pos_account=ids, pos_instrument=np.full(accounts, inst.instrument_id, np.int64),
        pos_shares=shares * 10**inst.size_decimals,
        pos_entry=np.rint(price * 10**inst.price_decimals).astype(np.int64),
        pos_trade_date=bars.date[day])


def _kind_shares(data: Mapping[str, Any], fail: _Fail,
                 where: str) -> np.ndarray:
    """The share of each kind (in :data:`KINDS` order) from ``kind`` or ``kinds``."""
    if ("kind" in data) == ("kinds" in data):
        raise ValueError(f"{where}: give exactly one of kind or kinds")
    if "kind" in data:
        if data["kind"] not in KINDS:
            raise fail("kind", f"must be one of {', '.join(KINDS)}")
        out = np.zeros(len(KINDS))
        out[KINDS.index(data["kind"])] = 1.0
        return out
    kinds = data["kinds"]
    if not isinstance(kinds, dict) or not kinds:
        raise fail("kinds", "must be a table of kind = share, e.g. {credit = 0.7, misu = 0.3}")
    out = np.zeros(len(KINDS))
    for name, share in kinds.items():
        if name not in KINDS:
            raise fail("kinds", f"unknown kind {name!r}; expected {', '.join(KINDS)}")
        if not isinstance(share, int | float) or isinstance(share, bool) or not share > 0:
            raise fail("kinds", f"the share of {name!r} must be a number > 0")
        out[KINDS.index(name)] = float(share)
    if abs(out.sum() - 1.0) > 1e-6:
        raise fail("kinds", f"the shares sum to {out.sum():g}, not 1")
    return out


def _exact_counts(shares: np.ndarray, total: int) -> np.ndarray:
    """Kind codes, ``round(share x total)`` of each by largest remainder (sums to total)."""
    raw = shares * total
    counts = np.floor(raw).astype(np.int64)
    rest = total - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return np.repeat(np.arange(len(shares)), counts)


def _margin_range(data: Mapping[str, Any], fail: _Fail) -> tuple[float, float]:
    value = data.get("margin_rate", [0.4, 0.6])
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) != 2 or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                 for x in pair):
        raise fail("margin_rate", "must be a rate or [low, high], e.g. [0.4, 0.6]")
    low, high = float(pair[0]), float(pair[1])
    if not 0 < low <= high < 1:
        raise fail("margin_rate", "needs 0 < low <= high < 1 (a down payment of 1 is no loan)")
    return low, high


def _positive_number(data: Mapping[str, Any], key: str, fail: _Fail) -> float:
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0 \
            or not np.isfinite(value):
        raise fail(key, "must be a number > 0")
    return float(value)


def _as_date(value: Any) -> int | None:
    """A TOML date or a YYYY-MM-DD string as days since 1970-01-01."""
    if isinstance(value, date):
        return int(np.datetime64(value, "D").astype(np.int64))
    try:
        return int(np.datetime64(str(value), "D").astype(np.int64))
    except ValueError:
        return None


def _day_number(day: date) -> int:
    """A date as days since 1970-01-01."""
    return int(np.datetime64(day, "D").astype(np.int64))


def _day(days: int) -> str:
    return str(np.datetime64(int(days), "D"))
