"""KIS (Korea Investment & Securities) real-time recordings: quotes (호가) and trades (체결).

Layout: docs/reference/kis-realtime.md and docs/reference/krx-data-formats.md: 4. One frame
per line, ``E|TR_ID|NNN|f1^f2^...``, optionally preceded by the recorder's receive time
(ISO-8601, or epoch seconds / milliseconds / nanoseconds) and a space, comma or tab. A frame
holds NNN records of the TR's full field list. Lines starting with ``#`` and one header line
naming the columns (``local_timestamp,raw_frame``) before the first frame are skipped.

- Quotes, a 10-level book: ``H0STASP0`` (KRX; 59 fields in older recordings, 62 or 63 in
  newer), ``H0NXASP0`` (NXT; 65) and ``H0UNASP0`` (KRX+NXT; 65, or the KRX counts, which
  kis-realtime.md gives it). The first 59 fields are the same in all. Each record is a
  snapshot; consecutive snapshots of a code are differenced into L2 level updates (``M``
  with the new size, ``D`` for a level that vanished at or better than the tenth level
  shown). A level beyond the tenth is unknown, not empty: nothing is emitted for it (with
  fewer than ten levels shown, the side has no other level and vanished ones go). The first
  snapshot of a code clears its book (``R``).
- Trades, 46 fields: ``H0STCNT0`` (KRX), ``H0NXCNT0`` (NXT), ``H0UNCNT0`` (KRX+NXT): a trade
  print ``T`` at STCK_PRPR for CNTG_VOL shares; the aggressor from CCLD_DVSN (1 buy ``B``,
  5 sell ``A``). CCLD_DVSN 3 (pre-open) is a single-price auction's print: it has no
  aggressor (``N``) and carries ``F_AUCTION``, so a venue that computes its own uncross
  skips it.

Times are HHMMSS in Asia/Seoul, whole seconds: every event of a second has that second's
``ts``. The date is ``date=`` when given, else the trade date (BSOP_DATE) of the nearest
trade frame before (or, at the start, after) the frame, else the receive time's. The
recorder's clock need not be Seoul's: a file's receive times are compared with its frames'
exchange times, and the whole number of quarter hours nearest their median difference is
the recorder's offset (a clock 2 h behind KST: +2 h). The receive time, shifted by that
offset, dates the frames and orders the events within one exchange second; it never sets a
``ts``. A frame whose shifted receive time is more than 15 minutes from its exchange time is
an error. The previous close comes from the first trade (STCK_PRPR less its signed
PRDY_VRSS) or quote (ANTC_CNPR less its signed ANTC_CNTG_VRSS) of a code that gives one.
Encrypted frames (E=1: account data, never market data) and other TR_IDs are skipped and
counted. A malformed frame is an error naming its line and the reason.
"""

from __future__ import annotations

import re
from datetime import date as Date
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from replay.loaders import Loaded
from replay.loaders.text import decode_text, parse_ts_ns
from replay.quality import (
    MAX_UNITS,
    TS_MAX_NS,
    TS_MIN_NS,
    TS_RANGE,
    RepairLog,
    TapeError,
    check_prices,
    check_ts_ns,
    distinct_lines,
    sort_or_reject,
)
from replay.tape import (
    ASK,
    BID,
    CLEAR,
    DELETE,
    F_AUCTION,
    F_LAST,
    MODIFY,
    NONE,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
)

