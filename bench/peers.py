"""Replay one L2 (market-by-price) delta stream through the peer engines.

The performance budget in the design compares this project's replay with two peers on the
same data: NautilusTrader's ``BacktestEngine`` and hftbacktest. This module turns a tape
chunk (:class:`replay.tape.Events`, L2 rows: ``order_id == 0``) into each peer's native
input, runs the peer to the end of the data, and reports how many events it processed, the
best bid/ask it ends with (so a test can check that the peer was fed correctly) and the
wall time of the run. Building the peer's input is timed separately (``prepare_seconds``):
the reported events/s is the run's alone.

Semantics of the L2 rows, as on the tape: ``A`` and ``M`` set the level at ``price`` to
``size``; ``C`` reduces the level by ``size``; ``D`` removes the level; ``R`` empties the
book; ``T`` is a trade print (book unchanged). ``F`` (fill) and ``S`` (status) rows do not
change an L2 book and are not fed to the peers. Both peers want absolute level sizes, so the
stream is first resolved against a level map (:func:`resolve_l2_levels`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import njit, types
from numba.typed import Dict

from replay.tape import (
    ADD,
    ASK,
    BID,
    CANCEL,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    MODIFY,
    NONE,
    TRADE,
    Events,
    Instrument,
)

_BOOK_ACTIONS = (ADD, CANCEL, DELETE, MODIFY)
_FED_ACTIONS = (*_BOOK_ACTIONS, CLEAR, TRADE)


@dataclass
class PeerResult:
    """What one peer did with one stream.

    ``events`` is the number of stream rows the peer processed, ``seconds`` the wall time of
    the run alone and ``events_per_s`` their ratio; ``prepare_seconds`` is the time spent
    building the peer's input (objects, arrays, engine set-up). Prices are natural units
    (``NaN`` for an empty side). ``callbacks`` counts how often the peer handed control to
    user code (a strategy callback, or a return of the drive loop's wait call).
    """

    name: str
    events: int
    seconds: float
    events_per_s: float
    best_bid: float
    best_ask: float
    prepare_seconds: float = 0.0
    callbacks: int = 0
    detail: str = ""


# --------------------------------------------------------------------------------------------
# Synthetic L2 stream
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _emit(cols, i, ts, action, side, price, size, flags):  # pragma: no cover - jitted
    ts_a, action_a, side_a, price_a, size_a, flags_a = cols
    ts_a[i] = ts
    action_a[i] = action
    side_a[i] = side
    price_a[i] = price
    size_a[i] = size
    flags_a[i] = flags
    return i + 1


@njit(cache=True)
def _build_l2_stream(n, levels, snapshot_every, u_kind, u_side, u_level, level_sizes,
                     trade_sizes, gaps, start_ts, start_bid, cols):  # pragma: no cover
    ts_a, action_a, side_a, price_a, size_a, flags_a = cols
    bids = level_sizes[:levels].copy()  # bids[k]: size at best_bid - k
    asks = level_sizes[levels:2 * levels].copy()  # asks[k]: size at best_bid + 1 + k
    m = start_bid
    ts = start_ts
    i = 0
    j = 0
    since_snapshot = snapshot_every
    while i < n:
        ts += gaps[j]
        if since_snapshot >= snapshot_every:
            since_snapshot = 0
            i = _emit(cols, i, ts, CLEAR, NONE, 0, 0, F_SNAPSHOT)
            for k in range(levels):
                if i < n:
                    i = _emit(cols, i, ts, MODIFY, BID, m - k, bids[k], F_SNAPSHOT)
                if i < n:
                    last = F_SNAPSHOT | F_LAST if k == levels - 1 else F_SNAPSHOT
                    i = _emit(cols, i, ts, MODIFY, ASK, m + 1 + k, asks[k], last)
            j += 1
            continue
        start = i
        kind = u_kind[j]
        up = u_side[j] < 0.5
        if kind < 0.80 and kind >= 0.70:
            # trade against the touch, then the venue's level update
            if up and asks[0] > 1:
                q = 1 + trade_sizes[j] % (asks[0] - 1)
                i = _emit(cols, i, ts, TRADE, BID, m + 1, q, 0)
                asks[0] -= q
                if i < n:
                    i = _emit(cols, i, ts, MODIFY, ASK, m + 1, asks[0], F_LAST)
            elif not up and bids[0] > 1:
                q = 1 + trade_sizes[j] % (bids[0] - 1)
                i = _emit(cols, i, ts, TRADE, ASK, m, q, 0)
                bids[0] -= q
                if i < n:
                    i = _emit(cols, i, ts, MODIFY, BID, m, bids[0], F_LAST)
            else:
                kind = 0.0  # level too thin to trade: a plain level update instead
        if kind < 0.70:
            k = min(int(u_level[j]), levels - 1)
            if up:
                bids[k] = level_sizes[j]
                i = _emit(cols, i, ts, MODIFY, BID, m - k, bids[k], F_LAST)
            else:
                asks[k] = level_sizes[j]
                i = _emit(cols, i, ts, MODIFY, ASK, m + 1 + k, asks[k], F_LAST)
        elif kind >= 0.80:
            if m < 2 * levels + 10:
                up = True
            # the touch moves one tick; the side losing its best level is updated first, so
            # the book is never crossed, even inside the packet
            fresh = level_sizes[j]
            if up:
                i = _emit(cols, i, ts, DELETE, ASK, m + 1, 0, 0)
                if i < n:
                    i = _emit(cols, i, ts, MODIFY, BID, m + 1, fresh, 0)
                if i < n:
                    i = _emit(cols, i, ts, DELETE, BID, m + 1 - levels, 0, 0)
                if i < n:
                    i = _emit(cols, i, ts, MODIFY, ASK, m + 1 + levels, fresh, F_LAST)
                for k in range(levels - 1, 0, -1):
                    bids[k] = bids[k - 1]
                bids[0] = fresh
                for k in range(levels - 1):
                    asks[k] = asks[k + 1]
                asks[levels - 1] = fresh
                m += 1
            else:
                i = _emit(cols, i, ts, DELETE, BID, m, 0, 0)
                if i < n:
                    i = _emit(cols, i, ts, MODIFY, ASK, m, fresh, 0)
                if i < n:
                    i = _emit(cols, i, ts, DELETE, ASK, m + levels, 0, 0)
                if i < n:
                    i = _emit(cols, i, ts, MODIFY, BID, m - levels, fresh, F_LAST)
                for k in range(levels - 1, 0, -1):
                    asks[k] = asks[k - 1]
                asks[0] = fresh
                for k in range(levels - 1):
                    bids[k] = bids[k + 1]
                bids[levels - 1] = fresh
                m -= 1
        since_snapshot += i - start
        j += 1
    if n > 0:
        flags_a[n - 1] |= F_LAST
    return m


def l2_stream_for_bench(n_events: int = 1_000_000, seed: int = 7, *, levels: int = 20,
                        snapshot_every: int = 250_000) -> tuple[Events, Instrument]:
    """A deterministic synthetic L2 delta stream for the peer benchmarks.

    Level sets (``M``) around a random-walk touch with a one-tick spread and ``levels``
    levels a side: 70% of packets reset one level's size (top-heavy), 10% are a trade at the
    touch followed by the venue's level update, 20% move the touch one tick (delete the lost
    best level, set the new one, trim the far end, extend the other side). The stream opens
    with a snapshot (``R`` then ``M`` rows flagged ``F_SNAPSHOT``) and re-snapshots every
    ``snapshot_every`` events. Each packet ends with ``F_LAST``; events of a packet share one
    timestamp. Prices have 2 decimals (tick 0.01), sizes 0 decimals.

    It stands in for real data until the project's own synthetic tape and its L3 to L2
    conversion feed the benchmarks; the harness takes any L2 ``Events``.
    """
    if n_events < 0 or levels < 2:
        raise ValueError("l2_stream_for_bench: n_events must be >= 0 and levels >= 2")
    rng = np.random.default_rng(seed)
    n_draw = n_events + 2
    u_kind = rng.random(n_draw)
    u_side = rng.random(n_draw)
    u_level = rng.exponential(3.0, n_draw)
    level_sizes = rng.integers(100, 5_000, n_draw, dtype=np.int64)
    level_sizes[: 2 * levels] = rng.integers(100, 5_000, 2 * levels, dtype=np.int64)
    trade_sizes = rng.integers(1, 1_000, n_draw, dtype=np.int64)
    gaps = rng.integers(1_000, 2_000_000, n_draw, dtype=np.int64)
    ts = np.zeros(n_events, np.int64)
    action = np.zeros(n_events, np.uint8)
    side = np.zeros(n_events, np.uint8)
    price = np.zeros(n_events, np.int64)
    size = np.zeros(n_events, np.int64)
    flags = np.zeros(n_events, np.uint8)
    _build_l2_stream(n_events, levels, snapshot_every, u_kind, u_side, u_level, level_sizes,
                     trade_sizes, gaps, np.int64(1_700_000_000_000_000_000), np.int64(10_000),
                     (ts, action, side, price, size, flags))
    events = Events.from_columns(
        {
            "ts": ts,
            "instrument": np.ones(n_events, np.uint32),
            "action": action,
            "side": side,
            "price": price,
            "size": size,
            "order_id": np.zeros(n_events, np.uint64),
            "flags": flags,
            "sequence": np.arange(1, n_events + 1, dtype=np.uint64),
        }
    )
    instrument = Instrument(instrument_id=1, symbol="SYNL2", venue="SIM", book_type="L2",
                            price_decimals=2, size_decimals=0, tick_units=1, lot_size=1)
    return events, instrument


# --------------------------------------------------------------------------------------------
# L2 resolution (shared by both peers)
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _resolve_l2(action, side, price, size, out_size, out_existed):  # pragma: no cover
    bids = Dict.empty(key_type=types.int64, value_type=types.int64)
    asks = Dict.empty(key_type=types.int64, value_type=types.int64)
    for i in range(action.shape[0]):
        a = action[i]
        if a == CLEAR:
            bids = Dict.empty(key_type=types.int64, value_type=types.int64)
            asks = Dict.empty(key_type=types.int64, value_type=types.int64)
            continue
        if a != ADD and a != MODIFY and a != CANCEL and a != DELETE:
            continue
        if side[i] == BID:
            book = bids
        elif side[i] == ASK:
            book = asks
        else:
            return i
        p = price[i]
        existed = p in book
        old = book[p] if existed else 0
        if a == CANCEL:
            new = old - size[i]
        elif a == DELETE:
            new = 0
        else:
            new = size[i]
        if new > 0:
            book[p] = new
        else:
            new = 0
            if existed:
                book.pop(p)
        out_size[i] = new
        out_existed[i] = existed
    return -1


def resolve_l2_levels(events: Events) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the absolute size of its level after the row, and whether the level
    existed before it (both peers take level sets, not ``C``-style reductions).

    Raises ``ValueError`` on rows that are not L2 (``order_id != 0`` on a book action) or a
    book action without a side.
    """
    book = np.isin(events.action, _BOOK_ACTIONS)
    if np.any(events.order_id[book] != 0):
        row = int(np.flatnonzero(book & (events.order_id != 0))[0])
        raise ValueError(f"events: row {row} has order_id {int(events.order_id[row])}: an L3 "
                         "(market-by-order) row; convert the stream to L2 first")
    out_size = np.zeros(len(events), np.int64)
    out_existed = np.zeros(len(events), np.bool_)
    bad = _resolve_l2(events.action, events.side, events.price, events.size, out_size,
                      out_existed)
    if bad >= 0:
        raise ValueError(f"events: row {bad} is a book action with side "
                         f"{int(events.side[bad])}, expected BID or ASK")
    return out_size, out_existed


