"""L3 to L2: the same stream as market-by-price level updates.

Every L3 event that changes the book becomes one ``M`` (the level's new total size) or
``D`` (the level emptied) per level it touched (a modify that moves an order touches two);
trade prints and clears pass through; fills, which do not change the book, are dropped. The
last row made from a packet-ending event keeps its ``F_LAST``. Used to feed the same market
to L2-only peers, and to turn L3 tapes into L2 ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from replay.engine import Replay
from replay.tape import (
    ADD,
    CANCEL,
    CLEAR,
    DELETE,
    FILL,
    MODIFY,
    TRADE,
    Events,
    InstrumentTable,
)
from venues import loop
from venues.book import NEED_OUTPUT, OK, level_size, order_place
from venues.matching import TRADES


@njit(cache=True)
def _emit(out, k, ts, inst, action, side, price, size, flags):
    out[k, 0] = ts
    out[k, 1] = inst
    out[k, 2] = action
    out[k, 3] = side
    out[k, 4] = price
    out[k, 5] = size
    out[k, 6] = flags
    return k + 1


@njit(cache=True)
def _level_row(out, k, S, ts, inst, side, price, flags):
    size = level_size(S, inst, side, price)
    action = MODIFY if size > 0 else DELETE
    return _emit(out, k, ts, inst, action, side, price, size, flags)


@njit(cache=True)
def _to_l2(ts_a, inst_a, act_a, side_a, px_a, sz_a, oid_a, flg_a, pos, S, F, OUT, out, k):
    n = ts_a.shape[0]
    while pos < n:
        if k + 3 > out.shape[0]:
            return NEED_OUTPUT, pos, k
        act = act_a[pos]
        inst = inst_a[pos]
        old_side = -1
        old_price = -1
        if oid_a[pos] != 0 and (act == CANCEL or act == DELETE or act == MODIFY):
            old_price, old_side = order_place(S, oid_a[pos], inst)
        st = loop.apply_row(S, F, OUT, loop.ABSOLUTE, ts_a[pos], inst, act, side_a[pos],
                            px_a[pos], sz_a[pos], oid_a[pos])
        OUT[TRADES + 2] = 0
        if st != OK:
            return st, pos, k
        flags = flg_a[pos]
        ts = ts_a[pos]
        if act == TRADE or act == CLEAR:
            k = _emit(out, k, ts, inst, act, side_a[pos], px_a[pos], sz_a[pos], flags)
        elif act == FILL:
            pass
        elif act == ADD or oid_a[pos] == 0:
            k = _level_row(out, k, S, ts, inst, side_a[pos], px_a[pos], flags)
        elif old_price >= 0:
            moved = act == MODIFY and (old_price != px_a[pos] or old_side != side_a[pos])
            k = _level_row(out, k, S, ts, inst, old_side, old_price, 0 if moved else flags)
            if moved:
                k = _level_row(out, k, S, ts, inst, side_a[pos], px_a[pos], flags)
        pos += 1
    return OK, pos, k


class _Levels:
    """The source :func:`to_l2` drives: the stream's rows applied in absolute mode, the
    level rows written to ``out``; full buffers are kept in ``parts``."""

    def __init__(self, events: Events, out: np.ndarray) -> None:
        self.events, self.out = events, out
        self.columns = events.kernel_columns()
        self.pos = self.k = 0
        self.parts: list[np.ndarray] = []

    def advance(self, replay: Replay, until: int) -> int:
        while True:
            st, self.pos, self.k = _to_l2(*self.columns, self.pos, replay.book.S, replay.F,
                                          replay.reports.OUT, self.out, self.k)
            if st != NEED_OUTPUT:  # its own rows were full: it goes on
                return st
            self.parts.append(self.out[:self.k].copy())
            self.k = 0

    def next_input(self, replay: Replay) -> int:
        ev = self.events
        return int(ev.ts[self.pos]) if self.pos < len(ev) else loop.NEVER

    def needs(self, replay: Replay) -> tuple[int, int]:
        return int(self.events.instrument[self.pos]), int(self.events.price[self.pos])


def to_l2(events: Events, instruments: InstrumentTable) -> tuple[Events, InstrumentTable]:
    """The L2 form of an L3 stream, and its instrument table (book type L2)."""
    rp = Replay(instruments, "absolute")
    out = np.zeros((max(1024, len(events) + len(events) // 4), 7), np.int64)
    rp.prepare(events)
    source = _Levels(events, out)
    rp.drive(source)
    parts, k = source.parts, source.k
    parts.append(out[:k])
    rows = np.concatenate(parts)
    l2 = Events.from_columns({
        "ts": rows[:, 0], "instrument": rows[:, 1], "action": rows[:, 2], "side": rows[:, 3],
        "price": rows[:, 4], "size": rows[:, 5], "order_id": np.zeros(len(rows), np.uint64),
        "flags": rows[:, 6], "sequence": np.arange(len(rows), dtype=np.uint64)})
    table = InstrumentTable([dataclasses.replace(i, book_type="L2") for i in instruments])
    return l2, table
