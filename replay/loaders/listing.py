"""Listings (상장종목 현황): each KRX code's market and shares outstanding (상장주식수), the
weights of a capitalisation-weighted index (shares x price) and its split by market, which
daily bars do not carry (docs/data-formats.md: listings).

:func:`read_listing` reads the layouts Korean users hold, by their headers:

- FinanceDataReader ``fdr.StockListing('KRX')`` saved as CSV: Code, ISU_CD, Name, Market,
  Dept, Close, ..., Marcap, Stocks, MarketId;
- the KRX Data Marketplace download [12001] 전종목 시세: 종목코드, 종목명, 시장구분, 소속부,
  종가, ..., 시가총액, 상장주식수 (CP949);
- the FinanceData/marcap dataset (Code, Name, Market, ..., Marcap, Stocks, MarketId, Rank,
  Date), one row per code and day: ``on`` picks the day;
- pykrx ``get_market_cap(date, market=...)``: 티커, 시가총액, 거래량, 거래대금, 상장주식수,
  with no market column (``market=`` gives it).

:func:`with_listing` fills daily bars' ``market`` and ``shares`` columns from a listing.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from datetime import date as Date
from pathlib import Path

import numpy as np
import pandas as pd

from replay.loaders.daily_bars import csv_after_comments, csv_fields, parse_code
from replay.loaders.text import MISSING, decode_text
from replay.quality import TapeError
from replay.tape import MAX_UNITS

#: The columns of :func:`read_listing`'s table, in order; ``name``, ``marcap`` and ``date``
#: only where the file has them.
COLUMNS = ("code", "market", "shares", "name", "marcap", "date")

#: Header (lower-cased, spaces dropped) -> our field, over the layouts above and the KRX
#: JSON names (ISU_SRT_CD ...) that FinanceDataReader renames.
HEADERS = {
    "code": "code", "symbol": "code", "ticker": "code", "티커": "code", "종목코드": "code",
    "단축코드": "code", "isu_srt_cd": "code",
    "isu_cd": "isin", "isin": "isin", "표준코드": "isin",
    "name": "name", "종목명": "name", "isu_abbrv": "name", "한글종목약명": "name",
    "회사명": "name",
    "market": "market", "시장구분": "market", "시장": "market", "mkt_nm": "market",
    "marketid": "market_id", "mkt_id": "market_id",
    "stocks": "shares", "shares": "shares", "상장주식수": "shares", "list_shrs": "shares",
    "marcap": "marcap", "market_cap": "marcap", "marketcap": "marcap", "시가총액": "marcap",
    "mktcap": "marcap",
    "close": "close", "종가": "close", "tdd_clsprc": "close",
    "date": "date", "날짜": "date", "일자": "date", "기준일": "date", "bas_dd": "date",
}
#: Columns the layouts carry that a listing has no use for (prices and volumes of the day,
#: the board, ranks, a pandas index written without a name).
IGNORED = frozenset({
    "", "unnamed:0", "index", "dept", "소속부", "sect_tp_nm", "changecode", "changes",
    "chagesratio", "changesratio", "open", "high", "low", "volume", "amount", "rank",
    "대비", "등락률", "시가", "고가", "저가", "거래량", "거래대금", "fluc_tp_cd",
    "cmpprevdd_prc", "fluc_rt", "tdd_opnprc", "tdd_hgprc", "tdd_lwprc", "acc_trdvol",
    "acc_trdval",
    # FinanceDataReader's descriptive listing (KRX-DESC) and KIND's 상장법인목록
    "sector", "industry", "listingdate", "settlemonth", "representative", "homepage",
    "region", "업종", "주요제품", "상장일", "결산월", "대표자명", "홈페이지", "지역"})

#: Market names as the layouts write them -> KOSPI / KOSDAQ / KONEX.
MARKETS = {
    "kospi": "KOSPI", "유가증권": "KOSPI", "유가": "KOSPI", "유가증권시장": "KOSPI",
    "코스피": "KOSPI", "stk": "KOSPI",
    "kosdaq": "KOSDAQ", "kosdaqglobal": "KOSDAQ", "코스닥": "KOSDAQ", "코스닥시장": "KOSDAQ",
    "코스닥글로벌": "KOSDAQ", "ksq": "KOSDAQ",
    "konex": "KONEX", "코넥스": "KONEX", "코넥스시장": "KONEX", "knx": "KONEX",
}

# a whole number as the layouts write it: 5969782550, 5,969,782,550, 5969782550.0
_WHOLE = re.compile(r"\+?(?:[0-9]+|[0-9]{1,3}(?:,[0-9]{3})+)(?:\.0*)?", re.ASCII)
_DAY = re.compile(r"(\d{4})[-/.]?(\d{2})[-/.]?(\d{2})(?:[T ]00:00(?::00(?:\.0+)?)?)?",
                  re.ASCII)
_LAYOUTS = ("FinanceDataReader StockListing (Code, Market, Stocks, Marcap ...), the KRX "
            "전종목 시세 download (종목코드, 시장구분, 상장주식수 ...), FinanceData/marcap "
            "(Code, Market, Stocks, Date ...) or pykrx get_market_cap (티커, 시가총액, "
            "상장주식수)")


def _key(header: str) -> str:
    return re.sub(r"\s+", "", header.strip().lstrip("\ufeff")).lower()


def _market_key(text: str) -> str:
    return re.sub(r"\s+", "", text.strip()).lower()


class _Rows:
    """A listing file's data rows as string columns, each row's position as a user counts it
    (a CSV's line, the ``#`` lines and the header included; a parquet file's row from 1) and
    the header's own names."""

    def __init__(self, path: Path) -> None:
        self.path = path
        name = path.name.lower()
        if name.endswith(".parquet"):
            self._from_parquet(path)
        else:
            data = path.read_bytes()
            if name.endswith(".gz"):
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError) as exc:
                    raise TapeError(path, None, None, f"not a gzip file: {exc}") from None
            self._from_text(decode_text(data, path))

    def _from_text(self, text: str) -> None:
        skip, header, reader = csv_after_comments(text)
        if not header:
            raise TapeError(self.path, None, None, f"no header: expected a listing ({_LAYOUTS})")
        positions = self._header(header, skip + 1)
        rows, numbers = csv_fields(self.path, reader, skip, len(header), positions.values())
        table = np.array(rows, dtype=object).reshape(len(rows), len(positions))
        self.columns = {f: table[:, j] for j, f in enumerate(positions)}
        self.lines = np.array(numbers, np.int64)

    def _from_parquet(self, path: Path) -> None:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several kinds for a file that is not one
            raise TapeError(path, None, None, f"not a parquet file: {exc}") from None
        if not isinstance(frame.index, pd.RangeIndex):
            frame = frame.reset_index()
        positions = self._header([str(c) for c in frame.columns], None)
        self.columns = {}
        for f, i in positions.items():
            col = frame.iloc[:, i]
            if pd.api.types.is_datetime64_any_dtype(col):
                text = col.dt.strftime("%Y-%m-%d")
            elif pd.api.types.is_float_dtype(col):
                text = col.map(lambda v: "" if pd.isna(v) else repr(float(v)))
            else:
                text = col.map(lambda v: "" if v is None or (isinstance(v, float) and
                                                              np.isnan(v)) else str(v))
            self.columns[f] = text.fillna("").astype(object).to_numpy()
        self.lines = np.arange(1, len(frame) + 1, dtype=np.int64)

    def _header(self, header: Sequence[str], line: int | None) -> dict[str, int]:
        self.names: dict[str, str] = {}
        positions: dict[str, int] = {}
        for i, raw in enumerate(header):
            key = _key(raw)
            ours = HEADERS.get(key)
            if ours is None:
                if key in IGNORED or key.startswith("unnamed:"):
                    continue
                raise TapeError(self.path, line, raw.strip(), f"unknown column; a listing is "
                                f"{_LAYOUTS}")
            if ours in positions:
                raise TapeError(self.path, line, raw.strip(), "a second column for the same "
                                f"field as {self.names[ours]!r}")
            positions[ours] = i
            self.names[ours] = raw.strip()
        if "code" not in positions and "isin" not in positions:
            raise TapeError(self.path, None, "Code", "missing column; a listing needs a code "
                            "(Code, 종목코드, 티커, or the ISIN: ISU_CD, 표준코드)")
        if "shares" not in positions and not {"marcap", "close"} <= set(positions):
            raise TapeError(self.path, None, "Stocks", "missing column; a listing needs the "
                            "shares outstanding (Stocks, 상장주식수) or the market cap and the "
                            "close (Marcap and Close, 시가총액 and 종가)")
        return positions

    def fail(self, r: int, field: str, reason: str) -> None:
        raise TapeError(self.path, int(self.lines[r]), self.names.get(field, field), reason)

    def missing(self, field: str) -> np.ndarray:
        return np.array([str(v).strip().lower() in MISSING for v in self.columns[field]], bool)

    def whole(self, field: str, what: str) -> np.ndarray:
        """A column of whole numbers (thousands separators and a zero fraction allowed),
        below 2**53; -1 where empty."""
        out = np.full(len(self.lines), -1, np.int64)
        for r, text in enumerate(self.columns[field]):
            s = str(text).strip()
            if s.lower() in MISSING:
                continue
            if not _WHOLE.fullmatch(s):
                why = "cannot be negative" if s.startswith("-") else f"is not a whole number " \
                    f"of {what}"
                self.fail(r, field, f"{s!r} {why}")
            digits = s.lstrip("+").split(".")[0].replace(",", "")
            if len(digits.lstrip("0")) > 16 or int(digits) >= MAX_UNITS:
                self.fail(r, field, f"{s!r} is out of bounds: it must be below 2**53")
            out[r] = int(digits)
        return out


