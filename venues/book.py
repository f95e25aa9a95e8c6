"""The order book: dense price ladders, FIFO queues of orders, an order-id hash table.

All instruments of a replay share one :class:`BookState`. Its state is a single int64
array, the *arena* ``S``: a header of offsets, then the blocks below. Compiled kernels take
the arena (one array, not a dozen: every array passed to a compiled call costs reference
counting, which dominated the per-event cost), and nothing outside this module,
:mod:`venues.matching` and :mod:`venues.loop` touches its layout. Python reads and grows the
blocks through numpy views (:attr:`BookState.ins`, :attr:`~BookState.lv`, ...).

- **Ladder.** Each instrument owns ``n`` price levels per side, from ``base`` upwards in
  steps of ``step`` price units (the finest tick in its price range). KRX daily limits bound a
  day's prices, so a ladder spans hundreds to a few thousand levels; an event outside the
  ladder makes the kernel stop with :data:`NEED_LADDER`, and the front widens it.
- **Level.** Visible size = anonymous size (L2 feeds: the vendor's aggregate) + the sizes
  of the orders queued at the level (L3 feeds and every injected order), in time priority.
- **Order.** A row of the order pool; historical orders keep ``hist`` (the size history
  believes it has) beside ``size`` (what the simulation left of it), so later historical
  events on an order that injected flow consumed are clipped, not applied twice.
"""

from __future__ import annotations

import math

import numpy as np

from venues.codes import ASK, BID
from venues.kernel import kernel

# Status codes returned by kernels that can stop early.
OK = 0
NEED_LADDER = 1
NEED_ORDERS = 2
NEED_OUTPUT = 3
PAUSE = 4  # the next row or order is at or after the time the venue asked to stop at
VENUE_EVENT = 5  # a venue rule fired (VI, circuit breaker, sidecar): venues/rules.py
WAKE = 6  # a participant's wake condition held (venues/loop.py: the wake slots)

# Arena header: offsets and sizes of the blocks, and the order pool's counters. Slots
# BOOK_HEADER to HEADER - 1 belong to the other owners of arena state, each declaring its
# own (venues/rules.py: the venue's; venues/loop.py: the event loop's); they survive a
# repack.
(H_INS, H_NINS, H_LV, H_NLV, H_ORD, H_CAP, H_FREE, H_TAB, H_TABN, H_FREE_TOP, H_USED,
 H_LIVE, H_CNT, H_TICKS, H_TOB_LAST, H_RES, H_NRES) = range(17)
BOOK_HEADER = 17
HEADER = 48
N_COUNTERS = 24
MAX_BANDS = 8

# Instrument columns: the book's are 0 to BOOK_COLS - 1; the others, to I_COLS - 1, belong
# to the owners above (venues/rules.py: the venue's; venues/loop.py: the event loop's).
(I_OFF, I_N, I_BASE, I_STEP, I_BEST_BID, I_BEST_ASK, I_LAST, I_HIST_LAST,
 I_INV_STEP) = range(9)
BOOK_COLS = 9
I_COLS = 21
# I_INV_STEP holds round(2**52 / step): the reciprocal as an integer, so the arena stays int64
RECIPROCAL_SCALE = 2.0**52
RECIPROCAL_SCALE_INV = 1.0 / RECIPROCAL_SCALE
# Level columns; bid levels of instrument i are rows off .. off+n-1, its asks follow.
L_SIZE, L_ANON, L_COUNT, L_HEAD, L_TAIL, L_INJ, L_LEDGER = range(7)
L_COLS = 7
# Order columns; O_OWNER is -1 for a historical order, else the injected order's index.
(O_ID, O_INST, O_SIDE, O_PRICE, O_SIZE, O_HIST, O_PREV, O_NEXT, O_OWNER, O_TS, O_LIVE,
 O_HSLOT) = range(12)
O_COLS = 12
IN_LEVEL = 1
CONSUMED = 2  # a historical order the simulation emptied; history has not removed it yet
# Injected-order result columns.
R_FILLED, R_NOTIONAL, R_STATUS, R_RESTING, R_REASON = range(5)
R_COLS = 5

