"""Which limit prices the KRX accepts: on the tick grid and inside the day's price limits.

docs/reference/krx.md: tick size (호가가격단위) and daily price limits. A market order has no price
to check. The reason a price is refused is returned as text, so a caller can reject the order
with it.
"""

from __future__ import annotations

from datetime import date

from venues.krx.limits import price_limits
from venues.krx.ticks import is_on_grid, tick_size


def rejection(price: int, *, base: int, on: date | None = None, market: str = "KOSPI",
              etf: bool = False) -> str | None:
    """Why the KRX would refuse a limit order at ``price`` on a day whose base price is
    ``base``, or None if it accepts it."""
    lower, upper = price_limits(base, on=on, market=market, etf=etf)
    if price > upper:
        return f"{price:,} is above the upper price limit {upper:,} (base {base:,})"
    if price < lower:
        return f"{price:,} is below the lower price limit {lower:,} (base {base:,})"
    if not is_on_grid(price, on=on, market=market, etf=etf):
        tick = tick_size(price, on=on, market=market, etf=etf)
        return f"{price:,} is not on the tick grid (tick {tick:,} won at this price)"
    return None