def _codes(rows: _Rows) -> np.ndarray:
    """The 6-character code of each row: the code column, else the ISIN's."""
    field = "code" if "code" in rows.columns else "isin"
    out = np.empty(len(rows.lines), dtype=object)
    for r, text in enumerate(rows.columns[field]):
        if not str(text).strip():
            rows.fail(r, field, "missing value ''")
        try:
            out[r] = parse_code(str(text))[0]
        except ValueError as exc:
            rows.fail(r, field, str(exc))
    return out


def _markets(rows: _Rows, given: str | None) -> np.ndarray:
    """Each row's market from the Market/시장구분 column and the MarketId (STK, KSQ, KNX),
    which must agree, else ``given`` for a file with neither."""
    fields = [f for f in ("market", "market_id") if f in rows.columns]
    if not fields:
        if given is None:
            raise TapeError(rows.path, None, "Market", "missing column; a listing needs the "
                            "market (Market, 시장구분, MarketId); pykrx get_market_cap writes "
                            "none: give market= (--listing-market)")
        return np.full(len(rows.lines), given, dtype=object)
    out = np.full(len(rows.lines), "", dtype=object)
    for field in fields:
        for r, text in enumerate(rows.columns[field]):
            name = MARKETS.get(_market_key(str(text)))
            if name is None:
                rows.fail(r, field, f"{str(text).strip()!r} is not a market; expected KOSPI, "
                          "KOSDAQ or KONEX (유가증권, 코스닥, 코넥스; STK, KSQ, KNX)")
            if out[r] and out[r] != name:
                rows.fail(r, field, f"{str(text).strip()!r} is {name}, but "
                          f"{rows.names['market']!r} says {out[r]}")
            out[r] = name
    return out


