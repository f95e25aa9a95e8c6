"""Daily bars, the calibration data of a synthetic population (docs/brokers.md: synthesised
from daily bars), in the layouts Korean users hold: pykrx (Korean headers) and
FinanceDataReader (English headers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from brokers.synthetic_population import DailyBars
from replay.loaders.text import not_utf8_error
from replay.quality import TapeError

#: pykrx (Korean) and FinanceDataReader (English) daily-bar headers -> our names.
BAR_HEADERS = {"date": "date", "날짜": "date", "일자": "date", "open": "open", "시가": "open",
               "high": "high", "고가": "high", "low": "low", "저가": "low", "close": "close",
               "종가": "close", "volume": "volume", "거래량": "volume"}


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
            raise not_utf8_error(path, []) from None
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
    return DailyBars(days, close, volume, source=str(path))
