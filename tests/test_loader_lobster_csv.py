"""LOBSTER message files and the generic CSV format, on good and bad input.

No real LOBSTER sample can be redistributed here, so tests/data/lobster-synthetic-message.csv
is a synthetic message file written by hand in LOBSTER's layout (Time, Type, Order ID, Size,
Price, Direction; no header): three submissions, a partial cancel, a visible execution, a
hidden execution, a deletion, a cross trade, the three halt codes and a second execution.
"""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from replay.loaders import load
from replay.quality import TapeError
from replay.tape import ACTIONS, ASK, BID, F_LAST, NONE

DATA = Path(__file__).parent / "data"
LOBSTER = DATA / "lobster-synthetic-message.csv"


def assert_names(exc: pytest.ExceptionInfo, path: Path, row: int | None, field: str) -> None:
    """The error names the file, the row and the field, in the message and as attributes."""
    err, msg = exc.value, str(exc.value)
    assert str(path) in msg
    assert err.row == row and err.field == field
    if row is not None:
        assert f"row {row}," in msg or f"row {row}:" in msg
    assert repr(field) in msg


def letters(codes: np.ndarray) -> str:
    return "".join(chr(c) for c in codes)


# --- LOBSTER ----------------------------------------------------------------------------

def test_lobster_types_map_to_tape_actions():
    loaded = load("lobster", [LOBSTER], date="2012-06-21", symbol="SYNTH")
    ev = loaded.events
    assert letters(ev.action) == "AAACFCTDTSSSFC"
    assert letters(ev.side) == "BABBAAABNNNNBB"
    assert list(ev.order_id) == [16113575, 16120456, 16132009, 16113575, 16120456, 16120456,
                                 0, 16132009, 0, 0, 0, 0, 16113575, 16113575]
    assert list(ev.size) == [18, 18, 18, 8, 10, 10, 50, 18, 1000, 0, 0, 0, 10, 10]
    assert list(ev.price[9:12]) == [-1, 0, 1]  # the halt codes
    (inst,) = loaded.instruments
    assert (inst.symbol, inst.venue, inst.book_type, inst.price_decimals) == (
        "SYNTH", "NASDAQ", "L3", 4)


def test_lobster_execution_is_a_fill_then_a_cancel_in_one_packet():
    ev = load("lobster", [LOBSTER], date="2012-06-21").events
    with open(LOBSTER, newline="") as f:
        rows = list(csv.reader(f))
    assert int(np.count_nonzero(ev.flags & F_LAST)) == len(rows)
    fills = np.flatnonzero(ev.action == ACTIONS["F"])
    assert np.all(ev.flags[fills] & F_LAST == 0)
    after = fills + 1
    assert np.all(ev.action[after] == ACTIONS["C"]) and np.all(ev.flags[after] & F_LAST)
    for column in ("ts", "side", "price", "size", "order_id", "sequence"):
        assert np.array_equal(getattr(ev, column)[fills], getattr(ev, column)[after])
    assert list(ev.sequence) == [0, 1, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10, 11, 11]


def test_lobster_time_is_exchange_local_and_exact_to_the_nanosecond():
    ev = load("lobster", [LOBSTER], date="2012-06-21").events
    # New York is on daylight time (UTC-4) in June: 34200 s after midnight is 13:30 UTC
    open_ns = int(datetime(2012, 6, 21, 13, 30, tzinfo=UTC).timestamp()) * 10**9
    assert ev.ts[0] == open_ns + 4_241_176
    assert ev.ts[7] == open_ns + 30_000_001
    winter = load("lobster", [LOBSTER], date="2012-01-20").events
    assert winter.ts[0] - ev.ts[0] == (
        int(datetime(2012, 1, 20, 14, 30, tzinfo=UTC).timestamp())
        - int(datetime(2012, 6, 21, 13, 30, tzinfo=UTC).timestamp())) * 10**9
    assert np.all(np.diff(ev.ts) >= 0)


def test_lobster_symbol_defaults_to_the_file_name_prefix(tmp_path):
    path = tmp_path / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
    shutil.copy(LOBSTER, path)
    assert load("lobster", [path], date="2012-06-21").instruments[0].symbol == "AAPL"


def test_lobster_requires_the_date():
    with pytest.raises(ValueError, match="date"):
        load("lobster", [LOBSTER])


def lobster_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "MSFT_2012-06-21_message.csv"
    path.write_text(body)
    return path


GOOD = "34200.1,1,1,100,300000,1\n"


def test_lobster_unknown_type_names_row_and_field(tmp_path):
    path = lobster_file(tmp_path, GOOD + "34200.2,8,1,100,300000,1\n")
    with pytest.raises(TapeError) as exc:
        load("lobster", [path], date="2012-06-21")
    assert_names(exc, path, 2, "Type")


def test_lobster_unparsable_size_names_row_and_field(tmp_path):
    path = lobster_file(tmp_path, GOOD + "34200.2,1,2,1OO,300000,1\n")
    with pytest.raises(TapeError) as exc:
        load("lobster", [path], date="2012-06-21")
    assert_names(exc, path, 2, "Size")


