"""The compiled event loop: history and injected orders meet in one book.

``run_chunk`` walks a chunk of tape rows and the injected orders in time order (an
injected order arriving at ``ts`` comes after every tape row at or before ``ts``) and
applies the replay mode's rules (docs/replay-modes.md):

- ``absolute``: history keeps its prices. An order that injected flow consumed is gone:
  later cancels of it are counted no-ops, partial ones are clipped; on L2 a consumption
  ledger lowers later updates of the level until history's own size falls below it.
- ``relative``: later historical prices are shifted by the gap between the simulated and
  the historical last price, snapped to the tick grid: injected impact is permanent.
- ``propagator``: the shift is the injected price moves, each decaying with a power-law
  kernel ``G(t) = (1 + t/tau)^-beta``.
A historical fill on an order the simulation no longer has in full is historical demand:
the missing part is re-applied as an IOC at the (shifted) historical price; what it cannot
take is dropped and counted. The kernel stops early (status != OK) when it needs a wider
ladder, more order rows or output room; the Python front grows them and calls again.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from replay.tape import ADD, CANCEL, CLEAR, DELETE, FILL, MODIFY, TRADE
from venues.book import (
    I_BASE,
    I_BEST_ASK,
    I_BEST_BID,
    I_HIST_LAST,
    I_LAST,
    I_N,
    I_OFF,
    I_STEP,
    L_ANON,
    L_LEDGER,
    L_SIZE,
    NEED_LADDER,
    NEED_ORDERS,
    NEED_OUTPUT,
    O_HIST,
    O_INST,
    O_LIVE,
    O_PRICE,
    O_SIDE,
    O_SIZE,
    OK,
    SIDE_ASK,
    SIDE_BID,
    alloc_order,
    can_alloc,
    clear_instrument,
    enqueue,
    find_order,
    level_add,
    level_index,
    level_price,
    link,
    release,
    unlink,
)
from venues.matching import (
    CANCEL as T_CANCEL,
)
from venues.matching import (
    CONSUMED,
    FOK,
    IN_LEVEL,
    LIMIT,
    MARKET,
    R_FILLED,
    R_NOTIONAL,
    R_RESTING,
    R_STATUS,
    SRC_HIST_CROSS,
    SRC_INJECTED,
    SRC_REAPPLIED,
    ST_CANCELLED,
    ST_FILLED,
    ST_NO_LIQUIDITY,
    ST_PARTIAL,
    ST_REJECTED,
    ST_RESTING,
    available,
    match,
)

ABSOLUTE, RELATIVE, PROPAGATOR, GENERATIVE = 0, 1, 2, 3
MODES = {"absolute": ABSOLUTE, "relative": RELATIVE, "propagator": PROPAGATOR,
         "generative": GENERATIVE}

# Counters (cnt[...]); names in COUNTER_NAMES.
(C_EVENTS, C_UNKNOWN_ORDER, C_CONSUMED_NOOP, C_CLIPPED, C_REAPPLIED, C_REAPPLIED_FILLED,
 C_REAPPLIED_DROPPED, C_DUPLICATE_ADD, C_CROSS_FILLS, C_OFF_GRID, C_SHIFTED, C_INJECTED,
 C_STATUS) = range(13)
COUNTER_NAMES = ("events", "unknown_order", "consumed_noop", "clipped", "reapplied_ioc",
                 "reapplied_filled_qty", "reapplied_dropped_qty", "duplicate_add",
                 "cross_fills", "off_grid", "shifted_events", "injected_orders",
                 "status_events")
N_COUNTERS = 16

# Output counters (nout[...]).
N_FILLS, N_TRADES, N_TOB, N_IMPACT = range(4)
# Trade-print columns.
T_TS, T_INST, T_PRICE, T_SIZE, T_SIDE, T_SOURCE = range(6)
T_COLS = 6
SRC_HISTORY = 0
# Top-of-book columns.
B_TS, B_INST, B_BID_PX, B_BID_SZ, B_ASK_PX, B_ASK_SZ = range(6)
B_COLS = 6
# Injected order columns.
J_TS, J_INST, J_SIDE, J_TYPE, J_PRICE, J_SIZE = range(6)
J_COLS = 6
# Model parameters (par[...]).
P_TAU_NS, P_BETA = 0, 1
INJECTED_ID_BASE = 1 << 62


@njit(cache=True)
def snap(price, tick_lo, tick_sz, inst):
    """Round ``price`` to the nearest price on the instrument's tick grid (a band table:
    from ``tick_lo[inst, b]`` upwards the tick is ``tick_sz[inst, b]``; 0 marks unused)."""
    t = tick_sz[inst, 0]
    for b in range(tick_lo.shape[1]):
        if tick_sz[inst, b] > 0 and price >= tick_lo[inst, b]:
            t = tick_sz[inst, b]
    q = price // t
    r = price - q * t
    if 2 * r >= t:
        q += 1
    return q * t


@njit(cache=True)
def _gap(mode, inst, ts, gap, imp, nout, par):
    """The re-centring gap (price units) for ``inst`` at ``ts``."""
    if mode == RELATIVE:
        return gap[inst]
    if mode != PROPAGATOR:
        return 0.0
    g = 0.0
    tau = par[P_TAU_NS]
    beta = par[P_BETA]
    for j in range(nout[N_IMPACT]):
        if imp[j, 1] == inst and imp[j, 0] <= ts:
            g += imp[j, 2] * (1.0 + (ts - imp[j, 0]) / tau) ** (-beta)
    return g


@njit(cache=True)
def _record_impact(mode, inst, ts, before, after, gap, imp, nout):
    if before <= 0 or after == before:
        return
    if mode == RELATIVE:
        gap[inst] += after - before
    elif mode == PROPAGATOR and nout[N_IMPACT] < imp.shape[0]:
        j = nout[N_IMPACT]
        imp[j, 0] = ts
        imp[j, 1] = inst
        imp[j, 2] = after - before
        nout[N_IMPACT] += 1


@njit(cache=True)
def _reduce(ins, lv, orders, row, take):
    """Take ``take`` from a queued order's simulated size (it leaves its level at zero)."""
    li = level_index(ins, orders[row, O_INST], orders[row, O_SIDE], orders[row, O_PRICE])
    if take >= orders[row, O_SIZE]:
        unlink(ins, lv, orders, row, li)
        orders[row, O_SIZE] = 0
        orders[row, O_LIVE] = CONSUMED
    else:
        orders[row, O_SIZE] -= take
        level_add(ins, lv, orders[row, O_INST], orders[row, O_SIDE], li, -take)


