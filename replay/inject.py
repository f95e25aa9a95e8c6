"""Injected orders from a CSV file: ``ts,instrument,side,type,price,size``.

``ts`` is integer ns UTC or ISO-8601 (naive = UTC); ``instrument`` a symbol of the tape;
``side`` B/buy or A/S/sell; ``type`` market, limit, ioc or fok; ``price`` in natural units
(empty for market orders); ``size`` in natural units. Rows must be in time order. An
optional ``program`` column (1/0, true/false) marks program orders, which a KRX sidecar
suspends.

Prices are checked against the venue's rules when the order arrives, not here: a KRX day's
limits depend on the previous day's simulated close. A refused order is reported in
``injected.parquet`` with its reason (off the tick grid, outside the limits, halted, ...).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from replay.engine import InjectedOrders
from replay.loaders.text import parse_ts_ns
from replay.quality import TapeError, to_units
from replay.tape import ASK, BID, InstrumentTable
from venues.matching import ORDER_TYPES
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


def read_injected(path: str | Path, instruments: InstrumentTable) -> InjectedOrders:
    path = Path(path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise TapeError(path, 1, missing[0], f"missing column; expected {','.join(COLUMNS)}")
    n = len(frame)
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
            out["price"][i] = to_units(np.array([row.price]), inst.price_decimals, path,
                                       "price", rows)[0]
            if inst.venue != "XKRX" and out["price"][i] % inst.tick_units:
                raise TapeError(path, line, "price", f"{row.price} is off the tick grid")
        out["size"][i] = to_units(np.array([row.size]), inst.size_decimals, path, "size",
                                  rows)[0]
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
                          out["price"], out["size"], flags)
