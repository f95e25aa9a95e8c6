"""Venue rules the compiled loop applies per event: order checks, VI bands, market watch.

Which rules apply is a set of bits a venue composes (``H_RULES``: :data:`RULES_KRX` at
the KRX venue); at the generic venue none applies: every order is accepted and matching is
never interrupted. This module also declares the venue's block of the arena (its header
slots and instrument columns), which only venues/ reads by index. At the KRX venue
(docs/reference/krx.md) the state that :mod:`venues.krx.venue` keeps in the arena decides:

- **Order checks.** A limit price off the tick grid or outside the day's limits is rejected;
  nothing but cancels enters a halted market; an auction takes no IOC/FOK; post-close orders
  must be at the closing price; program orders on a side the sidecar suspended are rejected.
  A market order is a limit order at the day's limit price: a sell that finds no bid above
  the lower limit rests there, in time priority.
- **Volatility interruptions.** An execution may not happen at or beyond the VI thresholds:
  the dynamic one around the last trade before the order, the static one around the last
  auction price. The first tick at or beyond is the trigger price; the kernel records the
  event and puts the name in a single-price auction; the Python side schedules its end.
- **Market watch.** Market-cap weighted indices of the constituents' last prices: per
  index a numerator ``sum(shares * last)`` over the names whose index bits
  (``I_INDICES``) name it: KOSPI, KOSDAQ and the sidecar's index (the KOSPI200 members,
  or the KOSPI names where the tape has none). Each market's numerator is compared with its
  circuit-breaker trigger, and the index future's last price (or, with no future in the
  tape, the sidecar index's numerator, its proxy) against the sidecar band; each must hold
  for a minute. Each numerator's low of the day is kept too.

Thresholds are integers: a price ``p`` is at or beyond the lower threshold of reference
``r`` at ``bp`` basis points when ``p * 10000 <= r * (10000 - bp)``. No float decides.
"""

from __future__ import annotations

import numpy as np

from venues.book import (
    BOOK_COLS,
    BOOK_HEADER,
    I_BEST_ASK,
    I_BEST_BID,
    I_LAST,
    ii,
    level_price,
    register_columns,
    tick_of,
)
from venues.codes import (
    BID,
    CANCEL_ORDER,
    FOK,
    IOC,
    MARKET,
    RJ_ABOVE_UPPER,
    RJ_AUCTION_TIF,
    RJ_BELOW_LOWER,
    RJ_CLOSED,
    RJ_HALTED,
    RJ_NONE,
    RJ_OFF_GRID,
    RJ_POST_CLOSE_PRICE,
    RJ_SIDECAR,
)
from venues.kernel import kernel

# -- the venue's block of the arena ----------------------------------------------------------
# The indices the market watch keeps (slot k of each per-index block; bit k of I_INDICES):
# the two markets, each with its circuit breakers, and the index the sidecar watches.
IX_KOSPI, IX_KOSDAQ, IX_SIDECAR = range(3)
N_INDICES = 3
N_MARKETS = 2  # IX_KOSPI, IX_KOSDAQ: the indices with circuit breakers
# Header slots: which rules apply (H_RULES, a set of RULE_* bits), the event a kernel stopped
# for; per index its numerator (H_IDX_NUM + k) and the day's lowest numerator (H_IDX_LOW +
# k); per market its circuit-breaker trigger and since when it holds; the index future for
# the sidecar (an instrument, FUT_PROXY: the sidecar index, -1: none) with its band; the
# program side the sidecar suspended.
H_RULES, H_EV_KIND, H_EV_INST, H_EV_PX, H_EV_REF, H_EV_TS = range(BOOK_HEADER, BOOK_HEADER + 6)
H_IDX_NUM = BOOK_HEADER + 6
H_IDX_LOW = H_IDX_NUM + N_INDICES
H_IDX_TRIG = H_IDX_LOW + N_INDICES
H_IDX_SINCE = H_IDX_TRIG + N_MARKETS
(H_FUT_INST, H_FUT_LO, H_FUT_HI, H_FUT_SINCE, H_PROG_SIDE,
 H_PROG_UNTIL) = range(H_IDX_SINCE + N_MARKETS, H_IDX_SINCE + N_MARKETS + 6)
