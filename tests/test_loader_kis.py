"""KIS real-time recordings (docs/reference/kis-realtime.md).

The trade frame below is the real one published in docs/reference/kis-realtime.md (Samsung
Electronics, 2023-03-24 11:26:16), and ``tests/data/kis-h0stasp0-005930-2026-02-20.csv`` is a
real recording (117 H0STASP0 frames of Samsung Electronics, the recorder's clock 2 h behind
KST), shipped as it was recorded. The quote frames made by ``quote_record``, and the trade
frames made by ``trade_record``, are synthetic: built from the published H0STASP0 /
H0STCNT0 field layouts, with made-up prices and sizes.
"""

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from replay.bookview import book_levels
from replay.loaders import load
from replay.quality import TapeError
from replay.tape import ASK, BID, CLEAR, DELETE, F_AUCTION, F_LAST, MODIFY, NONE, TRADE

REAL_TRADE = ("0|H0STCNT0|001|005930^112616^62700^2^400^0.64^62700.41^62700^63000^62300^62700^"
              "62600^125^9694968^607878273600^25807^15918^-9889^93.01^4614191^4291558^1^0.45^"
              "63.03^090013^3^0^090646^5^-300^100741^2^400^20230324^20^N^71292^244009^2795345^"
              "2044512^0.16^5367918^180.61^0^^62700")
SEOUL = ZoneInfo("Asia/Seoul")


def quote_record(hhmmss, asks, bids, code="005930", newer=False):
    """One H0STASP0 record: asks/bids as lists of (price, size), best first."""
    pad = [(0, 0)] * 10
    asks, bids = (list(asks) + pad)[:10], (list(bids) + pad)[:10]
    fields = [code, hhmmss, "0"]
    fields += [str(p) for p, _ in asks] + [str(p) for p, _ in bids]
    fields += [str(s) for _, s in asks] + [str(s) for _, s in bids]
    fields += ["0"] * (59 - len(fields))
    if newer:
        fields += ["0", "0", "0"]
    return "^".join(fields)


def trade_record(hhmmss, price, size, ccld_dvsn, code="005930", day="20240805"):
    """One synthetic H0STCNT0 record (46 fields): only the fields the loader reads are set."""
    fields = ["0"] * 46
    fields[0], fields[1], fields[2], fields[12] = code, hhmmss, str(price), str(size)
    fields[21], fields[33] = ccld_dvsn, day  # CCLD_DVSN, BSOP_DATE
    fields[3] = "3"  # PRDY_VRSS_SIGN: unchanged from the previous close
    return "^".join(fields)


def test_a_bad_change_sign_names_its_line_and_field(tmp_path):
    bad = trade_record("090001", 62700, 5, "1").split("^")
    bad[3] = "9"
    path = write(tmp_path, [REAL_TRADE, "0|H0STCNT0|001|" + "^".join(bad)])
    with pytest.raises(TapeError) as exc:
        load("kis", [path])
    assert (exc.value.row, exc.value.field) == (2, "PRDY_VRSS_SIGN")


def quote_frame(*records):
    return f"0|H0STASP0|{len(records):03d}|" + "^".join(records)


def ladder(best, step, n, size, side):
    sign = -1 if side == "bid" else 1
    return [(best + sign * k * step, size + k) for k in range(n)]


