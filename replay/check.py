"""``cascade data check``: what a tape contains and what is wrong with it.

Reads the tape in chunks and reports, per problem, how many rows have it and the first such
row (1-based, as the tape's rows count): time order, times outside 1990-2100, sizes that
must be positive, prices that must be positive, prices off the tick grid (for XKRX stocks
the KRX table by price band in force on the tape's first date, docs/reference/krx.md: tick
size), and, from a replay of the tape through the book, unknown order ids, duplicate adds
and packet ends at which the book is crossed. Repairs made at import (replay/quality.py
policies) are listed from the tape's metadata. A tape with non-positive prices or values
beyond 2**53 is not replayed (the book would have no level for them), nor, with the reason,
one whose prices the bounded ladder cannot hold.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from replay.engine import Replay
from replay.quality import MAX_UNITS, TS_MAX_NS, TS_MIN_NS, RepairLog
from replay.tape import ADD, CANCEL, DELETE, F_AUCTION, F_LAST, FILL, MODIFY, TRADE, Events, Tape
from venues.ticks import tick_scheme

#: What each problem means, for the table ``cascade data check`` prints.
MEANING = {
    "unsorted_ts": "a row earlier in time than the row before it",
    "ts_out_of_range": "a time outside 1990-01-01 to 2100-01-01 UTC",
    "non_positive_size": "an add, trade or fill of size 0 or less",
    "non_positive_price": "an add, modify, trade or fill (or L2 cancel/delete) priced 0 or less",
    "out_of_bounds": "a price or size whose magnitude is not below 2**53",
    "off_grid_price": "a price off the instrument's tick grid (KRX: the tick of its band)",
    "unknown_order_id": "a cancel, delete, modify or fill of an order the book never saw",
    "duplicate_add": "an add of an order id already in the book",
    "crossed_book_at_packet_end": "best bid >= best ask where a packet ends",
}
_REPLAYED = {"unknown_order_id": "unknown_order", "duplicate_add": "duplicate_add"}
_PRICED = np.array([ADD, MODIFY, TRADE, FILL])
_L2_PRICED = np.array([CANCEL, DELETE])


def _grids(tape: Tape) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each instrument's tick bands (lower bounds, ticks) as the replay uses them, by id."""
    first = next(tape.chunks(1), None)
    on = None
    if first is not None and len(first) and TS_MIN_NS <= int(first.ts[0]) < TS_MAX_NS:
        from venues.krx.session import seoul_date

        on = seoul_date(int(first.ts[0]))
    n = max((i.instrument_id for i in tape.instruments), default=-1) + 1
    grids = [(np.array([0], np.int64), np.array([1], np.int64))] * n
    for inst in tape.instruments:
        grids[inst.instrument_id] = tick_scheme(inst, on)
    return grids