def test_lobster_unparsable_time_names_row_and_field(tmp_path):
    path = lobster_file(tmp_path, GOOD + "34200.2.5,1,2,100,300000,1\n")
    with pytest.raises(TapeError) as exc:
        load("lobster", [path], date="2012-06-21")
    assert_names(exc, path, 2, "Time")


def test_lobster_empty_price_is_an_error_or_a_dropped_row(tmp_path):
    path = lobster_file(tmp_path, GOOD + "34200.2,1,2,100,,1\n34200.3,3,1,100,300000,1\n")
    with pytest.raises(TapeError) as exc:
        load("lobster", [path], date="2012-06-21")
    assert_names(exc, path, 2, "Price")
    loaded = load("lobster", [path], date="2012-06-21", repair=True)
    assert loaded.repairs.counts["missing_value"] == 1
    assert letters(loaded.events.action) == "AD"
    assert list(loaded.events.sequence) == [0, 2]


def test_lobster_negative_size_is_an_error_or_a_dropped_row(tmp_path):
    path = lobster_file(tmp_path, GOOD + "34200.2,1,2,-5,300000,1\n")
    with pytest.raises(TapeError) as exc:
        load("lobster", [path], date="2012-06-21")
    assert_names(exc, path, 2, "Size")
    loaded = load("lobster", [path], date="2012-06-21", repair=True)
    assert loaded.repairs.counts["non_positive_size"] == 1
    assert len(loaded.events) == 1


def test_lobster_unsorted_time_is_an_error_or_a_stable_sort(tmp_path):
    path = lobster_file(tmp_path, GOOD + "34200.3,1,2,5,300100,-1\n34200.2,3,1,100,300000,1\n")
    with pytest.raises(TapeError) as exc:
        load("lobster", [path], date="2012-06-21")
    assert_names(exc, path, 3, "Time")
    loaded = load("lobster", [path], date="2012-06-21", repair=True)
    assert loaded.repairs.counts["unsorted_ts"] == 1
    assert letters(loaded.events.action) == "ADA"


def test_lobster_invalid_direction_names_row_and_field(tmp_path):
    path = lobster_file(tmp_path, GOOD + "34200.2,1,2,5,300100,0\n")
    with pytest.raises(TapeError) as exc:
        load("lobster", [path], date="2012-06-21")
    assert_names(exc, path, 2, "Direction")


# --- Generic CSV ------------------------------------------------------------------------

HEADER = "ts,instrument,action,side,price,size,order_id\n"


T0 = 1_722_816_000 * 10**9  # 2024-08-05T00:00:00Z: times must fall in 1990-2100


def at_t0(body: str) -> str:
    """Rows whose ``ts`` is a small integer, moved to that many nanoseconds after T0."""
    out = []
    for row in body.splitlines(keepends=True):
        ts, sep, rest = row.partition(",")
        out.append(f"{T0 + int(ts)}{sep}{rest}" if ts.isdigit() and len(ts) < 6 else row)
    return "".join(out)


