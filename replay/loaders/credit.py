"""Credit-loan balances (신용거래융자 잔고) by day and market, an input of population
synthesis: how much retail credit a market holds (docs/reference/krx-data-formats.md: 5;
docs/data-formats.md: KOFIA credit balances).

Read: KOFIA FreeSIS series STATSCU0100000070BO as JSON records (``TMPV1`` date, ``TMPV2``
total, ``TMPV3`` KOSPI, ``TMPV4`` KOSDAQ, in 백만원) or as a CSV export with those headers
or the Korean ones (일자, 신용거래융자 전체, 유가증권, 코스닥), and the daily file of the
KOSPI balance shipped in tests/data (``Credit_Balance_KOSPI``, 백만원).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from replay.loaders.text import MISSING, decode_text
from replay.quality import TapeError

#: The table's columns: ``date`` (datetime64[ns]), ``total``, ``kospi``, ``kosdaq`` in won
#: (int64, -1 where the file does not give it).
COLUMNS = ("date", "total", "kospi", "kosdaq")
WON_PER_UNIT = 1_000_000  # the series are in 백만원 (millions of won)

#: Header (lower-cased, spaces removed) -> our field.
HEADERS = {
    "tmpv1": "date", "일자": "date", "날짜": "date", "date": "date",
    "tmpv2": "total", "신용거래융자전체": "total", "전체": "total",
    "tmpv3": "kospi", "유가증권": "kospi", "credit_balance_kospi": "kospi",
    "tmpv4": "kosdaq", "코스닥": "kosdaq",
}

_DAY = re.compile(r"(\d{4})[-/.]?(\d{2})[-/.]?(\d{2})", re.ASCII)
# millions of won: ASCII digits, thousands grouped by commas or not, up to 6 decimals (one
# won); the shipped file writes 22698703.0
_AMOUNT = re.compile(r"(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{0,6})0*)?", re.ASCII)
_MAX_MILLIONS = 9_000_000_000  # 9e15 won: below 2**53, far above any market's balance


def read_credit_balance(path: str | Path) -> pd.DataFrame:
    """The credit-loan balance by day (:data:`COLUMNS`), sorted by date, in won.

    A ``.json`` file holds FreeSIS records (a list, or an object with one list of records);
    any other is CSV: lines starting with ``#`` before the header are skipped. The rows
    may come oldest or newest first (FreeSIS lists newest first), not mixed; a repeated
    date, a negative or unparsable amount and an unknown column are errors naming the
    file, the row (the record, for JSON) and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such credit-balance file")
    text = decode_text(path.read_bytes(), path)
    if path.suffix.lower() == ".json":
        names, rows, lines = _json_rows(path, text)
    else:
        names, rows, lines = _csv_rows(path, text)
    if not rows:
        raise TapeError(path, None, None, "no rows: the file holds no balance")
    fields = {f: i for i, f in enumerate(names.values())}
    cols = list(names)
    days = np.empty(len(rows), "datetime64[ns]")
    out = {f: np.full(len(rows), -1, np.int64) for f in COLUMNS[1:]}
    for r, row in enumerate(rows):
        text_day = row[fields["date"]].strip()
        m = _DAY.fullmatch(text_day)
        try:
            days[r] = np.datetime64(pd.Timestamp(f"{m[1]}-{m[2]}-{m[3]}"), "ns") if m \
                else np.datetime64("NaT")
        except ValueError:
            m = None
        if m is None:
            raise TapeError(path, lines[r], cols[fields["date"]],
                            f"{text_day!r} is not a date (YYYYMMDD or YYYY-MM-DD)")
        for f in COLUMNS[1:]:
            if f in fields:
                out[f][r] = _won(row[fields[f]], path, lines[r], cols[fields[f]])
    order = np.argsort(days, kind="stable")
    step = np.diff(days.astype(np.int64))
    same = np.flatnonzero(step == 0)
    if len(same):
        r = int(same[0]) + 1
        raise TapeError(path, lines[r], cols[fields["date"]],
                        f"{str(days[r])[:10]} repeats the date of row {lines[r - 1]}")
    if (step > 0).any() and (step < 0).any():
        rising = step[0] > 0
        r = int(np.flatnonzero((step < 0) if rising else (step > 0))[0]) + 1
        raise TapeError(path, lines[r], cols[fields["date"]],
                        f"{str(days[r])[:10]} breaks the rows' order "
                        f"({'oldest' if rising else 'newest'} first until row {lines[r - 1]})")
    table = pd.DataFrame({"date": days[order], **{f: out[f][order] for f in COLUMNS[1:]}},
                         columns=list(COLUMNS))
    table.attrs["source"] = str(path)
    return table


