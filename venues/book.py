"""The order book: dense price ladders, FIFO queues of orders, an order-id hash table.

All instruments of a replay share one :class:`BookState`, a handful of integer numpy
arrays. Compiled kernels (``@njit``) below read and write those arrays; nothing outside
this module and :mod:`venues.matching` touches their layout.

- **Ladder.** Each instrument owns ``n`` price levels per side, from ``base`` upwards in
  steps of ``step`` price units (the finest tick of its tick scheme). KRX daily limits bound a
  day's prices, so a ladder spans hundreds to a few thousand levels; an event outside the
  ladder makes the kernel stop with :data:`NEED_LADDER`, and the front re-centres it.
- **Level.** Visible size = anonymous size (L2 feeds: the vendor's aggregate) + the sizes
  of the orders queued at the level (L3 feeds and every injected order), in time priority.
- **Order.** A row of ``orders``; historical orders keep ``hist`` (the size history believes
  it has) beside ``size`` (what the simulation left of it), so later historical events on an
  order that injected flow consumed are clipped, not applied twice.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Status codes returned by kernels that can stop early.
OK = 0
NEED_LADDER = 1
NEED_ORDERS = 2
NEED_OUTPUT = 3

# Instrument columns (ins[i, :]).
I_OFF, I_N, I_BASE, I_STEP, I_BEST_BID, I_BEST_ASK, I_LAST, I_HIST_LAST, I_L2 = range(9)
I_COLS = 9

# Level columns (lv[k, :]); bid levels of instrument i are rows off .. off+n-1, asks follow.
L_SIZE, L_ANON, L_COUNT, L_HEAD, L_TAIL, L_INJ, L_LEDGER = range(7)
L_COLS = 7

# Order columns (orders[j, :]).
O_ID, O_INST, O_SIDE, O_PRICE, O_SIZE, O_HIST, O_PREV, O_NEXT, O_OWNER, O_TS, O_LIVE = range(11)
O_COLS = 11
NO_OWNER = -1  # a historical order; injected orders carry their injection index

SIDE_BID = 66  # ord("B")
SIDE_ASK = 65  # ord("A")

EMPTY = -1
TOMB = -2


class BookState:
    """The arrays of a book over several instruments, and their (re)allocation."""

    def __init__(self, n_instruments: int, order_capacity: int = 1 << 16) -> None:
        self.ins = np.zeros((n_instruments, I_COLS), np.int64)
        self.ins[:, I_BEST_BID] = -1
        self.ins[:, I_BEST_ASK] = -1
        self.ins[:, I_STEP] = 1
        self.lv = np.zeros((0, L_COLS), np.int64)
        self.orders = np.zeros((order_capacity, O_COLS), np.int64)
        self.free = np.arange(order_capacity - 1, -1, -1, dtype=np.int64)
        self.meta = np.zeros(4, np.int64)  # [free_top, hash_used(incl. tombs), live, _]
        self.meta[0] = order_capacity
        self.table = np.full(_pow2(order_capacity * 2), EMPTY, np.int64)

    # -- ladder -----------------------------------------------------------------------------
    def ladder_bounds(self, i: int) -> tuple[int, int]:
        base, n, step = self.ins[i, I_BASE], self.ins[i, I_N], self.ins[i, I_STEP]
        return int(base), int(base + (n - 1) * step)

    def set_ladder(self, i: int, low: int, high: int, step: int) -> None:
        """Give instrument ``i`` a ladder covering [low, high] (price units) in steps of
        ``step``, keeping every level it already has. The step may only get finer, by a
        divisor of the old one (a price on the old grid stays on the new one)."""
        if step <= 0:
            raise ValueError(f"instrument {i}: ladder step must be positive, got {step}")
        old_n = int(self.ins[i, I_N])
        old_step = int(self.ins[i, I_STEP])
        if old_n:
            if old_step % step:
                raise ValueError(f"instrument {i}: ladder step {old_step} cannot become {step}")
            old_lo, old_hi = self.ladder_bounds(i)
            low, high = min(low, old_lo), max(high, old_hi)
        low -= low % step
        high += (-high) % step
        n = (high - low) // step + 1
        sizes = self.ins[:, I_N].copy()
        sizes[i] = n
        offsets = np.concatenate([[0], np.cumsum(2 * sizes)[:-1]]).astype(np.int64)
        new_lv = np.zeros((int(2 * sizes.sum()), L_COLS), np.int64)
        new_lv[:, L_HEAD] = EMPTY
        new_lv[:, L_TAIL] = EMPTY
        for j in range(len(self.ins)):
            nj = int(self.ins[j, I_N])
            if nj == 0:
                continue
            src = int(self.ins[j, I_OFF])
            new_n = int(sizes[j])
            if j == i:
                # old slot k sits at price old_base + k*old_step = low + new_k*step
                new_k = (int(self.ins[i, I_BASE]) - low + np.arange(nj) * old_step) // step
            else:
                new_k = np.arange(nj)
            dst = int(offsets[j])
            new_lv[dst + new_k] = self.lv[src:src + nj]  # bids
            new_lv[dst + new_n + new_k] = self.lv[src + nj:src + 2 * nj]  # asks
            if j == i:
                for col in (I_BEST_BID, I_BEST_ASK):
                    if self.ins[i, col] >= 0:
                        self.ins[i, col] = new_k[self.ins[i, col]]
        self.lv = new_lv
        self.ins[:, I_OFF] = offsets
        self.ins[:, I_N] = sizes
        self.ins[i, I_BASE] = low
        self.ins[i, I_STEP] = step

    # -- order pool ---------------------------------------------------------------------------
    def grow_orders(self) -> None:
        """Double the order pool and rebuild the hash table (dropping tombstones)."""
        cap = len(self.orders)
        orders = np.zeros((2 * cap, O_COLS), np.int64)
        orders[:cap] = self.orders
        free_top = int(self.meta[0])
        free = np.empty(2 * cap, np.int64)
        free[:cap] = np.arange(2 * cap - 1, cap - 1, -1)
        free[cap:cap + free_top] = self.free[:free_top]
        self.orders, self.free = orders, free
        self.meta[0] = cap + free_top
        self.rehash()

    def make_room(self) -> None:
        """Room for one more order: drop the hash table's tombstones if live orders fill
        less than half the pool, else double the pool."""
        if 2 * int(self.meta[2]) < len(self.orders) and self.meta[0] > 0:
            self.rehash()
        else:
            self.grow_orders()

    def rehash(self) -> None:
        self.table = np.full(_pow2(len(self.orders) * 2), EMPTY, np.int64)
        self.meta[1] = _rehash(self.orders, self.table)


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


@njit(cache=True)
def _rehash(orders, table):
    used = 0
    for j in range(orders.shape[0]):
        if orders[j, O_LIVE] != 0:
            _hash_insert(table, orders[j, O_ID], orders[j, O_INST], j)
            used += 1
    return used


# -- hash table: (instrument, order_id) -> order row ----------------------------------------

@njit(cache=True, inline="always")
def _hash(order_id, inst, mask):
    x = np.uint64(order_id) ^ (np.uint64(inst) * np.uint64(0x9E3779B97F4A7C15))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.int64(x & np.uint64(mask))


@njit(cache=True)
def _hash_insert(table, order_id, inst, row):
    mask = table.shape[0] - 1
    h = _hash(order_id, inst, mask)
    while table[h] >= 0:
        h = (h + 1) & mask
    table[h] = row


@njit(cache=True)
def find_order(orders, table, order_id, inst):
    """Row of order ``order_id`` of instrument ``inst``, or -1."""
    mask = table.shape[0] - 1
    h = _hash(order_id, inst, mask)
    while True:
        r = table[h]
        if r == EMPTY:
            return -1
        if r >= 0 and orders[r, O_ID] == order_id and orders[r, O_INST] == inst:
            return r
        h = (h + 1) & mask


@njit(cache=True)
def _hash_remove(orders, table, order_id, inst):
    mask = table.shape[0] - 1
    h = _hash(order_id, inst, mask)
    while True:
        r = table[h]
        if r == EMPTY:
            return
        if r >= 0 and orders[r, O_ID] == order_id and orders[r, O_INST] == inst:
            table[h] = TOMB
            return
        h = (h + 1) & mask


# -- ladder arithmetic ------------------------------------------------------------------------

@njit(cache=True, inline="always")
def level_index(ins, inst, side, price):
    """Index into ``lv`` of the level at ``price`` on ``side``, or -1 outside the ladder/grid."""
    step = ins[inst, I_STEP]
    d = price - ins[inst, I_BASE]
    if d < 0 or d % step != 0:
        return -1
    k = d // step
    n = ins[inst, I_N]
    if k >= n:
        return -1
    return ins[inst, I_OFF] + k + (n if side == SIDE_ASK else 0)


@njit(cache=True, inline="always")
def in_ladder(ins, inst, price):
    d = price - ins[inst, I_BASE]
    return d >= 0 and d // ins[inst, I_STEP] < ins[inst, I_N]


@njit(cache=True, inline="always")
def level_price(ins, inst, k):
    """Price of ladder slot ``k`` (0..n-1)."""
    return ins[inst, I_BASE] + k * ins[inst, I_STEP]


@njit(cache=True)
def best_price(ins, inst, side):
    """Best price on ``side`` or -1 if that side is empty."""
    k = ins[inst, I_BEST_BID] if side == SIDE_BID else ins[inst, I_BEST_ASK]
    if k < 0:
        return -1
    return level_price(ins, inst, k)


@njit(cache=True)
def _touch_best(ins, lv, inst, side, k):
    """A level at slot ``k`` gained size: it may be the new best."""
    if side == SIDE_BID:
        if ins[inst, I_BEST_BID] < k:
            ins[inst, I_BEST_BID] = k
    else:
        b = ins[inst, I_BEST_ASK]
        if b < 0 or k < b:
            ins[inst, I_BEST_ASK] = k


@njit(cache=True)
def _fix_best(ins, lv, inst, side, k):
    """The level at slot ``k`` became empty: if it was the best, walk to the next one."""
    off = ins[inst, I_OFF]
    n = ins[inst, I_N]
    if side == SIDE_BID:
        if ins[inst, I_BEST_BID] != k:
            return
        j = k - 1
        while j >= 0 and lv[off + j, L_SIZE] == 0:
            j -= 1
        ins[inst, I_BEST_BID] = j
    else:
        if ins[inst, I_BEST_ASK] != k:
            return
        j = k + 1
        while j < n and lv[off + n + j, L_SIZE] == 0:
            j += 1
        ins[inst, I_BEST_ASK] = j if j < n else -1


@njit(cache=True, inline="always")
def _slot(ins, inst, side, li):
    return li - ins[inst, I_OFF] - (ins[inst, I_N] if side == SIDE_ASK else 0)


# -- level and order primitives ----------------------------------------------------------------

@njit(cache=True)
def level_add(ins, lv, inst, side, li, delta):
    """Change a level's visible size by ``delta`` and keep the best prices right."""
    before = lv[li, L_SIZE]
    lv[li, L_SIZE] = before + delta
    k = _slot(ins, inst, side, li)
    if before == 0 and delta > 0:
        _touch_best(ins, lv, inst, side, k)
    elif before > 0 and before + delta == 0:
        _fix_best(ins, lv, inst, side, k)


