"""Injected orders from a CSV file: ``ts,instrument,side,type,price,size``.

``ts`` is integer ns UTC or ISO-8601 (naive = UTC); ``instrument`` a symbol of the tape;
``side`` B/buy or A/S/sell; ``type`` market, limit, ioc or fok; ``price`` in natural units
(empty for market orders); ``size`` in natural units. Rows must be in time order. An
optional ``program`` column (1/0, true/false) marks program orders, which a KRX sidecar
suspends.

Prices are checked against the venue's rules when the order arrives, not here: a KRX day's
limits depend on the previous day's simulated close. A refused order is reported in
``injected.parquet`` with its reason (off the tick grid, outside the limits, halted, ...).

:func:`injected_table` is that table (docs/replay-modes.md: injected orders): one row per
order, tied back to its input row, with what it asked for and what it got.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from replay.engine import (
    InjectedOrders,
    ReplayResult,
)
from replay.loaders.text import parse_ts_ns
from replay.quality import TapeError, to_units
from replay.tape import ASK, BID, InstrumentTable
from venues.codes import (
    CANCEL_ORDER,
    MARKET,
    ORDER_TYPES,
    REASON_NAMES,
    ST_CANCELLED,
    ST_EXPIRED,
    ST_FILLED,
    ST_NO_LIQUIDITY,
    ST_PARTIAL,
    ST_REJECTED,
    ST_RESTING,
    STATUS_NAMES,
)
from venues.rules import J_PROGRAM

COLUMNS = ("ts", "instrument", "side", "type", "price", "size")
PROGRAM_WORDS = {"": False, "0": False, "false": False, "no": False, "1": True, "true": True,
                 "yes": True}
SIDE_WORDS = {"b": BID, "buy": BID, "bid": BID, "a": ASK, "s": ASK, "sell": ASK, "ask": ASK}


def parse_ts(value: str, path: Path, line: int) -> int:
    """The loaders' exact timestamp parser (integer ns or ISO-8601), naming the row."""
    try:
        return parse_ts_ns(str(value).strip())
    except (ValueError, OverflowError):
        raise TapeError(path, line, "ts",
                        f"{value!r} is neither integer ns nor ISO-8601") from None


