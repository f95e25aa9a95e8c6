"""Matching: an aggressive order walks the opposite side in price-time priority.

At each level the anonymous (L2) quantity is taken first, then the queued orders in time
order. Every execution is written as a fill row; an injected resting order that is filled
completely leaves the book, a historical one stays tracked (``CONSUMED``) so the tape's
later events on it are clipped instead of applied twice (docs/replay-modes.md).

Reports (fills, trade prints, top-of-book rows) go to one int64 array, the ``OUT`` arena:
a header of offsets, capacities and counts, then one block per table.
"""

from __future__ import annotations

import numpy as np

from venues.book import (
    CONSUMED,
    H_LIVE,
    H_NLV,
    I_BEST_ASK,
    I_BEST_BID,
    I_LAST,
    I_N,
    I_OFF,
    L_ANON,
    L_HEAD,
    L_INJ,
    L_LEDGER,
    L_SIZE,
    O_HIST,
    O_ID,
    O_LIVE,
    O_NEXT,
    O_OWNER,
    O_SIDE,
    O_SIZE,
    R_FILLED,
    R_NOTIONAL,
    R_RESTING,
    R_STATUS,
    ii,
    level_add,
    level_price,
    li_,
    oi,
    release,
    ri,
    unlink,
)
from venues.codes import (
    ASK,
    BID,
    ST_FILLED,
    ST_PARTIAL,
)
from venues.kernel import kernel

# Injected-order columns (the matrix the loop takes). J_FLAGS: venues.rules.J_PROGRAM.
# J_ID: the order's result row (orders can be added during a run, so it is not its
# position). J_GEN: a forced order's cascade generation, -1 for any other order.
J_TS, J_INST, J_SIDE, J_TYPE, J_PRICE, J_SIZE, J_FLAGS, J_ID, J_GEN = range(9)
J_COLS = 9

# Fill (execution) columns; E_SOURCE and T_SOURCE hold a venues.codes SRC_* code.
E_TS, E_INST, E_SIDE, E_PRICE, E_SIZE, E_TAKER, E_MAKER, E_MAKER_OID, E_SOURCE = range(9)
E_COLS = 9
# Trade-print columns.
T_TS, T_INST, T_PRICE, T_SIZE, T_SIDE, T_SOURCE = range(6)
T_COLS = 6
# Top-of-book columns.
B_TS, B_INST, B_BID_PX, B_BID_SZ, B_ASK_PX, B_ASK_SZ = range(6)
B_COLS = 6

# OUT arena header: (offset, capacity, count) per table.
FILLS, TRADES, TOB = 0, 3, 6
OUT_HEADER = 16