@njit(cache=True, inline="always")
def can_alloc(meta, table):
    """Whether an order row is free and the hash table has room for it."""
    return meta[0] > 0 and 2 * (meta[1] + 1) <= table.shape[0]


@njit(cache=True)
def alloc_order(orders, free, meta, table):
    """A free order row, or -1 if the pool (or the hash table's load) is exhausted."""
    if not can_alloc(meta, table):
        return -1
    meta[0] -= 1
    return free[meta[0]]


@njit(cache=True)
def enqueue(ins, lv, orders, table, meta, row, order_id, inst, side, price, size, hist, owner,
            ts, li):
    """Put a new order at the back of level ``li``."""
    orders[row, O_ID] = order_id
    orders[row, O_INST] = inst
    orders[row, O_SIDE] = side
    orders[row, O_PRICE] = price
    orders[row, O_SIZE] = size
    orders[row, O_HIST] = hist
    orders[row, O_OWNER] = owner
    orders[row, O_TS] = ts
    orders[row, O_LIVE] = 1
    _hash_insert(table, order_id, inst, row)
    meta[1] += 1
    meta[2] += 1
    link(ins, lv, orders, row, li)


@njit(cache=True)
def link(ins, lv, orders, row, li):
    """Append order ``row`` to the FIFO of level ``li``."""
    orders[row, O_NEXT] = -1
    tail = lv[li, L_TAIL]
    orders[row, O_PREV] = tail
    if tail >= 0:
        orders[tail, O_NEXT] = row
    else:
        lv[li, L_HEAD] = row
    lv[li, L_TAIL] = row
    lv[li, L_COUNT] += 1
    if orders[row, O_OWNER] >= 0:
        lv[li, L_INJ] += 1
    level_add(ins, lv, orders[row, O_INST], orders[row, O_SIDE], li, orders[row, O_SIZE])


