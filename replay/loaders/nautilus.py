"""A nautilus_trader ``ParquetDataCatalog`` (OrderBookDelta, TradeTick) to tape events,
read with nautilus_trader's own catalog API (docs/data-formats.md: nautilus_trader catalog).

Mapping: ``ADD`` -> ``A``, ``UPDATE`` -> ``M`` (of no side: ``F``, a fill, which changes no
book), ``DELETE`` -> ``D``, ``CLEAR`` -> ``R``; a
``TradeTick`` -> ``T`` (aggressor ``BUYER`` -> ``B``, ``SELLER`` -> ``A``, none -> ``N``,
``trade_id`` as the sequence when it is an integer). A delta's ``flags`` are Databento's
bits, the tape's (``F_LAST``, ``F_SNAPSHOT``), kept as they are; a trade carries none. Prices
and sizes come from the fixed-point raw values, exactly: ``price_decimals`` is the
instrument's price precision. ``ts`` is ``ts_init``, the time nautilus orders data by in a
backtest. One instrument per ``InstrumentId``: symbol and venue are its two parts; the tick is
the definition's ``price_increment`` when the catalog holds the instrument, else found from
the prices as for DBN (:func:`replay.loaders.dbn._grid`).

The catalog is read one instrument and one Parquet file at a time (files in name order, which
is time order: nautilus names them by their first and last time), rows in the file's order,
so at most one file's data is held as nautilus objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from replay.loaders import Loaded
from replay.loaders.dbn import _grid
from replay.quality import RepairLog, TapeError, check_bounds, check_prices, check_ts_ns
from replay.tape import (
    ACTIONS,
    ASK,
    BID,
    NONE,
    Events,
    Instrument,
    InstrumentTable,
)

# nautilus_trader's enums by value: BookAction ADD 1, UPDATE 2, DELETE 3, CLEAR 4; OrderSide
# NO_ORDER_SIDE 0, BUY 1, SELL 2; AggressorSide NO_AGGRESSOR 0, BUYER 1, SELLER 2
_BOOK_ACTIONS = {1: ACTIONS["A"], 2: ACTIONS["M"], 3: ACTIONS["D"], 4: ACTIONS["R"]}
_SIDES = {0: NONE, 1: BID, 2: ASK}
_PRICED = np.array([ACTIONS[c] for c in "AMTF"])


def _catalog(path: Path):
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    if not path.is_dir():
        raise TapeError(path, None, None, "not a nautilus_trader catalog: not a directory")
    catalog = ParquetDataCatalog(str(path))
    kinds = set(catalog.list_data_types())
    if not kinds & {"order_book_delta", "trade_tick"}:
        raise TapeError(path, None, None, "no OrderBookDelta or TradeTick data in the catalog "
                        f"(it holds {', '.join(sorted(kinds)) or 'nothing'})")
    return catalog


def _identifiers(catalog, data_cls) -> list[str]:
    """The instrument ids the catalog holds data of ``data_cls`` for (its directories)."""
    files = catalog._query_files(data_cls)  # the catalog's own file listing
    return sorted({Path(f).parent.name for f in files})


def _fixed(raw: np.ndarray, precision: int, scale: int, path: Path, field: str,
           rows: np.ndarray) -> np.ndarray:
    """Fixed-point raw values (``value * 10**FIXED_PRECISION``) as exact integers at
    ``precision`` decimals; a raw value that is not a whole number of those units is an
    error naming the row."""
    step = scale // 10**precision
    off = raw % step != 0
    if off.any():
        r = int(np.flatnonzero(off)[0])
        raise TapeError(path, int(rows[r]), field, f"raw {int(raw[r])} is not a multiple of "
                        f"10**-{precision}")
    units = raw // step
    big = np.abs(units) >= 2**53
    if big.any():
        r = int(np.flatnonzero(big)[0])
        raise TapeError(path, int(rows[r]), field, f"{int(units[r])} units ({precision} "
                        "decimals) is out of bounds: |value| must be below 2**53")
    return units.astype(np.int64)


def _deltas(objs: list) -> dict[str, np.ndarray]:
    orders = [d.order for d in objs]
    return {
        "ts": np.fromiter((d.ts_init for d in objs), np.int64, len(objs)),
        "action": np.fromiter((int(d.action) for d in objs), np.int64, len(objs)),
        "side": np.fromiter((int(o.side) for o in orders), np.int64, len(objs)),
        "price_raw": np.array([o.price.raw for o in orders], dtype=object),
        "price_prec": np.fromiter((o.price.precision for o in orders), np.int64, len(objs)),
        "size_raw": np.array([o.size.raw for o in orders], dtype=object),
        "size_prec": np.fromiter((o.size.precision for o in orders), np.int64, len(objs)),
        "order_id": np.fromiter((o.order_id for o in orders), np.uint64, len(objs)),
        "flags": np.fromiter((d.flags for d in objs), np.uint8, len(objs)),
        "sequence": np.fromiter((d.sequence for d in objs), np.uint64, len(objs)),
    }


def _trades(objs: list) -> dict[str, np.ndarray]:
    def sequence(t) -> int:
        text = str(t.trade_id)
        return int(text) if text.isdigit() and int(text) < 2**64 else 0

    return {
        "ts": np.fromiter((t.ts_init for t in objs), np.int64, len(objs)),
        "action": np.zeros(len(objs), np.int64),  # set below: trade rows
        "side": np.fromiter((int(t.aggressor_side) for t in objs), np.int64, len(objs)),
        "price_raw": np.array([t.price.raw for t in objs], dtype=object),
        "price_prec": np.fromiter((t.price.precision for t in objs), np.int64, len(objs)),
        "size_raw": np.array([t.size.raw for t in objs], dtype=object),
        "size_prec": np.fromiter((t.size.precision for t in objs), np.int64, len(objs)),
        "order_id": np.zeros(len(objs), np.uint64),
        "flags": np.zeros(len(objs), np.uint8),
        "sequence": np.fromiter((sequence(t) for t in objs), np.uint64, len(objs)),
    }


def _instrument(number: int, ident: str, chunks: list[dict[str, np.ndarray]],
                definition: object, scale: int) -> tuple[Events, Instrument]:
    """One InstrumentId's rows (its files' columns, in order) as tape events; errors name
    the row among them (the caller names the file)."""
    cols = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    where = ident
    rows = np.arange(1, len(cols["ts"]) + 1)
    check_ts_ns(cols["ts"], where, rows, "ts_init")
    price_dec = int(cols["price_prec"].max())
    size_dec = int(cols["size_prec"].max())
    unknown = ~np.isin(cols["action"], [*_BOOK_ACTIONS, -1])
    if unknown.any():
        r = int(np.flatnonzero(unknown)[0])
        raise TapeError(where, int(rows[r]), "action",
                        f"unknown BookAction {int(cols['action'][r])} of {ident}")
    action = np.full(len(rows), ACTIONS["T"], np.uint8)
    for code, ours in _BOOK_ACTIONS.items():
        action[cols["action"] == code] = ours
    # an UPDATE of no side modifies no resting order (an order has a side): it is a fill,
    # as nautilus's DatabentoDataLoader writes a Databento auction fill (F, side N)
    action[(cols["action"] == 2) & (cols["side"] == 0)] = ACTIONS["F"]
    side = np.full(len(rows), NONE, np.uint8)
    for code, ours in _SIDES.items():
        side[cols["side"] == code] = ours
    # a raw of another precision is rescaled to the instrument's (exact: more decimals)
    raw_p = np.array([int(r) * 10**(price_dec - int(p)) for r, p in
                      zip(cols["price_raw"], cols["price_prec"], strict=True)], dtype=object)
    raw_s = np.array([int(r) * 10**(size_dec - int(p)) for r, p in
                      zip(cols["size_raw"], cols["size_prec"], strict=True)], dtype=object)
    price = _fixed(raw_p, price_dec, scale, where, "price", rows)
    size = _fixed(raw_s, size_dec, scale, where, "size", rows)
    check_bounds(size, where, rows, "size")
    priced = np.isin(action, _PRICED)
    if definition is not None:
        tick = int(_fixed(np.array([definition.price_increment.raw
                                    * 10**(price_dec - definition.price_precision)],
                                   dtype=object), price_dec, scale, where,
                          "price_increment", rows[:1])[0])
    else:
        tick = _grid(price[priced]) if priced.any() else 1
    check_prices(price, priced, np.zeros(len(rows), np.int64), np.array([max(1, tick)]),
                 where, rows, "price")
    order = np.lexsort((cols["kind"], cols["ts"]))
    events = Events.from_columns({
        "ts": cols["ts"][order], "instrument": np.full(len(rows), number, np.uint32),
        "action": action[order], "side": side[order], "price": price[order],
        "size": size[order], "order_id": cols["order_id"][order],
        "flags": cols["flags"][order], "sequence": cols["sequence"][order]})
    symbol, _, venue = ident.rpartition(".")
    inst = Instrument(
        instrument_id=number, symbol=symbol, venue=venue,
        book_type="L3" if (cols["order_id"] != 0).any() else "L2",
        price_decimals=price_dec, size_decimals=size_dec, tick_units=max(1, tick))
    return events, inst


def load(paths: list[Path], *, repair: bool = False, **_: object) -> Loaded:
    """Load nautilus_trader catalog directories; instruments of several catalogs with the
    same id are one instrument; everything is merged by time (trades before deltas of the
    same time, catalog and file order breaking further ties). An error names the Parquet
    file of the catalog and the row (1-based) in it."""
    from nautilus_trader.model.data import OrderBookDelta, TradeTick
    from nautilus_trader.model.objects import FIXED_PRECISION

    scale = 10**FIXED_PRECISION
    parts: dict[str, list[tuple[Path, dict[str, np.ndarray]]]] = {}  # id -> (file, columns)
    definitions: dict[str, object] = {}
    for path in paths:
        catalog = _catalog(path)
        for inst in catalog.instruments():
            definitions[str(inst.id)] = inst
        for data_cls, convert, label in ((OrderBookDelta, _deltas, "delta"),
                                         (TradeTick, _trades, "trade")):
            for ident in _identifiers(catalog, data_cls):
                # file by file, in time order: a query with start/end reorders the rows
                # of one time (a snapshot's), which must keep their order
                for file in sorted(catalog._query_files(data_cls, identifiers=[ident])):
                    objs = catalog.query(data_cls, files=[file])
                    if not objs:
                        continue
                    cols = convert(objs)
                    if label == "trade":
                        cols["action"][:] = -1
                    cols["kind"] = np.full(len(objs), 1 if label == "delta" else 0, np.int8)
                    parts.setdefault(ident, []).append((Path(file), cols))
    if not parts:
        raise ValueError(f"no events in {', '.join(map(str, paths))}")
    instruments, streams = [], []
    for number, ident in enumerate(sorted(parts)):
        chunks = parts[ident]
        try:
            events, inst = _instrument(number, ident, [c for _, c in chunks],
                                       definitions.get(ident), scale)
        except TapeError as exc:  # name the Parquet file and its row, as stored
            sizes = np.cumsum([0] + [len(c["ts"]) for _, c in chunks])
            k = int(np.searchsorted(sizes, exc.row, side="left")) - 1 if exc.row else 0
            row = exc.row - int(sizes[k]) if exc.row else None
            raise TapeError(chunks[max(k, 0)][0], row, exc.field, exc.reason) from None
        streams.append(events)
        instruments.append(inst)
    events = Events.concat(streams)
    if len(streams) > 1:
        events = events.take(np.argsort(events.ts, kind="stable"))
    return Loaded(events, InstrumentTable(instruments), RepairLog())