VENUE_HEADER_END = H_PROG_UNTIL + 1
FUT_PROXY = -2  # H_FUT_INST: the sidecar watches the proxy, the sidecar index's numerator
# Instrument columns: trading phase, the day's price limits (0: none), the static VI
# reference, the VI thresholds in basis points (0: off), shares outstanding (index weight),
# the day's closing price (post-close trading), the indices the name counts in (bit k:
# index k).
(I_PHASE, I_LO_LIM, I_UP_LIM, I_STATIC_REF, I_DYN_BP, I_STATIC_BP, I_SHARES,
 I_CLOSE_PX, I_INDICES) = range(BOOK_COLS, BOOK_COLS + 9)
VENUE_COLS_END = BOOK_COLS + 9
register_columns("venue rules", phase=I_PHASE, lower_limit=I_LO_LIM, upper_limit=I_UP_LIM,
                 close=I_CLOSE_PX)
# Phases (I_PHASE): continuous matching, single-price auction (orders rest, nothing
# matches), halted (cancels only), closed (nothing), post-close (orders at the close only).
PH_CONTINUOUS, PH_AUCTION, PH_HALTED, PH_CLOSED, PH_POST_CLOSE = range(5)
PHASES = ("continuous", "auction", "halted", "closed", "post_close")

# The rules a venue applies, as bits of H_RULES; the generic venue has none (every order is
# accepted, matching is never interrupted). A venue composes its set (venues/krx/venue.py).
RULE_ORDER_CHECKS = 1  # check_order: phases, price limits, tick grid, sidecar
RULE_MARKET_AT_LIMIT = 2  # a market order is a limit order at the day's limit
RULE_VI = 4  # volatility interruptions in continuous trading
RULE_SESSION = 8  # history obeys the phases and limits; the venue runs its own auctions
RULE_MARKET_WATCH = 16  # the index and the index future, for circuit breakers and sidecar
RULE_WHOLE_BOOK_CROSS = 32  # a crossing historical order executes against the whole book
RULES_KRX = (RULE_ORDER_CHECKS | RULE_MARKET_AT_LIMIT | RULE_VI | RULE_SESSION
             | RULE_MARKET_WATCH | RULE_WHOLE_BOOK_CROSS)


@kernel
def watches_market(S):
    """Whether the venue keeps the index and the index future (RULE_MARKET_WATCH)."""
    return (S[H_RULES] & RULE_MARKET_WATCH) != 0


def event_time(S) -> int:
    """The time of the event a venue rule stopped the loop for (VENUE_EVENT)."""
    return int(S[H_EV_TS])


def init_slots(S) -> None:
    """The venue's header slots before any venue sets them: no rules, nothing armed."""
    S[H_RULES:VENUE_HEADER_END] = 0
    S[H_EV_INST] = S[H_FUT_INST] = S[H_FUT_SINCE] = -1
    S[H_IDX_TRIG:H_IDX_TRIG + N_MARKETS] = -1
    S[H_IDX_SINCE:H_IDX_SINCE + N_MARKETS] = -1

# Venue events a kernel can stop for (H_EV_KIND).
EV_NONE, EV_VI_STATIC, EV_VI_DYNAMIC, EV_CIRCUIT_BREAKER, EV_SIDECAR = range(5)
BP = 10_000
NO_STOP_HI = np.iinfo(np.int64).max
HOLD_NS = 60 * 10**9  # circuit breaker and sidecar: the move must hold for 1 minute
J_PROGRAM = 1  # injected-order flag: a program order (the sidecar suspends these)


@kernel
def on_grid(S, inst, price):
    """Whether ``price`` lies on the instrument's tick grid (its band table)."""
    return price > 0 and price % tick_of(S, inst, price) == 0


