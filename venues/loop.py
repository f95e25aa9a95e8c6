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

A historical order that crosses the opposite side executes on arrival (against injected
orders only at the generic venue in absolute mode, where a crossed tape stays crossed; against
the whole book at the KRX venue and in the re-centring modes, so continuous trading never
shows a crossed or locked book).

A historical fill on an order the simulation no longer has in full is historical demand:
the missing part is re-applied as an IOC at the (shifted) historical price; what it cannot
take is dropped and counted. The kernel stops early (status != OK) when it needs a wider
ladder, more order rows or report room; the Python front grows them and calls again.

State travels in three arrays: ``S`` (the book's int64 arena, :mod:`venues.book`), ``F``
(float64: the re-centring gap and the impact history) and ``OUT`` (the reports).
"""

from __future__ import annotations

import numpy as np

from venues.book import (
    BOOK_HEADER,
    CONSUMED,
    H_CNT,
    H_TOB_LAST,
    I_BASE,
    I_BEST_ASK,
    I_BEST_BID,
    I_COLS,
    I_HIST_LAST,
    I_LAST,
    I_N,
    I_OFF,
    I_STEP,
    IN_LEVEL,
    L_ANON,
    L_LEDGER,
    L_SIZE,
    NEED_LADDER,
    NEED_ORDERS,
    NEED_OUTPUT,
    O_HIST,
    O_LIVE,
    O_PRICE,
    O_SIDE,
    O_SIZE,
    OK,
    PAUSE,
    R_FILLED,
    R_NOTIONAL,
    R_REASON,
    R_RESTING,
    R_STATUS,
    VENUE_EVENT,
    WAKE,
    alloc_order,
    can_alloc,
    clear_instrument,
    count,
    enqueue,
    find_order,
    ii,
    level_add,
    level_index,
    level_price,
    li_,
    link,
    oi,
    probe_for_add,
    reduce_order,
    register_columns,
    release,
    ri,
    tick_of,
    unlink,
)
from venues.codes import (
    ADD,
    ASK,
    BID,
    CANCEL,
    CLEAR,
    DELETE,
    F_AUCTION,
    F_LAST,
    FILL,
    FOK,
    LIMIT,
    MARKET,
    MODIFY,
    RJ_FOK,
    RJ_NONE,
    RJ_OFF_GRID,
    RJ_UNKNOWN_ORDER,
    SRC_HIST_CROSS,
    SRC_HISTORY,
    SRC_INJECTED,
    SRC_REAPPLIED,
    ST_CANCELLED,
    ST_FILLED,
    ST_NO_LIQUIDITY,
    ST_PARTIAL,
    ST_REJECTED,
    ST_RESTING,
    TRADE,
)
from venues.codes import (
    CANCEL_ORDER as T_CANCEL,
)
from venues.kernel import kernel
from venues.matching import (
    B_ASK_PX,
    B_ASK_SZ,
    B_BID_PX,
    B_BID_SZ,
    B_INST,
    B_TS,
    FILLS,
    J_FLAGS,
    J_GEN,
    J_ID,
    J_INST,
    J_PRICE,
    J_SIDE,
    J_SIZE,
    J_TS,
    J_TYPE,
    TOB,
    TRADES,
    available,
    bi,
    match,
    print_trade,
    prints_from_fills,
    room,
)
from venues.rules import (
    H_EV_KIND,
    H_RULES,
    I_LO_LIM,
    I_UP_LIM,
    RULE_MARKET_WATCH,
    RULE_SESSION,
    RULE_WHOLE_BOOK_CROSS,
    VENUE_COLS_END,
    VENUE_HEADER_END,
    accepts_history,
    beyond,
    bounded,
    check_order,
    market_price,
    market_watch,
    matching_allowed,
    trigger_vi,
    vi_check,
    vi_stops,
)

ABSOLUTE, RELATIVE, PROPAGATOR, GENERATIVE = 0, 1, 2, 3
MODES = {"absolute": ABSOLUTE, "relative": RELATIVE, "propagator": PROPAGATOR,
         "generative": GENERATIVE}

# Counters (S's counter block); names in COUNTER_NAMES.
(C_EVENTS, C_UNKNOWN_ORDER, C_CONSUMED_NOOP, C_CLIPPED, C_REAPPLIED, C_REAPPLIED_FILLED,
 C_REAPPLIED_DROPPED, C_DUPLICATE_ADD, C_CROSS_FILLS, C_OFF_GRID, C_SHIFTED, C_INJECTED,
 C_STATUS, C_AUCTION_ROWS, C_OUTSIDE_LIMITS, C_PHASE_DROPPED, C_AUCTION_SUPPRESSED,
 C_REJECTED, C_HIST_CROSS_ORDERS, C_HIST_CROSS_QTY) = range(20)
COUNTER_NAMES = ("events", "unknown_order", "consumed_noop", "clipped", "reapplied_ioc",
                 "reapplied_filled_qty", "reapplied_dropped_qty", "duplicate_add",
                 "cross_fills", "off_grid", "shifted_events", "injected_orders",
                 "status_events", "history_auction_rows_replaced", "outside_limits",
                 "dropped_closed_or_halted", "history_executions_in_auction",
                 "injected_rejected", "history_crossing_executed",
                 "history_crossing_qty")

NEVER = np.iinfo(np.int64).max  # ``until`` when no venue asks the loop to stop

# -- the loop's block of the arena: the participants' wake slots -------------------------------
# Per instrument: the loop stops (WAKE) when the last price falls to I_WAKE_BELOW or below
# (-1: nothing to watch; the driver keeps the highest of its participants' thresholds, the
# first a falling price meets), or after an event that printed a trade while I_WAKE_PRINT is
# set. I_LAST_GEN is 1 + the cascade generation of the forced order that set the last price
# (0: the tape or any other order).
I_WAKE_BELOW, I_LAST_GEN, I_WAKE_PRINT = range(VENUE_COLS_END, VENUE_COLS_END + 3)
# Header: the instrument and time of the event after which the loop woke, and how many rows
# of the trade table had been seen at the last wake (the print condition is new rows).
H_WAKE_INST, H_WAKE_TS, H_PRINTS_SEEN = range(VENUE_HEADER_END, VENUE_HEADER_END + 3)
assert I_WAKE_PRINT < I_COLS and H_PRINTS_SEEN < BOOK_HEADER + 31
register_columns("event loop", wake_below=I_WAKE_BELOW, last_generation=I_LAST_GEN,
                 wake_on_print=I_WAKE_PRINT)


def wake_event(S) -> tuple[int, int]:
    """The instrument and time of the event after which the loop stopped with WAKE."""
    return int(S[H_WAKE_INST]), int(S[H_WAKE_TS])


def set_prints_seen(S, n: int) -> None:
    """Every participant has seen the first ``n`` rows of the trade table."""
    S[H_PRINTS_SEEN] = n


def init_slots(S, ins) -> None:
    """The wake slots before any participant sets them: nothing watched."""
    ins[:, I_WAKE_BELOW] = -1
    ins[:, I_WAKE_PRINT] = 0
    S[H_WAKE_INST] = -1
    S[H_WAKE_TS] = S[H_PRINTS_SEEN] = 0
INJECTED_ID_BASE = 1 << 62

# F (float arena): header, then the gap per instrument, then impact rows (ts, inst, dp).
FS_TAU_NS, FS_BETA, FS_NIMP, FS_IMP_CAP, FS_NINS = range(5)
FS_HEADER = 8


def float_state(n_instruments: int, tau_ns: float, beta: float,
                impact_rows: int = 4096) -> np.ndarray:
    F = np.zeros(FS_HEADER + n_instruments + 3 * impact_rows, np.float64)
    F[FS_TAU_NS], F[FS_BETA] = tau_ns, beta
    F[FS_IMP_CAP], F[FS_NINS] = impact_rows, n_instruments
    return F


def shift_reach(F: np.ndarray, inst: int) -> int:
    """The most the re-centring can shift ``inst``'s prices (price units): its relative gap
    plus every recorded propagator impact, undecayed. A ladder this much wider than the tape's
    prices holds every shifted price."""
    n = int(F[FS_NINS])
    imp = F[FS_HEADER + n:FS_HEADER + n + 3 * int(F[FS_NIMP])].reshape(-1, 3)
    return int(abs(round(F[FS_HEADER + inst]))) + int(np.abs(imp[imp[:, 1] == inst, 2]).sum())


@kernel
def snap(S, inst, price):
    """Round ``price`` to the nearest price on the instrument's tick grid (its band table:
    from each band's lower bound upwards, that band's tick)."""
    t = tick_of(S, inst, price)
    q = price // t
    r = price - q * t
    if 2 * r >= t:
        q += 1
    return q * t


@kernel
def _gap(F, mode, inst, ts):
    """The re-centring gap (price units) for ``inst`` at ``ts``."""
    if mode == RELATIVE:
        return F[FS_HEADER + inst]
    if mode != PROPAGATOR:
        return 0.0
    g = 0.0
    tau = F[FS_TAU_NS]
    beta = F[FS_BETA]
    base = FS_HEADER + np.int64(F[FS_NINS])
    for j in range(np.int64(F[FS_NIMP])):
        t0 = F[base + 3 * j]
        if F[base + 3 * j + 1] == inst and t0 <= ts:
            g += F[base + 3 * j + 2] * (1.0 + (ts - t0) / tau) ** (-beta)
    return g


@kernel
def _record_impact(F, mode, inst, ts, before, after):
    if before <= 0 or after == before:
        return
    if mode == RELATIVE:
        F[FS_HEADER + inst] += after - before
    elif mode == PROPAGATOR and F[FS_NIMP] < F[FS_IMP_CAP]:
        j = np.int64(F[FS_NIMP])
        base = FS_HEADER + np.int64(F[FS_NINS]) + 3 * j
        F[base] = ts
        F[base + 1] = inst
        F[base + 2] = after - before
        F[FS_NIMP] += 1


@kernel
def _set_level(S, inst, side, li, hist_size):
    """L2: history says the level now holds ``hist_size``; subtract what injected flow
    consumed there (the ledger), which is forgotten as history's own size falls below it."""
    led = S[li_(S, li, L_LEDGER)]
    anon = hist_size - led
    if anon < 0:
        anon = 0
    if hist_size < led:
        S[li_(S, li, L_LEDGER)] = hist_size
    level_add(S, inst, side, li, anon - S[li_(S, li, L_ANON)])
    S[li_(S, li, L_ANON)] = anon


