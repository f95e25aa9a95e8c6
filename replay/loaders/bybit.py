"""Bybit order-book recordings (``orderbook.{depth}.{symbol}``): JSON lines, often zipped.

Each line is one websocket message::

    {"topic": "orderbook.500.XRPUSDT", "type": "snapshot" | "delta", "ts": 1733011200691,
     "data": {"s": "XRPUSDT", "b": [["1.9531", "6203"], ...], "a": [...], "u": 1, "seq": 7}}

``ts`` is in milliseconds since the epoch. A path may be a ``.zip`` (every member is read, in
name order) or a plain ``.data``/``.jsonl`` file.

Mapping (one L2 instrument per symbol ``data.s``, venue ``bybit``):

- ``snapshot`` resets the book: an ``R`` (clear) then one ``M`` per level, all with
  ``F_SNAPSHOT``.
- ``delta`` sets levels: ``M`` with the new total size, ``D`` when the size is ``"0"``.
- bids (``b``) then asks (``a``), in message order; the message's last event carries
  ``F_LAST``, so a message that lists no level produces no event.
- ``sequence`` is the message's cross sequence ``data.seq`` (comparable across depths),
  else its update id ``data.u``, else its line number.

``ts`` must fall in 1990-2100 and every level's price be positive (replay/quality.py:
bounds); a line that repeats the previous one exactly is an error (``--repair``: dropped
and counted as ``duplicate_row``). Text may be UTF-8 or CP949.

Row numbers in errors are line numbers in the file (or zip member), from 1. Errors name the
JSON field: ``ts``, ``type``, ``data``, ``data.s``, ``data.b``/``data.a`` (a level's price
or size), ``data.seq``/``data.u``.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from replay.loaders import Loaded
from replay.loaders.text import MISSING, decimals_of, decode_text, merge_by_time, normalized
from replay.quality import (
    RepairLog,
    TapeError,
    check_prices,
    distinct_lines,
    scaled_ts,
    sort_or_reject,
    to_units,
)
from replay.tape import (
    ASK,
    BID,
    CLEAR,
    DELETE,
    F_LAST,
    F_SNAPSHOT,
    MODIFY,
    NONE,
    Events,
    Instrument,
    InstrumentTable,
)


def _sources(path: Path) -> Iterator[tuple[str, io.TextIOBase]]:
    """The text streams of a path: each member of a zip, or the file itself (UTF-8 or
    CP949, replay/loaders/text.py: decode_text)."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                for name in sorted(n for n in z.namelist() if not n.endswith("/")):
                    text = decode_text(z.read(name), f"{path}:{name}")
                    yield f"{path}:{name}", io.StringIO(text)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
            raise TapeError(path, None, None, f"not a readable zip file ({exc})") from None
    else:
        yield str(path), io.StringIO(decode_text(path.read_bytes(), path))


@dataclass
class _Source:
    """The messages and levels of one file (or zip member), as read: prices and sizes are
    still strings, because their decimals depend on every file."""

    name: str
    ts: list[int] = field(default_factory=list)
    symbol: list[str] = field(default_factory=list)
    snapshot: list[bool] = field(default_factory=list)
    sequence: list[int] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    # one entry per level: its message (an index into the lists above), side, strings, line
    level_msg: list[int] = field(default_factory=list)
    level_side: list[int] = field(default_factory=list)
    level_price: list[str] = field(default_factory=list)
    level_size: list[str] = field(default_factory=list)
    level_line: list[int] = field(default_factory=list)


@dataclass
class _Levels:
    """A source's levels as arrays; ``key`` is each level's JSON field, for errors."""

    msg: np.ndarray
    side: np.ndarray
    price: np.ndarray
    size: np.ndarray
    line: np.ndarray
    key: np.ndarray

    def take(self, index: np.ndarray) -> _Levels:
        return _Levels(*(getattr(self, f)[index] for f in
                         ("msg", "side", "price", "size", "line", "key")))


_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _missing(value: Any) -> bool:
    return value is None or str(value).strip().lower() in MISSING


def _int(value: Any, name: str, key: str, line: int) -> int:
    """A JSON integer (or a string of ASCII digits) that fits in 64 bits."""
    if isinstance(value, bool) or not isinstance(value, int | str) or (
            isinstance(value, str) and not _INT_TEXT.fullmatch(value.strip())):
        raise TapeError(name, line, key, f"{value!r} is not an integer")
    n = int(value)
    if not 0 <= n < 2**63:
        raise TapeError(name, line, key, f"{value!r} is not a 64-bit unsigned integer")
    return n


