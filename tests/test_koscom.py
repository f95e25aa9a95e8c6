"""Koscom trade files (replay/loaders/koscom.py).

No real Koscom row is public: every file here is synthetic, built from the documented
layout (docs/reference/krx-data-formats.md: 2), in both widths (45 and 51 columns), gzip
or plain, CP949 with Korean text in a column the loader does not read.
"""

import gzip
from datetime import UTC, datetime

import numpy as np
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.loaders import load
from replay.quality import TapeError
from replay.tape import ASK, BID, F_AUCTION, F_LAST, NONE, TRADE, Tape, write_tape

SAMSUNG, ECOPRO = "KR7005930003", "KR7247540008"  # 005930 (KOSPI), 247540 (KOSDAQ)


def row(tm, price, volume, side, bid_no, ask_no, isin=SAMSUNG, day="20230802", width=45,
        trd_no=1, note="일반"):
    """One trade row in the documented column order; the columns the loader does not read
    hold plausible values (데이터구분 holds Korean text, written as CP949)."""
    f = [""] * width
    f[0], f[1], f[2], f[3], f[4], f[5] = day, "0", "1", isin, "17", str(trd_no)
    f[6], f[7], f[8], f[9], f[10], f[11], f[12] = str(price), str(volume), "1", day, tm, "0", "0"
    f[13:24] = ["00005", "2", "", "", "2", "1", "00005", "0", "8000", "00", str(bid_no)]
    f[24:35] = ["00036", "2", "", "", "1", "1", "00036", "0", "9000", "10", str(ask_no)]
    f[35:45] = [str(price), str(price), str(price), str(price), str(volume),
                str(price * volume), side, "0", note, str(trd_no)]
    if width == 51:
        f[45:51] = ["0", "0", "G1", "40", "92300", "49700"]
    return "|".join(f)


def day_of_samsung(width=45):
    """The opening cross (blank side), continuous trades, the closing cross (blank)."""
    return [row("90000000", 71_000, 120_000, "", 11, 12, width=width, trd_no=1),
            row("90000123", 71_100, 10, "2", 31, 12, width=width, trd_no=2),  # buy-initiated
            row("90000123", 71_000, 5, "1", 11, 44, width=width, trd_no=3),  # sell-initiated
            row("101500999", 70_900, 7, "1", 52, 53, width=width, trd_no=4),
            row("153000000", 70_500, 300_000, "", 61, 62, width=width, trd_no=5)]


def write(path, lines, encoding="cp949", gz=None):
    data = ("\n".join(lines) + "\n").encode(encoding)
    if gz if gz is not None else path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def utc_ns(*args):
    y, mo, d, h, mi, s, ms = args
    return int(datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()) * 10**9 + ms * 10**6


def test_a_45_column_gzipped_cp949_file(tmp_path):
    path = write(tmp_path / "SKSNXTRDIJH_2023_08.dat.gz", day_of_samsung())
    assert "일반".encode("cp949") in gzip.decompress(path.read_bytes())
    loaded = load("koscom-trades", [path])
    ev = loaded.events
    assert len(ev) == 5 and set(ev.action.tolist()) == {TRADE}
    # KST 09:00:00.123 is 00:00:00.123 UTC; TRD_TM 90000123 has lost its leading zero
    assert ev.ts.tolist() == [utc_ns(2023, 8, 2, 0, 0, 0, 0), utc_ns(2023, 8, 2, 0, 0, 0, 123),
                              utc_ns(2023, 8, 2, 0, 0, 0, 123),
                              utc_ns(2023, 8, 2, 1, 15, 0, 999), utc_ns(2023, 8, 2, 6, 30, 0, 0)]
    assert ev.price.tolist() == [71_000, 71_100, 71_000, 70_900, 70_500]
    assert ev.size.tolist() == [120_000, 10, 5, 7, 300_000]
    assert ev.side.tolist() == [NONE, BID, ASK, ASK, NONE]
    assert ev.flags.tolist() == [F_LAST | F_AUCTION, F_LAST, F_LAST, F_LAST, F_LAST | F_AUCTION]
    assert loaded.extra["bid_order_no"].tolist() == [11, 31, 11, 52, 61]
    assert loaded.extra["ask_order_no"].tolist() == [12, 12, 44, 53, 62]
    assert loaded.extra["bid_order_no"].dtype == np.uint64
    inst = loaded.instruments[0]
    assert (inst.symbol, inst.venue, inst.market, inst.book_type, inst.tick_units) == (
        "005930", "XKRX", "KOSPI", "L2", 100)
    assert ev.sequence.tolist() == [0, 1, 2, 3, 4]