EMPTY = -1
TOMB = -2
# The id table is sized to the live orders, not the pool: probes that stay in cache are most
# of an event's cost. It is rebuilt in place when tombstones fill it, and doubled when live
# orders pass an eighth of it.
MIN_TABLE = 1 << 14


#: Instrument columns and result columns by name, for Python code above venues/, which reads
#: them through :meth:`BookState.column` and :meth:`BookState.result` (never by index). The
#: other owners of instrument columns add theirs with :func:`register_columns`.
COLUMNS: dict[str, int] = {"last": I_LAST, "history_last": I_HIST_LAST}
RESULTS: dict[str, int] = {"filled": R_FILLED, "notional": R_NOTIONAL, "status": R_STATUS,
                           "resting": R_RESTING, "reason": R_REASON}


def register_columns(owner: str, **columns: int) -> None:
    """Name an owner's instrument columns (they must lie in BOOK_COLS..I_COLS - 1 and be
    nobody else's)."""
    taken = set(COLUMNS.values())
    for name, col in columns.items():
        if not BOOK_COLS <= col < I_COLS or col in taken or name in COLUMNS:
            raise RuntimeError(f"{owner}: instrument column {name} = {col} is not free")
        COLUMNS[name] = col
        taken.add(col)


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


class BookState:
    """The arena of a book over several instruments, its numpy views, and its growth."""

    def __init__(self, n_instruments: int, order_capacity: int = 1 << 16,
                 table_size: int = MIN_TABLE) -> None:
        ins = np.zeros((n_instruments, I_COLS), np.int64)
        ins[:, I_BEST_BID] = -1
        ins[:, I_BEST_ASK] = -1
        ins[:, I_STEP] = 1
        self._pack(ins=ins, lv=np.zeros((0, L_COLS), np.int64),
                   orders=np.zeros((order_capacity, O_COLS), np.int64),
                   free=np.arange(order_capacity - 1, -1, -1, dtype=np.int64),
                   table=np.full(_pow2(max(4, table_size)), EMPTY, np.int64),
                   counters=np.zeros(N_COUNTERS, np.int64),
                   ticks=np.zeros((n_instruments, 2, MAX_BANDS), np.int64),
                   tob_last=np.full((n_instruments, 4), -2, np.int64),
                   results=np.zeros((0, R_COLS), np.int64),
                   meta=(order_capacity, 0, 0))

    # -- arena layout -------------------------------------------------------------------------
    def _pack(self, *, ins, lv, orders, free, table, counters, ticks, tob_last, results,
              meta) -> None:
        blocks = [ins, lv, orders, free, table, counters, ticks, tob_last, results]
        sizes = [b.size for b in blocks]
        S = np.zeros(HEADER + sum(sizes), np.int64)
        offsets = HEADER + np.concatenate([[0], np.cumsum(sizes)[:-1]])
        for off, b in zip(offsets, blocks, strict=True):
            S[off:off + b.size] = b.ravel()
        S[H_INS], S[H_NINS] = offsets[0], len(ins)
        S[H_LV], S[H_NLV] = offsets[1], len(lv)
        S[H_ORD], S[H_CAP] = offsets[2], len(orders)
        S[H_FREE] = offsets[3]
        S[H_TAB], S[H_TABN] = offsets[4], len(table)
        S[H_CNT], S[H_TICKS], S[H_TOB_LAST] = offsets[5], offsets[6], offsets[7]
        S[H_RES], S[H_NRES] = offsets[8], len(results)
        S[H_FREE_TOP], S[H_USED], S[H_LIVE] = meta
        if hasattr(self, "S"):  # the other owners' slots survive a repack
            S[BOOK_HEADER:HEADER] = self.S[BOOK_HEADER:HEADER]
        self.S = S

    def _block(self, h_off: int, shape: tuple[int, ...]) -> np.ndarray:
        off = int(self.S[h_off])
        return self.S[off:off + math.prod(shape)].reshape(shape)

    @property
    def ins(self) -> np.ndarray:
        return self._block(H_INS, (int(self.S[H_NINS]), I_COLS))

    @property
    def lv(self) -> np.ndarray:
        return self._block(H_LV, (int(self.S[H_NLV]), L_COLS))

    @property
    def orders(self) -> np.ndarray:
        return self._block(H_ORD, (int(self.S[H_CAP]), O_COLS))

    @property
    def free(self) -> np.ndarray:
        return self._block(H_FREE, (int(self.S[H_CAP]),))

    @property
    def table(self) -> np.ndarray:
        return self._block(H_TAB, (int(self.S[H_TABN]),))

    @property
    def counters(self) -> np.ndarray:
        return self._block(H_CNT, (N_COUNTERS,))

    @property
    def ticks(self) -> np.ndarray:
        """Tick bands per instrument: ``ticks[i, 0, b]`` lower bound, ``ticks[i, 1, b]``
        tick (0 = unused band)."""
        return self._block(H_TICKS, (int(self.S[H_NINS]), 2, MAX_BANDS))

    @property
    def tob_last(self) -> np.ndarray:
        return self._block(H_TOB_LAST, (int(self.S[H_NINS]), 4))

    @property
    def results(self) -> np.ndarray:
        """The results of the injected orders so far (one row per order)."""
        return self._block(H_RES, (int(self.S[H_NRES]), R_COLS))[:self.n_results]

    def column(self, name: str) -> np.ndarray:
        """Instrument column ``name`` (:data:`COLUMNS`) for every instrument: a view into
        the arena, valid until the next repack (a wider ladder, more orders)."""
        return self.ins[:, COLUMNS[name]]

    def result(self, name: str) -> np.ndarray:
        """Result column ``name`` (:data:`RESULTS`: filled, notional, status, resting,
        reason) for every injected order so far, by result row: a view, as :meth:`column`."""
        return self.results[:, RESULTS[name]]

    @property
    def n_results(self) -> int:
        return getattr(self, "_n_results", 0)

    @property
    def live_orders(self) -> int:
        return int(self.S[H_LIVE])

    def _repack(self, **replace) -> None:
        parts = dict(ins=self.ins, lv=self.lv, orders=self.orders, free=self.free,
                     table=self.table, counters=self.counters, ticks=self.ticks,
                     tob_last=self.tob_last,
                     results=self._block(H_RES, (int(self.S[H_NRES]), R_COLS)),
                     meta=(int(self.S[H_FREE_TOP]), int(self.S[H_USED]), int(self.S[H_LIVE])))
        parts.update(replace)
        self._pack(**{k: (v.copy() if isinstance(v, np.ndarray) else v)
                      for k, v in parts.items()})

    def add_results(self, n: int) -> int:
        """Room for ``n`` more injected orders' results; returns the first new index."""
        first = self.n_results
        capacity = int(self.S[H_NRES])
        if first + n > capacity:  # grow by doubling: orders added one by one stay cheap
            grown = np.zeros((max(2 * capacity, first + n, 64), R_COLS), np.int64)
            grown[:first] = self.results
            self._repack(results=grown)
        self._n_results = first + n
        return first

    # -- ladder -----------------------------------------------------------------------------
    def ladder_bounds(self, i: int) -> tuple[int, int]:
        base, n, step = self.ins[i, I_BASE], self.ins[i, I_N], self.ins[i, I_STEP]
        return int(base), int(base + (n - 1) * step)

    def top_levels(self, i: int, depth: int) -> np.ndarray:
        """The top ``depth`` levels of instrument ``i``: rows of (bid price, bid size, ask
        price, ask size), best first; an empty level is (-1, 0)."""
        out = np.zeros(4 * depth, np.int64)
        snapshot_levels(self.S, i, depth, out, 0)
        return out.reshape(depth, 4)

    def tick_at(self, i: int, price: int) -> int:
        """The tick of instrument ``i`` at ``price`` (its band table)."""
        return int(tick_of(self.S, i, int(price)))

    def ladder_step(self, i: int) -> int:
        """The ladder step of instrument ``i``; 0 while it has no ladder."""
        return int(self.ins[i, I_STEP]) if self.ins[i, I_N] else 0

    def set_ticks(self, i: int, lows: np.ndarray, ticks: np.ndarray) -> None:
        """Instrument ``i``'s tick bands: from each lower bound upwards, that band's tick."""
        if len(lows) > MAX_BANDS or len(lows) != len(ticks):
            raise ValueError(f"instrument {i}: at most {MAX_BANDS} tick bands, one tick each")
        self.ticks[i, :, :] = 0
        self.ticks[i, 0, :len(lows)] = lows
        self.ticks[i, 1, :len(ticks)] = ticks

    def set_ladder(self, i: int, low: int, high: int, step: int) -> None:
        """Give instrument ``i`` a ladder covering [low, high] (price units) in steps of
        ``step``, keeping every level it already has. The step may only get finer, by a
        divisor of the old one (a price on the old grid stays on the new one)."""
        self.set_ladders([(i, low, high, step)])

    def set_ladders(self, specs) -> None:
        """:meth:`set_ladder` for several instruments, ``(i, low, high, step)`` each, with
        one repack of the arena (a market of thousands of names sets its day's ladders at
        once, not thousands of times over)."""
        ins = self.ins.copy()
        lv = self.lv
        sizes = ins[:, I_N].copy()
        new: dict[int, tuple[int, int]] = {}  # instrument -> (low, step) of its new ladder
        for i, low, high, step in specs:
            i, low, high, step = int(i), int(low), int(high), int(step)
            if step <= 0:
                raise ValueError(f"instrument {i}: ladder step must be positive, got {step}")
            if i in new:
                raise ValueError(f"instrument {i}: two ladders in one call")
            old_n = int(ins[i, I_N])
            old_step = int(ins[i, I_STEP])
            if old_n:
                if old_step % step:
                    raise ValueError(f"instrument {i}: ladder step {old_step} cannot become "
                                     f"{step}")
                old_lo, old_hi = self.ladder_bounds(i)
                low, high = min(low, old_lo), max(high, old_hi)
            low -= low % step
            high += (-high) % step
            sizes[i] = (high - low) // step + 1
            new[i] = (low, step)
        if not new:
            return
        offsets = np.concatenate([[0], np.cumsum(2 * sizes)[:-1]]).astype(np.int64)
        new_lv = np.zeros((int(2 * sizes.sum()), L_COLS), np.int64)
        new_lv[:, L_HEAD] = EMPTY
        new_lv[:, L_TAIL] = EMPTY
        for j in range(len(ins)):
            nj = int(ins[j, I_N])
            if nj == 0:
                continue
            src = int(ins[j, I_OFF])
            new_n = int(sizes[j])
            if j in new:
                low, step = new[j]
                # old slot k sits at price old_base + k*old_step = low + new_k*step
                new_k = (int(ins[j, I_BASE]) - low + np.arange(nj) * int(ins[j, I_STEP])) \
                    // step
            else:
                new_k = np.arange(nj)
            dst = int(offsets[j])
            new_lv[dst + new_k] = lv[src:src + nj]  # bids
            new_lv[dst + new_n + new_k] = lv[src + nj:src + 2 * nj]  # asks
            if j in new:
                for col in (I_BEST_BID, I_BEST_ASK):
                    if ins[j, col] >= 0:
                        ins[j, col] = new_k[ins[j, col]]
        ins[:, I_OFF] = offsets
        ins[:, I_N] = sizes
        for i, (low, step) in new.items():
            ins[i, I_BASE] = low
            ins[i, I_STEP] = step
            ins[i, I_INV_STEP] = round(RECIPROCAL_SCALE / step)
        self._repack(ins=ins, lv=new_lv)

    # -- order pool ---------------------------------------------------------------------------
    def make_room(self) -> None:
        """Room for one more order: double the pool if no row is free; rebuild the id table
        in place if tombstones fill it, or double it if live orders need the space."""
        if self.S[H_FREE_TOP] == 0:
            cap = int(self.S[H_CAP])
            orders = np.zeros((2 * cap, O_COLS), np.int64)
            orders[:cap] = self.orders
            free = np.arange(2 * cap - 1, cap - 1, -1, dtype=np.int64)
            free = np.concatenate([free, np.zeros(cap, np.int64)])
            self._repack(orders=orders, free=free,
                         meta=(cap, int(self.S[H_USED]), self.live_orders))
        if 8 * (self.live_orders + 1) > int(self.S[H_TABN]):
            self._rehash(self.orders, 2 * int(self.S[H_TABN]))
        elif 2 * (int(self.S[H_USED]) + 1) > int(self.S[H_TABN]):
            _rehash_in_place(self.S)

    def _rehash(self, orders: np.ndarray, table_size: int) -> None:
        table = np.full(_pow2(max(table_size, 4)), EMPTY, np.int64)
        used = _rehash(orders, table)
        self._repack(table=table, meta=(int(self.S[H_FREE_TOP]), used, self.live_orders))