def _won(text: object, path: Path, line: int, name: str) -> int:
    """An amount in 백만원 as exact won; empty is -1 (not given)."""
    s = str(text).strip()
    if s.lower() in MISSING:
        return -1
    m = _AMOUNT.fullmatch(s)
    if m is None:
        why = "cannot be negative" if s.startswith("-") else \
            "is not an amount in 백만원 (digits, a comma every three, at most 6 decimals)"
        raise TapeError(path, line, name, f"{s!r} {why}")
    millions = int(m[1].replace(",", ""))
    if millions >= _MAX_MILLIONS:
        raise TapeError(path, line, name, f"{s!r} is out of bounds (below 9e15 won)")
    return millions * WON_PER_UNIT + int((m[2] or "").ljust(6, "0"))


def _header(path: Path, line: int, header: list[str]) -> dict[str, str]:
    """The file's column names -> our fields; the date and at least one balance needed.
    Columns of the shipped KOSPI file other than the balance are left unread."""
    names: dict[str, str] = {}
    for raw in header:
        key = re.sub(r"\s+", "", raw).lower()
        ours = HEADERS.get(key)
        if ours is None:
            continue
        if ours in names.values():
            raise TapeError(path, line, raw.strip(), "a second column for the same field")
        names[raw.strip()] = ours
    if "date" not in names.values():
        raise TapeError(path, line, "date", "missing column: TMPV1, 일자 or Date")
    if len(names) < 2:
        raise TapeError(path, line, None, "no balance column: TMPV2-4, 신용거래융자 전체, "
                        "유가증권, 코스닥 or Credit_Balance_KOSPI")
    return names


def _csv_rows(path: Path, text: str) -> tuple[dict[str, str], list[list[str]], list[int]]:
    lines = text.splitlines()
    skip = 0
    while skip < len(lines) and (lines[skip].lstrip().startswith("#") or not lines[skip].strip()):
        skip += 1
    reader = csv.reader(io.StringIO("\n".join(lines[skip:])))
    header = next(reader, None) or []
    names = _header(path, skip + 1, header)
    at = [i for i, h in enumerate(header) if h.strip() in names]
    rows, numbers = [], []
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        line = skip + reader.line_num
        if len(row) != len(header):
            raise TapeError(path, line, None, f"{len(row)} fields, the header has {len(header)}")
        rows.append([row[i] for i in at])
        numbers.append(line)
    return names, rows, numbers


def _json_rows(path: Path, text: str) -> tuple[dict[str, str], list[list[str]], list[int]]:
    try:
        data = json.loads(text, parse_float=str, parse_int=str)
    except json.JSONDecodeError as exc:
        raise TapeError(path, exc.lineno, None, f"not JSON: {exc.msg}") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise TapeError(path, None, None, "expected a list of FreeSIS records (TMPV1, "
                            f"TMPV2, ...), or an object holding one; found {len(lists)} lists")
        data = lists[0]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise TapeError(path, None, None, "expected a list of FreeSIS records {\"TMPV1\": "
                        "\"20260602\", \"TMPV2\": ...}")
    if not data:
        return {"TMPV1": "date"}, [], []
    keys = list(dict.fromkeys(k for r in data for k in r))
    names = _header(path, 1, keys)
    rows = []
    for r, record in enumerate(data, start=1):
        if not any(k in record for k in names if names[k] == "date"):
            raise TapeError(path, r, "TMPV1", "missing date")
        rows.append([str(record.get(k, "")) for k in names])
    return names, rows, list(range(1, len(data) + 1))
