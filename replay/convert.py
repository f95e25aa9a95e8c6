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

from replay import loop
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
from venues.book import (
    L_SIZE,
    NEED_OUTPUT,
    O_PRICE,
    O_SIDE,
    OK,
    find_order,
    level_index,
    li_,
    oi,
)
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
    li = level_index(S, inst, side, price)
    size = S[li_(S, li, L_SIZE)] if li >= 0 else 0
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
            row = find_order(S, oid_a[pos], inst)
            if row >= 0:
                old_side = S[oi(S, row, O_SIDE)]
                old_price = S[oi(S, row, O_PRICE)]
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


def to_l2(events: Events, instruments: InstrumentTable) -> tuple[Events, InstrumentTable]:
    """The L2 form of an L3 stream, and its instrument table (book type L2)."""
    rp = Replay(instruments, "absolute")
    out = np.zeros((max(1024, len(events) + len(events) // 4), 7), np.int64)
    parts = []
    rp._prepare(events)
    pos = k = 0
    while True:
        st, pos, k = _to_l2(*events.kernel_columns(), pos, rp.book.S, rp.F, rp.reports.OUT,
                            out, k)
        if st == OK:
            break
        if st == NEED_OUTPUT:
            parts.append(out[:k].copy())
            k = 0
        else:
            rp._grow_for(st, events, pos, np.zeros((0, loop.J_COLS), np.int64), 0)
    parts.append(out[:k])
    rows = np.concatenate(parts)
    l2 = Events.from_columns({
        "ts": rows[:, 0], "instrument": rows[:, 1], "action": rows[:, 2], "side": rows[:, 3],
        "price": rows[:, 4], "size": rows[:, 5], "order_id": np.zeros(len(rows), np.uint64),
        "flags": rows[:, 6], "sequence": np.arange(len(rows), dtype=np.uint64)})
    table = InstrumentTable([dataclasses.replace(i, book_type="L2") for i in instruments])
    return l2, table
