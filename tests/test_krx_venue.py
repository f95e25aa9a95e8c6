"""The KRX venue inside the replay (``Replay(..., venue="krx")``): order checks, the session
state machine and its auctions, VI, limit-locked books, circuit breakers and the sidecar.

Each test cites the line of docs/reference/krx.md it implements ("krx.md:NN"). The tapes are
hand-built, so every expected price and quantity is worked out in the test.
"""

from __future__ import annotations

from datetime import date, timedelta
from datetime import time as t

import numpy as np
import pytest

from replay.engine import InjectedOrders, Replay
from replay.tape import (
    ADD,
    ASK,
    BID,
    DELETE,
    F_AUCTION,
    F_LAST,
    FILL,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
)
from venues.codes import (
    ORDER_TYPES,
)
from venues.krx.session import schedule, seoul_ns
from venues.krx.venue import KrxRules
from venues.rules import J_PROGRAM

DAY = date(2024, 1, 5)  # a Friday; the next XKRX day is Monday 2024-01-08
NEXT_DAY = date(2024, 1, 8)
SEC = 10**9
MIN = 60 * SEC


def stock(iid=1, base=10_000, *, kospi200=False, shares=0, symbol=None):
    return Instrument(iid, symbol or f"S{iid}", venue="XKRX", prev_close_units=base,
                      market="KOSPI", index_member="KOSPI200" if kospi200 else "",
                      shares_outstanding=shares)


class Tape:
    """Rows of a hand-built L3 tape."""

    def __init__(self):
        self.rows = []
        self.oid = 0

    def add(self, at, side, price, size, inst=1, day=DAY, flags=F_LAST):
        self.oid += 1
        ts = at if isinstance(at, int) else seoul_ns(day, at)
        self.rows.append((ts, inst, ADD, side, price, size, self.oid, flags))
        return self.oid

    def row(self, ts, inst, action, side, price, size, oid=0, flags=F_LAST):
        self.rows.append((ts, inst, action, side, price, size, oid, flags))

    def events(self):
        self.rows.sort(key=lambda r: r[0])
        cols = ["ts", "instrument", "action", "side", "price", "size", "order_id", "flags"]
        return Events.from_columns({c: np.array([r[i] for r in self.rows], np.int64)
                                    for i, c in enumerate(cols)})


def opened_tape():
    """A tape whose opening auction crosses 100 shares at 10,000 (the open)."""
    tape = Tape()
    tape.add(t(8, 40), BID, 10_000, 100)
    tape.add(t(8, 40), ASK, 10_000, 100)
    return tape


def orders(*rows, program=None):
    """InjectedOrders from (ts, inst, side, type, price, size) rows."""
    a = np.array(rows, np.int64).reshape(-1, 6)
    flags = None if program is None else np.array(program, np.int64)
    return InjectedOrders(ts=a[:, 0], instrument=a[:, 1], side=a[:, 2], type=a[:, 3],
                          price=a[:, 4], size=a[:, 5], flags=flags)


MKT, LMT, IOC = ORDER_TYPES["market"], ORDER_TYPES["limit"], ORDER_TYPES["ioc"]


def run(tape, instruments, injected=None, seed=1, **kw):
    return Replay(InstrumentTable(instruments), venue="krx", seed=seed, **kw).run(
        [tape.events()], injected)


def ladder(tape, at, best_bid, best_ask, step, levels, size=100, inst=1):
    for k in range(levels):
        tape.add(at, BID, best_bid - k * step, size, inst)
        tape.add(at, ASK, best_ask + k * step, size, inst)


def uncrosses(result, kind):
    ev = result.venue_events
    return ev[ev.kind == f"uncross_{kind}"]


# -- order checks -----------------------------------------------------------------------------

