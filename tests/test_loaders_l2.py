"""L2 loaders (Bybit, Binance, Tardis) on the real samples in tests/data, and on bad input.

Expected values are read from the sample files here with the json/csv modules, independently
of the loaders."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from replay.loaders import load
from replay.quality import TapeError
from replay.tape import (
    ACTIONS,
    ASK,
    BID,
    F_LAST,
    F_SNAPSHOT,
    Tape,
    write_tape,
)

DATA = Path(__file__).parent / "data"
BYBIT = DATA / "xrpusdt-ob500.data.zip"
BINANCE_SNAP = DATA / "btcusdt-depth-snap.csv"
BINANCE_UPDATE = DATA / "btcusdt-depth-update.csv"
TARDIS = DATA / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"


def natural(units: int, decimals: int) -> Decimal:
    return Decimal(int(units)).scaleb(-decimals)


def assert_names(exc: pytest.ExceptionInfo, path: Path | str, row: int | None,
                 field: str) -> None:
    """The error names the file, the row and the field, in the message and as attributes."""
    err, msg = exc.value, str(exc.value)
    assert str(path) in msg
    assert err.row == row and err.field == field
    if row is not None:
        assert f"row {row}," in msg or f"row {row}:" in msg
    assert repr(field) in msg


def bybit_messages() -> list[dict]:
    with zipfile.ZipFile(BYBIT) as z:
        (name,) = z.namelist()
        return [json.loads(line) for line in io.TextIOWrapper(z.open(name), encoding="utf-8")]


def write_lines(path: Path, messages: list[dict | str]) -> Path:
    path.write_text("".join((m if isinstance(m, str) else json.dumps(m)) + "\n"
                            for m in messages))
    return path


MS0 = 1_733_011_200_000  # 2024-12-01 in ms: synthetic times are offsets from it (1990-2100)
US0 = MS0 * 1000


def shifted(body: str, column: int, zero: int) -> str:
    """CSV rows whose field ``column`` is a small integer, moved to ``zero`` + that value."""
    out = []
    for row in body.splitlines(keepends=True):
        f = row.split(",")
        if len(f) > column and f[column].isdigit() and len(f[column]) < 7:
            f[column] = str(zero + int(f[column]))
        out.append(",".join(f))
    return "".join(out)


def bybit_msg(kind: str, ts: int, bids=(), asks=(), seq: int = 1) -> dict:
    ts = MS0 + ts if isinstance(ts, int) and 0 <= ts < 10**6 else ts
    return {"topic": "orderbook.50.XRPUSDT", "type": kind, "ts": ts,
            "data": {"s": "XRPUSDT", "b": [list(b) for b in bids],
                     "a": [list(a) for a in asks], "u": seq, "seq": seq}}


# --- Bybit ------------------------------------------------------------------------------

def test_bybit_sample_has_one_event_per_level_plus_clear_per_snapshot():
    messages = bybit_messages()
    loaded = load("bybit", [BYBIT])
    expected = sum(len(m["data"]["b"]) + len(m["data"]["a"]) + (m["type"] == "snapshot")
                   for m in messages)
    assert len(loaded.events) == expected
    with_levels = sum(1 for m in messages
                      if m["type"] == "snapshot" or m["data"]["b"] or m["data"]["a"])
    assert int(np.count_nonzero(loaded.events.flags & F_LAST)) == with_levels
    assert np.all(np.diff(loaded.events.ts) >= 0)
    assert loaded.events.ts[0] == messages[0]["ts"] * 1_000_000
    (inst,) = loaded.instruments
    assert (inst.symbol, inst.venue, inst.book_type) == ("XRPUSDT", "bybit", "L2")
    assert loaded.repairs.total == 0


def test_bybit_first_snapshot_best_bid_and_ask_match_the_file():
    snapshot = next(m for m in bybit_messages() if m["type"] == "snapshot")
    best_bid = max(Decimal(p) for p, _ in snapshot["data"]["b"])
    best_ask = min(Decimal(p) for p, _ in snapshot["data"]["a"])
    loaded = load("bybit", [BYBIT])
    ev, dec = loaded.events, loaded.instruments[0].price_decimals
    assert ev.action[0] == ACTIONS["R"]
    snap = np.flatnonzero(ev.flags & F_SNAPSHOT)
    assert snap[0] == 0 and np.all(np.diff(snap) == 1)  # one contiguous block
    bids = snap[ev.side[snap] == BID]
    asks = snap[ev.side[snap] == ASK]
    assert natural(ev.price[bids].max(), dec) == best_bid
    assert natural(ev.price[asks].min(), dec) == best_ask


def test_bybit_prices_and_sizes_round_trip_exactly():
    loaded = load("bybit", [BYBIT])
    ev, inst = loaded.events, loaded.instruments[0]
    levels = ev.action != ACTIONS["R"]
    from_file = [(Decimal(p), Decimal(s)) for m in bybit_messages()
                 for key in ("b", "a") for p, s in m["data"][key]]
    from_tape = [(natural(p, inst.price_decimals), natural(s, inst.size_decimals))
                 for p, s in zip(ev.price[levels], ev.size[levels], strict=True)]
    assert from_tape == from_file
    deletes = ev.action == ACTIONS["D"]
    assert deletes.any() and np.all(ev.size[deletes] == 0)
    assert np.all(ev.size[ev.action == ACTIONS["M"]] > 0)


def test_bybit_sequence_is_the_cross_sequence():
    messages = bybit_messages()
    ev = load("bybit", [BYBIT]).events
    last = np.flatnonzero(ev.flags & F_LAST)
    assert list(ev.sequence[last]) == [m["data"]["seq"] for m in messages
                                      if m["type"] == "snapshot" or m["data"]["b"]
                                      or m["data"]["a"]]


def test_bybit_round_trips_through_a_parquet_tape(tmp_path):
    loaded = load("bybit", [BYBIT])
    path = write_tape(tmp_path / "xrp.parquet", loaded.events, loaded.instruments)
    tape = Tape(path)
    back = tape.read()
    assert tape.instruments.to_json() == loaded.instruments.to_json()
    for column in ("ts", "instrument", "action", "side", "price", "size", "order_id", "flags",
                   "sequence"):
        assert np.array_equal(getattr(back, column), getattr(loaded.events, column))


def test_bybit_reads_a_plain_jsonl_file(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [
        bybit_msg("snapshot", 1000, bids=[("1.5", "10")], asks=[("1.6", "3.25")], seq=5),
        bybit_msg("delta", 1001, bids=[("1.5", "0")], seq=6),
        bybit_msg("delta", 1002, seq=7),  # no level: no event
    ])
    ev = load("bybit", [path]).events
    assert [chr(a) for a in ev.action] == ["R", "M", "M", "D"]
    assert list(ev.flags) == [F_SNAPSHOT, F_SNAPSHOT, F_SNAPSHOT | F_LAST, F_LAST]
    assert list(ev.size) == [0, 1000, 325, 0]
    assert list(ev.sequence) == [5, 5, 5, 6]


def test_bybit_unparsable_price_names_line_and_field(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [
        bybit_msg("snapshot", 1000, bids=[("1.5", "10")]),
        bybit_msg("delta", 1001, asks=[("1.x", "1")]),
    ])
    with pytest.raises(TapeError) as exc:
        load("bybit", [path])
    assert_names(exc, path, 2, "data.a")


def test_bybit_invalid_json_names_the_line(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [bybit_msg("snapshot", 1000), '{"type": '])
    with pytest.raises(TapeError) as exc:
        load("bybit", [path])
    assert str(path) in str(exc.value) and exc.value.row == 2


def test_bybit_missing_ts_is_an_error_or_a_dropped_message(tmp_path):
    bad = bybit_msg("delta", 1001, bids=[("1.5", "1")])
    bad["ts"] = None
    path = write_lines(tmp_path / "x.jsonl", [bybit_msg("snapshot", 1000), bad])
    with pytest.raises(TapeError) as exc:
        load("bybit", [path])
    assert_names(exc, path, 2, "ts")
    loaded = load("bybit", [path], repair=True)
    assert loaded.repairs.counts["missing_value"] == 1
    assert len(loaded.events) == 1


def test_bybit_nan_size_is_an_error_or_a_dropped_level(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [
        bybit_msg("snapshot", 1000, bids=[("1.5", "NaN"), ("1.4", "2")]),
    ])
    with pytest.raises(TapeError) as exc:
        load("bybit", [path])
    assert_names(exc, path, 1, "data.b")
    loaded = load("bybit", [path], repair=True)
    assert loaded.repairs.counts["missing_value"] == 1
    assert list(loaded.events.price) == [0, 14]


def test_bybit_negative_size_is_an_error_or_a_dropped_level(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [
        bybit_msg("snapshot", 1000, bids=[("1.5", "1")]),
        bybit_msg("delta", 1001, asks=[("1.6", "-2"), ("1.7", "2")]),
    ])
    with pytest.raises(TapeError) as exc:
        load("bybit", [path])
    assert_names(exc, path, 2, "data.a")
    loaded = load("bybit", [path], repair=True)
    assert loaded.repairs.counts["non_positive_size"] == 1
    assert list(loaded.events.price) == [0, 15, 17]


def test_bybit_unsorted_ts_is_an_error_or_a_stable_sort(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [
        bybit_msg("snapshot", 1000, bids=[("1.5", "1")], seq=1),
        bybit_msg("delta", 1005, bids=[("1.5", "2")], seq=2),
        bybit_msg("delta", 1003, bids=[("1.5", "3")], seq=3),
    ])
    with pytest.raises(TapeError) as exc:
        load("bybit", [path])
    assert_names(exc, path, 3, "ts")
    loaded = load("bybit", [path], repair=True)
    assert loaded.repairs.counts["unsorted_ts"] == 1
    assert list(loaded.events.sequence) == [1, 1, 3, 2]
    assert list(loaded.events.size) == [0, 1, 3, 2]


def test_bybit_unknown_message_type_names_line_and_field(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [bybit_msg("snapshot", 1000),
                                              bybit_msg("update", 1001)])
    with pytest.raises(TapeError) as exc:
        load("bybit", [path])
    assert_names(exc, path, 2, "type")


# --- Binance ----------------------------------------------------------------------------

def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_binance_sample_keeps_snapshot_and_newer_updates():
    snap, updates = read_rows(BINANCE_SNAP), read_rows(BINANCE_UPDATE)
    last_id = int(snap[0]["last_update_id"])
    newer = [r for r in updates if int(r["last_update_id"]) > last_id]
    loaded = load("binance", [BINANCE_SNAP, BINANCE_UPDATE])
    ev = loaded.events
    assert len(ev) == 1 + len(snap) + len(newer)
    batches = {r["last_update_id"] for r in newer}
    assert int(np.count_nonzero(ev.flags & F_LAST)) == 1 + len(batches)
    assert np.all(np.diff(ev.ts) >= 0)
    assert ev.ts[0] == int(snap[0]["timestamp"]) * 1_000_000
    assert ev.action[0] == ACTIONS["R"]
    assert int(np.count_nonzero(ev.flags & F_SNAPSHOT)) == 1 + len(snap)
    assert set(ev.sequence) == {last_id} | {int(b) for b in batches}
    (inst,) = loaded.instruments
    assert (inst.symbol, inst.venue, inst.book_type) == ("BTCUSDT", "binance", "L2")


def test_binance_files_in_either_order_give_the_same_tape():
    a = load("binance", [BINANCE_SNAP, BINANCE_UPDATE]).events
    b = load("binance", [BINANCE_UPDATE, BINANCE_SNAP]).events
    for column in ("ts", "action", "side", "price", "size", "flags", "sequence"):
        assert np.array_equal(getattr(a, column), getattr(b, column))


def test_binance_snapshot_best_bid_and_sizes_match_the_file():
    snap = read_rows(BINANCE_SNAP)
    loaded = load("binance", [BINANCE_SNAP, BINANCE_UPDATE])
    ev, inst = loaded.events, loaded.instruments[0]
    in_snap = np.flatnonzero(((ev.flags & F_SNAPSHOT) != 0) & (ev.action != ACTIONS["R"]))
    bids = in_snap[ev.side[in_snap] == BID]
    best_bid = max(Decimal(r["price"]) for r in snap if r["side"] == "b")
    assert natural(ev.price[bids].max(), inst.price_decimals) == best_bid
    asks_in_file = [Decimal(r["price"]) for r in snap if r["side"] == "a"]
    asks = in_snap[ev.side[in_snap] == ASK]
    assert len(asks) == len(asks_in_file)  # this sample's snapshot lists bids only
    rows = snap + read_rows(BINANCE_UPDATE)
    levels = np.flatnonzero(ev.action != ACTIONS["R"])
    assert [(natural(ev.price[i], inst.price_decimals), natural(ev.size[i], inst.size_decimals))
            for i in levels] == [(Decimal(r["price"]), Decimal(r["qty"])) for r in rows]
    zero = np.array([Decimal(r["qty"]) == 0 for r in rows])
    assert np.all(ev.action[levels][zero] == ACTIONS["D"])
    assert np.all(ev.action[levels][~zero] == ACTIONS["M"])


HEADER = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu\n"


def binance_files(tmp_path: Path, updates: str, snapshot: str | None = None) -> list[Path]:
    snap = tmp_path / "snap.csv"
    snap.write_text(HEADER + shifted(snapshot or "BTCUSDT,1000,100,100,b,snap,10.0,1.000,-1\n"
                                                 "BTCUSDT,1000,100,100,a,snap,10.5,2.000,-1\n",
                                     1, MS0))
    upd = tmp_path / "update.csv"
    upd.write_text(HEADER + shifted(updates, 1, MS0))
    return [snap, upd]


def test_binance_updates_older_than_the_snapshot_are_dropped_and_counted(tmp_path):
    paths = binance_files(tmp_path, "BTCUSDT,990,90,95,b,set,10.0,3.000,89\n"
                                    "BTCUSDT,995,96,100,b,set,10.0,4.000,95\n"
                                    "BTCUSDT,995,96,100,a,set,10.5,0.000,95\n"
                                    "BTCUSDT,1001,101,105,b,set,9.9,1.500,100\n")
    loaded = load("binance", paths)
    assert loaded.repairs.counts["stale_update"] == 3
    assert loaded.repairs.examples["stale_update"] == [2, 3, 4]
    ev = loaded.events
    assert [chr(a) for a in ev.action] == ["R", "M", "M", "M"]
    assert list(ev.sequence) == [100, 100, 100, 105]
    assert loaded.instruments[0].size_decimals == 1
    assert list(ev.size) == [0, 10, 20, 15]


def test_binance_pu_gap_is_an_error_or_a_counted_gap(tmp_path):
    paths = binance_files(tmp_path, "BTCUSDT,1001,101,105,b,set,9.9,1.500,100\n"
                                    "BTCUSDT,1002,106,110,b,set,9.9,0.000,105\n"
                                    "BTCUSDT,1003,115,120,a,set,10.6,1.000,112\n")
    with pytest.raises(TapeError) as exc:
        load("binance", paths)
    assert_names(exc, paths[1], 4, "pu")
    loaded = load("binance", paths, repair=True)
    assert loaded.repairs.counts["sequence_gap"] == 1
    assert len(loaded.events) == 6


def test_binance_missing_column_names_it(tmp_path):
    paths = binance_files(tmp_path, "")
    paths[1].write_text(HEADER.replace(",qty", "")
                        + shifted("BTCUSDT,1001,101,105,b,set,9.9,100\n", 1, MS0))
    with pytest.raises(TapeError) as exc:
        load("binance", paths)
    assert_names(exc, paths[1], None, "qty")


def test_binance_unparsable_id_names_row_and_field(tmp_path):
    paths = binance_files(tmp_path, "BTCUSDT,1001,101,1o5,b,set,9.9,1.500,100\n")
    with pytest.raises(TapeError) as exc:
        load("binance", paths)
    assert_names(exc, paths[1], 2, "last_update_id")


def test_binance_empty_qty_is_an_error_or_a_dropped_row(tmp_path):
    paths = binance_files(tmp_path, "BTCUSDT,1001,101,105,b,set,9.9,1.500,100\n"
                                    "BTCUSDT,1001,101,105,a,set,10.9,,100\n")
    with pytest.raises(TapeError) as exc:
        load("binance", paths)
    assert_names(exc, paths[1], 3, "qty")
    loaded = load("binance", paths, repair=True)
    assert loaded.repairs.counts["missing_value"] == 1
    assert len(loaded.events) == 4


def test_binance_negative_qty_is_an_error_or_a_dropped_row(tmp_path):
    paths = binance_files(tmp_path, "BTCUSDT,1001,101,105,b,set,9.9,-1.500,100\n"
                                    "BTCUSDT,1001,101,105,a,set,10.9,1,100\n")
    with pytest.raises(TapeError) as exc:
        load("binance", paths)
    assert_names(exc, paths[1], 2, "qty")
    loaded = load("binance", paths, repair=True)
    assert loaded.repairs.counts["non_positive_size"] == 1
    assert len(loaded.events) == 4


def test_binance_unsorted_timestamp_is_an_error_or_a_stable_sort(tmp_path):
    paths = binance_files(tmp_path, "BTCUSDT,1003,101,105,b,set,9.9,1.5,100\n"
                                    "BTCUSDT,1002,106,110,b,set,9.8,1.5,105\n")
    with pytest.raises(TapeError) as exc:
        load("binance", paths)
    assert_names(exc, paths[1], 3, "timestamp")
    loaded = load("binance", paths, repair=True)
    assert loaded.repairs.counts["unsorted_ts"] == 1
    assert np.all(np.diff(loaded.events.ts) >= 0)


def test_binance_unknown_side_names_row_and_field(tmp_path):
    paths = binance_files(tmp_path, "BTCUSDT,1001,101,105,x,set,9.9,1.500,100\n")
    with pytest.raises(TapeError) as exc:
        load("binance", paths)
    assert_names(exc, paths[1], 2, "side")


# --- Tardis -----------------------------------------------------------------------------

def test_tardis_sample_is_one_snapshot_message():
    rows = read_rows(TARDIS)
    loaded = load("tardis", [TARDIS])
    ev, inst = loaded.events, loaded.instruments[0]
    assert (inst.symbol, inst.venue, inst.book_type) == ("BTC-PERPETUAL", "deribit", "L2")
    assert len(ev) == 1 + len(rows)
    assert ev.action[0] == ACTIONS["R"]
    assert np.all(ev.flags & F_SNAPSHOT)
    messages = {(r["symbol"], r["timestamp"], r["local_timestamp"]) for r in rows}
    assert int(np.count_nonzero(ev.flags & F_LAST)) == len(messages)
    assert ev.flags[-1] & F_LAST
    assert np.all(ev.ts == int(rows[0]["timestamp"]) * 1000)
    assert list(ev.sequence) == [0] + list(range(len(rows)))


def test_tardis_best_ask_and_sizes_match_the_file():
    rows = read_rows(TARDIS)
    loaded = load("tardis", [TARDIS])
    ev, inst = loaded.events, loaded.instruments[0]
    levels = ev.action != ACTIONS["R"]
    best_ask = min(Decimal(r["price"]) for r in rows if r["side"] == "ask")
    assert natural(ev.price[levels & (ev.side == ASK)].min(), inst.price_decimals) == best_ask
    assert not np.any(levels & (ev.side == BID))  # the sample holds only asks
    assert [(natural(p, inst.price_decimals), natural(s, inst.size_decimals))
            for p, s in zip(ev.price[levels], ev.size[levels], strict=True)] == [
        (Decimal(r["price"]), Decimal(r["amount"])) for r in rows]


TARDIS_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"


def tardis_file(tmp_path: Path, body: str, header: str = TARDIS_HEADER) -> Path:
    path = tmp_path / "book.csv"
    path.write_text(header + shifted(body, 2, US0))
    return path


def test_tardis_snapshot_after_updates_clears_and_zero_amount_deletes(tmp_path):
    path = tardis_file(tmp_path,
                       "deribit,X,100,101,true,bid,10,5\n"
                       "deribit,X,100,101,true,ask,11,6\n"
                       "deribit,X,200,201,false,bid,10,0\n"
                       "deribit,X,200,201,false,ask,11.5,2.5\n"
                       "deribit,X,300,301,true,bid,9,1\n")
    ev = load("tardis", [path]).events
    assert [chr(a) for a in ev.action] == ["R", "M", "M", "D", "M", "R", "M"]
    assert list(ev.flags & F_LAST) == [0, 0, F_LAST, 0, F_LAST, 0, F_LAST]
    assert list(ev.flags & F_SNAPSHOT) == [F_SNAPSHOT] * 3 + [0, 0] + [F_SNAPSHOT] * 2
    assert list(ev.ts - US0 * 1000) == [100_000] * 3 + [200_000] * 2 + [300_000] * 2
    assert list(ev.price) == [0, 100, 110, 100, 115, 0, 90]
    assert list(ev.size) == [0, 50, 60, 0, 25, 0, 10]


def test_tardis_files_merge_by_time_with_one_instrument_per_symbol(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text(TARDIS_HEADER + shifted("deribit,X,100,101,true,bid,10,5\n"
                                         "deribit,X,300,301,false,bid,10,4\n", 2, US0))
    b = tmp_path / "b.csv"
    b.write_text(TARDIS_HEADER + shifted("deribit,Y,200,201,true,ask,20,1\n", 2, US0))
    loaded = load("tardis", [a, b])
    ev = loaded.events
    assert [i.symbol for i in loaded.instruments] == ["X", "Y"]
    assert [chr(c) for c in ev.action] == ["R", "M", "R", "M", "M"]
    assert list(ev.instrument) == [0, 0, 1, 1, 0]
    assert list(ev.sequence) == [0, 0, 2, 2, 1]
    assert int(np.count_nonzero(ev.flags & F_LAST)) == 3


def test_tardis_missing_column_names_it(tmp_path):
    path = tardis_file(tmp_path, "deribit,X,100,101,true,bid,10\n",
                       header=TARDIS_HEADER.replace(",amount", ""))
    with pytest.raises(TapeError) as exc:
        load("tardis", [path])
    assert_names(exc, path, None, "amount")


def test_tardis_unparsable_timestamp_names_row_and_field(tmp_path):
    path = tardis_file(tmp_path, "deribit,X,100,101,true,bid,10,5\n"
                                 "deribit,X,1.5e2,101,false,bid,10,5\n")
    with pytest.raises(TapeError) as exc:
        load("tardis", [path])
    assert_names(exc, path, 3, "timestamp")


def test_tardis_unparsable_price_names_row_and_field(tmp_path):
    path = tardis_file(tmp_path, "deribit,X,100,101,true,bid,10,5\n"
                                 "deribit,X,200,201,false,bid,ten,5\n")
    with pytest.raises(TapeError) as exc:
        load("tardis", [path])
    assert_names(exc, path, 3, "price")


def test_tardis_nan_amount_is_an_error_or_a_dropped_row(tmp_path):
    path = tardis_file(tmp_path, "deribit,X,100,101,true,bid,10,5\n"
                                 "deribit,X,200,201,false,bid,10,NaN\n")
    with pytest.raises(TapeError) as exc:
        load("tardis", [path])
    assert_names(exc, path, 3, "amount")
    loaded = load("tardis", [path], repair=True)
    assert loaded.repairs.counts["missing_value"] == 1
    assert len(loaded.events) == 2


def test_tardis_negative_amount_is_an_error_or_a_dropped_row(tmp_path):
    path = tardis_file(tmp_path, "deribit,X,100,101,true,bid,10,5\n"
                                 "deribit,X,200,201,false,bid,10,-5\n")
    with pytest.raises(TapeError) as exc:
        load("tardis", [path])
    assert_names(exc, path, 3, "amount")
    loaded = load("tardis", [path], repair=True)
    assert loaded.repairs.counts["non_positive_size"] == 1
    assert len(loaded.events) == 2


def test_tardis_unsorted_timestamp_is_an_error_or_a_stable_sort(tmp_path):
    path = tardis_file(tmp_path, "deribit,X,100,101,true,bid,10,5\n"
                                 "deribit,X,300,301,false,bid,10,4\n"
                                 "deribit,X,200,201,false,bid,10,3\n")
    with pytest.raises(TapeError) as exc:
        load("tardis", [path])
    assert_names(exc, path, 4, "timestamp")
    loaded = load("tardis", [path], repair=True)
    assert loaded.repairs.counts["unsorted_ts"] == 1
    assert list(loaded.events.size) == [0, 5, 3, 4]


def test_tardis_unknown_side_names_row_and_field(tmp_path):
    path = tardis_file(tmp_path, "deribit,X,100,101,true,buy,10,5\n")
    with pytest.raises(TapeError) as exc:
        load("tardis", [path])
    assert_names(exc, path, 2, "side")
