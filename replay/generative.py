"""Generative mode: no tape; a reactive synthetic flow trades against the injected orders.

The background flow is the synthetic generator's (replay/synth.py, its "reactive hooks"),
but here it acts on the replay's own book: limit orders are placed relative to the
*simulated* best bid and ask, cancels pick among the flow's own live orders, market orders
walk the simulated book, and a latent value is pulled towards every trade's price in
proportion to its size, injected trades included. So when an injected sell knocks the price
down, nothing re-centres it from outside: whatever part of the impact persists, or relaxes,
does so through the flow's reaction (docs/replay-modes.md).

Sessions: the continuous session of each XKRX trading day, 09:00-15:20 Asia/Seoul. Each day
opens with a book of the profile's size around the previous close and ends with the book
cleared; the next day's base price is the day's last trade, and prices stay inside the day's
daily limits.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np

from replay.engine import (
    InjectedOrders,
    Replay,
    ReplayResult,
)
from replay.synth import (
    INSTRUMENT_ID,
    _resolve,
    arrival_gap_ns,
    cancel_size,
    choose_action,
    evolve_value,
    follow_trade,
    limit_order,
    market_order,
)
from replay.tape import ADD, CANCEL, MODIFY, TRADE, Instrument, InstrumentTable
from venues import loop
from venues.book import (
    I_BEST_ASK,
    I_BEST_BID,
    I_LAST,
    NEED_ORDERS,
    NEED_OUTPUT,
    O_ID,
    O_SIZE,
    OK,
    alloc_order,
    can_alloc,
    clear_instrument,
    enqueue,
    find_order,
    ii,
    level_index,
    level_price,
    oi,
    reduce_order,
    release,
)
from venues.codes import (
    ASK,
    BID,
    SRC_HISTORY,
)
from venues.kernel import kernel
from venues.krx.calendar import trading_days
from venues.krx.limits import price_limits
from venues.krx.session import continuous_bounds_ns
from venues.krx.ticks import price_grid, tick_size
from venues.matching import (
    E_PRICE,
    E_SIZE,
    FILLS,
    J_COLS,
    J_INST,
    J_PRICE,
    J_TS,
    fi,
    match,
    prints_from_fills,
    room,
)

SRC_FLOW = SRC_HISTORY  # the background flow plays history's part in this mode
FLOW_TAKER = -1
# Flow state (st[...]): next order id, live-list length, time since the open (ns), events.
G_NEXT_ID, G_NLIST, G_T, G_EVENTS = range(4)


@kernel
def _best(S, inst, side):
    k = S[ii(S, inst, I_BEST_BID if side == BID else I_BEST_ASK)]
    return level_price(S, inst, k) if k >= 0 else 0


@kernel
def _flow_add(S, inst, ts, side, price, size, st, live):
    row = alloc_order(S)
    oid = st[G_NEXT_ID]
    st[G_NEXT_ID] += 1
    enqueue(S, row, oid, inst, side, price, size, 0, -1, ts,
            level_index(S, inst, side, price))
    live[st[G_NLIST]] = oid
    st[G_NLIST] += 1


@kernel
def _pick_live(S, inst, st, live, rng):
    """A live flow order's row, picked uniformly; ids the book no longer has (filled) are
    dropped from the list on the way. -1 if none is left."""
    while st[G_NLIST] > 0:
        j = int(rng.random() * st[G_NLIST])
        row = find_order(S, live[j], inst)
        if row >= 0 and S[oi(S, row, O_SIZE)] > 0:
            return row
        st[G_NLIST] -= 1
        live[j] = live[st[G_NLIST]]
    return -1


@kernel
def _remove_from_live(st, live, oid):
    for j in range(st[G_NLIST]):
        if live[j] == oid:
            st[G_NLIST] -= 1
            live[j] = live[st[G_NLIST]]
            return


@kernel
def run_session(S, F, OUT, inj, jpos, inst, open_ns, session_ns, params, ladder, rng,
                st, live, value, n_open):
    """Generate one session from ``st[G_T]`` (0 at the open), injected orders merged in by
    time. Returns (status, jpos); the flow state lives in ``st``/``live``/``value``."""
    nj = inj.shape[0]
    if st[G_T] == 0 and n_open > 0 and st[G_NLIST] == 0:
        for _ in range(n_open):
            if not can_alloc(S) or st[G_NLIST] >= live.shape[0]:
                return NEED_ORDERS, jpos
            side, price, size = limit_order(_best(S, inst, BID), _best(S, inst, ASK),
                                            S[ii(S, inst, I_LAST)], params, ladder,
                                            value[0], rng)
            if size > 0:
                _flow_add(S, inst, open_ns, side, price, size, st, live)
        st[G_T] = 1
    while st[G_T] < session_ns:
        ts = open_ns + st[G_T]
        while jpos < nj and inj[jpos, J_TS] <= ts:
            if not room(S, OUT):
                return NEED_OUTPUT, jpos
            start = OUT[FILLS + 2]
            status = loop._inject(S, F, OUT, inj, jpos, loop.GENERATIVE)
            if status != OK:
                return status, jpos
            _follow(S, OUT, start, value, params)
            loop.write_top(S, OUT, inst, inj[jpos, J_TS])
            jpos += 1
        if not room(S, OUT):
            return NEED_OUTPUT, jpos
        if not can_alloc(S) or st[G_NLIST] + 1 >= live.shape[0]:
            return NEED_ORDERS, jpos
        bid = _best(S, inst, BID)
        ask = _best(S, inst, ASK)
        last = S[ii(S, inst, I_LAST)]
        action = choose_action(st[G_NLIST], params, rng)
        if action == ADD:
            side, price, size = limit_order(bid, ask, last, params, ladder, value[0], rng)
            if size > 0:
                _flow_add(S, inst, ts, side, price, size, st, live)
        elif action == TRADE:
            side, size = market_order(bid, ask, last, params, ladder, value[0], rng)
            start = OUT[FILLS + 2]
            match(S, OUT, inst, side, -1, size, ts, FLOW_TAKER, SRC_FLOW, False, -1)
            _follow(S, OUT, start, value, params)
        else:
            row = _pick_live(S, inst, st, live, rng)
            if row >= 0:
                resting = S[oi(S, row, O_SIZE)]
                cut = cancel_size(resting, params, rng) if action == CANCEL else resting
                oid = S[oi(S, row, O_ID)]
                reduce_order(S, row, cut)
                if S[oi(S, row, O_SIZE)] == 0:
                    release(S, row)
                    _remove_from_live(st, live, oid)
                if action == MODIFY:
                    side, price, size = limit_order(_best(S, inst, BID),
                                                    _best(S, inst, ASK), last, params,
                                                    ladder, value[0], rng)
                    if size > 0:
                        _flow_add(S, inst, ts, side, price, size, st, live)
        loop.write_top(S, OUT, inst, ts)
        st[G_EVENTS] += 1
        gap = arrival_gap_ns(st[G_T], params, rng)
        value[0] = evolve_value(value[0], gap, params, rng)
        value[0] = min(max(value[0], ladder[0]), ladder[ladder.shape[0] - 1])
        st[G_T] += gap
    return OK, jpos


@kernel
def _follow(S, OUT, start, value, params):
    """Trade prints for the fills since ``start``; the latent value follows each trade."""
    end = OUT[FILLS + 2]
    prints_from_fills(OUT, start)
    for i in range(start, end):
        value[0] = follow_trade(value[0], OUT[fi(OUT, i, E_PRICE)], OUT[fi(OUT, i, E_SIZE)],
                                params)


@kernel
def _end_session(S, inst):
    clear_instrument(S, inst)


def flow_instruments(profile: str, start: date = date(2024, 1, 2)) -> InstrumentTable:
    """The instrument table of a generative run (for reading injected orders by symbol)."""
    prof = _resolve(profile)
    day0 = trading_days(start, 1)[0]
    return InstrumentTable([Instrument(
        instrument_id=INSTRUMENT_ID, symbol=prof.symbol, venue="XKRX", book_type="L3",
        tick_units=tick_size(prof.start_price, on=day0), prev_close_units=prof.start_price,
        market="KOSPI")])


def run_generative(profile: str, *, days: int = 1, seed: int = 0,
                   injected: InjectedOrders | None = None,
                   start: date = date(2024, 1, 2)) -> ReplayResult:
    """Generate ``days`` sessions of ``profile`` with ``injected`` orders trading against the
    reactive flow. Same profile, days, seed and orders: identical results."""
    prof = _resolve(profile)
    params = prof.to_params()
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1])))
    day0 = trading_days(start, 1)[0]
    table = flow_instruments(profile, start)
    rp = Replay(table, "generative", session_date=day0)
    orders = injected or InjectedOrders.empty()
    jbase = rp.add_orders(orders)
    inj = rp.injected_orders()
    jpos = 0
    live = np.zeros(4 * prof.live_orders + 1024, np.int64)
    st = np.zeros(4, np.int64)
    st[G_NEXT_ID] = 1
    base = prof.start_price
    t0 = time.perf_counter()
    for day in trading_days(start, days):
        lower, upper = price_limits(base, on=day)
        ladder = np.asarray(price_grid(lower, upper, on=day), np.int64)
        rp.ensure_ladder(INSTRUMENT_ID, lower, upper)
        rp.book.column("last")[INSTRUMENT_ID] = base
        open_ns, close_ns = continuous_bounds_ns(day)
        value = np.array([float(base)])
        st[G_T] = 0
        st[G_NLIST] = 0
        while True:
            status, jpos = run_session(rp.book.S, rp.F, rp.reports.OUT, inj, jpos,
                                       INSTRUMENT_ID, open_ns, close_ns - open_ns, params,
                                       ladder, rng, st, live, value, prof.live_orders)
            if status == OK:
                break
            if status == NEED_ORDERS and st[G_NLIST] + 1 >= len(live):
                live = np.concatenate([live, np.zeros(len(live), np.int64)])
            else:
                at = inj[jpos] if jpos < len(inj) else np.zeros(J_COLS, np.int64)
                rp.grow(status, int(at[J_INST]), int(at[J_PRICE]))  # a ladder: the order's
        last = int(rp.book.column("last")[INSTRUMENT_ID])
        if last > 0:
            base = last
        _end_session(rp.book.S, INSTRUMENT_ID)
    rp.flush()
    events = int(st[G_EVENTS])
    rp.book.counters[loop.C_EVENTS] = events
    return rp.result(events, time.perf_counter() - t0, jbase)