def _text(path: Path) -> str:
    """The file's text: UTF-8, else CP949 (a superset of EUC-KR, common in Korean files);
    neither is an error naming the row of the first byte that decodes in neither."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        try:
            return raw.decode("cp949")
        except UnicodeDecodeError:
            row = raw.count(b"\n", 0, e.start) + 1
            raise TapeError(path, row, None, f"byte 0x{raw[e.start]:02x} is neither UTF-8 "
                            "nor CP949/EUC-KR text") from None


def read_injected(path: str | Path, instruments: InstrumentTable) -> InjectedOrders:
    """Read a CSV of orders to inject; every malformed row is an error naming the file, the
    row (the header is row 1) and the field. Each order keeps its data row (``input_row``,
    1-based, the header not counted) for ``injected.parquet``."""
    path = Path(path)
    frame = pd.read_csv(io.StringIO(_text(path)), dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise TapeError(path, 1, missing[0], f"missing column; expected {','.join(COLUMNS)}")
    n = len(frame)
    if n == 0:
        raise TapeError(path, None, None, "no orders: the file has a header and no rows")
    out = {k: np.zeros(n, np.int64) for k in COLUMNS}
    for i, row in enumerate(frame.itertuples(index=False)):
        line = i + 2  # the header is line 1
        out["ts"][i] = parse_ts(row.ts, path, line)
        try:
            inst = instruments.by_symbol(row.instrument)
        except KeyError:
            raise TapeError(path, line, "instrument",
                            f"unknown symbol {row.instrument!r}") from None
        out["instrument"][i] = inst.instrument_id
        side = SIDE_WORDS.get(row.side.strip().lower())
        if side is None:
            raise TapeError(path, line, "side", f"{row.side!r} is not B/buy or A/sell")
        out["side"][i] = side
        kind = ORDER_TYPES.get(row.type.strip().lower())
        if kind is None or kind == ORDER_TYPES["cancel"]:
            raise TapeError(path, line, "type", f"{row.type!r} is not market/limit/ioc/fok")
        out["type"][i] = kind
        rows = np.array([line])
        if kind != ORDER_TYPES["market"]:
            if not row.price.strip():
                raise TapeError(path, line, "price", f"a {row.type} order needs a price")
            out["price"][i] = to_units(np.array([row.price], object), inst.price_decimals,
                                       path, "price", rows)[0]
            if out["price"][i] <= 0:
                raise TapeError(path, line, "price", f"{row.price} is not a positive price")
            if inst.venue != "XKRX" and out["price"][i] % inst.tick_units:
                raise TapeError(path, line, "price", f"{row.price} is off the tick grid")
        out["size"][i] = to_units(np.array([row.size], object), inst.size_decimals, path,
                                  "size", rows)[0]
        if out["size"][i] <= 0:
            raise TapeError(path, line, "size", "size must be positive")
    back = np.flatnonzero(np.diff(out["ts"]) < 0)
    if len(back):
        raise TapeError(path, int(back[0]) + 3, "ts", "orders must be in time order")
    flags = np.zeros(n, np.int64)
    if "program" in frame.columns:
        for i, v in enumerate(frame["program"]):
            word = str(v).strip().lower()
            if word not in PROGRAM_WORDS:
                raise TapeError(path, i + 2, "program", f"{v!r} is not 1/0 or true/false")
            flags[i] = J_PROGRAM if PROGRAM_WORDS[word] else 0
    return InjectedOrders(out["ts"], out["instrument"], out["side"], out["type"],
                          out["price"], out["size"], flags,
                          input_row=np.arange(1, n + 1, dtype=np.int64))


#: The columns of ``injected.parquet``, in order.
INJECTED_COLUMNS = ("input_row", "ts", "instrument", "symbol", "side", "type", "limit_price",
                    "size", "filled", "filled_value", "avg_price", "status", "reason")
TYPE_NAMES = {code: name for name, code in ORDER_TYPES.items()}
#: Why an order that was not rejected did not fill in full (its status says which case).
UNFILLED_REASONS = {
    ST_NO_LIQUIDITY: "nothing to execute against within its limit",
    ST_PARTIAL: "no more to execute against within its limit",
    ST_RESTING: "still resting when the replay ended",
    ST_EXPIRED: "rested unfilled to the end of the trading day",
    ST_CANCELLED: "cancelled",
}


def injected_table(result: ReplayResult) -> pa.Table:
    """``injected.parquet``: one row per injected order, in the order they were received
    (the file's orders first, then the broker's and the strategy's as the replay made them).

    ``input_row`` is the 1-based data row of the ``--inject`` file (null for a broker's or a
    strategy's order); ``limit_price`` is null for a market order (and a cancel); prices are
    in the instrument's price units. ``filled_value`` is the exact integer sum of
    price x quantity over the order's fills, ``avg_price`` = filled_value / filled, a float for
    display (null when nothing filled). ``reason`` says why a rejected order was refused or
    why an accepted one did not fill in full; null for an order filled in full."""
    f = result.injected
    col = {name: f[name].to_numpy(np.int64) for name in f.columns}
    typ, status, filled = col["type"], col["status"], col["filled"]
    # reason: a code into REASON_NAMES for a rejected order, else into the unfilled reasons
    # after them; -1 (null) for an order filled in full. No Python object per order.
    unfilled = [STATUS_NAMES[k] for k in range(len(STATUS_NAMES))]
    for st, text in UNFILLED_REASONS.items():
        unfilled[st] = text
    code = len(REASON_NAMES) + status
    still = (status == ST_PARTIAL) & (col["resting"] > 0)  # partly filled, the rest resting
    code[still] = len(REASON_NAMES) + ST_RESTING
    code[status == ST_REJECTED] = col["reason"][status == ST_REJECTED]
    code[status == ST_FILLED] = -1
    ids = [i.instrument_id for i in result.instruments]
    symbols = [""] * (max(ids, default=-1) + 1)
    for i in result.instruments:
        symbols[i.instrument_id] = i.symbol
    types = [TYPE_NAMES.get(k, str(k)) for k in range(max(TYPE_NAMES) + 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = col["notional"] / filled
    row = col["input_row"]
    return pa.table({
        "input_row": pa.array(row, mask=row < 0),
        "ts": pa.array(col["ts"]),
        "instrument": pa.array(col["instrument"]),
        "symbol": _names(col["instrument"], symbols),
        "side": _names(np.where(col["side"] == BID, 0, 1), ["buy", "sell"]),
        "type": _names(typ, types),
        "limit_price": pa.array(col["price"], mask=(typ == MARKET) | (typ == CANCEL_ORDER)),
        "size": pa.array(col["size"]),
        "filled": pa.array(filled),
        "filled_value": pa.array(col["notional"]),
        "avg_price": pa.array(avg, mask=filled == 0),
        "status": _names(status, STATUS_NAMES),
        "reason": _names(code, list(REASON_NAMES) + unfilled),
    })


def _names(codes: np.ndarray, names: list[str]) -> pa.Array:
    """``names[code]`` per row as a string column (a negative code: null)."""
    idx = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(idx, pa.array(names, pa.string())).cast(pa.string())


def outcome_lines(table: pa.Table) -> list[str]:
    """What the console says about injected orders that did not fill in full: how many were
    rejected and how many were left (partly) unfilled, with the count per reason."""
    status = table.column("status").to_pylist()
    reason = table.column("reason").to_pylist()
    lines = []
    for label, picked in (("rejected", [r for s, r in zip(status, reason, strict=True)
                                        if s == "rejected"]),
                          ("left unfilled or partly filled",
                           [r for s, r in zip(status, reason, strict=True)
                            if s != "rejected" and r is not None])):
        if picked:
            counts = sorted(Counter(picked).items(), key=lambda kv: (-kv[1], kv[0]))
            why = "; ".join(f"{k}: {v:,}" for k, v in counts)
            lines.append(f"injected orders {label}: {len(picked):,} of {len(status):,} ({why})")
    return lines
