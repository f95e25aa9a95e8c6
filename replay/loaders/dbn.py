"""Databento DBN market-by-order files (``.dbn`` or ``.dbn.zst``) to tape events.

The metadata header is decoded with ``databento-dbn``; the fixed-size MBO records are read
as one numpy structured array (no Python object per record). Prices arrive in units of
1e-9; the tape keeps the fewest decimals that hold every price exactly, and the tick is the
greatest common divisor of the prices of all but at most 0.1% of the rows (:func:`_grid`).
The tape's ``ts`` is the receive time (``ts_recv``), the order in which a participant learns
of each event; the book is consistent after events flagged ``F_LAST``.

Records are checked before use (docs/data-quality.md): a receive time outside 1990-2100, a
zero-size add, trade or fill, an undefined price (``UNDEF_PRICE``) where the action needs
one, and a price off the instrument's grid are errors naming the record (1-based) and field,
or with ``repair`` dropped and counted (``non_positive_size``, ``undefined_price``,
``off_grid_price``). Corrupt zstd or metadata is an error naming the file.
"""

from __future__ import annotations

from pathlib import Path

import databento_dbn
import numpy as np
import zstandard

from replay.loaders import Loaded
from replay.quality import (
    TS_MAX_NS,
    TS_MIN_NS,
    TS_RANGE,
    RepairLog,
    TapeError,
    check_prices,
    sort_or_reject,
)
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
            try:
                return zstandard.ZstdDecompressor().stream_reader(fh).read()
            except zstandard.ZstdError as exc:
                raise TapeError(path, None, None,
                                f"not a valid zstd-compressed DBN file ({exc})") from None
        return fh.read()


def _metadata(path: Path, raw: bytes) -> tuple[object, int]:
    if raw[:3] != b"DBN":
        raise TapeError(path, None, None, "not a DBN file (no 'DBN' signature)")
    meta_len = int.from_bytes(raw[4:8], "little")
    if 8 + meta_len > len(raw):
        raise TapeError(path, None, None, "truncated DBN metadata")
    decoder = databento_dbn.DBNDecoder()
    try:
        decoder.write(raw[: 8 + meta_len])
        records = decoder.decode()
    except Exception as exc:  # the decoder raises its own error types  # noqa: BLE001
        raise TapeError(path, None, None, f"DBN metadata could not be decoded ({exc})") from None
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


def _grid(prices: np.ndarray) -> int:
    """The instrument's tick, in 1e-9 units: the largest divisor of the gcd of its 64 most
    frequent prices that divides all but at most 0.1% of its rows, so one price a fraction
    of a tick off the grid is found as off the grid instead of shrinking the tick."""
    if not len(prices):
        return 1
    values, counts = np.unique(prices, return_counts=True)
    top = values[np.argsort(-counts, kind="stable")[:64]]
    g_top = max(1, int(np.gcd.reduce(np.abs(top))))
    allowed = len(prices) // 1000
    for d in range(1, 1001):
        if g_top % d == 0:
            tick = g_top // d
            if int(counts[values % tick != 0].sum()) <= allowed:
                return tick
    return max(1, int(np.gcd.reduce(np.abs(values))))


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
                                          "order_id", "flags", "sequence", "vprice",
                                          "row", "file")}
    for path, rec in parts:
        rows = np.arange(1, len(rec) + 1)
        rec, rows = _valid(path, rec, rows, repair, log)
        ts = rec["ts_recv"].astype(np.int64)
        perm = sort_or_reject(ts, path, rows, "ts_recv", repair, log)
        if perm is not None:
            rec, ts, rows = rec[perm], ts[perm], rows[perm]
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
        cols["row"].append(rows)
        cols["file"].append(np.full(len(rec), len(cols["file"])))

    vprice = np.concatenate(cols.pop("vprice"))
    merged = {k: np.concatenate(v) for k, v in cols.items()}
    row, file = merged.pop("row"), merged.pop("file")
    priced = np.isin(merged["action"], _PRICED)
    keep = np.ones(len(vprice), bool)
    ticks_1e9 = {}
    for dense_id in dense.values():
        mine = priced & (merged["instrument"] == dense_id)
        tick = _grid(vprice[mine])
        off = mine & (vprice % tick != 0)
        if off.any():
            i = int(np.flatnonzero(off)[0])
            if not repair:
                raise TapeError(parts[int(file[i])][0], int(row[i]), "price",
                                f"{vprice[i] / 1e9:.9f} is off the instrument's tick grid of "
                                f"{tick / 1e9:g} (use --repair to drop such records)")
            log.add("off_grid_price", row[off])
            keep &= ~off
        ticks_1e9[dense_id] = tick
    if not keep.all():
        merged, vprice, row, file, priced = ({k: v[keep] for k, v in merged.items()},
                                             vprice[keep], row[keep], file[keep], priced[keep])
    defined = vprice != UNDEF_PRICE
    decimals = _decimals(vprice[defined]) if defined.any() else 0
    merged["price"] = np.where(defined, vprice // 10 ** (9 - decimals), 0)
    for f, (path, _) in enumerate(parts):
        mine = file == f
        check_prices(merged["price"][mine], priced[mine], merged["instrument"][mine],
                     np.array([max(1, ticks_1e9[d] // 10 ** (9 - decimals))
                               for d in range(len(dense))]), path, row[mine], "price")
    order = np.argsort(merged["ts"], kind="stable") if len(parts) > 1 else slice(None)
    events = Events.from_columns({k: v[order] for k, v in merged.items()})

    instruments = []
    for vendor_id, dense_id in dense.items():
        tick = max(1, ticks_1e9[dense_id] // 10 ** (9 - decimals))
        instruments.append(Instrument(
            instrument_id=dense_id, symbol=symbols.get(vendor_id, str(vendor_id)),
            venue=dataset, book_type="L3", price_decimals=decimals, size_decimals=0,
            tick_units=tick))
    return Loaded(events, InstrumentTable(instruments), log)


_PRICED = np.array([ord(c) for c in "AMTF"])  # actions whose price must be defined, positive


def _valid(path: Path, rec: np.ndarray, rows: np.ndarray, repair: bool,
           log: RepairLog) -> tuple[np.ndarray, np.ndarray]:
    """Reject (or, repairing, drop and count) records that cannot be replayed: a receive
    time outside 1990-2100 (checked as unsigned, so nothing wraps), a zero-size add, trade
    or fill, an undefined price (``UNDEF_PRICE``) where the action needs one."""
    ts = rec["ts_recv"]
    bad_ts = (ts < np.uint64(TS_MIN_NS)) | (ts >= np.uint64(TS_MAX_NS))
    if bad_ts.any():
        i = int(np.flatnonzero(bad_ts)[0])
        raise TapeError(path, int(rows[i]), "ts_recv", f"{int(ts[i])} ns is outside {TS_RANGE}")
    action = rec["action"].view(np.uint8)
    zero = np.isin(action, [ord(c) for c in "ATF"]) & (rec["size"] == 0)
    undefined = np.isin(action, _PRICED) & (rec["price"] == UNDEF_PRICE)
    for mask, policy, name, reason in (
            (zero, "non_positive_size", "size", "size must be positive for this action"),
            (undefined, "undefined_price", "price", "undefined price (UNDEF_PRICE) where the "
             "action needs one")):
        if mask.any():
            if not repair:
                i = int(np.flatnonzero(mask)[0])
                raise TapeError(path, int(rows[i]), name,
                                f"{reason} (use --repair to drop such records)")
            log.add(policy, rows[mask])
    keep = ~(zero | undefined)
    return rec[keep], rows[keep]
