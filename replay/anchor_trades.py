"""Synthetic tapes anchored to recorded trades (docs/synthetic-tapes.md: anchored to trades):
a trades-only tape (Kiwoom, Koscom, KIS trades) becomes an L3 tape whose every print is a
recorded one, at its time, price, size and aggressor, with a book supplied around it by
:mod:`replay.trades_flow`.

- Aggressor: a print's own side; a print with side N (the file names none) takes the tick
  rule: a buy if its price is above the previous print's, a sell if below, the previous
  print's side if equal, a buy for the tape's first print.
- Auction prints, flagged F_AUCTION or in an auction window (before 09:00, or from 15:20,
  KST), are the auction's uncross: the tape's orders make the KRX uncross
  (venues.krx.uncross.uncross) print that price and volume at the session's ``open_ns`` /
  ``close_ns`` (venues.krx.session.schedule with the seed), which is when the venue prints
  it. Several prints of one auction must share a price; their sizes add up.
- Base price: the instrument table's previous close where it has one, else the first
  print's price; later days' is the previous day's last print.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time
from pathlib import Path

import numpy as np

from replay.anchor import _FIX_NS, _balance, _check_uncross, _exec_at, _resolve
from replay.synth import (
    _NSTATE,
    _POOL_FULL,
    _S_LAST,
    _S_LIVE,
    _S_NEXT_ID,
    _S_SEQ,
    _S_T,
    _S_TRADED,
    P_LOG_SIZE,
    P_SIZE_MAX,
    Profile,
    _Book,
    _close_book,
    _DayRows,
    _uncross_packet,
)
from replay.tape import (
    ASK,
    BID,
    F_AUCTION,
    NONE,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
    write_tape_chunks,
)
from replay.trades_flow import _clear_side, trades_continuous
from venues.krx.limits import price_limits
from venues.krx.session import OPEN, schedule, seoul_date, seoul_ns
from venues.krx.ticks import is_on_grid, price_grid, tick_size

#: The background flow starts this long before a day's first continuous print.
LEAD_NS = 60 * 10**9
_CLOSE_WINDOW = time(15, 20)


def aggressors(price: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Each print's aggressor: its own side, or for side N the tick rule: a buy above the
    previous print, a sell below it, the previous print's aggressor when equal, a buy for
    the first print."""
    side = side.astype(np.uint8)
    step = np.sign(np.diff(price.astype(np.int64), prepend=price[:1]))
    ruled = np.where(side != NONE, side,
                     np.where(step > 0, BID, np.where(step < 0, ASK, 0))).astype(np.uint8)
    if ruled[0] == 0:
        ruled[0] = BID
    # an equal price carries the previous print's aggressor forward
    idx = np.where(ruled > 0, np.arange(len(ruled)), 0)
    np.maximum.accumulate(idx, out=idx)
    return ruled[idx]


def _is_auction(ts: np.ndarray, flags: np.ndarray, day: date) -> tuple[np.ndarray, ...]:
    open_at = seoul_ns(day, OPEN)
    close_at = seoul_ns(day, _CLOSE_WINDOW)
    noon = seoul_ns(day, time(12, 0))
    flagged = (flags & F_AUCTION) != 0
    opening = (ts < open_at) | (flagged & (ts < noon))
    closing = (ts >= close_at) | (flagged & (ts >= noon))
    return opening, closing


def _auction_print(price, size, where: str, source: str, day: date) -> tuple[int, int]:
    if len(price) == 0:
        return 0, 0
    if len(set(price.tolist())) > 1:
        raise ValueError(f"{source}: {day}: the {where} auction's prints have several prices "
                         f"({sorted(set(price.tolist()))[:4]}); one uncross has one price")
    return int(price[0]), int(size.sum())