def _fed_mask(events: Events) -> np.ndarray:
    return np.isin(events.action, _FED_ACTIONS)


def _instrument_rows(events: Events, instrument: Instrument) -> Events:
    """The rows of ``instrument`` (a tape may interleave several instruments)."""
    mine = events.instrument == instrument.instrument_id
    return events if mine.all() else events.take(mine)


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else float("inf")


# --------------------------------------------------------------------------------------------
# NautilusTrader
# --------------------------------------------------------------------------------------------


def _nautilus_instrument(instrument: Instrument) -> Any:
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import Currency, Price, Quantity

    pd_, sd = instrument.price_decimals, instrument.size_decimals
    symbol = instrument.symbol or f"I{instrument.instrument_id}"
    return CurrencyPair(
        instrument_id=InstrumentId(Symbol(symbol), Venue("SIM")),
        raw_symbol=Symbol(symbol),
        base_currency=Currency.from_str("EUR"),
        quote_currency=USD,
        price_precision=pd_,
        size_precision=sd,
        price_increment=Price(instrument.tick_units / 10**pd_, pd_),
        size_increment=Quantity(1 / 10**sd, sd),
        ts_event=0,
        ts_init=0,
    )


@dataclass
class NautilusInput:
    """The stream as nautilus objects, built once and reusable by several engines."""

    instrument: Any
    book: list[Any]
    trades: list[Any]
    n_deltas: int
    batch: bool
    seconds: float


