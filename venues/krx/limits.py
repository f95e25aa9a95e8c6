"""KRX daily price limits (가격제한폭): the band a day's prices must stay in.

docs/reference/krx.md, "Daily price limits": width = base x 30% (15% before 2015-06-15),
truncated to the tick of the base price; upper = base + width and lower = base - width,
each truncated to the tick at the resulting price. Integer arithmetic only.
"""

from __future__ import annotations

from datetime import date, datetime

from venues.krx.ticks import round_down_to_tick, tick_size

#: First day of the +-30% limit (docs/reference/krx.md: "since 2015-06-15 (15% before ...)").
LIMIT_30_FROM = date(2015, 6, 15)


def limit_percent(on: date | None = None) -> int:
    """The limit as a whole percentage of the base price on day ``on`` (None: today).

    The 6/8/12% limits of earlier decades are not modelled: any day before 2015-06-15 gets
    15%.
    """
    if isinstance(on, datetime):
        on = on.date()
    return 30 if on is None or on >= LIMIT_30_FROM else 15


def price_limits(base: int, on: date | None = None, *, market: str = "KOSPI",
                 etf: bool = False) -> tuple[int, int]:
    """``(lower, upper)`` limit prices for a day whose base price (usually the previous
    close) is ``base`` won.

    KRX example (docs/reference/krx.md): base 9,980 -> width 2,994 -> 2,990 -> (6,990, 12,970).
    The lower limit is always on the grid already (every tick divides the ticks above it),
    so its truncation only matters for the upper limit, which can land in a coarser band.
    """
    base = int(base)
    if base < 1:
        raise ValueError(f"base price {base}: KRX prices are positive integers (won)")
    width = base * limit_percent(on) // 100
    width -= width % tick_size(base, on, market=market, etf=etf)
    upper = round_down_to_tick(base + width, on, market=market, etf=etf)
    lower = round_down_to_tick(base - width, on, market=market, etf=etf)
    return int(lower), int(upper)


def beyond_bp(price: int, ref: int, bp: int) -> bool:
    """``price`` at or beyond ``ref`` +- ``bp`` basis points (integers only; bp 0: off):
    the VI test of docs/reference/krx.md, "trigger at the first tick at or beyond"."""
    lo, hi = price * 10_000 <= ref * (10_000 - bp), price * 10_000 >= ref * (10_000 + bp)
    return bp > 0 and (lo or hi)


def vi_thresholds(ref: int, bp: int) -> tuple[int, int]:
    """``(lo, hi)``: a price at or below ``lo``, or at or above ``hi``, lies at or beyond
    ``ref`` +- ``bp`` basis points (the integers :func:`beyond_bp` tests; the compiled
    loop's ``venues.rules.vi_stops`` computes the same)."""
    return ref * (10_000 - bp) // 10_000, -((-ref * (10_000 + bp)) // 10_000)