SEOUL = ZoneInfo("Asia/Seoul")
KST_OFFSET_NS = 9 * 3600 * 10**9  # Seoul wall clock - UTC (no daylight saving since 1988)
DAY_NS = 86_400 * 10**9
#: Field counts of each quote TR (docs/reference/krx-data-formats.md: 4)
QUOTE_FIELDS = {"H0STASP0": (59, 62, 63), "H0NXASP0": (65,), "H0UNASP0": (59, 62, 63, 65)}
QUOTES = set(QUOTE_FIELDS)
TRADES = {"H0STCNT0", "H0NXCNT0", "H0UNCNT0"}
TRADE_FIELDS = 46
LEVELS = 10
# H0STASP0: code, hour, hour class, ASKP1..10, BIDP1..10, ASKP_RSQN1..10, BIDP_RSQN1..10
Q_CODE, Q_HOUR, Q_ASK_PX, Q_BID_PX, Q_ASK_SZ, Q_BID_SZ = 0, 1, 3, 13, 23, 33
# ... TOTAL_ASKP_RSQN, TOTAL_BIDP_RSQN, OVTM x2, ANTC_CNPR, ANTC_CNQN, ANTC_VOL,
# ANTC_CNTG_VRSS, ANTC_CNTG_VRSS_SIGN: the indicative price and its change vs the previous close
Q_TOTAL_ASK, Q_TOTAL_BID, Q_ANTC_PRICE, Q_ANTC_CHANGE, Q_ANTC_SIGN = 43, 44, 47, 50, 51
# H0STCNT0 field positions
T_CODE, T_HOUR, T_PRICE, T_SIZE, T_SIDE, T_DATE = 0, 1, 2, 12, 21, 33
T_CHANGE_SIGN, T_CHANGE = 3, 4  # PRDY_VRSS_SIGN, PRDY_VRSS: the change vs the previous close
# PRDY_VRSS_SIGN: 1 upper limit, 2 up, 3 unchanged, 4 lower limit, 5 down
CHANGE_SIGN = {"1": 1, "2": 1, "3": 0, "4": -1, "5": -1}
AGGRESSOR = {"1": BID, "5": ASK, "3": NONE}
AUCTION_DVSN = "3"  # pre-open: the single-price auction's print, no aggressor
#: The recorder's clock offset is a whole number of these (time zones differ by them)
OFFSET_STEP_NS = 15 * 60 * 10**9
#: ... and a receive time, shifted by it, lies within this of its frame's exchange time
OFFSET_TOLERANCE_NS = 15 * 60 * 10**9

_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FRAME = re.compile(r"(?:^|[\s,\"])([01])\|([A-Z0-9]+)\|(\d{3})\|(.*)$")
#: a column header: names (letters first, any script) separated by commas
_HEADER = re.compile(r"[^\W\d][\w ]*(,[^\W\d][\w ]*)*")
_AWARE = re.compile(r"(Z|[+-]\d{2}(:?\d{2})?)$", re.IGNORECASE)


def _receive_wall_ns(prefix: str, path: Path, line: int) -> int | None:
    """The receive time as a wall-clock reading in nanoseconds (as if UTC): a time without an
    offset as written (the recorder's clock, whatever its zone); one with an offset, or an
    epoch time, as Seoul's wall clock."""
    text = prefix.strip().rstrip(",").strip().strip('"')
    if not text:
        return None
    try:
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text, re.ASCII):
            whole, _, frac = text.partition(".")
            value = int(whole)
            if value > 10**17:
                ns = value  # ns
            elif value > 10**11:
                ns = value * 10**6 + int(frac[:6].ljust(6, "0"))  # ms
            else:
                ns = value * 10**9 + int(frac[:9].ljust(9, "0"))  # s
            ns += KST_OFFSET_NS
        else:
            ns = parse_ts_ns(text)  # no offset: the wall clock as written
            if _AWARE.search(text):
                ns += KST_OFFSET_NS
    except (ValueError, OverflowError):
        raise TapeError(path, line, "receive_time",
                        f"{text!r} is neither ISO-8601 nor an epoch time") from None
    if not TS_MIN_NS <= ns < TS_MAX_NS:
        raise TapeError(path, line, "receive_time", f"{text!r} is outside {TS_RANGE}")
    return ns


def _int(value: str, path: Path, line: int, name: str) -> int:
    """ASCII digits (int() also takes 70_900 and full-width digits), below 2**53."""
    if not _INT_TEXT.fullmatch(value.strip()):
        raise TapeError(path, line, name, f"{value!r} is not an integer")
    n = int(value)
    if abs(n) >= MAX_UNITS:
        raise TapeError(path, line, name, f"{value!r} is out of bounds: |value| must be "
                        "below 2**53")
    return n


def _seconds(hhmmss: str, path: Path, line: int, name: str) -> int:
    if not re.fullmatch(r"\d{6}", hhmmss):
        raise TapeError(path, line, name, f"{hhmmss!r} is not HHMMSS")
    h, m, s = int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:])
    if h > 23 or m > 59 or s > 59:
        raise TapeError(path, line, name, f"{hhmmss!r} is not a time of day")
    return 3600 * h + 60 * m + s


def _split(line_text: str, path: Path, line: int):
    m = _FRAME.search(line_text)
    if m is None:
        raise TapeError(path, line, "frame", "not a KIS frame (E|TR_ID|NNN|fields)")
    enc, tr_id, count, body = m.groups()
    prefix = line_text[:m.start(1)]
    if prefix.endswith('"') and body.endswith('"'):  # a quoted CSV field
        body = body[:-1]
    n = int(count)
    fields = body.split("^")
    if n == 0 or len(fields) % n:
        raise TapeError(path, line, "NNN", f"{len(fields)} fields do not split into {n} records")
    width = len(fields) // n
    records = [fields[k * width:(k + 1) * width] for k in range(n)]
    return enc, tr_id, records, prefix


