"""Koscom historical trade files (유가증권/코스닥 체결): a trades-only tape that keeps both orders.

Layout: docs/reference/krx-data-formats.md: 2. Files ``SKSNXTRDIJH_YYYY_MM.dat(.txt)(.gz)``
(KOSPI) and ``SQSNXTRDIJH_...`` (KOSDAQ): ``|``-delimited, no header, 45 columns (older) or
51 (2023, which adds the program-order codes, board and session ids and the real-time
limits), EUC-KR (read as CP949, its superset), optionally gzip-compressed. One row per trade:

- ``ts``: TRD_DD (YYYYMMDD) and TRD_TM (HHMMSSmmm, its leading zero dropped before 10:00:
  padded to 9 digits), Seoul time, to UTC nanoseconds; 일자 (column 0) is not read.
- ``price``/``size``: TRD_PRC and TRDVOL, integer won and shares.
- ``side``, the aggressor, from LST_ASKBID_TP_CD: 1 sell-initiated (``A``), 2
  buy-initiated (``B``), blank on an auction's cross: side ``N`` with ``F_AUCTION`` (history's
  own uncross, which a venue that computes its own skips).
- the symbol from the ISIN (``KR7005930003`` -> ``005930``; another ISIN is its own
  symbol), the market from the file name (``SKS`` KOSPI, ``SQS`` KOSDAQ; else none).
- BIDORD_ACPT_NO and ASKORD_ACPT_NO, the two orders' numbers (호가접수번호, restarting per
  stock and day as in the order file), in the tape's optional ``bid_order_no`` and
  ``ask_order_no`` columns (replay/tape.py: EXTRA_FIELDS; 0 where blank), for joining the
  trades with an order file on (date, symbol, number).

Rows are parsed by Arrow's CSV reader in blocks and converted column by column; ``symbol``
keeps one code's (or ISIN's) trades, so a month's file of every name can be read for one
name in bounded memory. A file may interleave codes: each code's rows must be in time
order, and the codes are merged by time (file order breaking ties).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from replay.loaders import Loaded
from replay.loaders.seoul import KST_OFFSET_MS, days_of, ms_of_day, seoul_ns
from replay.quality import RepairLog, TapeError, check_prices
from replay.tape import (
    ASK,
    BID,
    F_AUCTION,
    F_LAST,
    NONE,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
)

#: The columns (docs/reference/krx-data-formats.md: 2), 45 in older files.
COLUMNS_45 = (
    "일자", "BLKTRD_TP_CD", "REGUL_OFFHR_TP_CD", "종목코드", "종목인덱스", "TRD_NO", "TRD_PRC",
    "TRDVOL", "TRD_TP_CD", "TRD_DD", "TRD_TM", "NBMM_TRD_PRC", "FUTRMM_TRD_PRC",
    *(f"{side}{name}" for side in ("BID", "ASK") for name in (
        "_MBR_NO", "ORD_TP_CD", "_TRSTK_STAT_ID", "_TRSTK_TRD_METHD_CD", "_ASK_TP_CD",
        "_TRST_PRINC_TP_CD", "_TRSTCOM_NO", "_PT_TP_CD", "_INVST_TP_CD", "_FORNINVST_TP_CD",
        "ORD_ACPT_NO")),
    "시가", "고가", "저가", "직전가격", "ACC_TRDVOL", "ACC_AMT", "LST_ASKBID_TP_CD",
    "LP_HD_QTY", "데이터구분", "MSG_SEQ")
#: ... and the six the 2023 files add.
COLUMNS_51 = (*COLUMNS_45, "매수프로그램호가신고구분코드", "매도프로그램호가신고구분코드", "보드ID",
              "세션ID", "실시간상한가", "실시간하한가")
LAYOUTS = {len(COLUMNS_45): COLUMNS_45, len(COLUMNS_51): COLUMNS_51}
ISIN, PRICE, VOLUME, DATE, TIME = "종목코드", "TRD_PRC", "TRDVOL", "TRD_DD", "TRD_TM"
BID_ORDER, ASK_ORDER, LAST_SIDE = "BIDORD_ACPT_NO", "ASKORD_ACPT_NO", "LST_ASKBID_TP_CD"
READ = (ISIN, PRICE, VOLUME, DATE, TIME, BID_ORDER, ASK_ORDER, LAST_SIDE)
REQUIRED = (ISIN, PRICE, VOLUME, DATE, TIME)
#: LST_ASKBID_TP_CD: the side whose order arrived last, i.e. the aggressor
AGGRESSOR = {"1": ASK, "2": BID}
MARKETS = {"SKS": "KOSPI", "SQS": "KOSDAQ"}
BLOCK_BYTES = 16 << 20

_ISIN = r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$"
_PRICE = r"^[0-9]{1,15}(\.0*)?$"  # whole won; a zero fraction is accepted


assert len(COLUMNS_45) == 45 and COLUMNS_45[23] == BID_ORDER and COLUMNS_45[34] == ASK_ORDER
assert COLUMNS_45[41] == LAST_SIDE and len(COLUMNS_51) == 51


def isin_check_digit_ok(isin: str) -> bool:
    """ISO 6166: letters become 10-35, and the digits pass the Luhn check."""
    digits = "".join(str(int(ch, 36)) for ch in isin)
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if k % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def market_of(path: Path) -> str:
    """KOSPI for an ``SKS...`` file, KOSDAQ for ``SQS...``, else '' (not known)."""
    return MARKETS.get(path.name[:3].upper(), "")


def symbol_of_isin(isin: pa.Array) -> pa.Array:
    """The 6-character short code of a Korean ISIN (``KR7005930003`` -> ``005930``); any
    other ISIN is its own symbol."""
    return pc.if_else(pc.starts_with(isin, "KR7"), pc.utf8_slice_codeunits(isin, 3, 9), isin)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic != b"\x1f\x8b" and path.suffix == ".gz":
        raise TapeError(path, None, None, "not a gzip file (no gzip signature)")
    return magic == b"\x1f\x8b"


def _width(path: Path) -> int:
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as fh:
        try:
            first = fh.readline()
        except (OSError, EOFError) as exc:
            raise TapeError(path, None, None, f"unreadable gzip data: {exc}") from None
    if not first.strip():
        raise TapeError(path, None, None, f"no events in {path}: the file is empty or "
                        "starts with a blank line")
    width = first.rstrip(b"\r\n").count(b"|") + 1
    if width not in LAYOUTS:
        raise TapeError(path, 1, None, f"{width} columns; a Koscom trade file has 45 or 51")
    return width


class _Retry(Exception):
    """The quick read cannot go on (a row of another width, or bytes that are not UTF-8 in
    a column read): the file is read again, carefully."""


class _Reader:
    """A file's rows in Arrow batches (the read columns as trimmed text), each with the
    file's line numbers.

    The quick read parses the bytes as they are; if it cannot go on it raises
    :class:`_Retry` and the careful read starts over: every byte passed through as Latin-1
    (so that any byte is text) and shown as CP949 in errors, and a row of another column
    count is an error, or with ``repair``, if it is short (a cut-off line), dropped and
    counted as ``truncated_row``."""

    def __init__(self, path: Path, repair: bool, log: RepairLog, careful: bool) -> None:
        self.path, self.repair, self.log, self.careful = path, repair, log, careful
        self.gzip = _is_gzip(path)
        self.width = _width(path)
        self.names = LAYOUTS[self.width]
        self.skipped: list[int] = []  # line numbers of the rows the reader left out
        self.bad: tuple[int, int] | None = None
        self.rows = 0  # rows given so far

    def _invalid(self, row) -> str:
        if self.repair and row.actual_columns < row.expected_columns:
            self.skipped.append(row.number)
            self.log.add("truncated_row", [row.number])
            return "skip"
        if self.bad is None:
            self.bad = (row.number, row.actual_columns)
        return "error"

    def _error(self) -> TapeError:
        if self.bad is None:
            return TapeError(self.path, None, None, "not a '|'-delimited Koscom trade file")
        line, got = self.bad
        name = self.names[got] if got < self.width else None
        return TapeError(self.path, line, name, f"{got} columns; the file's first row has "
                         f"{self.width} (a Koscom trade file has 45 or 51)"
                         + (" (use --repair to drop cut-off rows)" if got < self.width else ""))

    def lines(self, n: int) -> np.ndarray:
        """Line numbers of the next ``n`` rows: the k-th row given is the k-th line not left
        out (every line left out so far lies before the rows still to come or among the
        lines the reader has parsed ahead, all beyond these)."""
        k = np.arange(self.rows + 1, self.rows + n + 1, dtype=np.int64)
        out = np.sort(np.array(self.skipped, np.int64))
        shifted = out - np.arange(len(out))  # rows given before each line left out, + 1
        self.rows += n
        return k + np.searchsorted(shifted, k, side="right")

    def batches(self) -> Iterator[tuple[dict[str, pa.Array], np.ndarray]]:
        read = pacsv.ReadOptions(column_names=list(self.names), use_threads=False,
                                 block_size=BLOCK_BYTES,
                                 **({"encoding": "latin-1"} if self.careful else {}))
        parse = pacsv.ParseOptions(delimiter="|", quote_char=False, ignore_empty_lines=False,
                                   **({"invalid_row_handler": self._invalid} if self.careful
                                      else {}))
        convert = pacsv.ConvertOptions(include_columns=list(READ),
                                       column_types={n: pa.string() for n in READ},
                                       strings_can_be_null=False)
        try:
            source = pa.input_stream(self.path, compression="gzip" if self.gzip else None)
            with source:
                reader = pacsv.open_csv(source, read_options=read, parse_options=parse,
                                        convert_options=convert)
                for batch in reader:
                    lines = self.lines(batch.num_rows)
                    yield {n: self._text(batch.column(n), lines, n) for n in READ}, lines
        except pa.ArrowInvalid as exc:
            if not self.careful:
                raise _Retry from None
            if self.bad is None and self.gzip:
                raise TapeError(self.path, None, None, f"unreadable gzip data: {exc}") from None
            raise self._error() from None
        except (OSError, EOFError) as exc:
            raise TapeError(self.path, None, None, f"unreadable gzip data: {exc}") from None

    def _text(self, column: pa.Array, lines: np.ndarray, name: str) -> pa.Array:
        """A read column trimmed; its fields are ASCII (digits, codes, the ISIN): one that
        is not is an error naming its row, shown as CP949 (EUC-KR) reads it."""
        ascii_ = pc.string_is_ascii(column).to_numpy(zero_copy_only=False)
        if not ascii_.all():
            r = int(np.flatnonzero(~ascii_)[0])
            value = column[r].as_py()
            if self.careful:
                value = value.encode("latin-1").decode("cp949", errors="replace")
            raise TapeError(self.path, int(lines[r]), name, f"{value!r} is not ASCII text "
                            "(read as CP949/EUC-KR)")
        return pc.ascii_trim_whitespace(column)


class _Columns:
    """One batch's read columns with their line numbers, checked and converted."""

    def __init__(self, path: Path, columns: dict[str, pa.Array], lines: np.ndarray) -> None:
        self.path, self.columns, self.lines = path, columns, lines

    def take(self, keep: np.ndarray) -> _Columns:
        where = pa.array(np.flatnonzero(keep))
        return _Columns(self.path, {n: c.take(where) for n, c in self.columns.items()},
                        self.lines[keep])

    def empty(self, name: str) -> np.ndarray:
        return pc.equal(self.columns[name], "").to_numpy(zero_copy_only=False)

    def _reject(self, name: str, ok: pa.Array, why: str) -> None:
        ok = ok.to_numpy(zero_copy_only=False)
        if not ok.all():
            r = int(np.flatnonzero(~ok)[0])
            raise TapeError(self.path, int(self.lines[r]), name,
                            f"{self.columns[name][r].as_py()!r} {why}")

    def match(self, name: str, pattern: str, why: str) -> None:
        """Every value matches ``pattern`` (tried once per distinct value)."""
        col = self.columns[name]
        distinct = pc.unique(col)
        wrong = distinct.filter(pc.invert(pc.match_substring_regex(distinct, pattern)))
        if len(wrong):
            self._reject(name, pc.invert(pc.is_in(col, value_set=wrong)), why)

    def check_distinct(self, name: str, test, why: str) -> None:
        """Every value passes ``test`` (called once per distinct value)."""
        col = self.columns[name]
        wrong = [v for v in pc.unique(col).to_pylist() if not test(v)]
        if wrong:
            self._reject(name, pc.invert(pc.is_in(col, value_set=pa.array(wrong))), why)

    def digits(self, name: str, shortest: int, longest: int, why: str) -> None:
        """Every value is ASCII digits, ``shortest`` to ``longest`` of them (0: may be blank)."""
        col = self.columns[name]
        n = pc.binary_length(col)
        ok = pc.or_(pc.ascii_is_decimal(col), pc.equal(n, 0))
        self._reject(name, pc.and_(ok, pc.and_(pc.greater_equal(n, shortest),
                                                pc.less_equal(n, longest))), why)

    def ints(self, name: str, unsigned64: bool = False) -> np.ndarray:
        """The (checked) column as integers; blank is 0, a fraction of zeros (``70000.00``)
        is dropped."""
        col = self.columns[name]
        if pc.any(pc.match_substring(col, ".")).as_py():
            col = pc.replace_substring_regex(col, r"\.0*$", "")
        col = pc.if_else(pc.equal(col, ""), "0", col)
        return pc.cast(col, pa.uint64() if unsigned64 else pa.int64()).to_numpy(
            zero_copy_only=False)