def test_orders_off_the_grid_or_outside_the_limits_are_rejected_with_a_reason():
    # krx.md:22-25: +-30% of the base; base 9,980 -> lower 6,990, upper 12,970.
    # krx.md:8-16: tick 10 between 5,000 and 20,000.
    tape = Tape()
    ladder(tape, t(9, 5), 9_980, 10_000, 10, 5)
    at = seoul_ns(DAY, t(10, 0))
    r = run(tape, [stock(base=9_980)], orders(
        (at, 1, BID, LMT, 9_985, 10),  # off the 10-won grid
        (at, 1, ASK, LMT, 12_980, 10),  # above 12,970
        (at, 1, BID, LMT, 6_980, 10),  # below 6,990
        (at, 1, BID, LMT, 6_990, 10),  # at the lower limit: accepted, rests
        (at, 1, ASK, LMT, 12_970, 10),  # at the upper limit: accepted, rests
    ))
    inj = r.injected
    assert list(inj.status[:3]) == [4, 4, 4]  # rejected
    assert list(inj.reason[:3]) == [1, 2, 3]  # off grid, above upper, below lower
    assert list(inj.status[3:]) == [7, 7]  # rested all day, expired at 16:00
    assert r.sessions.lower_limit[0] == 6_990 and r.sessions.upper_limit[0] == 12_970
    # the generic venue refuses it too: no level of its price ladder holds it
    g = Replay(InstrumentTable([stock(base=9_980)])).run([tape.events()], orders(
        (at, 1, BID, LMT, 9_985, 10)))
    assert g.injected.status[0] == 4 and g.injected.reason[0] == 1


def test_ioc_is_refused_in_an_auction_and_orders_before_the_pre_open_are_refused():
    # krx.md:29: orders from 08:30; an IOC has no place in a single-price auction.
    tape = Tape()
    ladder(tape, t(8, 35), 9_990, 10_010, 10, 3)
    r = run(tape, [stock()], orders(
        (seoul_ns(DAY, t(8, 0)), 1, BID, LMT, 10_000, 10),
        (seoul_ns(DAY, t(8, 45)), 1, BID, IOC, 10_000, 10)))
    assert list(r.injected.status) == [4, 4]
    assert list(r.injected.reason) == [5, 6]  # market closed; IOC/FOK in an auction


# -- auctions and sessions ---------------------------------------------------------------------

def test_opening_auction_uncrosses_at_the_random_end_with_the_base_as_reference():
    # krx.md:29 (orders from 08:30, uncross at 09:00), krx.md:33 (random end within 30 s),
    # krx.md:37-41 (maximum volume; the candidate equal to the base price before the open).
    tape = Tape()
    tape.add(t(8, 40), BID, 10_100, 500)
    tape.add(t(8, 41), ASK, 9_900, 300)
    tape.add(t(8, 42), ASK, 10_000, 100)
    r = run(tape, [stock(base=10_050)], seed=3)
    op = uncrosses(r, "open").iloc[0]
    assert op.ts == schedule(DAY, 3).open_ns
    # 400 executable at every price in [10,000, 10,100]; the base 10,050 is one of them
    assert (op.price, op.volume) == (10_050, 400)
    prints = r.trades[r.trades.source == 4]
    assert list(prints.price[:1]) == [10_050] and list(prints["size"][:1]) == [400]
    # the open and the close differ with the seed, within 30 s of 09:00 / 15:30
    r2 = run(tape, [stock(base=10_050)], seed=4)
    assert uncrosses(r2, "open").ts.iloc[0] != op.ts
    for res, seed in ((r, 3), (r2, 4)):
        cl = uncrosses(res, "close").ts.iloc[0]
        assert cl == schedule(DAY, seed).close_ns
        assert 0 <= cl - seoul_ns(DAY, t(15, 30)) < 30 * SEC


