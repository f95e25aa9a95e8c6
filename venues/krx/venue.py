"""The KRX venue: the session state machine a replay runs under at ``--venue krx``.

The compiled loop applies the per-event rules (:mod:`venues.rules`: order checks, VI
thresholds, market watch); this class owns what happens at moments in time, between calls
of the loop (docs/reference/krx.md for every number):

- **Each day** (XKRX trading days): the tick table of the day, the base price (the first
  day: the instrument table's previous close; later days: the simulated close, or with no
  trade the previous base), the daily limits, VI references. Then the phases: opening
  auction from 08:30, uncross at 09:00 plus a random end within 30 s; continuous trading;
  closing auction 15:20-15:30 plus a random end; post-close trading at the closing price
  15:40-16:00; at 16:00 every resting order expires and injected ones are reported with
  their unfilled quantity.
- **Every auction** uncrosses with :func:`venues.krx.uncross.uncross_arrays`: reference the
  base price at the open, else the last price; the limit-price rounds at an open or reopen.
  An opening or closing auction whose price would be at or beyond the static VI threshold
  (or, at the close, the closing dynamic one) is extended by a VI: 2 minutes plus a random
  end, once.
- **VI** in continuous trading (fired by the loop): the name goes to a 2-minute single-price
  auction with a random end of up to 30 s, after which it uncrosses and the static
  reference becomes that price.
- **Indices** per market, KOSPI and KOSDAQ, from the tape's constituents of that market:
  market-cap weighted by the instrument table's shares outstanding (weights renormalised
  over the names the tape holds), each scaled to its real prior close
  (``index_prior_close``: one close, KOSPI's, or a mapping by index name) and chained from
  day to day (a day's prior close is the simulated close before it).
- **Circuit breakers** per market, on its index: stages -8%, -15%, -20% held 1 minute, each
  at least 1% below the previous stage's level; stages 1-2 halt that market's names for 20
  minutes (cancels only), then a 10-minute reopening auction; stage 3 ends that market's
  day; each stage once; no stage 1-2 after 14:50.
- **Sidecar** on the index future (the instrument whose ``market`` is ``FUTURES``; with
  none in the tape, a proxy: the KOSPI200 members' index, or the KOSPI index where the tape
  has no member, times ``1 + futures_basis_bp``): +-5% vs its previous close held 1 minute
  suspends program orders on that side for 5 minutes; once a day; not in the first 5
  minutes nor the last 40 of continuous trading.

Random ends come from the run's seed and the day (and the instrument and a counter for VIs),
so a replay is reproducible. Outputs: :attr:`events` (VI, circuit breakers, sidecar and
every uncross, each with its market), :attr:`sessions` (each name's day: base, limits,
open, close, whether it closed limit-locked), :attr:`unfilled` (injected orders left at the
end of a day) and :meth:`index_report` (each index's days and its breaker and sidecar
events).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

import numpy as np

from venues.auction import apply_fills, gather, print_uncross
from venues.book import (
    I_BEST_BID,
    I_HIST_LAST,
    I_LAST,
    R_RESTING,
    R_STATUS,
    BookState,
    clear_instrument,
)
from venues.codes import (
    ASK,
    BID,
    MARKET,
    ST_EXPIRED,
    ST_PARTIAL,
    ST_RESTING,
)
from venues.krx import session as ses
from venues.krx.calendar import is_trading_day, next_trading_day
from venues.krx.limits import beyond_bp, price_limits
from venues.krx.ticks import tick_table
from venues.krx.uncross import uncross_arrays
from venues.loop import I_LAST_GEN
from venues.matching import (
    J_ID,
)
from venues.participants import Participant
from venues.rules import (
    BP,
    EV_CIRCUIT_BREAKER,
    EV_SIDECAR,
    EV_VI_DYNAMIC,
    EV_VI_STATIC,
    FUT_PROXY,
    H_EV_INST,
    H_EV_KIND,
    H_EV_PX,
    H_EV_REF,
    H_EV_TS,
    H_FUT_HI,
    H_FUT_INST,
    H_FUT_LO,
    H_FUT_SINCE,
    H_IDX_LOW,
    H_IDX_NUM,
    H_IDX_SINCE,
    H_IDX_TRIG,
    H_PROG_SIDE,
    H_PROG_UNTIL,
    H_RULES,
    I_CLOSE_PX,
    I_DYN_BP,
    I_INDICES,
    I_LO_LIM,
    I_PHASE,
    I_SHARES,
    I_STATIC_BP,
    I_STATIC_REF,
    I_UP_LIM,
    IX_KOSPI,
    IX_SIDECAR,
    N_INDICES,
    N_MARKETS,
    PH_AUCTION,
    PH_CLOSED,
    PH_CONTINUOUS,
    PH_HALTED,
    PH_POST_CLOSE,
    RULES_KRX,
    move_indices,
)

FUTURES = "FUTURES"
KOSPI200 = "KOSPI200"
MINUTE = 60 * 10**9
#: The markets with their own index and circuit breakers, in index-slot order (IX_KOSPI,
#: IX_KOSDAQ); an instrument without a market is a KOSPI name, one of any other market
#: (KONEX, say) counts in neither.
MARKETS = ("KOSPI", "KOSDAQ")
#: The indices whose real prior close a run may give (``index_prior_close``).
INDEX_NAMES = ("KOSPI", "KOSDAQ", KOSPI200)
#: The name of the futures proxy in venue events and the summary.
FUTURES_PROXY = "KOSPI200F"


def index_closes(given: float | Mapping[str, float] | None) -> dict[str, float]:
    """The real prior closes a run gives, by index name: a number is KOSPI's (0: none), a
    mapping names them (KOSPI, KOSDAQ, KOSPI200). ValueError for an unknown name or a close
    that is not a positive finite number."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        given = {"KOSPI": given} if float(given) != 0 else {}
    out = {}
    for name, value in given.items():
        key = str(name).strip().upper()
        if key not in INDEX_NAMES:
            raise ValueError(f"index close {name!r}: unknown index; give one of "
                             f"{', '.join(INDEX_NAMES)}")
        try:
            close = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"index close {key}={value!r}: not a number") from None
        if not math.isfinite(close) or close <= 0:
            raise ValueError(f"index close {key}={value!r}: must be a positive number "
                             "(index points)")
        out[key] = close
    return out