@kernel
def check_order(S, inst, side, typ, price, flags, ts):
    """Why the venue refuses an injected order (an RJ_* code), or RJ_NONE."""
    if (S[H_RULES] & RULE_ORDER_CHECKS) == 0:
        return RJ_NONE
    phase = S[ii(S, inst, I_PHASE)]
    if typ == CANCEL_ORDER:
        return RJ_CLOSED if phase == PH_CLOSED else RJ_NONE
    if phase == PH_CLOSED:
        return RJ_CLOSED
    if phase == PH_HALTED:
        return RJ_HALTED
    if (flags & J_PROGRAM) and side == S[H_PROG_SIDE] and ts < S[H_PROG_UNTIL]:
        return RJ_SIDECAR
    if phase == PH_AUCTION and (typ == IOC or typ == FOK):
        return RJ_AUCTION_TIF
    if phase == PH_POST_CLOSE:
        if typ != MARKET and price != S[ii(S, inst, I_CLOSE_PX)]:
            return RJ_POST_CLOSE_PRICE
        return RJ_NONE
    if typ == MARKET:
        return RJ_NONE
    up = S[ii(S, inst, I_UP_LIM)]
    lo = S[ii(S, inst, I_LO_LIM)]
    if up > 0 and price > up:
        return RJ_ABOVE_UPPER
    if lo > 0 and price < lo:
        return RJ_BELOW_LOWER
    if not on_grid(S, inst, price):
        return RJ_OFF_GRID
    return RJ_NONE


@kernel
def market_price(S, inst, side):
    """The price a market order takes at the KRX venue: the day's limit on its side (the
    close in post-close trading); -1 (no bound) at the generic venue."""
    if (S[H_RULES] & RULE_MARKET_AT_LIMIT) == 0:
        return -1
    if S[ii(S, inst, I_PHASE)] == PH_POST_CLOSE:
        return S[ii(S, inst, I_CLOSE_PX)]
    lim = S[ii(S, inst, I_UP_LIM if side == BID else I_LO_LIM)]
    return lim if lim > 0 else -1


@kernel
def _down(ref, bp):
    """Highest price at or beyond the lower threshold: p * BP <= ref * (BP - bp)."""
    return ref * (BP - bp) // BP