def write(tmp_path, lines, name="rec.txt"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_real_trade_frame(tmp_path):
    loaded = load("kis", [write(tmp_path, [REAL_TRADE])])
    ev = loaded.events
    assert len(ev) == 1 and ev.action[0] == TRADE
    assert (ev.price[0], ev.size[0], ev.side[0]) == (62700, 125, BID)  # CCLD_DVSN 1: buyer
    assert ev.ts[0] == int(datetime(2023, 3, 24, 11, 26, 16, tzinfo=SEOUL).timestamp()) * 10**9
    assert ev.flags[0] & F_LAST
    inst = loaded.instruments[0]
    assert (inst.symbol, inst.venue, inst.book_type, inst.tick_units) == ("005930", "XKRX",
                                                                          "L2", 100)
    # PRDY_VRSS_SIGN 2 (up) and PRDY_VRSS 400: the previous close was 62,300, the base of
    # the day's price limits at the KRX venue
    assert inst.prev_close_units == 62_300


def test_snapshots_become_level_updates_and_the_book_matches_the_last_snapshot(tmp_path):
    asks1, bids1 = ladder(62800, 100, 10, 10, "ask"), ladder(62700, 100, 10, 20, "bid")
    # second snapshot: best ask 62800 grows, bid 62700 is taken (bids shift down a level)
    asks2 = [(62800, 99)] + asks1[1:]
    bids2 = ladder(62600, 100, 10, 30, "bid")
    lines = [REAL_TRADE,  # gives the date
             quote_frame(quote_record("112617", asks1, bids1)),
             quote_frame(quote_record("112618", asks2, bids2, newer=True))]
    loaded = load("kis", [write(tmp_path, lines)])
    ev = loaded.events
    assert ev.action[1] == CLEAR  # first snapshot of the code
    second = ev.ts == ev.ts[-1]
    # 62700 vanished above the new best bid: deleted
    deleted = ev.price[second & (ev.action == DELETE)]
    assert list(deleted) == [62700]
    changed = {(int(p), int(s)) for p, s, a in zip(ev.price[second], ev.size[second],
                                                 ev.action[second], strict=True) if a == MODIFY}
    assert (62800, 99) in changed and (62600, 30) in changed and (61700, 39) in changed
    assert (63000, 12) not in changed  # unchanged ask levels are not repeated
    book = next(iter(book_levels([ev], loaded.instruments, 10))).to_pandas().iloc[-1]
    assert [book[f"ask_px_{k}"] for k in range(10)] == [p for p, _ in asks2]
    assert [book[f"bid_sz_{k}"] for k in range(10)] == [s for _, s in bids2]


def test_a_multi_record_frame_is_split_and_dated_by_option(tmp_path):
    a = quote_record("090001", [(10_100, 5)], [(10_000, 7)], code="000660")
    b = quote_record("090002", [(10_100, 6)], [(10_000, 7)], code="000660")
    loaded = load("kis", [write(tmp_path, [quote_frame(a, b)])], date="2024-08-05")
    ev = loaded.events
    assert ev.ts[0] == int(datetime(2024, 8, 5, 9, 0, 1, tzinfo=SEOUL).timestamp()) * 10**9
    assert list(ev.size[ev.ts == ev.ts[-1]]) == [6]  # only the ask that changed
    assert int((ev.flags & F_LAST > 0).sum()) == 2  # one packet per record


def test_without_a_date_the_frame_is_rejected(tmp_path):
    path = write(tmp_path, [quote_frame(quote_record("090001", [(100, 1)], [(99, 1)]))])
    with pytest.raises(TapeError, match="no date") as exc:
        load("kis", [path])
    assert exc.value.row == 1 and exc.value.field == "date"


def test_receive_time_prefix_orders_events_within_a_second(tmp_path):
    # two trades in the same exchange second, recorded in reverse order of their receive
    # times (file order would put the 300-share trade first)
    t1 = REAL_TRADE.replace("^125^", "^300^")
    lines = ["2023-03-24T11:26:16.700+09:00 " + t1, "2023-03-24T11:26:16.200+09:00 " + REAL_TRADE]
    ev = load("kis", [write(tmp_path, lines)]).events
    assert list(ev.size) == [125, 300]
    # the receive time orders them; the exchange's whole second is the time of both
    assert ev.ts[0] == ev.ts[1] == int(datetime(2023, 3, 24, 11, 26, 16,
                                                tzinfo=SEOUL).timestamp()) * 10**9


def test_malformed_frames_name_their_line(tmp_path):
    bad_count = REAL_TRADE.replace("|001|", "|003|")  # 46 fields do not split in 3
    with pytest.raises(TapeError) as exc:
        load("kis", [write(tmp_path, [REAL_TRADE, bad_count])])
    assert (exc.value.row, exc.value.field) == (2, "NNN")
    short = "0|H0STCNT0|001|005930^112616^62700"
    with pytest.raises(TapeError, match="expected 46") as exc:
        load("kis", [write(tmp_path, [short])])
    assert exc.value.row == 1
    bad_side = REAL_TRADE.replace("^4291558^1^", "^4291558^9^")
    with pytest.raises(TapeError) as exc:
        load("kis", [write(tmp_path, [bad_side])])
    assert exc.value.field == "CCLD_DVSN"


def test_encrypted_and_other_frames_are_skipped_and_counted(tmp_path):
    lines = [REAL_TRADE, "1|H0STCNI0|001|encrypted-account-data",
             "0|H0STMKO0|001|005930^A^B"]
    loaded = load("kis", [write(tmp_path, lines)])
    assert len(loaded.events) == 1
    assert dict(loaded.repairs.counts) == {"encrypted_frame_skipped": 1,
                                           "other_tr_id_skipped": 1}


def test_a_kis_recording_replays_like_any_tape(tmp_path):
    from replay.engine import InjectedOrders, Replay
    from venues.codes import (
        ORDER_TYPES,
    )

    asks, bids = ladder(62800, 100, 10, 10, "ask"), ladder(62700, 100, 10, 20, "bid")
    loaded = load("kis", [write(tmp_path, [REAL_TRADE, quote_frame(
        quote_record("112617", asks, bids))])])
    sell = InjectedOrders(np.array([loaded.events.ts[-1] + 1]), np.array([0]),
                          np.array([ASK]), np.array([ORDER_TYPES["market"]]),
                          np.array([0]), np.array([45]))
    result = Replay(loaded.instruments, "absolute").run([loaded.events], sell)
    assert result.fills.price.tolist() == [62700, 62600, 62500]
    assert result.fills["size"].tolist() == [20, 21, 4]
    # at the KRX venue too: 11:26 is continuous trading, and 62,500 is 0.3% below the last
    # trade, far from a VI; the venue also runs the day's closing auction
    krx = Replay(loaded.instruments, "absolute", venue="krx").run([loaded.events], sell)
    assert krx.fills[krx.fills.source == 1].price.tolist() == [62700, 62600, 62500]
    # krx.md:23-24: width 62,300 x 30% = 18,690, truncated to the base's tick 100: 18,600
    assert krx.sessions.base[0] == 62_300 and krx.sessions.lower_limit[0] == 43_700


def test_a_level_pushed_out_of_the_top_ten_is_unknown_not_empty(tmp_path):
    asks = ladder(62800, 100, 10, 10, "ask")
    bids2 = ladder(62600, 100, 10, 30, "bid")  # 62600 .. 61700
    bids3 = ladder(62700, 100, 10, 40, "bid")  # a new best: 61700 drops out of the ten
    lines = [REAL_TRADE, quote_frame(quote_record("112617", asks, bids2)),
             quote_frame(quote_record("112618", asks, bids3))]
    loaded = load("kis", [write(tmp_path, lines)])
    ev = loaded.events
    third = ev.ts == ev.ts[-1]
    assert not (third & (ev.action == DELETE)).any()
    book = next(iter(book_levels([ev], loaded.instruments, 11))).to_pandas().iloc[-1]
    assert (book["bid_px_10"], book["bid_sz_10"]) == (61700, 39)  # what we last knew


def test_an_auction_print_is_flagged_and_has_no_aggressor(tmp_path):
    # synthetic: the 09:00 opening uncross (CCLD_DVSN 3, pre-open) then continuous trades
    lines = [quote_frame(quote_record("085959", [(70_100, 50)], [(70_000, 80)])),
             f"0|H0STCNT0|001|{trade_record('090000', 70_000, 12_345, '3')}",
             f"0|H0STCNT0|002|{trade_record('090001', 70_100, 10, '1')}^"
             f"{trade_record('090001', 70_000, 7, '5')}"]
    ev = load("kis", [write(tmp_path, lines)]).events
    trades = np.flatnonzero(ev.action == TRADE)
    auction, buy, sell = trades
    assert (ev.price[auction], ev.size[auction], ev.side[auction]) == (70_000, 12_345, NONE)
    assert ev.flags[auction] == F_AUCTION | F_LAST
    assert (ev.side[buy], ev.side[sell]) == (BID, ASK)
    assert not (ev.flags[[buy, sell]] & F_AUCTION).any()
    assert (ev.flags[[buy, sell]] & F_LAST).all()


REAL_QUOTES = Path(__file__).parent / "data" / "kis-h0stasp0-005930-2026-02-20.csv"


def real_frames() -> list[tuple[str, list[str]]]:
    """(receive time, fields) of each frame of the shipped recording, read with the csv
    module (independently of the loader)."""
    with REAL_QUOTES.open(encoding="utf-8") as fh:
        rows = list(csv.reader(t for t in fh if not t.startswith("#")))
    assert rows[0] == ["local_timestamp", "raw_frame"]
    return [(stamp, frame.split("|")[3].split("^")) for stamp, frame in rows[1:]]


def levels(fields: list[str]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(bids, asks) of an H0STASP0 record, best first, by the positions of
    docs/reference/kis-realtime.md: ASKP1..10 at 3, BIDP1..10 at 13, ASKP_RSQN1..10 at 23,
    BIDP_RSQN1..10 at 33."""
    asks = [(int(fields[3 + k]), int(fields[23 + k])) for k in range(10)]
    bids = [(int(fields[13 + k]), int(fields[33 + k])) for k in range(10)]
    return bids, asks


def test_the_real_recording_loads_as_shipped_with_the_recorders_clock_set_right():
    frames = real_frames()
    assert len(frames) == 117 and {len(f) for _, f in frames} == {62}
    loaded = load("kis", [REAL_QUOTES])  # no --date: the receive time dates the frames
    ev = loaded.events
    # the exchange's 12:23:56 KST, not the recorder's 10:23:56 (its clock is 2 h behind)
    assert frames[0][0].startswith("2026-02-20 10:23:56") and frames[0][1][1] == "122356"
    assert ev.ts[0] == int(datetime(2026, 2, 20, 12, 23, 56, tzinfo=SEOUL).timestamp()) * 10**9
    assert ev.ts[-1] == int(datetime(2026, 2, 20, 12, 24, 21, tzinfo=SEOUL).timestamp()) * 10**9
    assert np.all(ev.ts % 10**9 == 0)  # whole exchange seconds: the receive time only orders
    seconds = sorted({int(f[1]) for _, f in frames})
    expected = {int(datetime(2026, 2, 20, s // 10000, s // 100 % 100, s % 100,
                             tzinfo=SEOUL).timestamp()) * 10**9 for s in seconds}
    assert set(ev.ts.tolist()) == expected
    inst = loaded.instruments[0]
    assert (inst.symbol, inst.venue, inst.book_type) == ("005930", "XKRX", "L2")
    assert loaded.repairs.total == 0


def test_the_real_frames_level_sizes_sum_to_their_totals_and_the_tapes_book_is_each_frame():
    frames = real_frames()
    loaded = load("kis", [REAL_QUOTES])
    book = next(iter(book_levels([loaded.events], loaded.instruments, 10))).to_pandas()
    changed = [f for k, (_, f) in enumerate(frames)
               if k == 0 or levels(f) != levels(frames[k - 1][1])]
    assert len(book) == len(changed)  # one packet per frame that changed the book
    for (_, row), fields in zip(book.iterrows(), changed, strict=True):
        bids, asks = levels(fields)
        got_bids = [(int(row[f"bid_px_{k}"]), int(row[f"bid_sz_{k}"])) for k in range(10)]
        got_asks = [(int(row[f"ask_px_{k}"]), int(row[f"ask_sz_{k}"])) for k in range(10)]
        assert (got_bids, got_asks) == (bids, asks), fields[1]
        # TOTAL_ASKP_RSQN (43) and TOTAL_BIDP_RSQN (44) are the ten levels' sums
        assert sum(s for _, s in got_asks) == int(fields[43])
        assert sum(s for _, s in got_bids) == int(fields[44])


def test_the_real_frames_prices_lie_inside_the_days_limits():
    from venues.krx.limits import price_limits

    frames = real_frames()
    loaded = load("kis", [REAL_QUOTES])
    # ANTC_CNPR 0 less ANTC_CNTG_VRSS -190,000 (sign 5, down; rate -100.00%): the previous
    # close was 190,000, the base of the day's limits
    assert {(f[47], f[50], f[51], f[52]) for _, f in frames} == {("0", "-190000", "5",
                                                                  "-100.00")}
    inst = loaded.instruments[0]
    assert inst.prev_close_units == 190_000
    lower, upper = price_limits(190_000, datetime(2026, 2, 20).date())
    assert (lower, upper) == (133_000, 247_000)
    priced = loaded.events.action == MODIFY
    prices = loaded.events.price[priced]
    assert prices.min() >= lower and prices.max() <= upper
    shown = {p for _, f in frames for p, s in sum(levels(f), []) if s > 0}
    assert shown <= set(range(lower, upper + 1))
    assert set(prices.tolist()) == shown  # the tape's prices are the frames' own


def test_a_recorder_clock_hours_away_dates_frames_on_the_exchanges_day(tmp_path):
    # a recorder 10 h behind Seoul: the 09:00:05 KST quote of 2024-08-05 is stamped
    # 23:00:05 on 2024-08-04 by its clock
    frames = [f"2024-08-04 23:00:0{k}.{k}00000,"
              + quote_frame(quote_record(f"09000{k}", [(70_100, 5 + k)], [(70_000, 7)]))
              for k in (5, 6)]
    ev = load("kis", [write(tmp_path, frames)]).events
    assert ev.ts[0] == int(datetime(2024, 8, 5, 9, 0, 5, tzinfo=SEOUL).timestamp()) * 10**9
    # an aware receive time is an instant: its Seoul date and time need no offset
    aware = ["2024-08-05T00:00:05.5Z " + quote_frame(
        quote_record("090005", [(70_100, 5)], [(70_000, 7)]))]
    ev = load("kis", [write(tmp_path, aware, "aware.txt")]).events
    assert ev.ts[0] == int(datetime(2024, 8, 5, 9, 0, 5, tzinfo=SEOUL).timestamp()) * 10**9


def test_a_receive_time_off_the_recorders_offset_names_its_line(tmp_path):
    frames = [f"2024-08-05 07:00:0{k}.5," + quote_frame(quote_record(
        f"09000{k}", [(70_100, 5 + k)], [(70_000, 7)])) for k in range(1, 5)]
    frames[2] = frames[2].replace("07:00:03.5", "08:00:03.5")  # an hour off the others
    with pytest.raises(TapeError, match="offset of \\+2 h") as exc:
        load("kis", [write(tmp_path, ["# a comment", "local_timestamp,raw_frame", *frames])])
    assert (exc.value.row, exc.value.field) == (5, "receive_time")


def test_the_nxt_and_integrated_field_counts(tmp_path):
    base = quote_record("090001", [(70_100, 5)], [(70_000, 7)])
    nxt = base + "^0" * 6  # 65 fields: the KRX and NXT mid prices after the 59
    lines = ["0|H0NXASP0|001|" + nxt, "0|H0UNASP0|001|" + nxt.replace("^70100^", "^70200^", 1),
             "0|H0NXCNT0|001|" + trade_record("090002", 70_100, 3, "1"),
             "0|H0UNCNT0|001|" + trade_record("090003", 70_000, 4, "5")]
    ev = load("kis", [write(tmp_path, lines)]).events
    assert ev.price[ev.action == TRADE].tolist() == [70_100, 70_000]
    modified = ev.action == MODIFY
    assert (70_200, 5) in zip(ev.price[modified].tolist(), ev.size[modified].tolist(),
                              strict=True)
    for tr_id, record, want in (("H0NXASP0", base + "^0^0^0", "expected 65"),
                                ("H0STASP0", nxt, "expected 59 or 62 or 63"),
                                ("H0NXCNT0", trade_record("090002", 70_100, 3, "1") + "^0",
                                 "expected 46")):
        with pytest.raises(TapeError, match=want) as exc:
            load("kis", [write(tmp_path, [f"0|{tr_id}|001|{record}"], "bad.txt")],
                 date="2024-08-05")
        assert (exc.value.row, exc.value.field) == (1, "fields")


def test_a_column_header_after_the_frames_start_is_not_skipped(tmp_path):
    frame = quote_frame(quote_record("090001", [(70_100, 5)], [(70_000, 7)]))
    path = write(tmp_path, ["local_timestamp,raw_frame", "2024-08-05 09:00:01," + frame,
                            "local_timestamp,raw_frame"])
    with pytest.raises(TapeError, match="not a KIS frame") as exc:
        load("kis", [path])
    assert exc.value.row == 3
    empty = write(tmp_path, ["# only a comment", "local_timestamp,raw_frame"], "empty.txt")
    with pytest.raises(ValueError, match="no events"):
        load("kis", [empty])


def test_a_cp949_recording_is_decoded_and_its_errors_name_line_and_field(tmp_path):
    frame = quote_frame(quote_record("090001", [(70_100, 5)], [(70_000, 7)]))
    path = tmp_path / "rec.csv"
    path.write_bytes("\n".join(["# 삼성전자 호가", "수신시각,원본",
                                "2024-08-05 09:00:01.5," + frame]).encode("cp949"))
    ev = load("kis", [path]).events
    assert ev.ts[0] == int(datetime(2024, 8, 5, 9, 0, 1, tzinfo=SEOUL).timestamp()) * 10**9
    bad_price = frame.replace("^70100^", "^칠만^", 1)
    path.write_bytes(("2024-08-05 09:00:01.5," + bad_price).encode("cp949"))
    with pytest.raises(TapeError, match="칠만") as exc:
        load("kis", [path])
    assert (exc.value.row, exc.value.field) == (1, "ASKP1")
    bad_time = frame.replace("^090001^", "^256001^", 1)
    with pytest.raises(TapeError, match="time of day") as exc:
        load("kis", [write(tmp_path, [bad_time], "t.txt")], date="2024-08-05")
    assert (exc.value.row, exc.value.field) == (1, "BSOP_HOUR")


def test_a_frame_without_a_receive_time_keeps_its_place_after_the_previous_one(tmp_path):
    a = quote_frame(quote_record("090001", [(70_100, 5)], [(70_000, 7)]))
    b = quote_frame(quote_record("090001", [(70_100, 6)], [(70_000, 7)]))
    c = quote_frame(quote_record("090001", [(70_100, 9)], [(70_000, 7)]))
    lines = ["2024-08-05 09:00:01.9," + a, b, "2024-08-05 09:00:01.950," + c]
    ev = load("kis", [write(tmp_path, lines)], date="2024-08-05").events
    # b, stamped by no clock, stays after a (and c, received later, after it)
    assert ev.size[(ev.action == MODIFY) & (ev.side == ASK)].tolist() == [5, 6, 9]
