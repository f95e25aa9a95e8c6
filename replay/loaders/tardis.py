"""Tardis ``incremental_book_L2`` CSV: market-by-price level updates with snapshot blocks.

Columns used: ``exchange, symbol, timestamp, is_snapshot, side, price, amount`` (and
``local_timestamp`` when present). ``timestamp`` is the exchange's time in microseconds
since the epoch (Tardis falls back to the arrival time where the exchange gives none).

Mapping to the tape (one L2 instrument per exchange and symbol, venue = ``exchange``):

- ``amount`` is the level's new total size: ``M`` when positive, ``D`` when zero.
- Rows with ``is_snapshot`` true that follow non-snapshot rows of the same symbol (or start
  the file) begin a new snapshot: an ``R`` (clear) event comes first, and every event of
  the snapshot carries ``F_SNAPSHOT``.
- Tardis writes the rows of one exchange message consecutively with the same timestamps;
  the last row of each such run carries ``F_LAST``.
- ``timestamp`` must fall in 1990-2100 and ``price`` be positive (replay/quality.py:
  bounds); an exact duplicate of the previous row is an error (``--repair``: dropped).
- ``sequence`` is the row's position among the data rows (0-based, across files in the
  order given); an ``R`` shares it with the row it precedes.

Row numbers in errors are line numbers in the file, the header being line 1.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replay.loaders import Loaded
from replay.loaders.text import (
    Table,
    decimals_by_instrument,
    instrument_ids,
    read_table,
    units_by_instrument,
)
from replay.quality import RepairLog, TapeError, check_prices, scaled_ts, sort_or_reject
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

REQUIRED = ("exchange", "symbol", "timestamp", "is_snapshot", "side", "price", "amount")
SIDES = {"bid": BID, "ask": ASK}
BOOLEANS = {"true": 1, "false": 0}
_SEP = "\x1f"  # joins exchange and symbol into one instrument key


def _read(path: Path, repair: bool, log: RepairLog) -> tuple[Table, int]:
    """Read, validate and time-order one file; return it and its number of data rows."""
    table = read_table(path, REQUIRED, ("local_timestamp",), repair=repair, log=log)
    n_rows = len(table)
    table = table.drop_missing(REQUIRED, repair, log).drop_duplicates(repair, log)
    ts = table.ints("timestamp")
    scaled_ts(ts, 1000, path, table.lines, "timestamp", "microseconds")
    table.codes("side", SIDES)
    table.codes("is_snapshot", BOOLEANS)
    perm = sort_or_reject(ts, path, table.lines, "timestamp", repair, log)
    return (table if perm is None else table.take(perm)), n_rows


def _events(table: Table, inst: np.ndarray, price: np.ndarray, size: np.ndarray) -> Events:
    """One file's rows as events, with an ``R`` before each snapshot's first row."""
    ts = table.ints("timestamp") * 1000
    side = table.codes("side", SIDES)
    snap = table.codes("is_snapshot", BOOLEANS).astype(bool)
    n = len(table)

    starts = np.zeros(n, bool)
    for k in np.unique(inst):
        rows = np.flatnonzero(inst == k)
        s = snap[rows]
        starts[rows] = s & ~np.r_[False, s[:-1]]

    # a message ends where the next row differs in symbol, timestamps or snapshot-ness
    key = [inst, ts, snap]
    if "local_timestamp" in table.columns:
        key.append(table["local_timestamp"])
    last = np.ones(n, bool)
    if n > 1:
        same = np.ones(n - 1, bool)
        for col in key:
            same &= col[1:] == col[:-1]
        last[:-1] = ~same

    pos = np.arange(n) + np.cumsum(starts)  # where each row's level event lands
    clear_pos = pos[starts] - 1
    m = n + int(starts.sum())
    cols = {c: np.zeros(m, np.int64) for c in
            ("ts", "instrument", "action", "side", "price", "size", "flags", "sequence")}
    cols["ts"][pos], cols["ts"][clear_pos] = ts, ts[starts]
    cols["instrument"][pos], cols["instrument"][clear_pos] = inst, inst[starts]
    cols["action"][pos] = np.where(size > 0, MODIFY, DELETE)
    cols["action"][clear_pos] = CLEAR
    cols["side"][pos], cols["side"][clear_pos] = side, NONE
    cols["price"][pos], cols["size"][pos] = price, size
    cols["flags"][pos] = np.where(snap, F_SNAPSHOT, 0) | np.where(last, F_LAST, 0)
    cols["flags"][clear_pos] = F_SNAPSHOT
    seq = table.order
    cols["sequence"][pos], cols["sequence"][clear_pos] = seq, seq[starts]
    return Events.from_columns(cols)


def load(paths: list[Path], *, repair: bool = False) -> Loaded:
    """Load Tardis ``incremental_book_L2`` CSV files into one time-ordered L2 tape.

    Each file is checked on its own; several files (days, or symbols) are then merged by
    time, file order breaking ties. A file may also hold several symbols.
    """
    log = RepairLog()
    tables: list[Table] = []
    offset = 0
    for path in paths:
        table, n_rows = _read(Path(path), repair, log)
        table.order = table.order + offset
        tables.append(table)
        offset += n_rows
    keys, ids = instrument_ids([t["exchange"] + _SEP + t["symbol"] for t in tables])
    price_dec = decimals_by_instrument(tables, ids, len(keys), "price")
    size_dec = decimals_by_instrument(tables, ids, len(keys), "amount")

    parts = []
    for table, inst in zip(tables, ids, strict=True):
        price = units_by_instrument(table, inst, "price", price_dec)
        size = units_by_instrument(table, inst, "amount", size_dec)
        bad = size < 0
        if bad.any():
            if not repair:
                r = int(np.flatnonzero(bad)[0])
                raise TapeError(table.path, int(table.lines[r]), "amount",
                                f"negative amount {table['amount'][r]} "
                                "(use --repair to drop such rows)")
            log.add("non_positive_size", table.lines[bad])
            table, inst, price, size = table.take(~bad), inst[~bad], price[~bad], size[~bad]
        check_prices(price, np.ones(len(price), bool), inst, np.ones(len(keys), np.int64),
                     table.path, table.lines, "price")
        parts.append((table, inst, price, size))

    if len(parts) == 1:
        events = _events(*parts[0])
    else:
        # one stream in time order, so snapshot starts and message ends are seen across files;
        # every value is validated by now, so the merged table needs no per-file path
        names = set.intersection(*(set(t.columns) for t, *_ in parts))
        table = Table(Path(paths[0]), {n: np.concatenate([t[n] for t, *_ in parts])
                                       for n in names},
                      np.concatenate([t.lines for t, *_ in parts]),
                      np.concatenate([t.order for t, *_ in parts]))
        inst, price, size = (np.concatenate([p[i] for p in parts]) for i in (1, 2, 3))
        order = np.argsort(table.ints("timestamp"), kind="stable")
        events = _events(table.take(order), inst[order], price[order], size[order])

    instruments = InstrumentTable([
        Instrument(k, key.split(_SEP)[1], venue=key.split(_SEP)[0], book_type="L2",
                   price_decimals=price_dec[k], size_decimals=size_dec[k])
        for k, key in enumerate(keys)])
    return Loaded(events, instruments, log)