@kernel
def whole_book_crosses(S, mode):
    """Whether a historical order that crosses the opposite side executes against all of it
    (history's own orders too), so that the book is never crossed or locked in continuous
    trading: at the KRX venue, whose matching never leaves a crossed book, and in the
    re-centring modes, whose shifted prices are the simulation's, not the tape's. At the
    generic venue in absolute mode history keeps its prices, and a crossed book the tape
    itself carries (a CME pre-open, say) stays as the tape says (docs/replay-modes.md:
    crossing history)."""
    return (S[H_RULES] & RULE_WHOLE_BOOK_CROSS) != 0 or mode == RELATIVE or mode == PROPAGATOR


@kernel
def _cross_resting(S, OUT, mode, inst, side, price, qty, ts):
    """A historical order at ``price`` that crosses the opposite best executes on arrival,
    as the exchange would match it: price-time priority, at the resting orders' prices,
    within the VI thresholds (:func:`match_within_vi`). Against injected resting orders
    only, or against the whole opposite side where :func:`whole_book_crosses`. Returns the
    quantity it took; what is left rests at ``price``."""
    opp = S[ii(S, inst, I_BEST_ASK if side == BID else I_BEST_BID)]
    if opp < 0 or not matching_allowed(S, inst):
        return 0
    p = level_price(S, inst, opp)
    if (side == BID and p > price) or (side == ASK and p < price):
        return 0
    whole = whole_book_crosses(S, mode)
    lo, hi = vi_stops(S, inst)
    start = OUT[FILLS + 2]
    filled, _ = match_within_vi(S, OUT, inst, side, price, lo, hi, qty, ts, -1,
                                 SRC_HIST_CROSS, not whole, -1)
    count(S, C_CROSS_FILLS, OUT[FILLS + 2] - start)
    if whole and filled > 0:
        count(S, C_HIST_CROSS_ORDERS, 1)
        count(S, C_HIST_CROSS_QTY, filled)
    return filled


