"""Account populations: the leveraged accounts a broker holds, as arrays.

A :class:`Population` is a struct of numpy arrays (no Python object per account), one set
for accounts and one for positions (account x instrument), so 10^6 accounts are cheap. An
account with several positions is a portfolio account: a fall in one name lowers its
collateral for all of them (cross-name contagion).

Two ways to get one (docs/brokers.md):

- :func:`load_population_csv`: accounts listed one position per row.
- :func:`synthesize_population`: calibrated from daily bars and a credit balance (KRW or
  % of shares outstanding), positions spread over entry dates by volume and over down
  payment rates; seeded.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from brokers.rules import KINDS, MAX_WON, read_toml
from replay.quality import TapeError
from replay.tape import InstrumentTable

#: kind name -> the int8 code stored in :attr:`Population.kind`.
KIND_CODES = {k: i for i, k in enumerate(KINDS)}
CSV_COLUMNS = ("account_id", "kind", "instrument", "shares", "entry_price", "cash", "loan",
               "trade_date")
_EPOCH = np.datetime64("1970-01-01", "D")
_MAX_DIGITS = 18  # int64 holds every 18-digit number
#: The most accounts a population may hold (a spec's ``accounts``): its arrays stay in the
#: hundreds of megabytes.
MAX_ACCOUNTS = 10_000_000


@dataclass
class Population:
    """Accounts and their positions as parallel arrays.

    Accounts (index ``a``): ``account_id`` int64, ``kind`` int8 (a code of :data:`KINDS`),
    ``cash`` and ``loan`` int64 won (``loan``: what the broker financed: the credit loan,
    the unpaid part of a 미수 purchase, a CFD's financed notional).
    Positions (one row per account x instrument, grouped by account): ``pos_account`` the
    account's index ``a``, ``pos_instrument`` instrument_id, ``pos_shares`` in the
    instrument's size units, ``pos_entry`` in its price units, ``pos_trade_date`` days since
    1970-01-01 (``numpy.datetime64[D]`` as int64).
    """

    account_id: np.ndarray
    kind: np.ndarray
    cash: np.ndarray
    loan: np.ndarray
    pos_account: np.ndarray
    pos_instrument: np.ndarray
    pos_shares: np.ndarray
    pos_entry: np.ndarray
    pos_trade_date: np.ndarray

    def __post_init__(self) -> None:
        for f in fields(self):
            dtype = np.int8 if f.name == "kind" else np.int64
            setattr(self, f.name, np.ascontiguousarray(getattr(self, f.name), dtype=dtype))
        n, m = len(self.account_id), len(self.pos_account)
        for f in fields(self):
            want = m if f.name.startswith("pos_") else n
            if len(getattr(self, f.name)) != want:
                raise ValueError(f"population: {f.name} has {len(getattr(self, f.name))} "
                                 f"rows, expected {want}")
        if m and (self.pos_account.min() < 0 or self.pos_account.max() >= n):
            raise ValueError("population: pos_account must index the accounts arrays")
        if n and (self.kind.min() < 0 or self.kind.max() >= len(KINDS)):
            raise ValueError(f"population: kind codes must be 0..{len(KINDS) - 1}")
        for name in ("cash", "loan"):
            bad = np.flatnonzero((getattr(self, name) < 0) | (getattr(self, name) > MAX_WON))
            if len(bad):
                raise ValueError(f"population: account {self.account_id[bad[0]]}: {name} "
                                 f"{getattr(self, name)[bad[0]]:,} is outside [0, 10^12] won")
        big = np.flatnonzero(self.pos_shares > MAX_WON // np.maximum(self.pos_entry, 1))
        if len(big):
            i = big[0]
            raise ValueError(f"population: account {self.account_id[self.pos_account[i]]}: "
                             f"{self.pos_shares[i]:,} shares x entry {self.pos_entry[i]:,} is "
                             "above 10^12 won, the bound of a position")

    def __len__(self) -> int:
        return len(self.account_id)

    @property
    def positions(self) -> int:
        """The number of positions (account x instrument rows)."""
        return len(self.pos_account)

    def to_frame(self) -> pd.DataFrame:
        """One row per position, with its account's id, kind, cash and loan."""
        a = self.pos_account
        return pd.DataFrame({
            "account_id": self.account_id[a],
            "kind": pd.Categorical.from_codes(self.kind[a], categories=list(KINDS)),
            "instrument_id": self.pos_instrument,
            "shares": self.pos_shares,
            "entry_units": self.pos_entry,
            "trade_date": (self.pos_trade_date + _EPOCH).astype("datetime64[s]"),
            "cash": self.cash[a],
            "loan": self.loan[a],
        })


# --------------------------------------------------------------------------------------
# CSV


class _FirstBadRow:
    """Keeps the earliest failing row over all checks; on a tie, the check made first
    (checks run in column order), so the message names the row's first bad field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.best: tuple[int, str, Callable[[int], str]] | None = None

    def check(self, bad: np.ndarray, field_name: str, reason: Callable[[int], str]) -> None:
        if not bad.any():
            return
        i = int(np.argmax(bad))
        if self.best is None or i < self.best[0]:
            self.best = (i, field_name, reason)

    def raise_if_any(self) -> None:
        if self.best is not None:
            i, field_name, reason = self.best
            raise TapeError(self.path, i + 2, field_name, reason(i))  # header = line 1


def load_population_csv(path: str | Path, instruments: InstrumentTable,
                        held_by: date | None = None) -> Population:
    """Read accounts from a CSV with columns ``account_id, kind, instrument, shares,
    entry_price, cash, loan, trade_date`` (one position per row; extra columns ignored).

    ``instrument`` is a symbol of ``instruments``; ``shares`` and ``entry_price`` are in
    natural units (converted exactly with the instrument's size/price decimals); ``cash``
    and ``loan`` integer won, at most 10^12 (:data:`brokers.rules.MAX_WON`), as is each
    position's ``shares x entry_price``; ``trade_date`` YYYY-MM-DD, on or before ``held_by``
    (the replay's first day: a position must be held when the replay starts). Numbers are
    plain ASCII digits (``70_900`` and full-width digits are errors). Rows sharing an
    ``account_id`` form
    one portfolio account: its kind, cash and loan are given on its first row and repeated
    or left empty on the others. The first invalid row raises :class:`TapeError` naming the
    file, the row (as the file counts lines, header = 1) and the field.
    """
    path = Path(path)
    raw = _read_strings(path)
    n = len(raw["account_id"])
    bad = _FirstBadRow(path)
    rows = np.arange(n)

    def text(name: str) -> Callable[[int], str]:
        return lambda i: raw[name][i].as_py()

    # account_id
    acc_ok = _matches(raw["account_id"], r"^-?\d{1,18}$")
    bad.check(~acc_ok, "account_id",
              lambda i: f"{text('account_id')(i)!r} is not an integer" if text("account_id")(i)
              else "empty (a blank line?)")
    acc = _to_int(raw["account_id"], acc_ok)
    # accounts by first appearance; rows with a bad id get their own dummy group
    acc_key = np.where(acc_ok, acc, np.iinfo(np.int64).min)
    uniq, first_idx, inverse = np.unique(acc_key, return_index=True, return_inverse=True)
    first_row = first_idx[inverse]
    is_first = first_row == rows
    later = acc_ok & ~is_first

    # kind: required on an account's first row, equal or empty on its other rows
    kind_empty = _empty(raw["kind"])
    kind_code = _index_in(pc.utf8_lower(raw["kind"]), KINDS)
    kind_ok = kind_code >= 0
    bad.check(~kind_empty & ~kind_ok, "kind",
              lambda i: f"unknown kind {text('kind')(i)!r}; expected one of {', '.join(KINDS)}")
    bad.check(kind_empty & ~later, "kind", lambda i: "empty on the account's first row")
    _check_same(bad, "kind", later & kind_ok, kind_code, first_row, kind_ok,
                lambda v: KINDS[v])

    # instrument
    symbols = [inst.symbol for inst in instruments]
    inst_idx = _index_in(raw["instrument"], symbols)
    inst_ok = inst_idx >= 0
    bad.check(~inst_ok, "instrument",
              lambda i: f"unknown symbol {text('instrument')(i)!r}; the instrument table has "
                        f"{', '.join(symbols[:10])}{' ...' if len(symbols) > 10 else ''}")
    safe_idx = np.where(inst_ok, inst_idx, 0)
    table = list(instruments)
    inst_id = np.array([x.instrument_id for x in table], np.int64)
    price_dec = np.array([x.price_decimals for x in table] or [0], np.int64)[safe_idx]
    size_dec = np.array([x.size_decimals for x in table] or [0], np.int64)[safe_idx]

    shares = _decimal_units(raw["shares"], size_dec, "shares", bad, text)
    entry = _decimal_units(raw["entry_price"], price_dec, "entry_price", bad, text)

    # cash, loan: non-negative integer won on the first row; equal or empty later
    money = {}
    for name in ("cash", "loan"):
        empty = _empty(raw[name])
        ok = _matches(raw[name], r"^-?\d{1,18}$")
        value = _to_int(raw[name], ok)
        bad.check(~empty & ~ok, name,
                  lambda i, name=name: f"{text(name)(i)!r} is not an integer number of won")
        bad.check(empty & ~later, name, lambda i: "empty on the account's first row")
        bad.check(ok & (value < 0), name,
                  lambda i, name=name: f"{text(name)(i)} is negative")
        bad.check(ok & (value > MAX_WON), name,
                  lambda i, name=name: f"{text(name)(i)} won is above the bound of 10^12 won "
                                       "per account")
        _check_same(bad, name, later & ok, value, first_row, ok & (value >= 0),
                    lambda v: f"{v:,}")
        money[name] = value

    # trade_date
    date_ok = _matches(raw["trade_date"], r"^\d{4}-\d{2}-\d{2}$")
    days, date_ok = _dates(raw["trade_date"], date_ok)
    bad.check(~date_ok, "trade_date",
              lambda i: f"{text('trade_date')(i)!r} is not a date YYYY-MM-DD")
    if held_by is not None:
        bad.check(date_ok & (days > _day_number(held_by)), "trade_date",
                  lambda i: f"{text('trade_date')(i)} is after the replay's first day "
                            f"({held_by}): a position must be held when the replay starts")
    # shares x entry price within the bound (checked by division: the product may overflow)
    both_ok = (shares > 0) & (entry > 0)
    bad.check(both_ok & (shares > MAX_WON // np.maximum(entry, 1)), "shares",
              lambda i: f"{text('shares')(i)} shares x {text('entry_price')(i)} is above the "
                        "bound of 10^12 won per position")

    # one row per (account, instrument)
    both = acc_ok & inst_ok
    key = inverse.astype(np.int64) * max(len(table), 1) + safe_idx
    order = np.flatnonzero(both)[np.argsort(key[both], kind="stable")]
    dup = np.zeros(n, bool)
    dup[order[1:][key[order[1:]] == key[order[:-1]]]] = True
    bad.check(dup, "instrument",
              lambda i: f"account {acc[i]} holds {text('instrument')(i)!r} on an earlier row "
                        "too; give one row per account and instrument")
    bad.raise_if_any()

    # accounts in order of first appearance; positions grouped by account, file order within
    by_first = np.argsort(first_idx, kind="stable")
    rank = np.empty(len(uniq), np.int64)
    rank[by_first] = np.arange(len(uniq))
    pos_account = rank[inverse]
    pos_order = np.argsort(pos_account, kind="stable")
    firsts = first_idx[by_first]
    return Population(
        account_id=acc[firsts], kind=kind_code[firsts], cash=money["cash"][firsts],
        loan=money["loan"][firsts], pos_account=pos_account[pos_order],
        pos_instrument=inst_id[safe_idx][pos_order],
        pos_shares=shares[pos_order], pos_entry=entry[pos_order],
        pos_trade_date=days[pos_order])


def _read_strings(path: Path) -> dict[str, pa.Array]:
    """The CSV's required columns as string arrays (header matched case-insensitively);
    trailing blank lines dropped, blank lines inside kept as rows so line numbers hold."""
    with path.open("rb") as fh:
        first = fh.readline().decode("utf-8-sig", errors="replace")
    if not first.strip():
        raise TapeError(path, 1, None, f"expected a header: {', '.join(CSV_COLUMNS)}")
    header = [h.strip().lower() for h in next(csv.reader([first]))]
    for name in CSV_COLUMNS:
        if name not in header:
            raise TapeError(path, 1, name, f"missing column; expected "
                            f"{', '.join(CSV_COLUMNS)} (the header has {', '.join(header)})")
    names = [h if h not in header[:i] else f"{h}.{i}" for i, h in enumerate(header)]
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in CSV_COLUMNS},
                include_columns=list(CSV_COLUMNS), strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        if "UTF8" in str(exc):
            raise _not_utf8(path, header) from None
        raise TapeError(path, _first_ragged_line(path, len(header)), None,
                        f"not a valid CSV row: {exc}") from None
    columns = {c: pc.utf8_trim_whitespace(table.column(c).combine_chunks())
               for c in CSV_COLUMNS}
    n = table.num_rows
    blank = np.ones(n, bool)
    for c in CSV_COLUMNS:
        blank &= _empty(columns[c])
    keep = n - int(np.argmin(blank[::-1])) if n and not blank.all() else 0
    return {c: a.slice(0, keep) for c, a in columns.items()}


def _not_utf8(path: Path, header: list[str]) -> TapeError:
    """Error path only: the first line (and field) that is not UTF-8, shown as CP949 (the
    encoding Korean files usually are in) when it reads as that."""
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


def _first_ragged_line(path: Path, width: int) -> int | None:
    """Error path only: the line number of the first row with the wrong number of fields."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh)
        for row in reader:
            if row and len(row) != width:
                return reader.line_num
    return None


def _matches(arr: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.match_substring_regex(arr, pattern), bool)


def _empty(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.equal(pc.utf8_length(arr), 0), bool)


def _to_int(arr: pa.Array, ok: np.ndarray) -> np.ndarray:
    """Integers where ``ok`` (already checked to fit int64), 0 elsewhere."""
    safe = pc.if_else(pa.array(ok), arr, "0")
    return np.asarray(pc.cast(safe, pa.int64()), np.int64)


def _dates(arr: pa.Array, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YYYY-MM-DD strings (``ok`` rows have that shape) as days since 1970-01-01, and
    which of them are real calendar dates (2024-02-30 is not)."""
    safe = pc.if_else(pa.array(ok), arr, "1970-01-01")
    try:
        days = pc.cast(safe, pa.date32())
    except pa.ArrowInvalid:  # error path only: find the impossible dates
        parsed = pc.strptime(safe, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls 2024-02-30 over to March: a real date prints back as written
        ok = ok & np.asarray(pc.fill_null(pc.equal(pc.strftime(parsed, format="%Y-%m-%d"),
                                                   safe), False), bool)
        days = pc.cast(pc.if_else(pa.array(ok), arr, "1970-01-01"), pa.date32())
    return np.asarray(pc.cast(days, pa.int32()), np.int64), ok


def _index_in(arr: pa.Array, values: list[str] | tuple[str, ...]) -> np.ndarray:
    """Index of each string in ``values``; -1 where absent."""
    idx = pc.index_in(arr, value_set=pa.array(list(values), pa.string()))
    return np.asarray(pc.fill_null(idx, -1), np.int64)


def _check_same(bad: _FirstBadRow, name: str, rows: np.ndarray, value: np.ndarray,
                first_row: np.ndarray, valid: np.ndarray, show: Callable[[Any], str]) -> None:
    """A portfolio account's later rows must repeat the value of its first row."""
    differs = rows & valid[first_row] & (value != value[first_row])
    bad.check(differs, name,
              lambda i: f"{show(value[i])} differs from {show(value[first_row[i]])} on this "
                        f"account's first row (row {first_row[i] + 2}); an account has one "
                        f"{name}")


def _decimal_units(arr: pa.Array, decimals: np.ndarray, name: str, bad: _FirstBadRow,
                   text: Callable[[str], Callable[[int], str]]) -> np.ndarray:
    """Positive decimal strings to exact int64 units, ``value * 10**decimals`` per row
    (as replay.quality.to_units, vectorised): no float decides a price."""
    plain = _matches(arr, r"^\d{1,18}$")
    if plain.all() and (np.asarray(pc.utf8_length(arr)) + decimals <= _MAX_DIGITS).all():
        # the common case (whole won, whole shares): no regex extraction needed
        units = np.asarray(pc.cast(arr, pa.int64()), np.int64) * 10**decimals
        bad.check(units <= 0, name, lambda i: f"{text(name)(i)} must be > 0")
        return units
    parts = pc.extract_regex(arr, r"^(?P<sign>-?)(?P<whole>\d*)(?:\.(?P<frac>\d*))?$")
    matched = ~np.asarray(pc.is_null(parts), bool)
    parts = pc.fill_null(parts, {"sign": "", "whole": "0", "frac": ""})
    whole = pc.struct_field(parts, "whole")
    frac = pc.utf8_rtrim(pc.struct_field(parts, "frac"), "0")
    whole_len = np.asarray(pc.utf8_length(whole), np.int64)
    frac_len = np.asarray(pc.utf8_length(frac), np.int64)
    raw_len = np.asarray(pc.utf8_length(arr), np.int64)
    digits = whole_len + np.asarray(pc.utf8_length(pc.struct_field(parts, "frac")))
    ok = matched & (digits > 0) & (raw_len > 0)
    bad.check(~ok, name, lambda i: f"{text(name)(i)!r} is not a decimal number")
    fits = frac_len <= decimals
    bad.check(ok & ~fits, name,
              lambda i: f"{text(name)(i)!r} has more than {decimals[i]} decimals (the "
                        "instrument's decimals)")
    big = whole_len + decimals > _MAX_DIGITS
    bad.check(ok & fits & big, name,
              lambda i: f"{text(name)(i)!r} is too large for 64-bit integer units")
    ok &= fits & ~big
    top = int(decimals.max()) if len(decimals) else 0
    whole_v = np.asarray(pc.cast(pc.if_else(pa.array(ok & (whole_len > 0)), whole, "0"),
                                 pa.int64()), np.int64)
    if top:
        padded = pc.utf8_rpad(pc.if_else(pa.array(ok), frac, ""), width=top, padding="0")
        frac_v = np.asarray(pc.cast(padded, pa.int64()), np.int64) // 10 ** (top - decimals)
    else:
        frac_v = np.zeros(len(decimals), np.int64)
    units = whole_v * 10**decimals + frac_v
    negative = np.asarray(pc.equal(pc.struct_field(parts, "sign"), "-"), bool)
    units = np.where(negative, -units, units)
    bad.check(ok & (units <= 0), name, lambda i: f"{text(name)(i)} must be > 0")
    return units


# --------------------------------------------------------------------------------------
# Synthetic populations from daily bars

SPEC_KEYS = ("bars", "instrument", "kind", "kinds", "accounts", "credit_balance_krw",
             "credit_balance_pct_shares", "loan_term_days", "margin_rate", "as_of")
#: pykrx (Korean) and FinanceDataReader (English) daily-bar headers -> our names.
BAR_HEADERS = {"date": "date", "날짜": "date", "일자": "date", "open": "open", "시가": "open",
               "high": "high", "고가": "high", "low": "low", "저가": "low", "close": "close",
               "종가": "close", "volume": "volume", "거래량": "volume"}


@dataclass(frozen=True)
class DailyBars:
    """Daily bars: ``date`` as days since 1970-01-01, ``close`` natural price, ``volume``."""

    date: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def read_daily_bars(path: str | Path) -> DailyBars:
    """Daily bars in the pykrx / FinanceDataReader layout: Date, Open, High, Low, Close,
    Volume (or 날짜, 시가, 고가, 저가, 종가, 거래량). Date, Close and Volume are used;
    dates must increase; numbers are plain ASCII decimals. UTF-8, or CP949 (EUC-KR, as
    Excel saves a Korean CSV) when the file is not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such daily-bar file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        # Excel saves a Korean CSV in CP949 (EUC-KR): read it as that, or say which row is not
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="cp949")
        except UnicodeDecodeError:
            raise _not_utf8(path, []) from None
    columns = {}
    for col in frame.columns:
        ours = BAR_HEADERS.get(str(col).strip().lower())
        if ours and ours not in columns:
            columns[ours] = col
    for need in ("date", "close", "volume"):
        if need not in columns:
            raise TapeError(path, 1, need.capitalize(),
                            "missing column; expected Date, Open, High, Low, Close, Volume "
                            "(or 날짜, 시가, 고가, 저가, 종가, 거래량)")
    if frame.empty:
        raise TapeError(path, None, None, "no bars")
    text = {k: frame[c].str.strip() for k, c in columns.items()}
    when = pd.to_datetime(text["date"], format="ISO8601", errors="coerce")
    close = pd.to_numeric(text["close"], errors="coerce").to_numpy(float)
    volume = pd.to_numeric(text["volume"], errors="coerce").to_numpy(float)
    plain = {k: text[k].str.fullmatch(r"[0-9]+(\.[0-9]*)?").fillna(False).to_numpy(bool)
             for k in ("close", "volume")}
    checks = [(when.isna().to_numpy(), columns["date"], "is not a date YYYY-MM-DD"),
              (~plain["close"], columns["close"], "is not a plain decimal number"),
              (~(close > 0) | ~np.isfinite(close), columns["close"], "must be a price > 0"),
              (~plain["volume"], columns["volume"], "is not a plain decimal number"),
              (~(volume >= 0) | ~np.isfinite(volume), columns["volume"], "must be >= 0")]
    for bad, col, reason in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise TapeError(path, i + 2, col, f"{frame[col].iloc[i]!r} {reason}")
    days = when.to_numpy().astype("datetime64[D]").astype(np.int64)
    back = np.flatnonzero(np.diff(days) <= 0) + 1
    if len(back):
        i = int(back[0])
        raise TapeError(path, i + 2, columns["date"],
                        f"{frame[columns['date']].iloc[i]!r} does not follow the previous "
                        "date; bars must be in increasing date order, one per day")
    return DailyBars(days, close, volume)


def synthesize_population(spec: str | Path | dict, instruments: InstrumentTable,
                          seed: int, held_by: date | None = None) -> Population:
    """A seeded population of single-name accounts calibrated to daily bars.

    ``spec`` is a TOML file (or the same keys as a dict; then a relative ``bars`` path is
    relative to the working directory, not the spec file):

    - ``bars``: daily-bar CSV (:func:`read_daily_bars`); ``instrument``: its symbol;
    - ``kind = "credit"`` or ``kinds = {credit = 0.7, misu = 0.3}`` (shares summing to 1);
    - ``accounts``: how many (1 to 10^7); ``as_of``: the last bar used (default: the last
      bar), on or before ``held_by`` (the replay's first day: positions are held when the
      replay starts);
    - ``credit_balance_krw``, or ``credit_balance_pct_shares`` (% of the instrument's
      ``shares_outstanding``, valued at the ``as_of`` close): the total of the loans;
    - ``loan_term_days`` (default 90, calendar days): entries lie within the term before
      ``as_of``; ``margin_rate``: a rate or ``[low, high]`` drawn uniformly.

    Method (all draws from ``numpy.random.Generator(PCG64(seed))``, in this order):
    1. kinds: exact counts by largest remainder of ``share x accounts``, randomly permuted;
    2. entry day: a bar dated in ``(as_of - loan_term_days, as_of]``, drawn with
       probability proportional to its volume; entry price = that day's close;
    3. down payment ``m`` uniform in ``margin_rate``;
    4. each account's target loan ``L = balance x w / sum(w)``, ``w`` exponential(1) (a
       uniform split of the balance, Dirichlet(1, ..., 1));
    5. ``shares = max(1, round(L / ((1 - m) x entry)))``, ``loan = round((1 - m) x shares x
       entry)`` won, ``cash = 0``. Each loan is within one share's price of its target,
       so the loans sum to the balance within ``sum(entry)`` (one share per account).
    """
    if isinstance(spec, dict):
        data, where, base = dict(spec), "population spec", Path.cwd()
    else:
        path = Path(spec)
        data = read_toml(path)
        where, base = str(path), path.parent

    def fail(key: str, reason: str) -> ValueError:
        return ValueError(f"{where}: {key} = {data.get(key)!r}: {reason}")

    for key in data:
        if key not in SPEC_KEYS:
            raise ValueError(f"{where}: unknown key {key!r}; valid keys: {', '.join(SPEC_KEYS)}")
    for key in ("bars", "instrument", "accounts"):
        if key not in data:
            raise ValueError(f"{where}: missing key {key!r}")

    if not isinstance(data["bars"], str):
        raise fail("bars", "must be the path of a daily-bar CSV")
    bars_path = Path(data["bars"])
    if not bars_path.is_absolute():
        bars_path = base / bars_path
    try:
        inst = instruments.by_symbol(str(data["instrument"]))
    except KeyError:
        raise fail("instrument", "not in the instrument table (symbols: "
                   f"{', '.join(i.symbol for i in instruments)})") from None

    shares_by_kind = _kind_shares(data, fail, where)
    accounts = data["accounts"]
    if not isinstance(accounts, int) or isinstance(accounts, bool) or \
            not 1 <= accounts <= MAX_ACCOUNTS:
        raise fail("accounts", f"must be an integer in [1, {MAX_ACCOUNTS:,}]")
    term = data.get("loan_term_days", 90)
    if not isinstance(term, int) or isinstance(term, bool) or not 1 <= term <= 3650:
        raise fail("loan_term_days", "must be an integer number of calendar days in "
                   "[1, 3650]")
    low, high = _margin_range(data, fail)

    bars = read_daily_bars(bars_path)
    last = len(bars.date) - 1
    if "as_of" in data:
        as_of = _as_date(data["as_of"])
        if as_of is None:
            raise fail("as_of", "must be a date YYYY-MM-DD")
        last = int(np.searchsorted(bars.date, as_of, side="right")) - 1
        if last < 0:
            raise fail("as_of", f"is before the first bar ({_day(bars.date[0])})")
    as_of_day = int(bars.date[last])
    # the positions are as of as_of (or the last bar): held when the replay starts
    stated = as_of if "as_of" in data else as_of_day
    if held_by is not None and stated > _day_number(held_by):
        key = "as_of" if "as_of" in data else "bars"
        raise ValueError(f"{where}: {key}: the positions are as of {_day(stated)}"
                         f"{'' if key == 'as_of' else ' (the last bar)'}, after the replay's "
                         f"first day ({held_by}); a position must be held when the replay "
                         f"starts: set as_of = \"{held_by}\" or earlier")
    start = as_of_day - term + 1
    if bars.date[0] > start:
        raise fail("loan_term_days", f"the term starts on {_day(start)} but {bars_path} "
                   f"starts on {_day(bars.date[0])}; give earlier bars or a shorter term")
    window = np.flatnonzero((bars.date >= start) & (bars.date <= as_of_day))
    volume = bars.volume[window]
    if volume.sum() <= 0:
        raise fail("loan_term_days", f"no volume in {bars_path} within the term")

    has_krw, has_pct = "credit_balance_krw" in data, "credit_balance_pct_shares" in data
    if has_krw == has_pct:
        raise ValueError(f"{where}: give exactly one of credit_balance_krw or "
                         "credit_balance_pct_shares")
    if has_krw:
        balance = _positive_number(data, "credit_balance_krw", fail)
        if balance > MAX_WON * accounts:
            raise fail("credit_balance_krw", f"is above 10^12 won per account x {accounts:,} "
                       "accounts, the bound of a loan")
    else:
        pct = _positive_number(data, "credit_balance_pct_shares", fail)
        if pct > 100:
            raise fail("credit_balance_pct_shares", "is a percentage: must be <= 100")
        if inst.shares_outstanding <= 0:
            raise fail("credit_balance_pct_shares",
                       f"instrument {inst.symbol} has no shares_outstanding in the table")
        balance = pct / 100 * inst.shares_outstanding * bars.close[last]

    rng = np.random.Generator(np.random.PCG64(seed))
    kind = rng.permutation(_exact_counts(shares_by_kind, accounts)).astype(np.int8)
    day = window[rng.choice(len(window), size=accounts, p=volume / volume.sum())]
    m = rng.uniform(low, high, accounts)
    w = rng.exponential(1.0, accounts)
    target = balance * w / w.sum()
    if target.max() > MAX_WON:
        key = "credit_balance_krw" if has_krw else "credit_balance_pct_shares"
        raise fail(key, f"gives a loan of {target.max():,.0f} won, above the bound of 10^12 "
                   "won per account; spread the balance over more accounts")
    price = bars.close[day]  # natural units (won)
    shares = np.maximum(1, np.rint(target / ((1 - m) * price))).astype(np.int64)
    loan = np.rint((1 - m) * shares * price).astype(np.int64)

    ids = np.arange(accounts, dtype=np.int64)
    return Population(
        account_id=ids, kind=kind, cash=np.zeros(accounts, np.int64), loan=loan,
        pos_account=ids, pos_instrument=np.full(accounts, inst.instrument_id, np.int64),
        pos_shares=shares * 10**inst.size_decimals,
        pos_entry=np.rint(price * 10**inst.price_decimals).astype(np.int64),
        pos_trade_date=bars.date[day])


def _kind_shares(data: dict, fail: Callable[[str, str], ValueError],
                 where: str) -> np.ndarray:
    """The share of each kind (in :data:`KINDS` order) from ``kind`` or ``kinds``."""
    if ("kind" in data) == ("kinds" in data):
        raise ValueError(f"{where}: give exactly one of kind or kinds")
    if "kind" in data:
        if data["kind"] not in KINDS:
            raise fail("kind", f"must be one of {', '.join(KINDS)}")
        out = np.zeros(len(KINDS))
        out[KINDS.index(data["kind"])] = 1.0
        return out
    kinds = data["kinds"]
    if not isinstance(kinds, dict) or not kinds:
        raise fail("kinds", "must be a table of kind = share, e.g. {credit = 0.7, misu = 0.3}")
    out = np.zeros(len(KINDS))
    for name, share in kinds.items():
        if name not in KINDS:
            raise fail("kinds", f"unknown kind {name!r}; expected {', '.join(KINDS)}")
        if not isinstance(share, int | float) or isinstance(share, bool) or not share > 0:
            raise fail("kinds", f"the share of {name!r} must be a number > 0")
        out[KINDS.index(name)] = float(share)
    if abs(out.sum() - 1.0) > 1e-6:
        raise fail("kinds", f"the shares sum to {out.sum():g}, not 1")
    return out


def _exact_counts(shares: np.ndarray, total: int) -> np.ndarray:
    """Kind codes, ``round(share x total)`` of each by largest remainder (sums to total)."""
    raw = shares * total
    counts = np.floor(raw).astype(np.int64)
    rest = total - int(counts.sum())
    counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return np.repeat(np.arange(len(shares)), counts)


def _margin_range(data: dict, fail: Callable[[str, str], ValueError]) -> tuple[float, float]:
    value = data.get("margin_rate", [0.4, 0.6])
    pair = value if isinstance(value, list) else [value, value]
    if len(pair) != 2 or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                 for x in pair):
        raise fail("margin_rate", "must be a rate or [low, high], e.g. [0.4, 0.6]")
    low, high = float(pair[0]), float(pair[1])
    if not 0 < low <= high < 1:
        raise fail("margin_rate", "needs 0 < low <= high < 1 (a down payment of 1 is no loan)")
    return low, high


def _positive_number(data: dict, key: str, fail: Callable[[str, str], ValueError]) -> float:
    value = data[key]
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0 \
            or not np.isfinite(value):
        raise fail(key, "must be a number > 0")
    return float(value)


def _as_date(value: Any) -> int | None:
    """A TOML date or a YYYY-MM-DD string as days since 1970-01-01."""
    if isinstance(value, date):
        return int(np.datetime64(value, "D").astype(np.int64))
    try:
        return int(np.datetime64(str(value), "D").astype(np.int64))
    except ValueError:
        return None


def _day_number(day: date) -> int:
    """A date as days since 1970-01-01."""
    return int(np.datetime64(day, "D").astype(np.int64))


def _day(days: int) -> str:
    return str(np.datetime64(int(days), "D"))
