"""Daily bars (일봉) in the layouts Korean users hold: pykrx (Korean headers, by date or by
ticker), FinanceDataReader and Yahoo (docs/reference/krx-data-formats.md: 5). They are the
calibration data of a synthetic population (docs/brokers.md: synthesised from daily bars)
and each instrument's reference for a day: its base price for the daily limits, market,
shares outstanding and the day's real OHLCV (docs/data-formats.md: daily bars).

:func:`read_bars` reads any of the layouts into one table, one row per (code, date), with
exact integer won; :func:`read_daily_bars` is the one-series view a population is drawn
from.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import date as Date
from pathlib import Path

import numpy as np
import pandas as pd

from brokers.synthetic_population import DailyBars
from replay.loaders.text import MISSING, decode_text
from replay.quality import TapeError
from replay.tape import MAX_UNITS, InstrumentTable
from venues.krx.calendar import sessions
from venues.krx.ticks import REGIME_2023, tick_table

#: The columns of :func:`read_bars`'s table, in order.
COLUMNS = ("code", "date", "open", "high", "low", "close", "volume", "value", "change",
           "market_cap", "shares", "market")

#: Header (lower-cased) -> our field: pykrx (Korean), FinanceDataReader and Yahoo (English).
#: ``change_pct`` is pykrx's 등락률 in percent, ``change`` FinanceDataReader's fraction.
HEADERS = {
    "날짜": "date", "일자": "date", "date": "date",
    "code": "code", "티커": "code", "종목코드": "code", "ticker": "code", "symbol": "code",
    "시가": "open", "open": "open",
    "고가": "high", "high": "high",
    "저가": "low", "low": "low",
    "종가": "close", "close": "close",
    "거래량": "volume", "volume": "volume",
    "거래대금": "value", "amount": "value", "value": "value",
    "등락률": "change_pct", "change": "change",
    "시가총액": "market_cap", "marcap": "market_cap", "market_cap": "market_cap",
    "상장주식수": "shares", "shares": "shares",
    "market": "market", "시장": "market", "시장구분": "market",
}
#: Columns the layouts carry that the table has no use for: Yahoo's dividend-adjusted close,
#: names, FinanceDataReader's won change and its sign code, a pandas index without a name.
IGNORED = frozenset({"adj close", "name", "종목명", "updown", "comp", "changes", "대비", ""})
REQUIRED = ("open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")

#: Market names as the layouts write them -> KOSPI / KOSDAQ.
MARKETS = {"kospi": "KOSPI", "유가증권": "KOSPI", "유가": "KOSPI", "stk": "KOSPI",
           "kosdaq": "KOSDAQ", "코스닥": "KOSDAQ", "ksq": "KOSDAQ",
           "kosdaq global": "KOSDAQ"}
#: Yahoo's suffixes of Korean tickers (005930.KS, 035720.KQ).
YAHOO_SUFFIX = {".KS": "KOSPI", ".KQ": "KOSDAQ"}

_CODE = re.compile(r"[0-9A-Z]{6}", re.ASCII)
_ISIN = re.compile(r"KR[0-9A-Z]{9}[0-9]", re.ASCII)
_WHOLE = r"[+-]?[0-9]+(?:\.0*)?"
_NUMBER = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
_FLOAT = r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
# A day as the layouts write it: 2024-08-05, 20240805, 2024/08/05, 2024.08.05, optionally
# at midnight as pandas and yfinance write a datetime index (2024-08-05 00:00:00+09:00).
_DAY = re.compile(r"(\d{4})[-/.]?(\d{2})[-/.]?(\d{2})"
                  r"(?:[T ]00:00(?::00(?:\.0+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?", re.ASCII)
_BEFORE_2023 = Date(2023, 1, 24)  # a day of the tick table in force before 2023-01-25
_DAY_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)", re.ASCII)


def isin_check_digit(body: str) -> int:
    """The ISIN check digit of the first 11 characters (ISO 6166: letters to 10-35, then
    the Luhn sum with the rightmost digit doubled)."""
    digits = "".join(str(int(c, 36)) for c in body.upper())
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10


def code_to_isin(code: str) -> str:
    """The ISIN of an ordinary share's 6-digit code: ``KR7`` + code + ``00`` + check digit
    (KR7005930003 for 005930). Other share classes (preferred shares, codes not ending in
    0: 005935 is KR7005931001) have no ISIN derivable from the code alone: ``""``."""
    if not (len(code) == 6 and code.isdigit() and code.endswith("0")):
        return ""
    body = f"KR7{code}00"
    return body + str(isin_check_digit(body))


def parse_code(text: str) -> tuple[str, str]:
    """``(code, market)`` of a ticker as the layouts write it: a 6-character KRX code
    (005930), a Yahoo ticker (005930.KS: KOSPI, 035720.KQ: KOSDAQ) or an ordinary share's
    ISIN (KR7005930003, check digit verified). Raises ValueError saying why otherwise."""
    s = text.strip().upper()
    market = ""
    for suffix, name in YAHOO_SUFFIX.items():
        if s.endswith(suffix):
            s, market = s[: -len(suffix)], name
    if _ISIN.fullmatch(s):
        check = isin_check_digit(s[:11])
        if int(s[11]) != check:
            raise ValueError(f"ISIN {text.strip()!r} has check digit {s[11]}, expected {check}")
        if not (s.startswith("KR7") and s[8] == "0" and s[9:11] == "00"):
            raise ValueError(f"ISIN {text.strip()!r} is not an ordinary share's (KR7 + code "
                             "+ 00): give its 6-digit code")
        return s[3:9], market
    if _CODE.fullmatch(s):
        return s, market
    hint = " (leading zeros dropped, as Excel does?)" if s.isdigit() and len(s) < 6 else ""
    raise ValueError(f"{text.strip()!r} is not a 6-character KRX code or an ISIN{hint}")


def _code_from_name(path: Path) -> tuple[str, str] | None:
    """The code a file's name gives (005930.csv, 005930.KS.csv, KR7005930003.csv), if any."""
    stem = path.name
    for ext in (".csv", ".txt"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    try:
        return parse_code(stem)
    except ValueError:
        return None


def _day_from_name(path: Path) -> Date | None:
    """The one date a file's name gives (20240805.csv, ohlcv-2024-08-05.csv), if any."""
    found = _DAY_IN_NAME.findall(path.name)
    if len(found) != 1:
        return None
    try:
        return Date(*map(int, found[0]))
    except ValueError:
        return None


def csv_after_comments(text: str):
    """``(skipped, header, reader)`` of CSV ``text`` whose first lines may be ``#`` comments
    or blank (the shipped files' source lines): how many lines were skipped, the header row
    (None if there is none) and a csv reader over the rows after it."""
    lines = text.splitlines()
    skip = 0
    while skip < len(lines) and (lines[skip].lstrip().startswith("#")
                                 or not lines[skip].strip()):
        skip += 1
    reader = csv.reader(io.StringIO("\n".join(lines[skip:])))
    return skip, next(reader, None), reader


def csv_fields(path: Path, reader, skip: int, width: int, picked) -> tuple[list, list]:
    """The ``picked`` fields (stripped) of every non-blank row of ``reader`` (after
    :func:`csv_after_comments`), and each row's line as a user counts it; a row whose width
    is not the header's is an error naming the file and the line."""
    rows, numbers = [], []
    picked = list(picked)
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        line = skip + reader.line_num
        if len(row) != width:
            raise TapeError(path, line, None, f"{len(row)} fields, the header has {width}")
        rows.append([row[i].strip() for i in picked])
        numbers.append(line)
    return rows, numbers


class _Columns:
    """A bar file's data rows as string columns, with each row's line (as a user counts
    them: the skipped ``#`` lines and the header included) and the header's own names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = decode_text(path.read_bytes(), path)
        skip, header, reader = csv_after_comments(text)
        if not header:
            raise TapeError(path, None, None, "no header: expected daily bars (pykrx, "
                            "FinanceDataReader or Yahoo layout)")
        self.header_line = skip + 1
        self.names: dict[str, str] = {}  # field -> the file's column name
        positions: dict[str, int] = {}
        for i, raw in enumerate(header):
            key = raw.strip().lower()
            ours = HEADERS.get(key)
            if ours is None:
                if key in IGNORED:
                    continue
                raise TapeError(path, self.header_line, raw.strip(),
                                "unknown column; daily bars have " + ", ".join(
                                    h for h in HEADERS if not h.isascii()) + " (pykrx) or "
                                "Date, Open, High, Low, Close, Volume, Change, Amount, MarCap, "
                                "Shares (FinanceDataReader, Yahoo), and optionally a code and "
                                "a market column")
            same = [f for f in positions if f == ours or {f, ours} == {"change", "change_pct"}]
            if same:
                raise TapeError(path, self.header_line, raw.strip(), "a second column for "
                                f"the same field as {self.names[same[0]]!r}")
            positions[ours] = i
            self.names[ours] = raw.strip()
        for need in REQUIRED:
            if need not in positions:
                raise TapeError(path, None, need.capitalize(),
                                "missing column; daily bars need Open, High, Low, Close, "
                                "Volume (or 시가, 고가, 저가, 종가, 거래량)")
        rows, numbers = csv_fields(path, reader, skip, len(header), positions.values())
        if not rows:
            raise TapeError(path, None, None, "no bars: the file has no data rows")
        table = np.array(rows, dtype=object).reshape(len(rows), len(positions))
        self.columns = {f: table[:, j] for j, f in enumerate(positions)}
        self.lines = np.array(numbers, np.int64)

    def fail(self, mask: np.ndarray, field: str, reason: str) -> None:
        """Raise naming the first row where ``mask`` holds, ``reason`` formatted with its
        value."""
        hit = np.flatnonzero(mask)
        if len(hit):
            r = int(hit[0])
            raise TapeError(self.path, int(self.lines[r]), self.names.get(field, field),
                            reason.format(value=self.columns[field][r]))

    def missing(self, field: str) -> np.ndarray:
        return pd.Series(self.columns[field]).str.lower().isin(MISSING).to_numpy()

    def whole(self, field: str, unit: str, *, optional: bool = False) -> np.ndarray:
        """A column of whole numbers: ASCII digits, a zero fraction allowed (yfinance writes
        81600.0), below 2**53; an empty value is -1 where the column is ``optional``."""
        text = pd.Series(self.columns[field], dtype=object)
        absent = self.missing(field)
        if not optional:
            self.fail(absent, field, "missing value {value!r}")
        given = ~absent
        whole = text.str.fullmatch(_WHOLE).fillna(False).to_numpy(bool)
        number = text.str.fullmatch(_NUMBER).fillna(False).to_numpy(bool)
        self.fail(given & number & ~whole, field,
                  f"{{value!r}} is not a whole number of {unit} (a fraction is refused; a "
                  "zero fraction such as 81600.0 is accepted)")
        self.fail(given & ~number, field, "{value!r} is not a number")
        self.fail(given & text.str.startswith("-").fillna(False).to_numpy(bool), field,
                  "{value!r} cannot be negative")
        digits = text.where(given, "-1").str.replace(r"\.0*$", "", regex=True)
        self.fail(given & (digits.str.lstrip("+-").str.lstrip("0").str.len() > 16).to_numpy(),
                  field, "{value!r} is out of bounds: it must be below 2**53")
        out = digits.astype(np.int64).to_numpy()
        self.fail(given & (np.abs(out) >= MAX_UNITS), field,
                  "{value!r} is out of bounds: it must be below 2**53")
        return np.where(given, out, -1)

    def fraction(self, field: str, scale: float) -> np.ndarray:
        """A float column (a return), divided by ``scale``; empty values are NaN."""
        text = pd.Series(self.columns[field], dtype=object)
        given = ~self.missing(field)
        ok = text.str.fullmatch(_FLOAT).fillna(False).to_numpy(bool)
        self.fail(given & ~ok, field, "{value!r} is not a number")
        values = pd.to_numeric(text.where(given, "nan"), errors="coerce").to_numpy(float)
        return values / scale


def _days(cols: _Columns) -> np.ndarray:
    """The date column as datetime64[ns] (midnight of the trading day, no time zone)."""
    text = pd.Series(cols.columns["date"], dtype=object)
    parts = text.str.extract(_DAY.pattern)
    shape = text.str.fullmatch(_DAY).fillna(False).to_numpy(bool)
    cols.fail(~shape, "date", "{value!r} is not a date (YYYY-MM-DD or YYYYMMDD, at "
              "midnight if a time is given)")
    days = pd.to_datetime(parts[0] + parts[1] + parts[2], format="%Y%m%d", errors="coerce")
    cols.fail(days.isna().to_numpy(), "date", "{value!r} is not a calendar date")
    year = days.dt.year.to_numpy()
    cols.fail((year < 1990) | (year >= 2100), "date", "{value!r} is outside 1990-2100")
    return days.to_numpy().astype("datetime64[ns]")


def _read_file(path: Path, code: str | None, day: Date | None,
               need_code: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """One file's bars (unsorted, file order) and each row's line."""
    cols = _Columns(path)
    n = len(cols.lines)
    # the code: a code column (``code`` then filters it), else code=, else the file's name
    market_hint = np.full(n, "", dtype=object)
    if "code" in cols.columns:
        written, index = np.unique(cols.columns["code"].astype(str), return_inverse=True)
        parsed, bad = [], []
        for k, text in enumerate(written):
            try:
                parsed.append(parse_code(text))
            except ValueError as exc:
                bad.append((int(np.flatnonzero(index == k)[0]), str(exc)))
        if bad:  # the first in file order
            r, why = min(bad)
            raise TapeError(path, int(cols.lines[r]), cols.names["code"], why)
        codes = np.array([c for c, _ in parsed], dtype=object)[index]
        market_hint = np.array([m for _, m in parsed], dtype=object)[index]
    else:
        given = parse_code(code) if code is not None else _code_from_name(path)
        if given is None and need_code:
            raise TapeError(path, None, "code", "no code column (code, 티커), no code= and no "
                            "code in the file's name (005930.csv, 005930.KS.csv)")
        the_code, hint = given if given is not None else ("", "")
        codes = np.full(n, the_code, dtype=object)
        market_hint[:] = hint
    # the date: a date column, else date= (pykrx by ticker is one day), else the file's name
    if "date" in cols.columns:
        days = _days(cols)
    else:
        day = day if day is not None else _day_from_name(path)
        if day is None:
            raise TapeError(path, None, "date", "no date column (날짜, Date), no date= and "
                            "no single date in the file's name (20240805.csv)")
        days = np.full(n, np.datetime64(pd.Timestamp(day), "ns"))
    prices = {f: cols.whole(f, "won") for f in PRICES}
    volume = cols.whole("volume", "shares")
    cols.fail(prices["close"] == 0, "close", "{value!r}: the close must be a price > 0")
    # a day without trades (거래정지): pykrx and FinanceDataReader write 0 for open, high
    # and low, the standing price as the close and volume 0; kept as such
    idle = prices["open"] == 0
    cols.fail(idle & (volume > 0), "open", "{value!r}: a zero open (no trade) with a "
              "volume > 0")
    for f in ("high", "low"):
        cols.fail((prices[f] == 0) != idle, f, "{value!r}: zero where the open is not, or "
                  "not zero where the open is (a day without trades has open = high = low "
                  "= 0)")
    value = cols.whole("value", "won", optional=True) if "value" in cols.columns \
        else np.full(n, -1, np.int64)
    cap = cols.whole("market_cap", "won", optional=True) if "market_cap" in cols.columns \
        else np.full(n, -1, np.int64)
    if "shares" in cols.columns:
        shares = cols.whole("shares", "shares", optional=True)
        shares = np.where(shares < 0, 0, shares)
    else:
        # 시가총액 is the close times the listed shares: exact when it divides
        close = prices["close"]
        exact = (cap > 0) & (cap % close == 0)
        shares = np.where(exact, cap // np.where(exact, close, 1), 0)
    if "change_pct" in cols.columns:
        change = cols.fraction("change_pct", 100.0)
    elif "change" in cols.columns:
        change = cols.fraction("change", 1.0)
    else:
        change = np.full(n, np.nan)
    market = market_hint.copy()
    if "market" in cols.columns:
        for r, text in enumerate(cols.columns["market"]):
            name = MARKETS.get(text.strip().lower(), None) if text.strip() else ""
            if name is None:
                raise TapeError(path, int(cols.lines[r]), cols.names["market"],
                                f"{text!r} is not a market; expected KOSPI or KOSDAQ (유가증권, "
                                "코스닥)")
            if market[r] and name and market[r] != name:
                raise TapeError(path, int(cols.lines[r]), cols.names["market"],
                                f"{text!r}, but the code's suffix says {market[r]}")
            market[r] = name or market[r]
    frame = pd.DataFrame({
        "code": codes.astype(str), "date": days,
        **{f: prices[f].astype(np.int64) for f in PRICES},
        "volume": volume.astype(np.int64), "value": value.astype(np.int64),
        "change": change.astype(np.float64), "market_cap": cap.astype(np.int64),
        "shares": shares.astype(np.int64), "market": market.astype(str)})
    _check_range(frame, cols)
    lines = cols.lines
    if code is not None and "code" in cols.columns:
        wanted = parse_code(code)[0]
        keep = frame["code"].to_numpy() == wanted
        if not keep.any():
            raise TapeError(path, None, cols.names["code"], f"no bars of code {wanted}")
        frame, lines = frame[keep].reset_index(drop=True), lines[keep]
    _check_order(frame, lines, path, cols.names.get("date", "date"))
    return frame, lines


def _check_range(frame: pd.DataFrame, cols: _Columns) -> None:
    """The high is at least the open and the close, the low at most. A back-adjusted series
    rounds each price on its own, so in a row off the tick grid a high (low) short of the
    open or close by less than one tick is the rounding's and kept as written (shipped
    FinanceDataReader 006740 2020-03-20: high 1111, close 1112); anywhere else it is an
    error."""
    traded = ~no_trade(frame).to_numpy()
    adjusted = off_grid(frame).to_numpy()
    o, h, lo, c = (frame[f].to_numpy() for f in PRICES)
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    slack_top = np.where(adjusted, tick_of(frame, top), 0)
    slack_bottom = np.where(adjusted, tick_of(frame, bottom), 0)
    cols.fail(traded & (h < top) & (top - h >= np.maximum(slack_top, 1)), "high",
              "{value!r} is below the open or the close")
    cols.fail(traded & (lo > bottom) & (lo - bottom >= np.maximum(slack_bottom, 1)), "low",
              "{value!r} is above the open or the close")


def _check_order(frame: pd.DataFrame, lines: np.ndarray, path: Path, date_name: str) -> None:
    """Dates increase within each code, in file order: a repeated (code, date) or a date
    that goes back is an error naming the row and the earlier row."""
    codes = frame["code"].to_numpy()
    days = frame["date"].to_numpy()
    order = np.lexsort((np.arange(len(frame)), codes))  # by code, file order within
    same = codes[order][1:] == codes[order][:-1]
    step = days[order][1:] - days[order][:-1]
    bad = np.flatnonzero(same & (step <= np.timedelta64(0, "ns")))
    if len(bad):
        i, prev = order[bad[0] + 1], order[bad[0]]
        what = "repeats the date of" if days[i] == days[prev] else "does not follow the date of"
        raise TapeError(path, int(lines[i]), date_name,
                        f"{str(days[i])[:10]} of code {codes[i]} {what} row {int(lines[prev])}"
                        "; bars must be in increasing date order, one per code and day")


def read_bars(paths: str | Path | Sequence[str | Path], *, code: str | None = None,
              date: str | Date | None = None) -> pd.DataFrame:
    """Daily bars of one or more files, one row per (code, date), sorted by code then date,
    with the columns :data:`COLUMNS` (docs/data-formats.md: daily bars).

    ``code``: the code of a file without a code column (else its name gives it: 005930.csv,
    005930.KS.csv, KR7005930003.csv); for a file with one, only that code's rows are kept.
    ``date``: the day of a pykrx by-ticker file without a 날짜 column (else its name gives
    it: 20240805.csv). Prices are whole won (int64), ``value`` and ``market_cap`` -1 and
    ``change`` NaN where not given, ``shares`` 0 where not given (from a Shares column, else
    ``market_cap / close`` when that divides exactly), ``market`` "" where not known. A day
    without trades keeps pykrx's open = high = low = 0 (:func:`no_trade`); prices off the
    KRX tick grid (back-adjusted series) are kept and flagged by :func:`off_grid`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    day = None
    if date is not None:
        try:
            day = pd.Timestamp(date).date()
        except ValueError:
            raise ValueError(f"date {date!r} is not a date YYYY-MM-DD") from None
    frames, where = [], []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such daily-bar file")
        frame, lines = _read_file(p, code, day, need_code=True)
        frames.append(frame)
        where.extend((str(p), int(line)) for line in lines)
    if not frames:
        raise ValueError("read_bars: no files given")
    bars = pd.concat(frames, ignore_index=True)
    dup = bars.duplicated(["code", "date"], keep=False).to_numpy()
    if dup.any():
        hit = np.flatnonzero(dup)
        first, again = hit[0], next(i for i in hit[1:] if
                                   bars["code"].iat[i] == bars["code"].iat[hit[0]]
                                   and bars["date"].iat[i] == bars["date"].iat[hit[0]])
        raise TapeError(where[again][0], where[again][1], "date",
                        f"{str(bars['date'].iat[again])[:10]} of code {bars['code'].iat[again]}"
                        f" is also in {where[first][0]}, row {where[first][1]}")
    bars = bars.sort_values(["code", "date"], kind="stable").reset_index(drop=True)
    bars.attrs["source"] = ", ".join(str(p) for p in paths)
    return bars