def _parse(name: str, stream: io.TextIOBase, repair: bool, log: RepairLog) -> _Source:
    """Read every message of one stream (no unit conversion yet)."""
    src = _Source(name)
    for line, text in distinct_lines(stream, name, repair, log):
        try:
            msg = json.loads(text, parse_float=str)  # keep numbers' exact digits
        except json.JSONDecodeError as exc:
            raise TapeError(name, line, None, f"not valid JSON ({exc.msg})") from None
        if not isinstance(msg, dict):
            raise TapeError(name, line, None, "not a JSON object")
        data = msg.get("data")
        if not isinstance(data, dict):
            raise TapeError(name, line, "data", "missing or not an object")
        kind = msg.get("type")
        if kind not in ("snapshot", "delta"):
            raise TapeError(name, line, "type",
                            f"unknown message type {kind!r}; expected snapshot or delta")
        missing = [k for k, v in (("ts", msg.get("ts")), ("data.s", data.get("s")))
                   if _missing(v)]
        if missing:
            if not repair:
                raise TapeError(name, line, missing[0],
                                "missing value (use --repair to drop such messages)")
            log.add("missing_value", [line])
            continue
        ts = int(scaled_ts(np.array([_int(msg["ts"], name, "ts", line)]), 1_000_000, name,
                           np.array([line]), "ts", "milliseconds")[0]) // 1_000_000
        if "seq" in data:
            seq = _int(data["seq"], name, "data.seq", line)
        elif "u" in data:
            seq = _int(data["u"], name, "data.u", line)
        else:
            seq = line
        m = len(src.ts)
        src.ts.append(ts * 1_000_000)
        src.symbol.append(str(data["s"]))
        src.snapshot.append(kind == "snapshot")
        src.sequence.append(seq)
        src.line.append(line)
        for key, side in (("b", BID), ("a", ASK)):
            levels = data.get(key) or []
            if not isinstance(levels, list) or any(
                    not isinstance(v, list) or len(v) != 2 for v in levels):
                raise TapeError(name, line, f"data.{key}", "not a list of [price, size]")
            if not levels:
                continue
            prices, sizes = zip(*levels, strict=True)
            src.level_price.extend(map(str, prices))
            src.level_size.extend(map(str, sizes))
            src.level_msg.extend([m] * len(levels))
            src.level_side.extend([side] * len(levels))
            src.level_line.extend([line] * len(levels))
    return src


def _levels(src: _Source, repair: bool, log: RepairLog) -> _Levels:
    """The source's levels as arrays, without those whose price or size is empty, null or
    NaN (an error, or with ``repair`` dropped and counted as ``missing_value``)."""
    side = np.array(src.level_side, np.int64)
    levels = _Levels(np.array(src.level_msg, np.int64), side,
                     np.array(src.level_price, dtype=object),
                     np.array(src.level_size, dtype=object),
                     np.array(src.level_line, np.int64),
                     np.where(side == BID, "data.b", "data.a"))
    bad = np.zeros(len(side), bool)
    for values in (levels.price, levels.size):
        bad |= pc.is_in(normalized(values), value_set=pa.array(sorted(MISSING))).to_numpy(
            zero_copy_only=False)
    if not bad.any():
        return levels
    if not repair:
        r = int(np.flatnonzero(bad)[0])
        raise TapeError(src.name, int(levels.line[r]), str(levels.key[r]),
                        f"level [{levels.price[r]!r}, {levels.size[r]!r}] has a missing "
                        "value (use --repair to drop such levels)")
    log.add("missing_value", levels.line[bad])
    return levels.take(~bad)


def _units(values: np.ndarray, levels: _Levels, rows: np.ndarray, decimals: int,
           name: str) -> np.ndarray:
    """Decimal strings of ``rows`` to units, each error naming the level's JSON field."""
    out = np.zeros(len(rows), np.int64)
    for key in ("data.b", "data.a"):
        sub = levels.key[rows] == key
        if sub.any():
            r = rows[sub]
            out[sub] = to_units(values[r], decimals, name, key, levels.line[r])
    return out


