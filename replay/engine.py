"""The replay front: owns the book and output buffers, feeds tape chunks to the kernel.

``Replay`` speaks the domain's words (mode, injected orders, results); the arrays and the
kernel live in :mod:`venues.book`, :mod:`venues.matching` and :mod:`venues.loop`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from replay.tape import Events, InstrumentTable
from venues import loop
from venues import rules as venue_rules
from venues.book import (
    MIN_TABLE,
    NEED_LADDER,
    NEED_ORDERS,
    NEED_OUTPUT,
    OK,
    PAUSE,
    VENUE_EVENT,
    WAKE,
    BookState,
    last_price,
)
from venues.codes import (
    ORDER_TYPES,
    REASON_NAMES,  # noqa: F401  (the names of the result codes, read with the results)
    SOURCE_NAMES,  # noqa: F401
    STATUS_NAMES,  # noqa: F401
)
from venues.kernel import njit_alloc
from venues.krx.calendar import KRX_CALENDAR
from venues.matching import (
    FILLS,
    J_COLS,
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
    Reports,
    rows_needed,
)
from venues.participants import NEVER, Participant, ordered
from venues.ticks import tick_scheme

VENUES = ("generic", "krx")


#: The most price levels one instrument's ladder may hold (about 235 MB of levels): the
#: bound that keeps one stray price from allocating gigabytes. Loaders keep every price
#: within ``MAX_SPAN_TICKS`` ticks of its median (replay/quality.py: bounds), a quarter of it.
MAX_LADDER_LEVELS = 1 << 21
_STATUS, _CLEAR = ord("S"), ord("R")


@njit_alloc
def price_ranges(inst_a, act_a, px_a, n_instruments):
    """Lowest and highest positive price per instrument in one pass (0, 0 where none); the
    ``price`` of status and clear rows is not a price (LOBSTER keeps a halt code there)."""
    lo = np.zeros(n_instruments, np.int64)
    hi = np.zeros(n_instruments, np.int64)
    for i in range(px_a.shape[0]):
        p = px_a[i]
        k = inst_a[i]
        if p > 0 and k < n_instruments and act_a[i] != _STATUS and act_a[i] != _CLEAR:
            if hi[k] == 0 or p < lo[k]:
                lo[k] = p
            if p > hi[k]:
                hi[k] = p
    return lo, hi


@dataclass
class InjectedOrders:
    """Orders sent into the replay by its users (broker, strategy, a CSV of orders).

    ``type``: market, limit, ioc, fok, cancel (for cancel, ``price`` is the index of the
    order to cancel). ``side``: ``B`` buy or ``A`` sell (bytes codes 66/65). ``flags``:
    :data:`venues.rules.J_PROGRAM` marks a program order (the KRX sidecar suspends these).
    ``input_row``: each order's 1-based data row in the file it was read from (-1 or None:
    not from a file), carried into ``injected.parquet``.
    """

    ts: np.ndarray
    instrument: np.ndarray
    side: np.ndarray
    type: np.ndarray
    price: np.ndarray
    size: np.ndarray
    flags: np.ndarray | None = None
    input_row: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> InjectedOrders:
        z = np.zeros(0, np.int64)
        return cls(z, z, z, z, z, z)

    def input_rows(self) -> np.ndarray:
        """Each order's input row, -1 where it has none."""
        if self.input_row is None:
            return np.full(len(self), -1, np.int64)
        return np.asarray(self.input_row, np.int64)

    def as_matrix(self, first_id: int = 0) -> np.ndarray:
        """The kernel's matrix; the orders' result rows are ``first_id`` onwards (a cancel's
        ``price``, the index of its target among these orders, becomes that row too)."""
        m = np.zeros((len(self), J_COLS), np.int64)
        m[:, J_TS] = self.ts
        m[:, J_INST] = self.instrument
        m[:, J_SIDE] = self.side
        m[:, J_TYPE] = self.type
        m[:, J_PRICE] = self.price
        m[:, J_SIZE] = self.size
        if self.flags is not None:
            m[:, J_FLAGS] = self.flags
        m[:, J_ID] = first_id + np.arange(len(self))
        m[:, J_GEN] = -1
        cancels = m[:, J_TYPE] == ORDER_TYPES["cancel"]
        m[cancels, J_PRICE] += first_id
        if len(self) and np.any(np.diff(m[:, J_TS]) < 0):
            raise ValueError("injected orders must be in time order")
        bad = ~np.isin(m[:, J_TYPE], list(ORDER_TYPES.values()))
        if bad.any():
            raise ValueError(f"injected order {int(np.flatnonzero(bad)[0])}: unknown type")
        nonpos = (m[:, J_SIZE] <= 0) & (m[:, J_TYPE] != ORDER_TYPES["cancel"])
        if nonpos.any():
            raise ValueError(f"injected order {int(np.flatnonzero(nonpos)[0])}: size must be > 0")
        return m