def _frame_lines(path: Path, repair: bool, log: RepairLog):
    """(line, text) of a recording's frame lines: ``#`` lines and one column header before
    the first frame are skipped."""
    lines = [t.rstrip("\r") for t in decode_text(Path(path).read_bytes(), path).split("\n")]
    if not any(t.strip() and not t.lstrip().startswith("#") for t in lines):
        raise TapeError(path, None, None, f"no events in {path}: the file has no frames")
    top, header_seen = 0, False
    while top < len(lines):
        text = lines[top].strip()
        if not text or text.startswith("#"):
            top += 1
        elif not header_seen and "|" not in text and _HEADER.fullmatch(text):
            header_seen = True
            top += 1
        else:
            break
    for line, text in distinct_lines(lines[top:], path, repair, log):
        yield line + top, text


def _clock_offset(path: Path, lines: np.ndarray, second: np.ndarray, wall: np.ndarray) -> int:
    """The recorder's clock offset (Seoul minus its wall clock), in ns: the whole number of
    quarter hours nearest the median of (exchange time - receive time) over the file's frames;
    a frame whose shifted receive time is more than 15 minutes from its exchange time is an
    error."""
    half = DAY_NS // 2
    gap = (second * 10**9 - wall % DAY_NS + half) % DAY_NS - half  # in [-12 h, 12 h)
    offset = int(round(float(np.median(gap)) / OFFSET_STEP_NS)) * OFFSET_STEP_NS
    residual = (gap - offset + half) % DAY_NS - half
    far = np.abs(residual) > OFFSET_TOLERANCE_NS
    if far.any():
        r = int(np.flatnonzero(far)[0])
        raise TapeError(path, int(lines[r]), "receive_time",
                        f"the receive time is {int(residual[r]) / 1e9:+.0f} s from the frame's "
                        f"exchange time after the recorder's clock offset of "
                        f"{offset / 3.6e12:+g} h (more than 15 minutes)")
    return offset


