"""Book reconstruction: the top N levels after every complete event.

``book_levels`` replays a tape with no injected orders and writes one row per event that
completes a packet (flag ``F_LAST``; loaders of formats without packets flag every event):
``ts``, ``instrument`` and, for k = 0..N-1, ``bid_px_k, bid_sz_k, ask_px_k, ask_sz_k`` with
prices in natural units (NaN and size 0 where a level is empty).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
from numba import njit

from replay.engine import Replay
from replay.tape import Events, InstrumentTable
from venues import loop
from venues.book import NEED_OUTPUT, OK, snapshot_levels
from venues.codes import F_LAST
from venues.matching import TRADES


@njit(cache=True)
def _snapshots(ts_a, inst_a, act_a, side_a, px_a, sz_a, oid_a, flg_a, pos, S, F, OUT, depth,
               out, nrow):
    n = ts_a.shape[0]
    while pos < n:
        if nrow >= out.shape[0]:
            return NEED_OUTPUT, pos, nrow
        st = loop.apply_row(S, F, OUT, loop.ABSOLUTE, ts_a[pos], inst_a[pos], act_a[pos],
                            side_a[pos], px_a[pos], sz_a[pos], oid_a[pos])
        OUT[TRADES + 2] = 0  # trade prints are not wanted here
        if st != OK:
            return st, pos, nrow
        if flg_a[pos] & F_LAST:
            out[nrow, 0] = ts_a[pos]
            out[nrow, 1] = inst_a[pos]
            snapshot_levels(S, inst_a[pos], depth, out[nrow], 2)
            nrow += 1
        pos += 1
    return OK, pos, nrow


def level_names(depth: int) -> list[str]:
    names = []
    for k in range(depth):
        names += [f"bid_px_{k}", f"bid_sz_{k}", f"ask_px_{k}", f"ask_sz_{k}"]
    return names


class _Snapshots:
    """The source :func:`book_levels` drives: a chunk's rows applied in absolute mode, the
    top levels written after each complete event; full batches are kept in ``batches``."""

    def __init__(self, ev: Events, depth: int, out: np.ndarray, to_batch) -> None:
        self.ev, self.depth, self.out, self.to_batch = ev, depth, out, to_batch
        self.columns = ev.kernel_columns()
        self.pos = self.nrow = 0
        self.batches: list[pa.RecordBatch] = []

    def advance(self, replay: Replay, until: int) -> int:
        while True:
            st, self.pos, self.nrow = _snapshots(*self.columns, self.pos, replay.book.S,
                                                 replay.F, replay.reports.OUT, self.depth,
                                                 self.out, self.nrow)
            if st == NEED_OUTPUT or (st == OK and self.nrow):
                self.batches.append(self.to_batch(self.out[:self.nrow]))
                self.nrow = 0
            if st != NEED_OUTPUT:  # its own rows were full: it goes on
                return st

    def next_input(self, replay: Replay) -> int:
        return int(self.ev.ts[self.pos]) if self.pos < len(self.ev) else loop.NEVER

    def needs(self, replay: Replay) -> tuple[int, int]:
        return int(self.ev.instrument[self.pos]), int(self.ev.price[self.pos])


def book_levels(chunks: Iterable[Events], instruments: InstrumentTable, depth: int = 10,
                rows_per_batch: int = 1 << 16) -> Iterable[pa.RecordBatch]:
    """Yield Arrow record batches of the top ``depth`` levels after every ``F_LAST`` event."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    rp = Replay(instruments, "absolute")
    n = len(instruments) and max(i.instrument_id for i in instruments) + 1
    decimals = np.zeros(n, np.int64)
    size_dec = np.zeros(n, np.int64)
    for inst in instruments:
        decimals[inst.instrument_id] = inst.price_decimals
        size_dec[inst.instrument_id] = inst.size_decimals
    out = np.zeros((rows_per_batch, 2 + 4 * depth), np.int64)
    names = level_names(depth)
    for ev in chunks:
        if len(ev) == 0:
            continue
        rp.prepare(ev)
        source = _Snapshots(ev, depth, out,
                            lambda rows: _to_batch(rows, names, decimals, size_dec))
        rp.drive(source)
        yield from source.batches


def _to_batch(rows: np.ndarray, names: list[str], decimals: np.ndarray,
              size_dec: np.ndarray) -> pa.RecordBatch:
    inst = rows[:, 1]
    scale = 10.0 ** decimals[inst]
    sscale = 10.0 ** size_dec[inst]
    arrays = [pa.array(rows[:, 0]), pa.array(inst.astype(np.uint32))]
    for j, name in enumerate(names):
        col = rows[:, 2 + j]
        if "_px_" in name:
            arrays.append(pa.array(np.where(col < 0, np.nan, col / scale)))
        elif np.all(size_dec == 0):
            arrays.append(pa.array(col))
        else:
            arrays.append(pa.array(col / sscale))
    return pa.RecordBatch.from_arrays(arrays, names=["ts", "instrument"] + names)
