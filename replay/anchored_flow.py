"""The compiled continuous session of an anchored tape (docs/synthetic-tapes.md: anchored
tapes): :func:`replay.synth._continuous`'s reactive flow on the same book, with three
changes. The latent value is a path through the day's recorded prices (knots) times a
mean-reverting noise; aggressive orders take liquidity only within the day's ``[low,
high]`` and no bid rests above the high, no ask below the low, so nothing prints outside
the recorded range; market orders are sized by the volume still to trade. At the end of
each extreme's hold, a sweep prints the extreme if the flow has not, and one before the
closing auction prints the close.

With the static VI on (``A_VI``: daily-bar anchors, docs/reference/krx.md: volatility
interruption), no execution reaches the threshold of the static reference (``A_VI_LO_OK``
and ``A_VI_HI_OK`` are the farthest prices inside it). Where the flow would go past it,
an order crossing the book at the first price at or beyond the threshold is added instead,
as the venue sees a VI begin: the kernel stops with :data:`VI` and ``A_VI_AT`` set, and
the caller holds the 2-minute VI auction and resets the reference to its price.
"""

from __future__ import annotations

import math

from numba import njit

from replay.synth import (
    _DONE,
    _INST,
    _POOL_FULL,
    _ROWS_FULL,
    _S_LAST,
    _S_LIVE,
    _S_T,
    P_LOCKED_CANCEL,
    P_LOG_MKT_SIZE,
    P_LOG_SIZE,
    P_MKT_SIZE_SIGMA,
    P_SIZE_MAX,
    P_SIZE_SIGMA,
    _add_order,
    _bisect,
    _emit,
    _locked,
    _queued_at_lock,
    _reduce,
    _size,
    _walk,
    arrival_gap_ns,
    cancel_size,
    choose_action,
    limit_order,
    market_order,
    pick_live,
    place_price,
)
from replay.tape import ADD, ASK, BID, CANCEL, F_LAST, MODIFY, TRADE
from replay.trades_flow import _clear_side
from venues.book import best_price, can_alloc, level_size, order_fields, requeue

#: The value's noise around its path: stationary sd (a fraction) and mean-reversion time.
NOISE_SD = 0.002
NOISE_TAU_S = 600.0
#: The farthest one order takes the price from the last print (a fraction), and the time
#: between the steps of a sweep.
STEP = 0.02
STEP_GAP_NS = 1_000_000_000
#: A sweep's kind: to the day's high (1), its low (0), or to the close from either side.
TO_CLOSE = 2
#: What :func:`anchored_continuous` returns when an order began a VI (after replay.synth's
#: _DONE, _ROWS_FULL, _POOL_FULL).
VI = 3


# Slots of the anchor's integer state: the day's volume so far, its highest and lowest
# print, the next sweep, and whether market orders stop once the volume wanted is reached
# (intraday bars: a bar's volume is small, one share a decision past it would overshoot);
# of its float state: the value's noise, the market-size baseline,
# the volume wanted by the end of continuous trading and the volume at the open, the rate
# shape's integral to the session's end and from the open to it.
# Then the static VI: on or off, the farthest prices an execution may take inside its
# thresholds, the first grid prices at or beyond them (0: beyond the daily limit, no VI),
# the time of the order that began a VI (0: none), and the latest time one may begin (its
# auction must end before the continuous session does).
(A_VOL, A_MAX, A_MIN, A_SWEEP, A_STRICT, A_VI, A_VI_LO_OK, A_VI_HI_OK, A_VI_LO_TRIG,
 A_VI_HI_TRIG, A_VI_AT, A_VI_LATEST, N_A) = range(13)
F_NOISE, F_LOG_MKT, F_TARGET, F_BASE_VOL, F_SHAPE_END, F_SHAPE_TOTAL, N_F = range(7)


@njit(cache=True)
def shape_integral(t, params):
    # Integral of the arrival-rate shape of replay.synth.arrival_gap_ns from 0 to t (ns).
    tau = params[3]  # P_DECAY_NS
    s = params[4]  # P_SESSION_NS
    return (t + params[1] * tau * (1.0 - math.exp(-t / tau))
            + params[2] * tau * (math.exp(-(s - t) / tau) - math.exp(-s / tau)))


