"""A long line thinned for drawing, never silently: the first and the last point, and the
lowest and the highest of each time bucket, with the finest bucket that fits (so a
limit-down low or a drawdown's trough survives, which every-n-th sampling can drop), and a
note saying what was done, for the caption.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from replay.render.clock import duration, wall_ms

#: Time buckets (seconds) tried, finest first, when a line must be thinned.
BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 86400)


def thin(ts: np.ndarray, values: np.ndarray, budget: int) -> tuple[np.ndarray, str | None]:
    """Rows to draw of a line sorted by time (``ts`` in nanoseconds): all when they fit in
    ``budget``, else the first and the last row, and the lowest and the highest of each
    time bucket, with the finest bucket that fits; the note says what was done (None: all
    drawn)."""
    n = len(ts)
    if n <= budget:
        return np.arange(n), None
    for width_s in BUCKETS_S:
        bucket = ts // (width_s * 10**9)
        if 2 * (np.count_nonzero(np.diff(bucket)) + 1) + 2 <= budget:
            break
    series = pd.Series(values)
    grouped = series.groupby(bucket, sort=False)
    keep = np.unique(np.concatenate([grouped.idxmin().to_numpy(), grouped.idxmax().to_numpy(),
                                     [0, n - 1]]))
    return keep, (f"{n:,} → {len(keep):,} points, the low and high of every "
                  f"{duration(width_s)}")


def held_line(ts: np.ndarray, values: np.ndarray, budget: int,
              end_ts: int = -1) -> tuple[np.ndarray, np.ndarray, str | None]:
    """A price line's points, for a step line held from each trade to the next: sorted by
    time (stable), thinned to ``budget`` (:func:`thin`), and held to ``end_ts`` (the end of
    the data) when its last trade came before it. Returns the Seoul wall-clock
    milliseconds, the values and the thinning note."""
    order = np.argsort(ts, kind="stable")
    ts, values = np.asarray(ts, dtype=np.int64)[order], np.asarray(values, dtype=float)[order]
    keep, note = thin(ts, values, budget)
    ts, values = ts[keep], values[keep]
    if len(ts) and end_ts > ts[-1]:
        ts, values = np.append(ts, end_ts), np.append(values, values[-1])
    return wall_ms(ts), values, note