def csv_file(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "events.csv"
    path.write_text(header + at_t0(body))
    return path


def test_csv_reads_every_column_exactly(tmp_path):
    path = csv_file(tmp_path,
                    "2024-08-05T00:00:00.000000001Z,005930,A,B,71000,10,17\n"
                    "1722816000000000002,005930,T,A,71000,3,\n"
                    "2024-08-05 09:00:00.5+09:00,BTC-USD,M,A,58210.25,0.015,0\n"
                    "2024-08-05T00:00:01,BTC-USD,R,N,,,\n")
    loaded = load("csv", [path])
    ev = loaded.events
    t0 = int(datetime(2024, 8, 5, tzinfo=UTC).timestamp()) * 10**9
    assert list(ev.ts) == [t0 + 1, t0 + 2, t0 + 500_000_000, t0 + 1_000_000_000]
    assert letters(ev.action) == "ATMR" and letters(ev.side) == "BAAN"
    assert list(ev.instrument) == [0, 0, 1, 1]
    assert list(ev.order_id) == [17, 0, 0, 0]
    assert np.all(ev.flags == F_LAST)
    assert list(ev.sequence) == [0, 1, 2, 3]
    krx, btc = loaded.instruments
    assert (krx.symbol, krx.book_type, krx.price_decimals, krx.size_decimals) == (
        "005930", "L3", 0, 0)
    assert (btc.symbol, btc.price_decimals, btc.size_decimals) == ("BTC-USD", 2, 3)
    assert natural(ev.price[2], btc.price_decimals) == Decimal("58210.25")
    assert natural(ev.size[2], btc.size_decimals) == Decimal("0.015")


def natural(units: int, decimals: int) -> Decimal:
    return Decimal(int(units)).scaleb(-decimals)


def test_csv_book_type_is_l2_without_order_ids_and_can_be_overridden(tmp_path):
    path = csv_file(tmp_path, "1,X,M,B,10,5\n2,X,M,B,10,0\n",
                    header="ts,instrument,action,side,price,size\n")
    assert load("csv", [path]).instruments[0].book_type == "L2"
    assert load("csv", [path], book_type="L3").instruments[0].book_type == "L3"


def test_csv_tick_sets_tick_units(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10.5,5,1\n2,X,A,A,11,5,2\n")
    inst = load("csv", [path], tick="0.25").instruments[0]
    assert (inst.price_decimals, inst.tick_units) == (2, 25)


def test_csv_off_grid_price_names_row_and_field(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10.5,5,1\n2,X,A,A,11.1,5,2\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path], tick="0.25")
    assert_names(exc, path, 3, "price")


def test_csv_missing_column_names_it(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,5,1\n", header="ts,instrument,action,side,size,order_id\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, None, "price")


def test_csv_unparsable_size_names_row_and_field(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10,5,1\n2,X,A,B,10,five,2\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, 3, "size")


def test_csv_unparsable_ts_names_row_and_field(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10,5,1\n2024-13-01T00:00:00Z,X,A,B,10,5,2\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, 3, "ts")


def test_csv_nan_price_is_an_error_or_a_dropped_row(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10,5,1\n2,X,A,B,NaN,5,2\n3,X,D,B,10,5,1\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, 3, "price")
    loaded = load("csv", [path], repair=True)
    assert loaded.repairs.counts["missing_value"] == 1
    assert loaded.repairs.examples["missing_value"] == [3]
    assert letters(loaded.events.action) == "AD"


def test_csv_non_positive_size_is_an_error_or_a_dropped_row(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10,5,1\n2,X,T,A,10,0,0\n3,X,A,B,10,-1,2\n"
                              "4,X,M,B,10,0,1\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, 3, "size")
    loaded = load("csv", [path], repair=True)
    assert loaded.repairs.counts["non_positive_size"] == 2
    assert letters(loaded.events.action) == "AM"  # a modify to size 0 is legal


def test_csv_unsorted_ts_is_an_error_or_a_stable_sort(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10,5,1\n3,X,A,B,10,5,2\n2,X,A,B,10,5,3\n3,X,D,B,10,5,1\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, 4, "ts")
    loaded = load("csv", [path], repair=True)
    assert loaded.repairs.counts["unsorted_ts"] == 1
    assert list(loaded.events.order_id) == [1, 3, 2, 1]
    assert list(loaded.events.sequence) == [0, 2, 1, 3]


def test_csv_unknown_action_names_row_and_field(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10,5,1\n2,X,X,B,10,5,2\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, 3, "action")


def test_csv_unknown_side_names_row_and_field(tmp_path):
    path = csv_file(tmp_path, "1,X,A,B,10,5,1\n2,X,A,S,10,5,2\n")
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, 3, "side")


def test_csv_files_merge_by_time(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text(HEADER + at_t0("1,X,A,B,10,5,1\n3,X,A,B,10,5,2\n"))
    b = tmp_path / "b.csv"
    b.write_text(HEADER + at_t0("2,Y,A,A,20,1,7\n3,Y,D,A,20,1,7\n"))
    ev = load("csv", [a, b]).events
    assert list(ev.ts - T0) == [1, 2, 3, 3]
    assert list(ev.instrument) == [0, 1, 0, 1]
    assert list(ev.sequence) == [0, 2, 1, 3]
    assert ev.side[1] == ASK and ev.side[0] == BID and NONE not in ev.side


def test_csv_row_numbers_are_file_lines_despite_blank_lines_and_quotes(tmp_path):
    path = csv_file(tmp_path, '1,"X",A,B,10,5,1\n\n2,X,A,B,10,5,2\n3,X,A,B,ten,5,3\n')
    with pytest.raises(TapeError) as exc:
        load("csv", [path])
    assert_names(exc, path, 5, "price")


def test_csv_short_row_is_a_truncated_row(tmp_path):
    # a row cut short must not read as empty values: a lost order_id would read as 0
    path = csv_file(tmp_path, "1,X,A,B,10,5,1\n2,X,A,B\n")
    with pytest.raises(TapeError, match="truncated row: 4 fields, expected 7") as exc:
        load("csv", [path])
    assert (exc.value.row, str(path) in str(exc.value)) == (3, True)
    assert load("csv", [path], repair=True).repairs.counts["truncated_row"] == 1


def test_a_price_too_large_for_int64_units_is_named(tmp_path):
    from replay.loaders import load
    from replay.quality import TapeError

    src = tmp_path / "huge.csv"
    src.write_text("ts,instrument,action,side,price,size,order_id\n"
                   + at_t0("1,X,A,B,1.5,1,1\n2,X,A,B,99999999999999999999,1,2\n"))
    with pytest.raises(TapeError, match=r"row 3.*price.*out of bounds.*2\*\*53"):
        load("csv", [src])
