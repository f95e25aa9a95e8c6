"""KIS real-time recordings (docs/reference/kis-realtime.md).

The trade frame below is the real one published in docs/reference/kis-realtime.md (Samsung
Electronics, 2023-03-24 11:26:16). The quote frames, and the trade frames made by
``trade_record``, are synthetic: built from the published H0STASP0 / H0STCNT0 field layouts,
with made-up prices and sizes.
"""

from datetime import datetime
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
    assert ev.ts[1] - ev.ts[0] == 500_000_000


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