def nautilus_data(events: Events, instrument: Instrument, *, batch: bool = True
                  ) -> NautilusInput:
    """The stream (rows of ``instrument``) as a nautilus instrument, book data and
    ``TradeTick`` objects.

    A level set becomes ``ADD`` when the level is new and ``UPDATE`` when it exists (on an
    L2_MBP book nautilus keys a level's single order by its price, so both carry the level's
    absolute size); a level that ends empty (``D``, or ``C`` down to zero) becomes ``DELETE``;
    ``R`` becomes ``CLEAR``. Flags (``F_LAST``, ``F_SNAPSHOT``) and sequence are carried.
    Nautilus prices are fixed-point with ``FIXED_PRECISION`` decimals, so raw values are
    rescaled from the tape's units.

    With ``batch`` the deltas of one packet (up to a row with the ``F_LAST`` bit) are grouped
    into one ``OrderBookDeltas``, which the engine applies and publishes as one message; the
    grouping is done here because nautilus's own (``OrderBookDeltas.batch``, the data engine's
    ``buffer_deltas``) ends a packet only where ``flags == F_LAST`` exactly, not on
    ``F_LAST | F_SNAPSHOT``. Without ``batch`` the book data are single ``OrderBookDelta``.
    """
    from nautilus_trader.core.rust.model import AggressorSide, BookAction, OrderSide
    from nautilus_trader.model.data import OrderBookDelta, OrderBookDeltas, TradeTick
    from nautilus_trader.model.identifiers import TradeId
    from nautilus_trader.model.objects import FIXED_PRECISION

    t0 = time.perf_counter()
    nautilus_instrument = _nautilus_instrument(instrument)
    events = _instrument_rows(events, instrument)
    level_size, existed = resolve_l2_levels(events)
    idx = np.flatnonzero(_fed_mask(events))
    pd_, sd = instrument.price_decimals, instrument.size_decimals
    px_scale = 10 ** (FIXED_PRECISION - pd_)
    sz_scale = 10 ** (FIXED_PRECISION - sd)
    iid = nautilus_instrument.id
    from_raw = OrderBookDelta.from_raw
    trade_from_raw = TradeTick.from_raw
    add, update, delete, clear = (BookAction.ADD, BookAction.UPDATE, BookAction.DELETE,
                                  BookAction.CLEAR)
    buy, sell, no_side = OrderSide.BUY, OrderSide.SELL, OrderSide.NO_ORDER_SIDE
    buyer, seller, no_aggressor = (AggressorSide.BUYER, AggressorSide.SELLER,
                                   AggressorSide.NO_AGGRESSOR)
    cols = zip(events.ts[idx].tolist(), events.action[idx].tolist(),
               events.side[idx].tolist(), events.price[idx].tolist(),
               events.size[idx].tolist(), level_size[idx].tolist(), existed[idx].tolist(),
               events.flags[idx].tolist(), events.sequence[idx].tolist(), strict=True)
    book: list[Any] = []
    trades: list[Any] = []
    packet: list[Any] = []
    n_deltas = 0
    for ts, a, s, p, q, lvl, ex, fl, seq in cols:
        if a == TRADE:
            aggressor = buyer if s == BID else seller if s == ASK else no_aggressor
            trades.append(trade_from_raw(iid, p * px_scale, pd_, q * sz_scale, sd, aggressor,
                                         TradeId(str(seq)), ts, ts))
        elif a == CLEAR:
            packet.append(from_raw(iid, clear, no_side, 0, pd_, 0, sd, 0, fl, seq, ts, ts))
        else:
            act = (update if ex else add) if lvl > 0 else delete
            packet.append(from_raw(iid, act, buy if s == BID else sell, p * px_scale, pd_,
                                   lvl * sz_scale, sd, 0, fl, seq, ts, ts))
        if packet and (not batch or fl & F_LAST):
            n_deltas += len(packet)
            if batch:
                book.append(OrderBookDeltas(iid, packet))
                packet = []
            else:
                book.extend(packet)
                packet.clear()
    if packet:
        n_deltas += len(packet)
        book.append(OrderBookDeltas(iid, packet))
    return NautilusInput(nautilus_instrument, book, trades, n_deltas, batch,
                         time.perf_counter() - t0)