@njit(cache=True)
def _path_value(t, knots_t, knots_v):
    # The latent value's path: piecewise linear through the knots, flat beyond them.
    n = knots_t.shape[0]
    if t <= knots_t[0]:
        return knots_v[0]
    if t > knots_t[n - 1]:
        return knots_v[n - 1]
    lo, hi = 1, n - 1  # the first knot at or after t, by bisection (a market's paths
    while lo < hi:     # carry a knot a minute)
        mid = (lo + hi) // 2
        if knots_t[mid] < t:
            lo = mid + 1
        else:
            hi = mid
    k = lo
    span = knots_t[k] - knots_t[k - 1]
    w = (t - knots_t[k - 1]) / span if span > 0 else 1.0
    return knots_v[k - 1] + w * (knots_v[k] - knots_v[k - 1])


@njit(cache=True)
def _tally(outs, first, pos, ast):
    # The day's volume and print range from the rows just written.
    for r in range(first, pos):
        if outs[1][r] == TRADE:
            ast[A_VOL] += outs[4][r]
            p = outs[3][r]
            if p > ast[A_MAX]:
                ast[A_MAX] = p
            if ast[A_MIN] == 0 or p < ast[A_MIN]:
                ast[A_MIN] = p


@njit(cache=True)
def _step_price(ladder, last, up):
    """The farthest price an order may take from ``last`` in one go: STEP of it, at least
    one tick (a single order stays well inside the dynamic VI thresholds of
    docs/reference/krx.md: volatility interruption, 3% for KOSPI200 names)."""
    n = ladder.shape[0]
    i = _bisect(ladder, last)
    if up:
        j = _bisect(ladder, int(last * (1.0 + STEP)) + 1) - 1
        return ladder[min(max(j, i + 1), n - 1)]
    j = _bisect(ladder, int(math.ceil(last * (1.0 - STEP))))
    return ladder[max(min(j, i - 1), 0)]


@njit(cache=True)
def _print_at(params, ladder, rng, book, st, fst, outs, pos, ts, price, up, room):
    """Print at ``price`` (upwards if ``up``): the resting orders an order would take first
    (asks below the price going up, bids above it going down) are withdrawn, an order rests
    at the price if none does, and an order of a market order's size takes from it. A bid
    already at ``price`` going up (an ask going down) is met by a sell (a buy) there
    instead. It takes at most ``room`` shares. Returns (pos, ts of the next free
    nanosecond)."""
    S = book[0]
    bb = best_price(S, _INST, BID)
    ba = best_price(S, _INST, ASK)
    take = min(_size(params[P_LOG_MKT_SIZE], params[P_MKT_SIZE_SIGMA],
                     int(params[P_SIZE_MAX]), rng), room)
    if up and bb == price:
        pos, _ = _walk(params, ladder, book, st, fst, outs, pos, ts, ASK,
                       min(take, level_size(S, _INST, BID, price)), price)
    elif not up and ba == price:
        pos, _ = _walk(params, ladder, book, st, fst, outs, pos, ts, BID,
                       min(take, level_size(S, _INST, ASK, price)), price)
    else:
        side = ASK if up else BID  # the order resting at the price
        pos = _clear_side(book, st, outs, pos, ts, side, price, 0 if up else 1)
        if level_size(S, _INST, side, price) == 0:
            size = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]),
                         rng)
            oid = _add_order(book, st, side, price, size, ts)
            pos = _emit(outs, pos, st, ts, ADD, side, price, size, oid, F_LAST)
        ts += 1
        pos, _ = _walk(params, ladder, book, st, fst, outs, pos, ts, BID if up else ASK,
                       min(take, level_size(S, _INST, side, price)), price)
    return pos, ts + 1