@njit(cache=True)
def _set_level(ins, lv, inst, side, li, hist_size):
    """L2: history says the level now holds ``hist_size``; subtract what injected flow
    consumed there (the ledger), which is forgotten as history's own size falls below it."""
    led = lv[li, L_LEDGER]
    anon = hist_size - led
    if anon < 0:
        anon = 0
    if hist_size < led:
        lv[li, L_LEDGER] = hist_size
    level_add(ins, lv, inst, side, li, anon - lv[li, L_ANON])
    lv[li, L_ANON] = anon


@njit(cache=True)
def _cross_injected(ins, lv, orders, free, meta, table, res, inst, side, price, qty, ts,
                    fills, nout, cnt):
    """A historical order at ``price`` that crosses injected resting orders executes
    against them; returns the quantity it took."""
    opp = ins[inst, I_BEST_ASK] if side == SIDE_BID else ins[inst, I_BEST_BID]
    if opp < 0:
        return 0
    p = level_price(ins, inst, opp)
    if (side == SIDE_BID and p > price) or (side == SIDE_ASK and p < price):
        return 0
    filled, notional, nf = match(ins, lv, orders, free, meta, table, res, inst, side, price,
                                 qty, ts, -1, SRC_HIST_CROSS, True, -1, fills, nout[N_FILLS])
    cnt[C_CROSS_FILLS] += nf - nout[N_FILLS]
    nout[N_FILLS] = nf
    return filled


@njit(cache=True)
def _tob(ins, lv, inst, ts, tob, tob_last, nout):
    """Append a top-of-book row if it changed since the last one written for ``inst``."""
    off = ins[inst, I_OFF]
    n = ins[inst, I_N]
    kb = ins[inst, I_BEST_BID]
    ka = ins[inst, I_BEST_ASK]
    bp = level_price(ins, inst, kb) if kb >= 0 else -1
    bs = lv[off + kb, L_SIZE] if kb >= 0 else 0
    ap = level_price(ins, inst, ka) if ka >= 0 else -1
    az = lv[off + n + ka, L_SIZE] if ka >= 0 else 0
    if (tob_last[inst, 0] == bp and tob_last[inst, 1] == bs and tob_last[inst, 2] == ap
            and tob_last[inst, 3] == az):
        return
    tob_last[inst, 0] = bp
    tob_last[inst, 1] = bs
    tob_last[inst, 2] = ap
    tob_last[inst, 3] = az
    j = nout[N_TOB]
    tob[j, B_TS] = ts
    tob[j, B_INST] = inst
    tob[j, B_BID_PX] = bp
    tob[j, B_BID_SZ] = bs
    tob[j, B_ASK_PX] = ap
    tob[j, B_ASK_SZ] = az
    nout[N_TOB] = j + 1