@kernel
def match_within_vi(S, OUT, inst, side, limit, lo, hi, qty, ts, owner, src, hist, row):
    """Match an aggressor (``limit`` -1: market) up to the VI thresholds ``lo``, ``hi`` and
    print its trades. One whose opposite best already lies at or beyond a threshold does
    not execute and triggers the VI; one whose walk stops at a threshold triggers it after
    its fills. Returns (filled, notional)."""
    ref = S[ii(S, inst, I_LAST)]
    if vi_check(S, inst, side, limit, lo, hi, ts, ref):
        return 0, 0
    start = OUT[FILLS + 2]
    filled, notional = match(S, OUT, inst, side, bounded(limit, side, lo, hi), qty, ts, owner,
                             src, hist, row)
    prints_from_fills(OUT, start)
    if filled < qty:
        vi_check(S, inst, side, limit, lo, hi, ts, ref)
    return filled, notional


@kernel
def write_top(S, OUT, inst, ts):
    """Append a top-of-book row if it changed since the last one written for ``inst``."""
    off = S[ii(S, inst, I_OFF)]
    n = S[ii(S, inst, I_N)]
    kb = S[ii(S, inst, I_BEST_BID)]
    ka = S[ii(S, inst, I_BEST_ASK)]
    bp = level_price(S, inst, kb) if kb >= 0 else -1
    bs = S[li_(S, off + kb, L_SIZE)] if kb >= 0 else 0
    ap = level_price(S, inst, ka) if ka >= 0 else -1
    az = S[li_(S, off + n + ka, L_SIZE)] if ka >= 0 else 0
    last = S[H_TOB_LAST] + 4 * inst
    if S[last] == bp and S[last + 1] == bs and S[last + 2] == ap and S[last + 3] == az:
        return
    S[last] = bp
    S[last + 1] = bs
    S[last + 2] = ap
    S[last + 3] = az
    j = OUT[TOB + 2]
    OUT[bi(OUT, j, B_TS)] = ts
    OUT[bi(OUT, j, B_INST)] = inst
    OUT[bi(OUT, j, B_BID_PX)] = bp
    OUT[bi(OUT, j, B_BID_SZ)] = bs
    OUT[bi(OUT, j, B_ASK_PX)] = ap
    OUT[bi(OUT, j, B_ASK_SZ)] = az
    OUT[TOB + 2] = j + 1