@dataclass
class ReplayResult:
    mode: str
    fills: pd.DataFrame
    trades: pd.DataFrame
    top_of_book: pd.DataFrame
    injected: pd.DataFrame
    counters: dict[str, int]
    events: int
    wall_seconds: float
    instruments: InstrumentTable = field(repr=False, default_factory=InstrumentTable)
    venue: str = "generic"
    venue_events: pd.DataFrame = field(default_factory=pd.DataFrame)
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    unfilled: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: KRX venue: each index's levels and halts (venues.krx.venue.KrxVenue.index_report)
    indices: dict = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds if self.wall_seconds > 0 else float("nan")


FILL_NAMES = ["ts", "instrument", "side", "price", "size", "taker", "maker", "maker_order_id",
              "source"]
TRADE_NAMES = ["ts", "instrument", "price", "size", "side", "source"]
TOB_NAMES = ["ts", "instrument", "bid_px", "bid_sz", "ask_px", "ask_sz"]
RESULT_NAMES = ["filled", "notional", "status", "resting", "reason"]
ORDER_NAMES = ["input_row", "ts", "instrument", "side", "type", "price", "size"]


def injected_frame(results: np.ndarray, orders: np.ndarray, input_rows: np.ndarray,
                   first: int = 0) -> pd.DataFrame:
    """One row per injected order, in result-row order: what was sent (``ORDER_NAMES``:
    input row, -1 for none; ts; instrument id; side and type codes; price, which is a
    cancel's target row; size) beside what became of it (``RESULT_NAMES``, integer codes).
    ``results`` are the result rows ``first`` onwards, ``orders`` the kernel's matrix of the
    same orders in any order (column J_ID: the result row), ``input_rows`` indexed by result
    row minus ``first``."""
    ids = orders[:, J_ID]
    orders = orders[(ids >= first) & (ids < first + len(results))]
    orders = orders[np.argsort(orders[:, J_ID], kind="stable")]
    if len(orders) != len(results) or not np.array_equal(
            orders[:, J_ID], first + np.arange(len(results))):
        raise RuntimeError("injected-order results and orders do not correspond")
    cols = {"input_row": np.asarray(input_rows, np.int64)[:len(results)]}
    for name, j in (("ts", J_TS), ("instrument", J_INST), ("side", J_SIDE),
                    ("type", J_TYPE), ("price", J_PRICE), ("size", J_SIZE)):
        cols[name] = orders[:, j].copy()
    frame = pd.DataFrame(cols)
    for k, name in enumerate(RESULT_NAMES):
        frame[name] = results[:, k].copy()
    return frame


class ReportSink(Protocol):
    """Where flushed report rows go instead of memory (fills, trades or top of book)."""

    def append(self, table: int, rows: np.ndarray) -> None: ...


class EventSource(Protocol):
    """What :meth:`Replay.drive` runs: a compiled kernel over some input (a tape chunk, a
    synthetic flow), resumable where it stopped."""

    def advance(self, replay: Replay, until: int) -> int:
        """Run the kernel from where it stopped until it is done (OK), stops before ``until``
        (PAUSE), stops for the participants (VENUE_EVENT, WAKE) or needs room (NEED_*)."""

    def next_input(self, replay: Replay) -> int:
        """The time of the next input event (int64 max: none)."""

    def needs(self, replay: Replay) -> tuple[int, int]:
        """After NEED_LADDER: the instrument and price that need a level."""


