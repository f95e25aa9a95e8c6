"""Synthetic populations: single-name accounts calibrated to daily bars and a credit balance
(KRW or % of shares outstanding), positions spread over entry dates by volume and over down
payment rates; seeded (docs/brokers.md: synthesised from daily bars). A market's accounts
(:func:`synthesize_market`): each market's credit balance split across the names of the
bars, drawn name by name the same way, some formed as portfolio accounts of several names
(docs/brokers.md: a market's leverage).

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

from brokers.population import MAX_ACCOUNTS, Population, concatenate, merge_accounts
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


# --------------------------------------------------------------------------------------
# A market: the credit balance of KOSPI and KOSDAQ split across the names of the bars


#: The markets a balance is given for (docs/brokers.md: a market's leverage).
MARKETS = ("KOSPI", "KOSDAQ")
#: The kinds a market's balances are drawn as, in this order.
MARKET_KINDS = ("credit", "misu", "cfd")
#: How the balance left after the credit ratios and the concentration is spread.
WEIGHTS = ("turnover", "market_cap", "equal")
#: The keys of a spec's ``[market]`` table.
MARKET_KEYS = ("as_of", "accounts", "credit_file", "kospi_credit_balance_krw",
               "kosdaq_credit_balance_krw", "misu_balance_krw", "misu_share",
               "cfd_balance_krw", "cfd_share", "misu_loan_term_days", "misu_margin_rate",
               "cfd_loan_term_days", "cfd_margin_rate", "weight", "concentrate",
               "credit_ratio", "codes", "markets", "default_market", "names_not_in_table",
               "portfolio_share", "portfolio_names")
#: The spec's keys outside ``[market]`` that a market spec takes (shared by every name).
MARKET_SHARED_KEYS = ("bars", "loan_term_days", "margin_rate", "market")
#: The largest balance a market key takes: 10^15 won (KOSPI's credit is about 3 x 10^13).
MAX_MARKET_WON = 10**15
MAX_PORTFOLIO_NAMES = 10


@dataclass(frozen=True)
class Concentration:
    """``concentrate = { codes = [...], share = 0.6 }``: the group of codes and the share of
    each market's credit (after the names fixed by a credit ratio) it holds; ``share`` None:
    the group holds what the weight gives it (the balance spread)."""

    codes: tuple[str, ...]
    share: float | None


@dataclass(frozen=True)
class MarketSpec:
    """A spec's ``[market]`` table and the shared keys beside it, checked
    (:meth:`from_mapping`); docs/brokers.md: a market's leverage says what each means.

    ``credit_balance_krw``: per market, the balance given as a number (the others come from
    ``credit_file``, read by the caller); ``misu`` and ``cfd``: ``("balance", won)``,
    ``("share", share of the credit)`` or None (none of that kind); ``terms`` and
    ``margin_rates``: per kind; ``credit_ratio``: code -> ratio, or the path of a CSV of
    them (read by the caller); ``markets``: code -> market, as listed."""

    where: str
    bars: str
    as_of: int  # days since 1970-01-01
    accounts: int
    credit_file: str | None
    credit_balance_krw: Mapping[str, int]
    misu: tuple[str, float] | None
    cfd: tuple[str, float] | None
    terms: Mapping[str, int]
    margin_rates: Mapping[str, tuple[float, float]]
    weight: str
    concentrate: Concentration | None
    credit_ratio: Mapping[str, float] | str | None
    codes: tuple[str, ...] | None
    markets: Mapping[str, str]
    default_market: str | None
    names_not_in_table: str
    portfolio_share: float
    portfolio_names: int
    given: Mapping[str, Any] = field(repr=False, compare=False)  # [market] as written

    def error(self, key: str, reason: str) -> ValueError:
        """A one-line error naming the spec, ``[market]``'s ``key`` and its value."""
        return _key_error(f"{self.where}: [market]", self.given, key, reason)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> MarketSpec:
        """Every check the keys allow without the bars or the credit file; the first failure
        is a ValueError naming ``where``, the key, its value and what is allowed."""
        for key in data:
            if key not in MARKET_SHARED_KEYS:
                raise ValueError(f"{where}: {key} = {data[key]!r}: a spec with [market] draws "
                                 "the names and their balances from the market table; beside "
                                 f"it give only {', '.join(MARKET_SHARED_KEYS[:3])} (the keys "
                                 "of [market] are " + ", ".join(MARKET_KEYS) + ")")
        if "bars" not in data:
            raise ValueError(f"{where}: missing key 'bars' (the daily bars of the market's "
                             "names, one file of many codes)")
        if not isinstance(data["bars"], str):
            raise _key_error(where, data, "bars", "must be the path of a daily-bar CSV")
        m = data["market"]
        if not isinstance(m, Mapping):
            raise ValueError(f"{where}: market must be a table ([market])")
        m = MappingProxyType(dict(m))

        def fail(key: str, reason: str) -> ValueError:
            return _key_error(f"{where}: [market]", m, key, reason)

        for key in m:
            if key not in MARKET_KEYS:
                raise ValueError(f"{where}: [market]: unknown key {key!r}; valid keys: "
                                 f"{', '.join(MARKET_KEYS)}")
        for key in ("as_of", "accounts"):
            if key not in m:
                raise ValueError(f"{where}: [market]: missing key {key!r}")
        as_of = _as_date(m["as_of"])
        if as_of is None:
            raise fail("as_of", "must be a date YYYY-MM-DD (the day of the balances)")
        accounts = m["accounts"]
        if not isinstance(accounts, int) or isinstance(accounts, bool) or \
                not 1 <= accounts <= MAX_ACCOUNTS:
            raise fail("accounts", f"must be an integer in [1, {MAX_ACCOUNTS:,}]")
        credit_file = m.get("credit_file")
        if credit_file is not None and not isinstance(credit_file, str):
            raise fail("credit_file", "must be the path of a KOFIA credit-balance file")
        given = {}
        for market in MARKETS:
            key = f"{market.lower()}_credit_balance_krw"
            if key in m:
                given[market] = _won(m, key, fail, low=1)
        if credit_file is None and not given:
            raise ValueError(f"{where}: [market]: give credit_file (the KOFIA series) or "
                             "kospi_credit_balance_krw / kosdaq_credit_balance_krw")
        terms = {"credit": _term(data, "loan_term_days",
                                 lambda k, r: _key_error(where, data, k, r), 90)}
        rates = {"credit": _margin_range(data, lambda k, r: _key_error(where, data, k, r))}
        other: dict[str, tuple[str, float] | None] = {}
        for kind in ("misu", "cfd"):
            bal, share = f"{kind}_balance_krw", f"{kind}_share"
            if bal in m and share in m:
                raise ValueError(f"{where}: [market]: give one of {bal} or {share}")
            if bal in m:
                other[kind] = ("balance", float(_won(m, bal, fail, low=0)))
            elif share in m:
                other[kind] = ("share", _fraction(m, share, fail))
            else:
                other[kind] = None
            terms[kind] = _term(m, f"{kind}_loan_term_days", fail, terms["credit"])
            key = f"{kind}_margin_rate"
            rates[kind] = _margin_range({"margin_rate": m[key]} if key in m else data,
                                        (lambda k, r, key=key: fail(key, r)) if key in m
                                        else (lambda k, r: _key_error(where, data, k, r)))
        weight = m.get("weight", "turnover")
        if weight not in WEIGHTS:
            raise fail("weight", f"must be one of {', '.join(WEIGHTS)}")
        default = m.get("default_market")
        if default is not None and default not in MARKETS:
            raise fail("default_market", f"must be one of {', '.join(MARKETS)}")
        outside = m.get("names_not_in_table", "error")
        if outside not in ("error", "leave"):
            raise fail("names_not_in_table", "must be \"error\" or \"leave\"")
        share = _fraction(m, "portfolio_share", fail) if "portfolio_share" in m else 0.0
        names = m.get("portfolio_names", 2)
        if not isinstance(names, int) or isinstance(names, bool) or \
                not 2 <= names <= MAX_PORTFOLIO_NAMES:
            raise fail("portfolio_names", f"must be an integer in [2, {MAX_PORTFOLIO_NAMES}] "
                       "(the names a portfolio account holds)")
        if share >= 1:
            raise fail("portfolio_share", "must be < 1 (a share of the accounts; 0: none)")
        return cls(where=where, bars=data["bars"], as_of=as_of, accounts=accounts,
                   credit_file=credit_file, credit_balance_krw=MappingProxyType(given),
                   misu=other["misu"], cfd=other["cfd"], terms=MappingProxyType(terms),
                   margin_rates=MappingProxyType(rates), weight=weight,
                   concentrate=_concentration(m, fail), credit_ratio=_ratios(m, fail),
                   codes=_codes(m, "codes", fail) if "codes" in m else None,
                   markets=MappingProxyType(_market_lists(m, fail)), default_market=default,
                   names_not_in_table=outside, portfolio_share=share,
                   portfolio_names=names, given=m)


