"""Binance futures order-book depth files: a snapshot CSV and an update CSV.

Both files have the columns ``symbol, timestamp, first_update_id, last_update_id, side,
update_type, price, qty, pu``; ``timestamp`` is in milliseconds since the epoch, ``side`` is
``b``/``a``. Rows with ``update_type`` ``snap`` form a snapshot, ``set`` rows set a level's
total size. Consecutive rows sharing ``symbol``, ``update_type`` and ``last_update_id`` are
one unit: a snapshot or one update batch. The files may be given in either order (and
several of each): units from all files are merged by time, a snapshot before an update at
the same millisecond.

Synchronisation follows Binance's documented rule for keeping a local book:

- an update batch whose ``last_update_id`` is not above the snapshot's is already contained
  in it and is dropped, counted as ``stale_update`` (always, this is not a repair of bad
  data);
- each batch's ``pu`` must equal the previous batch's ``last_update_id``; a break means
  updates are missing and is an error naming the row and field ``pu`` (with ``repair=True``
  it is counted as ``sequence_gap`` and loading continues). The link from the snapshot to
  the first batch after it is not checked: snapshot and update files are recorded
  separately and need not overlap.

``timestamp`` must fall in 1990-2100 and ``price`` be positive (replay/quality.py: bounds);
an exact duplicate of the previous row is an error (``--repair``: dropped and counted).

Without a snapshot for a symbol the book starts empty and every batch is kept.

Mapping: a snapshot is an ``R`` then its levels (``M``), all with ``F_SNAPSHOT``; a set row
is ``M`` when ``qty`` > 0 and ``D`` when it is 0; the last event of every unit carries
``F_LAST``. ``sequence`` is the unit's ``last_update_id``.

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

REQUIRED = ("symbol", "timestamp", "first_update_id", "last_update_id", "side", "update_type",
            "price", "qty", "pu")
SIDES = {"b": BID, "a": ASK}
SNAP, SET = 0, 1
UPDATE_TYPES = {"snap": SNAP, "set": SET}


def _read(path: Path, repair: bool, log: RepairLog) -> Table:
    """Read and validate one file, rows in time order."""
    table = read_table(path, REQUIRED, repair=repair, log=log)
    table = table.drop_missing(REQUIRED, repair, log).drop_duplicates(repair, log)
    for name in ("timestamp", "first_update_id", "last_update_id", "pu"):
        table.ints(name)
    scaled_ts(table.ints("timestamp"), 1_000_000, path, table.lines, "timestamp",
              "milliseconds")
    table.codes("side", SIDES)
    table.codes("update_type", UPDATE_TYPES)
    perm = sort_or_reject(table.ints("timestamp"), path, table.lines, "timestamp", repair, log)
    return table if perm is None else table.take(perm)


def load(paths: list[Path], *, repair: bool = False) -> Loaded:
    """Load Binance depth snapshot and update CSV files into one time-ordered L2 tape."""
    log = RepairLog()
    tables = [_read(Path(p), repair, log) for p in paths]
    symbols, ids = instrument_ids([t["symbol"] for t in tables])
    price_dec = decimals_by_instrument(tables, ids, len(symbols), "price")
    size_dec = decimals_by_instrument(tables, ids, len(symbols), "qty")

    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "ts", "inst", "side", "price", "size", "kind", "u", "pu", "line", "file")}
    for f, (table, inst) in enumerate(zip(tables, ids, strict=True)):
        size = units_by_instrument(table, inst, "qty", size_dec)
        keep = size >= 0
        if not keep.all():
            if not repair:
                r = int(np.flatnonzero(~keep)[0])
                raise TapeError(table.path, int(table.lines[r]), "qty",
                                f"negative qty {table['qty'][r]} "
                                "(use --repair to drop such rows)")
            log.add("non_positive_size", table.lines[~keep])
        price = units_by_instrument(table, inst, "price", price_dec)
        check_prices(price, keep, inst, np.ones(len(symbols), np.int64), table.path,
                     table.lines, "price")
        cols["ts"].append(table.ints("timestamp")[keep] * 1_000_000)
        cols["inst"].append(inst[keep])
        cols["side"].append(table.codes("side", SIDES)[keep])
        cols["price"].append(price[keep])
        cols["size"].append(size[keep])
        cols["kind"].append(table.codes("update_type", UPDATE_TYPES)[keep])
        cols["u"].append(table.ints("last_update_id")[keep])
        cols["pu"].append(table.ints("pu")[keep])
        cols["line"].append(table.lines[keep])
        cols["file"].append(np.full(int(keep.sum()), f))
    rows = {k: np.concatenate(v) for k, v in cols.items()}
    events, row_file, row_line = _events(rows, [t.path for t in tables], repair, log)

    perm = None
    back = np.flatnonzero(events.ts[1:] < events.ts[:-1])
    if len(back):
        path = tables[int(row_file[back[0] + 1])].path
        perm = sort_or_reject(events.ts, path, row_line, "timestamp", repair, log)
    if perm is not None:
        events = events.take(perm)
    instruments = InstrumentTable([
        Instrument(k, s, venue="binance", book_type="L2", price_decimals=price_dec[k],
                   size_decimals=size_dec[k]) for k, s in enumerate(symbols)])
    return Loaded(events, instruments, log)


def _events(rows: dict[str, np.ndarray], paths: list[Path], repair: bool,
            log: RepairLog) -> tuple[Events, np.ndarray, np.ndarray]:
    """Group rows into units, synchronise updates with snapshots, and lay out the events.

    Returns the events and, for each event, the file index and line it came from."""
    n = len(rows["ts"])
    new_unit = np.ones(n, bool)
    if n > 1:
        new_unit[1:] = ((rows["inst"][1:] != rows["inst"][:-1])
                        | (rows["kind"][1:] != rows["kind"][:-1])
                        | (rows["u"][1:] != rows["u"][:-1])
                        | (rows["file"][1:] != rows["file"][:-1]))
    unit_of_row = np.cumsum(new_unit) - 1
    first = np.flatnonzero(new_unit)
    u_ts, u_kind, u_inst = rows["ts"][first], rows["kind"][first], rows["inst"][first]
    u_id, u_pu = rows["u"][first], rows["pu"][first]

    # merge by time, a snapshot before an update at the same time
    by_kind = np.argsort(u_kind, kind="stable")
    order = by_kind[np.argsort(u_ts[by_kind], kind="stable")]

    first_snapshot: dict[int, int] = {}
    for j in order:
        if u_kind[j] == SNAP:
            first_snapshot.setdefault(int(u_inst[j]), int(u_id[j]))
    kept = np.ones(len(first), bool)
    synced = dict(first_snapshot)  # the last snapshot's id seen per symbol
    previous: dict[int, int] = {}  # the last update batch's id per symbol
    for j in order:
        k = int(u_inst[j])
        if u_kind[j] == SNAP:
            synced[k] = int(u_id[j])
            continue
        if k in synced and u_id[j] <= synced[k]:
            kept[j] = False
        elif k in previous and u_pu[j] != previous[k]:
            r = first[j]
            if not repair:
                raise TapeError(paths[int(rows["file"][r])], int(rows["line"][r]), "pu",
                                f"pu {u_pu[j]} does not follow the previous update's "
                                f"last_update_id {previous[k]}: updates are missing "
                                "(use --repair to continue past the gap)")
            log.add("sequence_gap", [rows["line"][r]])
        previous[k] = int(u_id[j])
    stale_rows = ~kept[unit_of_row]
    log.add("stale_update", rows["line"][stale_rows])

    rank = np.empty(len(first), np.int64)
    rank[order] = np.arange(len(first))
    take = np.flatnonzero(~stale_rows)
    take = take[np.argsort(rank[unit_of_row[take]], kind="stable")]
    unit = unit_of_row[take]
    m = len(take)
    starts = np.zeros(m, bool)
    last = np.ones(m, bool)
    if m:
        starts[0] = True
        starts[1:] = unit[1:] != unit[:-1]
        last[:-1] = starts[1:]
    snap = u_kind[unit] == SNAP
    clears = starts & snap

    pos = np.arange(m) + np.cumsum(clears)
    clear_pos = pos[clears] - 1
    total = m + int(clears.sum())
    out = {c: np.zeros(total, np.int64) for c in
           ("ts", "instrument", "action", "side", "price", "size", "flags", "sequence",
            "file", "line")}
    for name, src in (("ts", "ts"), ("instrument", "inst"), ("file", "file"),
                      ("line", "line"), ("sequence", "u")):
        out[name][pos] = rows[src][take]
        out[name][clear_pos] = rows[src][take][clears]
    size = rows["size"][take]
    out["action"][pos] = np.where(size > 0, MODIFY, DELETE)
    out["action"][clear_pos] = CLEAR
    out["side"][pos] = rows["side"][take]
    out["side"][clear_pos] = NONE
    out["price"][pos], out["size"][pos] = rows["price"][take], size
    out["flags"][pos] = np.where(snap, F_SNAPSHOT, 0) | np.where(last, F_LAST, 0)
    out["flags"][clear_pos] = F_SNAPSHOT
    file, line = out.pop("file"), out.pop("line")
    return Events.from_columns(out), file, line
