"""Kiwoom OpenAPI opt10079 (주식틱차트조회) trade rows: a trades-only tape.

Layout: docs/data-formats.md ("Kiwoom opt10079 ticks"), as in the real recording shipped in
tests/data (its first line names where it was copied from; the reference pages in
docs/reference do not cover Kiwoom). A CSV as Kiwoom users save it (pandas), with
a header holding ``체결시간`` (YYYYMMDDHHMMSS, Asia/Seoul), ``현재가`` (the trade price) and
``거래량`` (its size); an unnamed leading index column, ``시가``/``고가``/``저가`` and any other
column are ignored. Lines starting with ``#`` (and blank lines) before the header are
skipped.

- Kiwoom writes ``현재가`` signed: the sign is the direction of the change against the previous
  close, the price is its absolute value. ``거래량`` is unsigned.
- Rows come newest first: the file is read in reverse, so the tape runs in time order. A
  file already oldest first (every time non-decreasing) is read as it is; one in neither
  order is an error naming the first row out of order, or with ``repair`` sorted by time
  (file order reversed breaking ties) and counted as ``unsorted_ts``.
- Times have whole seconds: every trade of one second has that second's ``ts``; their order
  is the file's (reversed), and ``sequence`` is each row's position among the data rows.
- The file names no aggressor: every print has side ``N``; nothing is inferred.
- The symbol is the ``symbol`` option, else the file name's one 6-digit code.

Seoul time is UTC+9 on every date (replay/loaders/seoul.py).
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from replay.loaders import Loaded
from replay.loaders.seoul import KST_OFFSET_MS, days_of, ms_of_day, seoul_ns
from replay.loaders.text import decode_text, merge_by_time
from replay.quality import (
    RepairLog,
    TapeError,
    check_bounds,
    check_prices,
    first_row_error,
)
from replay.tape import F_LAST, NONE, TRADE, Events, Instrument, InstrumentTable

TIME, PRICE, VOLUME = "체결시간", "현재가", "거래량"
#: A stock code in a file name: six digits not part of a longer run of digits.
_CODE_IN_NAME = re.compile(r"(?<![0-9])([0-9]{6})(?![0-9])")
_SIGNED = r"^[+-]?[0-9]+$"
_UNSIGNED = r"^[0-9]+$"
_STAMP = r"^[0-9]{14}$"


class _Rows:
    """One file's three columns as strings, with each row's line number."""

    def __init__(self, path: Path, columns: dict[str, np.ndarray], lines: np.ndarray,
                 position: np.ndarray, data_rows: int) -> None:
        self.path, self.columns, self.lines = path, columns, lines
        self.position = position  # 0-based, among the file's data rows
        self.data_rows = data_rows  # in the file as read

    def take(self, keep: np.ndarray) -> _Rows:
        return _Rows(self.path, {k: v[keep] for k, v in self.columns.items()}, self.lines[keep],
                     self.position[keep], self.data_rows)


def symbol_of(path: Path, symbol: str | None) -> str:
    """The ``symbol`` option, else the one 6-digit stock code in the file's name."""
    if symbol is not None:
        if not symbol.strip():
            raise ValueError("symbol must not be empty")
        return symbol.strip()
    codes = sorted(set(_CODE_IN_NAME.findall(path.name)))
    if len(codes) != 1:
        found = f"several codes ({', '.join(codes)})" if codes else "no 6-digit stock code"
        raise TapeError(path, None, "symbol", f"{found} in the file name {path.name!r}: give "
                        "the code with --symbol CODE (symbol= in Python)")
    return codes[0]