@dataclass(frozen=True)
class MarketName:
    """One code of the bars as the market split sees it: its bars, the market the instrument
    table or the bars say (``""``: neither), its instrument (None: not in the table) and its
    capitalisation at ``as_of`` in won (NaN: unknown)."""

    code: str
    bars: DailyBars
    market: str = ""
    instrument: Instrument | None = None
    market_cap: float = float("nan")


@dataclass(frozen=True)
class MarketSplit:
    """How a market's balances were laid on its names: ``names``, one row per code of the
    bars (code, market, rule, weight, credit_krw, misu_krw, cfd_krw, in_table, accounts,
    loans_krw: the loans drawn), and ``markets``, per market its balances, where they came
    from and how they were split. :meth:`summary` is the JSON-able record."""

    names: Any  # pandas.DataFrame
    markets: Mapping[str, Mapping[str, Any]]
    accounts: Mapping[str, Any]

    def summary(self) -> dict[str, Any]:
        """The split per market, and the accounts drawn (docs/brokers.md)."""
        return {"markets": {k: dict(v) for k, v in self.markets.items()},
                "accounts": dict(self.accounts)}


def split_market(spec: MarketSpec, names: list[MarketName],
                 balances: Mapping[str, tuple[int, str]],
                 ratios: Mapping[str, float]) -> MarketSplit:
    """Lay each market's credit balance (``balances``: market -> (won, where it came from))
    on the names of ``names``, exactly to the won; then 미수 and CFD in proportion to it.

    Per market, over its names with a bar on or before ``as_of``:
    1. a name with a credit ratio (신용잔고율, ``ratios``: credit balance / market cap) holds
       ``ratio x market_cap``; when every name of the market has one, the balance is split
       in proportion to these instead (the ratios give the shape, KOFIA's total the level);
    2. the rest: the concentration group's names of this market hold ``share`` of it, split
       among them by the weight, and the other names the remainder by the weight (without a
       ``share``, every name by the weight);
    3. the weight: turnover (close x volume summed over the credit term's bars), market cap,
       or equal.
    Won are split by largest remainder (ties to the earlier code), so the names' balances
    sum to the market's exactly."""
    import pandas as pd

    fail = spec.error
    by_code = {n.code: n for n in names}
    for key, listed in (("codes", spec.codes or ()),
                        ("concentrate", spec.concentrate.codes if spec.concentrate else ()),
                        ("markets", tuple(spec.markets)),
                        ("credit_ratio", tuple(ratios))):
        missing = [c for c in listed if c not in by_code]
        if missing:
            raise fail(key, f"code {missing[0]} is not in the bars ({spec.bars}: "
                       f"{len(names)} codes); a code of {key} must be one of the bars' codes")
    if spec.codes is not None:
        names = [by_code[c] for c in spec.codes]
        for key, listed in (("concentrate", spec.concentrate.codes if spec.concentrate else ()),
                            ("markets", tuple(spec.markets)), ("credit_ratio", tuple(ratios))):
            outside = [c for c in listed if c not in spec.codes]
            if outside:
                raise fail(key, f"code {outside[0]} is not one of codes: only those are names")
    group = set(spec.concentrate.codes) if spec.concentrate else set()
    both = sorted(group & set(ratios))
    if both:
        raise fail("concentrate", f"code {both[0]} has a credit_ratio too: its balance is "
                   "fixed by the ratio; give it in one place")
    n = len(names)
    market = np.empty(n, object)
    for i, name in enumerate(names):
        listed, said = spec.markets.get(name.code), name.market.upper()
        if listed and said and listed != said:
            raise fail("markets", f"lists {name.code} in {listed}, but the instrument table "
                       f"or the bars say {said}")
        m = listed or said or spec.default_market
        if m not in MARKETS:
            raise fail("default_market" if not name.market else "markets",
                       f"the market of {name.code} is not known (the instrument table and the "
                       f"bars say {name.market or 'none'}): list it in markets = {{KOSDAQ = "
                       "[...]}} or set default_market = \"KOSPI\"")
        market[i] = m
    term = spec.terms["credit"]
    weight = np.zeros(n)
    cap = np.array([x.market_cap for x in names], float)
    traded = np.zeros(n, bool)
    for i, name in enumerate(names):
        d = name.bars.date
        last = int(np.searchsorted(d, spec.as_of, side="right")) - 1
        if last < 0:
            continue  # no bar by as_of: not listed yet, holds nothing
        traded[i] = True
        in_term = (d > d[last] - term) & (d <= d[last])
        if spec.weight == "turnover":
            weight[i] = float(np.sum(name.bars.close[in_term] * name.bars.volume[in_term]))
        elif spec.weight == "market_cap":
            weight[i] = cap[i]
        else:
            weight[i] = 1.0
    for c in list(ratios) + sorted(group):
        i = next((k for k, x in enumerate(names) if x.code == c), None)
        if i is not None and not traded[i]:
            raise fail("credit_ratio" if c in ratios else "concentrate",
                       f"code {c} has no bar on or before {_day(spec.as_of)}")
    unknown = traded & ~np.isfinite(weight)
    if unknown.any():
        raise fail("weight", f"is market_cap but the market cap of "
                   f"{names[int(np.argmax(unknown))].code} is not known: give the instrument's "
                   "shares_outstanding, or bars with a market cap")
    code = np.array([x.code for x in names], object)
    rule = np.where(traded, "weight", "no bar by as_of").astype(object)
    credit = np.zeros(n, np.int64)
    per_market: dict[str, dict[str, Any]] = {}
    present = [m for m in MARKETS if (market == m).any()]
    for m in MARKETS:
        if m in balances and m not in present:
            key = f"{m.lower()}_credit_balance_krw" if m in spec.credit_balance_krw \
                else "credit_file"
            raise fail(key, f"gives {m} a balance of {balances[m][0]:,} won but no name of the "
                       f"bars is in {m}: nothing would hold it")
    for m in present:
        if m not in balances:
            raise fail(f"{m.lower()}_credit_balance_krw",
                       f"{int((market == m).sum())} names are in {m} but it has no balance: "
                       f"give {m.lower()}_credit_balance_krw" + (
                           " (the credit file has no " + m + " column)"
                           if spec.credit_file else ""))
        total, source = balances[m]
        rows = np.flatnonzero((market == m) & traded)
        if not len(rows):
            raise fail("as_of", f"no name of {m} has a bar on or before {_day(spec.as_of)}")
        fixed = np.array([code[i] in ratios for i in rows])
        info: dict[str, Any] = {"credit_krw": int(total), "credit_source": source,
                                "names": int(len(rows)), "weight": spec.weight}
        rest = int(total)
        if fixed.any():
            at = rows[fixed]
            want = np.array([ratios[code[i]] for i in at]) * cap[at]
            if not np.isfinite(want).all():
                bad = code[at[int(np.argmax(~np.isfinite(want)))]]
                raise fail("credit_ratio", f"the market cap of {bad} is not known: give the "
                           "instrument's shares_outstanding, or bars with a market cap")
            if fixed.all():
                credit[at] = _split_won(rest, want)
                info["credit_ratio_scale"] = float(total / want.sum())
                rest = 0
            else:
                credit[at] = np.rint(want).astype(np.int64)
                if credit[at].sum() > rest:
                    raise fail("credit_ratio", f"the ratios give {m}'s names "
                               f"{int(credit[at].sum()):,} won, above {m}'s balance of "
                               f"{int(total):,} won ({source})")
                rest -= int(credit[at].sum())
            rule[at] = "credit_ratio"
            info["credit_ratio_names"] = int(fixed.sum())
            info["credit_ratio_krw"] = int(credit[at].sum())
        free = rows[~fixed]
        in_group = np.array([code[i] in group for i in free], bool)
        if spec.concentrate is not None and in_group.any():
            rule[free[in_group]] = "concentrate"
        if spec.concentrate is not None and spec.concentrate.share is not None \
                and in_group.any():
            s = spec.concentrate.share
            held = int(round(s * rest))
            if in_group.all() and held != rest:
                raise fail("concentrate", f"holds every name of {m} left to split: its share "
                           "must be 1 there, or add names")
            if held and weight[free[in_group]].sum() <= 0:
                raise fail("concentrate", f"the group's names in {m} have no {spec.weight} in "
                           "the term: nothing to split its share by")
            credit[free[in_group]] = _split_won(held, weight[free[in_group]])
            others = free[~in_group]
            if rest - held and weight[others].sum() <= 0:
                raise fail("concentrate", f"the names of {m} outside the group have no "
                           f"{spec.weight} in the term: nothing to split the rest by")
            if len(others):
                credit[others] = _split_won(rest - held, weight[others])
            info["concentrate_share"] = s
        elif len(free):
            if rest and weight[free].sum() <= 0:
                raise fail("weight", f"the names of {m} have no {spec.weight} in the term")
            credit[free] = _split_won(rest, weight[free])
        if spec.concentrate is not None:
            g = free[in_group]
            info["concentrate_codes"] = [str(c) for c in code[g]]
            info["concentrate_krw"] = int(credit[g].sum())
            info["concentrate_held"] = float(credit[g].sum() / total) if total else 0.0
        info["names_credit_krw"] = int(credit[rows].sum())  # == credit_krw: conserved
        per_market[m] = info
    kinds = {"credit": credit}
    for kind, how in (("misu", spec.misu), ("cfd", spec.cfd)):
        out = np.zeros(n, np.int64)
        if how is not None:
            credit_total = np.array([balances[m][0] for m in present], float)
            if how[0] == "balance":  # one total over the markets, by their credit
                by_market = _split_won(int(how[1]), credit_total)
            else:
                by_market = np.rint(how[1] * credit_total).astype(np.int64)
            for m, won in zip(present, by_market, strict=True):
                rows = np.flatnonzero(market == m)
                if won and credit[rows].sum() <= 0:
                    raise fail(f"{kind}_share" if how[0] == "share" else f"{kind}_balance_krw",
                               f"{m}'s names hold no credit to lay {kind} on")
                out[rows] = _split_won(int(won), credit[rows].astype(float)) if won else 0
                per_market[m][f"{kind}_krw"] = int(won)
        kinds[kind] = out
    in_table = np.array([x.instrument is not None for x in names], bool)
    table = pd.DataFrame({"code": code.astype(str), "market": market.astype(str),
                          "rule": rule.astype(str), "weight": weight,
                          "credit_krw": kinds["credit"], "misu_krw": kinds["misu"],
                          "cfd_krw": kinds["cfd"], "in_table": in_table})
    left = ~in_table & (table[["credit_krw", "misu_krw", "cfd_krw"]].sum(axis=1) > 0)
    if left.any() and spec.names_not_in_table == "error":
        first = table.code[left].iat[0]
        raise ValueError(f"{spec.where}: [market]: {int(left.sum())} names of the bars that "
                         f"hold a balance are not in the instrument table ({first}, ...): give "
                         "a tape holding them, list the names in codes, or set "
                         "names_not_in_table = \"leave\" (their balance is then left out, "
                         "and the summary says how much)")
    for m in present:
        rows = (table.market == m) & ~table.in_table
        per_market[m]["left_out_names"] = int((rows & left).sum())
        per_market[m]["left_out_krw"] = int(table.loc[rows, ["credit_krw", "misu_krw",
                                                            "cfd_krw"]].to_numpy().sum())
    return MarketSplit(names=table, markets=per_market, accounts={})


