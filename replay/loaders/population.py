"""Account populations from files: a CSV of accounts, or a TOML spec synthesised from daily
bars (docs/brokers.md: account populations).

- :func:`load_population_csv`: accounts listed one position per row, every row checked;
  the first bad row is a :class:`TapeError` naming the file, the row and the field.
- :func:`synthesize_population`: reads a spec (a TOML file, or its keys as a dict) and its
  daily bars (:mod:`replay.loaders.daily_bars`), then draws the accounts
  (:mod:`brokers.synthetic_population`, the method; it reads no file).

The result is a :class:`brokers.population.Population` (the model); these readers are the
only place a population's file formats are known.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from brokers.population import Population, concatenate
from brokers.rules import KINDS, MAX_WON, read_toml
from brokers.synthetic_population import (
    DailyBars,
    MarketName,
    MarketSpec,
    MarketSplit,
    PopulationSpec,
    synthesize,
    synthesize_market,
)
from replay.loaders.credit import read_credit_balance
from replay.loaders.daily_bars import read_bars, read_daily_bars
from replay.loaders.text import not_utf8_error
from replay.quality import TapeError
from replay.tape import InstrumentTable

CSV_COLUMNS = ("account_id", "kind", "instrument", "shares", "entry_price", "cash", "loan",
               "trade_date")
_MAX_DIGITS = 18  # int64 holds every 18-digit number


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
            raise not_utf8_error(path, header) from None
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
# TOML spec


def synthesize_population(spec: str | Path | Mapping[str, Any], instruments: InstrumentTable,
                          seed: int, held_by: date | None = None) -> Population:
    """A seeded population of single-name accounts calibrated to daily bars, from a spec:
    a TOML file, or the same keys as a dict (:class:`brokers.synthetic_population.
    PopulationSpec` lists them and the method).

    The file is read as a rules file is (:func:`brokers.rules.read_toml`: invalid TOML or
    text that is not UTF-8 is one line naming the file). The spec is checked before its bars
    are read; ``bars``, when relative, is relative to the spec file (to the working
    directory for a dict). ``held_by`` is the replay's first day: the positions must be held
    when the replay starts.

    A spec of several names lists them under ``names`` (an array of tables, ``[[names]]``
    in TOML), each with the keys that are its own (``instrument``, ``accounts``, the
    balance); the keys outside ``names`` are shared. Each name is drawn as a spec of its
    own, with the seed ``(seed, k)`` for the k-th name, and the accounts are numbered on
    from the previous name's.

    A spec with a ``[market]`` table draws a whole market's accounts instead
    (:func:`synthesize_market_population`, which also says how the balances were split)."""
    if isinstance(spec, Mapping):
        data, where, base = dict(spec), "population spec", Path.cwd()
    else:
        path = Path(spec)
        data, where, base = read_toml(path), str(path), path.parent
    if "market" in data:
        return _market(data, where, base, instruments, seed, held_by)[0]
    if "names" not in data:
        return _one_name(data, where, base, instruments, seed, held_by)[1]
    names = data.pop("names")
    if not isinstance(names, list) or not names or \
            not all(isinstance(n, Mapping) for n in names):
        raise ValueError(f"{where}: names must be a non-empty array of tables ([[names]]), "
                         "one per instrument")
    symbols: list[str] = []
    parts: list[Population] = []
    for k, own in enumerate(names):
        clash = sorted(set(own) & set(data))
        if clash:
            raise ValueError(f"{where}: names[{k}] sets {', '.join(clash)}, which the spec "
                             "sets for every name; give each key in one place")
        name_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
        symbol, drawn = _one_name({**data, **own}, f"{where}: names[{k}]", base, instruments,
                                  name_seed, held_by)
        if symbol in symbols:
            raise ValueError(f"{where}: names[{k}]: instrument {symbol} is also "
                             f"names[{symbols.index(symbol)}]'s; give each instrument once")
        symbols.append(symbol)
        parts.append(drawn)
    return concatenate(parts)


def _one_name(data: dict[str, Any], where: str, base: Path, instruments: InstrumentTable,
              seed: int, held_by: date | None) -> tuple[str, Population]:
    """One name's spec checked and drawn: its instrument's symbol and its accounts."""
    checked = PopulationSpec.from_mapping(data, instruments, where)
    bars_path = Path(checked.bars)
    if not bars_path.is_absolute():
        bars_path = base / bars_path
    symbol = checked.instrument.symbol
    return symbol, synthesize(checked, read_daily_bars(bars_path, code=symbol), seed,
                              held_by=held_by)


def synthesize_market_population(spec: str | Path | Mapping[str, Any],
                                 instruments: InstrumentTable, seed: int,
                                 held_by: date | None = None) -> tuple[Population, MarketSplit]:
    """A spec with a ``[market]`` table (docs/brokers.md: a market's leverage): its
    population, and how the balances were split (:class:`brokers.synthetic_population.
    MarketSplit`, whose ``summary()`` is the record to keep). :func:`synthesize_population`
    gives the population alone.

    Read here: the spec, its ``bars`` (one file of many codes, every code a name), the
    ``credit_file`` (:func:`replay.loaders.credit.read_credit_balance`: each market's
    balance on ``as_of``, where not given as a number) and ``credit_ratio`` when it is a
    CSV path (columns ``code, credit_ratio``). Relative paths are relative to the spec."""
    if isinstance(spec, Mapping):
        data, where, base = dict(spec), "population spec", Path.cwd()
    else:
        path = Path(spec)
        data, where, base = read_toml(path), str(path), path.parent
    if "market" not in data:
        raise ValueError(f"{where}: no [market] table")
    return _market(data, where, base, instruments, seed, held_by)


def _market(data: dict[str, Any], where: str, base: Path, instruments: InstrumentTable,
            seed: int, held_by: date | None) -> tuple[Population, MarketSplit]:
    spec = MarketSpec.from_mapping(data, where)

    def at(name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else base / p

    frame = read_bars(at(spec.bars))
    symbols = {inst.symbol: inst for inst in instruments}
    names = []
    day = frame["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    closes, volumes = frame["close"].to_numpy(float), frame["volume"].to_numpy(float)
    bounds = np.flatnonzero(frame["code"].to_numpy()[1:] != frame["code"].to_numpy()[:-1]) + 1
    for rows in np.split(np.arange(len(frame)), bounds):
        if not len(rows):
            continue
        code = str(frame["code"].iat[rows[0]])
        d = day[rows]
        close = closes[rows]
        last = int(np.searchsorted(d, spec.as_of, side="right")) - 1
        inst = symbols.get(code)
        market = (inst.market if inst is not None and inst.market else "") or \
            (str(frame["market"].iat[rows[last]]) if last >= 0 else "")
        cap = float("nan")
        if last >= 0:
            r = rows[last]
            shares = int(frame["shares"].iat[r]) or (inst.shares_outstanding if inst else 0)
            if int(frame["market_cap"].iat[r]) > 0:
                cap = float(frame["market_cap"].iat[r])
            elif shares > 0:
                cap = float(shares) * close[last]
        names.append(MarketName(
            code=code, market=market, instrument=inst, market_cap=cap,
            bars=DailyBars(d, close, volumes[rows],
                           source=f"{at(spec.bars)} ({code})")))
    balances = _market_balances(spec, at)
    ratios = spec.credit_ratio
    if isinstance(ratios, str):
        ratios = _read_ratios(at(ratios))
    return synthesize_market(spec, names, balances, ratios or {}, seed, held_by=held_by)


def _market_balances(spec: MarketSpec, at: Callable[[str], Path]) -> dict[str, tuple[int, str]]:
    """Each market's credit balance on ``as_of``: the number given, else the credit file's
    row of that day (a market the file has no column for is left out: the split names it
    if it has names)."""
    out = {m: (won, "given in the spec") for m, won in spec.credit_balance_krw.items()}
    if spec.credit_file is None:
        return out
    path = at(spec.credit_file)
    table = read_credit_balance(path)
    days = table["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    hit = np.flatnonzero(days == spec.as_of)
    as_of = str(np.datetime64(spec.as_of, "D"))
    if not len(hit):
        before = days[days < spec.as_of]
        after = days[days > spec.as_of]
        near = ", ".join(str(np.datetime64(int(x), "D")) for x in
                         ([before.max()] if len(before) else []) +
                         ([after.min()] if len(after) else []))
        raise spec.error("as_of", f"{path} has no balance on {as_of} (nearest: "
                         f"{near or 'none'}); the balances are taken on as_of")
    row = table.iloc[int(hit[0])]
    for m in ("KOSPI", "KOSDAQ"):
        if m not in out and int(row[m.lower()]) >= 0:
            out[m] = (int(row[m.lower()]), f"{path} on {as_of}")
    return out


def _read_ratios(path: Path) -> dict[str, float]:
    """A CSV of credit ratios: columns ``code, credit_ratio`` (a fraction in (0, 1)); a bad
    row is a TapeError naming the file, the row and the field."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such credit-ratio file")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        for name in ("code", "credit_ratio"):
            if name not in header:
                raise TapeError(path, 1, name, "missing column; expected code, credit_ratio")
        ic, ir = header.index("code"), header.index("credit_ratio")
        out: dict[str, float] = {}
        for row in reader:
            if not row or not any(x.strip() for x in row):
                continue
            line = reader.line_num
            code = row[ic].strip() if len(row) > ic else ""
            if not code:
                raise TapeError(path, line, "code", "empty")
            if code in out:
                raise TapeError(path, line, "code", f"{code} is on an earlier row too")
            text = row[ir].strip() if len(row) > ir else ""
            try:
                value = float(text)
            except ValueError:
                raise TapeError(path, line, "credit_ratio",
                                f"{text!r} is not a number") from None
            if not 0 < value < 1:
                raise TapeError(path, line, "credit_ratio", f"{text} is not a fraction in "
                                "(0, 1) (credit balance / market cap: 0.012 for 1.2%)")
            out[code] = value
    return out


def _day_number(day: date) -> int:
    """A date as days since 1970-01-01."""
    return int(np.datetime64(day, "D").astype(np.int64))
