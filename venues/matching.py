"""Matching: an aggressive order walks the opposite side in price-time priority.

At each level the anonymous (L2) quantity is taken first, then the queued orders in time
order. Every execution is written as a fill row; an injected resting order that is filled
completely leaves the book, a historical one stays tracked (``O_LIVE == CONSUMED``) so the
tape's later events on it are clipped instead of applied twice (DESIGN.md: replay modes).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from venues.book import (
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
    SIDE_ASK,
    SIDE_BID,
    level_add,
    level_price,
    release,
    unlink,
)

# Order types of injected orders.
MARKET, LIMIT, IOC, FOK, CANCEL = 0, 1, 2, 3, 4
ORDER_TYPES = {"market": MARKET, "limit": LIMIT, "ioc": IOC, "fok": FOK, "cancel": CANCEL}

IN_LEVEL = 1
CONSUMED = 2  # a historical order the simulation emptied; history has not removed it yet

# Fill columns.
F_TS, F_INST, F_SIDE, F_PRICE, F_SIZE, F_TAKER, F_MAKER, F_MAKER_OID, F_SOURCE = range(9)
F_COLS = 9
# Who was the aggressor (F_SOURCE).
SRC_INJECTED = 1  # an injected order (broker, strategy)
SRC_REAPPLIED = 2  # historical demand re-applied as an IOC
SRC_HIST_CROSS = 3  # a historical order crossing injected resting orders

# Injected-order result columns.
R_FILLED, R_NOTIONAL, R_STATUS, R_RESTING = range(4)
R_COLS = 4
ST_PENDING, ST_FILLED, ST_PARTIAL, ST_RESTING, ST_REJECTED, ST_CANCELLED, ST_NO_LIQUIDITY = range(7)


@njit(cache=True, inline="always")
def _crosses(side, limit, price):
    if limit < 0:
        return True  # market order
    if side == SIDE_BID:
        return price <= limit
    return price >= limit


@njit(cache=True)
def available(ins, lv, inst, side, limit):
    """Quantity an aggressive order on ``side`` could take up to ``limit`` (-1: no limit)."""
    off = ins[inst, I_OFF]
    n = ins[inst, I_N]
    total = 0
    if side == SIDE_BID:
        k = ins[inst, I_BEST_ASK]
        while 0 <= k < n and _crosses(side, limit, level_price(ins, inst, k)):
            total += lv[off + n + k, L_SIZE]
            k += 1
    else:
        k = ins[inst, I_BEST_BID]
        while k >= 0 and _crosses(side, limit, level_price(ins, inst, k)):
            total += lv[off + k, L_SIZE]
            k -= 1
    return total


@njit(cache=True)
def match(ins, lv, orders, free, meta, table, res, inst, side, limit, qty, ts, taker, source,
          only_injected, exclude_row, fills, nfill):
    """Execute up to ``qty`` for an aggressor on ``side`` with price bound ``limit`` (-1 for
    a market order). ``only_injected`` restricts the walk to injected resting orders (a
    historical order crossing them); ``exclude_row`` is skipped (the order whose own fill is
    being re-applied). Returns (filled, notional, fills written so far)."""
    off = ins[inst, I_OFF]
    n = ins[inst, I_N]
    filled = 0
    notional = 0
    if side == SIDE_BID:
        k = ins[inst, I_BEST_ASK]
        base = off + n
    else:
        k = ins[inst, I_BEST_BID]
        base = off
    while qty > 0 and 0 <= k < n:
        li = base + k
        price = level_price(ins, inst, k)
        if not _crosses(side, limit, price):
            break
        if lv[li, L_SIZE] > 0 and not (only_injected and lv[li, L_INJ] == 0):
            # anonymous L2 quantity first: it was there before any injected order
            if not only_injected and lv[li, L_ANON] > 0:
                take = min(qty, lv[li, L_ANON])
                lv[li, L_ANON] -= take
                lv[li, L_LEDGER] += take
                level_add(ins, lv, inst, SIDE_ASK if side == SIDE_BID else SIDE_BID, li, -take)
                nfill = _fill(fills, nfill, ts, inst, side, price, take, taker, -1, 0, source)
                qty -= take
                filled += take
                notional += take * price
            r = lv[li, L_HEAD]
            while qty > 0 and r >= 0:
                nx = orders[r, O_NEXT]
                owner = orders[r, O_OWNER]
                if r != exclude_row and not (only_injected and owner < 0):
                    take = min(qty, orders[r, O_SIZE])
                    nfill = _fill(fills, nfill, ts, inst, side, price, take, taker, owner,
                                  orders[r, O_ID], source)
                    qty -= take
                    filled += take
                    notional += take * price
                    if owner >= 0:
                        res[owner, R_FILLED] += take
                        res[owner, R_NOTIONAL] += take * price
                    if take == orders[r, O_SIZE]:
                        unlink(ins, lv, orders, r, li)
                        orders[r, O_SIZE] = 0
                        if owner >= 0:
                            res[owner, R_STATUS] = ST_FILLED
                            res[owner, R_RESTING] = 0
                            release(orders, free, meta, table, r)
                        elif orders[r, O_HIST] > 0:
                            orders[r, O_LIVE] = CONSUMED
                        else:
                            release(orders, free, meta, table, r)
                    else:
                        orders[r, O_SIZE] -= take
                        level_add(ins, lv, inst, orders[r, O_SIDE], li, -take)
                        if owner >= 0:
                            res[owner, R_STATUS] = ST_PARTIAL
                            res[owner, R_RESTING] = orders[r, O_SIZE]
                r = nx
        k = k + 1 if side == SIDE_BID else k - 1
    if filled > 0:
        ins[inst, I_LAST] = fills[nfill - 1, 3]
    return filled, notional, nfill


@njit(cache=True, inline="always")
def _fill(fills, nfill, ts, inst, side, price, size, taker, maker, maker_oid, source):
    fills[nfill, F_TS] = ts
    fills[nfill, F_INST] = inst
    fills[nfill, F_SIDE] = side
    fills[nfill, F_PRICE] = price
    fills[nfill, F_SIZE] = size
    fills[nfill, F_TAKER] = taker
    fills[nfill, F_MAKER] = maker
    fills[nfill, F_MAKER_OID] = maker_oid
    fills[nfill, F_SOURCE] = source
    return nfill + 1


def fill_capacity_needed(meta: np.ndarray, n_levels: int) -> int:
    """An upper bound on the fills one aggressive order can write."""
    return int(meta[2]) + 2 * n_levels + 1