def synthesize_from_trades(trades: Events, instruments: InstrumentTable, seed: int,
                           profile: str | Profile | None = None, *,
                           event_rate: float | None = None, chunk_events: int = 1 << 20,
                           source: str = "trades",
                           ) -> Iterator[tuple[Events, InstrumentTable]]:
    """The anchored L3 tape of a trades-only tape of one instrument, one day at a time
    (see the module docstring). Rows other than ``T`` are ignored. Raises ValueError for a
    tape of several instruments, a print off the tick grid or outside the day's limits."""
    prof = _resolve(profile, event_rate)
    m = trades.action == TRADE
    if not m.any():
        raise ValueError(f"{source}: no trade prints to anchor to")
    ids = np.unique(trades.instrument[m])
    if len(ids) != 1:
        raise ValueError(f"{source}: trades of {len(ids)} instruments; anchor one at a time")
    inst = instruments[int(ids[0])]
    market = inst.market if inst.market.upper() == "KOSDAQ" else "KOSPI"
    rows = np.flatnonzero(m)
    ts, px, sz = trades.ts[m], trades.price[m], trades.size[m]
    side = aggressors(px, trades.side[m])
    flags = trades.flags[m]
    days = np.array([seoul_date(int(t)) for t in ts])
    base = int(inst.prev_close_units) if inst.prev_close_units > 0 else int(px[0])
    st = np.zeros(_NSTATE, np.int64)
    st[_S_NEXT_ID] = 1
    st[_S_SEQ] = 1
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0])))
    book = _Book(max(1 << 12, 4 * prof.live_orders))
    params = prof.to_params()
    params[P_LOG_SIZE] = float(np.log(max(np.median(sz), 1.0)))
    params[P_SIZE_MAX] = float(max(int(sz.max()) * 2, 1))
    for day in sorted(set(days)):
        on = days == day
        lower, upper = price_limits(base, on=day, market=market)
        bad = ~is_on_grid(px[on], on=day, market=market) | (px[on] < lower) | (px[on] > upper)
        if bad.any():
            r = int(rows[on][np.flatnonzero(bad)[0]])
            raise ValueError(f"{source}: row {r + 1}, field price: {int(trades.price[r])} is "
                             f"off the tick grid or outside the day's limits {lower}-{upper} "
                             f"(base {base})")
        table = InstrumentTable([Instrument(
            instrument_id=inst.instrument_id, symbol=inst.symbol, venue="XKRX",
            book_type="L3", price_decimals=0, tick_units=int(tick_size(base, on=day,
                                                                       market=market)),
            prev_close_units=base, market=market, index_member=inst.index_member,
            shares_outstanding=inst.shares_outstanding)])
        opening, closing = _is_auction(ts[on], flags[on], day)
        cont = ~opening & ~closing
        for events, tab in _day(prof, params, day, seed, lower, upper, base, market, book,
                                st, rng,
                        ts[on][cont], px[on][cont], sz[on][cont], side[on][cont],
                        _auction_print(px[on][opening], sz[on][opening], "opening", source,
                                       day),
                        _auction_print(px[on][closing], sz[on][closing], "closing", source,
                                       day),
                        table, chunk_events, source):
            events.instrument = np.full(len(events), inst.instrument_id, np.uint32)
            yield events, tab
        base = int(px[on][-1])  # the day's close: its last print


def _day(prof, params, day, seed, lower, upper, base, market, book, st, rng, c_ts, c_px,
         c_sz, c_side, opening, closing, table, chunk, source) -> Iterator:
    ladder = price_grid(lower, upper, on=day, market=market)
    book.new_day(ladder)
    sched = schedule(day, seed)
    origin = seoul_ns(day, OPEN)
    rows = _DayRows(chunk)
    fst = np.array([float(c_px[0] if len(c_px) else (opening[0] or closing[0]))])
    st[_S_TRADED] = 0
    st[_S_LAST] = base
    if len(c_ts) and c_ts[0] <= sched.open_ns:
        raise ValueError(f"{source}: {day}: a continuous print at or before the session's "
                         "open (the venue's opening auction ends at "
                         f"{sched.open_ns} ns); give the print F_AUCTION or another seed")

    def flush(gen) -> Iterator:
        for ev, _ in gen:
            yield ev, table

    def auction(price: int, volume: int, end_ns: int, reference: int, opening_: bool):
        # the book cleared of what would cross the price, then a bid and an ask there that
        # uncross exactly ``volume`` at it (its only price of maximum volume)
        yield from flush(rows.room(2 * int(st[_S_LIVE]) + 8, table))
        t = end_ns - _FIX_NS
        rows.pos = _clear_side(book.arrays, st, rows.rows, rows.pos, t, BID, price, 2)
        rows.pos = _clear_side(book.arrays, st, rows.rows, rows.pos, t, ASK, price, 3)
        yield from flush(_balance(rows, book, st, price, volume - 1, end_ns - _FIX_NS // 2,
                                  table))
        _check_uncross(book, price, reference, lower, upper, opening_)
        if _exec_at(book, price) != volume:
            raise RuntimeError(f"anchored auction volume {_exec_at(book, price)}, not {volume}")
        yield from flush(_uncross_packet(rows, book, st, fst, params, ladder, reference,
                                         lower, upper, opening_, end_ns, table))

    if opening[1]:
        yield from auction(opening[0], opening[1], sched.open_ns, base, True)
        start = sched.open_ns
    else:
        start = max(sched.open_ns, int(c_ts[0]) - LEAD_NS) if len(c_ts) else sched.open_ns
    st[_S_T] = start - origin
    nxt = np.zeros(1, np.int64)
    while True:
        rows.pos, status = trades_continuous(
            params, ladder, rng, book.arrays, st, fst, rows.rows, rows.pos, origin,
            sched.continuous_end_ns - origin, c_ts, c_px, c_sz, c_side, nxt)
        if status == _POOL_FULL:
            book.grow()
        elif status == 1:  # rows full
            yield rows.events(), table
            rows.rows = _DayRows(max(chunk, 4 * int(st[_S_LIVE]) + 64)).rows
            rows.pos = 0
        else:
            break
    if closing[1]:
        yield from auction(closing[0], closing[1], sched.close_ns, int(st[_S_LAST]), False)
    yield from flush(rows.room(int(st[_S_LIVE]), table))
    rows.pos = _close_book(book.arrays, st, rows.rows, rows.pos, sched.close_ns)
    if rows.pos:
        yield rows.events(), table


def write_trades_anchored_tape(path: str | Path, trades: Events, instruments: InstrumentTable,
                               seed: int, profile: str | Profile | None = None, *,
                               event_rate: float | None = None,
                               source: str = "trades") -> Path:
    """Stream :func:`synthesize_from_trades` into a Parquet tape (session seed ``seed``)."""
    chunks = synthesize_from_trades(trades, instruments, seed, profile,
                                    event_rate=event_rate, source=source)
    return write_tape_chunks(path, chunks, seed, "the trades make an empty tape")