def test_a_tapes_own_uncross_rows_are_replaced_by_the_venues():
    # History's uncross (F_AUCTION rows) is skipped; the venue computes it from the book.
    tape = Tape()
    b = tape.add(t(8, 40), BID, 10_100, 500)
    a = tape.add(t(8, 41), ASK, 9_900, 300)
    at = schedule(DAY, 1).open_ns
    tape.row(at, 1, TRADE, 78, 10_000, 300, 0, F_AUCTION)
    tape.row(at, 1, FILL, BID, 10_000, 300, b, F_AUCTION)
    tape.row(at, 1, FILL, ASK, 10_000, 300, a, F_AUCTION | F_LAST)
    r = run(tape, [stock(base=10_000)])
    assert r.counters["history_auction_rows_replaced"] == 3
    assert len(r.trades) == 1 and r.trades.price[0] == 10_000 and r.trades["size"][0] == 300


def test_two_days_run_both_auctions_each_day_and_the_next_base_is_the_close():
    # krx.md:26: base price = previous close; limits recomputed each morning (krx.md:22-25).
    tape = Tape()
    for day in (DAY, NEXT_DAY):
        tape.add(t(8, 40), BID, 10_000, 100, day=day)
        tape.add(t(8, 40), ASK, 10_000, 100, day=day)
        tape.add(t(15, 25), BID, 10_200, 50, day=day)
        tape.add(t(15, 25), ASK, 10_200, 50, day=day)
    r = run(tape, [stock(base=10_000)])
    kinds = r.venue_events.kind.tolist()
    assert kinds.count("uncross_open") == 2 and kinds.count("uncross_close") == 2
    s = r.sessions
    assert list(s.day) == [DAY, NEXT_DAY]
    assert list(s.close) == [10_200, 10_200]
    assert s.base[1] == 10_200  # day 2's base is day 1's close
    assert (s.lower_limit[1], s.upper_limit[1]) == (7_140, 13_260)  # 10,200 +- 3,060


def test_post_close_trades_only_at_the_closing_price():
    # krx.md:31: post-close at the close, 15:40-16:00.
    tape = Tape()
    tape.add(t(15, 25), BID, 10_200, 50)
    tape.add(t(15, 25), ASK, 10_200, 80)  # 30 left at the close
    r = run(tape, [stock()], orders(
        (seoul_ns(DAY, t(15, 45)), 1, BID, LMT, 10_100, 10),
        (seoul_ns(DAY, t(15, 45)), 1, BID, LMT, 10_200, 10),
        (seoul_ns(DAY, t(15, 46)), 1, BID, MKT, 0, 10)))
    assert list(r.injected.status) == [4, 1, 1]
    assert r.injected.reason[0] == 7
    assert list(r.injected.notional[1:]) == [102_000, 102_000]


# -- limit-locked books ------------------------------------------------------------------------

def test_a_sell_larger_than_every_bid_locks_the_book_at_the_lower_limit():
    # DESIGN/issue: a sell that finds no bid above the lower limit rests at the lower limit;
    # its unfilled quantity is reported at the end of the day.
    tape = Tape()
    ladder(tape, t(9, 5), 10_000, 10_050, 50, 4)  # bids 10,000 .. 9,850, 100 each
    tape.add(t(9, 6), BID, 7_000, 100)  # a bid at the lower limit
    at = seoul_ns(DAY, t(10, 0))
    r = run(tape, [stock()], orders((at, 1, ASK, MKT, 0, 50_000)))
    s = r.sessions.iloc[0]
    assert s.lower_limit == 7_000 and s.close == 7_000
    assert s.limit_locked_down and s.closed_at_lower_limit
    # every bid (500 shares) was sold to; the rest rests at the lower limit
    assert r.injected.filled[0] == 500
    u = r.unfilled.iloc[0]
    assert (u.price, u.unfilled, u.side) == (7_000, 49_500, "sell")
    assert s.ask_qty_at_lower_limit == 49_500
    assert r.injected.status[0] == 7  # expired at the end of the day


# -- volatility interruptions ------------------------------------------------------------------