def _nautilus_strategy_class() -> type:
    from nautilus_trader.model.enums import BookType
    from nautilus_trader.trading.strategy import Strategy

    class BookDeltaCounter(Strategy):
        """Subscribes to the book deltas and trades of one instrument and counts callbacks;
        at stop it reads the top of the book the data engine maintained for it."""

        def __init__(self, instrument_id: Any, subscribe: bool = True) -> None:
            super().__init__()
            self.instrument_id = instrument_id
            self.wants_data = subscribe
            self.delta_callbacks = 0
            self.trade_callbacks = 0
            self.best_bid = float("nan")
            self.best_ask = float("nan")

        def on_start(self) -> None:
            if not self.wants_data:
                return
            self.subscribe_order_book_deltas(self.instrument_id, BookType.L2_MBP)
            self.subscribe_trade_ticks(self.instrument_id)

        def on_order_book_deltas(self, deltas: Any) -> None:
            self.delta_callbacks += 1

        def on_trade_tick(self, tick: Any) -> None:
            self.trade_callbacks += 1

        def on_stop(self) -> None:
            book = self.cache.order_book(self.instrument_id)
            if book is not None:
                bid, ask = book.best_bid_price(), book.best_ask_price()
                self.best_bid = float(bid) if bid is not None else float("nan")
                self.best_ask = float(ask) if ask is not None else float("nan")

    return BookDeltaCounter


