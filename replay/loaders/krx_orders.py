"""KRX Data Marketplace order book files (주식 호가장, ST5001): orders in, an L3 tape out.

Layout: docs/reference/krx-data-formats.md: 1. One row per order event of one stock
(ISU_CD, an ISIN): a new order, a modify (정정) or a cancel (취소), keyed by
(ORD_DD, ISU_CD, ORD_ACPT_NO). The bulk daily files before 2018-07-16 have 61 columns and
no header; a file with a header (the vendor's samples, the current layout) is read by
column name; ``columns=MAP.toml`` maps our field names to a layout this module does not
know (docs/data-formats.md: KRX order book file). UTF-8, CP949 or EUC-KR; ``.gz`` read as is.

The file is an order stream, not book deltas: executions are derived here by matching the
orders under the KRX venue's rules (docs/reference/krx.md: sessions, single-price auction)
on the engine's own book (:class:`venues.book.BookState`, :func:`venues.matching.match`,
:func:`venues.auction.gather`, :func:`venues.krx.uncross.uncross_arrays`), as
replay/synth.py does, and written as the tape synth writes (docs/synthetic-tapes.md: What a
day looks like on the tape):

- a new limit order is an ``A``; one that crosses is one packet: a ``T`` (the aggressor's
  side, the last price walked, the size), an ``F`` and a ``C`` per resting order hit, then
  an ``A`` of its rest. A market order (ORD_PRC 0) walks the opposite side; its unfilled
  part is dropped and counted (``market_unfilled``);
- a cancel is a ``D`` (whole rest) or a ``C`` (part) on the parent ORGN_ORD_ACPT_NO; a
  modify takes its ORD_QTY (0 or more than the rest: the whole rest) off the parent the same
  way and places that quantity as a new order with the modify's own ORD_ACPT_NO at the new
  ORD_PRC, behind the queue (a KRX modify gets its own number and loses time priority),
  matching if it crosses; all of it one packet. A modify or cancel of an order that is
  already filled or cancelled changes nothing and is counted (``parent_gone``);
- call auctions by MKTSTAT_TP_CD (10 the opening call, 50 the closing call, 40 continuous
  trading; 70 and the off-hours rows, REGUL_OFFHR_TP_CD other than 1, are skipped and
  counted): orders rest without matching, a market order at the book's edge (one tick
  beyond the instrument's lowest or highest price in the file); the uncross, at the later of
  the last call row and 09:00 KST (15:30, 15:00 before 2016-08-01, at the close; never after
  the first continuous row), is :func:`venues.krx.uncross.uncross_arrays` over the resting
  orders in price-time priority, one packet flagged ``F_AUCTION``; market orders it leaves
  are deleted (counted as ``market_unfilled``); at each stock's day end every order still
  resting is deleted (KRX orders are day orders).

Every row carries the book's best 5 levels and totals (columns 11-30, 44, 45): the loader
compares its book, just before and just after the row's event, with them and counts each
kind of mismatch (:data:`MISMATCH_KINDS`) for both readings; which the file shows is not
confirmed by any source (docs/reference/krx-data-formats.md: 1), so both are reported with
the one that fits better (``Loaded.book_check``, shown by ``cascade data check``).

Instruments: one per ISIN, symbol the 6-digit code (KR7005930003 -> 005930; a custom layout
may give that code itself), venue XKRX, market from 시장구분코드 (1 KOSPI, 2 KOSDAQ;
otherwise from the file name, ``ksq`` KOSDAQ, else KOSPI), tick from venues.krx.ticks at the
stock's median order price on its first day. The file has no previous close:
``prev_close_units`` is 0 (unknown).
"""

from __future__ import annotations

import gzip
import io
import re
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numba import njit

from replay.loaders import Loaded
from replay.loaders.text import decode_text
from replay.quality import MAX_UNITS, RepairLog, TapeError
from replay.tape import (
    ADD,
    ASK,
    BID,
    CANCEL,
    DELETE,
    F_AUCTION,
    F_LAST,
    FILL,
    NONE,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
)
from venues.auction import gather
from venues.book import (
    BookState,
    alloc_order,
    best_price,
    can_alloc,
    enqueue,
    find_order,
    level_index,
    order_fields,
    reduce_order,
    release,
    snapshot_levels,
)
from venues.codes import SRC_HISTORY
from venues.krx.session import SEOUL
from venues.krx.ticks import is_on_grid, tick_size
from venues.krx.uncross import MARKET_PRICE, uncross_arrays
from venues.matching import Reports, clear_fills, fill_at, fill_count, match, rows_needed

# -- the layout ----------------------------------------------------------------------------

_LEVELS = tuple(f"{side}_STEP{k}_BSTORD_{what}" for side in ("ASK", "BID") for k in range(1, 6)
                for what in ("PRC", "RQTY"))
#: The pre-2018-07-16 headerless layout: our field name -> 0-based column
#: (docs/reference/krx-data-formats.md: 1, "0 ISU_CD, 1 ORD_DD, ...").
LAYOUT_61 = {"ISU_CD": 0, "ORD_DD": 1, "ORD_ACPT_NO": 2, "REGUL_OFFHR_TP_CD": 3,
             "ASKBID_TP_CD": 6, "MODCANCL_TP_CD": 7,
             **{name: 11 + k for k, name in enumerate(_LEVELS)},
             "ORD_ACPT_TM": 31, "ORD_QTY": 32, "ORD_PRC": 33, "EXP_CNTR_PRC": 42,
             "TOT_ASK_RQTY": 44, "TOT_BID_RQTY": 45, "ORGN_ORD_ACPT_NO": 54,
             "MKT_TP_CD": 55, "MKTSTAT_TP_CD": 57}
N_COLUMNS_61 = 61
REQUIRED = ("ISU_CD", "ORD_DD", "ORD_ACPT_NO", "ASKBID_TP_CD", "MODCANCL_TP_CD",
            "ORD_ACPT_TM", "ORD_QTY", "ORD_PRC", "ORGN_ORD_ACPT_NO")
BOOK_FIELDS = (*_LEVELS, "TOT_ASK_RQTY", "TOT_BID_RQTY")
OPTIONAL = ("REGUL_OFFHR_TP_CD", "MKTSTAT_TP_CD", "MKT_TP_CD", "EXP_CNTR_PRC", *BOOK_FIELDS)
FIELDS = (*REQUIRED, *OPTIONAL)
#: Header names read as our fields beside the field names themselves (the reference's
#: Korean column names).
ALIASES = {"매도총호가잔량": "TOT_ASK_RQTY", "매수총호가잔량": "TOT_BID_RQTY",
           "예상체결가격": "EXP_CNTR_PRC", "시장구분코드": "MKT_TP_CD"}