def no_trade(bars: pd.DataFrame) -> pd.Series:
    """Rows of days without a trade (거래정지: open = high = low = 0, volume 0)."""
    return (bars["open"] == 0) & (bars["volume"] == 0)


def tick_of(bars: pd.DataFrame, prices: np.ndarray) -> np.ndarray:
    """The KRX stock tick (docs/reference/krx.md: tick size) at ``prices`` (one per row of
    ``bars``) on each row's day. Before 2023-01-25 a row of unknown market takes the KOSDAQ
    table: its grid holds KOSPI's, so a price is off it only when it is off every market's."""
    days = bars["date"].to_numpy()
    markets = bars["market"].to_numpy()
    new = days >= np.datetime64(REGIME_2023, "ns")
    p = np.asarray(prices, np.int64)
    out = np.ones(len(p), np.int64)
    for rows, on, market in ((new, REGIME_2023, "KOSPI"),
                             (~new & (markets == "KOSPI"), _BEFORE_2023, "KOSPI"),
                             (~new & (markets != "KOSPI"), _BEFORE_2023, "KOSDAQ")):
        if rows.any():
            bounds, ticks = tick_table(on, market=market)
            out[rows] = ticks[np.maximum(np.searchsorted(bounds, p[rows], side="right") - 1,
                                         0)]
    return out