class NautilusReplay:
    """A NautilusTrader ``BacktestEngine`` built for one run of a :class:`NautilusInput`.

    One simulated venue ``SIM`` with an ``L2_MBP`` book, one instrument with the tape's
    price/size precision (a ``CurrencyPair``, the instrument type whose size precision is
    free), and a strategy subscribed to the instrument's book deltas (the data engine keeps
    a book for it) and trades, which counts its callbacks. With a batched input (see
    :func:`nautilus_data`) the engine and the strategy see one message per packet, as the
    venue sent it; otherwise one per delta.

    ``bypass_logging`` leaves nautilus's logger uninitialised: once it is initialised, at
    any level, the matching engine formats a debug line (the delta's repr) for every delta,
    which halves throughput. The logger is process-wide, so an engine created earlier in the
    process with logging decides for every later one.

    ``subscribe=False`` keeps the strategy but subscribes it to nothing: only the simulated
    venue's matching engine applies the deltas (nautilus exposes no public reader of that
    book, so the result's best bid/ask are NaN; processing is checked with the engine's
    iteration count instead). It measures the engine without a consumer of the data.
    """

    def __init__(self, data: NautilusInput, *, bypass_logging: bool = True,
                 subscribe: bool = True) -> None:
        from nautilus_trader.backtest.config import BacktestEngineConfig
        from nautilus_trader.backtest.engine import BacktestEngine
        from nautilus_trader.config import LoggingConfig
        from nautilus_trader.model.currencies import USD
        from nautilus_trader.model.enums import AccountType, BookType, OmsType
        from nautilus_trader.model.identifiers import Venue
        from nautilus_trader.model.objects import Money

        if not data.book and not data.trades:
            raise ValueError("nautilus: no L2 book or trade rows to feed")
        t0 = time.perf_counter()
        self.data = data
        self.engine = BacktestEngine(BacktestEngineConfig(
            logging=LoggingConfig(log_level="ERROR", bypass_logging=bypass_logging),
            run_analysis=False,
        ))
        self.engine.add_venue(Venue("SIM"), oms_type=OmsType.NETTING,
                              account_type=AccountType.MARGIN,
                              starting_balances=[Money(1_000_000, USD)],
                              book_type=BookType.L2_MBP)
        self.engine.add_instrument(data.instrument)
        if data.book:
            self.engine.add_data(data.book)  # sorts by ts_init (stable)
        if data.trades:
            self.engine.add_data(data.trades)
        self.subscribe = subscribe
        self.strategy = _nautilus_strategy_class()(data.instrument.id, subscribe)
        self.engine.add_strategy(self.strategy)
        self.build_seconds = time.perf_counter() - t0

    def run(self) -> PeerResult:
        """``engine.run()``, timed; then the engine is disposed of."""
        data, strategy = self.data, self.strategy
        try:
            t0 = time.perf_counter()
            self.engine.run()
            seconds = time.perf_counter() - t0
            iterations = self.engine.iteration
        finally:
            self.engine.dispose()
        messages = len(data.book) + len(data.trades)
        if self.subscribe and (strategy.delta_callbacks != len(data.book)
                               or strategy.trade_callbacks != len(data.trades)):
            raise RuntimeError(
                f"nautilus delivered {strategy.delta_callbacks} of {len(data.book)} book "
                f"messages and {strategy.trade_callbacks} of {len(data.trades)} trades"
            )
        if iterations != messages:
            raise RuntimeError(f"nautilus iterated {iterations} of {messages} messages")
        processed = data.n_deltas + len(data.trades)
        name = "packets" if data.batch else "deltas"
        return PeerResult(
            name=f"nautilus[{name}{'' if self.subscribe else ',venue-only'}]",
            events=processed,
            seconds=seconds, events_per_s=_rate(processed, seconds),
            best_bid=strategy.best_bid, best_ask=strategy.best_ask,
            prepare_seconds=data.seconds + self.build_seconds,
            callbacks=strategy.delta_callbacks + strategy.trade_callbacks,
            detail=(f"{data.n_deltas} deltas in {len(data.book)} messages, "
                    f"{len(data.trades)} trades"),
        )


