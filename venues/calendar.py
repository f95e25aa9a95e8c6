"""A venue's calendar: which days it trades and its local clock, as one object.

The broker (settlement days, a call's deadline) and the strategy host (``today``, daily
timers) are handed the calendar of the replay they attach to (``replay.calendar``), so
neither imports a venue's own calendar. :class:`venues.krx.calendar.KrxCalendar` is the
KRX one (XKRX trading days, the Asia/Seoul clock).
"""

from __future__ import annotations

from datetime import date, time
from typing import Protocol

import numpy as np


class Calendar(Protocol):
    """Trading days and the local clock of a venue. Days are ``datetime.date``; times are
    nanoseconds since the epoch, UTC."""

    def sessions(self) -> np.ndarray:
        """Every trading day the calendar knows, ascending, as ``datetime64[D]``."""
        ...

    def is_trading_day(self, day: date) -> bool: ...

    def next_trading_day(self, day: date) -> date:
        """The first trading day after ``day``."""
        ...

    def trading_days_after(self, day: date, n: int) -> date:
        """The ``n``-th trading day after ``day`` (itself a trading day)."""
        ...

    def local_date(self, ts_ns: int) -> date:
        """The venue's local calendar date at ``ts_ns``."""
        ...

    def local_ns(self, day: date, at: time) -> int:
        """``ts_ns`` of local wall-clock ``at`` on ``day``."""
        ...
