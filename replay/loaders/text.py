"""Delimited text from vendors: tables that remember their line numbers, exact decimals.

The CSV-based loaders (generic CSV, Tardis, Binance, LOBSTER) and the JSON-lines one (Bybit)
read through these helpers, so every error names the file's own line and the column, and
every price and size becomes an exact integer (replay/quality.py). The population and
daily-bar readers share :func:`not_utf8_error`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from replay.quality import RepairLog, TapeError, decimals_needed, to_units
from replay.tape import Events

MISSING = frozenset({"", "nan", "null", "none", "na"})
#: Text encodings tried in order (docs/data-formats.md: encodings): UTF-8 (a BOM is
#: dropped), then CP949, the superset of EUC-KR that Korean tools write.
ENCODINGS = ("utf-8", "cp949")
_INT_TEXT = r"^\s*[+-]?[0-9]+\s*$"  # ASCII digits only: int() also takes 70_900 and ７０９００


def decode_text(data: bytes, path: Path | str) -> str:
    """The text of a file: UTF-8 (BOM dropped) or else CP949/EUC-KR; an undecodable file is
    an error naming the byte offset and line of the first bad byte."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first = exc
    try:
        return data.decode("cp949")
    except UnicodeDecodeError:
        pass
    line = data.count(b"\n", 0, first.start) + 1
    raise TapeError(path, line, None, f"not text in UTF-8 or CP949/EUC-KR: undecodable byte "
                    f"{data[first.start:first.start + 1]!r} at byte offset {first.start}")


def not_utf8_error(path: Path, header: Sequence[str]) -> TapeError:
    """Error path only, for a file that must be UTF-8: the first line (and the field of
    ``header`` it falls in) that is not, shown as CP949 (the encoding Korean files usually
    are in) when it reads as that."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
                continue
            except UnicodeDecodeError:
                pass
            fields = raw.rstrip(b"\r\n").split(b",")
            bad = next((i for i, f in enumerate(fields) if not _is_utf8(f)), None)
            name = header[bad] if bad is not None and bad < len(header) else None
            try:
                shown = f"; as CP949 it reads {fields[bad].decode('cp949')!r}" \
                    if bad is not None else ""
            except UnicodeDecodeError:
                shown = ""
            return TapeError(path, number, name, f"not UTF-8 text{shown}: save the file as "
                             "UTF-8")
    return TapeError(path, None, None, "not UTF-8 text: save the file as UTF-8")


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def normalized(column: np.ndarray) -> pa.Array:
    """A string column trimmed and lower-cased, for case-insensitive matching."""
    return pc.utf8_lower(pc.utf8_trim_whitespace(pa.array(column, pa.string())))


@dataclass
class Table:
    """The columns of a delimited text file as strings, with each row's line number, so that
    every later error can name the file, the line and the column."""

    path: Path
    columns: dict[str, np.ndarray]
    lines: np.ndarray
    order: np.ndarray  # 0-based position among the file's data rows

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def take(self, index: np.ndarray) -> Table:
        return Table(self.path, {k: v[index] for k, v in self.columns.items()},
                     self.lines[index], self.order[index])

    def missing(self, name: str) -> np.ndarray:
        """Mask of rows whose ``name`` is empty or NaN-like."""
        hit = pc.is_in(normalized(self.columns[name]), value_set=pa.array(sorted(MISSING)))
        return hit.to_numpy(zero_copy_only=False)

    def drop_missing(self, names: Sequence[str], repair: bool, log: RepairLog,
                     where: np.ndarray | None = None) -> Table:
        """Reject (or, repairing, drop and count as ``missing_value``) rows where one of
        ``names`` is empty or NaN; ``where`` limits the check to some rows."""
        bad = np.zeros(len(self), bool)
        for name in names:
            hit = self.missing(name)
            if where is not None:
                hit &= where
            if hit.any() and not repair:
                r = int(np.flatnonzero(hit)[0])
                raise TapeError(self.path, int(self.lines[r]), name,
                                f"missing value {self.columns[name][r]!r} "
                                "(use --repair to drop such rows)")
            bad |= hit
        if not bad.any():
            return self
        log.add("missing_value", self.lines[bad])
        return self.take(~bad)

    def ints(self, name: str) -> np.ndarray:
        """An integer column (ASCII digits), rejecting the first value that is not a 64-bit
        integer."""
        values = self.columns[name]
        plain = pc.match_substring_regex(pa.array(values, pa.string()), _INT_TEXT)
        plain = plain.to_numpy(zero_copy_only=False)
        if plain.all():
            try:
                return values.astype(np.int64)
            except (ValueError, OverflowError):
                pass
        for r, v in enumerate(values):
            fits = bool(plain[r]) and -(2**63) <= int(v) < 2**63
            if not fits:
                raise TapeError(self.path, int(self.lines[r]), name,
                                f"{v!r} is not a 64-bit integer")
        raise AssertionError("unreachable: every value converted")

    def drop_duplicates(self, repair: bool, log: RepairLog) -> Table:
        """Reject (or, repairing, drop and count as ``duplicate_row``) a row that repeats
        the previous row field for field (docs/data-quality.md)."""
        if len(self) < 2:
            return self
        same = np.ones(len(self) - 1, bool)
        for col in self.columns.values():
            same &= col[1:] == col[:-1]
        if not same.any():
            return self
        dup = np.r_[False, same]
        if not repair:
            r = int(np.flatnonzero(dup)[0])
            raise TapeError(self.path, int(self.lines[r]), None,
                            f"exact duplicate of the previous row (line "
                            f"{int(self.lines[r - 1])}; use --repair to drop such rows)")
        log.add("duplicate_row", self.lines[dup])
        return self.take(~dup)

    def codes(self, name: str, mapping: Mapping[str, int]) -> np.ndarray:
        """Map a column of letters or words to codes (case-insensitive), rejecting the first
        value outside ``mapping``."""
        keys = [k.lower() for k in mapping]
        col = self.columns[name]
        index = pc.index_in(normalized(col), value_set=pa.array(keys))
        unknown = index.is_null().to_numpy(zero_copy_only=False)
        if unknown.any():
            r = int(np.flatnonzero(unknown)[0])
            raise TapeError(self.path, int(self.lines[r]), name,
                            f"unknown value {col[r]!r}; expected one of {', '.join(mapping)}")
        codes = np.array(list(mapping.values()), np.int64)
        return codes[index.to_numpy(zero_copy_only=False).astype(np.int64)]

    def units(self, name: str, decimals: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Exact integer units of a decimal column (or of the rows ``rows``)."""
        if rows is None:
            return to_units(self.columns[name], decimals, self.path, name, self.lines)
        return to_units(self.columns[name][rows], decimals, self.path, name, self.lines[rows])