def synthesize_market(spec: MarketSpec, names: list[MarketName],
                      balances: Mapping[str, tuple[int, str]], ratios: Mapping[str, float],
                      seed: int, held_by: date | None = None) -> tuple[Population, MarketSplit]:
    """The market's accounts: the balances split (:func:`split_market`), each name's balance
    of each kind drawn as single-name accounts by :func:`synthesize` (its method: entry days
    by volume, down payments in ``margin_rate``, loans a Dirichlet split), then
    ``portfolio_share`` of the accounts formed as portfolio accounts of ``portfolio_names``
    names each (:func:`_portfolio_groups`).

    Accounts: ``accounts`` split over the kinds by their balances, a kind's ``P =
    round(portfolio_share x its accounts)`` portfolio accounts need ``(portfolio_names - 1)
    x P`` positions more, and the positions are split over the names by their balance of
    the kind (largest remainder), at least one per name holding a balance (so a market of
    many small names can draw more accounts than ``accounts``: the summary counts them).
    The cell of kind k (its code in :data:`KINDS`) and the i-th name is drawn with the seed
    ``(seed, k, i)``, the portfolio accounts of kind k with ``(seed, 100 + k)``."""
    split = split_market(spec, names, balances, ratios)
    table = split.names
    by_code = {n.code: n for n in names}
    drawn = table.in_table.to_numpy()
    accounts_by_kind = _split_count(spec.accounts, np.array(
        [table.loc[drawn, f"{k}_krw"].sum() for k in MARKET_KINDS], float))
    parts: list[Population] = []
    counts: dict[str, Any] = {}
    n_accounts = np.zeros(len(table), np.int64)
    loans = np.zeros(len(table), np.int64)
    for k, kind in enumerate(MARKET_KINDS):
        won = np.where(drawn, table[f"{kind}_krw"].to_numpy(), 0)
        if won.sum() == 0:
            continue
        base = int(accounts_by_kind[k])
        pf = int(round(spec.portfolio_share * base))
        per_name = _split_count(base + pf * (spec.portfolio_names - 1), won.astype(float))
        if pf and np.minimum(per_name, pf).sum() < spec.portfolio_names * pf:
            raise spec.error("portfolio_share", f"{pf:,} {kind} portfolio accounts of "
                             f"{spec.portfolio_names} names need {spec.portfolio_names} "
                             f"different names each, but the {kind} balance lies on "
                             f"{int((per_name > 0).sum())} names: lower portfolio_share or "
                             "portfolio_names")
        cells = []
        code = KINDS.index(kind)
        for i in np.flatnonzero(per_name):
            name = by_code[table.code.iat[i]]
            if won[i] > MAX_WON * per_name[i]:
                raise spec.error("accounts", f"{name.code} holds {int(won[i]):,} won of {kind} "
                                 f"over {int(per_name[i])} accounts, above 10^12 won each: "
                                 "give more accounts")
            one_hot = tuple(float(x == kind) for x in KINDS)
            cell = PopulationSpec(
                where=f"{spec.where}: [market] {name.code} ({kind})", bars=spec.bars,
                instrument=name.instrument, kind_shares=one_hot, accounts=int(per_name[i]),
                loan_term_days=spec.terms[kind], margin_rate=spec.margin_rates[kind],
                as_of=spec.as_of, credit_balance_krw=float(won[i]),
                credit_balance_pct_shares=None,
                given={"as_of": spec.given.get("as_of"), "credit_balance_krw": int(won[i]),
                       "loan_term_days": spec.terms[kind], "accounts": int(per_name[i])})
            cell_seed = int(np.random.SeedSequence([seed, code, int(i)]).generate_state(1)[0])
            drawn_cell = synthesize(cell, name.bars, cell_seed, held_by=held_by)
            loans[i] += int(drawn_cell.loan.sum())
            cells.append(drawn_cell)
        pop = concatenate(cells)
        if pf:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 100 + code])))
            pop = merge_accounts(pop, _portfolio_groups(per_name[per_name > 0], pf,
                                                        spec.portfolio_names, rng))
        n_accounts += per_name
        parts.append(pop)
        counts[kind] = {"accounts": len(pop), "portfolio_accounts": pf,
                        "positions": pop.positions, "loans_krw": int(pop.loan.sum()),
                        "balance_krw": int(won.sum())}
    if not parts:
        raise spec.error("accounts", "no name in the instrument table holds a balance")
    out = concatenate(parts)
    table = table.assign(positions=n_accounts, loans_krw=loans)
    pf_total = sum(c["portfolio_accounts"] for c in counts.values())
    summary = {"accounts": len(out), "positions": out.positions,
               "portfolio_accounts": pf_total,
               "portfolio_share": pf_total / len(out), "by_kind": counts}
    return out, MarketSplit(names=table, markets=split.markets, accounts=summary)


