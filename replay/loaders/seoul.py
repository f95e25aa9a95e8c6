"""Seoul dates and times of day to UTC nanoseconds, over whole columns at once.

Korean exchange files write local (Asia/Seoul) dates and times. Korea has kept no daylight
saving time since 1988, so Seoul is UTC+9 on every date a tape can hold (1990-2100).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replay.quality import scaled_ts

KST_OFFSET_MS = 9 * 3600 * 1000
DAY_MS = 86_400_000


def days_of(ymd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days since 1970-01-01 of YYYYMMDD integers, and the mask of those that are dates."""
    ymd = np.asarray(ymd, np.int64)
    year, rest = np.divmod(ymd, 10**4)
    month, day = np.divmod(rest, 100)
    month_ok = (month >= 1) & (month <= 12) & (year < 10_000)
    first = ((np.where(month_ok, year, 1970) - 1970) * 12
             + np.where(month_ok, month, 1) - 1).astype("datetime64[M]")
    days = first.astype("datetime64[D]").astype(np.int64) + day - 1
    same_month = days.astype("datetime64[D]").astype("datetime64[M]") == first
    return days, month_ok & (day >= 1) & same_month


def ms_of_day(hhmmss: np.ndarray, millis: np.ndarray | int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Milliseconds after midnight of HHMMSS integers (plus ``millis``), and the mask of
    those that are times of day."""
    hour, rest = np.divmod(np.asarray(hhmmss, np.int64), 10**4)
    minute, second = np.divmod(rest, 100)
    ok = (hour < 24) & (minute < 60) & (second < 60)
    return ((hour * 60 + minute) * 60 + second) * 1000 + millis, ok


def seoul_ns(days: np.ndarray, ms: np.ndarray, path: Path | str, lines: np.ndarray,
             field_name: str) -> np.ndarray:
    """UTC nanoseconds of Seoul ``days`` (since 1970-01-01) plus ``ms`` after midnight; a
    time outside 1990-2100 is an error naming its row (checked before scaling, so nothing
    wraps around int64)."""
    return scaled_ts(days * DAY_MS + ms - KST_OFFSET_MS, 10**6, path, lines, field_name,
                     "ms, from Seoul time")