class TapeChunk:
    """A chunk of tape rows, with the replay's injected orders merged in by time: the
    source :meth:`Replay.run` drives, chunk after chunk."""

    def __init__(self, ev: Events, mode: int) -> None:
        self.ev, self.mode, self.pos = ev, mode, 0
        self.columns = ev.kernel_columns()

    def advance(self, replay: Replay, until: int) -> int:
        status, self.pos, replay.order_pos = loop.run_chunk(
            *self.columns, self.pos, replay._inj, replay.order_pos, replay.book.S, replay.F,
            replay.reports.OUT, self.mode, until)
        return status

    def next_input(self, replay: Replay) -> int:
        t = int(self.ev.ts[self.pos]) if self.pos < len(self.ev) else loop.NEVER
        if replay.order_pos < len(replay._inj):
            t = min(t, int(replay._inj[replay.order_pos, J_TS]))
        return t

    def needs(self, replay: Replay) -> tuple[int, int]:
        ev, pos, inj, jpos = self.ev, self.pos, replay._inj, replay.order_pos
        if pos < len(ev) and (jpos >= len(inj) or ev.ts[pos] <= inj[jpos, J_TS]):
            return int(ev.instrument[pos]), int(ev.price[pos])
        return int(inj[jpos, J_INST]), int(inj[jpos, J_PRICE])