def _days(rows: _Rows) -> np.ndarray:
    out = np.empty(len(rows.lines), dtype="datetime64[ns]")
    for r, text in enumerate(rows.columns["date"]):
        m = _DAY.fullmatch(str(text).strip())
        try:
            if m is None:
                raise ValueError
            out[r] = np.datetime64(pd.Timestamp(int(m[1]), int(m[2]), int(m[3])), "ns")
        except ValueError:
            rows.fail(r, "date", f"{str(text).strip()!r} is not a date (YYYY-MM-DD or "
                      "YYYYMMDD)")
    return out


def _pick_day(rows: _Rows, days: np.ndarray, on: Date | None) -> np.ndarray:
    """The rows of one day: the file's only day, else the latest day on or before ``on``."""
    held = np.unique(days)
    shown = ", ".join(str(d)[:10] for d in held[:5]) + \
        (f" ... {str(held[-1])[:10]}" if len(held) > 5 else "")
    if on is None:
        if len(held) > 1:
            raise TapeError(rows.path, None, rows.names["date"], f"{len(held)} dates "
                            f"({shown}): give on= (the day whose listing to use)")
        return np.ones(len(days), bool)
    target = np.datetime64(pd.Timestamp(on), "ns")
    before = held[held <= target]
    if not len(before):
        raise TapeError(rows.path, None, rows.names["date"], f"no date on or before {on} "
                        f"(the file holds {len(held)}: {shown})")
    return days == before[-1]