def test_dynamic_vi_kospi200_3pct_stops_a_sweep_at_the_first_tick_beyond():
    # krx.md:48 (+-3% for KOSPI200 names), krx.md:53 (first tick at or beyond the threshold),
    # krx.md:47 (2-minute auction + random end: release 2:00-2:30 after).
    tape = Tape()
    tape.add(t(8, 40), BID, 10_000, 100)
    tape.add(t(8, 40), ASK, 10_000, 100)  # opens at 10,000
    for k in range(8):
        tape.add(t(9, 30), BID, 9_950 - 50 * k, 100)  # 9,950 .. 9,600
    tape.add(t(9, 30), ASK, 10_500, 100)
    at = seoul_ns(DAY, t(10, 0))
    r = run(tape, [stock(kospi200=True)], orders((at, 1, ASK, MKT, 0, 1_000)))
    vi = r.venue_events[r.venue_events.kind == "vi_dynamic"].iloc[0]
    # 3% below 10,000 is 9,700: fills at 9,950, 9,900, 9,850, 9,800, 9,750; 9,700 triggers
    assert (vi.ts, vi.reference, vi.price) == (at, 10_000, 9_700)
    assert 120 * SEC <= vi.release_ts - vi.ts < 150 * SEC
    cont = r.fills[(r.fills.source == 1) & (r.fills.ts == at)]
    assert cont.price.min() == 9_750 and cont["size"].sum() == 500
    # the VI auction uncrosses at its release: bids 9,700..9,600 (300) against the rest
    vu = uncrosses(r, "vi").iloc[0]
    assert vu.ts == vi.release_ts and vu.volume == 300
    # candidates 7,000..9,600; the reference (last price 9,750) is closest to 9,600
    assert vu.price == 9_600


def test_dynamic_vi_is_6pct_for_other_names():
    # krx.md:49: other KOSPI and KOSDAQ names +-6%.
    tape = opened_tape()
    for k in range(8):
        tape.add(t(9, 30), BID, 9_900 - 100 * k, 100)  # 9,900 .. 9,200
    at = seoul_ns(DAY, t(10, 0))
    r = run(tape, [stock()], orders((at, 1, ASK, MKT, 0, 1_000)))
    vi = r.venue_events[r.venue_events.kind.str.startswith("vi")].iloc[0]
    assert (vi.kind, vi.reference, vi.price) == ("vi_dynamic", 10_000, 9_400)


def test_static_vi_at_the_open_extends_the_opening_auction():
    # krx.md:50 (static +-10% vs the base before the open), krx.md:52 (a VI during an auction
    # extends it by 2 minutes).
    tape = Tape()
    tape.add(t(8, 40), BID, 11_500, 100)
    tape.add(t(8, 41), ASK, 11_500, 100)
    r = run(tape, [stock(base=10_000)])
    vi = r.venue_events[r.venue_events.kind == "vi_static"].iloc[0]
    assert (vi.ts, vi.reference, vi.price) == (schedule(DAY, 1).open_ns, 10_000, 11_500)
    op = uncrosses(r, "open").iloc[0]
    assert op.ts == vi.release_ts and 120 * SEC <= op.ts - vi.ts < 150 * SEC
    assert op.price == 11_500


def test_closing_auction_dynamic_vi_uses_the_closing_threshold():
    # krx.md:49: other names +-4% in the closing auction.
    tape = opened_tape()
    tape.add(t(15, 22), BID, 10_400, 100)  # +4% vs the last trade 10,000
    tape.add(t(15, 22), ASK, 10_400, 100)
    r = run(tape, [stock()])
    vi = r.venue_events[r.venue_events.kind == "vi_dynamic"].iloc[0]
    assert (vi.ts, vi.reference, vi.price) == (schedule(DAY, 1).close_ns, 10_000, 10_400)
    cl = uncrosses(r, "close").iloc[0]
    assert cl.ts == vi.release_ts and cl.price == 10_400
    assert r.sessions.close[0] == 10_400


def test_history_does_not_execute_during_a_simulated_vi():
    tape = opened_tape()
    for k in range(6):
        tape.add(t(9, 30), BID, 9_900 - 100 * k, 100)  # 9,400 is 6% below 10,000: a VI
    at = seoul_ns(DAY, t(10, 0))
    tape.row(at + 10 * SEC, 1, TRADE, ASK, 9_500, 10)  # history's print inside the VI
    r = run(tape, [stock()], orders((at, 1, ASK, MKT, 0, 1_000)))
    assert r.counters["history_executions_in_auction"] == 1
    assert not ((r.trades.source == 0) & (r.trades.ts == at + 10 * SEC)).any()