def run_nautilus(events: Events, instrument: Instrument, *, batch: bool = True,
                 bypass_logging: bool = True, subscribe: bool = True) -> PeerResult:
    """Run the stream through a NautilusTrader ``BacktestEngine`` (see
    :class:`NautilusReplay`).

    ``seconds`` times ``engine.run()``; building the objects and the engine (``add_data``
    sorts the stream) is ``prepare_seconds``. ``events`` is the number of stream rows
    processed: every delta of each message the engine iterated (and, when subscribed, the
    strategy was handed), plus the trades.
    """
    data = nautilus_data(events, instrument, batch=batch)
    return NautilusReplay(data, bypass_logging=bypass_logging, subscribe=subscribe).run()


# --------------------------------------------------------------------------------------------
# hftbacktest
# --------------------------------------------------------------------------------------------


def hftbacktest_data(events: Events, instrument: Instrument) -> np.ndarray:
    """The stream (rows of ``instrument``) as hftbacktest's ``event_dtype`` rows.

    Book rows become ``DEPTH_EVENT`` with ``BUY_EVENT``/``SELL_EVENT`` and the level's
    absolute size (``0`` removes the level), ``R`` becomes ``DEPTH_CLEAR_EVENT`` without a
    side (hftbacktest then clears both sides), ``T`` becomes ``TRADE_EVENT`` with the
    aggressor's side. Every row is both ``EXCH_EVENT`` and ``LOCAL_EVENT`` with
    ``local_ts == exch_ts`` (no feed latency). Prices and sizes are natural-unit floats.
    """
    from hftbacktest import (
        BUY_EVENT,
        DEPTH_CLEAR_EVENT,
        DEPTH_EVENT,
        EXCH_EVENT,
        LOCAL_EVENT,
        SELL_EVENT,
        TRADE_EVENT,
    )
    from hftbacktest.binding import event_dtype

    events = _instrument_rows(events, instrument)
    level_size, _ = resolve_l2_levels(events)
    fed = _fed_mask(events)
    action = events.action[fed]
    side = events.side[fed]
    out = np.zeros(int(fed.sum()), event_dtype)
    ev = np.full(len(out), EXCH_EVENT | LOCAL_EVENT, np.uint64)
    book = np.isin(action, _BOOK_ACTIONS)
    ev[book] |= np.uint64(DEPTH_EVENT)
    ev[action == CLEAR] |= np.uint64(DEPTH_CLEAR_EVENT)
    ev[action == TRADE] |= np.uint64(TRADE_EVENT)
    ev[(side == BID) & (action != CLEAR)] |= np.uint64(BUY_EVENT)
    ev[(side == ASK) & (action != CLEAR)] |= np.uint64(SELL_EVENT)
    out["ev"] = ev
    out["exch_ts"] = events.ts[fed]
    out["local_ts"] = events.ts[fed]
    out["px"] = events.price[fed] / 10.0**instrument.price_decimals
    qty = np.where(book, level_size[fed], events.size[fed])
    out["qty"] = qty / 10.0**instrument.size_decimals
    out["qty"][action == CLEAR] = 0.0
    out["px"][action == CLEAR] = 0.0
    return out