def test_a_51_column_file_of_two_codes_is_merged_by_time(tmp_path):
    samsung = day_of_samsung(width=51)
    ecopro = [row("90000050", 300_500, 4, "2", 7, 8, isin=ECOPRO, width=51),
              row("101501000", 301_000, 3, "1", 9, 10, isin=ECOPRO, width=51)]
    # the file lists one code's trades after the other's
    path = write(tmp_path / "SQSNXTRDIJH_2023_08.dat", ecopro + samsung, encoding="cp949")
    loaded = load("koscom-trades", [path])
    ev = loaded.events
    assert [i.symbol for i in loaded.instruments] == ["247540", "005930"]
    assert {i.market for i in loaded.instruments} == {"KOSDAQ"}  # from the file name
    assert ev.instrument.tolist() == [1, 0, 1, 1, 1, 0, 1]
    assert np.all(ev.ts[1:] >= ev.ts[:-1])
    assert ev.sequence.tolist() == [2, 0, 3, 4, 5, 1, 6]  # each row's line - 1
    assert loaded.instruments[0].tick_units == 500  # 300,500 won: the 500-won band


def test_the_code_or_isin_option_keeps_one_codes_trades(tmp_path):
    lines = [row("90000050", 300_500, 4, "2", 7, 8, isin=ECOPRO), *day_of_samsung()]
    path = write(tmp_path / "SKSNXTRDIJH_2023_08.dat.txt.gz", lines)
    for symbol in ("005930", SAMSUNG):
        loaded = load("koscom-trades", [path], symbol=symbol)
        assert [i.symbol for i in loaded.instruments] == ["005930"]
        assert len(loaded.events) == 5
    with pytest.raises(TapeError, match="no trade of 000660"):
        load("koscom-trades", [path], symbol="000660")