@kernel
def _rehash(orders, table):
    used = 0
    mask = table.shape[0] - 1
    for j in range(orders.shape[0]):
        if orders[j, O_LIVE] != 0:
            h = _hash(orders[j, O_ID], orders[j, O_INST], mask)
            while table[h] >= 0:
                h = (h + 1) & mask
            table[h] = j
            orders[j, O_HSLOT] = h
            used += 1
    return used


@kernel
def _rehash_in_place(S):
    """Rebuild the id table where it is, dropping its tombstones, in O(table size). The
    rows it holds are gathered into the unused top of the free stack (allocated rows are
    exactly as many as that space)."""
    tab = S[H_TAB]
    scratch = S[H_FREE] + S[H_FREE_TOP]
    k = 0
    for h in range(S[H_TABN]):
        r = S[tab + h]
        if r >= 0:
            S[scratch + k] = r
            k += 1
        S[tab + h] = EMPTY
    for j in range(k):
        r = S[scratch + j]
        _hash_insert(S, S[oi(S, r, O_ID)], S[oi(S, r, O_INST)], r)
    S[H_USED] = k


# -- arena addressing (one array in, an index out: cheap, inlined by LLVM) ----------------------

@kernel
def ii(S, inst, col):
    """Index of instrument ``inst``'s column ``col``."""
    return S[H_INS] + inst * I_COLS + col


