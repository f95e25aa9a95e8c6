"""A KRX trading day's phases, in UTC nanoseconds (docs/reference/krx.md: sessions).

- Opening call auction: orders from 08:30; uncross at 09:00 plus a random end.
- Continuous trading to 15:20.
- Closing call auction 15:20-15:30 plus a random end.
- Post-close trading at the closing price 15:40-16:00.

"Every single-price auction ends at a random moment within 30 s after its nominal end"
[P]: the extra time is drawn from the run's seed and the day, so the same seed gives the same
schedule. Times are Asia/Seoul wall clock; the tape is in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

SEOUL = ZoneInfo("Asia/Seoul")
#: Seoul is UTC+9 on every date a tape can hold (no daylight saving time since 1988).
KST_OFFSET_NS = 9 * 3600 * 10**9
RANDOM_END_MAX = timedelta(seconds=30)  # docs/reference/krx.md: "within 30 s"
VI_AUCTION = timedelta(minutes=2)  # docs/reference/krx.md: "a 2-minute single-price auction"

PRE_OPEN = time(8, 30)
OPEN = time(9, 0)
CLOSE_AUCTION = time(15, 20)
CLOSE = time(15, 30)
POST_CLOSE_START = time(15, 40)
POST_CLOSE_END = time(16, 0)


def seoul_date(ts_ns: int) -> date:
    """The Seoul calendar date of ``ts_ns`` (nanoseconds since the epoch, UTC)."""
    return datetime.fromtimestamp(ts_ns / 1e9, SEOUL).date()


def seoul_ns(day: date, at: time) -> int:
    """Nanoseconds since the epoch (UTC) of Seoul wall-clock ``at`` on ``day``."""
    return int(datetime.combine(day, at, tzinfo=SEOUL).timestamp()) * 10**9


def continuous_bounds_ns(day: date) -> tuple[int, int]:
    """``(start, end)`` of continuous trading on ``day``, 09:00-15:20 Seoul, in UTC ns."""
    return seoul_ns(day, OPEN), seoul_ns(day, CLOSE_AUCTION)


@dataclass(frozen=True)
class Schedule:
    """One day's phase boundaries, UTC ns. ``open_ns`` and ``close_ns`` are the random
    auction ends: the opening uncross and the closing uncross."""

    day: date
    pre_open_ns: int
    open_ns: int
    continuous_end_ns: int
    close_ns: int
    post_close_start_ns: int
    post_close_end_ns: int

    def phase(self, ts_ns: int) -> str:
        """The phase at ``ts_ns``: closed, opening_auction, continuous, closing_auction,
        between (closed after the closing uncross), post_close."""
        if ts_ns < self.pre_open_ns:
            return "closed"
        if ts_ns < self.open_ns:
            return "opening_auction"
        if ts_ns < self.continuous_end_ns:
            return "continuous"
        if ts_ns < self.close_ns:
            return "closing_auction"
        if ts_ns < self.post_close_start_ns:
            return "between"
        if ts_ns < self.post_close_end_ns:
            return "post_close"
        return "closed"


def random_extension_ns(seed: int, day: date, key: tuple[int, ...],
                        most: timedelta = RANDOM_END_MAX) -> int:
    """A random auction extension (0 to ``most``, whole microseconds, in ns) drawn from the
    seed, the day and ``key`` (which auction): the same inputs give the same draw."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [seed, day.toordinal(), *key])))
    return int(rng.integers(0, most // timedelta(microseconds=1))) * 1_000


def random_end_ns(seed: int, day: date, which: str) -> int:
    """The random extension (0 to 30 s, in ns) of one auction, from the seed and the day."""
    return random_extension_ns(seed, day, ({"open": 0, "close": 1}[which],))


def vi_end_ns(seed: int, day: date, instrument: int, count: int, start_ns: int) -> int:
    """When the ``count``-th VI auction of ``instrument`` on ``day`` (1 the first; an
    opening or closing auction's VI extension counts too), begun at ``start_ns``, ends: 2
    minutes plus a random end within 30 s (docs/reference/krx.md: volatility interruption).
    The KRX venue draws it so; an anchored tape that holds its own VIs draws the same."""
    return start_ns + VI_AUCTION // timedelta(microseconds=1) * 1_000 \
        + random_extension_ns(seed, day, (2, instrument, count))


def schedule(day: date, seed: int = 0) -> Schedule:
    return Schedule(
        day=day,
        pre_open_ns=seoul_ns(day, PRE_OPEN),
        open_ns=seoul_ns(day, OPEN) + random_end_ns(seed, day, "open"),
        continuous_end_ns=seoul_ns(day, CLOSE_AUCTION),
        close_ns=seoul_ns(day, CLOSE) + random_end_ns(seed, day, "close"),
        post_close_start_ns=seoul_ns(day, POST_CLOSE_START),
        post_close_end_ns=seoul_ns(day, POST_CLOSE_END),
    )
