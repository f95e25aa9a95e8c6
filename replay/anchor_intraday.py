"""Synthetic tapes anchored to intraday bars (docs/synthetic-tapes.md: anchored to intraday
bars): each bar is a short segment of the daily anchor's path (:mod:`replay.anchor`),
with the bar's own prices as targets and its own range as the print band.

Within each bar's interval ``[start, end)`` the tape

- first prints the bar's open (at ``start``: the book is made to give that print, as a
  trades-anchored print is, :func:`replay.trades_flow._print`);
- then runs the anchored reactive flow (:func:`replay.anchored_flow.anchored_continuous`)
  along a value path open -> the extremes not yet printed (seeded order, each held a
  tenth of the bar, then swept if the flow has not printed it) -> close, its market
  orders sized by the bar's volume still to trade and none once it is reached; no bid
  above the bar's high or ask below its low trades or rests (the book's orders outside
  the band are withdrawn at the bar's start), so nothing prints outside ``[low, high]``;
- last prints the bar's close 1 ms before ``end``, of the volume still missing.

Across the day the auctions of :mod:`replay.anchor` apply where the bars cover them: a
first bar that starts at or before 09:00 opens through the opening auction (its open is
the uncross at the session's ``open_ns``, with OPEN_AUCTION_SHARE of the bar's volume),
and the bars from 15:20 (the closing auction period) are the closing auction's: one
price, their volumes added, uncrossed at ``close_ns`` (venues.krx.session.schedule with
the seed). Between bars (minutes without a bar) nothing happens.

The base price of a name's first day is ``bases[code]``, else the first bar's open; of
each later day, the previous day's last close. Prices must lie on the tick grid and
inside the day's limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from replay.anchor import (
    _FIX_NS,
    MAX_DAY_ROWS,
    ROWS_PER_RATE,
    _balance,
    _check_uncross,
    _exec_at,
    _NameState,
    _press,
    _resolve,
)
from replay.anchored_flow import (
    A_MAX,
    A_MIN,
    A_STRICT,
    A_SWEEP,
    A_VOL,
    F_BASE_VOL,
    F_LOG_MKT,
    F_SHAPE_END,
    F_SHAPE_TOTAL,
    F_TARGET,
    N_A,
    N_F,
    anchored_continuous,
    anchored_top_up,
    shape_integral,
)
from replay.quality import TapeError
from replay.synth import (
    _NSTATE,
    _POOL_FULL,
    _S_LAST,
    _S_LIVE,
    _S_NEXT_ID,
    _S_SEQ,
    _S_T,
    _S_TRADED,
    P_LOG_MKT_SIZE,
    P_LOG_SIZE,
    P_SIZE_MAX,
    Profile,
    _Book,
    _close_book,
    _DayRows,
    _session_seconds,
    _uncross_packet,
)
from replay.tape import (
    ASK,
    BID,
    COLUMNS,
    Events,
    Instrument,
    InstrumentTable,
    write_tape_chunks,
)
from replay.trades_flow import _clear_side, _print
from venues.book import can_alloc
from venues.krx.calendar import is_trading_day
from venues.krx.limits import price_limits
from venues.krx.session import OPEN, schedule, seoul_date, seoul_ns
from venues.krx.ticks import is_on_grid, price_grid, tick_size

#: Share of a first 09:00 bar's volume the opening auction prints.
OPEN_AUCTION_SHARE = 0.5
#: Share of a bar's volume its open print takes, and the share the flow leaves to the
#: close print (which takes whatever is still missing).
OPEN_PRINT_SHARE = 0.05
CLOSE_PRINT_SHARE = 0.05
#: The close print's lead before the bar's end, and the flow's stop before it (ns).
CLOSE_LEAD_NS = 1_000_000
FLOW_STOP_NS = 2_000_000


def _day_of(start_ns: int) -> date:
    return seoul_date(int(start_ns))


def synthesize_from_intraday(bars: pd.DataFrame, seed: int,
                             profile: str | Profile | None = None, *,
                             event_rate: float | None = None,
                             bases: Mapping[str, int] | None = None,
                             markets: Mapping[str, str] | None = None,
                             chunk_events: int = 1 << 20,
                             ) -> Iterator[tuple[Events, InstrumentTable]]:
    """The anchored L3 tape of intraday bars (the table of
    :func:`replay.loaders.intraday_bars.read_intraday_bars`), one day at a time: each
    code an instrument (ids 1, 2, ... in the bars' code order), its days generated on its
    own random stream, merged by time as :func:`replay.anchor.synthesize_from_bars` does.
    Raises ValueError (TapeError naming file, row, field for a bar the venue could not
    have printed)."""
    prof = _resolve(profile, event_rate)
    if bars.empty:
        raise ValueError(f"{bars.attrs.get('source', 'bars')}: no bars")
    source = bars.attrs.get("source", "bars")
    lines = bars["row"].to_numpy() if "row" in bars else np.arange(len(bars)) + 1
    files = bars["file"].to_numpy() if "file" in bars else np.full(len(bars), source, object)
    codes = list(dict.fromkeys(bars["code"].astype(str)))
    markets = {c: ("KOSDAQ" if str((markets or {}).get(c, "KOSPI")).upper() == "KOSDAQ"
                   else "KOSPI") for c in codes}
    days_all = np.array([_day_of(s) for s in bars["start"].to_numpy()])
    days = sorted(set(days_all))
    n = len(codes)
    states, base = [], {}
    for k, c in enumerate(codes):
        st = np.zeros(_NSTATE, np.int64)
        st[_S_NEXT_ID] = 1
        st[_S_SEQ] = 1
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, k])))
        states.append(_NameState(_Book(max(1 << 12, 4 * prof.live_orders)), st, rng))
        first = np.flatnonzero(bars["code"].to_numpy() == c)[0]
        base[c] = int((bases or {}).get(c, bars["open"].iloc[first]))
    # a day of all codes is held in memory while it is merged: refuse one estimated above
    # the daily anchor's limit (rows a decision a second of a session, plus a top-up a bar)
    per_day = pd.Series((bars["end"] - bars["start"]).to_numpy() / 1e9).groupby(
        days_all).sum()
    n_bars = pd.Series(days_all).value_counts()
    for day in days:
        est = ROWS_PER_RATE / _session_seconds() * prof.event_rate * per_day[day] \
            + 30 * n_bars[day]
        if est > MAX_DAY_ROWS:
            raise ValueError(f"{source}: {day}: {n} code(s) at {prof.event_rate:g} "
                             f"decisions/s make about {est:,.0f} rows, held in memory to "
                             f"merge them (limit {MAX_DAY_ROWS:,}); lower the rate (--rate) "
                             "or select fewer codes")
    seq = 1
    for day in days:
        table = InstrumentTable([Instrument(
            instrument_id=k + 1, symbol=c, venue="XKRX", book_type="L3", price_decimals=0,
            tick_units=int(tick_size(base[c], on=day, market=markets[c])),
            prev_close_units=base[c], market=markets[c]) for k, c in enumerate(codes)])
        parts = []
        for k, c in enumerate(codes):
            m = (bars["code"].to_numpy() == c) & (days_all == day)
            if not m.any():
                continue
            idx = np.flatnonzero(m)
            b = {f: bars[f].to_numpy(np.int64)[idx] for f in ("start", "end", "open", "high",
                                                            "low", "close", "volume")}
            where = (files[idx], np.asarray(lines)[idx], bars.attrs.get("names", {}))
            chunks = [ev for ev, _ in _name_day(prof, b, where, day, base[c], markets[c],
                                                states[k], seed, table, chunk_events)]
            ev = Events.concat(chunks)
            ev.instrument = np.full(len(ev), k + 1, np.uint32)
            ev.order_id = np.where(ev.order_id > 0, (ev.order_id - 1) * np.uint64(n)
                                   + np.uint64(k + 1), 0).astype(np.uint64)
            parts.append(ev)
            base[c] = int(b["close"][-1])
        merged = Events.concat(parts)
        order = np.lexsort((np.arange(len(merged)), merged.instrument, merged.ts))
        merged = Events(**{col: getattr(merged, col)[order] for col in COLUMNS})
        merged.sequence = np.arange(seq, seq + len(merged), dtype=np.uint64)
        seq += len(merged)
        yield merged, table


def _checked(b: dict, where: tuple, day: date, base: int, market: str, open_ns: int,
             cont_end_ns: int) -> tuple[int, int, int, int]:
    """The day's limits, and the bars split into (opening, first continuous, first
    closing-period) indexes; a bar the venue could not print is a TapeError."""
    lower, upper = price_limits(base, on=day, market=market)
    files, lines, names = where

    def col(i: int, f: str) -> str:  # the file's own column name of a field
        return names.get(str(files[i]), {}).get(f, f)

    if not is_trading_day(day):
        raise TapeError(files[0], int(lines[0]), col(0, "time"),
                        f"{day} is not an XKRX trading day")
    for f in ("open", "high", "low", "close"):
        bad = ~is_on_grid(b[f], on=day, market=market) | (b[f] < lower) | (b[f] > upper)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TapeError(files[i], int(lines[i]), col(i, f), f"{int(b[f][i])} is off the "
                            f"tick grid or outside the day's limits {lower}-{upper} (base "
                            f"{base})")
    open_at = seoul_ns(day, OPEN)
    early = np.flatnonzero(b["end"] <= open_at)
    if len(early):
        i = int(early[0])
        raise TapeError(files[i], int(lines[i]), col(i, "time"), "a bar before 09:00: the opening "
                        "auction prints at 09:00, in the first bar from 09:00")
    opening = 1 if b["start"][0] <= open_at else 0
    closing = int(np.searchsorted(b["start"], cont_end_ns))
    late = np.flatnonzero(b["end"][opening:closing] > cont_end_ns)
    if len(late):
        i = opening + int(late[0])
        raise TapeError(files[i], int(lines[i]), col(i, "time"), "a bar across 15:20, the start of "
                        "the closing auction: continuous bars end by 15:20")
    if closing < len(b["start"]):
        px = {int(b[f][i]) for f in ("open", "high", "low", "close")
              for i in range(closing, len(b["start"]))}
        if len(px) > 1:
            i = closing
            raise TapeError(files[i], int(lines[i]), col(i, "close"), "the closing auction's bars "
                            f"(from 15:20) have several prices {sorted(px)[:4]}; one uncross "
                            "has one price")
    # the seed's random end of the opening auction (up to 30 s past 09:00): the auction's
    # print must fall in the first bar, and no continuous bar may start before it
    inside = np.flatnonzero(b["start"][opening:closing] < open_ns)
    if (opening and b["end"][0] <= open_ns) or len(inside):
        i = 0 if opening and b["end"][0] <= open_ns else opening + int(inside[0])
        raise TapeError(files[i], int(lines[i]), col(i, "time"), "the opening auction runs "
                        f"to {(open_ns - open_at) / 1e9:.3f} s past 09:00 (its random end, "
                        "this seed): the first bar must hold its print and no later bar may "
                        "start before it (bars of a minute do)")
    if opening and closing == 0:
        raise TapeError(files[0], int(lines[0]), col(0, "time"), "a bar across 09:00 and 15:20")
    return lower, upper, opening, closing


def _bar_params(prof: Profile, volume: int, seconds: float) -> np.ndarray:
    """The profile's params with sizes scaled so the expected market-order volume of
    ``seconds`` of flow is ``volume`` (the daily anchor's rule, replay.anchor.day_params,
    over the time the bars cover)."""
    params = prof.to_params()
    n_market = max(prof.event_rate * seconds * prof.market_share, 1.0)
    mean_mkt = prof.market_size_median * math.exp(0.5 * prof.market_size_sigma ** 2)
    scale = max(1.0, volume) / (n_market * mean_mkt)
    params[P_LOG_SIZE] += math.log(scale)
    params[P_LOG_MKT_SIZE] += math.log(scale)
    params[P_SIZE_MAX] = max(1.0, math.floor(prof.size_max * max(scale, 1.0)))
    return params


def _plan_bar(o: int, h: int, lo: int, c: int, t0: int, t1: int, ladder: np.ndarray,
              rng: np.random.Generator):
    """The value's knots and sweeps of one bar (times relative to 09:00): open -> the
    extremes the open and close do not print (seeded order, each held a tenth of the
    bar, then swept) -> close from 80% of the bar."""
    visit = []
    if h not in (o, c):
        visit.append((h, True))
    if lo not in (o, c):
        visit.append((lo, False))
    if len(visit) == 2 and rng.random() < 0.5:
        visit.reverse()
    span = t1 - t0
    hold = span // 10
    knots_t, knots_v = [t0], [float(o)]
    sweep_t, sweep_px, sweep_up = [], [], []
    slots = [(0.05, 0.25), (0.4, 0.6)] if len(visit) == 2 else [(0.1, 0.5)]
    for (px, up), (a, b) in zip(visit, slots, strict=False):
        t = t0 + int((a + (b - a) * rng.random()) * span)
        v = _press(px, up, ladder)
        knots_t += [t, t + hold]
        knots_v += [v, v]
        sweep_t.append(t + hold)
        sweep_px.append(px)
        sweep_up.append(1 if up else 0)
    t_close = max(t0 + int(0.8 * span), knots_t[-1] + 1)
    knots_t += [t_close, t1]
    knots_v += [float(c), float(c)]
    return (np.asarray(knots_t, np.int64), np.asarray(knots_v, np.float64),
            np.asarray(sweep_t, np.int64), np.asarray(sweep_px, np.int64),
            np.asarray(sweep_up, np.int64))


def _name_day(prof: Profile, b: dict, where: tuple, day: date, base: int, market: str,
              state: _NameState, seed: int, table: InstrumentTable,
              chunk: int) -> Iterator[tuple[Events, InstrumentTable]]:
    sched = schedule(day, seed)
    lower, upper, opening, closing = _checked(b, where, day, base, market,
                                              sched.open_ns, sched.continuous_end_ns)
    ladder = price_grid(lower, upper, on=day, market=market)
    book, st, rng = state.book, state.st, state.rng
    book.new_day(ladder)
    origin = seoul_ns(day, OPEN)
    cont = range(0, closing)
    seconds = float(sum(int(b["end"][i]) - max(int(b["start"][i]), sched.open_ns)
                        for i in cont)) / 1e9
    params = _bar_params(prof, int(b["volume"][:closing].sum()), max(seconds, 1.0))
    base_log_mkt = float(params[P_LOG_MKT_SIZE])
    fst = np.array([float(b["open"][0])])
    st[_S_TRADED] = 0
    st[_S_LAST] = base
    rows = _DayRows(chunk)
    head = (params, ladder, rng)
    ast = np.zeros(N_A, np.int64)
    afl = np.zeros(N_F, np.float64)

    def flush(gen) -> Iterator:
        for ev, _ in gen:
            yield ev, table

    def auction(price: int, volume: int, end_ns: int, reference: int, opening_: bool):
        # as a trades-anchored auction print: the book cleared of what would cross the
        # price, then a bid and an ask there that uncross exactly ``volume`` at it
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

    def exact_print(ts: int, price: int, size: int):
        # one print at ``price`` of ``size`` (a buy if it is not below the last print)
        yield from flush(rows.room(2 * int(st[_S_LIVE]) + 8, table))
        while not can_alloc(book.state.S):
            book.grow()
        side = BID if price >= st[_S_LAST] else ASK
        rows.pos = _print(params, ladder, rng, book.arrays, st, fst, rows.rows, rows.pos, ts,
                          side, price, max(1, size))

    for i in cont:
        o, h, lo, c, v = (int(b[f][i]) for f in ("open", "high", "low", "close", "volume"))
        start, end = int(b["start"][i]), int(b["end"][i])
        ast[:] = 0
        ast[A_STRICT] = 1
        if i == 0 and opening:
            auction_vol = max(1, int(round(v * OPEN_AUCTION_SHARE)))
            yield from auction(o, auction_vol, sched.open_ns, base, True)
            ast[A_VOL] = auction_vol
            t0 = sched.open_ns + 1
        else:
            # the book's orders outside the bar's band withdrawn, then the open printed
            yield from flush(rows.room(2 * int(st[_S_LIVE]) + 8, table))
            rows.pos = _clear_side(book.arrays, st, rows.rows, rows.pos, start, BID, h, 1)
            rows.pos = _clear_side(book.arrays, st, rows.rows, rows.pos, start, ASK, lo, 0)
            size = max(1, int(round(v * OPEN_PRINT_SHARE)))
            yield from exact_print(start + 1, o, size)
            ast[A_VOL] = size
            t0 = start + 2
        ast[A_MAX] = ast[A_MIN] = o
        if st[_S_LIVE] < prof.live_orders:
            yield from flush(rows.room(prof.live_orders, table))
            center = int(np.searchsorted(ladder, o))
            first, done, n_adds = rows.pos, 0, prof.live_orders - int(st[_S_LIVE])
            while True:
                rows.pos, done, status = anchored_top_up(
                    params, ladder, rng, book.arrays, st, rows.rows, rows.pos, t0, center,
                    first, done, n_adds, lo, h)
                if status != _POOL_FULL:
                    break
                book.grow()
            t0 += 1
        t_stop = end - FLOW_STOP_NS
        knots_t, knots_v, sweep_t, sweep_px, sweep_up = _plan_bar(
            o, h, lo, c, t0 - origin, t_stop - origin, ladder, rng)
        ast[A_SWEEP] = 0
        afl[F_LOG_MKT] = base_log_mkt
        # what the flow may trade: the bar's volume less the close print's share and a
        # share for each sweep (a sweep prints at least one)
        afl[F_TARGET] = v - max(1, int(round(v * CLOSE_PRINT_SHARE))) - len(sweep_t)
        afl[F_BASE_VOL] = float(ast[A_VOL])
        afl[F_SHAPE_END] = shape_integral(float(t_stop - origin), params)
        afl[F_SHAPE_TOTAL] = max(afl[F_SHAPE_END] - shape_integral(float(t0 - origin),
                                                                   params), 1.0)
        st[_S_T] = t0 - origin
        latest = 0  # the last row's time: a sweep that ran past the bar shows there
        for ev, _ in rows.run(anchored_continuous, head, book, st, fst, table, origin,
                              t_stop - origin, knots_t, knots_v, sweep_t, sweep_px, sweep_up,
                              lo, h, ast, afl):
            latest = max(latest, int(ev.ts.max()))
            yield ev, table
        if rows.pos:
            latest = max(latest, int(rows.rows[0][:rows.pos].max()))
        params[P_LOG_MKT_SIZE] = base_log_mkt
        if latest >= end - CLOSE_LEAD_NS:
            files, lines, names = where
            raise TapeError(files[i], int(lines[i]), names.get(str(files[i]), {}).get(
                "high", "high"), f"the bar's range {lo}-{h} "
                            "takes more steps of at most 2% (one second apart) than its "
                            "interval holds")
        if st[_S_LAST] != c or ast[A_VOL] < v:
            yield from exact_print(end - CLOSE_LEAD_NS, c, v - int(ast[A_VOL]))
    if closing < len(b["start"]):
        yield from auction(int(b["close"][closing]), int(b["volume"][closing:].sum()),
                           sched.close_ns, int(st[_S_LAST]), False)
    yield from flush(rows.room(int(st[_S_LIVE]), table))
    rows.pos = _close_book(book.arrays, st, rows.rows, rows.pos, sched.close_ns)
    if rows.pos:
        yield rows.events(), table


def write_intraday_anchored_tape(path: str | Path, bars: pd.DataFrame, seed: int,
                                 profile: str | Profile | None = None, *,
                                 event_rate: float | None = None,
                                 bases: Mapping[str, int] | None = None,
                                 markets: Mapping[str, str] | None = None) -> Path:
    """Stream :func:`synthesize_from_intraday` into a Parquet tape (session seed ``seed``;
    the instrument table is the first day's)."""
    chunks = synthesize_from_intraday(bars, seed, profile, event_rate=event_rate,
                                      bases=bases, markets=markets)
    return write_tape_chunks(path, chunks, seed, "the bars make an empty tape")