@kernel
def _up(ref, bp):
    """Lowest price at or beyond the upper threshold: p * BP >= ref * (BP + bp)."""
    return -((-ref * (BP + bp)) // BP)


@kernel
def vi_stops(S, inst):
    """``(lo, hi)``: an execution at a price ``<= lo`` or ``>= hi`` would trigger a VI.
    (-1, max) where no VI applies (generic venue, outside continuous trading)."""
    lo = np.int64(-1)
    hi = np.int64(NO_STOP_HI)
    if (S[H_RULES] & RULE_VI) == 0 or S[ii(S, inst, I_PHASE)] != PH_CONTINUOUS:
        return lo, hi
    bp = S[ii(S, inst, I_DYN_BP)]
    ref = S[ii(S, inst, I_LAST)]
    if bp > 0 and ref > 0:
        lo = _down(ref, bp)
        hi = _up(ref, bp)
    sbp = S[ii(S, inst, I_STATIC_BP)]
    sref = S[ii(S, inst, I_STATIC_REF)]
    if sbp > 0 and sref > 0:
        lo = max(lo, _down(sref, sbp))
        hi = min(hi, _up(sref, sbp))
    return lo, hi


@kernel
def bounded(limit, side, lo, hi):
    """``limit`` (-1: market) tightened so an aggressor on ``side`` stops short of the VI
    thresholds ``lo``/``hi``."""
    if side == BID:
        if hi == NO_STOP_HI:
            return limit
        cap = hi - 1
        return cap if limit < 0 or limit > cap else limit
    if lo < 0:
        return limit
    floor = lo + 1
    return floor if limit < 0 or limit < floor else limit


@kernel
def beyond(price, lo, hi):
    return price <= lo or price >= hi


@kernel
def trigger_vi(S, inst, price, ts, ref):
    """A VI at ``price``: record the event (static if the static threshold is crossed,
    else dynamic, whose reference ``ref`` is the last trade before the order) and put the
    name in a single-price auction."""
    sbp = S[ii(S, inst, I_STATIC_BP)]
    sref = S[ii(S, inst, I_STATIC_REF)]
    kind = EV_VI_DYNAMIC
    if sbp > 0 and sref > 0 and (price <= _down(sref, sbp) or price >= _up(sref, sbp)):
        kind = EV_VI_STATIC
        ref = sref
    S[H_EV_KIND] = kind
    S[H_EV_INST] = inst
    S[H_EV_PX] = price
    S[H_EV_REF] = ref
    S[H_EV_TS] = ts
    S[ii(S, inst, I_PHASE)] = PH_AUCTION


@kernel
def vi_check(S, inst, side, limit, lo, hi, ts, ref):
    """Whether an aggressor on ``side`` (price bound ``limit``, -1 market) meets a VI: the
    opposite best, which it would execute against, lies at or beyond a threshold computed
    from the last price ``ref``. Called before matching (the best may already lie beyond,
    on either side of the last price) and after a walk stopped at a threshold. Fires the VI
    and returns True if so."""
    if lo < 0 and hi == NO_STOP_HI:
        return False
    k = S[ii(S, inst, I_BEST_ASK if side == BID else I_BEST_BID)]
    if k < 0:
        return False
    p = level_price(S, inst, k)
    if limit >= 0 and ((side == BID and p > limit) or (side != BID and p < limit)):
        return False
    if not beyond(p, lo, hi):
        return False
    trigger_vi(S, inst, p, ts, ref)
    return True


@kernel
def _fire(S, kind, inst, px, ts):
    S[H_EV_KIND] = kind
    S[H_EV_INST] = inst
    S[H_EV_PX] = px
    S[H_EV_REF] = 0
    S[H_EV_TS] = ts


@kernel
def move_indices(S, inst, before, after):
    """``inst``'s price moved from ``before`` to ``after``: move the numerator of every index
    it counts in (and its low of the day)."""
    shares = S[ii(S, inst, I_SHARES)]
    if shares > 0 and before > 0 and after != before:
        d = shares * (after - before)
        bits = S[ii(S, inst, I_INDICES)]
        for k in range(N_INDICES):
            if bits & (1 << k):
                num = S[H_IDX_NUM + k] + d
                S[H_IDX_NUM + k] = num
                if num < S[H_IDX_LOW + k]:
                    S[H_IDX_LOW + k] = num


@kernel
def market_watch(S, inst, before, ts):
    """Keep the index numerators up to date after ``inst``'s last price moved from
    ``before``, and fire a market's circuit breaker (event instrument: the market's index
    slot) or the sidecar once their move has held for a minute. Called after every event at
    the KRX venue."""
    move_indices(S, inst, before, S[ii(S, inst, I_LAST)])
    for m in range(N_MARKETS):
        trig = S[H_IDX_TRIG + m]
        if trig < 0:
            continue
        if S[H_IDX_NUM + m] <= trig:
            if S[H_IDX_SINCE + m] < 0:
                S[H_IDX_SINCE + m] = ts
            elif ts - S[H_IDX_SINCE + m] >= HOLD_NS:
                S[H_IDX_TRIG + m] = -1
                S[H_IDX_SINCE + m] = -1
                _fire(S, EV_CIRCUIT_BREAKER, m, S[H_IDX_NUM + m], ts)
                return
        else:
            S[H_IDX_SINCE + m] = -1
    fut = S[H_FUT_INST]
    if fut == -1:
        return
    p = S[H_IDX_NUM + IX_SIDECAR] if fut == FUT_PROXY else S[ii(S, fut, I_LAST)]
    if p > 0 and (p <= S[H_FUT_LO] or p >= S[H_FUT_HI]):
        if S[H_FUT_SINCE] < 0:
            S[H_FUT_SINCE] = ts
        elif ts - S[H_FUT_SINCE] >= HOLD_NS:
            S[H_FUT_INST] = -1
            S[H_FUT_SINCE] = -1
            _fire(S, EV_SIDECAR, fut, p, ts)
    else:
        S[H_FUT_SINCE] = -1


@kernel
def accepts_history(S, inst, act_is_add):
    """Whether a historical row of ``inst`` applies in its phase: no new order while the
    market is closed or halted; cancels and deletes always apply."""
    phase = S[ii(S, inst, I_PHASE)]
    return not (act_is_add and (phase == PH_CLOSED or phase == PH_HALTED))


@kernel
def matching_allowed(S, inst):
    """Whether orders of ``inst`` may execute now (not in an auction, halt or closure)."""
    ph = S[ii(S, inst, I_PHASE)]
    return ph == PH_CONTINUOUS or ph == PH_POST_CLOSE
