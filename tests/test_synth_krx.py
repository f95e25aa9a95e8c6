"""Synthetic tapes follow KRX's session rules: call auctions whose uncross is the KRX
single-price rule at the schedule's random end, closes that become the next day's base,
daily limits recomputed each day, and limit-locked days after a news shock.

The uncross is recomputed here, independently of the generator's book, from the orders a
dict book holds when the uncross packet arrives (tests/test_synth.py's DictBook)."""

import dataclasses
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.synth import SMALLCAP, synthesize, write_synthetic_tape
from replay.tape import (
    ADD,
    ASK,
    BID,
    CANCEL,
    DELETE,
    F_AUCTION,
    F_LAST,
    FILL,
    NONE,
    TRADE,
    Events,
    Tape,
)
from tests.test_synth import FRIDAY, DictBook, _days, _tape, seoul_days
from venues.krx import price_limits
from venues.krx.session import OPEN, schedule, seoul_ns
from venues.krx.ticks import is_on_grid
from venues.krx.uncross import uncross

SEED = 11
LARGE_SEED = 5


@dataclass
class Auction:
    """One uncross packet as the tape has it, next to the rule recomputed from the book."""

    day: date
    ts: int
    opening: bool
    price: int  # the T row's
    volume: int
    fills: dict[int, int]  # order id -> the F rows' size
    expected_price: int | None
    expected_volume: int
    expected_fills: dict[int, int]
    crossed_before: bool
    top_after: tuple[int | None, int | None] = (None, None)


@dataclass
class Day:
    day: date
    base: int
    auctions: list[Auction] = field(default_factory=list)
    close: int | None = None  # the last print of the day: the closing price
    resting_at_close: tuple[list, list] = ([], [])  # (bids, asks) before the deletes


def krx_replay(chunks, seed: int, stop_after_open: bool = False) -> list[Day]:
    """Replay a synthesised tape through a DictBook, recomputing every uncross with
    venues.krx.uncross from the orders resting when its packet arrives."""
    out: list[Day] = []
    for day, ev, table in _days(chunks):
        base = table.instruments[0].prev_close_units
        lower, upper = price_limits(base, on=day)
        sched = schedule(day, seed)
        rec = Day(day, base)
        out.append(rec)
        book = DictBook()
        last_trade = base  # docs/reference/krx.md: "before the open: the base price"
        current: Auction | None = None
        rows = zip(ev.ts.tolist(), ev.action.tolist(), ev.side.tolist(), ev.price.tolist(),
                   ev.size.tolist(), ev.order_id.tolist(), ev.flags.tolist(), strict=True)
        for row, (ts, action, side, price, size, oid, flags) in enumerate(rows):
            if action == TRADE and flags & F_AUCTION:
                bids, asks = book.resting(BID), book.resting(ASK)
                opening = ts == sched.open_ns
                expected = uncross([(p, q) for p, q, _ in bids], [(p, q) for p, q, _ in asks],
                                   base if opening else last_trade, lower_limit=lower,
                                   upper_limit=upper, opening=opening)
                fills = {o: f for (_, _, o), f in zip(bids + asks,
                                                      expected.bid_fills + expected.ask_fills,
                                                      strict=True) if f}
                bb, ba = book.best(BID), book.best(ASK)
                current = Auction(day, ts, opening, price, size, {}, expected.price,
                                  expected.volume, fills,
                                  bb is not None and ba is not None and bb >= ba)
                rec.auctions.append(current)
            if action == DELETE and not rec.resting_at_close[0] + rec.resting_at_close[1]:
                rec.resting_at_close = (book.resting(BID), book.resting(ASK))
            book.apply(row, action, side, price, size, oid)
            if action == TRADE:
                last_trade = rec.close = price
            if current is not None and action == FILL:
                current.fills[oid] = size
            if current is not None and flags & F_LAST:
                current.top_after = (book.best(BID), book.best(ASK))
                current = None
                if stop_after_open:
                    break
    return out


@pytest.fixture(scope="module")
def small_two_days():
    return list(synthesize("krx-smallcap", days=2, seed=SEED, start=FRIDAY))


@pytest.fixture(scope="module")
def small_replayed(small_two_days):
    return krx_replay(small_two_days, SEED)


@pytest.fixture(scope="module")
def large_open():
    """The large-cap day up to its opening uncross (the whole day is 3.5 M rows)."""
    chunks = []
    for events, table in synthesize("krx-largecap", days=1, seed=LARGE_SEED,
                                    chunk_events=100_000):
        chunks.append((events, table))
        break
    return chunks


@pytest.fixture(scope="module")
def locked_down():
    return list(synthesize("krx-smallcap", days=2, seed=SEED, start=FRIDAY,
                           shocks={1: -0.40}))