def load(paths: list[Path], *, repair: bool = False, date: str | None = None,
         **_: object) -> Loaded:
    """Load KIS recordings; ``date`` (YYYY-MM-DD) dates frames that carry none."""
    log = RepairLog()
    fixed_date = Date.fromisoformat(date) if date else None
    # pass 1: frames as Python records (recordings are text, a few per second per code)
    frames = []  # (kind, code, second, date or None, receive ns or None, data, path, line)
    for path in paths:
        mine = []
        for line, text in _frame_lines(path, repair, log):
            enc, tr_id, records, prefix = _split(text, path, line)
            if enc == "1":
                log.add("encrypted_frame_skipped", [line])
                continue
            if tr_id not in QUOTES and tr_id not in TRADES:
                log.add("other_tr_id_skipped", [line])
                continue
            wall = _receive_wall_ns(prefix, path, line)
            for rec in records:
                mine.append(_record(tr_id, rec, wall, path, line))
        # the recorder's clock, shifted to Seoul's (module docstring)
        timed = [k for k, f in enumerate(mine) if f[4] is not None]
        if timed:
            offset = _clock_offset(path, np.array([mine[k][7] for k in timed], np.int64),
                                   np.array([mine[k][2] for k in timed], np.int64),
                                   np.array([mine[k][4] for k in timed], np.int64))
            for k in timed:
                f = mine[k]
                mine[k] = (*f[:4], f[4] + offset, *f[5:])
        frames.extend(mine)
    # dates: explicit, else nearest trade date in the file, else the receive time's
    trade_dates = [f[3] for f in frames if f[3] is not None]
    last = trade_dates[0] if trade_dates else None
    rows = []
    order_key, last_path = 0, None
    for order, f in enumerate(frames):
        kind, code, second, day, recv, data, path, line = f
        if day is not None:
            last = day
        use = fixed_date or day or last
        if use is None and recv is not None:
            # the Seoul day whose midnight plus the exchange second is nearest the receive time
            midnight = (recv - second * 10**9 + DAY_NS // 2) // DAY_NS
            use = Date(1970, 1, 1) + timedelta(days=int(midnight))
        if use is None:
            raise TapeError(path, line, "date", "no date for this frame: no trade date in the "
                            "file and no receive time; pass --date YYYY-MM-DD")
        midnight = datetime(use.year, use.month, use.day, tzinfo=SEOUL)
        ts = int(midnight.timestamp()) * 10**9 + second * 10**9
        # the order key within a second: the receive time; a frame without one takes the
        # previous frame's of its file (0 before the first), so it keeps its place
        if recv is not None or path != last_path:
            order_key, last_path = (recv or 0), path
        rows.append((ts, order_key, order, kind, code, data, path, line))
    # frames must come in exchange-time order within each file (to the second: within one,
    # the receive time orders them): re-sorted frames are an error, or with repair sorted
    # and counted (unsorted_ts); files are then merged by time
    for path in paths:
        mine = [r for r in rows if r[6] == path]
        ts_of, line_of = (np.array([r[k] for r in mine], np.int64) for k in (0, 7))
        check_ts_ns(ts_of, path, line_of, "BSOP_DATE")
        sort_or_reject(ts_of, path, line_of, "HOUR (BSOP_HOUR / STCK_CNTG_HOUR)", repair, log)
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return _events([(r[0], r[2], *r[3:], r[0]) for r in rows], log)


def _change(price: int, sign_text: str, change_text: str, path: Path, line: int,
            sign_name: str, change_name: str) -> int:
    """The previous close: ``price`` less its change, whose sign is in its own field."""
    sign = CHANGE_SIGN.get(sign_text.strip())
    if sign is None:
        raise TapeError(path, line, sign_name, f"{sign_text!r} is not 1-5")
    prev_close = price - sign * abs(_int(change_text, path, line, change_name))
    if prev_close < 0:
        raise TapeError(path, line, change_name, f"previous close {prev_close} is negative")
    return prev_close


def _record(tr_id, rec, recv, path, line):
    if tr_id in QUOTES:
        if len(rec) not in QUOTE_FIELDS[tr_id]:
            raise TapeError(path, line, "fields", f"{tr_id} record has {len(rec)} fields; "
                            f"expected {' or '.join(map(str, QUOTE_FIELDS[tr_id]))}")
        second = _seconds(rec[Q_HOUR], path, line, "BSOP_HOUR")
        asks = [(_int(rec[Q_ASK_PX + k], path, line, f"ASKP{k + 1}"),
                 _int(rec[Q_ASK_SZ + k], path, line, f"ASKP_RSQN{k + 1}")) for k in range(LEVELS)]
        bids = [(_int(rec[Q_BID_PX + k], path, line, f"BIDP{k + 1}"),
                 _int(rec[Q_BID_SZ + k], path, line, f"BIDP_RSQN{k + 1}")) for k in range(LEVELS)]
        for name, levels in (("ASKP", asks), ("BIDP", bids)):
            for k, (p, s) in enumerate(levels):
                if p < 0 or s < 0:
                    raise TapeError(path, line, f"{name}{k + 1}", "negative price or size")
        # the indicative price less its change vs the previous close: the previous close
        # (0 when neither is given; KIS sends ANTC_CNPR 0 in continuous trading, its change
        # then being minus the previous close)
        prev = 0
        if rec[Q_ANTC_SIGN].strip() not in ("", "0"):  # 0 or empty: no change given
            prev = _change(_int(rec[Q_ANTC_PRICE], path, line, "ANTC_CNPR"), rec[Q_ANTC_SIGN],
                           rec[Q_ANTC_CHANGE], path, line, "ANTC_CNTG_VRSS_SIGN",
                           "ANTC_CNTG_VRSS")
        return ("Q", rec[Q_CODE], second, None, recv, (bids, asks, prev), path, line)
    if len(rec) != TRADE_FIELDS:
        raise TapeError(path, line, "fields",
                        f"{tr_id} record has {len(rec)} fields; expected {TRADE_FIELDS}")
    second = _seconds(rec[T_HOUR], path, line, "STCK_CNTG_HOUR")
    price = _int(rec[T_PRICE], path, line, "STCK_PRPR")
    size = _int(rec[T_SIZE], path, line, "CNTG_VOL")
    if price <= 0 or size <= 0:
        raise TapeError(path, line, "STCK_PRPR" if price <= 0 else "CNTG_VOL",
                        "trade price and size must be positive")
    side = AGGRESSOR.get(rec[T_SIDE])
    if side is None:
        raise TapeError(path, line, "CCLD_DVSN", f"{rec[T_SIDE]!r} is not 1, 3 or 5")
    try:
        day = datetime.strptime(rec[T_DATE], "%Y%m%d").date()
    except ValueError:
        raise TapeError(path, line, "BSOP_DATE", f"{rec[T_DATE]!r} is not YYYYMMDD") from None
    flags = F_AUCTION if rec[T_SIDE] == AUCTION_DVSN else 0
    prev_close = _change(price, rec[T_CHANGE_SIGN], rec[T_CHANGE], path, line,
                         "PRDY_VRSS_SIGN", "PRDY_VRSS")
    if prev_close <= 0:
        raise TapeError(path, line, "PRDY_VRSS", f"previous close {prev_close} is not positive")
    return ("T", rec[T_CODE], second, day, recv, (price, size, side, flags, prev_close), path,
            line)


def _events(rows, log: RepairLog) -> Loaded:
    codes: dict[str, int] = {}
    books: dict[int, tuple[dict[int, int], dict[int, int]] | None] = {}
    out: list[tuple[int, int, int, int, int, int, int]] = []
    first_price: dict[int, int] = {}
    prev_close: dict[int, int] = {}
    source: list[tuple[Path, int]] = []  # (file, line) of each frame that made events
    made: list[int] = []  # per event, its index in ``source``
    for ts, _, kind, code, data, path, line, _second in rows:
        inst = codes.setdefault(code, len(codes))
        start = len(out)
        if kind == "T":
            price, size, side, flags, prev = data
            out.append((ts, inst, TRADE, side, price, size, flags))
            first_price.setdefault(inst, price)
            prev_close.setdefault(inst, prev)
        else:
            bids, asks, prev = data
            if prev > 0:
                prev_close.setdefault(inst, prev)
            new = ({p: s for p, s in bids if p > 0 and s > 0},
                   {p: s for p, s in asks if p > 0 and s > 0})
            old = books.get(inst)
            if old is None:
                out.append((ts, inst, CLEAR, NONE, 0, 0, 0))
                old = ({}, {})
            for side, was, now in ((BID, old[0], new[0]), (ASK, old[1], new[1])):
                shown = [p for p, s in (bids if side == BID else asks) if p > 0 and s > 0]
                # the tenth (worst) level shown; with fewer than ten the side has no other
                worst = (min(shown) if side == BID else max(shown)) if shown else 0

                def known(p: int, full: bool = len(shown) == LEVELS, worst=worst,
                          bid: bool = side == BID) -> bool:
                    # only a price beyond the tenth level is unknown (not empty)
                    return not full or (p >= worst if bid else p <= worst)

                for p in sorted(now):
                    if was.get(p) != now[p]:
                        out.append((ts, inst, MODIFY, side, p, now[p], 0))
                for p in sorted(was):
                    if p not in now and known(p):
                        out.append((ts, inst, DELETE, side, p, 0, 0))
                kept = {p: s for p, s in was.items() if not known(p)}
                kept.update(now)
                was.clear()
                was.update(kept)
            books[inst] = old
            if bids[0][0] > 0:
                first_price.setdefault(inst, bids[0][0])
        if len(out) > start:
            made.extend([len(source)] * (len(out) - start))
            source.append((path, line))
            ts0, i0, a0, s0, p0, z0, f0 = out[-1]
            out[-1] = (ts0, i0, a0, s0, p0, z0, f0 | F_LAST)
    n = len(out)
    cols = np.array(out, dtype=np.int64).reshape(n, 7)
    events = Events.from_columns({
        "ts": cols[:, 0], "instrument": cols[:, 1], "action": cols[:, 2], "side": cols[:, 3],
        "price": cols[:, 4], "size": cols[:, 5], "order_id": np.zeros(n, np.uint64),
        "flags": cols[:, 6], "sequence": np.arange(n, dtype=np.uint64)})
    from venues.krx.ticks import tick_size

    tick_units = np.array([int(tick_size(first_price.get(i, 1))) for i in codes.values()])
    # prices near the day's (replay/quality.py: bounds), each error naming its frame's line
    priced = (events.action == MODIFY) | (events.action == TRADE)
    where = np.array(made, np.int64)
    for f in {p for p, _ in source}:
        mine = np.array([source[k][0] == f for k in where], bool) if n else np.zeros(0, bool)
        lines = np.array([source[k][1] for k in where], np.int64)
        check_prices(events.price[mine], priced[mine], events.instrument[mine].astype(np.int64),
                     tick_units, f, lines[mine], "price")
    instruments = InstrumentTable([
        Instrument(instrument_id=i, symbol=code, venue="XKRX", book_type="L2",
                   tick_units=int(tick_size(first_price.get(i, 1))), market="",
                   prev_close_units=prev_close.get(i, 0))
        for code, i in codes.items()])
    return Loaded(events, instruments, log)