def _events(src: _Source, levels: _Levels, inst: np.ndarray, price_dec: list[int],
            size_dec: list[int], repair: bool, log: RepairLog) -> Events:
    """One source's messages as time-ordered events."""
    msg_ts = np.array(src.ts, np.int64)
    msg_seq = np.array(src.sequence, np.int64)
    snap = np.array(src.snapshot, bool)

    price = np.zeros(len(levels.msg), np.int64)
    size = np.zeros(len(levels.msg), np.int64)
    lvl_inst = inst[levels.msg]
    for k in np.unique(lvl_inst):
        rows = np.flatnonzero(lvl_inst == k)
        price[rows] = _units(levels.price, levels, rows, price_dec[k], src.name)
        size[rows] = _units(levels.size, levels, rows, size_dec[k], src.name)
    for key in ("data.b", "data.a"):
        sub = levels.key == key
        check_prices(price[sub], np.ones(int(sub.sum()), bool), lvl_inst[sub],
                     np.ones(len(price_dec), np.int64), src.name, levels.line[sub], key)
    lvl_msg, side = levels.msg, levels.side
    bad = size < 0
    if bad.any():
        if not repair:
            r = int(np.flatnonzero(bad)[0])
            raise TapeError(src.name, int(levels.line[r]), str(levels.key[r]),
                            f"negative size {levels.size[r]} "
                            "(use --repair to drop such levels)")
        log.add("non_positive_size", levels.line[bad])
        lvl_msg, side, price, size = (a[~bad] for a in (lvl_msg, side, price, size))

    order = sort_or_reject(msg_ts, src.name, np.array(src.line, np.int64), "ts", repair, log)
    if order is not None:
        msg_ts, msg_seq, snap, inst = msg_ts[order], msg_seq[order], snap[order], inst[order]
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        lvl_msg = rank[lvl_msg]
        by_msg = np.argsort(lvl_msg, kind="stable")
        lvl_msg, side, price, size = (a[by_msg] for a in (lvl_msg, side, price, size))

    # per message, in order: an R if it is a snapshot, then its levels
    n_levels = np.bincount(lvl_msg, minlength=len(msg_ts))
    count = n_levels + snap
    start = np.cumsum(count) - count
    first_level = np.cumsum(n_levels) - n_levels
    pos = start[lvl_msg] + snap[lvl_msg] + np.arange(len(lvl_msg)) - first_level[lvl_msg]
    total = int(count.sum())
    owner = np.repeat(np.arange(len(msg_ts)), count)  # the message of each event

    cols = {  # every event that is not a level is a snapshot's R
        "ts": msg_ts[owner], "instrument": inst[owner], "sequence": msg_seq[owner],
        "action": np.full(total, CLEAR), "side": np.full(total, NONE),
        "price": np.zeros(total, np.int64), "size": np.zeros(total, np.int64),
        "flags": np.where(snap[owner], F_SNAPSHOT, 0),
    }
    cols["action"][pos] = np.where(size > 0, MODIFY, DELETE)
    cols["side"][pos], cols["price"][pos], cols["size"][pos] = side, price, size
    cols["flags"][(start + count - 1)[count > 0]] |= F_LAST
    return Events.from_columns(cols)


def load(paths: list[Path], *, repair: bool = False) -> Loaded:
    """Load Bybit order-book JSON-lines files (zipped or not) into one time-ordered L2 tape.

    Each file (or zip member) is checked on its own, then all are merged by time, file order
    breaking ties.
    """
    log = RepairLog()
    sources = [_parse(name, stream, repair, log)
               for path in paths for name, stream in _sources(Path(path))]
    levels = [_levels(src, repair, log) for src in sources]
    symbols: dict[str, int] = {}
    insts = [np.array([symbols.setdefault(s, len(symbols)) for s in src.symbol], np.int64)
             for src in sources]
    price_dec, size_dec = [0] * len(symbols), [0] * len(symbols)
    for src, lv, inst in zip(sources, levels, insts, strict=True):
        lvl_inst = inst[lv.msg]
        for k in np.unique(lvl_inst):
            for key in ("data.b", "data.a"):
                rows = (lvl_inst == k) & (lv.key == key)
                price_dec[k] = max(price_dec[k],
                                   decimals_of(lv.price[rows], src.name, key, lv.line[rows]))
                size_dec[k] = max(size_dec[k],
                                  decimals_of(lv.size[rows], src.name, key, lv.line[rows]))
    events = merge_by_time([_events(src, lv, inst, price_dec, size_dec, repair, log)
                            for src, lv, inst in zip(sources, levels, insts, strict=True)])
    instruments = InstrumentTable([
        Instrument(k, s, venue="bybit", book_type="L2", price_decimals=price_dec[k],
                   size_decimals=size_dec[k]) for s, k in symbols.items()])
    return Loaded(events, instruments, log)