@kernel
def _reject(S, j, reason):
    S[ri(S, j, R_STATUS)] = ST_REJECTED
    S[ri(S, j, R_REASON)] = reason
    count(S, C_REJECTED, 1)


@kernel
def execute_injected(S, F, OUT, inj, jl, mode):
    """Execute injected order ``jl`` of this call (result row ``inj[jl, J_ID]``); returns a
    status code (OK or a NEED_* to retry)."""
    j = inj[jl, J_ID]
    ts = inj[jl, J_TS]
    inst = inj[jl, J_INST]
    side = inj[jl, J_SIDE]
    typ = inj[jl, J_TYPE]
    price = inj[jl, J_PRICE]
    qty = inj[jl, J_SIZE]
    reason = check_order(S, inst, side, typ, price, inj[jl, J_FLAGS], ts)
    if reason != RJ_NONE:
        _reject(S, j, reason)
        return OK
    if typ == T_CANCEL:
        target = price
        row = find_order(S, INJECTED_ID_BASE + target, inst)
        if row >= 0:
            li = level_index(S, inst, S[oi(S, row, O_SIDE)], S[oi(S, row, O_PRICE)])
            unlink(S, row, li)
            release(S, row)
            S[ri(S, target, R_STATUS)] = ST_CANCELLED
            S[ri(S, target, R_RESTING)] = 0
            S[ri(S, j, R_STATUS)] = ST_FILLED
        else:
            _reject(S, j, RJ_UNKNOWN_ORDER)
        return OK
    if typ == MARKET:
        # KRX: a market order is priced at the day's limit, so what it cannot fill rests there
        mp = market_price(S, inst, side)
        if mp > 0:
            typ = LIMIT
            price = mp
    if typ != MARKET and level_index(S, inst, side, price) < 0:
        if price <= 0 or (price - S[ii(S, inst, I_BASE)]) % S[ii(S, inst, I_STEP)] != 0:
            _reject(S, j, RJ_OFF_GRID)  # no ladder step reaches it: off the price grid
            return OK
        return NEED_LADDER
    if typ == LIMIT and not can_alloc(S):
        return NEED_ORDERS
    count(S, C_INJECTED, 1)
    filled = 0
    if matching_allowed(S, inst):
        limit = -1 if typ == MARKET else price
        lo, hi = vi_stops(S, inst)
        if typ == FOK and available(S, inst, side, bounded(limit, side, lo, hi)) < qty:
            _reject(S, j, RJ_FOK)
            return OK
        before = S[ii(S, inst, I_LAST)]
        # an order that meets a VI at once does not execute: it rests in the VI auction
        # (an IOC is cancelled)
        filled, notional = match_within_vi(S, OUT, inst, side, limit, lo, hi, qty, ts, j,
                                            SRC_INJECTED, False, -1)
        S[ri(S, j, R_FILLED)] += filled
        S[ri(S, j, R_NOTIONAL)] += notional
        if filled > 0:
            S[ii(S, inst, I_LAST_GEN)] = inj[jl, J_GEN] + 1
        _record_impact(F, mode, inst, ts, before, S[ii(S, inst, I_LAST)])
    rest = qty - filled
    if rest == 0:
        S[ri(S, j, R_STATUS)] = ST_FILLED
    elif typ == LIMIT:
        row = alloc_order(S)
        li = level_index(S, inst, side, price)
        enqueue(S, row, INJECTED_ID_BASE + j, inst, side, price, rest, 0, j, ts, li)
        S[ri(S, j, R_STATUS)] = ST_RESTING if filled == 0 else ST_PARTIAL
        S[ri(S, j, R_RESTING)] = rest
    elif filled > 0:
        S[ri(S, j, R_STATUS)] = ST_PARTIAL
    else:
        S[ri(S, j, R_STATUS)] = ST_NO_LIQUIDITY
    return OK