class Reports:
    """The OUT arena: preallocated fills, trade prints and top-of-book rows."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        widths = {FILLS: E_COLS, TRADES: T_COLS, TOB: B_COLS}
        self.OUT = np.zeros(OUT_HEADER + rows * sum(widths.values()), np.int64)
        off = OUT_HEADER
        for table, width in widths.items():
            self.OUT[table], self.OUT[table + 1] = off, rows
            off += rows * width
        self._widths = widths

    def view(self, table: int) -> np.ndarray:
        off, n = int(self.OUT[table]), int(self.OUT[table + 2])
        w = self._widths[table]
        return self.OUT[off:off + n * w].reshape(n, w)

    def take(self, table: int) -> np.ndarray:
        """Copy out the rows written to ``table`` and empty it."""
        rows = self.view(table).copy()
        self.OUT[table + 2] = 0
        return rows

    def count(self, table: int) -> int:
        return int(self.OUT[table + 2])


@kernel
def fi(OUT, row, col):
    return OUT[FILLS] + row * E_COLS + col


@kernel
def ti(OUT, row, col):
    return OUT[TRADES] + row * T_COLS + col


@kernel
def bi(OUT, row, col):
    return OUT[TOB] + row * B_COLS + col


@kernel
def room(S, OUT):
    """Whether the reports can take the worst case of one more event: every live order and
    every level filled once."""
    need = S[H_LIVE] + S[H_NLV] + 1
    return (OUT[FILLS + 2] + need <= OUT[FILLS + 1] and OUT[TRADES + 2] + need <= OUT[TRADES + 1]
            and OUT[TOB + 2] + 1 <= OUT[TOB + 1])


def rows_needed(S: np.ndarray) -> int:
    """Report rows that always leave room for one event (see :func:`room`)."""
    return int(S[H_LIVE] + S[H_NLV] + 1)


@kernel
def _crosses(side, limit, price):
    if limit < 0:
        return True  # market order
    if side == BID:
        return price <= limit
    return price >= limit


@kernel
def available(S, inst, side, limit):
    """Quantity an aggressive order on ``side`` could take up to ``limit`` (-1: no limit)."""
    off = S[ii(S, inst, I_OFF)]
    n = S[ii(S, inst, I_N)]
    total = 0
    if side == BID:
        k = S[ii(S, inst, I_BEST_ASK)]
        while 0 <= k < n and _crosses(side, limit, level_price(S, inst, k)):
            total += S[li_(S, off + n + k, L_SIZE)]
            k += 1
    else:
        k = S[ii(S, inst, I_BEST_BID)]
        while k >= 0 and _crosses(side, limit, level_price(S, inst, k)):
            total += S[li_(S, off + k, L_SIZE)]
            k -= 1
    return total


@kernel
def _fill(OUT, ts, inst, side, price, size, taker, maker, maker_oid, source):
    j = OUT[FILLS + 2]
    OUT[fi(OUT, j, E_TS)] = ts
    OUT[fi(OUT, j, E_INST)] = inst
    OUT[fi(OUT, j, E_SIDE)] = side
    OUT[fi(OUT, j, E_PRICE)] = price
    OUT[fi(OUT, j, E_SIZE)] = size
    OUT[fi(OUT, j, E_TAKER)] = taker
    OUT[fi(OUT, j, E_MAKER)] = maker
    OUT[fi(OUT, j, E_MAKER_OID)] = maker_oid
    OUT[fi(OUT, j, E_SOURCE)] = source
    OUT[FILLS + 2] = j + 1


@kernel
def fill_count(OUT):
    """Fill rows written since the table was last emptied."""
    return OUT[FILLS + 2]


@kernel
def fill_at(OUT, j):
    """``(price, size, maker order id)`` of fill row ``j``."""
    return OUT[fi(OUT, j, E_PRICE)], OUT[fi(OUT, j, E_SIZE)], OUT[fi(OUT, j, E_MAKER_OID)]


@kernel
def clear_fills(OUT):
    """Empty the fills table (a client that has read its rows)."""
    OUT[FILLS + 2] = 0


@kernel
def print_trade(OUT, ts, inst, price, size, side, source):
    j = OUT[TRADES + 2]
    OUT[ti(OUT, j, T_TS)] = ts
    OUT[ti(OUT, j, T_INST)] = inst
    OUT[ti(OUT, j, T_PRICE)] = price
    OUT[ti(OUT, j, T_SIZE)] = size
    OUT[ti(OUT, j, T_SIDE)] = side
    OUT[ti(OUT, j, T_SOURCE)] = source
    OUT[TRADES + 2] = j + 1


@kernel
def prints_from_fills(OUT, start):
    """One trade print per aggressor and price for the fill rows written since ``start``."""
    end = OUT[FILLS + 2]
    i = start
    while i < end:
        price = OUT[fi(OUT, i, E_PRICE)]
        taker = OUT[fi(OUT, i, E_TAKER)]
        size = 0
        k = i
        while k < end and OUT[fi(OUT, k, E_PRICE)] == price and OUT[fi(OUT, k, E_TAKER)] == taker:
            size += OUT[fi(OUT, k, E_SIZE)]
            k += 1
        print_trade(OUT, OUT[fi(OUT, i, E_TS)], OUT[fi(OUT, i, E_INST)], price, size,
                    OUT[fi(OUT, i, E_SIDE)], OUT[fi(OUT, i, E_SOURCE)])
        i = k


@kernel
def match(S, OUT, inst, side, limit, qty, ts, taker, source, only_injected, exclude_row):
    """Execute up to ``qty`` for an aggressor on ``side`` with price bound ``limit`` (-1 for
    a market order). ``only_injected`` restricts the walk to injected resting orders (a
    historical order crossing them); ``exclude_row`` is skipped (the order whose own fill is
    being re-applied). Writes fills; returns (filled, notional)."""
    off = S[ii(S, inst, I_OFF)]
    n = S[ii(S, inst, I_N)]
    maker_side = ASK if side == BID else BID
    filled = 0
    notional = 0
    last = -1
    if side == BID:
        k = S[ii(S, inst, I_BEST_ASK)]
        base = off + n
    else:
        k = S[ii(S, inst, I_BEST_BID)]
        base = off
    while qty > 0 and 0 <= k < n:
        li = base + k
        price = level_price(S, inst, k)
        if not _crosses(side, limit, price):
            break
        if S[li_(S, li, L_SIZE)] > 0 and not (only_injected and S[li_(S, li, L_INJ)] == 0):
            # anonymous L2 quantity first: it was there before any injected order
            anon = S[li_(S, li, L_ANON)]
            if not only_injected and anon > 0:
                take = min(qty, anon)
                S[li_(S, li, L_ANON)] = anon - take
                S[li_(S, li, L_LEDGER)] += take
                level_add(S, inst, maker_side, li, -take)
                _fill(OUT, ts, inst, side, price, take, taker, -1, 0, source)
                qty -= take
                filled += take
                notional += take * price
                last = price
            r = S[li_(S, li, L_HEAD)]
            while qty > 0 and r >= 0:
                nx = S[oi(S, r, O_NEXT)]
                owner = S[oi(S, r, O_OWNER)]
                if r != exclude_row and not (only_injected and owner < 0):
                    size = S[oi(S, r, O_SIZE)]
                    take = min(qty, size)
                    _fill(OUT, ts, inst, side, price, take, taker, owner, S[oi(S, r, O_ID)],
                          source)
                    qty -= take
                    filled += take
                    notional += take * price
                    last = price
                    if owner >= 0:
                        S[ri(S, owner, R_FILLED)] += take
                        S[ri(S, owner, R_NOTIONAL)] += take * price
                    if take == size:
                        unlink(S, r, li)
                        S[oi(S, r, O_SIZE)] = 0
                        if owner >= 0:
                            S[ri(S, owner, R_STATUS)] = ST_FILLED
                            S[ri(S, owner, R_RESTING)] = 0
                            release(S, r)
                        elif S[oi(S, r, O_HIST)] > 0:
                            S[oi(S, r, O_LIVE)] = CONSUMED
                        else:
                            release(S, r)
                    else:
                        S[oi(S, r, O_SIZE)] = size - take
                        level_add(S, inst, S[oi(S, r, O_SIDE)], li, -take)
                        if owner >= 0:
                            S[ri(S, owner, R_STATUS)] = ST_PARTIAL
                            S[ri(S, owner, R_RESTING)] = size - take
                r = nx
        k = k + 1 if side == BID else k - 1
    if filled > 0:
        S[ii(S, inst, I_LAST)] = last
    return filled, notional