@dataclass(frozen=True)
class KrxRules:
    """The KRX numbers the venue uses; each default is cited in docs/reference/krx.md."""

    static_vi_bp: int = 1_000  # "Static VI: +-10% vs the reference"
    dynamic_vi_bp_kospi200: int = 300  # "KOSPI200 names +-3%"
    dynamic_vi_bp_other: int = 600  # "other KOSPI and KOSDAQ names +-6%"
    closing_vi_bp_kospi200: int = 200  # "(closing auction +-2%)"
    closing_vi_bp_other: int = 400  # "(closing auction +-4%)"
    vi_auction: timedelta = ses.VI_AUCTION  # "switch to a 2-minute single-price auction"
    random_end: timedelta = ses.RANDOM_END_MAX  # "a random moment within 30 s"
    cb_stages_bp: tuple[int, int, int] = (800, 1_500, 2_000)  # "-8%", "-15%", "-20%"
    cb_step_bp: int = 100  # "at least 1% below the stage-1 level"
    cb_halt: timedelta = timedelta(minutes=20)  # "20-minute halt of all stocks"
    cb_reopen_auction: timedelta = timedelta(minutes=10)  # "10-minute single-price auction"
    cb_last_stage12: time = time(14, 50)  # "stages 1-2 not after 14:50"
    sidecar_bp: int = 500  # "KOSPI200 front future +-5% for 1 minute"
    sidecar_suspend: timedelta = timedelta(minutes=5)  # "suspended 5 minutes"
    sidecar_quiet_start: timedelta = timedelta(minutes=5)  # "not in the first 5 minutes"
    sidecar_quiet_end: timedelta = timedelta(minutes=40)  # "nor the last 40"
    #: With no FUTURES instrument in the tape, the sidecar watches a proxy of the KOSPI200
    #: front future: the index of the KOSPI200 members (the KOSPI index where the tape has
    #: none). An assumption: the reference gives the rule on the future, not its price.
    futures_proxy: bool = True
    #: The proxy future's basis over its index in basis points (negative: a discount), the
    #: same all day; its previous close is the index's. An assumption, default 0: the
    #: reference gives no basis (2024-08-05: the future -5.08% at the sidecar, 11:00).
    futures_basis_bp: int = 0


class Host(Protocol):
    """What the venue needs from the replay that drives it."""

    book: BookState
    result_gen: np.ndarray  # per injected-order result row: its cascade generation, or -1

    def out(self) -> np.ndarray: ...

    def record_impact(self, inst: int, ts: int, before: int, after: int) -> None:
        """A price move injected orders made (relative and propagator modes follow it)."""

    def report_room(self, fills: int) -> None: ...

    def ensure_ladders(self, ranges) -> None:
        """Ladders covering ``(inst, low, high)`` for each name, in one repack."""

    def write_top(self, inst: int, ts: int) -> None: ...

    def injected_orders(self) -> np.ndarray:
        """Every injected order of the run so far (result row in column J_ID)."""


def _ns(td: timedelta) -> int:
    return int(td / timedelta(microseconds=1)) * 1_000


@dataclass
class _Name:
    """One instrument's day."""

    inst: int
    symbol: str
    market: str
    kospi200: bool
    future: bool
    shares: int
    first_base: int = 0  # the first day's base (its index weight at the first prior close)
    market_ix: int = -1  # its market's index slot (IX_KOSPI, IX_KOSDAQ), -1: neither
    indices: int = 0  # the indices it counts in (bit k: index slot k)
    base: int = 0
    lower: int = 0
    upper: int = 0
    open_px: int = 0
    auction: str = ""  # the auction the name is in: open, close, vi, reopen ("" none)
    extended: bool = False  # this auction already got its VI extension
    vi_count: int = 0
    pending_end: int = 0  # when the name's extended or VI auction ends (0: none pending)
    history: list[dict[str, Any]] = field(default_factory=list)