def off_grid(bars: pd.DataFrame, columns: Sequence[str] = PRICES) -> pd.Series:
    """Rows with a price off the KRX stock tick grid of its day (:func:`tick_of`):
    back-adjusted series (pykrx's default, Naver's) scale real prices by a factor, so e.g.
    068270's 2024-08 bars are not prices an order could have had. Days without a trade are
    not flagged."""
    flagged = np.zeros(len(bars), bool)
    for c in columns:
        p = bars[c].to_numpy()
        flagged |= (p < 1) | (p % tick_of(bars, p) != 0)
    return pd.Series(flagged & ~no_trade(bars).to_numpy(), index=bars.index, name="off_grid")


#: The columns of :func:`instrument_rows` (``cascade data instruments``), in order.
INSTRUMENT_COLUMNS = ("code", "isin", "market", "date", "prev_close", "prev_close_from",
                      "open", "high", "low", "close", "volume", "shares_outstanding",
                      "off_grid")


def instrument_rows(bars: pd.DataFrame) -> pd.DataFrame:
    """Each bar as an instrument's reference for its day (:data:`INSTRUMENT_COLUMNS`):
    the ISIN (:func:`code_to_isin`), and the base price of the day's limits
    (docs/reference/krx.md: daily limits), ``prev_close``: the close of the code's previous
    row when that row is the previous XKRX session (``prev_close_from`` = ``bars``); else
    (the first day, a gap) ``close / (1 + change)`` rounded to the nearest tick (``change``),
    else empty (``""``: no change given). ``off_grid`` marks back-adjusted prices
    (:func:`off_grid`)."""
    codes = bars["code"].to_numpy()
    days = bars["date"].to_numpy().astype("datetime64[D]")
    close = bars["close"].to_numpy()
    same = np.r_[False, codes[1:] == codes[:-1]]
    cal = sessions()
    before = cal[np.maximum(np.searchsorted(cal, days) - 1, 0)]
    adjacent = same & (np.r_[np.datetime64("NaT"), days[:-1]] == before)
    prev = np.r_[0, close[:-1]]
    change = bars["change"].to_numpy()
    usable = ~adjacent & np.isfinite(change) & (change > -1)
    raw = np.where(usable, close / np.where(usable, 1 + change, 1), 0.0)
    tick = tick_of(bars, np.maximum(np.rint(raw).astype(np.int64), 1))
    derived = np.rint(raw / tick).astype(np.int64) * tick
    prev_close = pd.array(np.where(adjacent, prev, derived), dtype="Int64")
    prev_close[~adjacent & ~usable] = pd.NA
    source = np.where(adjacent, "bars", np.where(usable, "change", ""))
    return pd.DataFrame({
        "code": codes, "isin": [code_to_isin(c) for c in codes], "market": bars["market"],
        "date": bars["date"], "prev_close": prev_close, "prev_close_from": source,
        "open": bars["open"], "high": bars["high"], "low": bars["low"],
        "close": bars["close"], "volume": bars["volume"], "shares_outstanding": bars["shares"],
        "off_grid": off_grid(bars).to_numpy()}, columns=list(INSTRUMENT_COLUMNS))


