"""The compiled continuous session of a tape anchored to recorded trades
(docs/synthetic-tapes.md: anchored to trades): a background of limit orders and cancels
from :mod:`replay.synth`'s hooks around the recorded price, and at each recorded print the
book made to give exactly that print. No order of the flow takes liquidity, so the tape's
only executions are the recorded ones.

Before a buy print of ``q`` at ``P`` (a sell mirrors it): every ask below ``P`` and every
bid at or above it is cancelled (they would have traded first, or would cross), and an
ask at ``P`` tops the asks there up to ``q`` plus a random rest; then the print's packet:
a ``T`` (the aggressor, ``P``, ``q``) and per resting order filled an ``F`` and a ``C``,
by :func:`venues.matching.match` in price-time priority.
"""

from __future__ import annotations

from numba import njit

from replay.synth import (
    _DONE,
    _INST,
    _POOL_FULL,
    _ROWS_FULL,
    _S_LIVE,
    _S_T,
    P_LOG_SIZE,
    P_SIZE_MAX,
    P_SIZE_SIGMA,
    _add_order,
    _emit,
    _reduce,
    _size,
    _walk,
    arrival_gap_ns,
    cancel_size,
    choose_action,
    limit_order,
    pick_live,
)
from replay.tape import ADD, ASK, BID, CANCEL, F_LAST, TRADE
from venues.book import best_price, can_alloc, level_size, order_fields


@njit(cache=True)
def _clear_side(book, st, outs, pos, ts, side, price, above):
    """Cancel every live order on ``side`` priced above (``above``) or below ``price``, and
    at it when ``above`` is 2 (at or above); one packet per order."""
    S, live = book[0], book[2]
    k = 0
    while k < st[_S_LIVE]:
        row = live[k]
        oid, s, p, size = order_fields(S, row)
        hit = s == side and ((above == 0 and p < price) or (above == 1 and p > price)
                             or (above == 2 and p >= price) or (above == 3 and p <= price))
        if hit:
            pos = _emit(outs, pos, st, ts, CANCEL, s, p, size, oid, F_LAST)
            _reduce(book, st, row, size)  # swap-removes: look at slot k again
        else:
            k += 1
    return pos


@njit(cache=True)
def _print(params, ladder, rng, book, st, fst, outs, pos, ts, side, price, size):
    """The book made to give exactly this print, then the print (see the module)."""
    S = book[0]
    opp = ASK if side == BID else BID
    if side == BID:
        pos = _clear_side(book, st, outs, pos, ts, ASK, price, 0)  # asks below P
        pos = _clear_side(book, st, outs, pos, ts, BID, price, 2)  # bids at or above P
    else:
        pos = _clear_side(book, st, outs, pos, ts, BID, price, 1)  # bids above P
        pos = _clear_side(book, st, outs, pos, ts, ASK, price, 3)  # asks at or below P
    have = level_size(S, _INST, opp, price)
    if have < size:
        rest = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]), rng)
        oid = _add_order(book, st, opp, price, size - have + rest, ts)
        pos = _emit(outs, pos, st, ts, ADD, opp, price, size - have + rest, oid, F_LAST)
    pos, _ = _walk(params, ladder, book, st, fst, outs, pos, ts, side, size, price)
    return pos


@njit(cache=True)
def trades_continuous(params, ladder, rng, book, st, fst, outs, pos, origin_ns, end_t,
                      p_ts, p_px, p_sz, p_side, nxt):
    """Background decisions (limit orders and cancels, never a market order) from the
    state's clock to ``end_t`` (ns after ``origin_ns``), and each recorded print
    (``p_*``, ts in ns UTC) from index ``nxt[0]`` at its time. The value the limit orders
    lean to is the next print's price."""
    S, live = book[0], book[2]
    cap = outs[0].shape[0]
    n = p_ts.shape[0]
    while True:
        if cap - pos < 4 * st[_S_LIVE] + 16:
            return pos, _ROWS_FULL
        if not can_alloc(S):
            return pos, _POOL_FULL
        i = nxt[0]
        gap = arrival_gap_ns(st[_S_T], params, rng)
        t_next = st[_S_T] + gap
        if i < n and p_ts[i] - origin_ns <= min(t_next, end_t):
            # the recorded print comes first
            st[_S_T] = max(st[_S_T], p_ts[i] - origin_ns)
            fst[0] = float(p_px[i])
            pos = _print(params, ladder, rng, book, st, fst, outs, pos, p_ts[i], p_side[i],
                         p_px[i], p_sz[i])
            nxt[0] = i + 1
            if i + 1 < n:
                fst[0] = float(p_px[i + 1])
            continue
        if t_next >= end_t:
            st[_S_T] = end_t
            return pos, _DONE
        st[_S_T] = t_next
        ts = origin_ns + st[_S_T]
        bb = best_price(S, _INST, BID)
        ba = best_price(S, _INST, ASK)
        last = int(fst[0])
        action = choose_action(st[_S_LIVE], params, rng)
        if action == TRADE or action == ADD:
            side, price, size = limit_order(bb, ba, last, params, ladder, fst[0], rng)
            if size == 0:
                continue
            oid = _add_order(book, st, side, price, size, ts)
            pos = _emit(outs, pos, st, ts, ADD, side, price, size, oid, F_LAST)
        elif st[_S_LIVE] > 0:
            row = live[pick_live(st[_S_LIVE], rng)]
            oid, side, price, size = order_fields(S, row)
            q = cancel_size(size, params, rng)
            pos = _emit(outs, pos, st, ts, CANCEL, side, price, q, oid, F_LAST)
            _reduce(book, st, row, q)