@kernel
def li_(S, li, col):
    """Index of level row ``li``'s column ``col``."""
    return S[H_LV] + li * L_COLS + col


@kernel
def oi(S, row, col):
    """Index of order row ``row``'s column ``col``."""
    return S[H_ORD] + row * O_COLS + col


@kernel
def ri(S, j, col):
    """Index of injected order ``j``'s result column ``col``."""
    return S[H_RES] + j * R_COLS + col


@kernel
def count(S, counter, k):
    S[S[H_CNT] + counter] += k


# -- hash table: (instrument, order_id) -> order row ----------------------------------------

@kernel
def _hash(order_id, inst, mask):
    x = np.uint64(order_id) ^ (np.uint64(inst) * np.uint64(0x9E3779B97F4A7C15))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.int64(x & np.uint64(mask))


@kernel
def _probe(S, order_id, inst):
    """Table slot holding order ``order_id`` of ``inst``, or -1."""
    tab = S[H_TAB]
    mask = S[H_TABN] - 1
    h = _hash(order_id, inst, mask)
    while True:
        r = S[tab + h]
        if r == EMPTY:
            return -1
        if r >= 0 and S[oi(S, r, O_ID)] == order_id and S[oi(S, r, O_INST)] == inst:
            return h
        h = (h + 1) & mask