def _portfolio_groups(per_name: np.ndarray, groups: int, size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """The account label of each of ``per_name.sum()`` single-name draws (name by name, in
    order): ``groups`` portfolio accounts of ``size`` different names get labels
    ``0 .. groups - 1``, the draws left single the labels after.

    Name i gives ``c_i`` of its draws (chosen at random) to the portfolio accounts, ``c_i``
    in proportion to its draws (so to its balance), capped at ``groups``: a name holding
    more is in every portfolio account, and the others share the rest in proportion. Names
    are placed largest first, each into the ``c_i`` accounts with the most places left
    (ties at random): since no ``c_i`` exceeds ``groups``, every account ends with ``size``
    different names (the Gale-Ryser condition holds)."""
    need = groups * size
    c = np.zeros(len(per_name), np.int64)
    cap = np.minimum(per_name, groups)
    free = np.ones(len(per_name), bool)
    while True:  # water-filling: names at the cap keep it, the rest share the remainder
        share = _split_count(need - int(c[~free].sum()), per_name[free].astype(float),
                             at_least_one=False)
        over = share > cap[free]
        if not over.any():
            c[free] = share
            break
        hit = np.flatnonzero(free)[over]
        c[hit] = cap[hit]
        free[hit] = False
    total = int(per_name.sum())
    label = np.full(total, -1, np.int64)
    start = np.concatenate([[0], np.cumsum(per_name)[:-1]])
    left = np.full(groups, size, np.int64)
    for i in np.argsort(-c, kind="stable"):
        rows = start[i] + rng.permutation(int(per_name[i]))
        if c[i]:
            key = left + rng.random(groups) * 0.5  # most places left first, ties at random
            at = np.argpartition(-key, c[i] - 1)[:c[i]]
            left[at] -= 1
            label[rows[:c[i]]] = at
    if left.any():  # cannot happen (see above): a guard against a wrong count
        raise AssertionError("portfolio accounts left with fewer names than asked")
    single = label < 0  # numbered after the portfolio accounts, in draw order
    label[single] = groups + np.arange(int(single.sum()))
    return label


def _split_won(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` won split in proportion to ``weights`` (>= 0, some > 0), as int64 summing
    to ``total`` exactly: floors, then one won more for the largest remainders (ties to the
    earlier)."""
    w = np.asarray(weights, float)
    if total == 0 or not len(w):
        return np.zeros(len(w), np.int64)
    raw = w / w.sum() * total
    out = np.floor(raw).astype(np.int64)
    rest = int(total) - int(out.sum())
    order = np.argsort(-(raw - out), kind="stable")
    if rest >= 0:
        out[order[:rest]] += 1
    else:  # float rounding overshot: take back from the smallest remainders
        back = order[::-1][out[order[::-1]] > 0][:-rest]
        out[back] -= 1
    return out


def _split_count(total: int, weights: np.ndarray, at_least_one: bool = True) -> np.ndarray:
    """``total`` split by largest remainder in proportion to ``weights``; with
    ``at_least_one``, each positive weight gets one at least (the sum may then exceed
    ``total``)."""
    out = _split_won(int(total), weights) if np.asarray(weights).sum() > 0 else \
        np.zeros(len(weights), np.int64)
    if at_least_one:
        out = np.where(np.asarray(weights) > 0, np.maximum(out, 1), 0)
    return out


def _won(data: Mapping[str, Any], key: str, fail: _Fail, low: int) -> int:
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or \
            not np.isfinite(value) or not low <= value <= MAX_MARKET_WON:
        raise fail(key, f"must be a number of won in [{low}, 10^15]")
    return int(round(value))


def _fraction(data: Mapping[str, Any], key: str, fail: _Fail) -> float:
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise fail(key, "must be a share in [0, 1]")
    return float(value)


def _term(data: Mapping[str, Any], key: str, fail: _Fail, default: int) -> int:
    term = data.get(key, default)
    if not isinstance(term, int) or isinstance(term, bool) or not 1 <= term <= 3650:
        raise fail(key, "must be an integer number of calendar days in [1, 3650]")
    return term


def _codes(data: Mapping[str, Any], key: str, fail: _Fail) -> tuple[str, ...]:
    codes = data[key]
    if not isinstance(codes, list) or not codes or \
            not all(isinstance(c, str) and c for c in codes):
        raise fail(key, "must be a non-empty list of codes, e.g. [\"005930\", \"000660\"]")
    twice = sorted({c for c in codes if codes.count(c) > 1})
    if twice:
        raise fail(key, f"lists {twice[0]} twice")
    return tuple(codes)


def _concentration(data: Mapping[str, Any], fail: _Fail) -> Concentration | None:
    if "concentrate" not in data:
        return None
    c = data["concentrate"]
    if not isinstance(c, Mapping) or set(c) - {"codes", "share"} or "codes" not in c:
        raise fail("concentrate", "must be a table { codes = [\"005930\", ...], share = 0.6 } "
                   "(share optional: without it the group holds what the weight gives it)")
    codes = _codes(c, "codes", lambda k, r: fail("concentrate", f"codes {r}"))
    share = None
    if "share" in c:
        share = _fraction(c, "share", lambda k, r: fail("concentrate", f"share {r}"))
    return Concentration(codes, share)


def _ratios(data: Mapping[str, Any], fail: _Fail) -> Mapping[str, float] | str | None:
    if "credit_ratio" not in data:
        return None
    r = data["credit_ratio"]
    if isinstance(r, str):
        return r
    if not isinstance(r, Mapping) or not r:
        raise fail("credit_ratio", "must be a table { \"005930\" = 0.012, ... } (credit balance "
                   "/ market cap, a fraction) or the path of a CSV with columns code, "
                   "credit_ratio")
    out = {}
    for code, value in r.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or \
                not 0 < value < 1:
            raise fail("credit_ratio", f"the ratio of {code} must be a fraction in (0, 1) "
                       "(credit balance / market cap: 0.012 for 1.2%)")
        out[str(code)] = float(value)
    return MappingProxyType(out)


def _market_lists(data: Mapping[str, Any], fail: _Fail) -> dict[str, str]:
    if "markets" not in data:
        return {}
    given = data["markets"]
    if not isinstance(given, Mapping) or set(given) - set(MARKETS) or not given:
        raise fail("markets", "must be a table { KOSDAQ = [\"247540\", ...], KOSPI = [...] }")
    out: dict[str, str] = {}
    for market in given:
        for c in _codes(given, market, lambda k, r: fail("markets", f"{k} {r}")):
            if c in out:
                raise fail("markets", f"code {c} is listed in {out[c]} and {market}")
            out[c] = market
    return out
