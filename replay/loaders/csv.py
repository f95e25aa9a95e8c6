"""The generic CSV format.

A generic CSV file has a header and one event per row, in the tape's own words::

    ts,instrument,action,side,price,size,order_id
    2024-08-05T00:00:00.000000001Z,005930,A,B,71000,10,17
    1722816000000000002,005930,T,A,71000,3,0

- ``ts``: integer nanoseconds since the epoch (UTC), or ISO-8601 with up to nine fraction
  digits and an offset or ``Z`` (no offset = UTC).
- ``instrument``: a symbol; instruments are numbered from 0 in order of first appearance.
- ``action``: ``A C D M T F R S`` (:mod:`replay.tape`); ``side``: ``B A N``.
- ``price``, ``size``: decimal strings in natural units, converted exactly to integer units
  with as many decimals as the instrument needs. ``R`` and ``S`` rows may leave them empty.
- ``order_id`` (optional, default 0).

The header may hold only these columns (any case): an unknown one, such as a misspelled
``orderid``, is an error naming it, since ignoring it would turn an L3 file into an L2 book.
A price must be positive for ``A M T F`` (and for ``C D`` on an L2 row, ``order_id`` 0);
times, prices and sizes are bounded (replay/quality.py: bounds). An exact duplicate of the
previous row and a row cut short are errors (``--repair``: dropped and counted).

Options: ``book_type`` (default ``"L3"`` if any ``order_id`` is non-zero, else ``"L2"``),
``tick`` (natural units; prices off that grid are errors), ``venue``.
Every row is its own packet (``F_LAST``); ``sequence`` is the row's position among the data
rows of the input (0-based, across files in the order given).

Row numbers in errors are line numbers in the file, the header being line 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np

from replay.loaders import Loaded
from replay.loaders.text import (
    Table,
    decimals_by_instrument,
    instrument_ids,
    merge_by_time,
    parse_ts_ns,
    read_table,
    units_by_instrument,
)
from replay.quality import (
    TS_MAX_NS,
    TS_MIN_NS,
    TS_RANGE,
    RepairLog,
    TapeError,
    check_prices,
    decimals_needed,
    sort_or_reject,
    to_units,
)
from replay.tape import ACTIONS, F_LAST, SIDES, Events, Instrument, InstrumentTable


def _parse_ts(table: Table) -> np.ndarray:
    out = np.empty(len(table), np.int64)
    for r, v in enumerate(table["ts"]):
        try:
            ns = parse_ts_ns(v)
        except (ValueError, OverflowError):
            raise TapeError(table.path, int(table.lines[r]), "ts",
                            f"{v!r} is neither integer nanoseconds nor ISO-8601") from None
        if not TS_MIN_NS <= ns < TS_MAX_NS:
            raise TapeError(table.path, int(table.lines[r]), "ts",
                            f"{v!r} is outside {TS_RANGE}")
        out[r] = ns
    return out


_NO_PRICE = np.array([ACTIONS["R"], ACTIONS["S"]])
_POSITIVE = np.array([ACTIONS[a] for a in "ACTF"])
_PRICED = np.array([ACTIONS[a] for a in "AMTF"])  # actions whose price must be positive
_L2_PRICED = np.array([ACTIONS[a] for a in "CD"])  # ... and these on an L2 row


@dataclass
class _File:
    table: Table
    ts: np.ndarray
    action: np.ndarray
    side: np.ndarray
    order_id: np.ndarray


def _read(path: Path, repair: bool, log: RepairLog) -> tuple[_File, int]:
    """Parse everything but prices and sizes (their decimals depend on all files); return
    the file and its number of data rows."""
    table = read_table(path, ("ts", "instrument", "action", "side", "price", "size"),
                       ("order_id",), strict_header=True, repair=repair, log=log)
    n_rows = len(table)
    table = table.drop_duplicates(repair, log)
    table = table.drop_missing(("ts", "instrument", "action", "side"), repair, log)
    needs_price = ~np.isin(table.codes("action", ACTIONS), _NO_PRICE)
    table = table.drop_missing(("price", "size"), repair, log, where=needs_price)
    for name in ("price", "size", "order_id"):
        if name in table.columns:
            table.columns[name] = np.where(table.missing(name), "0", table[name])
    action = table.codes("action", ACTIONS)
    side = table.codes("side", SIDES)
    order_id = np.zeros(len(table), np.int64)
    if "order_id" in table.columns:
        order_id = table.ints("order_id")
        if np.any(order_id < 0):
            r = int(np.flatnonzero(order_id < 0)[0])
            raise TapeError(path, int(table.lines[r]), "order_id", "negative order id")
    ts = _parse_ts(table)
    f = _File(table, ts, action, side, order_id)
    perm = sort_or_reject(ts, path, table.lines, "ts", repair, log)
    if perm is not None:
        f = _File(table.take(perm), ts[perm], action[perm], side[perm], order_id[perm])
    return f, n_rows


def _tick_units(tick: str, decimals: Sequence[int], path: Path) -> list[int]:
    out = [int(to_units(np.array([tick]), d, path, "tick", np.array([0]))[0]) for d in decimals]
    if min(out, default=1) <= 0:
        raise ValueError(f"tick must be positive, not {tick!r}")
    return out


def load(paths: list[Path], *, repair: bool = False, book_type: str | None = None,
         tick: str | float | Decimal | None = None, venue: str = "") -> Loaded:
    """Load generic CSV files (see the module docstring) into one time-ordered tape."""
    if book_type not in (None, "L2", "L3"):
        raise ValueError(f"book_type must be 'L2' or 'L3', not {book_type!r}")
    log = RepairLog()
    files: list[_File] = []
    offsets = [0]
    for path in paths:
        f, n_rows = _read(Path(path), repair, log)
        files.append(f)
        offsets.append(offsets[-1] + n_rows)
    symbols, ids = instrument_ids([f.table["instrument"] for f in files])
    tables = [f.table for f in files]
    price_dec = decimals_by_instrument(tables, ids, len(symbols), "price")
    size_dec = decimals_by_instrument(tables, ids, len(symbols), "size")
    tick_units = [1] * len(symbols)
    if tick is not None:
        tick = str(tick)
        tick_dec = decimals_needed([tick], paths[0], "tick")
        price_dec = [max(d, tick_dec) for d in price_dec]
        tick_units = _tick_units(tick, price_dec, paths[0])
    if book_type is None:
        book_type = "L3" if any(np.any(f.order_id != 0) for f in files) else "L2"

    parts = []
    for f, inst, offset in zip(files, ids, offsets, strict=False):
        table = f.table
        price = units_by_instrument(table, inst, "price", price_dec)
        size = units_by_instrument(table, inst, "size", size_dec)
        off = (price % np.array(tick_units)[inst] != 0) & ~np.isin(f.action, _NO_PRICE)
        if off.any():
            r = int(np.flatnonzero(off)[0])
            raise TapeError(table.path, int(table.lines[r]), "price",
                            f"{table['price'][r]} is off the tick grid of {tick}")
        bad = (size < 0) | ((size == 0) & np.isin(f.action, _POSITIVE))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            if not repair:
                raise TapeError(table.path, int(table.lines[r]), "size",
                                f"size {table['size'][r]} must be positive for action "
                                f"{chr(int(f.action[r]))} (use --repair to drop such rows)")
            log.add("non_positive_size", table.lines[bad])
        keep = ~bad
        l2 = f.order_id == 0
        needs = keep & (np.isin(f.action, _PRICED) | (l2 & np.isin(f.action, _L2_PRICED)))
        check_prices(price, needs, inst, np.array(tick_units), table.path, table.lines,
                     "price")
        parts.append(Events.from_columns({
            "ts": f.ts[keep], "instrument": inst[keep], "action": f.action[keep],
            "side": f.side[keep], "price": price[keep], "size": size[keep],
            "order_id": f.order_id[keep], "flags": np.full(int(keep.sum()), F_LAST),
            "sequence": offset + table.order[keep],
        }))
    instruments = InstrumentTable([
        Instrument(k, s, venue=venue, book_type=book_type, price_decimals=price_dec[k],
                   size_decimals=size_dec[k], tick_units=tick_units[k])
        for k, s in enumerate(symbols)])
    return Loaded(merge_by_time(parts), instruments, log)
