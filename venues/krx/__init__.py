"""KRX venue rules: tick table, daily price limits, calendar and settlement
(docs/reference/krx.md)."""

from venues.krx.calendar import settlement_date
from venues.krx.limits import price_limits
from venues.krx.ticks import tick_size
from venues.krx.uncross import Uncross, uncross

__all__ = ["Uncross", "price_limits", "settlement_date", "tick_size", "uncross"]