@kernel
def find_order(S, order_id, inst):
    """Row of order ``order_id`` of instrument ``inst``, or -1."""
    h = _probe(S, order_id, inst)
    return S[S[H_TAB] + h] if h >= 0 else -1


@kernel
def probe_for_add(S, order_id, inst):
    """One walk of the id table for a new order: -1 if the id is already there, else the
    slot to insert it at (the first tombstone or empty slot on its probe path)."""
    tab = S[H_TAB]
    mask = S[H_TABN] - 1
    h = _hash(order_id, inst, mask)
    first_free = -1
    while True:
        r = S[tab + h]
        if r == EMPTY:
            return h if first_free < 0 else first_free
        if r == TOMB:
            if first_free < 0:
                first_free = h
        elif S[oi(S, r, O_ID)] == order_id and S[oi(S, r, O_INST)] == inst:
            return -1
        h = (h + 1) & mask


@kernel
def _hash_insert(S, order_id, inst, row):
    tab = S[H_TAB]
    mask = S[H_TABN] - 1
    h = _hash(order_id, inst, mask)
    while S[tab + h] >= 0:
        h = (h + 1) & mask
    S[tab + h] = row
    S[oi(S, row, O_HSLOT)] = h


# -- ladder arithmetic ------------------------------------------------------------------------

