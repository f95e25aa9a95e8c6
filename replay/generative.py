"""Generative mode: no tape; a reactive synthetic flow trades against the injected orders.

The background flow is the synthetic generator's (replay/synth.py, its "reactive hooks"),
but here it acts on the replay's own book: limit orders are placed relative to the
*simulated* best bid and ask, cancels pick among the flow's own live orders, market orders
walk the simulated book, and a latent value is pulled towards every trade's price in
proportion to its size, injected trades included. So when an injected sell knocks the price
down, nothing re-centres it from outside: whatever part of the impact persists, or relaxes,
does so through the flow's reaction (docs/replay-modes.md).

Sessions: the continuous session of each XKRX trading day, 09:00-15:20 Asia/Seoul. Each day
opens with a book of the profile's size around the previous close, and prices stay inside
the day's daily limits.

The flow is an event source of the replay's one driver (:meth:`replay.engine.Replay.drive`),
as a tape is, so a generative run has the same participants as a replay:

- at the generic venue each day's book is cleared at the session's end and the next day's
  base price is the day's last trade; an injected order after the session meets the next
  day's opening book;
- at the KRX venue the venue runs the sessions around the flow: the day's base price and
  limits are the venue's, the flow's opening book rests in the opening auction with the
  orders sent before the open (the brokers' forced sales at the pre-open), its orders rest
  through VIs, halts and the closing auction, and the venue uncrosses them; its market orders
  trade when the venue matches, within the VI thresholds, and in a single-price auction are
  priced at the flow's value and join the uncross, which so finds the price the flow
  believes in (a VI moves it by at most the VI's band at a time); the venue clears the book
  at the day's end;
- brokers wake on its prices and a strategy trades against it; the counterfactual is the
  same flow (same seed) with the brokers' orders switched off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from datetime import time as clock

import numpy as np

from replay.engine import InjectedOrders, Replay, ReplayResult
from replay.synth import (
    INSTRUMENT_ID,
    _check_shocks,
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
    NEED_ORDERS,
    NEED_OUTPUT,
    OK,
    PAUSE,
    alloc_order,
    best_price,
    can_alloc,
    clear_instrument,
    enqueue,
    find_order,
    last_price,
    level_index,
    order_fields,
    reduce_order,
    release,
)
from venues.codes import ASK, BID, SRC_HISTORY
from venues.kernel import kernel
from venues.krx.calendar import trading_days
from venues.krx.limits import price_limits
from venues.krx.session import continuous_bounds_ns, seoul_ns
from venues.krx.ticks import price_grid, tick_size
from venues.matching import E_PRICE, E_SIZE, FILLS, J_COLS, J_INST, J_PRICE, J_TS, fi, room
from venues.participants import NEVER
from venues.rules import (
    accepts_history,
    market_watch,
    matching_allowed,
    vi_stops,
    watches_market,
)

FLOW_TAKER = -1
# Flow state (st[...]): next order id, live-list length, time since the open (ns), events.
G_NEXT_ID, G_NLIST, G_T, G_EVENTS = range(4)


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
        if row >= 0 and order_fields(S, row)[3] > 0:
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
def _at_value(ladder, value, side):
    """The ladder's price at ``value``: for a buy the first at or above it, for a sell the
    last at or below it."""
    k = np.searchsorted(ladder, value)
    if k >= ladder.shape[0]:
        return ladder[ladder.shape[0] - 1]
    if side == BID or ladder[k] == value or k == 0:
        return ladder[k]
    return ladder[k - 1]


@kernel
def _follow(OUT, start, value, params):
    """The latent value follows each fill written since ``start``."""
    for i in range(start, OUT[FILLS + 2]):
        value[0] = follow_trade(value[0], OUT[fi(OUT, i, E_PRICE)], OUT[fi(OUT, i, E_SIZE)],
                                params)


@kernel
def _orders(S, F, OUT, inj, jpos, upto, until, value, params):
    """Execute the injected orders up to time ``upto`` (PAUSE at ``until``; VENUE_EVENT or
    WAKE after an order that fired them). Returns (status, jpos)."""
    watch = watches_market(S)
    nj = inj.shape[0]
    while jpos < nj and inj[jpos, J_TS] <= upto:
        ts = inj[jpos, J_TS]
        if ts >= until:
            return PAUSE, jpos
        if not room(S, OUT):
            return NEED_OUTPUT, jpos
        inst = inj[jpos, J_INST]
        before = last_price(S, inst)
        start = OUT[FILLS + 2]
        status = loop.execute_injected(S, F, OUT, inj, jpos, loop.GENERATIVE)
        if status != OK:
            return status, jpos
        _follow(OUT, start, value, params)
        loop.write_top(S, OUT, inst, ts)
        if watch:
            market_watch(S, inst, before, ts)
        jpos += 1
        status = loop.stop_after(S, OUT, inst, ts)
        if status != OK:
            return status, jpos
    return OK, jpos


@kernel
def run_session(S, F, OUT, inj, jpos, inst, open_ns, session_ns, params, ladder, rng,
                st, live, value, n_open, until, early, drain_until):
    """Generate one session from ``st[G_T]`` (0 at the open), injected orders merged in by
    time, until it ends or stops: PAUSE before the first input at or after ``until``;
    VENUE_EVENT or WAKE after an event that fired them; NEED_* for room. ``early``: the
    orders sent before the open are executed first (a venue's opening auction), else after
    the opening book. After the session, the injected orders up to ``drain_until`` (-1:
    none). Returns (status, jpos); the flow's state lives in ``st``/``live``/``value``."""
    if st[G_T] == 0:
        if early:
            status, jpos = _orders(S, F, OUT, inj, jpos, open_ns - 1, until, value, params)
            if status != OK:
                return status, jpos
        if open_ns >= until:
            return PAUSE, jpos
        if n_open > 0 and st[G_NLIST] == 0:
            for _ in range(n_open):
                if not can_alloc(S) or st[G_NLIST] >= live.shape[0]:
                    return NEED_ORDERS, jpos
                side, price, size = limit_order(best_price(S, inst, BID),
                                                best_price(S, inst, ASK), last_price(S, inst),
                                                params, ladder, value[0], rng)
                if size > 0:
                    _flow_add(S, inst, open_ns, side, price, size, st, live)
            st[G_T] = 1
    watch = watches_market(S)
    while st[G_T] < session_ns:
        ts = open_ns + st[G_T]
        status, jpos = _orders(S, F, OUT, inj, jpos, ts, until, value, params)
        if status != OK:
            return status, jpos
        if ts >= until:
            return PAUSE, jpos
        if not room(S, OUT):
            return NEED_OUTPUT, jpos
        if not can_alloc(S) or st[G_NLIST] + 1 >= live.shape[0]:
            return NEED_ORDERS, jpos
        bid = best_price(S, inst, BID)
        ask = best_price(S, inst, ASK)
        last = last_price(S, inst)
        adds = accepts_history(S, inst, True)  # not while the market is halted or closed
        action = choose_action(st[G_NLIST], params, rng)
        if action == ADD:
            side, price, size = limit_order(bid, ask, last, params, ladder, value[0], rng)
            if size > 0 and adds:
                _flow_add(S, inst, ts, side, price, size, st, live)
        elif action == TRADE:
            side, size = market_order(bid, ask, last, params, ladder, value[0], rng)
            if not matching_allowed(S, inst):
                # a single-price auction (open, close, VI): the flow's takers price their
                # orders at its value (a buy at the tick at or above it, a sell at or below),
                # so the uncross finds the price the flow believes in
                if size > 0 and adds:
                    _flow_add(S, inst, ts, side, _at_value(ladder, value[0], side), size, st,
                              live)
            else:
                start = OUT[FILLS + 2]
                lo, hi = vi_stops(S, inst)
                # the flow plays history's part: its prints are the tape's
                filled, _ = loop.match_within_vi(S, OUT, inst, side, -1, lo, hi, size, ts,
                                                 FLOW_TAKER, SRC_HISTORY, False, -1)
                if filled > 0:
                    loop.mark_last_generation(S, inst, 0)  # the flow plays history's part
                _follow(OUT, start, value, params)
        else:
            row = _pick_live(S, inst, st, live, rng)
            if row >= 0:
                oid, _, _, resting = order_fields(S, row)
                cut = cancel_size(resting, params, rng) if action == CANCEL else resting
                reduce_order(S, row, cut)
                if order_fields(S, row)[3] == 0:
                    release(S, row)
                    _remove_from_live(st, live, oid)
                if action == MODIFY:
                    side, price, size = limit_order(best_price(S, inst, BID),
                                                    best_price(S, inst, ASK), last, params,
                                                    ladder, value[0], rng)
                    if size > 0 and adds:
                        _flow_add(S, inst, ts, side, price, size, st, live)
        loop.write_top(S, OUT, inst, ts)
        if watch:
            market_watch(S, inst, last, ts)
        st[G_EVENTS] += 1
        gap = arrival_gap_ns(st[G_T], params, rng)
        value[0] = evolve_value(value[0], gap, params, rng)
        value[0] = min(max(value[0], ladder[0]), ladder[ladder.shape[0] - 1])
        st[G_T] += gap
        status = loop.stop_after(S, OUT, inst, ts)
        if status != OK:
            return status, jpos
    return _orders(S, F, OUT, inj, jpos, drain_until, until, value, params)


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


class GenerativeFlow:
    """The reactive flow as an event source of :meth:`Replay.drive`: ``days`` sessions of
    ``profile`` from ``start``, seeded by ``seed``."""

    def __init__(self, replay: Replay, profile: str, days: int, seed: int,
                 start: date = date(2024, 1, 2), shocks: dict[int, float] | None = None) -> None:
        prof = _resolve(profile)
        self.moves = _check_shocks(shocks, days)  # news overnight: the value moves at the open
        self.prof = prof
        self.params = prof.to_params()
        self.rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1])))
        self.days = trading_days(start, days)
        self.venue = replay.venue
        self.live = np.zeros(4 * prof.live_orders + 1024, np.int64)
        self.st = np.zeros(4, np.int64)
        self.st[G_NEXT_ID] = 1
        self.base = prof.start_price
        self.k = 0  # the day being generated
        self.ready = False
        self.value = np.array([float(self.base)])

    def first_ts(self) -> int:
        """When the run begins: the first day's pre-open at a venue, else its open."""
        day = self.days[0]
        return seoul_ns(day, clock(8, 30)) if self.venue is not None else \
            continuous_bounds_ns(day)[0]

    def _set_up_day(self, rp: Replay) -> None:
        day = self.days[self.k]
        if self.venue is None:
            lower, upper = price_limits(self.base, on=day)
            rp.ensure_ladder(INSTRUMENT_ID, lower, upper)
            rp.book.column("last")[INSTRUMENT_ID] = self.base
        else:  # the venue opened the day: its base price and limits
            lower = int(rp.book.column("lower_limit")[INSTRUMENT_ID])
            upper = int(rp.book.column("upper_limit")[INSTRUMENT_ID])
            self.base = int(rp.book.column("last")[INSTRUMENT_ID])
        self.ladder = np.asarray(price_grid(lower, upper, on=day), np.int64)
        self.open_ns, close_ns = continuous_bounds_ns(day)
        self.session_ns = close_ns - self.open_ns
        self.value = np.array([float(self.base) * (1.0 + self.moves.get(self.k, 0.0))])
        self.st[G_T] = 0
        self.st[G_NLIST] = 0
        self.ready = True

    def advance(self, rp: Replay, until: int) -> int:
        while self.k < len(self.days):
            if not self.ready:
                if self.venue is not None and self.venue.day != self.days[self.k]:
                    if until == NEVER:
                        raise RuntimeError("the venue has no session left for the flow")
                    return PAUSE  # the venue opens the day first
                self._set_up_day(rp)
            last_day = self.k == len(self.days) - 1
            # at a venue, the orders after the session meet its closing auction and the next
            # pre-open; at the generic venue, the next day's opening book (none after the last)
            drain = -1 if self.venue is None else NEVER if last_day else \
                continuous_bounds_ns(self.days[self.k + 1])[0] - 1
            status, rp.order_pos = run_session(
                rp.book.S, rp.F, rp.reports.OUT, rp.injected_orders(), rp.order_pos, INSTRUMENT_ID,
                self.open_ns, self.session_ns, self.params, self.ladder, self.rng, self.st,
                self.live, self.value, self.prof.live_orders, until, self.venue is not None,
                drain)
            if status == NEED_ORDERS and self.st[G_NLIST] + 1 >= len(self.live):
                self.live = np.concatenate([self.live, np.zeros(len(self.live), np.int64)])
                continue
            if status != OK:
                return status
            if self.venue is None:
                last = int(rp.book.column("last")[INSTRUMENT_ID])
                if last > 0:
                    self.base = last
                _end_session(rp.book.S, INSTRUMENT_ID)
            self.k += 1
            self.ready = False
        return OK

    def next_input(self, rp: Replay) -> int:
        t = self.open_ns + int(self.st[G_T]) if self.ready else NEVER
        if rp.order_pos < len(rp.injected_orders()):
            t = min(t, int(rp.injected_orders()[rp.order_pos, J_TS]))
        return t

    def needs(self, rp: Replay) -> tuple[int, int]:
        inj, jpos = rp.injected_orders(), rp.order_pos
        at = inj[jpos] if jpos < len(inj) else np.zeros(J_COLS, np.int64)
        return int(at[J_INST]), int(at[J_PRICE])  # a ladder: an injected order's