class Replay:
    """Replays tape chunks through the simulated book under a replay mode.

    ``propagator_tau_s`` and ``propagator_beta`` set the decay kernel
    ``G(t) = (1 + t/tau)^-beta``; the defaults put the impact at about 2/3 of its peak after
    5 minutes and about 1/3 after an hour (docs/replay-modes.md). A ``Replay`` keeps its book
    between calls of :meth:`run`, so a replay can be fed in steps.
    """

    def __init__(self, instruments: InstrumentTable, mode: str = "absolute", *,
                 propagator_tau_s: float = 120.0, propagator_beta: float = 0.324,
                 order_capacity: int = 1 << 16, buffer_rows: int = 1 << 18,
                 table_size: int = MIN_TABLE, session_date: object = None,
                 venue: str = "generic", seed: int = 0, krx_rules: object = None,
                 index_prior_close: float | Mapping[str, float] = 0.0) -> None:
        if mode not in loop.MODES:
            raise ValueError(f"unknown replay mode {mode!r}; choose one of {list(loop.MODES)}")
        if venue not in VENUES:
            raise ValueError(f"unknown venue {venue!r}; choose one of {list(VENUES)}")
        self.instruments = instruments
        self.mode = mode
        n = max(inst.instrument_id for inst in instruments) + 1 if len(instruments) else 0
        self.book = BookState(n, order_capacity, table_size)
        venue_rules.init_slots(self.book.S)
        loop.init_slots(self.book.S, self.book.ins)
        for inst in instruments:
            lo, sz = tick_scheme(inst, session_date)
            try:
                self.book.set_ticks(inst.instrument_id, lo, sz)
            except ValueError as exc:
                raise ValueError(f"{inst.symbol}: {exc}") from None
        self.F = loop.float_state(n, propagator_tau_s * 1e9, propagator_beta)
        self.reports = Reports(buffer_rows)
        self._parts: dict[int, list[np.ndarray]] = {FILLS: [], TRADES: [], TOB: []}
        self._sink: ReportSink | None = None
        self.venue_name = venue
        self.venue = None
        self._inj = np.zeros((0, J_COLS), np.int64)
        #: the next injected order to execute (an event source's kernel advances it)
        self.order_pos = 0
        self.result_gen = np.zeros(0, np.int64)  # per result row: forced-order generation
        self.result_input_row = np.zeros(0, np.int64)  # per result row: its input row or -1
        #: every participant, in the order the driver calls them (replay/participants.py)
        self.participants: list[Participant] = []
        # by id(participant): wake prices, instruments woken on prints, who has started and
        # who has begun (a participant may be an unhashable dataclass)
        self._below: dict[int, np.ndarray] = {}
        self._prints: dict[int, np.ndarray] = {}
        self._started: set[int] = set()
        self._begun: set[int] = set()
        self._clocks: list[Callable[[], int]] = []
        self._observers: list[Participant] = []
        self.calendar = KRX_CALENDAR  # the broker's and strategy's days and clock, any venue
        if venue == "krx":
            from venues.krx.venue import KrxVenue

            self.venue = KrxVenue(self, instruments, seed, rules=krx_rules,
                                  index_prior_close=index_prior_close)
            self.attach(self.venue)

    # -- participants (replay/participants.py) -------------------------------------------------
    def attach(self, participant: Participant) -> None:
        """Host ``participant``: it is called in :data:`replay.participants.ROLES` order,
        in attachment order within its role."""
        if all(p is not participant for p in self.participants):
            self.participants = ordered([*self.participants, participant])
        # what the driver calls at every stop, bound once: the participants that keep time
        # and those that observe (the others' calls are the protocol's no-ops)
        self._clocks = [p.next_ts for p in self.participants
                        if type(p).next_ts is not Participant.next_ts]
        self._observers = [p for p in self.participants
                           if type(p).observe is not Participant.observe]

    @property
    def brokers(self) -> list[Participant]:
        return [p for p in self.participants if p.role == "broker"]

    @property
    def strategies(self) -> list[Participant]:
        return [p for p in self.participants if p.role == "strategy"]

    def wake_below(self, participant: Participant, inst: int, price: int) -> None:
        """Wake ``participant`` (``on_wake``) after an event that leaves ``inst``'s last
        price at or below ``price`` (-1: never). The loop watches the highest of the
        participants' prices, the first a falling price meets."""
        n = len(self.book.ins)
        own = self._below.setdefault(id(participant), np.full(n, -1, np.int64))
        own[inst] = price
        col = self.book.column("wake_below")
        col[inst] = max(int(b[inst]) for b in self._below.values())

    def wake_on_prints(self, participant: Participant, inst: int, on: bool) -> None:
        """Stop the loop after every event that prints a trade on ``inst`` while ``on``
        (for any participant), so that the participants observe it."""
        n = len(self.book.ins)
        own = self._prints.setdefault(id(participant), np.zeros(n, bool))
        own[inst] = on
        col = self.book.column("wake_on_print")
        col[inst] = int(any(p[inst] for p in self._prints.values()))

    # -- what the venue needs (venues.krx.venue.Host) ---------------------------------------
    def out(self) -> np.ndarray:
        return self.reports.OUT

    def report_room(self, fills: int) -> None:
        """Room for ``fills`` more fill rows, a trade print and a top-of-book row."""
        if self.reports.rows - max(self.reports.count(t) for t in self._parts) < fills + 2:
            self.flush()
        if self.reports.rows < fills + 2:
            self.reports = Reports(2 * (fills + 2))

    def ensure_ladder(self, inst: int, low: int, high: int) -> None:
        self._ensure_ladder(inst, np.array([low, high]))

    def record_impact(self, inst: int, ts: int, before: int, after: int) -> None:
        loop._record_impact(self.F, loop.MODES[self.mode], inst, ts, before, after)

    def write_top(self, inst: int, ts: int) -> None:
        loop.write_top(self.book.S, self.reports.OUT, inst, ts)

    def injected_orders(self) -> np.ndarray:
        """Every injected order of this run so far (its result row is column J_ID)."""
        return self._inj

    def add_orders(self, orders: InjectedOrders) -> int:
        """Take ``orders`` as the run's injected orders (a run's, before it starts); returns
        the result row of the first."""
        jbase = self.book.n_results
        inj = orders.as_matrix(jbase)
        known = [i.instrument_id for i in self.instruments]
        unknown = ~np.isin(inj[:, J_INST], known)
        if unknown.any():
            j = int(np.flatnonzero(unknown)[0])
            raise ValueError(f"injected order {j}: instrument {inj[j, J_INST]} is not in "
                             f"the instrument table (ids {known})")
        self.book.add_results(len(inj))
        self._inj, self.order_pos = inj, 0
        self.result_gen = np.concatenate([self.result_gen, np.full(len(inj), -1, np.int64)])
        self.result_input_row = np.concatenate([self.result_input_row, orders.input_rows()])
        return jbase

    def submit(self, ts: np.ndarray, instrument: np.ndarray, side: np.ndarray,
               typ: np.ndarray, price: np.ndarray, size: np.ndarray,
               generation: np.ndarray) -> np.ndarray:
        """Add orders during a run (a broker's forced orders): they arrive at ``ts`` (not
        before any order already waiting at the same time). Returns their result rows."""
        n = len(ts)
        first = self.book.add_results(n)
        m = np.zeros((n, J_COLS), np.int64)
        m[:, J_TS], m[:, J_INST], m[:, J_SIDE] = ts, instrument, side
        m[:, J_TYPE], m[:, J_PRICE], m[:, J_SIZE] = typ, price, size
        m[:, J_ID] = first + np.arange(n)
        m[:, J_GEN] = generation
        done, waiting = self._inj[:self.order_pos], self._inj[self.order_pos:]
        if len(done) and len(m) and m[:, J_TS].min() < done[-1, J_TS]:
            raise ValueError("orders cannot be submitted before an order already executed")
        merged = np.concatenate([waiting, m])
        merged = merged[np.argsort(merged[:, J_TS], kind="stable")]
        self._inj = np.concatenate([done, merged])
        self.result_gen = np.concatenate([self.result_gen, np.asarray(generation, np.int64)])
        self.result_input_row = np.concatenate([self.result_input_row,
                                                np.full(n, -1, np.int64)])
        for i in np.unique(m[:, J_INST]):
            priced = m[(m[:, J_INST] == i) & (m[:, J_TYPE] != ORDER_TYPES["market"])]
            if len(priced):
                self._ensure_ladder(int(i), priced[:, J_PRICE])
        return m[:, J_ID].copy()

    @property
    def counters(self) -> dict[str, int]:
        return loop.counter_values(self.book.S)

    def flush(self) -> None:
        """Hand the report rows written so far to the sink, or keep them for the result."""
        for p in self.participants:
            p.before_flush()  # a strategy reads the trade prints before they go
        loop.set_prints_seen(self.book.S, 0)
        for p in self.participants:
            p.after_flush()
        for table, parts in self._parts.items():
            if self.reports.count(table):
                rows = self.reports.take(table)
                if self._sink is not None:
                    self._sink.append(table, rows)
                else:
                    parts.append(rows)

    def _step_for(self, inst: int, lo: int, hi: int) -> int:
        """The ladder step for prices in [lo, hi]: the gcd of the ticks of the bands that
        overlap it (KRX: 50 and 100 for a 49,000-91,000 day, not 1 won)."""
        lows, ticks = self.book.ticks[inst, 0], self.book.ticks[inst, 1]
        used = ticks > 0
        lows, ticks = lows[used], ticks[used]
        upper = np.append(lows[1:], np.iinfo(np.int64).max)
        overlap = (upper > lo) & (lows <= hi)
        if not overlap.any():
            overlap[0] = True
        return int(np.gcd.reduce(ticks[overlap]))

    def ensure_ladders(self, ranges) -> None:
        """:meth:`ensure_ladder` for several ``(inst, low, high)`` at once: one repack of the
        book's arena for all of them."""
        specs = [s for s in (self._ladder_spec(int(i), np.array([lo, hi]))
                             for i, lo, hi in ranges) if s is not None]
        if specs:
            self.book.set_ladders(specs)

    def _ensure_ladder(self, inst: int, prices: np.ndarray) -> None:
        spec = self._ladder_spec(inst, prices)
        if spec is not None:
            self.book.set_ladder(*spec)

    def _ladder_spec(self, inst: int, prices: np.ndarray) -> tuple[int, int, int, int] | None:
        """The ladder ``(inst, low, high, step)`` that covers ``prices`` with room to move
        (None: the current one does)."""
        lo, hi = int(prices.min()), int(prices.max())
        current = self.book.ladder_step(inst)
        if current:
            cur_lo, cur_hi = self.book.ladder_bounds(inst)
            if lo >= cur_lo and hi <= cur_hi:
                return None
            lo, hi = min(lo, cur_lo), max(hi, cur_hi)
        lo = max(1, lo)
        step = self._step_for(inst, lo, hi)
        if current:
            step = int(np.gcd(step, current))
        if (hi - lo) // step + 1 > MAX_LADDER_LEVELS:
            raise ValueError(
                f"{self._symbol(inst)}: prices {lo} to {hi} span more than "
                f"{MAX_LADDER_LEVELS:,} levels of {step}; the book's ladder is bounded "
                "(docs/data-quality.md: bounds)")
        margin = max(256 * step, (hi - lo) // 4) + loop.shift_reach(self.F, inst)
        # the margin is room to move, never a reason to exceed the bound
        margin = min(margin, max(0, (MAX_LADDER_LEVELS - 1) * step - (hi - lo)) // 2)
        wide_lo, wide_hi = max(1, lo - margin), hi + margin
        wide_step = self._step_for(inst, wide_lo, wide_hi)
        if current:
            wide_step = int(np.gcd(wide_step, current))
        if (wide_hi - wide_lo) // wide_step + 1 <= MAX_LADDER_LEVELS:
            lo, hi, step = wide_lo, wide_hi, wide_step
        # else a finer tick band inside the margin would break the bound: no margin
        return inst, lo, hi, step

    def _symbol(self, inst: int) -> str:
        for i in self.instruments:
            if i.instrument_id == inst:
                return f"instrument {i.symbol!r}"
        return f"instrument {inst}"

    def prepare(self, ev: Events) -> None:
        """Widen ladders to a chunk's prices before the kernel meets them."""
        lo, hi = price_ranges(ev.instrument, ev.action, ev.price, len(self.book.ins))
        self.ensure_ladders((int(i), lo[i], hi[i]) for i in np.flatnonzero(hi > 0))

    def grow(self, status: int, inst: int = -1, price: int = 0) -> None:
        """Make the room a kernel stopped for: report rows (NEED_OUTPUT: flushed, and the
        buffers enlarged if a single event needs more), order rows (NEED_ORDERS), or a ladder
        reaching ``price`` for ``inst`` (NEED_LADDER)."""
        if status == NEED_OUTPUT:
            self.flush()
            need = 2 * rows_needed(self.book.S)
            if need > self.reports.rows:
                self.reports = Reports(need)
        elif status == NEED_ORDERS:
            self.book.make_room()
        elif status == NEED_LADDER:
            if price <= 0:  # no ladder holds it: widening would never end
                raise ValueError(f"{self._symbol(inst)}: price {price} is not positive; "
                                 "the book has no level for it")
            g = loop.shift_reach(self.F, inst)
            self._ensure_ladder(inst, np.array([price - g, price + g]))
        else:
            raise RuntimeError(f"replay kernel returned unknown status {status}")

    def drive(self, source: EventSource) -> None:
        """Run ``source`` until it is exhausted: the one loop of the replay. Each call of
        its kernel runs until the earliest time a participant asked for, and the driver
        answers every stop: the participants' calls (PAUSE, VENUE_EVENT, WAKE; then they
        observe), or the room the kernel needs (NEED_*), and calls again."""
        while True:
            clocks = self._clocks  # the participants that keep time, bound once
            until = clocks[0]() if len(clocks) == 1 else \
                min([c() for c in clocks]) if clocks else NEVER
            status = source.advance(self, until)
            if status == OK:
                return
            if status in (PAUSE, VENUE_EVENT, WAKE):
                self._dispatch(status, until, source)
            else:
                self.grow(status, *source.needs(self))

    def run(self, chunks: Iterable[Events], injected: InjectedOrders | None = None,
            progress: Callable[[int], None] | None = None,
            sink: ReportSink | None = None) -> ReplayResult:
        """Replay every chunk, with ``injected`` orders merged in by time. With a ``sink``
        (e.g. :class:`replay.results.RunWriter`) report rows go to it as they are flushed
        and the result's tables are left empty: memory stays flat however long the tape."""
        self._sink = sink
        if self.mode == "generative":
            raise ValueError("generative mode has no tape: use replay.generative.run_generative "
                             "(cascade replay --mode generative --profile ...)")
        jbase = self.add_orders(injected or InjectedOrders.empty())
        inj = self._inj
        events = 0
        mode = loop.MODES[self.mode]
        participants = self.participants
        self._start()
        t0 = time.perf_counter()
        for ev in itertools.chain(chunks, [Events.empty()]):
            if len(ev):
                first = int(ev.ts[0]) if not len(inj) else min(int(ev.ts[0]),
                                                                 int(inj[0, J_TS]))
                self._begin(first)
                self.prepare(ev)
            elif self.order_pos < len(self._inj):
                self._begin(int(self._inj[self.order_pos, J_TS]), roles=("venue",))
            self._ladders_for_orders()  # on_start may have submitted orders
            self.drive(TapeChunk(ev, mode))
            events += len(ev)
            loop.count_events(self.book.S, len(ev))
            if progress is not None and len(ev):
                progress(len(ev))
        for p in participants:
            p.finish()
        self.flush()
        return self.result(events, time.perf_counter() - t0, jbase)

    def result(self, events: int, wall_seconds: float, first_order: int = 0) -> ReplayResult:
        """What the replay produced (the report rows not sent to a sink, the injected
        orders from result row ``first_order`` on, the counters and the venue's tables)."""
        return ReplayResult(
            mode=self.mode,
            fills=self._frame(FILLS, FILL_NAMES),
            trades=self._frame(TRADES, TRADE_NAMES),
            top_of_book=self._frame(TOB, TOB_NAMES),
            injected=injected_frame(self.book.results[first_order:], self._inj,
                                    self.result_input_row[first_order:], first_order),
            counters=self.counters,
            events=events,
            wall_seconds=wall_seconds,
            instruments=self.instruments,
            venue=self.venue_name,
            **self._venue_tables(),
        )

    def run_source(self, source: EventSource, first_ts: int,
                   injected: InjectedOrders | None = None, *, sink: ReportSink | None = None,
                   events: Callable[[], int] | None = None) -> ReplayResult:
        """Run one event source (the generative flow) from ``first_ts``, with ``injected``
        orders merged in by time and every participant, as :meth:`run` runs a tape.
        ``events()`` counts what the source generated."""
        self._sink = sink
        jbase = self.add_orders(injected or InjectedOrders.empty())
        self._start()
        t0 = time.perf_counter()
        self._begin(first_ts)
        self._ladders_for_orders()
        self.drive(source)
        for p in self.participants:
            p.finish()
        self.flush()
        n = events() if events is not None else 0
        loop.count_events(self.book.S, n)
        return self.result(n, time.perf_counter() - t0, jbase)

    def _ladders_for_orders(self) -> None:
        """Widen ladders to the prices of the injected orders still to come."""
        rest = self._inj[self.order_pos:]
        priced = rest[(rest[:, J_TYPE] != ORDER_TYPES["market"])
                      & (rest[:, J_TYPE] != ORDER_TYPES["cancel"])]
        for i in np.unique(priced[:, J_INST]):
            self._ensure_ladder(int(i), priced[priced[:, J_INST] == i, J_PRICE])

    def _start(self) -> None:
        """Start the participants not yet started; the venue tells the others, in order."""
        for p in self.participants:
            if id(p) not in self._started:
                self._started.add(id(p))
                p.start(self)
        if self.venue is not None:
            self.venue.listeners = [p for p in self.participants if p is not self.venue]

    def _begin(self, ts: int, roles: tuple[str, ...] | None = None) -> None:
        """The first event's time: each participant not yet begun begins (only the venue
        when the first input is an injected order after the tape: it opens the day)."""
        for p in self.participants:
            if id(p) not in self._begun and (roles is None or p.role in roles):
                self._begun.add(id(p))
                p.begin(ts)

    def _dispatch(self, status: int, until: int, source: EventSource) -> None:
        """Call the participants the loop stopped for, then let the others observe (each
        stop of a strategy subscribed to prints comes here: kept short)."""
        S = self.book.S
        handled = None
        if status == PAUSE:
            now = until
            handled = next(p for p in self.participants if p.next_ts() <= until)
            handled.on_time(until, source.next_input(self))
        elif status == VENUE_EVENT:
            now = venue_rules.event_time(S)
            self.venue.on_venue_event()
        else:
            inst, now = loop.wake_event(S)
            if self._below:
                last = int(last_price(S, inst))
                for p in self.participants:
                    below = self._below.get(id(p))
                    if below is not None and 0 < last <= below[inst]:
                        p.on_wake(inst, now)
        for p in self._observers:
            if p is not handled:
                p.observe(now)
        loop.set_prints_seen(S, self.reports.count(TRADES))

    def _venue_tables(self) -> dict[str, pd.DataFrame]:
        if self.venue is None:
            return {}
        return {"venue_events": pd.DataFrame(self.venue.events),
                "sessions": pd.DataFrame(self.venue.sessions),
                "unfilled": pd.DataFrame(self.venue.unfilled),
                "indices": self.venue.index_report()}

    def _frame(self, table: int, columns: list[str]) -> pd.DataFrame:
        parts = self._parts[table]
        data = np.concatenate(parts) if parts else np.zeros((0, len(columns)), np.int64)
        self._parts[table] = []
        return pd.DataFrame(data, columns=columns)