def test_order_numbers_round_trip_through_a_tape_and_the_cli(tmp_path):
    path = write(tmp_path / "SKSNXTRDIJH_2023_08.dat.gz", day_of_samsung())
    loaded = load("koscom-trades", [path])
    tape = Tape(write_tape(tmp_path / "t.parquet", loaded.events, loaded.instruments,
                           extra=loaded.extra))
    assert tape.extra == ("bid_order_no", "ask_order_no")
    for name in tape.extra:
        assert np.array_equal(tape.read_extra(name), loaded.extra[name])
    assert np.array_equal(tape.read().price, loaded.events.price)
    out = tmp_path / "cli.parquet"
    result = CliRunner().invoke(app, ["data", "import", "--format", "koscom-trades", str(path),
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert Tape(out).read_extra("ask_order_no").tolist() == [12, 12, 44, 53, 62]
    # a tape without them has none, and says so
    plain = Tape(write_tape(tmp_path / "plain.parquet", loaded.events, loaded.instruments))
    assert plain.extra == ()
    with pytest.raises(ValueError, match="no column 'bid_order_no'"):
        plain.read_extra("bid_order_no")
    with pytest.raises(ValueError, match="unknown extra"):
        write_tape(tmp_path / "x.parquet", loaded.events, loaded.instruments,
                   extra={"order_no": loaded.extra["bid_order_no"]})


def test_one_codes_rows_out_of_time_order_are_an_error_or_sorted_and_counted(tmp_path):
    lines = day_of_samsung()
    lines[3], lines[4] = lines[4], lines[3]  # line 5 goes back from 15:30 to 10:15
    path = write(tmp_path / "SKSNXTRDIJH_2023_08.dat", lines)
    with pytest.raises(TapeError, match="backwards") as exc:
        load("koscom-trades", [path])
    assert (exc.value.row, exc.value.field) == (5, "TRD_TM")
    loaded = load("koscom-trades", [path], repair=True)
    assert loaded.events.price.tolist() == [71_000, 71_100, 71_000, 70_900, 70_500]
    assert loaded.repairs.counts == {"unsorted_ts": 1}


def good():
    return day_of_samsung()


def replace(k, **kw):
    """The good day with row ``k`` rebuilt with the fields ``kw`` changed."""
    base = dict(zip(("tm", "price", "volume", "side", "bid_no", "ask_no"),
                    (("90000000", 71_000, 120_000, "", 11, 12),
                     ("90000123", 71_100, 10, "2", 31, 12),
                     ("90000123", 71_000, 5, "1", 11, 44),
                     ("101500999", 70_900, 7, "1", 52, 53),
                     ("153000000", 70_500, 300_000, "", 61, 62))[k], strict=True))
    lines = good()
    lines[k] = row(**{**base, **kw})
    return lines


BAD = [
    # (case, lines, line, field, words in the message)
    ("hour-25", replace(1, tm="250000123"), 2, "TRD_TM", "time of day"),
    ("minute-61", replace(1, tm="96100123"), 2, "TRD_TM", "time of day"),
    ("ten-digit-time", replace(1, tm="1000000123"), 2, "TRD_TM", "HHMMSSmmm"),
    ("letter-in-time", replace(1, tm="9000012a"), 2, "TRD_TM", "HHMMSSmmm"),
    ("bad-date", [row("90000123", 71_000, 1, "2", 1, 2, day="20230230")], 1, "TRD_DD",
     "not a date"),
    ("date-1970", [row("90000123", 71_000, 1, "2", 1, 2, day="19700102")], 1, "TRD_TM",
     "1990"),
    ("letter-in-price", replace(2, price="71O00"), 3, "TRD_PRC", "whole won"),
    ("negative-price", replace(2, price="-71000"), 3, "TRD_PRC", "unsigned"),
    ("fraction-price", replace(2, price="71000.5"), 3, "TRD_PRC", "whole won"),
    ("full-width-price", replace(2, price="７１０００"), 3, "TRD_PRC", "７１０００"),
    ("zero-price", replace(2, price="0"), 3, "TRD_PRC", "positive"),
    ("signed-volume", replace(2, volume="+5"), 3, "TRDVOL", "unsigned"),
    ("unknown-side-code", replace(3, side="3"), 4, "LST_ASKBID_TP_CD", "side code"),
    ("bad-order-number", replace(3, bid_no="12a"), 4, "BIDORD_ACPT_NO", "order number"),
    ("bad-isin", [row("90000123", 71_000, 1, "2", 1, 2, isin="KR700593000")], 1, "종목코드",
     "ISIN"),
    ("isin-check-digit", [row("90000123", 71_000, 1, "2", 1, 2, isin="KR7005930004")], 1,
     "종목코드", "check digit"),
    ("short-row", good()[:2] + [good()[2].rsplit("|", 1)[0]] + good()[3:], 3, "MSG_SEQ",
     "44 columns"),
    ("long-row", good()[:2] + [good()[2] + "|x"] + good()[3:], 3, None, "46 columns"),
    ("46-column-file", [good()[0] + "|x"], 1, None, "46 columns"),
]


@pytest.mark.parametrize("case,lines,line,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_row_and_field(tmp_path, case, lines, line, field, words):
    path = write(tmp_path / "SKSNXTRDIJH_2023_08.dat.gz", lines)
    with pytest.raises(TapeError, match=words) as exc:
        load("koscom-trades", [path])
    assert (exc.value.file, exc.value.row, exc.value.field) == (str(path), line, field)


def test_empty_files_and_files_that_are_not_gzip_or_not_cp949(tmp_path):
    for name, data in (("empty.dat", b""), ("blank.dat.gz", gzip.compress(b"\n\n"))):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(TapeError, match="no events"):
            load("koscom-trades", [tmp_path / name])
    fake = tmp_path / "SKSNXTRDIJH_2023_08.dat.gz"
    fake.write_bytes(b"not gzip")
    with pytest.raises(TapeError, match="not a gzip file"):
        load("koscom-trades", [fake])
    cut = tmp_path / "cut.dat.gz"
    cut.write_bytes(gzip.compress(("\n".join(good()) + "\n").encode())[:-30])
    with pytest.raises(TapeError, match="gzip"):
        load("koscom-trades", [cut])
    lines = good()
    raw = ("\n".join(lines) + "\n").encode("cp949").replace(b"|71000|5|", b"|71000|\xff|")
    undecodable = tmp_path / "bad.dat"
    undecodable.write_bytes(raw)
    with pytest.raises(TapeError, match="CP949") as exc:
        load("koscom-trades", [undecodable])
    assert (exc.value.row, exc.value.field) == (3, "TRDVOL")


def test_repairs_are_counted(tmp_path):
    lines = good()
    lines[1] = row("90000123", 71_100, 0, "2", 31, 12)  # size 0
    lines[2] = row("90000123", "", 5, "1", 11, 44)  # no price
    lines[4] = lines[4][:40]  # a cut-off last line
    path = write(tmp_path / "SKSNXTRDIJH_2023_08.dat", lines)
    with pytest.raises(TapeError, match="8 columns") as exc:  # the shape is read first
        load("koscom-trades", [path])
    assert (exc.value.row, exc.value.field) == (5, "TRD_TP_CD")  # the first column it lacks
    whole = write(tmp_path / "whole.dat", lines[:4])
    with pytest.raises(TapeError, match="missing value") as exc:
        load("koscom-trades", [whole])
    assert (exc.value.row, exc.value.field) == (3, "TRD_PRC")
    with pytest.raises(TapeError, match="positive") as exc:
        load("koscom-trades", [write(tmp_path / "zero.dat", lines[:2])])
    assert (exc.value.row, exc.value.field) == (2, "TRDVOL")
    loaded = load("koscom-trades", [path], repair=True)
    assert loaded.events.price.tolist() == [71_000, 70_900]
    assert loaded.events.sequence.tolist() == [0, 3]
    assert loaded.repairs.counts == {"missing_value": 1, "non_positive_size": 1,
                                     "truncated_row": 1}
    assert loaded.repairs.examples == {"missing_value": [3], "non_positive_size": [2],
                                       "truncated_row": [5]}


def test_a_blank_line_is_skipped_and_the_lines_after_it_keep_their_numbers(tmp_path):
    lines = good()
    lines.insert(2, "")
    lines[4] = lines[4].replace("|70900|", "|70x00|", 1)  # line 5
    path = write(tmp_path / "SKSNXTRDIJH_2023_08.dat", lines)
    with pytest.raises(TapeError) as exc:
        load("koscom-trades", [path])
    assert (exc.value.row, exc.value.field) == (5, "TRD_PRC")
    ok = write(tmp_path / "ok.dat", good()[:2] + [""] + good()[2:])
    assert len(load("koscom-trades", [ok]).events) == 5


def test_many_rows_are_read_in_blocks_with_their_line_numbers(tmp_path, monkeypatch):
    import replay.loaders.koscom as koscom

    monkeypatch.setattr(koscom, "BLOCK_BYTES", 4096)  # many blocks
    n = 3000
    lines = [row(f"{90000000 + k * 10}", 71_000 + 100 * (k % 7), 1 + k % 5, "12"[k % 2], k,
                 k + 1) for k in range(n)]
    lines[2500] = lines[2500].replace("|KR7005930003|", "|KR700593000X|")
    path = write(tmp_path / "SKSNXTRDIJH_2023_08.dat.gz", lines)
    with pytest.raises(TapeError) as exc:
        load("koscom-trades", [path])
    assert (exc.value.row, exc.value.field) == (2501, "종목코드")
    lines[2500] = lines[2500].rsplit("|", 3)[0]  # cut short: dropped under --repair
    write(path, lines)
    loaded = load("koscom-trades", [path], repair=True)
    assert len(loaded.events) == n - 1 and loaded.repairs.counts == {"truncated_row": 1}
    kept = [k for k in range(n) if k != 2500]
    assert loaded.extra["bid_order_no"].tolist() == kept
    assert loaded.events.sequence.tolist() == kept


def test_a_tape_writer_refuses_optional_columns_it_was_not_given_or_of_another_length(tmp_path):
    from replay.tape import TapeWriter

    loaded = load("koscom-trades", [write(tmp_path / "SKSNXTRDIJH_2023_08.dat",
                                          day_of_samsung())])
    writer = TapeWriter(tmp_path / "w.parquet", loaded.instruments,
                        extra=("bid_order_no", "ask_order_no"))
    with pytest.raises(ValueError, match="optional columns"):
        writer.write(loaded.events)
    with pytest.raises(ValueError, match="has 4 rows"):
        writer.write(loaded.events, {"bid_order_no": loaded.extra["bid_order_no"][:4],
                                     "ask_order_no": loaded.extra["ask_order_no"]})
    writer.write(loaded.events.take(slice(0, 2)),
                 {k: v[:2] for k, v in loaded.extra.items()})
    writer.write(loaded.events.take(slice(2, 5)),
                 {k: v[2:] for k, v in loaded.extra.items()})
    tape = Tape(writer.close())
    assert tape.read_extra("bid_order_no").tolist() == [11, 31, 11, 52, 61]