#: MKTSTAT_TP_CD: what each state means here ([G] but 10 and 40 in the reference).
OPEN_CALL, CONTINUOUS, CLOSE_CALL, SKIPPED = 1, 0, 2, 3
MKTSTAT = {10: OPEN_CALL, 40: CONTINUOUS, 50: CLOSE_CALL, 70: SKIPPED}
NEW, MODIFY_ROW, CANCEL_ROW = 1, 2, 3
_OPEN_UNCROSS, _CLOSE_UNCROSS, _DAY_END = 4, 5, 6
#: Kinds of embedded-book mismatch, counted per row (any of the 5 levels differing counts
#: the row once for that kind).
MISMATCH_KINDS = ("ask_price", "ask_size", "bid_price", "bid_size", "ask_total", "bid_total")
READINGS = ("before", "after")
_ISIN = re.compile(r"[A-Z]{2}[A-Z0-9]{9}[0-9]")
_SHORT_CODE = re.compile(r"[0-9A-Z]{6}")  # a custom layout may carry the short code
_INT_TEXT = r"^\s*[+-]?[0-9]+\s*$"
ORDER_NO_LIMIT = 10**10  # tape order id = ORD_DD * 10**10 + ORD_ACPT_NO


@dataclass
class _Rows:
    """The parsed rows of all files, one numpy array per field, in file order."""

    file: np.ndarray  # index into the paths
    line: np.ndarray
    cols: dict[str, np.ndarray]
    code: np.ndarray  # each row's index into ``codes``
    codes: list[str]  # the distinct ISU_CD, sorted


# -- reading -------------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise TapeError(path, None, None, f"not a readable gzip file ({exc})") from None
    return data


def _column_map(path: Path, header: list[str] | None, width: int,
                mapping: dict[str, str | int] | None) -> dict[str, int]:
    """Our field -> 0-based column, from the mapping file, the header or the 61 layout."""
    index = None
    if header is not None:
        index = {}
        for i, h in enumerate(header):
            name = h.strip().strip('"')
            index.setdefault(name.upper(), i)
            index.setdefault(name, i)
    if mapping:
        out = {}
        for field, where in mapping.items():
            if isinstance(where, int):
                if not 0 <= where < width:
                    raise TapeError(path, None, field, f"column position {where} is outside "
                                    f"the file's {width} columns")
                out[field] = where
            else:
                if index is None or (where not in index and where.upper() not in index):
                    raise TapeError(path, None, field, f"column {where!r} named in the "
                                    "columns map is not in the file's header")
                out[field] = index.get(where, index.get(where.upper()))
        missing = [f for f in REQUIRED if f not in out]
        if missing:
            raise TapeError(path, None, missing[0], "the columns map does not name this "
                            f"required field (required: {', '.join(REQUIRED)})")
        return out
    if header is None:
        if width != N_COLUMNS_61:
            raise TapeError(path, 1, None, f"{width} columns without a header: the headerless "
                            f"layout has {N_COLUMNS_61}; give --columns MAP.toml for another")
        return dict(LAYOUT_61)
    out = {}
    for h, i in index.items():
        field = ALIASES.get(h, h.upper())
        if field in FIELDS:
            out.setdefault(field, i)
    missing = [f for f in REQUIRED if f not in out]
    if missing:
        raise TapeError(path, 1, missing[0], f"missing column {missing[0]!r}; the header has "
                        f"{', '.join(h.strip() for h in header)} (give --columns MAP.toml to "
                        "map another layout)")
    return out


def read_columns_map(path: str | Path) -> dict[str, str | int]:
    """A ``--columns`` file: a TOML table ``[columns]`` of our field name = the file's column
    name (a string) or 0-based position (an integer)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such columns map") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a TOML columns map ({exc})") from None
    table = doc.get("columns")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{path}: expected a [columns] table of field = column name or "
                         "position")
    for key, value in table.items():
        if key not in FIELDS:
            raise ValueError(f"{path}: key {key!r} is not a field; the fields are "
                             f"{', '.join(FIELDS)}")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"{path}: key {key!r}: expected a column name or a 0-based "
                             f"position, got {value!r}")
    return table


def _looks_like_header(first: str) -> bool:
    head = first.split(",", 1)[0].strip().strip('"')
    return not (_ISIN.fullmatch(head) or head.isdigit())


def _parse_file(path: Path, mapping: dict[str, str | int] | None, repair: bool,
                log: RepairLog) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One file's rows: (line numbers, field -> int64 array); ISU_CD as indices into
    ``_codes``, the file's distinct codes."""
    data = _read_bytes(path)
    if not data or data.isspace():
        raise TapeError(path, None, None, f"no events in {path}: the file is empty")
    cut = data.find(b"\n")
    first_raw = data if cut < 0 else data[:cut]
    first = decode_text(first_raw, path).rstrip("\r")
    header = None
    skip = 0
    if _looks_like_header(first):
        header = next(iter([first.split(",")]))
        skip = 1
    width = len(first.split(","))
    where = _column_map(path, header, width, mapping)
    body = data[cut + 1:] if (skip and cut >= 0) else (b"" if skip else data)
    if np.frombuffer(body, np.uint8).max(initial=0) > 127:
        body = decode_text(body, path).encode("utf-8")
    bad_rows: list[tuple[int, int]] = []

    def invalid(row) -> str:
        bad_rows.append((row.number, row.actual_columns))
        return "skip"

    names = [f"c{i}" for i in range(width)]
    isin_col = where["ISU_CD"]
    wanted = sorted(set(where.values()))
    # integers read as such (fast); only when that fails, as text to find the bad value
    types = {names[i]: pa.int64() for i in wanted}
    types[names[isin_col]] = pa.dictionary(pa.int32(), pa.string())
    try:
        table = _read_csv(body, names, wanted, types, bad_rows, path)
    except pa.ArrowInvalid:
        table = _read_csv(body, names, wanted, {names[i]: pa.string() for i in wanted},
                          bad_rows, path)
    if bad_rows:
        line, got = bad_rows[0]
        raise TapeError(path, line + skip, None, f"{got} fields, expected {width} "
                        "(every row must have the first row's column count)")
    lines = _data_lines(body) + skip
    if len(lines) != table.num_rows:
        raise TapeError(path, None, None, "a quoted field spans lines; the layout has none")
    if len(lines) == 0:
        raise TapeError(path, None, None, f"no events in {path}: the file has no data rows")
    table, lines = _drop_missing(table, lines, where, names, path, repair, log)
    cols: dict[str, np.ndarray] = {}
    users = Counter(where.values())
    for field, i in where.items():
        col = table.column(names[i])
        if field == "ISU_CD":
            col = pc.utf8_trim_whitespace(col.cast(pa.string())).combine_chunks()
            coded = col.dictionary_encode()
            cols[field] = coded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            cols["_codes"] = np.array(coded.dictionary.to_pylist(), dtype=object)
        else:
            cols[field] = _ints(col, path, lines, field)
        users[i] -= 1
        if users[i] == 0:  # a column converted is let go: a day file is large
            del col
            table = table.drop_columns([names[i]])
    return lines, cols


