"""KRX trading days and settlement: T+2 on the XKRX calendar.

Trading days come from exchange-calendars' XKRX calendar (reference/krx.md: settlement and
calendar), never from a hand-made list: Korean holidays such as Seollal and Chuseok move.
"""

from __future__ import annotations

import functools
from datetime import date

import exchange_calendars
import pandas as pd

SETTLEMENT_LAG = 2  # reference/krx.md: "T+2 on KRX trading days"


@functools.cache
def xkrx() -> exchange_calendars.ExchangeCalendar:
    return exchange_calendars.get_calendar("XKRX")


def trading_days(start: date, days: int) -> list[date]:
    """The first ``days`` XKRX trading days on or after ``start``."""
    if days < 0:
        raise ValueError(f"days={days} must not be negative")
    first = pd.Timestamp(start)
    # a calendar bounded around the request works for any date, however far back
    cal = exchange_calendars.get_calendar("XKRX", start=first,
                                          end=first + pd.Timedelta(days=days * 2 + 30))
    return [s.date() for s in cal.sessions[:days]]


def is_trading_day(day: date | str) -> bool:
    return bool(xkrx().is_session(pd.Timestamp(day)))


def trading_days_after(day: date | str, n: int) -> date:
    """The ``n``-th XKRX trading day after ``day`` (which must itself be a trading day)."""
    ts = pd.Timestamp(day)
    cal = xkrx()
    if not cal.is_session(ts):
        raise ValueError(f"{ts.date()} is not an XKRX trading day")
    return cal.session_offset(ts, n).date()


def settlement_date(trade_date: date | str) -> date:
    """The day a trade on ``trade_date`` settles: two XKRX trading days later (T+2); a
    미수 purchase on D must be paid by this day."""
    return trading_days_after(trade_date, SETTLEMENT_LAG)