def reference_instruments(bars: pd.DataFrame, day: str | Date,
                          table: InstrumentTable) -> InstrumentTable:
    """``table`` with each instrument's reference for ``day`` from ``bars`` (read_bars):
    ``prev_close_units`` (the base price, :func:`instrument_rows`), ``market`` and
    ``shares_outstanding`` where the bars give them, and the day's bar as ``ref_*``
    (docs/data-formats.md: daily bars). The symbol is the code (or ISIN). An instrument with
    no bars, bars not covering ``day``, a day without trades, prices off the KRX tick grid
    (back-adjusted bars) or no base price are errors naming the code."""
    day = pd.Timestamp(day).normalize()
    source = bars.attrs.get("source", "the daily bars")
    rows = instrument_rows(bars)
    out = []
    for inst in table:
        try:
            code = parse_code(inst.symbol)[0]
        except ValueError as exc:
            raise ValueError(f"instrument {inst.symbol!r}: {exc}; daily bars are keyed by KRX "
                             "code") from None
        mine = rows[rows["code"] == code]
        if mine.empty:
            raise ValueError(f"{source}: no bars of {code} (instrument {inst.symbol} of the "
                             "tape)")
        hit = mine[mine["date"] == day]
        if hit.empty:
            raise ValueError(f"{source}: the bars of {code} do not cover {day:%Y-%m-%d}, the "
                             f"tape's day (they run {mine['date'].min():%Y-%m-%d} to "
                             f"{mine['date'].max():%Y-%m-%d})")
        r = hit.iloc[0]
        where = f"{source}: {code} on {day:%Y-%m-%d}"
        if r["volume"] == 0 and r["open"] == 0:
            raise ValueError(f"{where} did not trade (open, high, low 0), yet the tape has it")
        if r["off_grid"]:
            raise ValueError(f"{where}: prices off the KRX tick grid (back-adjusted bars); "
                             "use unadjusted bars (pykrx adjusted=False)")
        if pd.isna(r["prev_close"]):
            raise ValueError(f"{where}: no base price: the bars hold no previous session and "
                             "no change (등락률, Change) to derive it from")
        base = int(r["prev_close"])
        if base % int(tick_of(hit, np.array([base]))[0]) != 0:
            raise ValueError(f"{where}: the previous close {base} is off the KRX tick grid "
                             "(back-adjusted bars); use unadjusted bars")
        scale, lot = 10**inst.price_decimals, 10**inst.size_decimals
        if r["market"] and inst.market and r["market"] != inst.market:
            raise ValueError(f"{where}: market {r['market']} in the bars, {inst.market} in "
                             "the tape")
        out.append(replace(
            inst, prev_close_units=base * scale, market=r["market"] or inst.market,
            shares_outstanding=int(r["shares_outstanding"]) or inst.shares_outstanding,
            ref_date=f"{day:%Y-%m-%d}", ref_open_units=int(r["open"]) * scale,
            ref_high_units=int(r["high"]) * scale, ref_low_units=int(r["low"]) * scale,
            ref_close_units=int(r["close"]) * scale, ref_volume=int(r["volume"]) * lot))
    return InstrumentTable(out)