@kernel
def tick_of(S, inst, price):
    """The tick at ``price`` in the instrument's band table (each band's lower bound
    upwards has that band's tick)."""
    base = S[H_TICKS] + inst * 2 * MAX_BANDS
    t = S[base + MAX_BANDS]
    for b in range(MAX_BANDS):
        tb = S[base + MAX_BANDS + b]
        if tb > 0 and price >= S[base + b]:
            t = tb
    return t


@kernel
def ladder_slot(S, inst, price):
    """Ladder slot of ``price``, or -1 outside the ladder or off its grid.

    The slot is estimated with a multiplication by the step's reciprocal (an integer
    division costs tens of cycles here) and then verified in integers: ``k * step`` must
    equal the offset exactly, so a float never decides a price. A failed check falls back
    to integer division."""
    d = price - S[ii(S, inst, I_BASE)]
    if d < 0:
        return -1
    step = S[ii(S, inst, I_STEP)]
    k = np.int64(np.float64(d) * (np.float64(S[ii(S, inst, I_INV_STEP)]) * RECIPROCAL_SCALE_INV)
                 + 0.5)
    if k * step != d:
        k = d // step
        if k * step != d:
            return -1
    if k >= S[ii(S, inst, I_N)]:
        return -1
    return k


@kernel
def level_index(S, inst, side, price):
    """Level row of ``price`` on ``side``, or -1 outside the ladder or off its grid."""
    k = ladder_slot(S, inst, price)
    if k < 0:
        return -1
    return S[ii(S, inst, I_OFF)] + k + (S[ii(S, inst, I_N)] if side == ASK else 0)


@kernel
def level_price(S, inst, k):
    """Price of ladder slot ``k`` (0..n-1)."""
    return S[ii(S, inst, I_BASE)] + k * S[ii(S, inst, I_STEP)]


@kernel
def _slot(S, inst, side, li):
    n = S[ii(S, inst, I_N)]
    return li - S[ii(S, inst, I_OFF)] - (n if side == ASK else 0)


@kernel
def _fix_best(S, inst, side, k):
    """The level at slot ``k`` became empty: if it was the best, walk to the next one."""
    off = S[ii(S, inst, I_OFF)]
    n = S[ii(S, inst, I_N)]
    if side == BID:
        if S[ii(S, inst, I_BEST_BID)] != k:
            return
        j = k - 1
        while j >= 0 and S[li_(S, off + j, L_SIZE)] == 0:
            j -= 1
        S[ii(S, inst, I_BEST_BID)] = j
    else:
        if S[ii(S, inst, I_BEST_ASK)] != k:
            return
        j = k + 1
        while j < n and S[li_(S, off + n + j, L_SIZE)] == 0:
            j += 1
        S[ii(S, inst, I_BEST_ASK)] = j if j < n else -1


# -- level and order primitives ----------------------------------------------------------------

@kernel
def level_add(S, inst, side, li, delta):
    """Change a level's visible size by ``delta`` and keep the best prices right."""
    at = li_(S, li, L_SIZE)
    before = S[at]
    S[at] = before + delta
    if before == 0 and delta > 0:
        k = _slot(S, inst, side, li)
        if side == BID:
            if S[ii(S, inst, I_BEST_BID)] < k:
                S[ii(S, inst, I_BEST_BID)] = k
        else:
            b = S[ii(S, inst, I_BEST_ASK)]
            if b < 0 or k < b:
                S[ii(S, inst, I_BEST_ASK)] = k
    elif before > 0 and before + delta == 0:
        _fix_best(S, inst, side, _slot(S, inst, side, li))


@kernel
def can_alloc(S):
    """Whether an order row is free and the id table has room for it; clears the table's
    tombstones in place when that is enough (the caller grows the arena otherwise)."""
    if S[H_FREE_TOP] == 0:
        return False
    if 2 * (S[H_USED] + 1) > S[H_TABN]:
        if 8 * (S[H_LIVE] + 1) > S[H_TABN]:
            return False
        _rehash_in_place(S)
    return True