def read_table(path: Path, required: Sequence[str], optional: Sequence[str] = (),
               names: Sequence[str] | None = None, *, strict_header: bool = False,
               repair: bool = False, log: RepairLog | None = None) -> Table:
    """Read a comma-separated file (UTF-8 or CP949, :func:`decode_text`) into a
    :class:`Table` of string columns.

    With ``names`` the file has no header and its columns are ``names`` in order (row numbers
    are then line numbers with the first data row as line 1); otherwise the header (matched
    case-insensitively) must hold every ``required`` column, and with ``strict_header`` no
    other than ``required`` and ``optional`` (a misspelled column is an error, not ignored).
    Blank lines are skipped. A row with fewer fields than the header (a cut-off last line)
    is an error, or with ``repair`` dropped and counted as ``truncated_row``. A file with no
    data row is an error.
    """
    path = Path(path)
    data = decode_text(path.read_bytes(), path).encode("utf-8")
    first_line = data.split(b"\n", 1)[0].decode("utf-8")
    if names is None:
        if not first_line.strip():
            raise TapeError(path, None, None, "empty first line, expected a header")
        header = next(csv.reader([first_line]))
        index = {h.strip().lower(): i for i, h in enumerate(header)}
        if strict_header:
            known = {n.lower() for n in (*required, *optional)}
            unknown = [h.strip() for h in header if h.strip().lower() not in known]
            if unknown:
                raise TapeError(path, 1, None,
                                f"unknown column(s) {', '.join(map(repr, unknown))}; the "
                                f"columns are {', '.join((*required, *optional))}")
        for name in required:
            if name not in index:
                raise TapeError(path, None, name,
                                f"missing column {name!r}; the header has "
                                f"{', '.join(h.strip() for h in header)}")
        wanted = list(required) + [n for n in optional if n in index]
        positions = [index[n] for n in wanted]
    else:
        wanted, positions = list(names), list(range(len(names)))
    width = len(header) if names is None else len(names)
    columns = _read_fast(data, positions, names is None)
    if columns is not None:
        n = len(columns[0]) if columns else 0
        lines = np.arange(n, dtype=np.int64) + (2 if names is None else 1)
    else:
        columns, lines, short = _read_rows(data, positions, names is None, width)
        if short:
            if not repair or log is None:
                line, got = short[0]
                raise TapeError(path, line, None,
                                f"truncated row: {got} fields, expected {width} "
                                "(use --repair to drop such rows)")
            log.add("truncated_row", [line for line, _ in short])
    if len(lines) == 0:
        raise TapeError(path, None, None, f"no events in {path}: the file has no data rows")
    return Table(path, dict(zip(wanted, columns, strict=True)), lines,
                 np.arange(len(lines), dtype=np.int64))


