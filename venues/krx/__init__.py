"""KRX venue rules: tick table and daily price limits (reference/krx.md)."""

from venues.krx.limits import price_limits
from venues.krx.ticks import tick_size

__all__ = ["price_limits", "tick_size"]