@kernel
def run_chunk(ts_a, inst_a, act_a, side_a, px_a, sz_a, oid_a, flg_a, pos, inj, jpos,
              S, F, OUT, mode, until):
    """Process tape rows from ``pos`` and injected orders from ``jpos`` until the chunk ends
    (injected orders later than the chunk's last row wait for the next chunk, except in the
    closing call, whose chunk is empty), or until the next row or order is at or after
    ``until`` (PAUSE), or a venue rule fires (VENUE_EVENT, after the event that fired it).
    Returns (status, pos, jpos)."""
    n = ts_a.shape[0]
    nj = inj.shape[0]
    own_auctions = (S[H_RULES] & RULE_SESSION) != 0  # the venue computes auctions: skip history's
    watch = (S[H_RULES] & RULE_MARKET_WATCH) != 0
    while pos < n or (n == 0 and jpos < nj):
        # injected orders strictly before this row arrive first
        while jpos < nj and (n == 0 or inj[jpos, J_TS] < ts_a[pos]):
            if inj[jpos, J_TS] >= until:
                return PAUSE, pos, jpos
            if not room(S, OUT):
                return NEED_OUTPUT, pos, jpos
            inst = inj[jpos, J_INST]
            before = S[ii(S, inst, I_LAST)]
            st = execute_injected(S, F, OUT, inj, jpos, mode)
            if st != OK:
                return st, pos, jpos
            write_top(S, OUT, inst, inj[jpos, J_TS])
            if watch:
                market_watch(S, inst, before, inj[jpos, J_TS])
            jpos += 1
            st = stop_after(S, OUT, inst, inj[jpos - 1, J_TS])
            if st != OK:
                return st, pos, jpos
        if n == 0:
            break
        if ts_a[pos] >= until:
            return PAUSE, pos, jpos
        if not room(S, OUT):
            return NEED_OUTPUT, pos, jpos
        inst = inst_a[pos]
        before = S[ii(S, inst, I_LAST)]
        if own_auctions and flg_a[pos] & F_AUCTION:
            count(S, C_AUCTION_ROWS, 1)  # history's own uncross: the venue computes its own
        else:
            st = apply_row(S, F, OUT, mode, ts_a[pos], inst, act_a[pos], side_a[pos],
                           px_a[pos], sz_a[pos], oid_a[pos])
            if st != OK:
                return st, pos, jpos
        if flg_a[pos] & F_LAST:
            write_top(S, OUT, inst, ts_a[pos])
        if watch:
            market_watch(S, inst, before, ts_a[pos])
        pos += 1
        st = stop_after(S, OUT, inst, ts_a[pos - 1])
        if st != OK:
            return st, pos, jpos
    return OK, pos, jpos