# -- circuit breakers and sidecar ---------------------------------------------------------------

def index_tape(start, path, tape=None):
    """Two constituents that open at 10,000 (a new tape), then print each price of ``path``
    on both, one every 10 s from ``start``."""
    if tape is None:
        tape = Tape()
        for inst in (1, 2):
            tape.add(t(8, 40), BID, 10_000, 100, inst)
            tape.add(t(8, 40), ASK, 10_000, 100, inst)
    for k, px in enumerate(path):
        for inst in (1, 2):
            tape.row(start + k * 10 * SEC, inst, TRADE, ASK, px, 10)
    return tape


CONSTITUENTS = [stock(1, shares=3_000), stock(2, shares=1_000)]


def test_stage_1_circuit_breaker_halts_20_minutes_then_reopens_by_auction():
    # krx.md:56 (-8% held 1 minute -> 20-minute halt, then a 10-minute auction),
    # krx.md:59 (cancels allowed during a halt, new orders not).
    # Prices -8% on both names: index -8%; the prints stay inside the 10% static VI band
    # but a single print of -8% would pass the 6% dynamic VI, so step down first.
    start = seoul_ns(DAY, t(10, 0))
    tape = index_tape(start, [9_600] + [9_200] * 8)
    halted_at = start + 60 * SEC + 10 * SEC  # 9,200 first printed at +10 s, held 60 s
    r = run(tape, CONSTITUENTS, orders(
        (seoul_ns(DAY, t(9, 55)), 1, BID, LMT, 9_100, 10),
        (halted_at + MIN, 1, BID, LMT, 9_100, 10),  # new order during the halt: rejected
        (halted_at + MIN, 1, 0, ORDER_TYPES["cancel"], 0, 0)))  # cancel: accepted
    cb = r.venue_events[r.venue_events.kind == "circuit_breaker_1"]
    assert len(cb) == 1
    assert cb.ts.iloc[0] == halted_at
    reopen = uncrosses(r, "reopen")
    assert len(reopen) == 2  # both names
    wait = reopen.ts.iloc[0] - halted_at
    assert 30 * MIN <= wait < 30 * MIN + 30 * SEC
    assert list(r.injected.status) == [5, 4, 1]  # cancelled, rejected (halted), done
    assert r.injected.reason[1] == 4


def test_an_opening_auction_gap_counts_in_the_index():
    # krx.md:56: the index is the constituents' prices, auction prices included. Both names
    # open at 9,100 (-9%, inside the 10% static VI band, so the auction is not extended);
    # the next prints at that price hold the index at -9% for a minute: stage 1.
    tape = Tape()
    for inst in (1, 2):
        tape.add(t(8, 40), BID, 9_100, 100, inst)
        tape.add(t(8, 40), ASK, 9_100, 100, inst)
    first = seoul_ns(DAY, t(9, 0, 30))
    for k in range(3):
        for inst in (1, 2):
            tape.row(first + k * 35 * SEC, inst, TRADE, ASK, 9_100, 10)
    r = run(tape, CONSTITUENTS)
    assert list(uncrosses(r, "open").price) == [9_100, 9_100]
    cb = r.venue_events[r.venue_events.kind == "circuit_breaker_1"]
    assert list(cb.ts) == [first + 70 * SEC]  # the first print a minute after 09:00:30