def _read_one(path: Path, on: Date | None, market: str | None) -> tuple[pd.DataFrame,
                                                                         np.ndarray]:
    rows = _Rows(path)
    if not len(rows.lines):
        raise TapeError(path, None, None, "no data rows")
    codes = _codes(rows)
    markets = _markets(rows, market)
    frame = {"code": codes.astype(str), "market": markets.astype(str)}
    marcap = rows.whole("marcap", "won") if "marcap" in rows.columns else None
    if "shares" in rows.columns:
        shares = rows.whole("shares", "shares")
        for r in np.flatnonzero(shares <= 0):
            rows.fail(int(r), "shares", f"{rows.columns['shares'][r]!r}: the shares "
                      "outstanding must be a count > 0")
    else:  # KRX's market cap is the close times the listed shares
        close = rows.whole("close", "won")
        shares = np.zeros(len(codes), np.int64)
        for r in range(len(codes)):
            if close[r] <= 0 or marcap[r] <= 0:
                f = "close" if close[r] <= 0 else "marcap"
                rows.fail(r, f, f"{rows.columns[f][r]!r}: shares = marcap / close needs both "
                          "> 0")
            if marcap[r] % close[r]:
                rows.fail(r, "marcap", f"{rows.columns['marcap'][r]!r} is not a whole number "
                          f"of shares at the close {close[r]:,}")
            shares[r] = marcap[r] // close[r]
    frame["shares"] = shares
    if "name" in rows.columns:
        frame["name"] = rows.columns["name"].astype(str)
    if marcap is not None:
        frame["marcap"] = marcap
    keep = np.ones(len(codes), bool)
    if "date" in rows.columns:
        frame["date"] = _days(rows)
        keep = _pick_day(rows, frame["date"], on)
    out = pd.DataFrame(frame)[keep].reset_index(drop=True)
    return out, rows.lines[keep]