def generative_replay(profile: str, *, venue: str = "generic", seed: int = 0,
                      start: date = date(2024, 1, 2)) -> Replay:
    """A replay of the flow's instrument, to attach brokers and strategies to before
    :func:`run_generative`."""
    day0 = trading_days(start, 1)[0]
    return Replay(flow_instruments(profile, start), "generative", session_date=day0,
                  venue=venue, seed=seed)


def run_generative(profile: str, *, days: int = 1, seed: int = 0,
                   injected: InjectedOrders | None = None,
                   start: date = date(2024, 1, 2), replay: Replay | None = None,
                   sink=None, shocks: dict[int, float] | None = None) -> ReplayResult:
    """Generate ``days`` sessions of ``profile`` with ``injected`` orders trading against the
    reactive flow, in ``replay`` (:func:`generative_replay`, with its participants) or a
    fresh one at the generic venue. ``shocks`` maps a day index to a move of the flow's
    value at that day's open (``{1: -0.2}``: a 20% gap down on the second day). Same
    profile, days, seed, shocks, orders and participants: identical results."""
    rp = replay if replay is not None else generative_replay(profile, seed=seed, start=start)
    flow = GenerativeFlow(rp, profile, days, seed, start, shocks)
    t0 = time.perf_counter()
    result = rp.run_source(flow, flow.first_ts(), injected, sink=sink,
                           events=lambda: int(flow.st[G_EVENTS]))
    result.wall_seconds = time.perf_counter() - t0
    return result


@dataclass
class FlowInputs:
    """What a generative run takes in place of a tape (replay/runner.py): the flow's
    profile, days, shocks and first day, its instrument table, and how to run it."""

    profile: str
    days: int = 1
    shocks: dict[int, float] = field(default_factory=dict)
    start: date = date(2024, 1, 2)
    session_seed = None

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"--days {self.days}: generate at least one day")
        _check_shocks(self.shocks, self.days)
        self.instruments = flow_instruments(self.profile, self.start)
        self.first_day = trading_days(self.start, 1)[0]

    def __len__(self) -> int:
        return 0  # events are generated, not read: no length to show progress against

    def replay(self, venue: str, seed: int) -> Replay:
        return generative_replay(self.profile, venue=venue, seed=seed, start=self.start)

    def run(self, rp: Replay, seed: int, injected: InjectedOrders | None,
            sink=None) -> ReplayResult:
        return run_generative(self.profile, days=self.days, seed=seed, injected=injected,
                              start=self.start, replay=rp, sink=sink, shocks=self.shocks)