@njit(cache=True)
def _inject(ins, lv, orders, free, meta, table, res, inj, jl, jbase, mode, gap, imp, par,
            fills, trades, nout, cnt):
    """Execute injected order ``jl`` of this call (global index ``jbase + jl``); returns a
    status code (OK or a NEED_* to retry)."""
    j = jbase + jl
    ts = inj[jl, J_TS]
    inst = inj[jl, J_INST]
    side = inj[jl, J_SIDE]
    typ = inj[jl, J_TYPE]
    price = inj[jl, J_PRICE]
    qty = inj[jl, J_SIZE]
    if typ == T_CANCEL:
        target = price
        row = find_order(orders, table, INJECTED_ID_BASE + target, inst)
        if row >= 0:
            li = level_index(ins, inst, orders[row, O_SIDE], orders[row, O_PRICE])
            unlink(ins, lv, orders, row, li)
            release(orders, free, meta, table, row)
            res[target, R_STATUS] = ST_CANCELLED
            res[target, R_RESTING] = 0
            res[j, R_STATUS] = ST_FILLED
        else:
            res[j, R_STATUS] = ST_REJECTED
        return OK
    if typ != MARKET and level_index(ins, inst, side, price) < 0:
        return NEED_LADDER
    if typ == LIMIT and not can_alloc(meta, table):
        return NEED_ORDERS
    limit = -1 if typ == MARKET else price
    if typ == FOK and available(ins, lv, inst, side, limit) < qty:
        res[j, R_STATUS] = ST_REJECTED
        return OK
    before = ins[inst, I_LAST]
    filled, notional, nf = match(ins, lv, orders, free, meta, table, res, inst, side, limit,
                                 qty, ts, j, SRC_INJECTED, False, -1, fills, nout[N_FILLS])
    _trades_from_fills(fills, nout[N_FILLS], nf, trades, nout)
    nout[N_FILLS] = nf
    cnt[C_INJECTED] += 1
    res[j, R_FILLED] += filled
    res[j, R_NOTIONAL] += notional
    _record_impact(mode, inst, ts, before, ins[inst, I_LAST], gap, imp, nout)
    rest = qty - filled
    if rest == 0:
        res[j, R_STATUS] = ST_FILLED
    elif typ == LIMIT:
        row = alloc_order(orders, free, meta, table)
        if row < 0:
            return NEED_ORDERS  # unreachable after the check above, kept for safety
        li = level_index(ins, inst, side, price)
        enqueue(ins, lv, orders, table, meta, row, INJECTED_ID_BASE + j, inst, side, price,
                rest, 0, j, ts, li)
        res[j, R_STATUS] = ST_RESTING if filled == 0 else ST_PARTIAL
        res[j, R_RESTING] = rest
    elif filled > 0:
        res[j, R_STATUS] = ST_PARTIAL
    else:
        res[j, R_STATUS] = ST_NO_LIQUIDITY
    return OK


@njit(cache=True)
def _trades_from_fills(fills, start, end, trades, nout):
    """One trade print per aggressor and price from fill rows ``start:end``."""
    j = nout[N_TRADES]
    i = start
    while i < end:
        price = fills[i, 3]
        size = 0
        k = i
        while k < end and fills[k, 3] == price and fills[k, 5] == fills[i, 5]:
            size += fills[k, 4]
            k += 1
        trades[j, T_TS] = fills[i, 0]
        trades[j, T_INST] = fills[i, 1]
        trades[j, T_PRICE] = price
        trades[j, T_SIZE] = size
        trades[j, T_SIDE] = fills[i, 2]
        trades[j, T_SOURCE] = fills[i, 8]
        j += 1
        i = k
    nout[N_TRADES] = j


@njit(cache=True, inline="always")
def _room(ins, meta, inst, fills, trades, tob, nout):
    """Whether the output buffers can take the worst case of one more event: every live
    order and every level of the instrument filled once."""
    need = meta[2] + 2 * ins[inst, I_N] + 1
    return (nout[N_FILLS] + need <= fills.shape[0] and nout[N_TRADES] + need <= trades.shape[0]
            and nout[N_TOB] + 1 <= tob.shape[0])