def _convert(c: _Columns, repair: bool, log: RepairLog) -> dict[str, np.ndarray] | None:
    """A batch's trades as arrays (None when none is left)."""
    blank = np.ones(len(c.lines), bool)
    for name in READ:
        blank &= c.empty(name)
    if blank.any():  # a blank line holds nothing: skipped
        c = c.take(~blank)
    missing = np.zeros(len(c.lines), bool)
    for name in REQUIRED:
        hit = c.empty(name)
        if hit.any() and not repair:
            r = int(np.flatnonzero(hit)[0])
            raise TapeError(c.path, int(c.lines[r]), name,
                            "missing value (use --repair to drop such rows)")
        missing |= hit
    if missing.any():
        log.add("missing_value", c.lines[missing])
        c = c.take(~missing)
    if len(c.lines) == 0:
        return None
    c.match(ISIN, _ISIN, "is not an ISIN (12 characters: country, 9 letters or digits, a "
            "check digit)")
    c.check_distinct(ISIN, isin_check_digit_ok, "fails the ISIN check digit (ISO 6166)")
    c.digits(VOLUME, 1, 15, "is not an unsigned integer below 2**53")
    volume = c.ints(VOLUME)
    zero = volume == 0
    if zero.any():
        if not repair:
            r = int(np.flatnonzero(zero)[0])
            raise TapeError(c.path, int(c.lines[r]), VOLUME, "a trade's size must be positive "
                            "(use --repair to drop such rows)")
        log.add("non_positive_size", c.lines[zero])
        c, volume = c.take(~zero), volume[~zero]
        if len(c.lines) == 0:
            return None
    c.match(PRICE, _PRICE, "is not a price in whole won (unsigned digits)")
    price = c.ints(PRICE)
    if (price == 0).any():
        r = int(np.flatnonzero(price == 0)[0])
        raise TapeError(c.path, int(c.lines[r]), PRICE, "a trade's price must be positive")
    c.match(DATE, r"^[0-9]{8}$", "is not YYYYMMDD")
    day = c.ints(DATE)
    days, ok = days_of(day)
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise TapeError(c.path, int(c.lines[r]), DATE, f"{int(day[r])} is not a date")
    # HHMMSSmmm with the leading zero dropped before 10:00: as an integer, no padding needed
    c.digits(TIME, 1, 9, "is not HHMMSSmmm (at most 9 digits)")
    stamp = c.ints(TIME)
    ms, ok = ms_of_day(stamp // 1000, stamp % 1000)
    if not ok.all():
        r = int(np.flatnonzero(~ok)[0])
        raise TapeError(c.path, int(c.lines[r]), TIME, f"{str(int(stamp[r])).zfill(9)!r} is "
                        "not a time of day (HHMMSSmmm)")
    ts = seoul_ns(days, ms, c.path, c.lines, TIME)
    side_code = c.columns[LAST_SIDE]
    c.match(LAST_SIDE, r"^[12]?$", "is not a side code (1 sell-initiated, 2 buy-initiated, "
            "blank on an auction's cross)")
    side = np.full(len(ts), NONE, np.uint8)
    side[pc.equal(side_code, "1").to_numpy(zero_copy_only=False)] = AGGRESSOR["1"]
    side[pc.equal(side_code, "2").to_numpy(zero_copy_only=False)] = AGGRESSOR["2"]
    flags = np.where(side == NONE, F_LAST | F_AUCTION, F_LAST).astype(np.uint8)
    for name in (BID_ORDER, ASK_ORDER):  # below 2**64; blank = none
        c.digits(name, 0, 19, "is not an order number (digits)")
    bid_no, ask_no = c.ints(BID_ORDER, True), c.ints(ASK_ORDER, True)
    return {"symbol": symbol_of_isin(c.columns[ISIN]), "ts": ts,
            "price": price, "size": volume, "side": side, "flags": flags,
            "bid_order_no": bid_no, "ask_order_no": ask_no, "line": c.lines}


def _time_order(path: Path, inst: np.ndarray, ts: np.ndarray, lines: np.ndarray,
                repair: bool, log: RepairLog) -> np.ndarray:
    """The file's rows in time order. Each code's own rows must be in time order (else an
    error naming the first row whose time goes back, or with ``repair`` sorted and counted
    as ``unsorted_ts``); the codes are then merged by time, file order breaking ties."""
    by_code = np.lexsort((np.arange(len(ts)), inst))
    t, i = ts[by_code], inst[by_code]
    back = np.flatnonzero((t[1:] < t[:-1]) & (i[1:] == i[:-1])) + 1
    if len(back):
        rows = lines[by_code[back]]
        if not repair:
            r = int(np.argmin(rows))
            raise TapeError(path, int(rows[r]), TIME, "time goes backwards for this code (rows "
                            "of one code must be in time order; use --repair to sort them)")
        log.add("unsorted_ts", np.sort(rows))
    return np.argsort(ts, kind="stable")


def load(paths: list[Path], *, repair: bool = False, symbol: str | None = None,
         **_: object) -> Loaded:
    """Load Koscom trade files (module docstring) as one trades-only tape, keeping only
    ``symbol``'s trades (a 6-character code or an ISIN) when given."""
    log = RepairLog()
    codes: dict[str, int] = {}
    instruments: dict[int, Instrument] = {}
    parts: list[dict[str, np.ndarray]] = []
    offset = 0
    for path in map(Path, paths):
        try:
            chunks, file_log, file_codes, rows = _read(path, repair, symbol, codes, offset,
                                                       careful=False)
        except _Retry:
            chunks, file_log, file_codes, rows = _read(path, repair, symbol, codes, offset,
                                                       careful=True)
        codes = file_codes
        for policy, count in file_log.counts.items():
            log.counts[policy] += count
            log.examples.setdefault(policy, []).extend(
                file_log.examples[policy][:max(0, 5 - len(log.examples.get(policy, [])))])
        offset += rows
        if not chunks:
            continue
        part = {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}
        order = _time_order(path, part["instrument"], part["ts"], part["line"], repair, log)
        part = {k: v[order] for k, v in part.items()}
        _add_instruments(instruments, codes, part, market_of(path))
        ticks = np.array([instruments[k].tick_units for k in range(len(codes))], np.int64)
        check_prices(part["price"], np.ones(len(order), bool), part["instrument"], ticks, path,
                     part["line"], PRICE)
        parts.append(part)
    if not parts:
        which = f" of {symbol}" if symbol is not None else ""
        raise TapeError(paths[0], None, None, f"no events in {', '.join(map(str, paths))}: no "
                        f"trade{which} in the file")
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if len(parts) > 1:
        order = np.argsort(rows["ts"], kind="stable")
        rows = {k: v[order] for k, v in rows.items()}
    n = len(rows["ts"])
    events = Events.from_columns({
        "ts": rows["ts"], "instrument": rows["instrument"], "action": np.full(n, TRADE),
        "side": rows["side"], "price": rows["price"], "size": rows["size"],
        "flags": rows["flags"], "sequence": rows["sequence"]})
    table = InstrumentTable([instruments[k] for k in range(len(codes))])
    return Loaded(events, table, log, extra={"bid_order_no": rows["bid_order_no"],
                                             "ask_order_no": rows["ask_order_no"]})


def _read(path: Path, repair: bool, symbol: str | None, codes: dict[str, int], offset: int,
          careful: bool) -> tuple[list[dict[str, np.ndarray]], RepairLog, dict[str, int], int]:
    """One file's trades in chunks of arrays, its repairs, the codes with the file's new
    ones, and its number of rows."""
    log, codes = RepairLog(), dict(codes)
    reader = _Reader(path, repair, log, careful)
    chunks = []
    for columns, lines in reader.batches():
        c = _Columns(path, columns, lines)
        if symbol is not None:
            keep = pc.or_(pc.equal(symbol_of_isin(columns[ISIN]), symbol),
                          pc.equal(columns[ISIN], symbol))
            c = c.take(keep.to_numpy(zero_copy_only=False))
        got = _convert(c, repair, log)
        if got is None:
            continue
        # instruments by code, numbered in order of first appearance (one per code)
        encoded = pc.dictionary_encode(got.pop("symbol"))
        ids = np.array([codes.setdefault(s, len(codes)) for s in
                        encoded.dictionary.to_pylist()], np.int64)
        got["instrument"] = ids[encoded.indices.to_numpy(zero_copy_only=False)]
        got["sequence"] = got["line"] - 1 + offset
        chunks.append(got)
    return chunks, log, codes, reader.rows + len(reader.skipped)


def _add_instruments(instruments: dict[int, Instrument], codes: dict[str, int],
                     part: dict[str, np.ndarray], market: str) -> None:
    """The instruments a file brings first: venue XKRX, the file's market, the KRX tick at
    the first print's price on its date (docs/reference/krx.md: tick size). Book type L2:
    prints carry no order of a book (the order numbers are in the optional columns) and the
    tape holds no level update, so its book is empty: a trades-only tape."""
    from datetime import UTC, datetime

    from venues.krx.ticks import tick_size

    symbol = {k: code for code, k in codes.items()}
    for k in np.unique(part["instrument"]):
        k = int(k)
        if k in instruments:
            continue
        r = int(np.flatnonzero(part["instrument"] == k)[0])
        day = datetime.fromtimestamp((int(part["ts"][r]) // 10**6 + KST_OFFSET_MS) // 1000,
                                     UTC).date()
        tick = int(tick_size(int(part["price"][r]), day, market=market or "KOSPI"))
        instruments[k] = Instrument(instrument_id=k, symbol=symbol[k], venue="XKRX",
                                    book_type="L2", tick_units=tick, market=market)
