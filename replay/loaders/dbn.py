"""Databento DBN market-by-order files (``.dbn`` or ``.dbn.zst``) to tape events.

The metadata header is decoded with ``databento-dbn``; the fixed-size MBO records are read
as one numpy structured array (no Python object per record). Prices arrive in units of
1e-9; the tape keeps the fewest decimals that hold every price exactly, and the tick is the
greatest common divisor of the prices seen. The tape's ``ts`` is the receive time
(``ts_recv``), the order in which a participant learns of each event; the book is consistent
after events flagged ``F_LAST``.
"""

from __future__ import annotations

from pathlib import Path

import databento_dbn
import numpy as np
import zstandard

from replay.loaders import Loaded
from replay.quality import RepairLog, TapeError, sort_or_reject
from replay.tape import ACTIONS, SIDES, Events, Instrument, InstrumentTable

MBO_RTYPE = 0xA0
UNDEF_PRICE = np.iinfo(np.int64).max
MBO_DTYPE = np.dtype([
    ("length", "u1"), ("rtype", "u1"), ("publisher_id", "<u2"), ("instrument_id", "<u4"),
    ("ts_event", "<u8"), ("order_id", "<u8"), ("price", "<i8"), ("size", "<u4"),
    ("flags", "u1"), ("channel_id", "u1"), ("action", "S1"), ("side", "S1"),
    ("ts_recv", "<u8"), ("ts_in_delta", "<i4"), ("sequence", "<u4"),
])
assert MBO_DTYPE.itemsize == 56


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        if head == b"\x28\xb5\x2f\xfd":  # zstd frame magic
            return zstandard.ZstdDecompressor().stream_reader(fh).read()
        return fh.read()


def _metadata(path: Path, raw: bytes) -> tuple[object, int]:
    if raw[:3] != b"DBN":
        raise TapeError(path, None, None, "not a DBN file (no 'DBN' signature)")
    meta_len = int.from_bytes(raw[4:8], "little")
    decoder = databento_dbn.DBNDecoder()
    decoder.write(raw[: 8 + meta_len])
    records = decoder.decode()
    if not records:
        raise TapeError(path, None, None, "DBN metadata could not be decoded")
    return records[0], 8 + meta_len


def _records(path: Path) -> tuple[object, np.ndarray]:
    raw = _read_bytes(path)
    meta, start = _metadata(path, raw)
    schema = str(getattr(meta, "schema", ""))
    if "mbo" not in schema.lower():
        raise TapeError(path, None, "schema", f"expected an MBO file, got schema {schema!r}")
    body = memoryview(raw)[start:]
    if len(body) % MBO_DTYPE.itemsize:
        raise TapeError(path, len(body) // MBO_DTYPE.itemsize + 1, "length",
                        "truncated record at the end of the file")
    rec = np.frombuffer(body, MBO_DTYPE)
    bad = np.flatnonzero((rec["rtype"] != MBO_RTYPE) | (rec["length"] != 14))
    if len(bad):
        raise TapeError(path, int(bad[0]) + 1, "rtype",
                        f"record is not an MBO record (rtype {rec['rtype'][bad[0]]:#x})")
    return meta, rec


def _symbols(meta: object) -> dict[int, str]:
    """Vendor instrument id -> raw symbol, from the metadata's symbol mappings."""
    out: dict[int, str] = {}
    mappings = getattr(meta, "mappings", None) or {}
    for raw_symbol, intervals in dict(mappings).items():
        for interval in intervals:
            try:
                out[int(interval["symbol"])] = raw_symbol
            except (KeyError, TypeError, ValueError):
                continue
    return out


def _decimals(prices: np.ndarray) -> int:
    """Fewest decimals (0..9) that represent every 1e-9 price exactly."""
    for d in range(10):
        if np.all(prices % 10 ** (9 - d) == 0):
            return d
    return 9


def load(paths: list[Path], *, repair: bool = False, **_: object) -> Loaded:
    """Load DBN MBO files; several files are merged by receive time."""
    log = RepairLog()
    parts = []
    metas = []
    for path in paths:
        meta, rec = _records(path)
        metas.append(meta)
        parts.append((path, rec))
    symbols: dict[int, str] = {}
    for meta in metas:
        symbols.update(_symbols(meta))
    dataset = str(getattr(metas[0], "dataset", "")) if metas else ""
    vendor_ids = np.unique(np.concatenate([rec["instrument_id"] for _, rec in parts]))
    dense = {int(v): i for i, v in enumerate(vendor_ids)}

    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                         ("ts", "instrument", "action", "side", "size",
                                          "order_id", "flags", "sequence", "vprice")}
    for path, rec in parts:
        ts = rec["ts_recv"].astype(np.int64)
        rows = np.arange(1, len(rec) + 1)
        perm = sort_or_reject(ts, path, rows, "ts_recv", repair, log)
        if perm is not None:
            rec = rec[perm]
            ts = ts[perm]
        action = rec["action"].view(np.uint8)
        side = rec["side"].view(np.uint8)
        unknown_action = ~np.isin(action, list(ACTIONS.values()) + [ord("N")])
        if unknown_action.any():
            i = int(np.flatnonzero(unknown_action)[0])
            raise TapeError(path, i + 1, "action", f"unknown action {chr(action[i])!r}")
        unknown_side = ~np.isin(side, list(SIDES.values()))
        if unknown_side.any():
            i = int(np.flatnonzero(unknown_side)[0])
            raise TapeError(path, i + 1, "side", f"unknown side {chr(side[i])!r}")
        cols["ts"].append(ts)
        cols["instrument"].append(
            np.searchsorted(vendor_ids, rec["instrument_id"]).astype(np.uint32))
        # 'N' (none) records carry no book change: keep them as status rows
        cols["action"].append(np.where(action == ord("N"), ACTIONS["S"], action))
        cols["side"].append(side)
        cols["vprice"].append(rec["price"])
        cols["size"].append(rec["size"].astype(np.int64))
        cols["order_id"].append(rec["order_id"])
        cols["flags"].append(rec["flags"])
        cols["sequence"].append(rec["sequence"].astype(np.uint64))

    vprice = np.concatenate(cols.pop("vprice"))
    defined = vprice != UNDEF_PRICE
    decimals = _decimals(vprice[defined]) if defined.any() else 0
    price = np.where(defined, vprice // 10 ** (9 - decimals), 0)
    merged = {k: np.concatenate(v) for k, v in cols.items()}
    merged["price"] = price
    order = np.argsort(merged["ts"], kind="stable") if len(parts) > 1 else slice(None)
    events = Events.from_columns({k: v[order] for k, v in merged.items()})

    instruments = []
    for vendor_id, dense_id in dense.items():
        sel = events.price[(events.instrument == dense_id) & (events.price > 0)]
        tick = int(np.gcd.reduce(np.unique(sel))) if len(sel) else 1
        instruments.append(Instrument(
            instrument_id=dense_id, symbol=symbols.get(vendor_id, str(vendor_id)),
            venue=dataset, book_type="L3", price_decimals=decimals, size_decimals=0,
            tick_units=max(1, tick)))
    return Loaded(events, InstrumentTable(instruments), log)