@njit(cache=True)
def run_chunk(ts_a, inst_a, act_a, side_a, px_a, sz_a, oid_a, flg_a, pos,
              inj, jpos, jbase, ins, lv, orders, free, meta, table, res,
              mode, tick_lo, tick_sz, gap, imp, par,
              fills, trades, tob, tob_last, nout, cnt):
    """Process tape rows from ``pos`` and injected orders from ``jpos`` until the chunk ends
    (injected orders later than the chunk's last row wait for the next chunk unless this is
    the last chunk, signalled by ``ts_a`` being empty). Returns (status, pos, jpos)."""
    n = ts_a.shape[0]
    nj = inj.shape[0]
    while pos < n or (n == 0 and jpos < nj):
        # injected orders strictly before this row arrive first
        while jpos < nj and (n == 0 or inj[jpos, J_TS] < ts_a[pos]):
            if not _room(ins, meta, inj[jpos, J_INST], fills, trades, tob, nout):
                return NEED_OUTPUT, pos, jpos
            st = _inject(ins, lv, orders, free, meta, table, res, inj, jpos, jbase, mode, gap,
                         imp, par, fills, trades, nout, cnt)
            if st != OK:
                return st, pos, jpos
            _tob(ins, lv, inj[jpos, J_INST], inj[jpos, J_TS], tob, tob_last, nout)
            jpos += 1
        if n == 0:
            break
        if not _room(ins, meta, inst_a[pos], fills, trades, tob, nout):
            return NEED_OUTPUT, pos, jpos
        st = _apply(ts_a[pos], inst_a[pos], act_a[pos], side_a[pos], px_a[pos], sz_a[pos],
                    oid_a[pos], ins, lv, orders, free, meta, table, res, mode, tick_lo, tick_sz,
                    gap, imp, par, fills, trades, nout, cnt)
        if st != OK:
            return st, pos, jpos
        if flg_a[pos] & 128:
            _tob(ins, lv, inst_a[pos], ts_a[pos], tob, tob_last, nout)
        pos += 1
    return OK, pos, jpos