@njit(cache=True)
def unlink(ins, lv, orders, row, li):
    """Take order ``row`` out of the FIFO of level ``li`` (its row stays allocated)."""
    p = orders[row, O_PREV]
    nx = orders[row, O_NEXT]
    if p >= 0:
        orders[p, O_NEXT] = nx
    else:
        lv[li, L_HEAD] = nx
    if nx >= 0:
        orders[nx, O_PREV] = p
    else:
        lv[li, L_TAIL] = p
    orders[row, O_PREV] = -1
    orders[row, O_NEXT] = -1
    lv[li, L_COUNT] -= 1
    if orders[row, O_OWNER] >= 0:
        lv[li, L_INJ] -= 1
    level_add(ins, lv, orders[row, O_INST], orders[row, O_SIDE], li, -orders[row, O_SIZE])


@njit(cache=True)
def release(orders, free, meta, table, row):
    """Forget order ``row``: out of the hash table, back to the free list."""
    _hash_remove(orders, table, orders[row, O_ID], orders[row, O_INST])
    orders[row, O_LIVE] = 0
    free[meta[0]] = row
    meta[0] += 1
    meta[2] -= 1


@njit(cache=True)
def clear_instrument(ins, lv, orders, free, meta, table, inst):
    """Empty every level of ``inst`` and forget its orders."""
    off = ins[inst, I_OFF]
    n = ins[inst, I_N]
    for li in range(off, off + 2 * n):
        r = lv[li, L_HEAD]
        while r >= 0:
            nx = orders[r, O_NEXT]
            release(orders, free, meta, table, r)
            r = nx
        lv[li, L_SIZE] = 0
        lv[li, L_ANON] = 0
        lv[li, L_COUNT] = 0
        lv[li, L_INJ] = 0
        lv[li, L_LEDGER] = 0
        lv[li, L_HEAD] = -1
        lv[li, L_TAIL] = -1
    # orders consumed out of their level but still tracked for history's sake
    for r in range(orders.shape[0]):
        if orders[r, O_LIVE] != 0 and orders[r, O_INST] == inst:
            release(orders, free, meta, table, r)
    ins[inst, I_BEST_BID] = -1
    ins[inst, I_BEST_ASK] = -1