def test_stage_3_ends_the_day_and_no_stage_1_after_14_50():
    # krx.md:58 (stage 3 ends trading for the day), krx.md:59 (stages 1-2 not after 14:50).
    start = seoul_ns(DAY, t(14, 55))
    # -14.5% after 14:50: a stage-1 level, but stage 1 may not fire any more
    tape = index_tape(start, [9_500, 9_000] + [8_550] * 9)
    # static VIs off (KrxRules(static_vi_bp=0)): prints alone cannot pass a VI auction
    no_static = {"krx_rules": KrxRules(static_vi_bp=0)}
    r = run(tape, CONSTITUENTS, **no_static)
    assert not r.venue_events.kind.str.startswith("circuit").any()
    # -20% after 14:50: stage 3, and nothing trades afterwards
    t3 = start + 200 * SEC
    tape2 = index_tape(t3, [8_100] + [7_700] * 10, Tape())
    tape2.rows = tape.rows + tape2.rows
    later = t3 + 10 * MIN
    r3 = run(tape2, CONSTITUENTS, orders((later, 1, BID, LMT, 7_700, 10)), **no_static)
    cb = r3.venue_events[r3.venue_events.kind.str.startswith("circuit")]
    assert list(cb.kind) == ["circuit_breaker_3"]
    assert r3.injected.status[0] == 4 and r3.injected.reason[0] == 5  # market closed
    assert not uncrosses(r3, "close").shape[0]


def test_sidecar_suspends_program_orders_on_that_side_for_5_minutes():
    # krx.md:61-62: index future -5% for 1 minute -> program sells suspended 5 minutes.
    fut = Instrument(9, "K200F", venue="XKRX", prev_close_units=40_000, market="FUTURES")
    tape = opened_tape()
    tape.add(t(9, 30), BID, 9_990, 1_000)
    start = seoul_ns(DAY, t(10, 0))
    for k in range(8):
        tape.row(start + k * 10 * SEC, 9, TRADE, ASK, 38_000, 1)  # -5.0%
    fired = start + 60 * SEC
    r = run(tape, [stock(), fut], orders(
        (fired + MIN, 1, ASK, LMT, 9_990, 10),  # program sell: suspended
        (fired + MIN, 1, ASK, LMT, 9_990, 10),  # the same, not a program order: fills
        (fired + 6 * MIN, 1, ASK, LMT, 9_990, 10),  # program sell after 5 minutes: fills
        program=[J_PROGRAM, 0, J_PROGRAM]))
    sc = r.venue_events[r.venue_events.kind == "sidecar_sell"].iloc[0]
    assert (sc.ts, sc.reference, sc.price) == (fired, 40_000, 38_000)
    assert sc.release_ts == fired + 5 * MIN
    assert list(r.injected.status) == [4, 1, 1]
    assert r.injected.reason[0] == 8


def test_the_same_seed_gives_the_same_run():
    tape = opened_tape()
    for k in range(8):
        tape.add(t(9, 30), BID, 9_950 - 50 * k, 100)
    at = seoul_ns(DAY, t(10, 0))
    inj = orders((at, 1, ASK, MKT, 0, 1_000))
    a = run(tape, [stock(kospi200=True)], inj, seed=5)
    b = run(tape, [stock(kospi200=True)], inj, seed=5)
    pd_eq = [a.venue_events.equals(b.venue_events), a.fills.equals(b.fills),
             a.trades.equals(b.trades)]
    assert all(pd_eq)


def test_the_krx_venue_needs_a_base_price():
    with pytest.raises(ValueError, match="previous close"):
        Replay(InstrumentTable([Instrument(1, "X", venue="XKRX")]), venue="krx")
    with pytest.raises(ValueError, match="generic"):
        Replay(InstrumentTable([Instrument(1, "ES", venue="GLBX", prev_close_units=5)]),
               venue="krx")


def test_a_deleted_order_is_not_uncrossed():
    tape = Tape()
    b = tape.add(t(8, 40), BID, 10_000, 100)
    tape.add(t(8, 40), ASK, 10_000, 100)
    tape.row(seoul_ns(DAY, t(8, 50)), 1, DELETE, BID, 10_000, 100, b)
    r = run(tape, [stock()])
    assert uncrosses(r, "open").volume.iloc[0] == 0
    assert timedelta(0) == timedelta(0)
