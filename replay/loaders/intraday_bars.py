"""Intraday bars (분봉: minute or N-second bars) of one or more codes, the input of a tape
anchored to intraday bars (docs/synthetic-tapes.md: anchored to intraday bars; layouts in
docs/data-formats.md: intraday bars).

Two layouts, told apart by the header:

- **Kiwoom opt10080** (주식분봉차트조회), as Kiwoom users save it: ``체결시간``
  (YYYYMMDDHHMMSS, Asia/Seoul), ``현재가`` (the bar's close), ``시가``, ``고가``, ``저가``,
  ``거래량``; prices signed as Kiwoom writes them (the sign is the direction against the
  previous close, the price its absolute value); rows newest first (oldest first is read
  as it is). The code is the ``code`` option, else the file name's one 6-digit code.
  *Assumption:* a minute bar's ``체결시간`` is its start (the 09:00 bar holds 09:00:00 to
  09:00:59); no published source states it for opt10080.
- **Generic CSV**: a time column (``datetime``, ``timestamp``, ``time`` or ``date``; ISO
  text, naive = Asia/Seoul, or with an offset), ``open``, ``high``, ``low``, ``close``,
  ``volume`` (any case), and optionally ``code``. The stamp is the bar's start unless
  ``stamp="end"``.

The interval is the ``interval`` option (seconds), else the smallest spacing of one code's
consecutive bars on a day; each bar covers ``[start, start + interval)``. Every price is an
exact positive integer (won), every volume a positive integer; ``low <= open, close <=
high``; bars of a code strictly in time order (either direction for a whole file). Anything
else is a :class:`~replay.quality.TapeError` naming the file, the row (the file's line) and
the field. Text is UTF-8 or CP949/EUC-KR (replay/loaders/text.py); lines starting with ``#``
before the header are skipped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from replay.loaders.kiwoom import symbol_of
from replay.loaders.text import decode_text
from replay.quality import TapeError

#: The table :func:`read_intraday_bars` returns, one row per bar, in (code, start) order;
#: ``start``/``end`` are UTC ns, prices integer won; ``file`` and ``row`` say where the bar
#: was read (for errors found later, by the anchor).
COLUMNS = ("code", "start", "end", "open", "high", "low", "close", "volume", "file", "row")
KIWOOM = {"체결시간": "time", "현재가": "close", "시가": "open", "고가": "high", "저가": "low",
          "거래량": "volume"}
GENERIC_TIME = ("datetime", "timestamp", "time", "date")
FIELDS = ("open", "high", "low", "close", "volume")
_SIGNED_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_STAMP14 = re.compile(r"[0-9]{14}", re.ASCII)
_KST = "Asia/Seoul"


def read_intraday_bars(paths: str | Path | Sequence[str | Path], *, code: str | None = None,
                       interval: int | None = None, stamp: str = "start") -> pd.DataFrame:
    """Intraday bars of ``paths`` as one table (:data:`COLUMNS`); ``attrs["source"]`` names
    the files, ``attrs["interval_s"]`` the interval. ``code`` names a file's code where
    the file has no code column (default: the file name's 6-digit code); ``interval`` is
    the bar length in seconds (default: from the bars' spacing); ``stamp`` says whether a
    generic file's time is the bar's ``"start"`` or ``"end"`` (Kiwoom's is its start).
    Raises TapeError (a ValueError) naming file, row and field."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise ValueError("no intraday bar file given")
    if stamp not in ("start", "end"):
        raise ValueError(f"stamp {stamp!r}: choose start or end")
    if interval is not None and not (isinstance(interval, int) and 1 <= interval <= 86_400):
        raise ValueError(f"interval {interval!r}: a whole number of seconds, 1 to 86400")
    frames, lines = [], []
    for p in paths:
        frame, line = _read_file(Path(p), code, stamp)
        frames.append(frame)
        lines.append(line)
    names = {k: v for f in frames for k, v in f.attrs.pop("names").items()}
    bars = pd.concat(frames, ignore_index=True)
    line = np.concatenate(lines)
    files = np.concatenate([np.full(len(f), str(p), object) for f, p in zip(frames, paths,
                                                                           strict=True)])
    order = np.lexsort((bars["stamp"].to_numpy(), bars["code"].to_numpy()))
    bars, line, files = bars.iloc[order].reset_index(drop=True), line[order], files[order]
    stamps = bars["stamp"].to_numpy(np.int64)
    same = bars["code"].to_numpy()[1:] == bars["code"].to_numpy()[:-1]
    gaps = np.diff(stamps)
    dup = np.flatnonzero(same & (gaps == 0))
    if len(dup):
        k = int(dup[0]) + 1
        raise TapeError(files[k], int(line[k]), "time", "a second bar of code "
                        f"{bars['code'].iloc[k]} at the same time")
    days = (stamps + 9 * 3_600 * 10**9) // (86_400 * 10**9)
    spacing = gaps[same & (days[1:] == days[:-1])]
    if interval is None:
        if len(spacing) == 0:
            raise ValueError(f"{', '.join(map(str, paths))}: one bar a day per code, so no "
                             "spacing to tell the interval from: give interval= (seconds)")
        step_ns = int(spacing.min())
        if step_ns % 10**9:
            raise ValueError(f"{paths[0]}: bars {step_ns} ns apart, not whole seconds")
    else:
        step_ns = interval * 10**9
        close = np.flatnonzero(same & (gaps < step_ns))
        if len(close):
            k = int(close[0]) + 1
            raise TapeError(files[k], int(line[k]), "time", f"starts {gaps[k - 1] / 1e9:g} s "
                            f"after the bar before it, inside its {interval} s interval")
    start = stamps - (step_ns if stamp == "end" else 0)
    out = pd.DataFrame({"code": bars["code"].astype(str), "start": start,
                        "end": start + step_ns,
                        **{f: bars[f].to_numpy(np.int64) for f in FIELDS},
                        "file": files, "row": line})
    out.attrs["source"] = ", ".join(map(str, paths))
    out.attrs["interval_s"] = int(step_ns // 10**9)
    # each file's column of a field, for errors the anchor finds later ("고가", "High")
    out.attrs["names"] = names
    return out


def _read_file(path: Path, code: str | None, stamp: str) -> tuple[pd.DataFrame, np.ndarray]:
    text = decode_text(path.read_bytes(), path)
    rows = list(csv.reader(io.StringIO(text)))
    skip = 0
    while skip < len(rows) and (not "".join(rows[skip]).strip()
                                or rows[skip][0].lstrip().startswith("#")):
        skip += 1
    if skip == len(rows):
        raise TapeError(path, None, None, "no header and no bars")
    header = [h.strip().lstrip("\ufeff") for h in rows[skip]]
    lower = [h.lower() for h in header]
    if "체결시간" in header:
        kiwoom = True
        where = {f: header.index(k) for k, f in KIWOOM.items() if k in header}
        need = {v: k for k, v in KIWOOM.items()}
    else:
        kiwoom = False
        where = {f: lower.index(f) for f in FIELDS if f in lower}
        t = [n for n in GENERIC_TIME if n in lower]
        if t:
            where["time"] = lower.index(t[0])
        need = {f: f for f in FIELDS} | {"time": "datetime"}
        if "code" in lower:
            where["code"] = lower.index("code")
    for f, shown in need.items():
        if f not in where:
            raise TapeError(path, skip + 1, shown, f"missing column {shown!r}; the header has "
                            f"{', '.join(repr(h) for h in header)} (Kiwoom opt10080: 체결시간, "
                            "현재가, 시가, 고가, 저가, 거래량; generic: datetime, open, high, low, "
                            "close, volume)")
    name = {f: header[i] for f, i in where.items()}  # the file's own column names
    data, line = [], []
    for k, row in enumerate(rows[skip + 1:], start=skip + 2):
        if not "".join(row).strip():
            continue
        if len(row) < len(header):
            raise TapeError(path, k, header[len(row)], f"{len(row)} fields; the header has "
                            f"{len(header)} columns")
        data.append(row)
        line.append(k)
    if not data:
        raise TapeError(path, None, None, "no bars after the header")
    line_a = np.asarray(line, np.int64)
    values = {}
    for f in FIELDS:
        col = [r[where[f]].strip() for r in data]
        nums = np.zeros(len(col), np.int64)
        for i, s in enumerate(col):
            if not _SIGNED_INT.fullmatch(s) or (not kiwoom and s.startswith("-")):
                what = "a share count" if f == "volume" else "a price in whole won"
                raise TapeError(path, line[i], name[f], f"{s!r} is not {what}")
            v = abs(int(s))
            if v > 10**12:
                raise TapeError(path, line[i], name[f], f"{s} is out of range")
            if v == 0:
                raise TapeError(path, line[i], name[f], "0: a bar needs a positive price "
                                "and volume (a bar without trades has nothing to anchor to)")
            nums[i] = v
        values[f] = nums
    for i in range(len(data)):
        o, h, lo, c = (int(values[f][i]) for f in ("open", "high", "low", "close"))
        if h < lo:
            raise TapeError(path, line[i], name["high"], f"high {h} below low {lo}")
        for f, v in (("open", o), ("close", c)):
            if not lo <= v <= h:
                raise TapeError(path, line[i], name[f], f"{v} outside the bar's low-high "
                                f"{lo}-{h}")
    times = [r[where["time"]].strip() for r in data]
    stamps = np.zeros(len(times), np.int64)
    for i, s in enumerate(times):
        stamps[i] = _stamp_ns(s, kiwoom, path, line[i], name["time"])
    if "code" in where:
        codes = np.asarray([r[where["code"]].strip() for r in data], object)
        empty = np.flatnonzero(codes == "")
        if len(empty):
            raise TapeError(path, line[int(empty[0])], "code", "empty code")
    else:
        try:
            the_code = symbol_of(path, code)
        except TapeError:
            raise TapeError(path, None, "code", f"no code column and no one 6-digit code in "
                            f"the file name {path.name!r}: give code= (or rename the file, "
                            "e.g. kiwoom-opt10080-005930.csv)") from None
        codes = np.full(len(data), the_code, object)
    _check_order(stamps, codes, line_a, path, name["time"])
    frame = pd.DataFrame({"code": codes, "stamp": stamps, **values})
    frame.attrs["names"] = {str(path): {f: name.get(f, f) for f in (*FIELDS, "time")}}
    return frame, line_a


def _stamp_ns(text: str, kiwoom: bool, path: Path, row: int, field: str) -> int:
    """A bar's stamp as UTC ns: Kiwoom's YYYYMMDDHHMMSS (Seoul), or ISO text (naive =
    Seoul); within 1990-2100."""
    try:
        if kiwoom:
            if not _STAMP14.fullmatch(text):
                raise ValueError
            ts = pd.Timestamp(f"{text[:8]}T{text[8:]}").tz_localize(_KST)
        else:
            ts = pd.Timestamp(text)
            ts = ts.tz_localize(_KST) if ts.tzinfo is None else ts
    except (ValueError, TypeError):
        want = "YYYYMMDDHHMMSS" if kiwoom else "an ISO date and time"
        raise TapeError(path, row, field, f"{text!r} is not {want}") from None
    if not 1990 <= ts.year <= 2100:
        raise TapeError(path, row, field, f"{text!r} lies outside 1990-2100")
    return int(ts.value)


def _check_order(stamps: np.ndarray, codes: np.ndarray, line: np.ndarray, path: Path,
                 field: str) -> None:
    """Each code's bars strictly in time order, newest first or oldest first (the file's
    first two bars of a code decide); the first bar out of order is the error."""
    for c in dict.fromkeys(codes):
        idx = np.flatnonzero(codes == c)
        d = np.diff(stamps[idx])
        if len(d) == 0:
            continue
        sign = -1 if d[0] < 0 else 1
        bad = np.flatnonzero(d * sign <= 0)
        if len(bad):
            k = int(idx[int(bad[0]) + 1])
            way = "newest first" if sign < 0 else "oldest first"
            raise TapeError(path, int(line[k]), field, f"bar out of order: the file runs "
                            f"{way} and this bar's time does not")