def _hftbacktest_asset(data: np.ndarray, instrument: Instrument, depth: str) -> Any:
    from hftbacktest import BacktestAsset

    tick = instrument.tick_units / 10**instrument.price_decimals
    asset = (
        BacktestAsset()
        .data(data)
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
        .tick_size(tick)
        .lot_size(1 / 10**instrument.size_decimals)
        .last_trades_capacity(0)
    )
    if depth == "roivec":
        px = data["px"][data["px"] > 0]
        lo, hi = (float(px.min()), float(px.max())) if len(px) else (0.0, 1.0)
        asset = asset.roi_lb(max(lo - 1_000 * tick, 0.0)).roi_ub(hi + 1_000 * tick)
    return asset


@njit
def _drive_feed(hbt):  # pragma: no cover - jitted
    # A strategy-shaped loop: wake on every feed (all rows sharing a timestamp are applied
    # before the call returns) and read the top of the book, as a quoting strategy would.
    callbacks = 0
    touch = 0.0
    while True:
        r = hbt.wait_next_feed(False, 1 << 62)
        if r != 2:
            break
        callbacks += 1
        depth = hbt.depth(0)
        touch += depth.best_bid_tick - depth.best_ask_tick
    depth = hbt.depth(0)
    return r, callbacks, depth.best_bid_tick, depth.best_ask_tick, touch


@njit
def _drive_elapse(hbt, step):  # pragma: no cover - jitted
    # The book-only replay: let the engine apply every row up to the end without returning.
    callbacks = 0
    r = 0
    while r == 0:
        r = hbt.elapse(step)
        callbacks += 1
    depth = hbt.depth(0)
    return r, callbacks, depth.best_bid_tick, depth.best_ask_tick, 0


_WARM: set[tuple[str, str]] = set()
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
DEPTHS = ("hashmap", "roivec")
DRIVES = ("feed", "elapse")


def _hftbacktest_build(data: np.ndarray, instrument: Instrument, depth: str) -> Any:
    from hftbacktest import HashMapMarketDepthBacktest, ROIVectorMarketDepthBacktest

    asset = _hftbacktest_asset(data, instrument, depth)
    if depth == "roivec":
        return ROIVectorMarketDepthBacktest([asset])
    return HashMapMarketDepthBacktest([asset])


def _hftbacktest_drive(hbt: Any, drive: str) -> tuple[int, int, int, int, int]:
    if drive == "feed":
        return _drive_feed(hbt)
    return _drive_elapse(hbt, 1 << 62)