def read_daily_bars(path: str | Path, code: str | None = None) -> DailyBars:
    """One series of daily bars (:func:`read_bars`'s layouts) as a population is drawn from
    it: date, close and volume. A file of one name is that name's bars, whatever ``code``
    says (a synthetic series needs no code); from a file of several codes, ``code`` (a
    ticker or ISIN, e.g. the instrument's symbol) picks one, and without it, or when it is
    not in the file, this is an error: a population is calibrated to one name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such daily-bar file")
    frame, lines = _read_file(path, None, None, need_code=False)
    codes = frame["code"].unique()
    if len(codes) > 1:
        wanted = None
        if code is not None:
            try:
                wanted = parse_code(code)[0]
            except ValueError:
                wanted = None
        if wanted is None or wanted not in codes:
            which = f"{code} is not one of them" if code is not None else "give the code"
            raise TapeError(path, None, "code", f"bars of {len(codes)} codes "
                            f"({', '.join(codes[:3])}, ...): {which}; a population is "
                            "calibrated to one name's bars")
        frame = frame[frame["code"] == wanted]
    days = frame["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    return DailyBars(days, frame["close"].to_numpy(float), frame["volume"].to_numpy(float),
                     source=str(path) if len(codes) == 1 else f"{path} ({frame['code'].iat[0]})")