def _read_fast(data: bytes, positions: list[int], header: bool) -> list[np.ndarray] | None:
    """Parse with Arrow's CSV reader when every line is one row (no blank lines, no quotes),
    so that row k is line k (+1 for a header); None when that cannot be relied on."""
    if b'"' in data or not data.strip():
        return None
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True,
                                           skip_rows=1 if header else 0),
            convert_options=pacsv.ConvertOptions(
                include_columns=[f"f{p}" for p in positions],
                column_types={f"f{p}": pa.string() for p in positions},
                strings_can_be_null=False))
    except (pa.ArrowInvalid, KeyError):
        return None
    if table.num_rows + header != n_lines:
        return None
    return [np.asarray(table.column(f"f{p}").to_numpy(zero_copy_only=False), dtype=object)
            for p in positions]


def _read_rows(data: bytes, positions: list[int], header: bool, width: int
               ) -> tuple[list[np.ndarray], np.ndarray, list[tuple[int, int]]]:
    """Parse row by row, keeping each row's line number (quoted fields, blank lines); rows
    with fewer than ``width`` fields are left out and returned as (line, fields)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    if header:
        next(reader, None)
    rows: list[list[str]] = []
    lines: list[int] = []
    short: list[tuple[int, int]] = []
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) < width:
            short.append((reader.line_num, len(row)))
            continue
        rows.append([row[p] for p in positions])
        lines.append(reader.line_num)
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(positions)
    out = []
    for c in cols:
        a = np.empty(len(c), dtype=object)
        a[:] = c
        out.append(a)
    return out, np.array(lines, np.int64), short


def instrument_ids(keys: Sequence[np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    """Number the distinct values of ``keys`` (one array per file, in file order) from 0 in
    order of first appearance; return the values and each file's ids."""
    order: dict[str, int] = {}
    ids = []
    for k in keys:
        uniq, first, inverse = np.unique(k, return_index=True, return_inverse=True)
        local = np.empty(len(uniq), np.int64)
        for j in np.argsort(first, kind="stable"):
            local[j] = order.setdefault(str(uniq[j]), len(order))
        ids.append(local[inverse.ravel()])
    return list(order), ids


_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)", re.ASCII)


def check_decimals(values: np.ndarray, path: Path | str, name: str, lines: np.ndarray) -> None:
    """Reject the first value that is not a plain decimal number (no exponent, no NaN)."""
    for r, v in enumerate(values):
        if not _DECIMAL.fullmatch(str(v).strip()):
            raise TapeError(path, int(lines[r]), name, f"{v!r} is not a decimal number")


def decimals_of(values: np.ndarray, path: Path | str, name: str, lines: np.ndarray) -> int:
    """:func:`replay.quality.decimals_needed`, naming the row of a value that is not a plain
    decimal number when that is what went wrong."""
    try:
        return decimals_needed(values, path, name)
    except TapeError:
        check_decimals(values, path, name, lines)
        raise


def decimals_by_instrument(tables: Sequence[Table], ids: Sequence[np.ndarray], n: int,
                           name: str) -> list[int]:
    """The decimals each instrument needs to hold column ``name`` exactly, over all files."""
    out = [0] * n
    for table, inst in zip(tables, ids, strict=True):
        for k in np.unique(inst):
            rows = inst == k
            out[k] = max(out[k], decimals_of(table[name][rows], table.path, name,
                                             table.lines[rows]))
    return out


def units_by_instrument(table: Table, inst: np.ndarray, name: str,
                        decimals: Sequence[int]) -> np.ndarray:
    """Column ``name`` in exact integer units, each row at its instrument's decimals."""
    out = np.zeros(len(table), np.int64)
    for k in np.unique(inst):
        rows = np.flatnonzero(inst == k)
        out[rows] = table.units(name, decimals[k], rows)
    return out


def merge_by_time(parts: Sequence[Events]) -> Events:
    """Concatenate per-file event streams (each in time order) and merge them by ``ts``;
    file order breaks ties."""
    events = Events.concat(list(parts))
    if len(parts) > 1 and np.any(events.ts[1:] < events.ts[:-1]):
        events = events.take(np.argsort(events.ts, kind="stable"))
    return events


_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_ISO = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:[.,](\d{1,9}))?"
                  r"(Z|[+-]\d{2}(?::?\d{2})?)?", re.IGNORECASE | re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ts_ns(text: str) -> int:
    """Integer nanoseconds, or ISO-8601 to nanoseconds UTC without going through a float.

    Raises ValueError on anything else."""
    s = text.strip()
    if _INT.fullmatch(s):
        return int(s)
    m = _ISO.fullmatch(s)
    if m is None:
        raise ValueError(s)
    day, clock, frac, offset = m.groups()
    tz = UTC
    if offset and offset.upper() != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    moment = datetime.fromisoformat(f"{day}T{clock}").replace(tzinfo=tz)
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    return seconds * 10**9 + int((frac or "0").ljust(9, "0"))