@njit(cache=True)
def snapshot_levels(ins, lv, inst, depth, out, col0):
    """Write the top ``depth`` levels of each side as (bid_px, bid_sz, ask_px, ask_sz)
    quadruples into ``out[col0:]``; an empty level is (-1, 0)."""
    off = ins[inst, I_OFF]
    n = ins[inst, I_N]
    k = ins[inst, I_BEST_BID]
    for d in range(depth):
        while k >= 0 and lv[off + k, L_SIZE] == 0:
            k -= 1
        if k >= 0:
            out[col0 + 4 * d] = level_price(ins, inst, k)
            out[col0 + 4 * d + 1] = lv[off + k, L_SIZE]
            k -= 1
        else:
            out[col0 + 4 * d] = -1
            out[col0 + 4 * d + 1] = 0
    k = ins[inst, I_BEST_ASK]
    for d in range(depth):
        while 0 <= k < n and lv[off + n + k, L_SIZE] == 0:
            k += 1
        if 0 <= k < n:
            out[col0 + 4 * d + 2] = level_price(ins, inst, k)
            out[col0 + 4 * d + 3] = lv[off + n + k, L_SIZE]
            k += 1
        else:
            out[col0 + 4 * d + 2] = -1
            out[col0 + 4 * d + 3] = 0
