"""The krx-orders loader (docs/data-formats.md: KRX order book file; layout
docs/reference/krx-data-formats.md: 1): real rows, a whole name-day whose book columns an
independent reference book filled, bad input, several stocks."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.loaders import load
from replay.loaders.krx_orders import LAYOUT_61
from replay.quality import TapeError
from replay.tape import ADD, ASK, BID, CANCEL, DELETE, F_AUCTION, F_LAST, FILL, NONE, TRADE
from tests.krx_orders_fixture import ASK as ASK_CODE
from tests.krx_orders_fixture import BID as BID_CODE
from tests.krx_orders_fixture import ISIN, _row, name_day, write

SHIPPED = Path(__file__).parent / "data" / "krx-st5001-fixture-20171030.csv.gz"

# -- (1) the three real rows of the reference ------------------------------------------------

# The columns the reference prints, by 0-based position (docs/reference/krx-data-formats.md: 1).
_REAL = [
    # 0-10, 11-14 (ASK1, ASK1Q, ASK2, ASK2Q), then 41-60
    ("KR7009620006", 20171030, 23650, 1, 0, 19550, 2, 1, 2, 0, 8000, 19650, 5, 19700, 582,
     125949640, 0, 0, 21901, 29871, 34709, 19550, 0, 0, 0, 15350, 19850, 14400, 0, 2, 0, 40,
     4465, 4210, 0),
    ("KR7009620006", 20171030, 23651, 1, 0, 19500, 1, 1, 2, 0, 8000, 19650, 5, 19700, 582,
     125949734, 0, 0, 21901, 29871, 34710, 19550, 77, 1505350, 125949735, 15350, 19850, 14400,
     0, 2, 0, 40, 4465, 4210, 0),
    ("KR7009620006", 20171030, 23654, 1, 0, 19600, 2, 2, 2, 0, 8000, 19650, 5, 19700, 582,
     125950687, 0, 0, 21901, 29919, 34715, 19550, 0, 0, 0, 15350, 19850, 14400, 23599, 2, 0,
     40, 4465, 3432, 0),
]
# Columns the reference does not show, filled with neutral values: ORD_ACPT_TM (31) =
# 회원사주문시각 (41), the member's order time; ORD_PRC (33) = 호가장처리가격 (5); ORD_QTY (32)
# 100 for the first bid, 77 for the ask (its 누적체결수량) and 48 for the modify (the bid
# total's change on its row); ask levels 3-5 and all bid levels (15-30) and columns 34-40 0.
_QTY = (100, 77, 48)


def _real_rows() -> list[list]:
    rows = []
    for shown, qty in zip(_REAL, _QTY, strict=True):
        row = [0] * 61
        row[0:15] = shown[0:15]
        row[41:61] = shown[15:35]
        row[31], row[32], row[33] = row[41], qty, row[5]
        rows.append(row)
    return rows


def test_the_real_rows_parse_to_their_times_prices_and_sides(tmp_path):
    path = write(tmp_path / "stkord_20171030.csv.gz", _real_rows())
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    with pytest.raises(TapeError) as err:  # the modify's parent 23599 is not in the rows
        load("krx-orders", [path])
    assert "stkord_20171030.csv.gz, row 3, field 'ORGN_ORD_ACPT_NO'" in str(err.value)
    assert "23599" in str(err.value)
    loaded = load("krx-orders", [path], repair=True)
    assert loaded.repairs.counts == {"unknown_parent_dropped": 1}
    (inst,) = loaded.instruments
    assert (inst.symbol, inst.venue, inst.market, inst.tick_units, inst.prev_close_units) \
        == ("009620", "XKRX", "KOSDAQ", 50, 0)
    e = loaded.events
    # 12:59:49.640 KST on 2017-10-30 is 03:59:49.640 UTC
    t0 = round(datetime(2017, 10, 30, 3, 59, 49, 640_000, tzinfo=UTC).timestamp() * 1000) * 10**6
    add = e.action == ADD
    assert e.ts[add][0] == t0 and e.side[add][0] == BID and e.price[add][0] == 19_550
    assert e.size[add][0] == 100
    # the ask at 19,500 crosses the bid at 19,550: 77 shares trade at 19,550, the ask
    # the aggressor; 77 x 19,550 is the row's own 누적거래대금, 1,505,350
    t = e.action == TRADE
    assert e.side[t].tolist() == [ASK] and e.price[t].tolist() == [19_550]
    assert e.size[t].tolist() == [77] and 77 * 19_550 == 1_505_350
    assert e.ts[t][0] == t0 + 94 * 10**6
    fill = e.action == FILL
    assert e.order_id[fill].tolist() == [20171030 * 10**10 + 23650]
    # the book columns show a book the two rows alone cannot build: every row mismatches
    # the totals (21,901 asks shown; the loader's book has none) in either reading
    check = loaded.book_check["book_check"]
    assert check["rows_checked"] == 2
    for reading in ("before", "after"):
        assert check["mismatches"][reading]["ask_total"] == 2
        assert check["mismatches"][reading]["ask_price"] == 2
    # the one agreement: the first row's bid levels (not shown, filled 0) before its event,
    # when the loader's book is still empty; it says nothing about the file's reading
    assert check["mismatches"]["before"]["bid_price"] == 1
    assert check["mismatches"]["after"]["bid_price"] == 2
    assert check["fits"] == "before"


def test_the_time_drops_its_leading_zero_before_ten(tmp_path):
    rows = name_day(continuous_rows=40, call_rows=10)
    first = rows[0]
    assert first[31] < 10**8  # 08:30:..: eight digits
    loaded = load("krx-orders", [write(tmp_path / "d.csv", rows)])
    tm = first[31]
    kst = datetime(2017, 10, 30, tm // 10**7, tm // 10**5 % 100, tm // 1000 % 100,
                   tm % 1000 * 1000, tzinfo=ZoneInfo("Asia/Seoul"))
    assert kst.hour == 8 and kst.utcoffset().total_seconds() == 9 * 3600
    assert loaded.events.ts[0] == int(kst.timestamp() * 10**6) * 1000


# -- (2) a whole name-day, its book columns from an independent reference book -------------

@pytest.fixture(scope="module")
def day_rows() -> list[list]:
    return name_day()


def test_the_shipped_fixture_is_the_generators_output(day_rows):
    shipped = gzip.decompress(SHIPPED.read_bytes()).decode("cp949").splitlines()
    assert shipped == [",".join(map(str, r)) for r in day_rows]


def test_the_loaders_book_reproduces_every_rows_book_columns(day_rows, tmp_path):
    loaded = load("krx-orders", [write(tmp_path / "day.csv.gz", day_rows)])
    check = loaded.book_check["book_check"]
    assert check["rows_checked"] == len(day_rows)
    assert check["fits"] == "after"
    assert set(check["mismatches"]["after"].values()) == {0}
    assert sum(check["mismatches"]["before"].values()) > len(day_rows)
    e = loaded.events
    kinds = {chr(a) for a in np.unique(e.action)}
    assert kinds == {"A", "C", "D", "F", "T"}
    # two uncross packets, every row flagged; prints without an aggressor
    auction = (e.flags & F_AUCTION) > 0
    prints = auction & (e.action == TRADE)
    assert prints.sum() == 2 and set(e.side[prints]) == {NONE}
    assert ((e.flags[auction] & F_LAST) > 0).sum() == 2
    # every fill is followed by the cancel that takes it off the book
    f = np.flatnonzero(e.action == FILL)
    assert (e.action[f + 1] == CANCEL).all() and (e.order_id[f + 1] == e.order_id[f]).all()
    assert (np.diff(e.ts) >= 0).all() and (np.diff(e.sequence.astype(np.int64)) == 1).all()
    # the day ends with a packet deleting every order still resting
    assert e.action[-1] == DELETE and e.flags[-1] & F_LAST


def test_a_perturbed_copy_counts_each_mismatch_by_kind(day_rows, tmp_path):
    rows = [list(r) for r in day_rows]
    continuous = [i for i, r in enumerate(rows) if r[57] == 40]
    for i in continuous[100:103]:
        rows[i][12] += 1  # ASK_STEP1_BSTORD_RQTY
    for i in continuous[200:202]:
        rows[i][45] += 7  # 매수총호가잔량
    rows[continuous[300]][21] = 0  # BID_STEP1_BSTORD_PRC
    check = load("krx-orders", [write(tmp_path / "p.csv", rows)]).book_check["book_check"]
    assert check["mismatches"]["after"] == {"ask_price": 0, "ask_size": 3, "bid_price": 1,
                                            "bid_size": 0, "ask_total": 0, "bid_total": 2}
    assert check["first_mismatch"]["after"]["ask_size"] == f"p.csv:{continuous[100] + 1}"


def test_a_header_file_is_read_by_column_name_in_cp949(day_rows, tmp_path):
    names = {v: k for k, v in LAYOUT_61.items()}
    names.update({44: "매도총호가잔량", 45: "매수총호가잔량", 42: "예상체결가격",
                  55: "시장구분코드", 5: "호가장처리가격"})
    header = [names.get(i, f"COL{i}") for i in range(61)]
    plain = load("krx-orders", [write(tmp_path / "a.csv", day_rows)])
    named = load("krx-orders", [write(tmp_path / "b.csv", day_rows, header=header)])
    assert (named.events.price == plain.events.price).all()
    assert named.book_check["book_check"]["mismatches"] == \
        plain.book_check["book_check"]["mismatches"]


def test_a_columns_map_reads_a_layout_the_loader_does_not_know(day_rows, tmp_path):
    wanted = ["ISU_CD", "ORD_DD", "ORD_ACPT_NO", "ASKBID_TP_CD", "MODCANCL_TP_CD",
              "ORD_ACPT_TM", "ORD_QTY", "ORD_PRC", "ORGN_ORD_ACPT_NO", "MKTSTAT_TP_CD"]
    rows = [[r[LAYOUT_61[f]] for f in reversed(wanted)] for r in day_rows]
    (tmp_path / "map.toml").write_text(
        "[columns]\n" + "".join(f"{f} = {len(wanted) - 1 - i}\n" for i, f in enumerate(wanted)))
    src = write(tmp_path / "other.csv", rows)
    with pytest.raises(TapeError, match="10 columns without a header"):
        load("krx-orders", [src])
    mapped = load("krx-orders", [src], columns=tmp_path / "map.toml")
    plain = load("krx-orders", [write(tmp_path / "a.csv", day_rows)])
    assert (mapped.events.order_id == plain.events.order_id).all()
    assert "book_check" not in mapped.book_check  # no book columns: nothing to check
    # the same by column names, in a header the loader does not know, short codes
    korean = ["종목", "일자", "접수번호", "매도매수", "정정취소", "접수시각", "수량", "가격",
              "원주문번호", "장상태"]
    named = [[r[0][3:9] if i == 0 else r[i] for i in range(10)]
             for r in ([r[LAYOUT_61[f]] for f in wanted] for r in day_rows)]
    (tmp_path / "names.toml").write_text(
        "[columns]\n" + "".join(f'{f} = "{k}"\n' for f, k in zip(wanted, korean, strict=True)),
        encoding="utf-8")
    src = write(tmp_path / "named.csv", named, header=korean)
    by_name = load("krx-orders", [src], columns=tmp_path / "names.toml")
    assert (by_name.events.order_id == plain.events.order_id).all()
    assert by_name.instruments.by_symbol("009620")


def test_import_and_check_show_the_book_check(tmp_path):
    runner = CliRunner()
    tape = tmp_path / "t.parquet"
    r = runner.invoke(app, ["data", "import", "--format", "krx-orders", str(SHIPPED), "-o",
                            str(tape)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["data", "check", "--json", str(tape)])
    report = json.loads(r.output)
    check = report["book_check_at_import"]["book_check"]
    assert check["fits"] == "after" and set(check["mismatches"]["after"].values()) == {0}
    assert report["problems"]["unknown_order_id"] == 0
    r = runner.invoke(app, ["data", "check", str(tape)])
    assert "fit the book after each row's event better" in " ".join(r.output.split())


# -- (3) bad input: file, row, field ------------------------------------------------------------

def _bad(tmp_path, row: int, col: int, value) -> str:
    rows = [list(r) for r in name_day(continuous_rows=60, call_rows=10)]
    rows[row][col] = value
    with pytest.raises(TapeError) as err:
        load("krx-orders", [write(tmp_path / "bad.csv", rows)])
    return str(err.value)


@pytest.mark.parametrize("col, value, field, words", [
    (0, "KR70096200", "ISU_CD", "neither an ISIN"),
    (31, 126149640, "ORD_ACPT_TM", "not a time HHMMSSmmm"),
    (6, 3, "ASKBID_TP_CD", "1 ask (sell), 2 bid (buy)"),
    (7, 4, "MODCANCL_TP_CD", "not 1 new, 2 modify or 3 cancel"),
    (33, "195a0", "ORD_PRC", "'195a0' is not an integer"),
    (33, 19_555, "ORD_PRC", "off the KOSPI tick grid"),
    (1, 20171340, "ORD_DD", "not a date"),
    (57, 30, "MKTSTAT_TP_CD", "not a market state"),
])
def test_a_bad_field_names_file_row_and_field(tmp_path, col, value, field, words):
    message = _bad(tmp_path, 20, col, value)
    assert f"bad.csv, row 21, field '{field}'" in message and words in message


def test_an_unknown_parent_names_its_row_or_is_dropped_and_counted(tmp_path):
    rows = [list(r) for r in name_day(continuous_rows=60, call_rows=10)]
    i = next(j for j, r in enumerate(rows) if r[7] == 3 and j > 15)
    rows[i][54] = 999_999
    src = write(tmp_path / "bad.csv", rows)
    with pytest.raises(TapeError, match=rf"bad.csv, row {i + 1}, field 'ORGN_ORD_ACPT_NO'"):
        load("krx-orders", [src])
    assert load("krx-orders", [src], repair=True).repairs.counts["unknown_parent_dropped"] == 1


def test_a_modify_on_the_other_side_of_its_parent_is_an_error(tmp_path):
    rows = [list(r) for r in name_day(continuous_rows=60, call_rows=10)]
    i = next(j for j, r in enumerate(rows) if r[7] == 2 and j > 15)
    rows[i][6] = 3 - rows[i][6]
    with pytest.raises(TapeError, match=rf"bad.csv, row {i + 1}, field 'ASKBID_TP_CD'"):
        load("krx-orders", [write(tmp_path / "bad.csv", rows)])


def test_an_opening_call_state_after_continuous_trading_is_an_error(tmp_path):
    message = _bad(tmp_path, 30, 57, 10)
    assert "bad.csv, row 31, field 'MKTSTAT_TP_CD'" in message


def _order(no, side, kind, tm, qty, price, parent=0, state=40):
    return _row(no, side, kind, tm, qty, price, parent, state, [0] * 22, 0, 0)


def test_orders_that_change_nothing_are_counted(tmp_path):
    rows = [_order(1, BID_CODE, 1, 100000000, 100, 19_550),
            _order(2, ASK_CODE, 1, 100000100, 100, 19_500),  # fills the bid
            _order(3, BID_CODE, 3, 100000200, 100, 0, parent=1),  # cancel: nothing left
            _order(4, BID_CODE, 1, 100000300, 30, 0),  # a market buy, no ask to take
            _order(5, ASK_CODE, 1, 100000400, 10, 19_600),
            _order(6, BID_CODE, 1, 100000500, 25, 0)]  # takes 10, 15 unfilled
    loaded = load("krx-orders", [write(tmp_path / "few.csv", rows)])
    assert loaded.book_check["order_stats"] == {"parent_gone": 1, "market_unfilled_rows": 2,
                                                "market_unfilled_shares": 45}
    e = loaded.events
    assert e.size[e.action == TRADE].tolist() == [100, 10]


def test_market_orders_wait_at_the_books_edge_in_a_call_auction(tmp_path):
    rows = [_order(1, BID_CODE, 1, 85000000, 100, 0, state=10),  # market buy, 08:50
            _order(2, ASK_CODE, 1, 85100000, 60, 19_500, state=10),
            _order(3, ASK_CODE, 1, 85200000, 10, 0, state=10),  # market sell
            _order(4, BID_CODE, 1, 90000500, 5, 19_450)]
    e = load("krx-orders", [write(tmp_path / "call.csv", rows)]).events
    adds = e.price[e.action == ADD].tolist()
    assert adds[0] > 19_500 and adds[2] < 19_450  # one tick beyond the file's prices
    prints = (e.action == TRADE) & (e.flags & F_AUCTION > 0)
    # 70 shares cross at the only limit price; the market buy's 30 left are deleted
    assert e.price[prints].tolist() == [19_500] and e.size[prints].tolist() == [70]
    uncross_ts = e.ts[prints][0]
    assert uncross_ts == round(datetime(2017, 10, 30, 0, 0, tzinfo=UTC).timestamp()) * 10**9
    deleted = (e.action == DELETE) & (e.ts == uncross_ts)
    assert e.size[deleted].tolist() == [30]


def test_a_row_with_the_wrong_column_count_names_its_line(tmp_path):
    rows = [list(r) for r in name_day(continuous_rows=60, call_rows=10)]
    rows[30] = rows[30][:60]
    with pytest.raises(TapeError, match="bad.csv, row 31: 60 fields, expected 61"):
        load("krx-orders", [write(tmp_path / "bad.csv", rows)])


def test_a_missing_column_shows_the_cp949_header_decoded(tmp_path):
    header = ["ISU_CD", "ORD_DD", "매도총호가잔량"]
    src = write(tmp_path / "h.csv", [[ISIN, 20171030, 5]], header=header)
    assert src.read_bytes().decode("cp949").startswith("ISU_CD,ORD_DD,매도총호가잔량")
    with pytest.raises(TapeError) as err:
        load("krx-orders", [src])
    assert "h.csv, row 1, field 'ORD_ACPT_NO'" in str(err.value)
    assert "매도총호가잔량" in str(err.value)


def test_a_bad_columns_map_is_an_error_naming_the_key(tmp_path):
    (tmp_path / "m.toml").write_text('[columns]\nORD_PRICE = 3\n')
    with pytest.raises(ValueError, match="key 'ORD_PRICE' is not a field"):
        load("krx-orders", [SHIPPED], columns=tmp_path / "m.toml")


# -- (4) several stocks -------------------------------------------------------------------------

def test_several_isins_make_several_instruments(day_rows, tmp_path):
    other = [list(r) for r in name_day(seed=11, continuous_rows=300, call_rows=40)]
    for r in other:
        r[0], r[55] = "KR7005930003", 2
    one = load("krx-orders", [write(tmp_path / "a.csv", day_rows)])
    two = load("krx-orders", [write(tmp_path / "b.csv", other)])
    both = load("krx-orders", [write(tmp_path / "ab.csv", day_rows + other)])
    files = load("krx-orders", [tmp_path / "a.csv", tmp_path / "b.csv"])
    assert [(i.instrument_id, i.symbol, i.market) for i in both.instruments] == \
        [(1, "005930", "KOSDAQ"), (2, "009620", "KOSPI")]
    for merged in (both, files):
        e = merged.events
        assert (np.diff(e.ts) >= 0).all()
        for inst, alone in ((2, one), (1, two)):
            mine = e.instrument == inst
            assert (e.price[mine] == alone.events.price).all()
            assert (e.order_id[mine] == alone.events.order_id).all()
        assert set(merged.book_check["book_check"]["mismatches"]["after"].values()) == {0}


def test_a_second_day_starts_from_an_empty_book(day_rows, tmp_path):
    second = [list(r) for r in day_rows]
    for r in second:
        r[1] = 20171031
    one = load("krx-orders", [write(tmp_path / "a.csv", day_rows)])
    two = load("krx-orders", [write(tmp_path / "b.csv", day_rows + second)])
    e, n = two.events, len(one.events)
    assert len(e) == 2 * n
    assert (e.ts[n:] - e.ts[:n] == 86_400 * 10**9).all()
    ids = e.order_id[:n] > 0  # prints carry no order
    assert (e.order_id[n:][ids] - e.order_id[:n][ids] == 10**10).all()
    assert (e.order_id[n:][~ids] == 0).all()
    assert (e.price[n:] == e.price[:n]).all() and (e.action[n:] == e.action[:n]).all()
    assert set(two.book_check["book_check"]["mismatches"]["after"].values()) == {0}


def test_an_empty_value_names_its_row_or_is_dropped_and_counted(tmp_path):
    rows = [list(r) for r in name_day(continuous_rows=60, call_rows=10)]
    i = next(j for j, r in enumerate(rows) if r[7] == 1 and j > 40)  # a new order
    rows[i][33] = ""
    src = write(tmp_path / "bad.csv", rows)
    with pytest.raises(TapeError, match=rf"bad.csv, row {i + 1}, field 'ORD_PRC': missing"):
        load("krx-orders", [src])
    assert load("krx-orders", [src], repair=True).repairs.counts == {"missing_value": 1}


def test_rows_are_counted_as_lines_past_blank_lines_and_crlf(tmp_path):
    rows = [list(r) for r in name_day(continuous_rows=60, call_rows=10)]
    rows[40][6] = 9
    text = [",".join(map(str, r)) for r in rows]
    text.insert(5, "")
    (tmp_path / "bad.csv").write_bytes(("\r\n".join(text) + "\r\n").encode())
    with pytest.raises(TapeError, match=r"bad.csv, row 42, field 'ASKBID_TP_CD'"):
        load("krx-orders", [tmp_path / "bad.csv"])


def test_a_call_auction_of_market_orders_alone_has_no_price(tmp_path):
    rows = [_order(1, BID_CODE, 1, 85000000, 100, 0, state=10),
            _order(2, ASK_CODE, 1, 85100000, 60, 0, state=10),
            _order(3, ASK_CODE, 1, 90000500, 5, 19_450)]
    loaded = load("krx-orders", [write(tmp_path / "call.csv", rows)])
    e = loaded.events
    assert not (e.action == TRADE).any() and (e.price > 0).all()
    assert loaded.book_check["order_stats"]["market_unfilled_shares"] == 160


def test_off_hours_rows_are_skipped_and_counted(day_rows, tmp_path):
    late = _order(90_000, BID_CODE, 1, 155000000, 10, 19_550, state=40)
    late[3] = 2  # REGUL_OFFHR_TP_CD: an off-hours session
    post = _order(90_001, ASK_CODE, 1, 160500000, 10, 19_600, state=70)
    loaded = load("krx-orders", [write(tmp_path / "d.csv", day_rows + [late, post])])
    plain = load("krx-orders", [write(tmp_path / "p.csv", day_rows)])
    assert loaded.repairs.counts == {"off_hours_row_skipped": 2}
    assert loaded.repairs.examples["off_hours_row_skipped"] == [len(day_rows) + 1,
                                                                len(day_rows) + 2]
    assert (loaded.events.order_id == plain.events.order_id).all()