def _read(path: Path) -> _Rows:
    text = decode_text(path.read_bytes(), path)
    lines = text.split("\n", 64)
    skip = 0
    while skip < len(lines) - 1 and (not lines[skip].strip()
                                     or lines[skip].lstrip().startswith("#")):
        skip += 1
    header_text = lines[skip].rstrip("\r")
    if not header_text.strip() or header_text.lstrip().startswith("#"):
        raise TapeError(path, None, None, f"no events in {path}: the file has no header "
                        f"({TIME},{PRICE},{VOLUME}) and no rows")
    header = [h.strip().lstrip("\ufeff") for h in header_text.split(",")]
    for name in (TIME, PRICE, VOLUME):
        if name not in header:
            raise TapeError(path, skip + 1, name, f"missing column {name!r}; the header has "
                            f"{', '.join(repr(h) for h in header)}")
    body_start = sum(len(t) + 1 for t in lines[:skip + 1])
    body = text[body_start:].rstrip("\r\n\t ")
    first_line = skip + 2  # 1-based line of the first data row
    if not body:
        raise TapeError(path, None, None, f"no events in {path}: the file has no data rows")
    positions = [header.index(n) for n in (TIME, PRICE, VOLUME)]
    raw = body.encode("utf-8")
    # each line's start and end: blank lines are skipped, the others are the rows
    bytes_ = np.frombuffer(raw, np.uint8)
    ends = np.r_[np.flatnonzero(bytes_ == ord("\n")), len(raw)]
    starts = np.r_[0, ends[:-1] + 1]
    has_cr = (ends > starts) & (bytes_[np.maximum(ends - 1, 0)] == ord("\r"))
    row_lines = np.flatnonzero(ends - starts - has_cr > 0).astype(np.int64) + first_line
    try:
        table = pacsv.read_csv(
            io.BytesIO(raw),
            read_options=pacsv.ReadOptions(column_names=[f"c{k}" for k in range(len(header))]),
            convert_options=pacsv.ConvertOptions(
                include_columns=[f"c{p}" for p in positions],
                column_types={f"c{p}": pa.string() for p in positions},
                strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid:
        raise _shape_error(path, body, first_line, header) from None
    n = table.num_rows
    if n != len(row_lines):  # a quoted field spans lines: rows would not be lines
        raise TapeError(path, None, None, "a quoted field spans several lines; a Kiwoom row "
                        "is one line")
    columns = {name: np.asarray(table.column(f"c{p}").to_numpy(zero_copy_only=False), object)
               for name, p in zip((TIME, PRICE, VOLUME), positions, strict=True)}
    return _Rows(path, columns, row_lines, np.arange(n, dtype=np.int64), n)


def _shape_error(path: Path, body: str, first_line: int, header: list[str]) -> TapeError:
    """Error path: the first non-blank line whose field count is not the header's, naming
    the first column it lacks (a longer line names none)."""
    for k, line_text in enumerate(body.split("\n")):
        fields = line_text.rstrip("\r").split(",")
        if line_text.rstrip("\r") and len(fields) != len(header):
            name = header[len(fields)] if len(fields) < len(header) else None
            return TapeError(path, first_line + k, name or None,
                             f"{len(fields)} fields; the header has {len(header)} columns")
    return TapeError(path, None, None, "not a CSV file Arrow can read")


def _missing(rows: _Rows, repair: bool, log: RepairLog) -> _Rows:
    bad = np.zeros(len(rows.lines), bool)
    for name, col in rows.columns.items():
        empty = pc.equal(pc.utf8_trim_whitespace(pa.array(col, pa.string())), "")
        empty = empty.to_numpy(zero_copy_only=False)
        if empty.any() and not repair:
            r = int(np.flatnonzero(empty)[0])
            raise TapeError(rows.path, int(rows.lines[r]), name,
                            "missing value (use --repair to drop such rows)")
        bad |= empty
    if bad.any():
        log.add("missing_value", rows.lines[bad])
        rows = rows.take(~bad)
    return rows


def _magnitudes(rows: _Rows, name: str, pattern: str, why: str) -> np.ndarray:
    """The column's integer magnitudes once every value matches ``pattern`` (a sign, where
    the pattern allows one, is dropped)."""
    col = pc.utf8_trim_whitespace(pa.array(rows.columns[name], pa.string()))
    ok = pc.match_substring_regex(col, pattern).to_numpy(zero_copy_only=False)
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise TapeError(rows.path, int(rows.lines[r]), name, f"{rows.columns[name][r]!r} {why}")
    digits = pc.utf8_ltrim(col, characters="+-")
    # at most 15 digits: below 2**53 and no int64 overflow (longer is out of bounds)
    long = (pc.utf8_length(digits).to_numpy(zero_copy_only=False) > 15)
    if long.any():
        r = int(np.flatnonzero(long)[0])
        raise TapeError(rows.path, int(rows.lines[r]), name, f"{rows.columns[name][r]!r} is "
                        "out of bounds: |value| must be below 2**53")
    values = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
    check_bounds(values, rows.path, rows.lines, name)
    return values


def _times(rows: _Rows) -> np.ndarray:
    """체결시간 YYYYMMDDHHMMSS in Seoul time to UTC nanoseconds, exactly."""
    stamp = _magnitudes(rows, TIME, _STAMP, "is not YYYYMMDDHHMMSS (14 digits)")
    days, date_ok = days_of(stamp // 10**6)
    ms, time_ok = ms_of_day(stamp % 10**6)
    ok = date_ok & time_ok
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise TapeError(rows.path, int(rows.lines[r]), TIME,
                        f"{rows.columns[TIME][r]!r} is not a date and time of day")
    return seoul_ns(days, ms, rows.path, rows.lines, TIME)


def _time_order(rows: _Rows, ts: np.ndarray, repair: bool, log: RepairLog) -> np.ndarray:
    """Positions of the file's rows in time order: reversed (Kiwoom's newest first), or as
    they are when already oldest first; otherwise the first row whose time goes up is an
    error, or with ``repair`` the reversed rows are stably sorted and counted."""
    n = len(ts)
    if n < 2 or np.all(ts[1:] >= ts[:-1]):
        return np.arange(n)
    up = np.flatnonzero(ts[1:] > ts[:-1]) + 1
    if up.size:  # times go both down and up
        r = int(up[0])
        if not repair:
            stamps = rows.columns[TIME]
            raise TapeError(rows.path, int(rows.lines[r]), TIME,
                            f"time goes up ({stamps[r]} after {stamps[r - 1]}): Kiwoom rows "
                            "are newest first (use --repair to sort them)")
        back = np.arange(n)[::-1]
        perm = back[np.argsort(ts[back], kind="stable")]
        log.add("unsorted_ts", rows.lines[up])
        return perm
    return np.arange(n)[::-1]


def _one_file(path: Path, repair: bool, log: RepairLog
              ) -> tuple[_Rows, np.ndarray, np.ndarray, np.ndarray]:
    rows = _missing(_read(path), repair, log)
    volume = _magnitudes(rows, VOLUME, _UNSIGNED, "is not an unsigned integer (opt10079 "
                       "volumes carry no sign)")
    zero = volume == 0
    if zero.any():
        if not repair:
            first_row_error(zero, path, rows.lines, VOLUME, "a trade's size must be positive "
                            "(use --repair to drop such rows)")
        log.add("non_positive_size", rows.lines[zero])
        rows, volume = rows.take(~zero), volume[~zero]
    if len(volume) == 0:
        raise TapeError(path, None, None, f"no events in {path}: every row was dropped")
    # the sign is the change against the previous close; the price is the absolute value
    price = _magnitudes(rows, PRICE, _SIGNED, "is not an integer with at most one leading "
                        "sign (+ up, - down against the previous close)")
    first_row_error(price == 0, path, rows.lines, PRICE, "a trade's price must be positive")
    ts = _times(rows)
    order = _time_order(rows, ts, repair, log)
    return rows.take(order), ts[order], price[order], volume[order]


def load(paths: list[Path], *, repair: bool = False, symbol: str | None = None,
         **_: object) -> Loaded:
    """Load Kiwoom opt10079 trade files (module docstring) as one trades-only tape."""
    from venues.krx.ticks import tick_size

    log = RepairLog()
    symbols: dict[str, int] = {}
    ticks: dict[int, int] = {}
    parts, offset = [], 0
    for path in map(Path, paths):
        code = symbol_of(path, symbol)
        rows, ts, price, volume = _one_file(path, repair, log)
        inst = symbols.setdefault(code, len(symbols))
        # the tick at the first print's price on its date (docs/reference/krx.md: tick size)
        ticks.setdefault(inst, int(tick_size(int(price[0]), _seoul_date(int(ts[0])))))
        n = len(ts)
        check_prices(price, np.ones(n, bool), np.zeros(n, np.int64),
                     np.array([ticks[inst]]), path, rows.lines, PRICE)
        parts.append(Events.from_columns({
            "ts": ts, "instrument": np.full(n, inst), "action": np.full(n, TRADE),
            "side": np.full(n, NONE), "price": price, "size": volume,
            "flags": np.full(n, F_LAST), "sequence": rows.position + offset}))
        offset += rows.data_rows
    instruments = InstrumentTable([
        # book type L2: prints carry no order identity (order_id 0) and the tape holds no
        # level update, so its book is empty: a trades-only tape. The market is not in the
        # file (the venue then takes KOSPI's rules)
        Instrument(instrument_id=inst, symbol=code, venue="XKRX", book_type="L2",
                   tick_units=ticks[inst])
        for code, inst in symbols.items()])
    return Loaded(merge_by_time(parts), instruments, log)


def _seoul_date(ts_ns: int) -> date:
    return datetime.fromtimestamp((ts_ns // 10**6 + KST_OFFSET_MS) // 1000, UTC).date()