@njit(cache=True)
def _sweep(params, ladder, rng, book, st, fst, outs, pos, ts, price, up, ast, room):
    """Print at ``price`` (the day's high if ``up``, else its low) from the last price, in
    steps of at most STEP one second apart (:func:`_print_at` each), each taking at most
    1/16 of ``room``, the volume still wanted, and none reaching the static VI threshold.
    Returns (pos, ts, why): why 0 when it printed the price or ran short of rows, 1 when
    it began a VI on the way (:func:`_begin_vi`), 2 when it stopped at a threshold too late
    in the session for a VI."""
    first = pos
    room = max(1, room // 16)
    why = 0
    while True:
        last = st[_S_LAST]
        step = min(price, _step_price(ladder, last, True)) if up \
            else max(price, _step_price(ladder, last, False))
        if ast[A_VI]:
            band = ast[A_VI_HI_OK] if up else ast[A_VI_LO_OK]
            if (up and step > band) or (not up and step < band):
                if last != band:
                    step = band
                elif st[_S_T] <= ast[A_VI_LATEST]:
                    pos, ts = _begin_vi(params, rng, book, st, outs, pos, ts, up, ast)
                    why = 1
                    break
                else:
                    why = 2
                    break
        pos, ts = _print_at(params, ladder, rng, book, st, fst, outs, pos, ts, step, up,
                            room)
        if step == price or outs[0].shape[0] - pos < 2 * st[_S_LIVE] + 8:
            break
        ts += STEP_GAP_NS
    _tally(outs, first, pos, ast)
    return pos, ts, why


@njit(cache=True)
def _begin_vi(params, rng, book, st, outs, pos, ts, up, ast):
    """Begin a static VI going up (down if not ``up``): at the first price at or beyond the
    threshold, an order rests (the orders between it and the last print withdrawn) and an
    order of a market order's size crosses it. The venue sees that order meet a VI, as
    the kernel's own book does: nothing executes, ``A_VI_AT`` is its time. Returns (pos,
    the next free nanosecond)."""
    S = book[0]
    p = ast[A_VI_HI_TRIG] if up else ast[A_VI_LO_TRIG]
    rest, cross = (ASK, BID) if up else (BID, ASK)
    pos = _clear_side(book, st, outs, pos, ts, rest, p, 0 if up else 1)
    if level_size(S, _INST, rest, p) == 0:
        size = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]), rng)
        oid = _add_order(book, st, rest, p, size, ts)
        pos = _emit(outs, pos, st, ts, ADD, rest, p, size, oid, F_LAST)
    ts += 1
    size = _size(params[P_LOG_MKT_SIZE], params[P_MKT_SIZE_SIGMA], int(params[P_SIZE_MAX]),
                 rng)
    oid = _add_order(book, st, cross, p, size, ts)
    pos = _emit(outs, pos, st, ts, ADD, cross, p, size, oid, F_LAST)
    ast[A_VI_AT] = ts
    return pos, ts + 1


@njit(cache=True)
def _swept(price, kind, st, ast):
    # Whether a sweep's price has printed: the day's high (kind 1), its low (0), or, for
    # the sweep to the close (TO_CLOSE), whether the last print is the close.
    if kind == TO_CLOSE:
        return st[_S_LAST] == price
    return ast[A_MAX] >= price if kind == 1 else ast[A_MIN] <= price


@njit(cache=True)
def _in_range(side, price, lo_px, hi_px, ladder, last):
    # No bid rests above the day's high, no ask below its low: neither could trade there;
    # nor farther than STEP beyond the last print (a bid above it, an ask below it), so
    # that the next execution stays within STEP of the last one.
    if price <= 0:
        return False
    if side == BID:
        return price <= min(hi_px, _step_price(ladder, last, True))
    return price >= max(lo_px, _step_price(ladder, last, False))


@njit(cache=True)
def anchored_top_up(params, ladder, rng, book, st, outs, pos, ts, center, first, i, n,
                     lo_px, hi_px):
    """:func:`replay.synth._top_up` within the day's range (no bid above the high, no ask
    below the low)."""
    S = book[0]
    while i < n:
        if not can_alloc(S):
            return pos, i, _POOL_FULL
        side = BID if i % 2 == 0 else ASK
        i += 1
        price = place_price(side, best_price(S, _INST, BID), best_price(S, _INST, ASK),
                            ladder[center], params, ladder, rng)
        size = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]), rng)
        if not _in_range(side, price, lo_px, hi_px, ladder, ladder[center]):
            continue
        oid = _add_order(book, st, side, price, size, ts)
        pos = _emit(outs, pos, st, ts, ADD, side, price, size, oid, 0)
    if pos > first:
        outs[6][pos - 1] = F_LAST
    return pos, i, _DONE


