"""KRX trading days and settlement: T+2 on the XKRX calendar.

Trading days come from exchange-calendars' XKRX calendar (docs/reference/krx.md: settlement and
calendar), never from a hand-made list: Korean holidays such as Seollal and Chuseok move.
:data:`KRX_CALENDAR` offers them with the Seoul clock as one object
(:class:`venues.calendar.Calendar`), the one a replay hands its broker and strategy.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from datetime import date, time
from pathlib import Path

import numpy as np
import pandas as pd

from venues.krx.session import seoul_date, seoul_ns

SETTLEMENT_LAG = 2  # docs/reference/krx.md: "T+2 on KRX trading days"


def _cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = importlib.metadata.version("exchange_calendars")
    return base / "cascade-replay" / f"xkrx-sessions-{version}.npy"


@functools.cache
def sessions() -> np.ndarray:
    """Every XKRX session exchange-calendars knows (1956 to about a year ahead), as
    ``datetime64[D]``. Building the calendar takes seconds (its lunar holidays), so the
    session list is kept on disk, keyed by the exchange-calendars version."""
    path = _cache_file()
    if path.exists():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt
    import exchange_calendars  # seconds to import: only when the cache is cold

    days = exchange_calendars.get_calendar("XKRX").sessions.values.astype("datetime64[D]")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.partial.npy")
    np.save(tmp, days)
    os.replace(tmp, path)
    return days


def _d64(day: date | str) -> np.datetime64:
    return np.datetime64(pd.Timestamp(day).date(), "D")


def _index(day: date | str) -> int:
    """Position of the first session on or after ``day``; an error past the calendar."""
    s = sessions()
    i = int(np.searchsorted(s, _d64(day)))
    if i >= len(s) or _d64(day) < s[0]:
        raise ValueError(f"{pd.Timestamp(day).date()}: outside the XKRX calendar "
                         f"({s[0]} to {s[-1]})")
    return i


def _as_date(d: np.datetime64) -> date:
    return pd.Timestamp(d).date()


def trading_days(start: date, days: int) -> list[date]:
    """The first ``days`` XKRX trading days on or after ``start``."""
    if days < 0:
        raise ValueError(f"days={days} must not be negative")
    i = _index(start)
    s = sessions()
    if i + days > len(s):
        raise ValueError(f"{days} trading days from {start} run past the XKRX calendar "
                         f"(it ends {s[-1]})")
    return [_as_date(d) for d in s[i:i + days]]


def is_trading_day(day: date | str) -> bool:
    s = sessions()
    i = int(np.searchsorted(s, _d64(day)))
    return i < len(s) and s[i] == _d64(day)


def next_trading_day(day: date | str, *, include: bool = False) -> date:
    """The XKRX trading day after ``day`` (or ``day`` itself if ``include`` and it is one)."""
    i = _index(day)
    s = sessions()
    if not include and s[i] == _d64(day):
        i += 1
    if i >= len(s):
        raise ValueError(f"{day}: no XKRX trading day after it in the calendar")
    return _as_date(s[i])


def trading_days_after(day: date | str, n: int) -> date:
    """The ``n``-th XKRX trading day after ``day`` (which must itself be a trading day)."""
    if not is_trading_day(day):
        raise ValueError(f"{pd.Timestamp(day).date()} is not an XKRX trading day")
    i = _index(day) + n
    s = sessions()
    if not 0 <= i < len(s):
        raise ValueError(f"{day} + {n} trading days is outside the XKRX calendar")
    return _as_date(s[i])


def settlement_date(trade_date: date | str) -> date:
    """The day a trade on ``trade_date`` settles: two XKRX trading days later (T+2); a
    미수 purchase on D must be paid by this day."""
    return trading_days_after(trade_date, SETTLEMENT_LAG)


class KrxCalendar:
    """The KRX venue's calendar (:class:`venues.calendar.Calendar`): XKRX trading days and
    the Asia/Seoul clock (docs/reference/krx.md: settlement and calendar, sessions), on the
    functions above and in :mod:`venues.krx.session`."""

    name = "XKRX"

    def sessions(self) -> np.ndarray:
        return sessions()

    def is_trading_day(self, day: date) -> bool:
        return is_trading_day(day)

    def next_trading_day(self, day: date) -> date:
        return next_trading_day(day)

    def trading_days_after(self, day: date, n: int) -> date:
        return trading_days_after(day, n)

    def local_date(self, ts_ns: int) -> date:
        return seoul_date(ts_ns)

    def local_ns(self, day: date, at: time) -> int:
        return seoul_ns(day, at)

    def __repr__(self) -> str:
        return "KrxCalendar()"


#: The one KRX calendar a replay hands its broker and strategy (``replay.calendar``).
KRX_CALENDAR = KrxCalendar()