@njit(cache=True)
def _apply(ts, inst, act, side, price, size, oid, ins, lv, orders, free, meta, table, res,
           mode, tick_lo, tick_sz, gap, imp, par, fills, trades, nout, cnt):
    """Apply one historical row under the mode's rules."""
    shift = 0
    if mode == RELATIVE or mode == PROPAGATOR:
        if act == ADD or act == MODIFY or act == FILL or act == TRADE or (
                oid == 0 and (act == CANCEL or act == DELETE)):
            g = _gap(mode, inst, ts, gap, imp, nout, par)
            if g != 0.0:
                shifted = snap(price + np.int64(np.round(g)), tick_lo, tick_sz, inst)
                shift = shifted - price
                if shift != 0:
                    cnt[C_SHIFTED] += 1
    p = price + shift
    if act == TRADE:
        ins[inst, I_HIST_LAST] = price
        ins[inst, I_LAST] = p
        j = nout[N_TRADES]
        trades[j, T_TS] = ts
        trades[j, T_INST] = inst
        trades[j, T_PRICE] = p
        trades[j, T_SIZE] = size
        trades[j, T_SIDE] = side
        trades[j, T_SOURCE] = SRC_HISTORY
        nout[N_TRADES] = j + 1
        cnt[C_EVENTS] += 1
        return OK
    if act == CLEAR:
        clear_instrument(ins, lv, orders, free, meta, table, inst)
        cnt[C_EVENTS] += 1
        return OK
    if act != ADD and act != CANCEL and act != DELETE and act != MODIFY and act != FILL:
        cnt[C_STATUS] += 1
        cnt[C_EVENTS] += 1
        return OK
    if oid == 0:
        # L2 level update
        if act == FILL:
            cnt[C_EVENTS] += 1
            return OK
        li = level_index(ins, inst, side, p)
        if li < 0:
            if (p - ins[inst, I_BASE]) % ins[inst, I_STEP] != 0:
                cnt[C_OFF_GRID] += 1
                cnt[C_EVENTS] += 1
                return OK
            if act == DELETE or (act == CANCEL):
                cnt[C_EVENTS] += 1
                return OK  # nothing there to remove
            return NEED_LADDER
        if act == DELETE:
            _set_level(ins, lv, inst, side, li, 0)
        elif act == CANCEL:
            _set_level(ins, lv, inst, side, li, max(lv[li, L_ANON] + lv[li, L_LEDGER] - size, 0))
        else:
            _set_level(ins, lv, inst, side, li, size)
        cnt[C_EVENTS] += 1
        return OK
    # L3
    row = find_order(orders, table, oid, inst)
    if act == ADD:
        if row >= 0:
            cnt[C_DUPLICATE_ADD] += 1
            cnt[C_EVENTS] += 1
            return OK
        li = level_index(ins, inst, side, p)
        if li < 0:
            if (p - ins[inst, I_BASE]) % ins[inst, I_STEP] != 0:
                cnt[C_OFF_GRID] += 1
                cnt[C_EVENTS] += 1
                return OK
            return NEED_LADDER
        row = alloc_order(orders, free, meta, table)
        if row < 0:
            return NEED_ORDERS
        start = nout[N_FILLS]
        took = _cross_injected(ins, lv, orders, free, meta, table, res, inst, side, p, size, ts,
                               fills, nout, cnt)
        _trades_from_fills(fills, start, nout[N_FILLS], trades, nout)
        enqueue(ins, lv, orders, table, meta, row, oid, inst, side, p, size - took, size, -1,
                ts, li)
        if size - took == 0:
            unlink(ins, lv, orders, row, li)
            orders[row, O_LIVE] = CONSUMED
        cnt[C_EVENTS] += 1
        return OK
    if row < 0:
        cnt[C_UNKNOWN_ORDER] += 1
        cnt[C_EVENTS] += 1
        return OK
    if act == CANCEL or act == DELETE:
        take = size if act == CANCEL else orders[row, O_HIST]
        if take > orders[row, O_HIST]:
            take = orders[row, O_HIST]
        cur = orders[row, O_SIZE]
        if orders[row, O_LIVE] == IN_LEVEL:
            if act == DELETE or take >= cur:
                if take > cur:
                    cnt[C_CLIPPED] += 1
                _reduce(ins, lv, orders, row, cur)
            else:
                _reduce(ins, lv, orders, row, take)
        else:
            cnt[C_CONSUMED_NOOP] += 1
        orders[row, O_HIST] -= take
        if act == DELETE or orders[row, O_HIST] == 0:
            if orders[row, O_LIVE] == IN_LEVEL:
                _reduce(ins, lv, orders, row, orders[row, O_SIZE])
            release(orders, free, meta, table, row)
        cnt[C_EVENTS] += 1
        return OK
    if act == MODIFY:
        consumed = orders[row, O_HIST] - orders[row, O_SIZE]
        new_size = size - consumed
        if new_size < 0:
            new_size = 0
        li_new = level_index(ins, inst, side, p)
        if li_new < 0:
            if (p - ins[inst, I_BASE]) % ins[inst, I_STEP] != 0:
                cnt[C_OFF_GRID] += 1
                cnt[C_EVENTS] += 1
                return OK
            return NEED_LADDER
        keeps_priority = (p == orders[row, O_PRICE] and new_size <= orders[row, O_SIZE]
                          and orders[row, O_LIVE] == IN_LEVEL)
        if keeps_priority:
            if new_size == 0:
                _reduce(ins, lv, orders, row, orders[row, O_SIZE])
            else:
                _reduce(ins, lv, orders, row, orders[row, O_SIZE] - new_size)
        else:
            if orders[row, O_LIVE] == IN_LEVEL:
                _reduce(ins, lv, orders, row, orders[row, O_SIZE])
            orders[row, O_PRICE] = p
            orders[row, O_SIDE] = side
            took = 0
            if new_size > 0:
                start = nout[N_FILLS]
                took = _cross_injected(ins, lv, orders, free, meta, table, res, inst, side, p,
                                       new_size, ts, fills, nout, cnt)
                _trades_from_fills(fills, start, nout[N_FILLS], trades, nout)
            orders[row, O_SIZE] = new_size - took
            if new_size - took > 0:
                orders[row, O_LIVE] = IN_LEVEL
                link(ins, lv, orders, row, li_new)
            else:
                orders[row, O_LIVE] = CONSUMED
        orders[row, O_HIST] = size
        if size == 0:
            release(orders, free, meta, table, row)
        cnt[C_EVENTS] += 1
        return OK
    # FILL: history executed ``size`` of this resting order at ``price``.
    have = orders[row, O_SIZE]
    ins[inst, I_HIST_LAST] = price
    if have > 0:
        ins[inst, I_LAST] = orders[row, O_PRICE]
    if have < size:
        deficit = size - have
        cnt[C_REAPPLIED] += 1
        aggressor = SIDE_ASK if orders[row, O_SIDE] == SIDE_BID else SIDE_BID
        start = nout[N_FILLS]
        filled, notional, nf = match(ins, lv, orders, free, meta, table, res, inst, aggressor,
                                     p, deficit, ts, -1, SRC_REAPPLIED, False, row, fills,
                                     nout[N_FILLS])
        nout[N_FILLS] = nf
        _trades_from_fills(fills, start, nf, trades, nout)
        cnt[C_REAPPLIED_FILLED] += filled
        cnt[C_REAPPLIED_DROPPED] += deficit - filled
    cnt[C_EVENTS] += 1
    return OK
