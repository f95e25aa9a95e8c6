"""Kiwoom opt10079 trade rows (replay/loaders/kiwoom.py).

``tests/data/kiwoom-opt10079-ticks-039490-2022-12-22.csv`` is a real recording (900 trades
of 키움증권 039490, copied verbatim with its ``# source:`` line). The small files written in
the tests are synthetic, in the same layout.
"""

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.loaders import load
from replay.quality import TapeError
from replay.tape import F_LAST, NONE, TRADE, Tape

REAL = Path(__file__).parent / "data" / "kiwoom-opt10079-ticks-039490-2022-12-22.csv"
HEADER = ",체결시간,현재가,거래량,시가,고가,저가"


def utc_ns(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 10**9


def file_rows(path: Path) -> list[dict]:
    """The data rows as the csv module reads them, in file order (newest first)."""
    with path.open(encoding="utf-8") as fh:
        lines = [t for t in fh if not t.startswith("#")]
    return list(csv.DictReader(lines))


def write(tmp_path, rows, name="kiwoom-005930.csv", header=HEADER, encoding="utf-8"):
    path = tmp_path / name
    body = "\n".join([header, *(f"{k},{r}" for k, r in enumerate(rows))]) + "\n"
    path.write_bytes(body.encode(encoding))
    return path


def row(stamp, price, volume):
    p = str(price).lstrip("+-")
    return f"{stamp},{price},{volume},{p},{p},{p}"


def test_the_real_900_trades_come_in_time_order_with_the_files_prices_and_volumes():
    loaded = load("kiwoom-ticks", [REAL])
    ev = loaded.events
    rows = file_rows(REAL)[::-1]  # oldest first
    assert len(ev) == len(rows) == 900
    # 14:24:51 and 15:30:31 KST are 05:24:51 and 06:30:31 UTC
    assert ev.ts[0] == utc_ns(2022, 12, 22, 5, 24, 51)
    assert ev.ts[-1] == utc_ns(2022, 12, 22, 6, 30, 31)
    assert np.all(ev.ts[1:] >= ev.ts[:-1])
    assert ev.price.tolist() == [abs(int(r["현재가"])) for r in rows]
    assert ev.size.tolist() == [int(r["거래량"]) for r in rows]
    assert int(ev.size.sum()) == sum(int(r["거래량"]) for r in rows) == 12_382
    assert set(ev.action.tolist()) == {TRADE}
    assert set(ev.side.tolist()) == {NONE}  # the file names no aggressor
    assert np.all(ev.flags & F_LAST)
    # the pandas index of the file: the last row (index 899) is the first trade
    assert ev.sequence[0] == 899 and ev.sequence[-1] == 0
    inst = loaded.instruments[0]
    assert (inst.symbol, inst.venue, inst.book_type, inst.tick_units) == ("039490", "XKRX",
                                                                          "L2", 100)
    assert loaded.repairs.total == 0


def test_trades_of_one_second_share_it_in_the_files_order_reversed():
    ev = load("kiwoom-ticks", [REAL]).events
    rows = file_rows(REAL)
    second = [r for r in rows if r["체결시간"] == "20221222142458"]
    assert len(second) == 12
    mine = ev.ts == utc_ns(2022, 12, 22, 5, 24, 58)
    assert ev.size[mine].tolist() == [int(r["거래량"]) for r in second[::-1]]
    assert ev.sequence[mine].tolist() == [int(r[""]) for r in second[::-1]]


def test_the_price_is_the_absolute_value_of_kiwooms_signed_price(tmp_path):
    path = write(tmp_path, [row("20240805100002", "-70900", 3),
                            row("20240805100001", "+71100", 2),
                            row("20240805100000", "71000", 1)])
    ev = load("kiwoom-ticks", [path]).events
    assert ev.price.tolist() == [71000, 71100, 70900]
    assert ev.size.tolist() == [1, 2, 3]
    assert set(ev.side.tolist()) == {NONE}  # the sign is no aggressor


def test_the_symbol_comes_from_the_option_or_the_file_name(tmp_path):
    rows = [row("20240805100000", "71000", 1)]
    assert load("kiwoom-ticks", [write(tmp_path, rows, "ticks_005930_20240805.csv")]
                ).instruments[0].symbol == "005930"
    named = write(tmp_path, rows, "ticks.csv")
    assert load("kiwoom-ticks", [named], symbol="000660").instruments[0].symbol == "000660"
    with pytest.raises(TapeError, match="--symbol") as exc:
        load("kiwoom-ticks", [named])
    assert exc.value.field == "symbol"
    with pytest.raises(TapeError, match="several codes"):
        load("kiwoom-ticks", [write(tmp_path, rows, "005930-vs-000660.csv")])


def test_an_oldest_first_file_is_read_as_it_is(tmp_path):
    path = write(tmp_path, [row("20240805100000", "71000", 1), row("20240805100001", "71100", 2)])
    assert load("kiwoom-ticks", [path]).events.size.tolist() == [1, 2]


def test_a_file_in_neither_order_names_the_row_or_is_sorted_and_counted(tmp_path):
    path = write(tmp_path, [row("20240805100005", "71000", 1),
                            row("20240805100001", "71100", 2),
                            row("20240805100003", "71200", 3),  # line 4: time goes up
                            row("20240805100000", "71300", 4)])
    with pytest.raises(TapeError, match="newest first") as exc:
        load("kiwoom-ticks", [path])
    assert (exc.value.row, exc.value.field) == (4, "체결시간")
    loaded = load("kiwoom-ticks", [path], repair=True)
    assert loaded.events.size.tolist() == [4, 2, 3, 1]
    assert loaded.repairs.counts == {"unsorted_ts": 1}


def test_several_files_make_one_tape_merged_by_time(tmp_path):
    a = write(tmp_path, [row("20240805100002", "71000", 1), row("20240805100000", "71000", 2)],
              "005930.csv")
    b = write(tmp_path, [row("20240805100001", "171000", 3)], "000660.csv")
    loaded = load("kiwoom-ticks", [a, b])
    assert loaded.events.size.tolist() == [2, 3, 1]
    assert loaded.events.instrument.tolist() == [0, 1, 0]
    assert [i.symbol for i in loaded.instruments] == ["005930", "000660"]
    assert [i.tick_units for i in loaded.instruments] == [100, 100]
    assert loaded.events.sequence.tolist() == [1, 2, 0]  # across files, in the order given


BAD = [
    # (case, rows or raw text, line, field, words in the message)
    ("bad-time-month", [row("20241305100000", "71000", 1)], 2, "체결시간", "date and time"),
    ("bad-time-day", [row("20240230100000", "71000", 1)], 2, "체결시간", "date and time"),
    ("bad-time-hour", [row("20240805250000", "71000", 1)], 2, "체결시간", "date and time"),
    ("short-time", [row("2024080510000", "71000", 1)], 2, "체결시간", "YYYYMMDDHHMMSS"),
    ("time-1970", [row("19700105100000", "71000", 1)], 2, "체결시간", "1990"),
    ("bad-price", [row("20240805100001", "71000", 1), row("20240805100000", "7l000", 1)], 3,
     "현재가", "not an integer"),
    ("bad-sign", [row("20240805100000", "+-71000", 1)], 2, "현재가", "sign"),
    ("zero-price", [row("20240805100000", "0", 1)], 2, "현재가", "positive"),
    ("huge-price", [row("20240805100000", "9" * 20, 1)], 2, "현재가", r"2\*\*53"),
    ("signed-volume", [row("20240805100000", "71000", "-5")], 2, "거래량", "unsigned"),
    ("full-width-digits", [row("20240805100000", "７１０００", 1)], 2, "현재가", "integer"),
    ("wrong-column-count", [row("20240805100001", "71000", 1), "20240805100000,71000"], 3,
     "거래량", "3 fields"),
    ("too-many-columns", [row("20240805100001", "71000", 1) + ",1"], 2, None, "8 fields"),
    # a blank line is skipped: the row after it keeps its own line number
    ("after-a-blank-line", [row("20240805100001", "71000", 1), "", row("2024080510000", "7", 1)],
     4, "체결시간", "YYYYMMDDHHMMSS"),
]


@pytest.mark.parametrize("case,rows,line,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_row_and_field(tmp_path, case, rows, line, field, words):
    path = tmp_path / "kiwoom-005930.csv"
    path.write_text("\n".join([HEADER, *(f"{k},{r}" if r else r for k, r in enumerate(rows))])
                    + "\n", encoding="utf-8")
    with pytest.raises(TapeError, match=words) as exc:
        load("kiwoom-ticks", [path])
    assert (exc.value.file, exc.value.row, exc.value.field) == (str(path), line, field)


def test_empty_header_only_and_missing_columns_are_errors(tmp_path):
    empty = tmp_path / "005930.csv"
    empty.write_bytes(b"")
    with pytest.raises(TapeError, match="no events"):
        load("kiwoom-ticks", [empty])
    header_only = write(tmp_path, [], "005930-header.csv")
    with pytest.raises(TapeError, match="no data rows"):
        load("kiwoom-ticks", [header_only])
    no_volume = write(tmp_path, ["20240805100000,71000"], header=",체결시간,현재가")
    with pytest.raises(TapeError, match="missing column") as exc:
        load("kiwoom-ticks", [no_volume])
    assert (exc.value.row, exc.value.field) == (1, "거래량")


def test_zero_volumes_and_missing_values_are_errors_or_dropped_and_counted(tmp_path):
    path = write(tmp_path, [row("20240805100002", "71000", 0),
                            "20240805100001,,1,,,",
                            row("20240805100000", "71000", 4)])
    with pytest.raises(TapeError) as exc:
        load("kiwoom-ticks", [path])
    assert (exc.value.row, exc.value.field) == (3, "현재가")  # the missing price comes first
    loaded = load("kiwoom-ticks", [path], repair=True)
    assert loaded.events.size.tolist() == [4]
    assert loaded.repairs.counts == {"missing_value": 1, "non_positive_size": 1}
    assert loaded.repairs.examples == {"missing_value": [3], "non_positive_size": [2]}


def test_a_cp949_file_is_decoded(tmp_path):
    path = write(tmp_path, [row("20240805100000", "-71000", 7)], encoding="cp949")
    assert path.read_bytes().find("체결시간".encode("cp949")) > 0
    ev = load("kiwoom-ticks", [path]).events
    assert (ev.price[0], ev.size[0]) == (71000, 7)
    garbled = tmp_path / "005930-bad.csv"
    garbled.write_bytes(HEADER.encode() + b"\n0,\xff\xfe,1,1,1,1,1\n")
    with pytest.raises(TapeError, match="CP949") as exc:
        load("kiwoom-ticks", [garbled])
    assert exc.value.row == 2


def test_the_cli_imports_the_real_file_and_the_tape_reads_back(tmp_path):
    out = tmp_path / "kiwoom.parquet"
    result = CliRunner().invoke(app, ["data", "import", "--format", "kiwoom-ticks", str(REAL),
                                      "--symbol", "039490", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "900 events of 039490" in result.output
    tape = Tape(out)
    back, loaded = tape.read(), load("kiwoom-ticks", [REAL])
    for col in ("ts", "price", "size", "side", "action", "flags", "sequence"):
        assert np.array_equal(getattr(back, col), getattr(loaded.events, col)), col
    bad = CliRunner().invoke(app, ["data", "import", "--format", "kiwoom-ticks",
                                   str(tmp_path / "nothing.csv"), "-o", str(out)])
    assert bad.exit_code == 2


def test_a_file_without_the_index_column_with_crlf_and_other_columns(tmp_path):
    path = tmp_path / "039490.csv"
    path.write_bytes("# saved by a script\r\n\r\n체결시간,현재가,거래량,수정주가구분\r\n"
                     "20221222153031,-90500,2623,0\r\n20221222151941,+90300,2,0\r\n"
                     .encode("cp949"))
    ev = load("kiwoom-ticks", [path]).events
    assert ev.price.tolist() == [90300, 90500] and ev.size.tolist() == [2, 2623]
    path.write_bytes("체결시간,현재가,거래량\r\n20221222153031,-9o500,2623\r\n".encode())
    with pytest.raises(TapeError) as exc:
        load("kiwoom-ticks", [path])
    assert (exc.value.row, exc.value.field) == (2, "현재가")