@kernel
def mark_last_generation(S, inst, generation):
    """Who set ``inst``'s last price: 0 the tape (or a flow playing its part), k + 1 a
    generation-k forced order."""
    S[ii(S, inst, I_LAST_GEN)] = generation


@kernel
def stop_after(S, OUT, inst, ts):
    """Whether the loop stops after an event on ``inst`` at ``ts`` (OK: it goes on): a
    venue rule fired (VENUE_EVENT); or a participant's wake condition holds (WAKE, with the
    instrument and time in H_WAKE_INST, H_WAKE_TS): the last price fell to the instrument's
    wake price, or a trade was printed while it wakes on prints."""
    if S[H_EV_KIND] != 0:
        return VENUE_EVENT
    last = S[ii(S, inst, I_LAST)]
    if 0 < last <= S[ii(S, inst, I_WAKE_BELOW)]:  # 0: no price yet
        S[H_WAKE_INST] = inst
        S[H_WAKE_TS] = ts
        return WAKE
    if S[ii(S, inst, I_WAKE_PRINT)] != 0 and OUT[TRADES + 2] != S[H_PRINTS_SEEN]:
        S[H_PRINTS_SEEN] = OUT[TRADES + 2]
        S[H_WAKE_INST] = inst
        S[H_WAKE_TS] = ts
        return WAKE
    return OK


@kernel
def _no_level(S, inst, price):
    """Why ``price`` has no level: off the grid (counted, the row is dropped: OK) or outside
    the ladder (NEED_LADDER: the front widens it and the row is applied again)."""
    if (price - S[ii(S, inst, I_BASE)]) % S[ii(S, inst, I_STEP)] != 0:
        count(S, C_OFF_GRID, 1)
        return OK
    return NEED_LADDER