class KrxVenue(Participant):
    """KRX session rules over a replay's book (see the module docstring): the replay's
    first participant (venues/participants.py)."""

    role = "venue"

    def __init__(self, host: Host, instruments, seed: int = 0, *,
                 rules: KrxRules | None = None,
                 index_prior_close: float | Mapping[str, float] = 0.0) -> None:
        self.host = host
        self.seed = int(seed)
        self.rules = rules or KrxRules()
        #: the real prior closes given, by index name (docs/krx-venue.md: indices)
        self.index_closes = index_closes(index_prior_close)
        self.index_prior_close = self.index_closes.get("KOSPI", 0.0)
        self.names: dict[int, _Name] = {}
        for inst in instruments:
            future = inst.market.upper() == FUTURES
            if not future and inst.venue != "XKRX":
                raise ValueError(f"{inst.symbol}: venue {inst.venue!r}; the KRX venue replays "
                                 "XKRX instruments (and one index future); use --venue "
                                 "generic for other markets")
            if inst.price_decimals != 0 and not future:
                raise ValueError(f"{inst.symbol}: KRX prices are whole won (price_decimals 0)")
            if inst.prev_close_units <= 0:
                raise ValueError(f"{inst.symbol}: the KRX venue needs the previous close "
                                 "(prev_close_units) for the first day's base price and limits")
            self.names[inst.instrument_id] = _Name(
                inst=inst.instrument_id, symbol=inst.symbol, market=inst.market or "KOSPI",
                kospi200=KOSPI200 in inst.index_member.upper(), future=future,
                shares=int(inst.shares_outstanding) if not future else 0,
                base=int(inst.prev_close_units), first_base=int(inst.prev_close_units))
        futures = [n for n in self.names.values() if n.future]
        if len(futures) > 1:
            raise ValueError(f"{len(futures)} index futures in the instrument table; the "
                             "sidecar watches one")
        self.future = futures[0] if futures else None
        for n in self.names.values():
            market = n.market.upper()
            n.market_ix = MARKETS.index(market) if market in MARKETS and not n.future else -1
            if n.shares > 0 and n.market_ix >= 0:
                n.indices = 1 << n.market_ix
        #: what the sidecar index holds: KOSPI200 (its members) or KOSPI (no member in the
        #: tape), for the futures proxy; "" when the tape has a future or no such name
        self.proxy_source = ""
        if self.future is None and self.rules.futures_proxy:
            members = [n for n in self.names.values() if n.kospi200 and n.indices]
            if members:
                self.proxy_source = KOSPI200
            else:
                members = [n for n in self.names.values() if n.indices & (1 << IX_KOSPI)]
                self.proxy_source = "KOSPI" if members else ""
            for n in members:
                n.indices |= 1 << IX_SIDECAR
        self._den = [0] * N_INDICES  # per index: sum(shares * base) at the day's start
        self._prior = [self._given_close(k) for k in range(N_INDICES)]
        self.index_days: list[dict[str, Any]] = []  # per index and day: its levels
        self.events: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.unfilled: list[dict[str, Any]] = []
        #: the participants told of each pre-open (``on_pre_open(day, ts, lower_limits)``)
        #: and day end (``on_day_end(day, ts)``, before orders expire), in the replay's
        #: order: the replay sets it when it starts
        self.listeners: list[Any] = []
        self.day: date | None = None
        self._queue: list[tuple[int, int, str, int]] = []
        self._seq = 0
        self._cb_stage = [0] * N_MARKETS  # per market: stages fired today
        self._cb_level = [0] * N_MARKETS  # per market: index numerator at the last stage
        self._armed_stage = [0] * N_MARKETS  # per market: the stage armed (0-based)
        self._ended: set[int] = set()  # markets whose day stage 3 ended
        self._sched: ses.Schedule | None = None
        S = host.book.S
        S[H_RULES] = RULES_KRX

    # -- the clock ---------------------------------------------------------------------------
    def next_ts(self) -> int:
        """When the loop must stop next (int64 max if nothing is scheduled)."""
        return self._queue[0][0] if self._queue else np.iinfo(np.int64).max

    def _at(self, ts: int, what: str, inst: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (int(ts), self._seq, what, inst))

    def begin(self, ts: int) -> None:
        """Start the first session: the trading day of ``ts`` (or the next one)."""
        day = ses.seoul_date(ts)
        if not is_trading_day(day):
            day = next_trading_day(day)
        self._start_day(day)

    def on_time(self, ts: int, next_input: int) -> None:
        self.step()

    def on_venue_event(self) -> None:
        self.on_event()

    def step(self) -> None:
        """Run the earliest scheduled step (and any others at the same time)."""
        first = self._queue[0][0]
        while self._queue and self._queue[0][0] <= first:
            at, _, what, inst = heapq.heappop(self._queue)
            getattr(self, "_on_" + what)(at, inst)

    def finish(self) -> None:
        """The input is exhausted: run the schedule to the end of the current day."""
        while self._queue and self._queue[0][2] != "next_day":
            at, _, what, inst = heapq.heappop(self._queue)
            getattr(self, "_on_" + what)(at, inst)
        self._queue.clear()

    # -- days ---------------------------------------------------------------------------------
    def _start_day(self, day: date) -> None:
        self.day = day
        self._queue.clear()
        sch = ses.schedule(day, self.seed)
        self._sched = sch
        book = self.host.book
        # every name's tick table and day's ladder first, in one go (thousands of names:
        # one repack of the arena, not one per name)
        ranges = []
        for n in self.names.values():
            if not n.future:
                bounds, ticks = tick_table(on=day, market=_tick_market(n.market))
                book.ticks[n.inst, :, :] = 0
                book.ticks[n.inst, 0, :len(bounds)] = bounds
                book.ticks[n.inst, 1, :len(ticks)] = ticks
                n.lower, n.upper = price_limits(n.base, on=day,
                                                market=_tick_market(n.market))
                ranges.append((n.inst, n.lower, n.upper))
        self.host.ensure_ladders(ranges)
        ins = book.ins  # the ladders repacked the arena
        for n in self.names.values():
            if n.future:
                ins[n.inst, I_LAST] = n.base
                ins[n.inst, I_PHASE] = PH_CLOSED
                continue
            ins[n.inst, I_LO_LIM], ins[n.inst, I_UP_LIM] = n.lower, n.upper
            ins[n.inst, I_LAST] = ins[n.inst, I_HIST_LAST] = n.base
            ins[n.inst, I_STATIC_REF] = n.base
            ins[n.inst, I_STATIC_BP] = self.rules.static_vi_bp
            ins[n.inst, I_DYN_BP] = (self.rules.dynamic_vi_bp_kospi200 if n.kospi200
                                     else self.rules.dynamic_vi_bp_other)
            ins[n.inst, I_SHARES] = n.shares
            ins[n.inst, I_INDICES] = n.indices
            ins[n.inst, I_CLOSE_PX] = 0
            ins[n.inst, I_PHASE] = PH_CLOSED
            n.open_px, n.auction, n.extended, n.vi_count = 0, "", False, 0
        S = book.S
        for k in range(N_INDICES):
            self._den[k] = sum(n.shares * n.base for n in self._stocks() if n.indices >> k & 1)
            S[H_IDX_NUM + k] = S[H_IDX_LOW + k] = self._den[k]
        for m in range(N_MARKETS):
            S[H_IDX_TRIG + m] = S[H_IDX_SINCE + m] = -1
        S[H_FUT_INST] = S[H_FUT_SINCE] = -1
        S[H_PROG_SIDE] = S[H_PROG_UNTIL] = 0
        self._cb_stage, self._cb_level = [0] * N_MARKETS, [0] * N_MARKETS
        self._ended = set()
        self._at(sch.pre_open_ns, "pre_open")
        self._at(sch.open_ns, "open")
        self._at(sch.continuous_end_ns, "closing_auction")
        self._at(sch.close_ns, "close")
        self._at(sch.post_close_start_ns, "post_close")
        self._at(sch.post_close_end_ns, "day_end")
        open_ns = ses.seoul_ns(day, ses.OPEN)
        close_ns = sch.continuous_end_ns
        self._at(ses.seoul_ns(day, self.rules.cb_last_stage12), "cb_late")
        if self.future is not None or self.proxy_source:
            self._at(open_ns + _ns(self.rules.sidecar_quiet_start), "sidecar_arm")
            self._at(close_ns - _ns(self.rules.sidecar_quiet_end), "sidecar_disarm")

    def _on_next_day(self, at: int, inst: int) -> None:
        self._start_day(next_trading_day(self.day))

    def _stocks(self):
        return (n for n in self.names.values() if not n.future)

    def _trading(self):
        """The stocks whose market's day is not over (stage 3)."""
        return (n for n in self._stocks() if n.market_ix not in self._ended)

    def _set_phase(self, inst: int, phase: int) -> None:
        self.host.book.ins[inst, I_PHASE] = phase

    def _on_pre_open(self, at: int, inst: int) -> None:
        for n in self.names.values():
            self._set_phase(n.inst, PH_AUCTION if not n.future else PH_CONTINUOUS)
            n.auction = "open" if not n.future else ""
        lower = {n.inst: n.lower for n in self._stocks()}
        for listener in self.listeners:
            listener.on_pre_open(self.day, at, lower)

    def _on_open(self, at: int, inst: int) -> None:
        for n in self._stocks():
            if n.auction == "open":
                self._end_auction(n, at)
        for m in range(N_MARKETS):
            self._arm_cb(at, m)

    def _on_closing_auction(self, at: int, inst: int) -> None:
        S = self.host.book.S
        for m in range(N_MARKETS):  # no circuit breaker in the closing auction
            S[H_IDX_TRIG + m] = S[H_IDX_SINCE + m] = -1
        for n in self._stocks():
            ph = self.host.book.ins[n.inst, I_PHASE]
            if ph == PH_CLOSED:
                continue  # stage 3 ended the day
            # a VI auction still running joins the closing auction (docs/reference/krx.md)
            n.auction, n.extended, n.pending_end = "close", False, 0
            self._set_phase(n.inst, PH_AUCTION)

    def _on_close(self, at: int, inst: int) -> None:
        for n in self._stocks():
            if n.auction == "close" and not n.extended:
                self._end_auction(n, at)
        if self.future is not None:
            self._set_phase(self.future.inst, PH_CLOSED)

    def _on_post_close(self, at: int, inst: int) -> None:
        ins = self.host.book.ins
        for n in self._stocks():
            if ins[n.inst, I_PHASE] == PH_CLOSED and ins[n.inst, I_CLOSE_PX] > 0 \
                    and n.market_ix not in self._ended:
                self._set_phase(n.inst, PH_POST_CLOSE)

    def _on_day_end(self, at: int, inst: int) -> None:
        for listener in self.listeners:
            listener.on_day_end(self.day, at)
        book = self.host.book
        ins = book.ins
        res = book.results
        day = self.day
        for n in self._stocks():
            close = int(ins[n.inst, I_CLOSE_PX]) or int(ins[n.inst, I_LAST])
            at_lower = self._resting_at(n.inst, ASK, n.lower)
            no_bid = int(ins[n.inst, I_BEST_BID]) < 0
            self.sessions.append({
                "day": day, "instrument": n.inst, "symbol": n.symbol, "base": n.base,
                "lower_limit": n.lower, "upper_limit": n.upper, "open": n.open_px,
                "close": close, "ask_qty_at_lower_limit": at_lower,
                # sells queued at the lower limit and not one bid: nothing can trade
                "limit_locked_down": bool(at_lower > 0 and no_bid),
                "closed_at_lower_limit": close == n.lower,
            })
            n.base = close  # docs/reference/krx.md: "Base price: previous close"
        self._close_indices(day)
        inj = self.host.injected_orders()
        ids = inj[:, J_ID]
        live = np.flatnonzero(np.isin(res[ids, R_STATUS], (ST_RESTING, ST_PARTIAL))
                              & (res[ids, R_RESTING] > 0))
        for j in live:
            n = self.names[int(inj[j, 1])]
            buy = inj[j, 2] == BID
            # a market order rested at the day's limit on its side
            price = int(inj[j, 4]) if inj[j, 3] != MARKET else (n.upper if buy else n.lower)
            self.unfilled.append({
                "day": day, "order": int(ids[j]), "ts": int(inj[j, 0]), "instrument": n.inst,
                "side": "buy" if buy else "sell", "price": price, "size": int(inj[j, 5]),
                "unfilled": int(res[ids[j], R_RESTING])})
            res[ids[j], R_STATUS] = ST_EXPIRED
        for n in self.names.values():
            clear_instrument(book.S, n.inst)
            self._set_phase(n.inst, PH_CLOSED)
        self._at(at, "next_day")

    def _resting_at(self, inst: int, side: int, price: int) -> int:
        px, sz, *_ = gather(self.host.book.S, inst, side)
        return int(sz[px == price].sum())

    # -- auctions -----------------------------------------------------------------------------
    def _random_end(self, *key: int) -> int:
        return ses.random_extension_ns(self.seed, self.day, key, self.rules.random_end)

    def _vi_end(self, n: _Name, at: int) -> int:
        """Schedule the end of a VI auction (or a VI extension) starting at ``at``."""
        n.vi_count += 1
        n.pending_end = at + _ns(self.rules.vi_auction) + self._random_end(2, n.inst, n.vi_count)
        self._at(n.pending_end, "auction_end", n.inst)
        return n.pending_end

    @staticmethod
    def _without_injected(bids: tuple, asks: tuple, ref: int, n: _Name,
                          opening: bool) -> int:
        """The price the auction would have uncrossed at without the injected orders (the
        reference when nothing of history's crosses): what the injected orders moved is
        the difference, not the move from the previous price, which holds the overnight
        move history made itself."""
        hb, ha = bids[4] < 0, asks[4] < 0
        price, _, _, _ = uncross_arrays(bids[0][hb], bids[1][hb], asks[0][ha], asks[1][ha],
                                        ref, lower_limit=n.lower, upper_limit=n.upper,
                                        opening=opening)
        return int(price) if price is not None else int(ref)

    def _end_auction(self, n: _Name, at: int) -> None:
        """Uncross ``n``'s auction at ``at``, unless a VI extends it first."""
        S = self.host.book.S
        ins = self.host.book.ins
        kind = n.auction
        # docs/reference/krx.md: the limit-price rounds apply "at an open (or reopen)"
        opening = kind in ("open", "reopen")
        # "take the one equal to the previous price (before the open: the base price)"
        ref = n.base if kind == "open" else int(ins[n.inst, I_LAST])
        bids = gather(S, n.inst, BID)
        asks = gather(S, n.inst, ASK)
        price, volume, bid_fills, ask_fills = uncross_arrays(
            bids[0], bids[1], asks[0], asks[1], ref, lower_limit=n.lower,
            upper_limit=n.upper, opening=opening)
        if price is None or volume <= 0:
            price, volume = None, 0
        if price is not None and not n.extended and kind in ("open", "close"):
            vi = self._auction_vi(n, kind, int(price))
            if vi:
                n.extended = True
                release = self._vi_end(n, at)
                self._event(at, n, vi[0], vi[1], int(price), release)
                return
        if price is not None:
            inj_bid = int(bid_fills[bids[4] >= 0].sum())
            inj_ask = int(ask_fills[asks[4] >= 0].sum())
            self.host.report_room(len(bids[0]) + len(asks[0]) + 1)
            OUT = self.host.out()
            apply_fills(S, OUT, n.inst, BID, at, int(price), bids[2], bids[3], bids[4],
                        np.asarray(bid_fills, np.int64), inj_ask, int(volume))
            apply_fills(S, OUT, n.inst, ASK, at, int(price), asks[2], asks[3], asks[4],
                        np.asarray(ask_fills, np.int64), inj_bid, int(volume))
            before = int(ins[n.inst, I_LAST])
            print_uncross(S, OUT, n.inst, at, int(price), int(volume))
            move_indices(S, n.inst, before, int(price))  # the indices move with it too
            if inj_bid or inj_ask:  # injected orders moved this price: a re-centring impact
                self.host.record_impact(n.inst, at, self._without_injected(
                    bids, asks, ref, n, opening), int(price))
            # the price's cascade generation: 1 + the highest forced order filled in it
            gens = self.host.result_gen
            filled = np.concatenate([bids[4][(bid_fills > 0) & (bids[4] >= 0)],
                                     asks[4][(ask_fills > 0) & (asks[4] >= 0)]])
            ins[n.inst, I_LAST_GEN] = int(gens[filled].max()) + 1 if len(filled) else 0
            ins[n.inst, I_STATIC_REF] = int(price)
            self.host.write_top(n.inst, at)
        self.events.append({"ts": at, "instrument": n.inst, "symbol": n.symbol,
                            "market": n.market.upper(), "kind": f"uncross_{kind}",
                            "reference": ref, "price": int(price) if price is not None else -1,
                            "volume": int(volume), "release_ts": at})
        if kind == "open" and price is not None:
            n.open_px = int(price)
        n.auction, n.extended, n.pending_end = "", False, 0
        if kind == "close":
            ins[n.inst, I_CLOSE_PX] = int(ins[n.inst, I_LAST])
            self._set_phase(n.inst, PH_CLOSED)
        else:
            self._set_phase(n.inst, PH_CONTINUOUS)

    def _auction_vi(self, n: _Name, kind: str, price: int) -> tuple[str, int] | None:
        """Whether the indicative ``price`` of an opening or closing auction triggers a VI:
        static vs the static reference; at the close also dynamic vs the last trade."""
        ins = self.host.book.ins
        sref = int(ins[n.inst, I_STATIC_REF])
        if beyond_bp(price, sref, self.rules.static_vi_bp):
            return "vi_static", sref
        if kind == "close":
            last = int(ins[n.inst, I_LAST])
            bp = (self.rules.closing_vi_bp_kospi200 if n.kospi200
                  else self.rules.closing_vi_bp_other)
            if beyond_bp(price, last, bp):
                return "vi_dynamic", last
        return None

    def _on_auction_end(self, at: int, inst: int) -> None:
        n = self.names[inst]
        if n.auction and n.pending_end == at:  # else a later auction superseded this end
            self._end_auction(n, at)

    # -- events the loop fired ---------------------------------------------------------------
    def on_event(self) -> None:
        """Handle the event the loop stopped for (VI, circuit breaker, sidecar)."""
        S = self.host.book.S
        kind, inst, px, ref, ts = (int(S[H_EV_KIND]), int(S[H_EV_INST]), int(S[H_EV_PX]),
                                   int(S[H_EV_REF]), int(S[H_EV_TS]))
        S[H_EV_KIND] = 0
        if kind in (EV_VI_STATIC, EV_VI_DYNAMIC):
            n = self.names[inst]
            release = self._vi_end(n, ts)
            n.auction, n.extended = "vi", True
            self._event(ts, n, "vi_static" if kind == EV_VI_STATIC else "vi_dynamic", ref, px,
                        release)
        elif kind == EV_CIRCUIT_BREAKER:
            self._circuit_breaker(ts, inst, px)
        elif kind == EV_SIDECAR:
            self._sidecar(ts, inst, px)
        else:
            raise RuntimeError(f"unknown venue event {kind}")

    def _event(self, ts: int, n: _Name | None, kind: str, ref: int, px: int,
               release: int, volume: int = 0, *, market: str = "", symbol: str = "") -> None:
        self.events.append({"ts": ts, "instrument": n.inst if n else -1,
                            "symbol": n.symbol if n else symbol,
                            "market": market or (n.market.upper() if n else ""),
                            "kind": kind, "reference": ref, "price": px, "volume": volume,
                            "release_ts": release})

    # -- indices --------------------------------------------------------------------------
    def _given_close(self, k: int) -> float:
        """Index ``k``'s real prior close as given (1.0 if none: levels rebased to 1)."""
        name = MARKETS[k] if k < N_MARKETS else self.proxy_source
        return self.index_closes.get(name, 1.0)

    def index_level(self, numerator: int, k: int = IX_KOSPI) -> float:
        """Index ``k``'s level for its numerator (sum of shares x price) today: its prior
        close times the numerator over the day's (the prior close is the one given, else
        1.0, on the first day, and the simulated close before it on later days)."""
        den = self._den[k]
        return self._prior[k] * numerator / den if den else float("nan")

    def proxy_level(self, numerator: int) -> float:
        """The futures proxy's level for the sidecar index's numerator: the index's level
        times ``1 + futures_basis_bp`` (its previous close is the index's)."""
        return self.index_level(numerator, IX_SIDECAR) * (BP + self.rules.futures_basis_bp) / BP

    def _close_indices(self, day: date) -> None:
        """Record each index's day (prior close, close, low); the close is the next day's
        prior close."""
        S = self.host.book.S
        for k in range(N_INDICES):
            den = self._den[k]
            if den <= 0:
                continue
            num, low = int(S[H_IDX_NUM + k]), int(S[H_IDX_LOW + k])
            close = self.index_level(num, k)
            self.index_days.append({
                "index": k, "day": day, "prior_close": self._prior[k], "close": close,
                "low": self.index_level(low, k), "capitalisation_prior": den,
                "capitalisation_close": num, "capitalisation_low": low})
            self._prior[k] = close

    def index_report(self) -> dict[str, Any]:
        """Each index of the run (KOSPI, KOSDAQ, the futures proxy where the sidecar
        watched one): its names and their weights at the first prior close, its prior
        close, close and low over the run and per day, and its circuit-breaker and sidecar
        events (the summary's ``indices`` section, docs/krx-venue.md)."""
        out: dict[str, Any] = {}
        for k in range(N_INDICES):
            days = [d for d in self.index_days if d["index"] == k]
            if not days or (k == IX_SIDECAR and not self.proxy_source):
                continue
            held = [n for n in self._stocks() if n.indices >> k & 1]
            cap = {n.symbol: n.shares * n.first_base for n in held}
            total = sum(cap.values())
            weights = sorted(cap.items(), key=lambda w: (-w[1], w[0]))[:10]
            source = MARKETS[k] if k < N_MARKETS else self.proxy_source
            entry: dict[str, Any] = {}
            scale = 1.0
            if k == IX_SIDECAR:
                scale = (BP + self.rules.futures_basis_bp) / BP
                entry.update(proxy=True, follows=source, basis_bp=self.rules.futures_basis_bp)
            entry.update({
                "prior_close_given": source in self.index_closes,
                "names": len(held),
                "names_without_shares": sum(1 for n in self._stocks() if n.shares <= 0
                                            and n.market_ix == k) if k < N_MARKETS else 0,
                "capitalisation_prior_close": total,
                "largest_weights": {s: round(c / total, 6) for s, c in weights},
            })
            prior, close = days[0]["prior_close"], days[-1]["close"]
            low = min(d["low"] for d in days)
            entry.update(_levels(prior, close, low, scale))
            entry["days"] = [{"day": d["day"].isoformat(),
                              **_levels(d["prior_close"], d["close"], d["low"], scale)}
                             for d in days]
            entry["events"] = []
            out[FUTURES_PROXY if k == IX_SIDECAR else source] = entry
        for e in self.events:
            kind = e["kind"]
            if kind.startswith("circuit_breaker"):
                target = e["market"]
            elif kind.startswith("sidecar") and e["instrument"] < 0:
                target = FUTURES_PROXY
            else:
                continue
            if target in out:
                level, prior = e["index"], e["index_prior_close"]
                out[target]["events"].append({
                    "kind": kind, "ts_ns": int(e["ts"]), "time_seoul": _clock(e["ts"]),
                    "level": round(level, 6), "return": round(level / prior - 1, 6),
                    "release_ts_ns": int(e["release_ts"]),
                    "release_time_seoul": _clock(e["release_ts"])})
        return out

    # -- circuit breakers and sidecar ---------------------------------------------------------
    def _arm_cb(self, at: int, m: int) -> None:
        """Arm market ``m``'s next circuit-breaker stage (its index numerator at or below
        the trigger)."""
        S = self.host.book.S
        den = self._den[m]
        if den <= 0 or self._cb_stage[m] >= 3 or m in self._ended:
            return
        stage = self._cb_stage[m]  # 0-based index of the stage to arm
        if at >= ses.seoul_ns(self.day, self.rules.cb_last_stage12):
            stage = 2  # "stages 1-2 not after 14:50": only stage 3 remains
        trig = den * (BP - self.rules.cb_stages_bp[stage]) // BP
        if self._cb_level[m]:
            # "at least 1% below the stage-1 level" (and stage 3 below stage 2)
            trig = min(trig, self._cb_level[m] * (BP - self.rules.cb_step_bp) // BP)
        self._armed_stage[m] = stage
        S[H_IDX_TRIG + m] = trig
        S[H_IDX_SINCE + m] = -1

    def _on_cb_late(self, at: int, inst: int) -> None:
        S = self.host.book.S
        for m in range(N_MARKETS):
            if S[H_IDX_TRIG + m] >= 0 and self._armed_stage[m] < 2:
                self._arm_cb(at, m)

    def _circuit_breaker(self, ts: int, m: int, numerator: int) -> None:
        """Market ``m``'s armed stage fired: halt its names (stages 1-2) or end its day."""
        stage = self._armed_stage[m] + 1  # 1-based
        self._cb_stage[m] = stage
        self._cb_level[m] = numerator
        level = self.index_level(numerator, m)
        bp = self.rules.cb_stages_bp[stage - 1]
        market = MARKETS[m]
        ins = self.host.book.ins
        names = [n for n in self._stocks() if n.market_ix == m]
        detail = {"index": level, "index_prior_close": self._prior[m], "threshold_bp": bp}
        if stage >= 3:
            self._event(ts, None, "circuit_breaker_3", self._den[m], numerator, ts,
                        market=market, symbol=market)
            self.events[-1].update(detail)
            self._ended.add(m)
            if m == IX_KOSPI and self.future is not None:
                names.append(self.future)  # the KOSPI200 future ends with KOSPI
            for n in names:
                n.auction = ""
                self._set_phase(n.inst, PH_CLOSED)
            if any(True for _ in self._trading()):
                self._drop_auction_ends(m)
            else:  # the day is over: drop the rest of today's schedule but its end
                self._queue = [e for e in self._queue if e[2] in ("day_end", "next_day")]
                heapq.heapify(self._queue)
            return
        halt_end = ts + _ns(self.rules.cb_halt)
        key = (3, stage) if m == IX_KOSPI else (3, stage, m)
        reopen = halt_end + _ns(self.rules.cb_reopen_auction) + self._random_end(*key)
        self._event(ts, None, f"circuit_breaker_{stage}", self._den[m], numerator, reopen,
                    market=market, symbol=market)
        self.events[-1].update(detail)
        for n in names:
            if ins[n.inst, I_PHASE] in (PH_CONTINUOUS, PH_AUCTION):
                self._set_phase(n.inst, PH_HALTED)
                n.auction = ""
        # pending VI ends are void: the halt and the reopening auction replace them
        self._drop_auction_ends(m)
        self._at(halt_end, "reopen_auction", m)
        self._at(reopen, "reopen", m)

    def _drop_auction_ends(self, m: int) -> None:
        """Drop the pending auction ends of market ``m``'s names."""
        self._queue = [e for e in self._queue
                       if not (e[2] == "auction_end" and self.names[e[3]].market_ix == m)]
        heapq.heapify(self._queue)

    def _on_reopen_auction(self, at: int, m: int) -> None:
        for n in self._stocks():
            if n.market_ix == m and self.host.book.ins[n.inst, I_PHASE] == PH_HALTED:
                self._set_phase(n.inst, PH_AUCTION)
                n.auction = "reopen"

    def _on_reopen(self, at: int, m: int) -> None:
        for n in self._stocks():
            if n.market_ix == m and n.auction == "reopen":
                self._end_auction(n, at)
        if at < self._sched.continuous_end_ns:
            self._arm_cb(at, m)

    def _on_sidecar_arm(self, at: int, inst: int) -> None:
        f = self.future
        S = self.host.book.S
        if getattr(self, "_sidecar_fired", None) == self.day:
            return
        bp, basis = self.rules.sidecar_bp, self.rules.futures_basis_bp
        if f is not None:
            S[H_FUT_INST] = f.inst
            S[H_FUT_LO] = f.base * (BP - bp) // BP
            S[H_FUT_HI] = -((-f.base * (BP + bp)) // BP)
        else:
            # the proxy future F = index x (1 + basis), its previous close the index's: F
            # at or below (1 - bp) of it is num * (BP + basis) <= den * (BP - bp)
            den = self._den[IX_SIDECAR]
            if den <= 0:
                return
            S[H_FUT_INST] = FUT_PROXY
            S[H_FUT_LO] = den * (BP - bp) // (BP + basis)
            S[H_FUT_HI] = -((-den * (BP + bp)) // (BP + basis))
        S[H_FUT_SINCE] = -1

    def _on_sidecar_disarm(self, at: int, inst: int) -> None:
        self.host.book.S[H_FUT_INST] = -1

    def _sidecar(self, ts: int, inst: int, px: int) -> None:
        S = self.host.book.S
        until = ts + _ns(self.rules.sidecar_suspend)
        if inst == FUT_PROXY:
            den = self._den[IX_SIDECAR]
            falling = px * (BP + self.rules.futures_basis_bp) < den * BP
            side = ASK if falling else BID
            self._event(ts, None, "sidecar_sell" if side == ASK else "sidecar_buy", den, px,
                        until, market="KOSPI", symbol=FUTURES_PROXY)
            self.events[-1].update({"index": self.proxy_level(px),
                                    "index_prior_close": self._prior[IX_SIDECAR] * (
                                        BP + self.rules.futures_basis_bp) / BP})
        else:
            f = self.names[inst]
            side = ASK if px < f.base else BID
            self._event(ts, f, "sidecar_sell" if side == ASK else "sidecar_buy", f.base, px,
                        until, market="KOSPI")
        S[H_PROG_SIDE] = side
        S[H_PROG_UNTIL] = until
        self._sidecar_fired = self.day


def _levels(prior: float, close: float, low: float, scale: float) -> dict[str, float]:
    """Prior close, close and low (times ``scale``) with the returns of the close and low."""
    return {"prior_close": round(prior * scale, 6), "close": round(close * scale, 6),
            "close_return": round(close / prior - 1, 6), "low": round(low * scale, 6),
            "low_return": round(low / prior - 1, 6)}


def _clock(ts: int) -> str:
    """Seoul wall-clock HH:MM:SS of ``ts`` (UTC ns)."""
    return datetime.fromtimestamp(int(ts) // 10**9, ses.SEOUL).strftime("%H:%M:%S")


def _tick_market(market: str) -> str:
    return "KOSDAQ" if market.upper() == "KOSDAQ" else "KOSPI"


__all__ = ["KrxRules", "KrxVenue", "PH_AUCTION", "PH_CLOSED", "PH_CONTINUOUS", "PH_HALTED",
           "PH_POST_CLOSE"]