def test_each_day_has_one_opening_and_one_closing_uncross_at_the_random_ends(
        small_two_days, small_replayed):
    """docs/reference/krx.md: "Opening call auction: orders from 08:30, uncross at 09:00";
    "closing call auction 15:20-15:30"; "Every single-price auction ends at a random
    moment within 30 s after its nominal end" - the end venues.krx.session.schedule draws
    from the tape's seed."""
    for (day, ev, _), rec in zip(_days(small_two_days), small_replayed, strict=True):
        sched = schedule(day, SEED)
        assert [a.ts for a in rec.auctions] == [sched.open_ns, sched.close_ns]
        assert [a.opening for a in rec.auctions] == [True, False]
        assert 0 <= sched.open_ns - seoul_ns(day, OPEN) < 30 * 10**9
        # Auction orders arrive over the call periods, nothing trades in them.
        opening = (ev.ts >= sched.pre_open_ns) & (ev.ts < sched.open_ns)
        closing = (ev.ts >= sched.continuous_end_ns) & (ev.ts < sched.close_ns)
        assert opening[0] and ev.ts.min() >= sched.pre_open_ns
        for phase in (opening, closing):
            assert np.isin(ev.action[phase], (ADD, CANCEL)).all()
            assert (ev.action[phase] == ADD).sum() > 40
        # arrivals spread over each whole call period
        minute = 60 * 10**9
        assert ev.ts[opening][0] < sched.pre_open_ns + minute
        assert ev.ts[opening][-1] > sched.open_ns - minute
        assert ev.ts[closing][0] < sched.continuous_end_ns + minute
        assert ev.ts[closing][-1] > sched.close_ns - minute
        assert ev.ts.max() == sched.close_ns


def test_uncross_packets_and_only_they_carry_f_auction(small_two_days):
    """tape.F_AUCTION "marks history's own auction uncross": the T (side N), every F and C
    of the packet, and its last row with F_LAST."""
    ev = _tape(small_two_days)
    auction = (ev.flags & F_AUCTION) != 0
    prints = np.flatnonzero(auction & (ev.action == TRADE))
    assert len(prints) == 4 and (ev.side[prints] == NONE).all()
    for start in prints:
        end = start + int(np.argmax(ev.flags[start:] & F_LAST))
        assert auction[start:end + 1].all()
        assert ev.flags[end] == F_AUCTION | F_LAST
        assert (ev.ts[start:end + 1] == ev.ts[start]).all()
        assert (ev.action[start + 1:end + 1:2] == FILL).all()
        assert (ev.action[start + 2:end + 1:2] == CANCEL).all()
    assert auction.sum() == sum(1 + 2 * len(a.fills) for a in krx_replay(
        small_two_days, SEED)[0].auctions + krx_replay(small_two_days, SEED)[1].auctions)


def test_uncross_price_volume_and_fills_are_the_krx_rule_over_the_auction_book(
        small_replayed):
    """docs/reference/krx.md, single-price auction: "The price at which all bids above it and all
    asks below it execute fully ... (i.e. maximum executable volume)"; "Several candidates:
    take the one equal to the previous price (before the open: the base price)";
    "Priority: price, then time". Recomputed with venues.krx.uncross over the dict book."""
    for rec in small_replayed:
        for a in rec.auctions:
            assert a.expected_price is not None
            assert (a.price, a.volume) == (a.expected_price, a.expected_volume), a.ts
            assert a.fills == a.expected_fills
            assert sum(a.fills.values()) == 2 * a.volume


def test_the_opening_book_crosses_near_the_value_and_the_uncross_leaves_it_uncrossed(
        small_replayed, large_open):
    large = krx_replay(large_open, LARGE_SEED, stop_after_open=True)
    for a in [a for rec in small_replayed for a in rec.auctions] + large[0].auctions[:1]:
        bid, ask = a.top_after
        assert bid is None or ask is None or bid < ask, a.ts
        assert a.price == a.expected_price and a.fills == a.expected_fills
    for rec in small_replayed + large[:1]:
        opening = rec.auctions[0]
        assert opening.crossed_before
        assert abs(opening.price - rec.base) < 0.05 * rec.base  # near the overnight value


def test_large_cap_opening_auction_has_hundreds_to_thousands_of_orders(large_open):
    ev = Events.concat([e for e, _ in large_open])
    day = seoul_days(ev)[0]
    auction = ev.ts < schedule(day, LARGE_SEED).open_ns
    adds = int((ev.action[auction] == ADD).sum())
    assert 1_000 < adds < 2_500
    small = list(synthesize("krx-smallcap", 1, seed=3))
    ev_small = _tape(small)
    small_adds = (ev_small.action[ev_small.ts < schedule(seoul_days(ev_small)[0], 3).open_ns]
                  == ADD).sum()
    assert 50 < small_adds < adds / 3


def test_the_close_is_the_next_base_and_limits_are_recomputed_each_day(small_two_days,
                                                                       small_replayed):
    """docs/reference/krx.md: "Base price: previous close; with no trade, the previous base";
    limits "+-30% of the base price" recomputed from each day's base; prices on the tick
    grid."""
    days = _days(small_two_days)
    for (day, ev, table), rec in zip(days, small_replayed, strict=True):
        lower, upper = price_limits(table.instruments[0].prev_close_units, on=day)
        assert lower <= ev.price.min() and ev.price.max() <= upper
        assert is_on_grid(ev.price, on=day).all()
        closing = rec.auctions[-1]
        assert rec.close == closing.price  # the closing uncross is the day's last print
    assert days[1][2].instruments[0].prev_close_units == small_replayed[0].close
    assert small_replayed[0].close != SMALLCAP.start_price  # the limits did move
    assert price_limits(days[1][2].instruments[0].prev_close_units, on=days[1][0]) \
        != price_limits(SMALLCAP.start_price, on=days[0][0])