def read_listing(path: str | Path | Sequence[str | Path], *, on: str | Date | None = None,
                 market: str | None = None) -> pd.DataFrame:
    """One listing (or several files of one: pykrx writes one per market), one row per
    code, sorted by code, with the columns :data:`COLUMNS`: ``code`` (6 characters; an
    ordinary share's ISIN, KR7005930003, is read as its code), ``market`` (KOSPI, KOSDAQ or
    KONEX), ``shares`` (int64 > 0: Stocks/상장주식수, else marcap / close when that divides
    exactly), and where the file has them ``name``, ``marcap`` (won) and ``date``.

    ``on``: for a file holding several days (the FinanceData/marcap dataset), the latest day
    on or before ``on``; several days and no ``on`` is an error listing them. A file without
    dates is taken as it is. ``market``: the market of every row of a file without a market
    column (pykrx get_market_cap). A code given twice is an error unless both rows say the
    same. Bad input raises :class:`TapeError` naming the file, row and field."""
    paths = [path] if isinstance(path, (str, Path)) else list(path)
    if not paths:
        raise ValueError("read_listing: no files given")
    day = None
    if on is not None:
        try:
            day = pd.Timestamp(on).date()
        except ValueError:
            raise ValueError(f"on {on!r} is not a date YYYY-MM-DD") from None
    if market is not None:
        given = MARKETS.get(_market_key(market))
        if given is None:
            raise ValueError(f"market {market!r}: expected KOSPI, KOSDAQ or KONEX")
        market = given
    frames, where = [], []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such listing file")
        frame, lines = _read_one(p, day, market)
        frames.append(frame)
        where.extend((str(p), int(line)) for line in lines)
    listing = pd.concat(frames, ignore_index=True)
    same = [c for c in ("code", "market", "shares", "marcap") if c in listing.columns]
    distinct = ~listing.duplicated(same).to_numpy()  # a repeat of an identical row is dropped
    clash = distinct & listing.duplicated("code").to_numpy()
    if clash.any():
        again = int(np.flatnonzero(clash)[0])
        code = listing["code"].iat[again]
        first = int(np.flatnonzero(listing["code"].to_numpy() == code)[0])
        differ = [c for c in same[1:] if listing[c].iat[first] != listing[c].iat[again]]
        field = differ[0] if differ else "code"
        raise TapeError(where[again][0], where[again][1], field,
                        f"code {code} again ({field} {listing[field].iat[again]}), also in "
                        f"{where[first][0]}, row {where[first][1]} ({field} "
                        f"{listing[field].iat[first]}): one row per code")
    listing = listing[distinct]
    listing = listing.sort_values("code", kind="stable").reset_index(drop=True)
    listing["shares"] = listing["shares"].astype(np.int64)
    listing.attrs["source"] = ", ".join(str(p) for p in paths)
    if "date" in listing.columns:
        listing.attrs["date"] = str(listing["date"].max())[:10]
    return listing


def with_listing(bars: pd.DataFrame, listing: pd.DataFrame, *,
                 missing: str = "raise") -> pd.DataFrame:
    """``bars`` (:func:`replay.loaders.daily_bars.read_bars`) with ``market`` and ``shares``
    filled from ``listing`` (:func:`read_listing`) by code: the columns
    ``replay.anchor.plan_from_bars`` and ``cascade data instruments`` read. A value the bars
    already hold is kept (a bar's own shares are that day's); a market that disagrees with
    the listing is an error.

    Codes of the bars that the listing lacks: ``missing="raise"`` (the default) raises
    ValueError naming them; ``missing="keep"`` leaves their bars as they were (market "",
    shares 0 where not given) and lists the codes, sorted, in
    ``result.attrs["listing_missing"]`` (empty when the listing covers every code)."""
    if missing not in ("raise", "keep"):
        raise ValueError(f"missing={missing!r}: choose 'raise' or 'keep'")
    source = listing.attrs.get("source", "the listing")
    known = listing.set_index("code")
    codes = bars["code"].astype(str)
    absent = sorted(set(codes) - set(known.index))
    if absent and missing == "raise":
        shown = ", ".join(absent[:10]) + (" ..." if len(absent) > 10 else "")
        raise ValueError(f"{source}: {len(absent):,} of the bars' {codes.nunique():,} codes "
                         f"are not in the listing ({shown}); missing='keep' (--allow-missing) "
                         "keeps their bars without market and shares")
    out = bars.copy()
    had_market = out["market"].astype(str) if "market" in out.columns else \
        pd.Series("", index=out.index)
    had_shares = out["shares"].fillna(0).astype(np.int64) if "shares" in out.columns else \
        pd.Series(0, index=out.index, dtype=np.int64)
    listed_market = codes.map(known["market"]).fillna("")
    listed_shares = codes.map(known["shares"]).fillna(0).astype(np.int64)
    clash = (had_market != "") & (listed_market != "") & (had_market != listed_market)
    if clash.any():
        r = int(np.flatnonzero(clash.to_numpy())[0])
        raise ValueError(f"{source}: code {codes.iat[r]} is {listed_market.iat[r]} in the "
                         f"listing, {had_market.iat[r]} in the bars")
    out["market"] = had_market.where(had_market != "", listed_market)
    out["shares"] = had_shares.where(had_shares > 0, listed_shares).astype(np.int64)
    out.attrs["listing_missing"] = tuple(absent)
    if "date" in listing.attrs:
        out.attrs["listing_date"] = listing.attrs["date"]
    return out