def _off_grid(ev: Events, priced: np.ndarray,
              grids: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    off = np.zeros(len(ev), bool)
    for k in np.unique(ev.instrument[priced]):
        rows = priced & (ev.instrument == k)
        if k >= len(grids):
            continue
        bounds, ticks = grids[int(k)]
        p = ev.price[rows]
        t = ticks[np.maximum(np.searchsorted(bounds, p, side="right") - 1, 0)]
        off[rows] = p % np.maximum(t, 1) != 0
    return off


def check_tape(path: str | Path, chunk_rows: int = 1 << 16) -> dict:
    tape = Tape(path)
    if len(tape) == 0:
        raise ValueError(f"no events in {path}")
    actions: Counter = Counter()
    counts: Counter = Counter()
    first_row: dict[str, int] = {}
    grids = _grids(tape)
    last_ts = None
    row0 = 0
    for ev in tape.chunks(chunk_rows):
        codes, n = np.unique(ev.action, return_counts=True)
        for c, k in zip(codes, n, strict=True):
            actions[chr(c)] += int(k)
        back = np.zeros(len(ev), bool)
        if last_ts is not None:
            back[0] = ev.ts[0] < last_ts
        back[1:] = ev.ts[1:] < ev.ts[:-1]  # no np.diff: it wraps around int64
        priced = np.isin(ev.action, _PRICED) | ((ev.order_id == 0)
                                                & np.isin(ev.action, _L2_PRICED))
        bounds = (np.abs(ev.price) >= MAX_UNITS) | (np.abs(ev.size) >= MAX_UNITS)
        masks = {
            "unsorted_ts": back,
            "ts_out_of_range": (ev.ts < TS_MIN_NS) | (ev.ts >= TS_MAX_NS),
            "non_positive_size": np.isin(ev.action, [ADD, TRADE, FILL]) & (ev.size <= 0),
            "non_positive_price": priced & (ev.price <= 0),
            "out_of_bounds": bounds,
            "off_grid_price": _off_grid(ev, priced & (ev.price > 0) & ~bounds, grids),
        }
        for kind, mask in masks.items():
            counts[kind] += int(mask.sum())
            if kind not in first_row and mask.any():
                first_row[kind] = row0 + int(np.flatnonzero(mask)[0]) + 1
        last_ts = int(ev.ts[-1])
        row0 += len(ev)

    replayable = not any(counts[k] for k in ("non_positive_price", "out_of_bounds"))
    replay_error = None
    if replayable:
        try:
            _replay_problems(tape, chunk_rows, counts, first_row)
        except ValueError as exc:  # a price the bounded ladder cannot hold
            replayable, replay_error = False, str(exc)
    repairs = RepairLog.from_json(tape.quality) if tape.quality else RepairLog()
    return {
        "tape": str(path),
        "rows": len(tape),
        "instruments": [i.symbol for i in tape.instruments],
        "actions": dict(sorted(actions.items())),
        "problems": {k: int(counts[k]) for k in MEANING},
        "first_row": {k: first_row[k] for k in MEANING if k in first_row},
        "replayed": replayable,
        "replay_error": replay_error,
        "repairs_at_import": dict(repairs.counts),
        "repair_example_rows": repairs.examples,
        "book_check_at_import": json.loads(tape.book_check) if tape.book_check else None,
        # crossed packet ends inside KRX call auctions: what an auction is, not a problem
        "crossed_in_call_auction": int(counts["crossed_in_call_auction"]),
    }


def _replay_problems(tape: Tape, chunk_rows: int, counts: Counter,
                     first_row: dict[str, int]) -> None:
    """Replay the tape through the book: count unknown order ids, duplicate adds and crossed
    packet ends, and find the first row of each (a second, row-by-row pass over the chunk
    where a counter first moved)."""
    rp = Replay(tape.instruments, "absolute")
    first_chunk: dict[str, int] = {}

    def chunks() -> Iterator[Events]:
        for c, ev in enumerate(tape.chunks(chunk_rows)):
            yield ev
            seen = rp.counters  # the kernel has applied every row of chunk c
            for kind, counter in _REPLAYED.items():
                if seen[counter] and kind not in first_chunk:
                    first_chunk[kind] = c

    result = rp.run(chunks())
    for kind, counter in _REPLAYED.items():
        counts[kind] = int(result.counters[counter])
    for kind, c in first_chunk.items():
        first_row[kind] = _first_row_moving(tape, chunk_rows, c, _REPLAYED[kind])
    tob = result.top_of_book
    crossed = (tob.bid_px >= 0) & (tob.ask_px >= 0) & (tob.bid_px >= tob.ask_px)
    in_call = _in_call_auction(tape, chunk_rows, tob.ts.to_numpy(np.int64),
                               tob.instrument.to_numpy(np.int64)) & crossed.to_numpy()
    counts["crossed_in_call_auction"] = int(in_call.sum())
    crossed &= ~in_call
    counts["crossed_book_at_packet_end"] = int(crossed.sum())
    if crossed.any():
        ts = int(tob.ts[crossed].iloc[0])
        row0 = 0
        for ev in tape.chunks(chunk_rows):
            hit = np.flatnonzero((ev.ts == ts) & (ev.flags & F_LAST > 0))
            if len(hit):
                first_row["crossed_book_at_packet_end"] = row0 + int(hit[0]) + 1
                break
            row0 += len(ev)


#: How long before its uncross a KRX call auction can have begun, by the uncross's Seoul
#: time (docs/reference/krx.md: sessions, VI): the opening call from 08:30 (rows from the
#: 08:00 pre-market kept in), the closing call from 15:20, a VI's 2-minute call otherwise
#: (with the random end of up to 30 s).
_OPENING_UNCROSS_BEFORE_S = 10 * 3600
_OPENING_CALL_FROM_S = 8 * 3600
_CLOSING_CALL_FROM_S = 15 * 3600 + 20 * 60
_VI_CALL_S = 150


def _in_call_auction(tape: Tape, chunk_rows: int, ts: np.ndarray,
                     instrument: np.ndarray) -> np.ndarray:
    """Which packet ends ``(ts, instrument)`` fall inside a KRX call auction of an XKRX
    instrument: at or before the ``F_AUCTION`` uncross that ends it and after its start.
    Orders accumulate there without matching, so a crossed book is what a call auction is,
    not a problem of the tape."""
    out = np.zeros(len(ts), bool)
    krx = {i.instrument_id for i in tape.instruments if i.venue == "XKRX"}
    if not krx or not len(ts):
        return out
    ends: dict[int, list[np.ndarray]] = {k: [] for k in krx}
    for ev in tape.chunks(chunk_rows):
        auction = (ev.flags & F_AUCTION) > 0
        for k in krx:
            ends[k].append(np.unique(ev.ts[auction & (ev.instrument == k)]))
    from venues.krx.session import KST_OFFSET_NS

    day_ns = 86_400 * 10**9
    for k, parts in ends.items():
        uncross = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        rows = np.flatnonzero(instrument == k)
        if not len(uncross) or not len(rows):
            continue
        nxt = np.searchsorted(uncross, ts[rows], side="left")
        has = nxt < len(uncross)
        end = uncross[np.minimum(nxt, len(uncross) - 1)]
        local = end + KST_OFFSET_NS
        midnight = local - local % day_ns
        second = (local % day_ns) // 10**9
        start = np.where(second < _OPENING_UNCROSS_BEFORE_S,
                         midnight + _OPENING_CALL_FROM_S * 10**9,
                         np.where(second >= _CLOSING_CALL_FROM_S,
                                  midnight + _CLOSING_CALL_FROM_S * 10**9,
                                  local - _VI_CALL_S * 10**9))
        out[rows] = has & (ts[rows] + KST_OFFSET_NS >= start)
    return out


def _first_row_moving(tape: Tape, chunk_rows: int, chunk: int, counter: str) -> int:
    """The 1-based row at which ``counter`` first moves, given it first moves in ``chunk``:
    replays that narrow the range (slices of 1,024, then 32, then 1 row), each replaying
    the rows before the range whole."""
    start, stop = chunk * chunk_rows, (chunk + 1) * chunk_rows
    for step in (1024, 32, 1):
        if stop - start <= step:
            continue
        start = _first_moving_slice(tape, chunk_rows, counter, start, stop, step)
        stop = start + step
    return _first_moving_slice(tape, chunk_rows, counter, start, stop, 1) + 1


def _first_moving_slice(tape: Tape, chunk_rows: int, counter: str, start: int, stop: int,
                        step: int) -> int:
    """Replay the rows before ``start`` whole, then [start, stop) in slices of ``step``:
    the first row of the slice after which ``counter`` is no longer 0."""
    rp = Replay(tape.instruments, "absolute")
    found: list[int] = []

    def pieces() -> Iterator[Events]:
        row0 = 0
        for ev in tape.chunks(chunk_rows):
            lo, hi = row0, row0 + len(ev)
            row0 = hi
            if hi <= start:
                yield ev
                continue
            if lo < start:
                yield ev.take(slice(0, start - lo))
            for s in range(max(lo, start), min(hi, stop), step):
                yield ev.take(slice(s - lo, min(s + step, hi, stop) - lo))
                if rp.counters[counter]:
                    found.append(s)
                    return
            if hi >= stop:
                return

    rp.run(pieces())
    return found[0] if found else start


def book_check_lines(report: dict) -> list[str]:
    """What the loader found checking its file's own book columns (krx-orders), as lines:
    rows checked, the reading that fits, and the mismatches by kind for each reading."""
    found = report.get("book_check_at_import") or {}
    lines = []
    check = found.get("book_check")
    if check:
        fits = ("the book before and after each row's event equally"
                if check["fits"] == "either"
                else f"the book {check['fits']} each row's event better")
        lines.append(f"book check at import: {check['rows_checked']:,} rows; the file's book "
                     f"columns fit {fits}")
        for reading, counts in check["mismatches"].items():
            first = check["first_mismatch"][reading]
            bad = [f"{k} {v:,} (first at {first[k]})" for k, v in counts.items() if v]
            lines.append(f"  mismatches with the book {reading} the event: "
                         + (", ".join(bad) if bad else "none"))
    stats = found.get("order_stats")
    if stats:
        lines.append("orders at import: " + ", ".join(f"{k} {v:,}" for k, v in stats.items()))
    return lines


def format_report(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)


def report_table(report: dict):
    """The report as a rich table: problem, count, first row, what it means."""
    from rich.table import Table

    table = Table(title=f"{report['tape']}: {report['rows']:,} rows of "
                        f"{', '.join(report['instruments'])}")
    for name, justify in (("problem", "left"), ("count", "right"), ("first row", "right"),
                          ("what it means", "left")):
        table.add_column(name, justify=justify)
    for kind, n in report["problems"].items():
        row = report["first_row"].get(kind)
        table.add_row(kind, f"{n:,}", f"{row:,}" if row else "",
                      MEANING[kind], style="bold red" if n else None)
    return table