@kernel
def apply_row(S, F, OUT, mode, ts, inst, act, side, price, size, oid):
    """Apply one historical row under the mode's rules (the caller counts rows)."""
    shift = 0
    if mode == RELATIVE or mode == PROPAGATOR:
        if act == ADD or act == MODIFY or act == FILL or act == TRADE or (
                oid == 0 and (act == CANCEL or act == DELETE)):
            g = _gap(F, mode, inst, ts)
            if g != 0.0:
                shift = snap(S, inst, price + np.int64(np.round(g))) - price
                if shift != 0:
                    count(S, C_SHIFTED, 1)
    p = price + shift
    if act == CLEAR:
        clear_instrument(S, inst)
        return OK
    if (S[H_RULES] & RULE_SESSION) != 0:
        st = _venue_row(S, inst, act, p, ts)
        if st != OK:
            return OK  # dropped and counted
    if act == TRADE:
        S[ii(S, inst, I_HIST_LAST)] = price
        S[ii(S, inst, I_LAST)] = p
        S[ii(S, inst, I_LAST_GEN)] = 0
        print_trade(OUT, ts, inst, p, size, side, SRC_HISTORY)
        return OK
    if act != ADD and act != CANCEL and act != DELETE and act != MODIFY and act != FILL:
        count(S, C_STATUS, 1)
        return OK
    if oid == 0:
        return _apply_l2(S, OUT, mode, ts, inst, act, side, p, size)
    if act == ADD:
        return _add(S, OUT, mode, ts, inst, side, p, size, oid)
    row = find_order(S, oid, inst)
    if row < 0:
        count(S, C_UNKNOWN_ORDER, 1)
        return OK
    if act == CANCEL or act == DELETE:
        _cancel(S, row, act, size)
        return OK
    if act == MODIFY:
        return _modify(S, OUT, mode, ts, inst, side, p, size, row)
    # FILL: history executed ``size`` of this resting order at ``price``.
    _fill(S, OUT, ts, inst, price, p, size, row)
    return OK


@kernel
def _venue_row(S, inst, act, p, ts):
    """KRX venue rules for a historical row; OK if it applies, else 1 (dropped, counted).

    Nothing applies while the market is closed, no new order while it is halted; prices
    outside the day's limits are dropped; an execution during a single-price auction did not
    happen (its order's own reduction, which follows it, still applies), and one at or
    beyond a VI threshold triggers the VI instead of printing.
    """
    if not accepts_history(S, inst, act == ADD):
        count(S, C_PHASE_DROPPED, 1)
        return 1
    if act == ADD or act == MODIFY or act == FILL or act == TRADE:
        lo_lim = S[ii(S, inst, I_LO_LIM)]
        up_lim = S[ii(S, inst, I_UP_LIM)]
        if (lo_lim > 0 and p < lo_lim) or (up_lim > 0 and p > up_lim):
            count(S, C_OUTSIDE_LIMITS, 1)
            return 1
    if act == FILL or act == TRADE:
        if not matching_allowed(S, inst):
            count(S, C_AUCTION_SUPPRESSED, 1)
            return 1
        last = S[ii(S, inst, I_LAST)]
        if p == last:
            return OK  # the last price is inside both VI bands (or a VI would have fired)
        lo, hi = vi_stops(S, inst)
        if beyond(p, lo, hi):
            trigger_vi(S, inst, p, ts, last)
            count(S, C_AUCTION_SUPPRESSED, 1)
            return 1
    return OK


@kernel
def _apply_l2(S, OUT, mode, ts, inst, act, side, p, size):
    """An L2 level update (order_id 0). Where :func:`whole_book_crosses`, the quantity a
    level gains at a price that crosses the opposite side executes first, like an order;
    what it took joins the level's ledger (consumed: history's later updates of the level
    are lowered by it)."""
    if act == FILL:
        return OK
    li = level_index(S, inst, side, p)
    if li < 0:
        if act == DELETE or act == CANCEL:
            return OK  # nothing there to remove
        return _no_level(S, inst, p)
    if act == DELETE:
        _set_level(S, inst, side, li, 0)
    elif act == CANCEL:
        hist = S[li_(S, li, L_ANON)] + S[li_(S, li, L_LEDGER)]
        _set_level(S, inst, side, li, max(hist - size, 0))
    else:
        if whole_book_crosses(S, mode):
            gain = size - S[li_(S, li, L_ANON)] - S[li_(S, li, L_LEDGER)]
            if gain > 0:
                S[li_(S, li, L_LEDGER)] += _cross_resting(S, OUT, mode, inst, side, p, gain,
                                                          ts)
        _set_level(S, inst, side, li, size)
    return OK