@kernel
def alloc_order(S):
    """A free order row, or -1 if the pool (or the hash table's load) is exhausted."""
    if not can_alloc(S):
        return -1
    S[H_FREE_TOP] -= 1
    return S[S[H_FREE] + S[H_FREE_TOP]]


@kernel
def enqueue(S, row, order_id, inst, side, price, size, hist, owner, ts, li, slot=-1):
    """Put a new order at the back of level ``li``; ``slot`` is its id-table slot when the
    caller already probed for it (:func:`probe_for_add`), -1 to find one."""
    S[oi(S, row, O_ID)] = order_id
    S[oi(S, row, O_INST)] = inst
    S[oi(S, row, O_SIDE)] = side
    S[oi(S, row, O_PRICE)] = price
    S[oi(S, row, O_SIZE)] = size
    S[oi(S, row, O_HIST)] = hist
    S[oi(S, row, O_OWNER)] = owner
    S[oi(S, row, O_TS)] = ts
    S[oi(S, row, O_LIVE)] = IN_LEVEL
    if slot < 0:
        _hash_insert(S, order_id, inst, row)
    else:
        S[S[H_TAB] + slot] = row
        S[oi(S, row, O_HSLOT)] = slot
    S[H_USED] += 1
    S[H_LIVE] += 1
    link(S, row, li)


@kernel
def link(S, row, li):
    """Append order ``row`` to the FIFO of level ``li``."""
    S[oi(S, row, O_NEXT)] = -1
    tail = S[li_(S, li, L_TAIL)]
    S[oi(S, row, O_PREV)] = tail
    if tail >= 0:
        S[oi(S, tail, O_NEXT)] = row
    else:
        S[li_(S, li, L_HEAD)] = row
    S[li_(S, li, L_TAIL)] = row
    S[li_(S, li, L_COUNT)] += 1
    if S[oi(S, row, O_OWNER)] >= 0:
        S[li_(S, li, L_INJ)] += 1
    S[oi(S, row, O_LIVE)] = IN_LEVEL
    level_add(S, S[oi(S, row, O_INST)], S[oi(S, row, O_SIDE)], li, S[oi(S, row, O_SIZE)])


@kernel
def unlink(S, row, li):
    """Take order ``row`` out of the FIFO of level ``li`` (its row stays allocated)."""
    p = S[oi(S, row, O_PREV)]
    nx = S[oi(S, row, O_NEXT)]
    if p >= 0:
        S[oi(S, p, O_NEXT)] = nx
    else:
        S[li_(S, li, L_HEAD)] = nx
    if nx >= 0:
        S[oi(S, nx, O_PREV)] = p
    else:
        S[li_(S, li, L_TAIL)] = p
    S[oi(S, row, O_PREV)] = -1
    S[oi(S, row, O_NEXT)] = -1
    S[li_(S, li, L_COUNT)] -= 1
    if S[oi(S, row, O_OWNER)] >= 0:
        S[li_(S, li, L_INJ)] -= 1
    level_add(S, S[oi(S, row, O_INST)], S[oi(S, row, O_SIDE)], li, -S[oi(S, row, O_SIZE)])


@kernel
def requeue(S, row, price):
    """Move queued order ``row`` to ``price`` (on its ladder), at the back of that level's
    queue: a re-priced order loses its time priority (docs/tape.md: ``M``)."""
    inst = S[oi(S, row, O_INST)]
    side = S[oi(S, row, O_SIDE)]
    unlink(S, row, level_index(S, inst, side, S[oi(S, row, O_PRICE)]))
    S[oi(S, row, O_PRICE)] = price
    link(S, row, level_index(S, inst, side, price))


@kernel
def order_fields(S, row):
    """``(order_id, side, price, size)`` of order ``row``."""
    return (S[oi(S, row, O_ID)], S[oi(S, row, O_SIDE)], S[oi(S, row, O_PRICE)],
            S[oi(S, row, O_SIZE)])


