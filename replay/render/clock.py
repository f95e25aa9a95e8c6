"""Seoul time, as every axis and table of the pages shows it, and the gaps (nights,
weekends) cut out of a time axis.

Every time on a page is the KRX's clock, the one its users read, whatever the venue; a
plotly date axis draws the Seoul wall clock's milliseconds as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from replay.render.cells import MISSING

TZ, TZ_LABEL = "Asia/Seoul", "KST"
#: A stretch longer than this (a night, a weekend) without a time stamp is cut out of a
#: time axis.
GAP_NS = 2 * 3600 * 10**9
#: Gaps cut out of one axis, at most.
MAX_GAPS = 500


def wall_ms(ts_ns: np.ndarray) -> np.ndarray:
    """UTC epoch nanoseconds -> milliseconds of the Seoul wall clock, which a plotly date
    axis shows as they are."""
    local = pd.DatetimeIndex(pd.to_datetime(np.asarray(ts_ns, dtype=np.int64), utc=True))
    return local.tz_convert(TZ).tz_localize(None).asi8 / 1e6


def stamp(ts_ns: int) -> str:
    """A time stamp on the Seoul clock to the microsecond, as plotly reads a date."""
    return pd.Timestamp(int(ts_ns), tz="UTC").tz_convert(TZ).strftime("%Y-%m-%d %H:%M:%S.%f")


def clock(ts_ns: Any) -> str:
    """A time stamp on the Seoul clock to the millisecond, as a table shows it; – for
    none (missing or negative)."""
    if ts_ns is None or pd.isna(ts_ns) or int(ts_ns) < 0:
        return MISSING
    return stamp(int(ts_ns))[:-3]


def duration(seconds: int) -> str:
    """A whole number of seconds in the largest unit that divides it: ``1 h``, ``90 s``."""
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def time_gaps(stamps: list[np.ndarray]) -> list[dict]:
    """Rangebreaks hiding each stretch longer than :data:`GAP_NS` without a single time
    stamp (of any of ``stamps``; negative ones are none), with a margin of a tenth of the
    gap (at most ten minutes) on both sides."""
    ts = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in stamps]))
    ts = ts[ts >= 0]
    if len(ts) < 2:
        return []
    at = np.flatnonzero(np.diff(ts) > GAP_NS)
    breaks = []
    for i in at[:MAX_GAPS]:
        a, b = int(ts[i]), int(ts[i + 1])
        pad = min((b - a) // 10, 600 * 10**9)
        breaks.append({"bounds": [stamp(a + pad), stamp(b - pad)]})
    return breaks