@kernel
def _add(S, OUT, mode, ts, inst, side, p, size, oid):
    if not can_alloc(S):  # first: making room may rebuild the id table
        return NEED_ORDERS
    slot = probe_for_add(S, oid, inst)
    if slot < 0:
        count(S, C_DUPLICATE_ADD, 1)
        return OK
    li = level_index(S, inst, side, p)
    if li < 0:
        return _no_level(S, inst, p)
    row = alloc_order(S)
    took = _cross_resting(S, OUT, mode, inst, side, p, size, ts)
    enqueue(S, row, oid, inst, side, p, size - took, size, -1, ts, li, slot)
    if size - took == 0:
        unlink(S, row, li)
        S[oi(S, row, O_LIVE)] = CONSUMED
    return OK


@kernel
def _cancel(S, row, act, size):
    """A historical cancel (reduce by ``size``) or delete of order ``row``."""
    hist = S[oi(S, row, O_HIST)]
    take = size if act == CANCEL else hist
    if take > hist:
        take = hist
    cur = S[oi(S, row, O_SIZE)]
    if S[oi(S, row, O_LIVE)] == IN_LEVEL:
        if act == DELETE or take >= cur:
            if take > cur:
                count(S, C_CLIPPED, 1)
            reduce_order(S, row, cur)
        else:
            reduce_order(S, row, take)
    else:
        count(S, C_CONSUMED_NOOP, 1)
    S[oi(S, row, O_HIST)] = hist - take
    if act == DELETE or hist - take == 0:
        if S[oi(S, row, O_LIVE)] == IN_LEVEL:
            reduce_order(S, row, S[oi(S, row, O_SIZE)])
        release(S, row)


@kernel
def _modify(S, OUT, mode, ts, inst, side, p, size, row):
    consumed = S[oi(S, row, O_HIST)] - S[oi(S, row, O_SIZE)]
    new_size = size - consumed
    if new_size < 0:
        new_size = 0
    li_new = level_index(S, inst, side, p)
    if li_new < 0:
        return _no_level(S, inst, p)
    queued = S[oi(S, row, O_LIVE)] == IN_LEVEL
    cur = S[oi(S, row, O_SIZE)]
    if p == S[oi(S, row, O_PRICE)] and new_size <= cur and queued:
        reduce_order(S, row, cur - new_size if new_size > 0 else cur)
    else:
        if queued:
            reduce_order(S, row, cur)
        S[oi(S, row, O_PRICE)] = p
        S[oi(S, row, O_SIDE)] = side
        took = 0
        if new_size > 0:
            took = _cross_resting(S, OUT, mode, inst, side, p, new_size, ts)
        S[oi(S, row, O_SIZE)] = new_size - took
        if new_size - took > 0:
            link(S, row, li_new)
        else:
            S[oi(S, row, O_LIVE)] = CONSUMED
    S[oi(S, row, O_HIST)] = size
    if size == 0:
        release(S, row)
    return OK


@kernel
def _fill(S, OUT, ts, inst, price, p, size, row):
    """History executed ``size`` of order ``row``: what the simulation no longer has of it
    is re-applied as an IOC at the (shifted) price ``p``."""
    have = S[oi(S, row, O_SIZE)]
    S[ii(S, inst, I_HIST_LAST)] = price
    if have > 0:
        S[ii(S, inst, I_LAST)] = S[oi(S, row, O_PRICE)]
        S[ii(S, inst, I_LAST_GEN)] = 0
    if have < size:
        deficit = size - have
        count(S, C_REAPPLIED, 1)
        aggressor = ASK if S[oi(S, row, O_SIDE)] == BID else BID
        lo, hi = vi_stops(S, inst)
        filled, _ = match_within_vi(S, OUT, inst, aggressor, p, lo, hi, deficit, ts, -1,
                                     SRC_REAPPLIED, False, row)
        count(S, C_REAPPLIED_FILLED, filled)
        count(S, C_REAPPLIED_DROPPED, deficit - filled)


def count_events(S: np.ndarray, n: int) -> None:
    """``n`` more input events were processed (the ``events`` counter)."""
    count(S, C_EVENTS, n)


def counter_values(S: np.ndarray) -> dict[str, int]:
    base = int(S[H_CNT])
    return {name: int(S[base + i]) for i, name in enumerate(COUNTER_NAMES)}