@njit(cache=True)
def anchored_continuous(params, ladder, rng, book, st, fst, outs, pos, origin_ns,
                         session_ns, knots_t, knots_v, sweep_t, sweep_px, sweep_up, lo_px,
                         hi_px, ast, afl):
    """:func:`replay.synth._continuous` along an anchored path: the value is the path's
    (``knots``) times a mean-reverting noise; market orders take liquidity only within
    ``[lo_px, hi_px]``; their size follows the volume still to trade; at each sweep time a
    print at the extreme is made if the flow has not reached it."""
    S, live = book[0], book[2]
    cap = outs[0].shape[0]
    lo, hi = float(ladder[0]), float(ladder[-1])
    decay = 1.0 / (NOISE_TAU_S * 1e9)
    while True:
        if cap - pos < 4 * st[_S_LIVE] + 256:
            return pos, _ROWS_FULL
        if not can_alloc(S):
            return pos, _POOL_FULL
        k = ast[A_SWEEP]
        if k < sweep_t.shape[0] and sweep_t[k] <= st[_S_T] + 1:
            # an extreme's hold ended: print it unless the flow already did (a sweep "to"
            # the close, TO_CLOSE, prints it unless the last print is the close)
            ast[A_SWEEP] += 1
            if not _swept(sweep_px[k], sweep_up[k], st, ast):
                up = st[_S_LAST] < sweep_px[k] if sweep_up[k] == TO_CLOSE else sweep_up[k] == 1
                st[_S_T] += 1
                pos, ts, why = _sweep(params, ladder, rng, book, st, fst, outs, pos,
                                      origin_ns + st[_S_T], sweep_px[k], up, ast,
                                      max(1, int(afl[F_TARGET]) - ast[A_VOL]))
                st[_S_T] = ts - origin_ns
                if why != 2 and not _swept(sweep_px[k], sweep_up[k], st, ast):
                    # stopped short of rows, or at a VI: resumed in the next buffer, or
                    # after the VI auction
                    ast[A_SWEEP] -= 1
                if why == 1:
                    return pos, VI
            continue
        gap = arrival_gap_ns(st[_S_T], params, rng)
        t_next = st[_S_T] + gap
        if k < sweep_t.shape[0] and sweep_t[k] < t_next and sweep_t[k] < session_ns:
            st[_S_T] = sweep_t[k] - 1  # the sweep first, then the next decision
            continue
        if t_next >= session_ns:
            st[_S_T] = session_ns
            return pos, _DONE
        st[_S_T] = t_next
        ts = origin_ns + st[_S_T]
        # the value: the path, times an Ornstein-Uhlenbeck noise of sd NOISE_SD
        a = math.exp(-gap * decay)
        afl[F_NOISE] = afl[F_NOISE] * a + NOISE_SD * math.sqrt(1.0 - a * a) \
            * rng.standard_normal()
        v = _path_value(st[_S_T], knots_t, knots_v)
        if lo < v < hi:  # inside the limits, the noise never takes it to one
            v = min(max(v * math.exp(afl[F_NOISE]), lo + 0.25 * (ladder[1] - ladder[0])),
                    hi - 0.25 * (ladder[-1] - ladder[-2]))
            # an extreme once printed holds the value no farther: the flow trades on there
            # rather than waiting, pressed beyond a price it may not print, for the hold
            # to end
            if ast[A_MIN] > 0 and ast[A_MIN] <= lo_px and v < lo_px:
                v = float(lo_px)
            if ast[A_MAX] >= hi_px and v > hi_px:
                v = float(hi_px)
        fst[0] = v
        # market orders sized by the volume still to trade over the expected flow left
        left = (afl[F_SHAPE_END] - shape_integral(float(st[_S_T]), params)) \
            / afl[F_SHAPE_TOTAL]
        planned = afl[F_TARGET] - afl[F_BASE_VOL]
        want = afl[F_TARGET] - ast[A_VOL]
        ratio = want / (planned * max(left, 1e-3)) if planned > 0 else 0.0
        params[P_LOG_MKT_SIZE] = afl[F_LOG_MKT] + math.log(min(max(ratio, 0.05), 20.0))
        bb = best_price(S, _INST, BID)
        ba = best_price(S, _INST, ASK)
        last = st[_S_LAST]
        action = choose_action(st[_S_LIVE], params, rng)
        # where orders may rest: no ask at or below the lower VI threshold, no bid at or
        # above the upper one (a buy, or a sell, would print beyond it)
        lo_rest = max(lo_px, ast[A_VI_LO_OK]) if ast[A_VI] else lo_px
        hi_rest = min(hi_px, ast[A_VI_HI_OK]) if ast[A_VI] else hi_px
        # beyond a limit, the day locks once the price has reached it (on the way there
        # the flow sells, or buys, in steps like any other)
        locked = (fst[0] <= lo and last == ladder[0]) or (fst[0] >= hi and last == ladder[-1])
        first = pos
        if locked and (action == ADD or action == TRADE):
            pos = _locked(params, ladder, rng, book, st, fst, outs, pos, ts, action,
                          fst[0] <= lo)
        elif action == ADD:
            side, price, size = limit_order(bb, ba, last, params, ladder, fst[0], rng)
            if size == 0 or not _in_range(side, price, lo_rest, hi_rest, ladder, last):
                continue
            oid = _add_order(book, st, side, price, size, ts)
            pos = _emit(outs, pos, st, ts, ADD, side, price, size, oid, F_LAST)
        elif action == TRADE:
            side, size = market_order(bb, ba, last, params, ladder, fst[0], rng)
            # never past the volume wanted by 15:20: the closing auction makes up the rest
            short = int(afl[F_TARGET]) - ast[A_VOL]
            if ast[A_STRICT] and short <= 0:
                continue
            size = min(size, max(1, short))
            opp = ba if side == BID else bb
            cap_px = min(hi_px, _step_price(ladder, last, True)) if side == BID \
                else max(lo_px, _step_price(ladder, last, False))
            if opp == 0 or (side == BID and opp > cap_px) or (side == ASK and opp < cap_px):
                continue
            if ast[A_VI]:
                if (side == BID and opp < ast[A_VI_LO_OK]) or \
                        (side == ASK and opp > ast[A_VI_HI_OK]):
                    continue  # an order left beyond a threshold (after an uncross)
                band = ast[A_VI_HI_OK] if side == BID else ast[A_VI_LO_OK]
                if (side == BID and opp > band) or (side == ASK and opp < band):
                    # the opposite best lies at or beyond the static VI threshold
                    if st[_S_T] <= ast[A_VI_LATEST]:
                        pos, _ = _begin_vi(params, rng, book, st, outs, pos, ts, side == BID,
                                           ast)
                        st[_S_T] = ast[A_VI_AT] - origin_ns
                        return pos, VI
                    continue
                cap_px = min(cap_px, band) if side == BID else max(cap_px, band)
            pos, _ = _walk(params, ladder, book, st, fst, outs, pos, ts, side, size, cap_px)
        elif st[_S_LIVE] > 0:
            row = live[pick_live(st[_S_LIVE], rng)]
            oid, side, price, size = order_fields(S, row)
            if locked and _queued_at_lock(side, price, fst[0], lo, ladder) \
                    and rng.random() >= params[P_LOCKED_CANCEL]:
                continue
            if action == CANCEL:
                q = cancel_size(size, params, rng)
                pos = _emit(outs, pos, st, ts, CANCEL, side, price, q, oid, F_LAST)
                _reduce(book, st, row, q)
            else:
                new = place_price(side, bb, ba, last, params, ladder, rng)
                if new == 0 or new == price or not _in_range(side, new, lo_rest, hi_rest,
                                                                     ladder, last):
                    continue
                pos = _emit(outs, pos, st, ts, MODIFY, side, new, size, oid, F_LAST)
                requeue(S, row, new)
        _tally(outs, first, pos, ast)