def test_a_40_percent_overnight_fall_locks_the_small_cap_at_its_lower_limit(locked_down):
    """docs/reference/krx.md: daily limits are "+-30% of the base price", so a -40% value can
    only trade at the lower limit: sellers queue there and few buyers come (the 2023-10-26
    영풍제지 episode: "18 M shares offered at the limit, 5,294 traded")."""
    (d1, _, t1), (d2, ev2, t2) = _days(locked_down)
    day1, day2 = krx_replay(locked_down, SEED)
    assert t2.instruments[0].prev_close_units == day1.close
    lower, _ = price_limits(day2.base, on=d2)
    prints = ev2.price[ev2.action == TRADE]
    assert len(prints) > 10 and (prints == lower).all()
    assert day2.close == lower
    bids, asks = day2.resting_at_close
    asks_at_limit = sum(q for p, q, _ in asks if p == lower)
    assert asks_at_limit > sum(q for _, q, _ in bids)
    # a large unfilled sell queue: more than the whole day traded
    assert asks_at_limit > ev2.size[ev2.action == TRADE].sum()
    for a in day2.auctions:
        assert (a.price, a.fills) == (a.expected_price, a.expected_fills)
    # Day 1 is untouched by day 2's shock: the same events as without it.
    plain = _days(list(synthesize("krx-smallcap", days=1, seed=SEED, start=FRIDAY)))[0][1]
    assert np.array_equal(plain.price, _days(locked_down)[0][1].price)


def test_a_40_percent_rise_locks_it_at_the_upper_limit():
    chunks = list(synthesize("krx-smallcap", days=1, seed=4, shocks={0: 0.40}))
    (day, ev, table), = _days(chunks)
    rec, = krx_replay(chunks, 4)
    _, upper = price_limits(table.instruments[0].prev_close_units, on=day)
    assert (ev.price[ev.action == TRADE] == upper).all() and rec.close == upper
    bids, asks = rec.resting_at_close
    assert sum(q for p, q, _ in bids if p == upper) > sum(q for _, q, _ in asks)


def test_profile_news_jumps_lock_a_day_too():
    jumpy = dataclasses.replace(SMALLCAP, jump_probability=1.0, jump_size=0.35)
    chunks = list(synthesize(jumpy, days=1, seed=9))
    (day, ev, table), = _days(chunks)
    limits = price_limits(table.instruments[0].prev_close_units, on=day)
    prints = ev.price[ev.action == TRADE]
    assert prints[-1] in limits and np.mean(np.isin(prints, limits)) > 0.9


def test_shocks_are_validated():
    with pytest.raises(ValueError, match="day indices run from 0 to 1"):
        next(synthesize("krx-smallcap", 2, seed=0, shocks={2: -0.4}))
    with pytest.raises(ValueError, match="must lie in"):
        next(synthesize("krx-smallcap", 2, seed=0, shocks={1: -1.0}))
    with pytest.raises(ValueError, match="jump_size"):
        dataclasses.replace(SMALLCAP, jump_size=1.5)


def test_cli_shock_option_makes_the_same_tape_as_the_api(tmp_path):
    runner = CliRunner()
    path = tmp_path / "cli.parquet"
    r = runner.invoke(app, ["data", "synth", "--profile", "krx-smallcap", "--days", "2",
                            "--seed", "11", "--shock", "1:-0.4", "-o", str(path)])
    assert r.exit_code == 0, r.output
    api = write_synthetic_tape(tmp_path / "api.parquet", "krx-smallcap", 2, seed=11,
                               shocks={1: -0.4})
    cli_tape, api_tape = Tape(path), Tape(api)
    assert cli_tape.session_seed == api_tape.session_seed == 11
    a, b = cli_tape.read(), api_tape.read()
    for col in ("ts", "action", "side", "price", "size", "order_id", "flags"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
    bad = runner.invoke(app, ["data", "synth", "--profile", "krx-smallcap", "--shock", "1",
                              "-o", str(tmp_path / "bad.parquet")])
    assert bad.exit_code == 2 and "DAY:FRACTION" in bad.output


def test_delete_packet_expires_every_order_at_the_close(small_two_days):
    """KRX orders are day orders: the book is empty after each close."""
    for day, ev, _ in _days(small_two_days):
        book = DictBook()
        for row, (action, side, price, size, oid) in enumerate(zip(
                ev.action.tolist(), ev.side.tolist(), ev.price.tolist(), ev.size.tolist(),
                ev.order_id.tolist(), strict=True)):
            book.apply(row, action, side, price, size, oid)
        assert not book.orders
        assert (ev.ts[ev.action == DELETE] == schedule(day, SEED).close_ns).all()
        assert ASK in (ev.side[ev.action == DELETE])