class HftbacktestReplay:
    """An hftbacktest backtester built for one run of :func:`hftbacktest_data` rows.

    ``depth``: ``"hashmap"`` (``HashMapMarketDepthBacktest``) or ``"roivec"``
    (``ROIVectorMarketDepthBacktest``, range of interest from the rows' prices).
    ``drive``: ``"feed"`` wakes a numba loop on every feed (``wait_next_feed``, the shape of
    a strategy that looks at every update: all rows sharing a timestamp are applied before
    it returns) and reads the touch; ``"elapse"`` lets the engine run to the end of the data
    in one call (book replay alone). Both loops are numba ``@njit`` functions, as
    hftbacktest's own examples drive it; they are compiled on a tiny stream before the first
    timed run (about 2 s per backtester type: numba cannot cache a function of a jitclass
    on disk). Latency is constant zero, the queue model risk-averse; no orders are sent,
    so the book is the feed's alone.

    The backtester reads ``data`` in place (no copy): this object keeps it referenced.
    """

    def __init__(self, data: np.ndarray, instrument: Instrument, *, depth: str = "hashmap",
                 drive: str = "feed") -> None:
        if depth not in DEPTHS or drive not in DRIVES:
            raise ValueError(f"hftbacktest: unknown depth {depth!r} or drive {drive!r}")
        if len(data) == 0:
            raise ValueError("hftbacktest: no L2 book or trade rows to feed")
        _hftbacktest_warm_up(instrument, depth, drive)
        t0 = time.perf_counter()
        self.data, self.instrument, self.depth, self.drive = data, instrument, depth, drive
        self.hbt = _hftbacktest_build(data, instrument, depth)
        self.build_seconds = time.perf_counter() - t0

    def run(self) -> PeerResult:
        """Drive the backtester to the end of the data, timed; then close it."""
        try:
            t0 = time.perf_counter()
            r, callbacks, bid_tick, ask_tick, _ = _hftbacktest_drive(self.hbt, self.drive)
            seconds = time.perf_counter() - t0
        finally:
            self.hbt.close()
        if r != 1:
            raise RuntimeError(f"hftbacktest stopped with code {r} before the end of the data")
        processed = len(self.data)
        return PeerResult(
            name=f"hftbacktest[{self.depth},{self.drive}]", events=processed,
            seconds=seconds, events_per_s=_rate(processed, seconds),
            best_bid=self._tick_price(bid_tick), best_ask=self._tick_price(ask_tick),
            prepare_seconds=self.build_seconds, callbacks=int(callbacks),
            detail=f"numba {numba.__version__}",
        )


    def _tick_price(self, tick: int) -> float:
        # an empty side reads as the int64 sentinel, not NaN
        if tick in (_INT64_MIN, _INT64_MAX):
            return float("nan")
        inst = self.instrument
        return round(tick * inst.tick_units / 10**inst.price_decimals, inst.price_decimals)


def _hftbacktest_warm_up(instrument: Instrument, depth: str, drive: str) -> None:
    """Compile the numba drive loop for this backtester type outside the timed run."""
    if (depth, drive) in _WARM:
        return
    small, small_instrument = l2_stream_for_bench(200, seed=0)
    data = hftbacktest_data(small, small_instrument)
    hbt = _hftbacktest_build(data, small_instrument, depth)
    try:
        _hftbacktest_drive(hbt, drive)
    finally:
        hbt.close()
    _WARM.add((depth, drive))


def run_hftbacktest(events: Events, instrument: Instrument, *, depth: str = "hashmap",
                    drive: str = "feed") -> PeerResult:
    """Run the stream through hftbacktest's backtester (see :class:`HftbacktestReplay`).

    ``seconds`` times the drive loop; building the rows and the backtester is
    ``prepare_seconds``. ``events`` is the number of rows fed, all applied when the loop
    reaches the end of the data (checked).
    """
    t0 = time.perf_counter()
    data = hftbacktest_data(events, instrument)
    convert = time.perf_counter() - t0
    result = HftbacktestReplay(data, instrument, depth=depth, drive=drive).run()
    result.prepare_seconds += convert
    return result


def bench_sizes() -> tuple[int, int]:
    """Stream sizes for the benchmarks: ``CASCADE_BENCH_EVENTS`` sets both; otherwise
    1,000,000 events for hftbacktest and 200,000 for nautilus (25-60x slower here)."""
    env = os.environ.get("CASCADE_BENCH_EVENTS")
    if env:
        n = int(env.replace("_", ""))
        return n, n
    return 1_000_000, 200_000