def _drop_missing(table: pa.Table, lines: np.ndarray, where: dict[str, int], names: list[str],
                  path: Path, repair: bool, log: RepairLog) -> tuple[pa.Table, np.ndarray]:
    """An empty value is an error naming its row and field, or with ``repair`` its row is
    dropped and counted (``missing_value``, docs/data-quality.md)."""
    missing = np.zeros(len(lines), bool)
    for field, i in where.items():
        col = table.column(names[i])
        hit = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
        if hit is None and pa.types.is_string(col.type):
            hit = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0).to_numpy(
                zero_copy_only=False)
        if hit is None or not hit.any():
            continue
        if not repair:
            r = int(np.flatnonzero(hit)[0])
            raise TapeError(path, int(lines[r]), field, "missing value (use --repair to drop "
                            "such rows)")
        missing |= hit
    if not missing.any():
        return table, lines
    log.add("missing_value", lines[missing])
    if missing.all():
        raise TapeError(path, None, None, f"no events in {path}: every row misses a value")
    return table.filter(pa.array(~missing)), lines[~missing]


def _read_csv(body: bytes, names: list[str], wanted: list[int], types: dict,
              bad_rows: list, path: Path) -> pa.Table:
    def invalid(row) -> str:
        bad_rows.append((row.number, row.actual_columns))
        return "skip"

    bad_rows.clear()
    try:
        return pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(include_columns=[names[i] for i in wanted],
                                                 column_types=types,
                                                 strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        if all(t == pa.string() for t in types.values()):
            raise TapeError(path, None, None, f"not a readable comma-separated file ({exc})") \
                from None
        raise


def _data_lines(body: bytes) -> np.ndarray:
    """1-based numbers of the non-blank lines of ``body`` (Arrow skips blank lines)."""
    raw = np.frombuffer(body, np.uint8)
    nl = np.flatnonzero(raw == 10)
    starts = np.r_[0, nl + 1]
    ends = np.r_[nl, len(raw)]
    if len(raw) and raw[-1] == 10:
        starts, ends = starts[:-1], ends[:-1]
    length = ends - starts
    cr = np.zeros(len(starts), bool)
    one = length == 1
    cr[one] = raw[starts[one]] == 13
    return np.flatnonzero((length > 0) & ~cr).astype(np.int64) + 1


def _ints(col: pa.ChunkedArray, path: Path, lines: np.ndarray, field: str) -> np.ndarray:
    """An integer column, rejecting the first value that is not one (file, line, field)."""
    if pa.types.is_integer(col.type):
        return col.to_numpy().astype(np.int64, copy=False)
    ok = pc.match_substring_regex(col, _INT_TEXT).to_numpy(zero_copy_only=False)
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        value = col[r].as_py()
        raise TapeError(path, int(lines[r]), field, f"{value!r} is not an integer")
    try:
        return pc.cast(pc.utf8_trim_whitespace(col), pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        for r in range(len(col)):
            if not -(2**63) <= int(col[r].as_py()) < 2**63:
                raise TapeError(path, int(lines[r]), field,
                                f"{col[r].as_py()!r} is not a 64-bit integer") from None
        raise


# -- checks and times ----------------------------------------------------------------------

def _fail(mask: np.ndarray, rows: _Rows, paths: Sequence[Path], field: str,
          reason) -> None:
    hit = np.flatnonzero(mask)
    if len(hit):
        r = int(hit[0])
        text = reason(r) if callable(reason) else reason
        raise TapeError(paths[int(rows.file[r])], int(rows.line[r]), field, text)


def _day_ns(rows: _Rows, paths: Sequence[Path]) -> tuple[np.ndarray, dict[int, date]]:
    """UTC ns of Seoul midnight of each row's ORD_DD, and the dates by YYYYMMDD."""
    dd = rows.cols["ORD_DD"]
    days: dict[int, date] = {}
    midnight = {}
    for v in np.unique(dd):
        try:
            d = datetime.strptime(str(int(v)), "%Y%m%d").date()
            if not 1990 <= d.year < 2100:
                raise ValueError
        except ValueError:
            _fail(dd == v, rows, paths, "ORD_DD", f"{int(v)} is not a date YYYYMMDD in "
                  "1990-2099")
        days[int(v)] = d
        midnight[int(v)] = int(datetime.combine(d, time(0), tzinfo=SEOUL).timestamp()) * 10**9
    keys = np.array(sorted(midnight), np.int64)
    values = np.array([midnight[k] for k in keys], np.int64)
    return values[np.searchsorted(keys, dd)], days


def _time_of_day_ns(tm: np.ndarray, rows: _Rows, paths: Sequence[Path]) -> np.ndarray:
    """ORD_ACPT_TM HHMMSSmmm (the leading zero dropped before 10:00: 90000123 is
    09:00:00.123) as ns after midnight."""
    hh, mm = tm // 10**7, tm // 10**5 % 100
    ss, ms = tm // 1000 % 100, tm % 1000
    bad = (tm < 0) | (hh > 23) | (mm > 59) | (ss > 59)
    _fail(bad, rows, paths, "ORD_ACPT_TM",
          lambda r: f"{int(tm[r])} is not a time HHMMSSmmm (e.g. 90000123 = 09:00:00.123)")
    return ((hh * 3600 + mm * 60 + ss) * 1000 + ms) * 10**6


def _close_time(d: date) -> time:
    # docs/reference/krx.md: sessions; the closing auction ended at 15:00 before the
    # 2016-08-01 extension of trading hours.
    return time(15, 30) if d >= date(2016, 8, 1) else time(15, 0)


# -- loading -------------------------------------------------------------------------------

def load(paths: list[Path], *, repair: bool = False, columns: str | Path | None = None,
         **_: object) -> Loaded:
    """Load ST5001 order book files into an L3 tape (see the module docstring)."""
    log = RepairLog()
    mapping = read_columns_map(columns) if columns else None
    paths = [Path(p) for p in paths]
    parts = [_parse_file(p, mapping, repair, log) for p in paths]
    fields = set.intersection(*(set(c) for _, c in parts)) - {"_codes", "ISU_CD"}
    codes = sorted({str(x) for _, c in parts for x in c["_codes"]})
    code = np.concatenate([np.searchsorted(np.array(codes, dtype=object),
                                           c["_codes"]).astype(np.int64)[c["ISU_CD"]]
                           for _, c in parts])
    rows = _Rows(file=_cat([np.full(len(ln), k, np.int64) for k, (ln, _) in enumerate(parts)]),
                 line=_cat([ln for ln, _ in parts]),
                 cols={f: _cat([c[f] for _, c in parts]) for f in fields},
                 code=code, codes=codes)
    del parts
    return _build(rows, paths, repair, log, has_book=all(f in fields for f in BOOK_FIELDS))


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _build(rows: _Rows, paths: Sequence[Path], repair: bool, log: RepairLog,
           has_book: bool) -> Loaded:
    c = rows.cols
    n = len(rows.line)
    # -- fields, each checked with its row and name
    codes = rows.codes
    inst = rows.code
    for k, code in enumerate(codes):
        if not (_ISIN.fullmatch(code) or _SHORT_CODE.fullmatch(code)):
            _fail(inst == k, rows, paths, "ISU_CD",
                  f"{code!r} is neither an ISIN (12 characters, e.g. KR7005930003) nor a "
                  "6-character stock code (005930)")
    side_code = c["ASKBID_TP_CD"]
    _fail(~np.isin(side_code, [1, 2]), rows, paths, "ASKBID_TP_CD",
          lambda r: f"{int(side_code[r])} is not a side: 1 ask (sell), 2 bid (buy)")
    side = np.where(side_code == 1, ASK, BID).astype(np.int64)
    kind = c["MODCANCL_TP_CD"]
    _fail(~np.isin(kind, [1, 2, 3]), rows, paths, "MODCANCL_TP_CD",
          lambda r: f"{int(kind[r])} is not 1 new, 2 modify or 3 cancel")
    for field in ("ORD_ACPT_NO", "ORGN_ORD_ACPT_NO"):
        v = c[field]
        _fail((v < 0) | (v >= ORDER_NO_LIMIT), rows, paths, field,
              lambda r, v=v: f"{int(v[r])} is not an order number in 0..{ORDER_NO_LIMIT - 1}")
    qty, price = c["ORD_QTY"], c["ORD_PRC"]
    _fail(qty < 0, rows, paths, "ORD_QTY", lambda r: f"{int(qty[r])} is negative")
    _fail((kind == NEW) & (qty == 0), rows, paths, "ORD_QTY", "a new order of 0 shares")
    _fail((price < 0) | (price >= MAX_UNITS), rows, paths, "ORD_PRC",
          lambda r: f"{int(price[r])} is not a price (0 for a market order)")
    parent = c["ORGN_ORD_ACPT_NO"]
    _fail((kind != NEW) & (parent == 0), rows, paths, "ORGN_ORD_ACPT_NO",
          lambda r: f"a {'modify' if kind[r] == MODIFY_ROW else 'cancel'} must name its "
          "parent order (ORGN_ORD_ACPT_NO is 0)")
    regular = np.ones(n, bool)
    if "REGUL_OFFHR_TP_CD" in c:
        regular = c["REGUL_OFFHR_TP_CD"] == 1
    if "MKTSTAT_TP_CD" in c:
        st = c["MKTSTAT_TP_CD"]
        _fail(~np.isin(st, list(MKTSTAT)), rows, paths, "MKTSTAT_TP_CD",
              lambda r: f"{int(st[r])} is not a market state the loader knows: "
              f"{', '.join(map(str, MKTSTAT))}")
        phase = np.select([st == k for k in MKTSTAT], list(MKTSTAT.values())).astype(np.int64)
    day_ns, days = _day_ns(rows, paths)
    tod = _time_of_day_ns(c["ORD_ACPT_TM"], rows, paths)
    ts = day_ns + tod
    if "MKTSTAT_TP_CD" not in c:  # by the clock alone
        phase = np.where(tod < 9 * 3600 * 10**9, OPEN_CALL,
                         np.where(tod >= (15 * 3600 + 20 * 60) * 10**9, CLOSE_CALL,
                                  CONTINUOUS)).astype(np.int64)
    # ORD_DD in 1990-2099 and a time of day below 24 h keep every ts inside the tape's bounds
    skipped = ~regular | (phase == SKIPPED)
    if skipped.any():
        log.add("off_hours_row_skipped", rows.line[skipped])

    # -- instrument-days; time order within each; unique order numbers; parents known
    dd = c["ORD_DD"]
    ud, day_idx = np.unique(dd, return_inverse=True)
    instday = inst * len(ud) + day_idx
    key = instday * ORDER_NO_LIMIT + c["ORD_ACPT_NO"]
    order = np.lexsort((np.arange(n), instday))  # file order within each stock-day
    back = (instday[order][1:] == instday[order][:-1]) & (ts[order][1:] < ts[order][:-1])
    if back.any():
        if not repair:
            r = int(order[int(np.flatnonzero(back)[0]) + 1])
            raise TapeError(paths[int(rows.file[r])], int(rows.line[r]), "ORD_ACPT_TM",
                            "time goes backwards within the stock's day; rows must be in "
                            "time order (use --repair to sort them)")
        log.add("unsorted_ts", rows.line[order[np.flatnonzero(back) + 1]])
        order = np.lexsort((np.arange(n), ts, instday))
    use = order[~skipped[order]]
    ukeys, first = np.unique(key[use], return_index=True)
    if len(ukeys) < len(use):
        dup = np.ones(len(use), bool)
        dup[first] = False
        r = int(use[np.flatnonzero(dup)[0]])
        raise TapeError(paths[int(rows.file[r])], int(rows.line[r]), "ORD_ACPT_NO",
                        f"order number {int(c['ORD_ACPT_NO'][r])} repeats within the "
                        "stock's day (the key is ORD_DD, ISU_CD, ORD_ACPT_NO)")
    pos = np.empty(n, np.int64)
    pos[use] = np.arange(len(use))
    child = use[kind[use] != NEW]
    pkey = instday[child] * ORDER_NO_LIMIT + parent[child]
    at = np.minimum(np.searchsorted(ukeys, pkey), len(ukeys) - 1)
    parent_row = use[first[at]]
    known = (ukeys[at] == pkey) & (pos[parent_row] < pos[child])
    if not known.all():
        bad = child[~known]
        if not repair:
            r = int(bad[0])
            raise TapeError(paths[int(rows.file[r])], int(rows.line[r]), "ORGN_ORD_ACPT_NO",
                            f"{'modify' if kind[r] == MODIFY_ROW else 'cancel'} of order "
                            f"{int(parent[r])}, which the file does not place before this "
                            "row (use --repair to drop such rows)")
        log.add("unknown_parent_dropped", rows.line[bad])
        drop = np.zeros(n, bool)
        drop[bad] = True
        use = use[~drop[use]]
        child, parent_row = child[known], parent_row[known]
    other_side = side[parent_row] != side[child]
    if other_side.any():
        r = int(child[np.flatnonzero(other_side)[0]])
        raise TapeError(paths[int(rows.file[r])], int(rows.line[r]), "ASKBID_TP_CD",
                        f"the side differs from that of its parent order {int(parent[r])}")
    # the day runs opening call -> continuous -> closing call; a state going back is an
    # intraday auction (VI) whose code this loader does not know
    rank = np.choose(phase[use] % 3, [1, 0, 2])  # opening call 0, continuous 1, closing 2
    back = (instday[use][1:] == instday[use][:-1]) & (rank[1:] < rank[:-1])
    if back.any() and "MKTSTAT_TP_CD" in c:
        r = int(use[np.flatnonzero(back)[0] + 1])
        raise TapeError(paths[int(rows.file[r])], int(rows.line[r]), "MKTSTAT_TP_CD",
                        f"state {int(c['MKTSTAT_TP_CD'][r])} after a later one of the "
                        "stock's day (the loader knows 10 opening call, 40 continuous, 50 "
                        "closing call, in that order)")

    # -- instruments, ladders, prices on the grid
    market_code = c.get("MKT_TP_CD")
    instruments, lows, highs, steps = [], [], [], []
    by_inst = use[np.argsort(inst[use], kind="stable")]
    cuts = np.flatnonzero(np.r_[True, inst[by_inst][1:] != inst[by_inst][:-1], True])
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        mine = by_inst[a:b]
        k = int(inst[mine[0]])
        code = codes[k]
        market = _market(market_code[mine[0]] if market_code is not None else None,
                         paths[int(rows.file[mine[0]])])
        first_day = days[int(dd[mine[0]])]
        priced = mine[price[mine] > 0]
        for d in np.unique(dd[priced]):
            on_day = priced[dd[priced] == d]
            off = ~is_on_grid(price[on_day], days[int(d)], market=market)
            if off.any():
                _fail(np.isin(np.arange(n), on_day[off]), rows, paths, "ORD_PRC",
                      lambda r, m=market, d=d: f"{int(price[r])} is off the {m} tick grid "
                      f"on {days[int(d)]} (tick "
                      f"{tick_size(int(price[r]), days[int(d)], market=m)})")
        ref = price[priced] if len(priced) else np.array([1000])
        lo, hi = int(ref.min()), int(ref.max())
        if has_book:
            shown = np.concatenate([c[f][mine] for f in _LEVELS if f.endswith("PRC")])
            shown = shown[shown > 0]
            if len(shown):
                lo, hi = min(lo, int(shown.min())), max(hi, int(shown.max()))
        step = int(tick_size(lo, first_day, market=market))
        tick = int(tick_size(int(np.median(ref)), first_day, market=market))
        if (hi - lo) // step > 4 * 2**19:
            raise TapeError(paths[int(rows.file[mine[0]])], None, "ORD_PRC",
                            f"{code}: prices from {lo} to {hi} span more than 2**21 ticks")
        lo = max(step, lo - step)  # the edge below: market asks waiting in a call auction
        hi = hi + step  # the edge above: market bids
        instruments.append(Instrument(
            instrument_id=k + 1,
            symbol=code[3:9] if code.startswith("KR") and len(code) == 12 else code,
            venue="XKRX", book_type="L3", price_decimals=0, tick_units=tick,
            prev_close_units=0, market=market))
        lows.append(lo)
        highs.append(hi)
        steps.append(step)
    ids = {i.instrument_id - 1 for i in instruments}
    remap = np.full(len(codes), -1, np.int64)
    for j, k in enumerate(sorted(ids)):
        remap[k] = j
    table = InstrumentTable([Instrument(**{**i.__dict__, "instrument_id": j + 1})
                             for j, i in enumerate(instruments)])
    n_inst = len(table)
    if n_inst == 0:
        raise TapeError(paths[0], None, None, "no regular-session order rows")
    book = _Book(n_inst, lows, highs, steps, 1 << 12)
    events, check, stats = _replay(rows, paths, use, remap[inst], side, kind, phase, ts, tod,
                                   instday, dd, days, has_book, book)
    return Loaded(events=events, instruments=table, repairs=log, book_check={**check, **stats})


def _market(code: int | None, path: Path) -> str:
    # docs/reference/krx-data-formats.md: 1, "시장구분코드 2 = KOSDAQ"; 1 = KOSPI is a guess.
    if code == 2:
        return "KOSDAQ"
    if code == 1:
        return "KOSPI"
    name = path.name.lower()
    return "KOSDAQ" if name.startswith("ksq") else "KOSPI"


class _Book:
    """The engine's book over every stock of the file, each on a ladder spanning its prices
    with one edge tick either side (where market orders wait in a call auction), and the
    fills table the matching writes into."""

    def __init__(self, n_inst: int, lows: list[int], highs: list[int], steps: list[int],
                 capacity: int) -> None:
        # a small pool while the ladders are set (each repacks the arena); it grows by
        # doubling as the orders need
        self.state = BookState(n_inst, order_capacity=capacity)
        for i in range(n_inst):
            self.state.set_ladder(i, lows[i], highs[i], steps[i])
        self.edge_lo = np.array(lows, np.int64)
        self.edge_hi = np.array(highs, np.int64)
        self.reports = Reports(self._report_rows())

    def _report_rows(self) -> int:
        return len(self.state.orders) + rows_needed(self.state.S)

    def grow(self) -> None:
        self.state.make_room()
        self.reports = Reports(self._report_rows())


# -- the replay of the orders --------------------------------------------------------------

_DONE, _ROWS_FULL, _POOL_FULL, _AUCTION, _END = 0, 1, 2, 3, 4
# state slots: next row, output position, next sequence number, live orders in the book
_S_I, _S_POS, _S_SEQ, _S_LIVE = range(4)
# stats slots
(_T_CHECKED, _T_PARENT_GONE, _T_MKT_ROWS, _T_MKT_SHARES, _T_AUCTION_MKT_ROWS,
 _T_AUCTION_MKT_SHARES, _N_STATS) = range(7)
_N_BOOK = 22


def _replay(rows: _Rows, paths: Sequence[Path], use: np.ndarray, inst: np.ndarray,
            side: np.ndarray, kind: np.ndarray, phase: np.ndarray, ts: np.ndarray,
            tod: np.ndarray, instday: np.ndarray, dd: np.ndarray, days: dict[int, date],
            has_book: bool, book: _Book) -> tuple[Events, dict, dict]:
    """Match the rows ``use`` (in stock-day, then time order) on ``book``, with the pseudo
    rows of each stock-day's uncrosses and day end placed by time; returns the tape's
    events, the book check and the order counts."""
    c = rows.cols
    n_use = len(use)
    phase = phase[use]
    # pseudo rows: the opening uncross, the closing uncross, the day end, per stock-day
    pkind, pts, pinst, panchor, pref = [], [], [], [], []
    exp = c.get("EXP_CNTR_PRC")
    bounds = np.flatnonzero(np.r_[True, instday[use][1:] != instday[use][:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        seg = use[a:b]
        ph = phase[a:b]
        d = days[int(dd[seg[0]])]
        midnight = int(ts[seg[0]] - tod[seg[0]])
        calls = np.flatnonzero(ph == OPEN_CALL)
        if len(calls):
            j = int(calls[-1])
            at = max(int(ts[seg[j]]), midnight + 9 * 3600 * 10**9)
            later = np.flatnonzero((ph != OPEN_CALL) & (np.arange(len(seg)) > j))
            if len(later):
                at = min(at, int(ts[seg[later[0]]]))
            pkind.append(_OPEN_UNCROSS)
            pts.append(at)
            pinst.append(int(inst[seg[0]]))
            panchor.append(a + j)
            pref.append(int(exp[seg[j]]) if exp is not None else 0)
        close = _close_time(d)
        end = max(int(ts[seg[-1]]),
                  midnight + (close.hour * 3600 + close.minute * 60) * 10**9)
        if (ph == CLOSE_CALL).any():
            pkind.append(_CLOSE_UNCROSS)
            pts.append(end)
            pinst.append(int(inst[seg[0]]))
            panchor.append(b - 1)
            pref.append(0)
        pkind.append(_DAY_END)
        pts.append(end)
        pinst.append(int(inst[seg[0]]))
        panchor.append(b - 1)
        pref.append(0)
    m = n_use + len(pkind)
    r_ts = np.concatenate([ts[use], np.array(pts, np.int64)])
    sub = np.concatenate([2 * np.arange(n_use, dtype=np.int64),
                          2 * np.array(panchor, np.int64) + 1])
    # pseudo rows after their anchor; an uncross and a day end of one anchor in that order
    tie = np.concatenate([np.zeros(n_use, np.int64), np.arange(len(pkind), dtype=np.int64)])
    order = np.lexsort((tie, sub, r_ts))
    src = np.concatenate([use, np.full(len(pkind), -1, np.int64)])[order]
    r = {
        "ts": r_ts[order],
        "kind": np.concatenate([kind[use], np.array(pkind, np.int64)])[order],
        "inst": np.concatenate([inst[use], np.array(pinst, np.int64)])[order],
        "side": np.concatenate([side[use], np.zeros(len(pkind), np.int64)])[order],
        "price": np.concatenate([c["ORD_PRC"][use], np.array(pref, np.int64)])[order],
        "qty": np.concatenate([c["ORD_QTY"][use], np.zeros(len(pkind), np.int64)])[order],
        "oid": np.concatenate([dd[use] * ORDER_NO_LIMIT + c["ORD_ACPT_NO"][use],
                               np.zeros(len(pkind), np.int64)])[order],
        "parent": np.concatenate([dd[use] * ORDER_NO_LIMIT + c["ORGN_ORD_ACPT_NO"][use],
                                  np.zeros(len(pkind), np.int64)])[order],
        "call": np.concatenate([(phase != CONTINUOUS).astype(np.int64),
                                np.zeros(len(pkind), np.int64)])[order],
    }
    shown = np.zeros((m, _N_BOOK), np.int64)
    if has_book:
        real = np.flatnonzero(src >= 0)
        for j, f in enumerate(BOOK_FIELDS):
            shown[real, j] = c[f][src[real]]
            del c[f]  # kept once, in row order: a day file is large
    mism = np.zeros((2, len(MISMATCH_KINDS)), np.int64)
    first_bad = np.full((2, len(MISMATCH_KINDS)), -1, np.int64)
    stats = np.zeros(_N_STATS, np.int64)
    totals = np.zeros((len(book.edge_lo), 2), np.int64)
    last = np.zeros(len(book.edge_lo), np.int64)
    st = np.zeros(4, np.int64)
    st[_S_SEQ] = 1
    chunk = max(1 << 16, 4 * m + 64) if m < 1 << 20 else 1 << 22
    outs = _new_rows(chunk)
    parts: list[Events] = []
    cols = tuple(r[k] for k in ("ts", "kind", "inst", "side", "price", "qty", "oid", "parent",
                                "call"))
    while True:
        status = _run(book.state.S, book.reports.OUT, *cols, shown, int(has_book),
                      book.edge_lo, book.edge_hi, totals, last, st, outs, mism, first_bad,
                      stats)
        if status == _POOL_FULL:
            book.grow()
        elif status == _ROWS_FULL:
            parts.append(_events(outs, int(st[_S_POS])))
            outs = _new_rows(max(chunk, 2 * book.state.live_orders + 64))
            st[_S_POS] = 0
        elif status in (_AUCTION, _END):
            i = int(st[_S_I])
            need = 2 * book.state.live_orders + 8
            if len(outs[0]) - int(st[_S_POS]) < need:
                parts.append(_events(outs, int(st[_S_POS])))
                outs = _new_rows(max(chunk, need))
                st[_S_POS] = 0
            k = int(r["inst"][i])
            if status == _AUCTION:
                opening = int(r["kind"][i]) == _OPEN_UNCROSS
                reference = int(r["price"][i]) or int(last[k])
                _uncross(book, k, int(r["ts"][i]), reference, opening, totals, last, st,
                         outs, stats)
            else:
                _day_end(book, k, int(r["ts"][i]), totals, st, outs)
            st[_S_I] = i + 1
        else:
            break
    parts.append(_events(outs, int(st[_S_POS])))
    events = Events.concat(parts)
    check = {}
    if has_book:
        counts = {reading: {kind: int(mism[j, q]) for q, kind in enumerate(MISMATCH_KINDS)}
                  for j, reading in enumerate(READINGS)}
        firsts = {}
        for j, reading in enumerate(READINGS):
            firsts[reading] = {}
            for q, kind_name in enumerate(MISMATCH_KINDS):
                if first_bad[j, q] >= 0:
                    row = int(src[first_bad[j, q]])
                    firsts[reading][kind_name] = f"{paths[int(rows.file[row])].name}:" \
                                                 f"{int(rows.line[row])}"
        totals_by = {reading: sum(counts[reading].values()) for reading in READINGS}
        fits = "either" if totals_by["before"] == totals_by["after"] else \
            min(READINGS, key=lambda x: totals_by[x])
        check = {"book_check": {"rows_checked": int(stats[_T_CHECKED]), "fits": fits,
                                "mismatches": counts, "first_mismatch": firsts}}
    out_stats = {"order_stats": {
        "parent_gone": int(stats[_T_PARENT_GONE]),
        "market_unfilled_rows": int(stats[_T_MKT_ROWS] + stats[_T_AUCTION_MKT_ROWS]),
        "market_unfilled_shares": int(stats[_T_MKT_SHARES] + stats[_T_AUCTION_MKT_SHARES])}}
    return events, check, out_stats


def _new_rows(n: int) -> tuple[np.ndarray, ...]:
    return (np.empty(n, np.int64), np.empty(n, np.uint32), np.empty(n, np.uint8),
            np.empty(n, np.uint8), np.empty(n, np.int64), np.empty(n, np.int64),
            np.empty(n, np.uint64), np.empty(n, np.uint8), np.empty(n, np.uint64))


def _events(outs: tuple[np.ndarray, ...], n: int) -> Events:
    ts, ins, action, side, price, size, oid, flags, seq = (o[:n] for o in outs)
    return Events(ts=ts, instrument=ins, action=action, side=side, price=price, size=size,
                  order_id=oid, flags=flags, sequence=seq)


def _resting(book: _Book, k: int) -> tuple[np.ndarray, ...]:
    """Both sides' resting orders of stock ``k`` in priority, from venues.auction.gather."""
    bid_px, bid_sz, bid_rows, _, _ = gather(book.state.S, k, BID)
    ask_px, ask_sz, ask_rows, _, _ = gather(book.state.S, k, ASK)
    return bid_px, bid_sz, bid_rows, ask_px, ask_sz, ask_rows


def _uncross(book: _Book, k: int, ts: int, reference: int, opening: bool,
             totals: np.ndarray, last: np.ndarray, st: np.ndarray,
             outs: tuple[np.ndarray, ...], stats: np.ndarray) -> None:
    """The call auction's uncross (docs/reference/krx.md: single-price auction): market
    orders (at the book's edge) priced as such, no daily limits known (the file has no base
    price), then the market orders left deleted."""
    bid_px, bid_sz, bid_rows, ask_px, ask_sz, ask_rows = _resting(book, k)
    bid_mkt = bid_px == book.edge_hi[k]
    ask_mkt = ask_px == book.edge_lo[k]
    if len(bid_px) and len(ask_px):
        price, volume, bid_fills, ask_fills = uncross_arrays(
            np.where(bid_mkt, MARKET_PRICE, bid_px), bid_sz,
            np.where(ask_mkt, MARKET_PRICE, ask_px), ask_sz, reference, opening=opening)
        if price is not None and price > 0:  # market orders alone, no reference: no price
            rows_ = np.concatenate([bid_rows, ask_rows])
            fills = np.concatenate([bid_fills, ask_fills]).astype(np.int64)
            mkt = np.concatenate([bid_mkt, ask_mkt]).astype(np.int64)
            st[_S_POS] = _emit_uncross(book.state.S, k, st, outs, ts, price, volume, rows_,
                                       fills, mkt, totals)
            last[k] = price
    bid_px, bid_sz, bid_rows, ask_px, ask_sz, ask_rows = _resting(book, k)
    left = np.concatenate([bid_rows[bid_px == book.edge_hi[k]],
                           ask_rows[ask_px == book.edge_lo[k]]])
    if len(left):
        sizes = np.concatenate([bid_sz[bid_px == book.edge_hi[k]],
                                ask_sz[ask_px == book.edge_lo[k]]])
        stats[_T_AUCTION_MKT_ROWS] += len(left)
        stats[_T_AUCTION_MKT_SHARES] += int(sizes.sum())
        st[_S_POS] = _emit_deletes(book.state.S, k, st, outs, ts, left)


def _day_end(book: _Book, k: int, ts: int, totals: np.ndarray, st: np.ndarray,
             outs: tuple[np.ndarray, ...]) -> None:
    """Every order still resting at the stock's day end is deleted: KRX orders are day
    orders."""
    _, _, bid_rows, _, _, ask_rows = _resting(book, k)
    left = np.concatenate([bid_rows, ask_rows])
    if len(left):
        st[_S_POS] = _emit_deletes(book.state.S, k, st, outs, ts, left)
    totals[k, :] = 0


@njit(cache=True)
def _emit(outs, st, ts, inst, action, side, price, size, oid, flags):
    pos = st[_S_POS]
    outs[0][pos] = ts
    outs[1][pos] = inst + 1
    outs[2][pos] = action
    outs[3][pos] = side
    outs[4][pos] = price
    outs[5][pos] = size
    outs[6][pos] = oid
    outs[7][pos] = flags
    outs[8][pos] = st[_S_SEQ]
    st[_S_SEQ] += 1
    st[_S_POS] = pos + 1


@njit(cache=True)
def _is_market(side, price, inst, edge_lo, edge_hi):
    return price == (edge_hi[inst] if side == BID else edge_lo[inst])


@njit(cache=True)
def _emit_uncross(S, inst, st, outs, ts, price, volume, rows, fills, mkt, totals):
    """The uncross packet, every row F_AUCTION: the T print (side N), then per filled order
    an F at the uncross price and a C at the order's own price, the order reduced."""
    _emit(outs, st, ts, inst, TRADE, NONE, price, volume, 0, F_AUCTION)
    for j in range(rows.shape[0]):
        q = fills[j]
        if q == 0:
            continue
        row = rows[j]
        oid, side, own, _ = order_fields(S, row)
        _emit(outs, st, ts, inst, FILL, side, price, q, oid, F_AUCTION)
        _emit(outs, st, ts, inst, CANCEL, side, own, q, oid, F_AUCTION)
        _take(S, st, row, q)
        if mkt[j] == 0:
            totals[inst, 0 if side == BID else 1] -= q
    outs[7][st[_S_POS] - 1] = F_AUCTION | F_LAST
    return st[_S_POS]


@njit(cache=True)
def _emit_deletes(S, inst, st, outs, ts, rows):
    """A packet deleting the orders at ``rows``."""
    for j in range(rows.shape[0]):
        oid, side, price, size = order_fields(S, rows[j])
        _emit(outs, st, ts, inst, DELETE, side, price, size, oid, 0)
        _take(S, st, rows[j], size)
    outs[7][st[_S_POS] - 1] = F_LAST
    return st[_S_POS]


@njit(cache=True)
def _take(S, st, row, q):
    """Take ``q`` shares from a resting order; at zero it leaves the book and the id table."""
    reduce_order(S, row, q)
    if order_fields(S, row)[3] == 0:
        release(S, row)
        st[_S_LIVE] -= 1


@njit(cache=True)
def _add(S, st, outs, ts, inst, side, price, size, oid, totals, edge_lo, edge_hi):
    row = alloc_order(S)
    enqueue(S, row, oid, inst, side, price, size, size, -1, ts,
            level_index(S, inst, side, price))
    st[_S_LIVE] += 1
    if not _is_market(side, price, inst, edge_lo, edge_hi):
        totals[inst, 0 if side == BID else 1] += size
    _emit(outs, st, ts, inst, ADD, side, price, size, oid, 0)


@njit(cache=True)
def _walk(S, OUT, st, outs, ts, inst, side, size, limit, totals, last):
    """An order taking liquidity up to ``limit`` (-1: a market order) by
    venues.matching.match in price-time priority: a T print, then F + C per resting order
    hit. Returns the unfilled size."""
    filled, _ = match(S, OUT, inst, side, limit, size, ts, -1, SRC_HISTORY, False, -1)
    if filled == 0:
        clear_fills(OUT)
        return size
    opp = ASK if side == BID else BID
    t_row = st[_S_POS]
    _emit(outs, st, ts, inst, TRADE, side, 0, filled, 0, 0)
    price = 0
    for j in range(fill_count(OUT)):
        price, q, oid = fill_at(OUT, j)
        _emit(outs, st, ts, inst, FILL, opp, price, q, oid, 0)
        _emit(outs, st, ts, inst, CANCEL, opp, price, q, oid, 0)
        row = find_order(S, oid, inst)
        if order_fields(S, row)[3] == 0:
            release(S, row)
            st[_S_LIVE] -= 1
    clear_fills(OUT)
    outs[4][t_row] = price
    totals[inst, 0 if opp == BID else 1] -= filled
    last[inst] = price
    return size - filled


@njit(cache=True)
def _place(S, OUT, st, outs, ts, inst, side, price, size, oid, call, totals, last, edge_lo,
           edge_hi, stats):
    """A new order (or a modify's re-placed part): in a call auction it rests (a market
    order at the book's edge); in continuous trading it matches what it crosses and rests
    the rest, a market order's rest dropped and counted."""
    if call:
        if price == 0:
            price = edge_hi[inst] if side == BID else edge_lo[inst]
        _add(S, st, outs, ts, inst, side, price, size, oid, totals, edge_lo, edge_hi)
        return
    opp_best = best_price(S, inst, ASK if side == BID else BID)
    if price == 0:
        rest = _walk(S, OUT, st, outs, ts, inst, side, size, -1, totals, last) \
            if opp_best > 0 else size
        if rest > 0:
            stats[_T_MKT_ROWS] += 1
            stats[_T_MKT_SHARES] += rest
        return
    crosses = opp_best > 0 and (opp_best <= price if side == BID else opp_best >= price)
    rest = size
    if crosses:
        rest = _walk(S, OUT, st, outs, ts, inst, side, size, price, totals, last)
    if rest > 0:
        _add(S, st, outs, ts, inst, side, price, rest, oid, totals, edge_lo, edge_hi)


@njit(cache=True)
def _snapshot(S, inst, edge_lo, edge_hi, totals, levels, out):
    """The file's 22 book columns as this book has them: ask 1-5 (price, size), bid 1-5,
    the ask and bid totals; an empty level is (0, 0); orders waiting at the book's edge
    (market orders in a call auction) are not shown. ``levels`` is scratch for
    :func:`venues.book.snapshot_levels` of 6 levels (the edge may take the first)."""
    snapshot_levels(S, inst, 6, levels, 0)
    skip_bid = 1 if levels[0] == edge_hi[inst] else 0
    skip_ask = 1 if levels[2] == edge_lo[inst] else 0
    for d in range(5):
        bid_px, bid_sz = levels[4 * (d + skip_bid)], levels[4 * (d + skip_bid) + 1]
        ask_px, ask_sz = levels[4 * (d + skip_ask) + 2], levels[4 * (d + skip_ask) + 3]
        out[2 * d] = ask_px if ask_px > 0 else 0
        out[2 * d + 1] = ask_sz
        out[10 + 2 * d] = bid_px if bid_px > 0 else 0
        out[10 + 2 * d + 1] = bid_sz
    out[20] = totals[inst, 1]
    out[21] = totals[inst, 0]


@njit(cache=True)
def _compare(ours, shown, reading, i, mism, first_bad):
    kinds = np.zeros(6, np.int64)
    for d in range(5):
        if ours[2 * d] != shown[2 * d]:
            kinds[0] = 1
        if ours[2 * d + 1] != shown[2 * d + 1]:
            kinds[1] = 1
        if ours[10 + 2 * d] != shown[10 + 2 * d]:
            kinds[2] = 1
        if ours[10 + 2 * d + 1] != shown[10 + 2 * d + 1]:
            kinds[3] = 1
    kinds[4] = ours[20] != shown[20]
    kinds[5] = ours[21] != shown[21]
    for q in range(6):
        if kinds[q]:
            mism[reading, q] += 1
            if first_bad[reading, q] < 0:
                first_bad[reading, q] = i


@njit(cache=True)
def _run(S, OUT, ts, kind, inst, side, price, qty, oid, parent, call, shown, check,
         edge_lo, edge_hi, totals, last, st, outs, mism, first_bad, stats):
    """Apply the rows from ``st[_S_I]`` until done, the output or the order pool runs
    short, or a pseudo row needs Python (an uncross, a day end)."""
    cap = outs[0].shape[0]
    before = np.zeros(_N_BOOK, np.int64)
    after = np.zeros(_N_BOOK, np.int64)
    levels = np.zeros(24, np.int64)
    m = ts.shape[0]
    while st[_S_I] < m:
        i = st[_S_I]
        k = kind[i]
        if k == _OPEN_UNCROSS or k == _CLOSE_UNCROSS:
            return _AUCTION
        if k == _DAY_END:
            return _END
        if cap - st[_S_POS] < 2 * st[_S_LIVE] + 8:  # room for every live order filled once
            return _ROWS_FULL
        if not can_alloc(S):
            return _POOL_FULL
        k_inst = inst[i]
        if check:
            _snapshot(S, k_inst, edge_lo, edge_hi, totals, levels, before)
        first = st[_S_POS]
        if k == NEW:
            _place(S, OUT, st, outs, ts[i], k_inst, side[i], price[i], qty[i], oid[i],
                   call[i], totals, last, edge_lo, edge_hi, stats)
        else:
            row = find_order(S, parent[i], k_inst)
            if row < 0:
                stats[_T_PARENT_GONE] += 1
            else:
                pid, pside, pprice, left = order_fields(S, row)
                q = qty[i] if 0 < qty[i] < left else left
                if q == left:
                    _emit(outs, st, ts[i], k_inst, DELETE, pside, pprice, q, pid, 0)
                else:
                    _emit(outs, st, ts[i], k_inst, CANCEL, pside, pprice, q, pid, 0)
                if not _is_market(pside, pprice, k_inst, edge_lo, edge_hi):
                    totals[k_inst, 0 if pside == BID else 1] -= q
                _take(S, st, row, q)
                if k == MODIFY_ROW:
                    _place(S, OUT, st, outs, ts[i], k_inst, pside, price[i], q, oid[i],
                           call[i], totals, last, edge_lo, edge_hi, stats)
        if st[_S_POS] > first:
            outs[7][st[_S_POS] - 1] |= F_LAST
        if check:
            _snapshot(S, k_inst, edge_lo, edge_hi, totals, levels, after)
            stats[_T_CHECKED] += 1
            _compare(before, shown[i], 0, i, mism, first_bad)
            _compare(after, shown[i], 1, i, mism, first_bad)
        st[_S_I] = i + 1
    return _DONE
