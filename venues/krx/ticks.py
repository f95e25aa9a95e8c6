"""KRX tick sizes (호가가격단위): the price grid a KRX order must sit on.

Two regimes for stocks (docs/reference/krx.md: tick size), switching on 2023-01-25, plus the
ETF table. Each regime is a band table: ``bounds[i]`` is the lowest price of band ``i`` and
``ticks[i]`` its tick. :func:`tick_table` hands the table out as int64 arrays so compiled
kernels can call :func:`tick_at` without touching Python; the other functions are the
Python-facing forms and accept an int or an int array.

Every band bound is a multiple of the ticks on both of its sides, so rounding a price down
to its own tick never leaves its band, and the grid is simply the union of each band's
multiples of its tick.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
from numba import njit

#: First day of the tick table in force today (docs/reference/krx.md: "since 2023-01-25").
REGIME_2023 = date(2023, 1, 25)

MARKETS = ("KOSPI", "KOSDAQ")

# (lowest price of the band, tick) pairs.
# docs/reference/krx.md, tick table "since 2023-01-25", KOSPI and KOSDAQ alike.
_STOCK_2023 = ((0, 1), (2_000, 5), (5_000, 10), (20_000, 50), (50_000, 100),
               (200_000, 500), (500_000, 1_000))
# docs/reference/krx.md, "Before 2023-01-25 (KOSPI)".
_KOSPI_BEFORE_2023 = ((0, 1), (1_000, 5), (5_000, 10), (10_000, 50), (50_000, 100),
                      (100_000, 500), (500_000, 1_000))
# docs/reference/krx.md, same line: "(KOSDAQ capped at 100 above 50,000)".
_KOSDAQ_BEFORE_2023 = ((0, 1), (1_000, 5), (5_000, 10), (10_000, 50), (50_000, 100))
# docs/reference/krx.md, "ETFs: 5 won (1 won below 2,000 ...)". The date the 1-won band started
# is unconfirmed there, so the table applies on every date.
_ETF = ((0, 1), (2_000, 5))


def _as_date(on: date | None) -> date | None:
    return on.date() if isinstance(on, datetime) else on


def _bands(on: date | None, market: str, etf: bool) -> tuple[tuple[int, int], ...]:
    market = market.upper()
    if market not in MARKETS:
        raise ValueError(f"market {market!r}: choose one of {', '.join(MARKETS)}")
    if etf:
        return _ETF
    on = _as_date(on)
    if on is None or on >= REGIME_2023:
        return _STOCK_2023
    return _KOSDAQ_BEFORE_2023 if market == "KOSDAQ" else _KOSPI_BEFORE_2023


def tick_table(on: date | None = None, *, market: str = "KOSPI",
               etf: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The band table in force on ``on`` (None: today's regime) as ``(bounds, ticks)``,
    two int64 arrays for :func:`tick_at` and the other compiled functions."""
    bands = _bands(on, market, etf)
    bounds = np.array([b for b, _ in bands], dtype=np.int64)
    ticks = np.array([t for _, t in bands], dtype=np.int64)
    return bounds, ticks


@njit(cache=True)
def tick_at(price: int, bounds: np.ndarray, ticks: np.ndarray) -> int:
    """Tick of the band holding ``price`` (compiled; the tables are a handful of rows)."""
    i = bounds.shape[0] - 1
    while i > 0 and price < bounds[i]:
        i -= 1
    return ticks[i]


@njit(cache=True)
def tick_below(price: int, bounds: np.ndarray, ticks: np.ndarray) -> int:
    """Distance from an on-grid ``price`` down to the next lower grid price: the tick of the
    band just below it, which differs from :func:`tick_at` on a band's lowest price."""
    return tick_at(price - 1, bounds, ticks)


def _check_positive(price: np.ndarray) -> None:
    flat = price.ravel()
    if flat.size and flat.min() < 1:
        raise ValueError(f"price {int(flat.min())}: KRX prices are positive integers (won)")


def _lookup(price: int | np.ndarray, on: date | None, market: str,
            etf: bool) -> tuple[np.ndarray, np.ndarray]:
    bounds, ticks = tick_table(on, market=market, etf=etf)
    p = np.asarray(price, dtype=np.int64)
    _check_positive(p)
    return p, ticks[np.searchsorted(bounds, p, side="right") - 1]


def _out(template: int | np.ndarray, values: np.ndarray) -> int | np.ndarray:
    return int(values) if np.ndim(template) == 0 else values


def tick_size(price: int | np.ndarray, on: date | None = None, *, market: str = "KOSPI",
              etf: bool = False) -> int | np.ndarray:
    """Tick size at ``price`` (won) on day ``on`` (docs/reference/krx.md: tick size).

    ``on=None`` uses the regime in force today. ``market`` only matters before 2023-01-25,
    when KOSDAQ capped the tick at 100. ``etf=True`` uses the ETF table.
    """
    _, t = _lookup(price, on, market, etf)
    return _out(price, t)


def round_down_to_tick(price: int | np.ndarray, on: date | None = None, *,
                       market: str = "KOSPI", etf: bool = False) -> int | np.ndarray:
    """The highest grid price at or below ``price``."""
    p, t = _lookup(price, on, market, etf)
    return _out(price, p - p % t)


def round_up_to_tick(price: int | np.ndarray, on: date | None = None, *,
                     market: str = "KOSPI", etf: bool = False) -> int | np.ndarray:
    """The lowest grid price at or above ``price`` (a band's lowest price is on the grid of
    the band below too, so stepping up one tick never skips a grid price)."""
    p, t = _lookup(price, on, market, etf)
    r = p % t
    return _out(price, np.where(r == 0, p, p - r + t))


def is_on_grid(price: int | np.ndarray, on: date | None = None, *, market: str = "KOSPI",
               etf: bool = False) -> bool | np.ndarray:
    """Whether ``price`` is a valid KRX order price; non-positive prices are not."""
    bounds, ticks = tick_table(on, market=market, etf=etf)
    p = np.asarray(price, dtype=np.int64)
    t = ticks[np.maximum(np.searchsorted(bounds, p, side="right") - 1, 0)]
    ok = (p >= 1) & (p % t == 0)
    return bool(ok) if np.ndim(price) == 0 else ok


def price_grid(lower: int, upper: int, on: date | None = None, *, market: str = "KOSPI",
               etf: bool = False) -> np.ndarray:
    """Every grid price in ``[lower, upper]``, ascending (int64): the dense price ladder of a
    day whose daily limits are ``lower`` and ``upper``."""
    bounds, ticks = tick_table(on, market=market, etf=etf)
    lo = round_up_to_tick(lower, on, market=market, etf=etf)
    parts = []
    for i in range(len(bounds)):
        band_hi = int(bounds[i + 1]) if i + 1 < len(bounds) else upper + 1
        start, stop = max(lo, int(bounds[i])), min(upper + 1, band_hi)
        if start < stop:
            first = start + (-start) % int(ticks[i])
            parts.append(np.arange(first, stop, int(ticks[i]), dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)