@kernel
def last_price(S, inst):
    """The instrument's last trade price (0: none yet)."""
    return S[ii(S, inst, I_LAST)]


@kernel
def best_price(S, inst, side):
    """Price of the best level on ``side``, 0 when that side is empty."""
    k = S[ii(S, inst, I_BEST_BID if side == BID else I_BEST_ASK)]
    return level_price(S, inst, k) if k >= 0 else 0


@kernel
def release(S, row):
    """Forget order ``row``: out of the hash table, back to the free list."""
    S[S[H_TAB] + S[oi(S, row, O_HSLOT)]] = TOMB
    S[oi(S, row, O_LIVE)] = 0
    S[S[H_FREE] + S[H_FREE_TOP]] = row
    S[H_FREE_TOP] += 1
    S[H_LIVE] -= 1


@kernel
def reduce_order(S, row, take):
    """Take ``take`` from a queued order's simulated size; at zero it leaves its level and
    is marked consumed (history may still refer to it)."""
    inst = S[oi(S, row, O_INST)]
    side = S[oi(S, row, O_SIDE)]
    li = level_index(S, inst, side, S[oi(S, row, O_PRICE)])
    if take >= S[oi(S, row, O_SIZE)]:
        unlink(S, row, li)
        S[oi(S, row, O_SIZE)] = 0
        S[oi(S, row, O_LIVE)] = CONSUMED
    else:
        S[oi(S, row, O_SIZE)] -= take
        level_add(S, inst, side, li, -take)


@kernel
def clear_instrument(S, inst):
    """Empty every level of ``inst`` and forget its orders."""
    off = S[ii(S, inst, I_OFF)]
    n = S[ii(S, inst, I_N)]
    for li in range(off, off + 2 * n):
        for c in range(L_COLS):
            S[li_(S, li, c)] = 0
        S[li_(S, li, L_HEAD)] = -1
        S[li_(S, li, L_TAIL)] = -1
    for r in range(S[H_CAP]):
        if S[oi(S, r, O_LIVE)] != 0 and S[oi(S, r, O_INST)] == inst:
            release(S, r)
    S[ii(S, inst, I_BEST_BID)] = -1
    S[ii(S, inst, I_BEST_ASK)] = -1


@kernel
def level_size(S, inst, side, price):
    """The visible size at ``price`` on ``side`` (0 outside the ladder or off its grid)."""
    li = level_index(S, inst, side, price)
    return S[li_(S, li, L_SIZE)] if li >= 0 else 0


@kernel
def order_place(S, order_id, inst):
    """(price, side) of order ``order_id`` of ``inst``, or (-1, -1) if the book has none."""
    row = find_order(S, order_id, inst)
    if row < 0:
        return -1, -1
    return S[oi(S, row, O_PRICE)], S[oi(S, row, O_SIDE)]


@kernel
def snapshot_levels(S, inst, depth, out, col0):
    """Write the top ``depth`` levels of each side as (bid_px, bid_sz, ask_px, ask_sz)
    quadruples into ``out[col0:]``; an empty level is (-1, 0)."""
    off = S[ii(S, inst, I_OFF)]
    n = S[ii(S, inst, I_N)]
    k = S[ii(S, inst, I_BEST_BID)]
    for d in range(depth):
        while k >= 0 and S[li_(S, off + k, L_SIZE)] == 0:
            k -= 1
        if k >= 0:
            out[col0 + 4 * d] = level_price(S, inst, k)
            out[col0 + 4 * d + 1] = S[li_(S, off + k, L_SIZE)]
            k -= 1
        else:
            out[col0 + 4 * d] = -1
            out[col0 + 4 * d + 1] = 0
    k = S[ii(S, inst, I_BEST_ASK)]
    for d in range(depth):
        while 0 <= k < n and S[li_(S, off + n + k, L_SIZE)] == 0:
            k += 1
        if 0 <= k < n:
            out[col0 + 4 * d + 2] = level_price(S, inst, k)
            out[col0 + 4 * d + 3] = S[li_(S, off + n + k, L_SIZE)]
            k += 1
        else:
            out[col0 + 4 * d + 2] = -1
            out[col0 + 4 * d + 3] = 0
