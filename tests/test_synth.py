"""Synthetic KRX tapes: deterministic, on the tick grid, inside the limits, and replayable by
an order-id book that never meets an unknown order, nor a crossed book outside the call
auctions (tests/test_synth_krx.py pins the auctions and the limit-locked days)."""

import dataclasses
import heapq
from collections import defaultdict
from datetime import date, datetime, timedelta

import numpy as np
import pytest

from replay.synth import (
    LARGECAP,
    SMALLCAP,
    place_price,
    synthesize,
    write_synthetic_tape,
)
from replay.tape import (
    ADD,
    ASK,
    BID,
    CANCEL,
    DELETE,
    F_AUCTION,
    F_LAST,
    FILL,
    MODIFY,
    NONE,
    TRADE,
    Events,
    Tape,
)
from venues.krx import price_limits
from venues.krx.calendar import trading_days
from venues.krx.session import SEOUL as KST
from venues.krx.session import schedule
from venues.krx.ticks import is_on_grid, price_grid

FRIDAY = date(2024, 1, 5)
SMALL_SEED, LARGE_SEED = 11, 5
LARGECAP_REPLAY_ROWS = 600_000  # the dict book replays this much of the large-cap day


def _days(chunks):
    """[(day, events, table)] with a day's chunks joined."""
    by_day: dict[date, list] = {}
    tables = {}
    for events, table in chunks:
        day = datetime.fromtimestamp(int(events.ts[0]) // 10**9, KST).date()
        by_day.setdefault(day, []).append(events)
        tables[day] = table
    return [(d, Events.concat(parts), tables[d]) for d, parts in by_day.items()]


def seoul_days(events: Events) -> list[date]:
    """The Asia/Seoul dates (UTC+9, no daylight saving) the rows fall on."""
    days = np.unique((events.ts + 9 * 3600 * 10**9) // (86_400 * 10**9))
    return [date(1970, 1, 1) + timedelta(days=int(d)) for d in days]


def _tape(chunks) -> Events:
    return Events.concat([e for e, _ in chunks])


@pytest.fixture(scope="module")
def small_two_days():
    return list(synthesize("krx-smallcap", days=2, seed=SMALL_SEED, start=FRIDAY))


@pytest.fixture(scope="module")
def large_day():
    return list(synthesize("krx-largecap", days=1, seed=LARGE_SEED))


class DictBook:
    """The smallest L3 book: orders by id, level sizes by price, best prices by lazy heaps.
    Each order keeps the row that gave it its time priority (its add, or a re-price)."""

    def __init__(self) -> None:
        self.orders: dict[int, list] = {}  # id -> [side, price, size, priority row]
        self.levels = {BID: defaultdict(int), ASK: defaultdict(int)}
        self.heaps: dict[int, list] = {BID: [], ASK: []}

    def _push(self, side, price):
        heapq.heappush(self.heaps[side], -price if side == BID else price)

    def apply(self, row, action, side, price, size, oid):
        if action == ADD:
            assert oid not in self.orders, f"row {row}: order {oid} added twice"
            assert size > 0, f"row {row}: add of size {size}"
            self.orders[oid] = [side, price, size, row]
            self.levels[side][price] += size
            self._push(side, price)
            return
        if action not in (CANCEL, DELETE, MODIFY):
            return  # T and F do not change the book
        assert oid in self.orders, f"row {row}: unknown order id {oid}"
        order = self.orders[oid]
        assert order[0] == side, f"row {row}: order {oid} changed side"
        if action == CANCEL:
            assert order[1] == price, f"row {row}: cancel at {price}, order rests at {order[1]}"
            assert 0 < size <= order[2], f"row {row}: cancel {size} of {order[2]}"
            order[2] -= size
            self.levels[side][price] -= size
            if order[2] == 0:
                del self.orders[oid]
        elif action == DELETE:
            self.levels[side][order[1]] -= order[2]
            del self.orders[oid]
        else:
            assert size > 0, f"row {row}: modify to size {size}"
            self.levels[side][order[1]] -= order[2]
            if price != order[1] or size > order[2]:
                order[3] = row  # tape semantics: a re-price or a larger size loses priority
            order[1], order[2] = price, size
            self.levels[side][price] += size
            self._push(side, price)
        assert self.levels[side][order[1]] >= 0, f"row {row}: negative level size"

    def best(self, side):
        heap, level = self.heaps[side], self.levels[side]
        while heap:
            price = -heap[0] if side == BID else heap[0]
            if level.get(price, 0) > 0:
                return price
            heapq.heappop(heap)
        return None

    def resting(self, side) -> list[tuple[int, int, int]]:
        """(price, size, order id) of the side's orders in time priority."""
        mine = sorted((o[3], o[1], o[2], oid) for oid, o in self.orders.items() if o[0] == side)
        return [(price, size, oid) for _, price, size, oid in mine]


def uncrossed_phase(events: Events, seed: int) -> np.ndarray:
    """Rows after which the book must not be crossed: from each day's opening uncross to
    15:20, and the closing uncross. docs/reference/krx.md: "Opening call auction: orders from
    08:30, uncross at 09:00"; "Continuous 09:00-15:20; closing call auction 15:20-15:30";
    in a call auction nothing matches, so its book may cross until the uncross."""
    mask = np.zeros(len(events), bool)
    for day in seoul_days(events):
        sched = schedule(day, seed)
        mask |= ((events.ts >= sched.open_ns) & (events.ts < sched.continuous_end_ns)) \
            | (events.ts == sched.close_ns)
    return mask


def replay_spreads(events: Events, seed: int) -> list[tuple[int, int]]:
    """Replay ``events`` through a DictBook, checking after each F_LAST outside the call
    auctions that the book is not crossed; returns (best bid, best ask) at each such F_LAST
    with both sides present."""
    book = DictBook()
    tops = []
    check = uncrossed_phase(events, seed).tolist()
    rows = zip(events.action.tolist(), events.side.tolist(), events.price.tolist(),
               events.size.tolist(), events.order_id.tolist(), events.flags.tolist(),
               check, strict=True)
    for row, (action, side, price, size, oid, flags, uncrossed) in enumerate(rows):
        book.apply(row, action, side, price, size, oid)
        if flags & F_LAST and uncrossed:
            bid, ask = book.best(BID), book.best(ASK)
            if bid is not None and ask is not None:
                assert bid < ask, f"row {row}: crossed book {bid} >= {ask}"
                tops.append((bid, ask))
    return tops


def spread_ticks(tops, ladder) -> np.ndarray:
    top = np.array(tops)
    return np.searchsorted(ladder, top[:, 1]) - np.searchsorted(ladder, top[:, 0])


def _packet_ids(ev: Events) -> np.ndarray:
    # A packet ends at its F_LAST row.
    return np.concatenate([[0], np.cumsum(ev.flags[:-1] & F_LAST != 0)])


def test_same_seed_gives_identical_events_and_another_seed_does_not():
    a = _tape(synthesize("krx-smallcap", 1, seed=3))
    b = _tape(synthesize("krx-smallcap", 1, seed=3))
    c = _tape(synthesize("krx-smallcap", 1, seed=4))
    for col in ("ts", "action", "side", "price", "size", "order_id", "flags", "sequence"):
        assert np.array_equal(getattr(a, col), getattr(b, col)), col
        assert getattr(a, col).tobytes() == getattr(b, col).tobytes(), col
    assert len(a) != len(c) or not np.array_equal(a.price, c.price)


def test_chunk_size_does_not_change_the_tape():
    whole = _tape(synthesize("krx-smallcap", 1, seed=8))
    small_chunks = list(synthesize("krx-smallcap", 1, seed=8, chunk_events=20_000))
    assert len(small_chunks) > 5
    assert all(len(e) <= 20_000 for e, _ in small_chunks)
    pieces = _tape(small_chunks)
    for col in ("ts", "action", "price", "size", "order_id", "flags", "sequence"):
        assert np.array_equal(getattr(whole, col), getattr(pieces, col)), col


def test_the_books_growth_does_not_change_the_tape(monkeypatch):
    """The book grows on demand, before any draw: a book of 16 rows that doubles its way
    through an opening top-up of the whole book (no opening auction: 160 orders) and a
    limit-locked day's growing queue writes the tape a roomy one writes."""
    import replay.synth as synth

    no_auction = dataclasses.replace(SMALLCAP, auction_orders_open=0.0)

    def days():
        return _tape(list(synthesize(no_auction, 1, seed=11, start=FRIDAY))
                     + list(synthesize("krx-smallcap", 2, seed=11, start=FRIDAY,
                                       shocks={1: -0.40})))

    roomy = days()
    grown = []

    class Tiny(synth._Book):
        def __init__(self, capacity: int) -> None:
            super().__init__(16)
            grown.append(self)

    monkeypatch.setattr(synth, "_Book", Tiny)
    tiny = days()
    assert grown and grown[0].capacity >= 256  # it did grow, more than once
    for col in ("ts", "action", "side", "price", "size", "order_id", "flags", "sequence"):
        assert np.array_equal(getattr(roomy, col), getattr(tiny, col)), col


@pytest.mark.parametrize("fixture", ["small_two_days", "large_day"])
def test_prices_are_on_the_tick_grid_and_inside_the_daily_limits(fixture, request):
    for day, ev, table in _days(request.getfixturevalue(fixture)):
        base = table.instruments[0].prev_close_units
        lower, upper = price_limits(base, on=day)
        assert ev.price.min() >= lower and ev.price.max() <= upper, day
        assert is_on_grid(ev.price, on=day).all(), day


@pytest.mark.parametrize("fixture", ["small_two_days", "large_day"])
def test_every_fill_is_followed_by_a_cancel_of_the_same_order_and_size(fixture, request):
    ev = _tape(request.getfixturevalue(fixture))
    fills = np.flatnonzero(ev.action == FILL)
    assert len(fills) > 1_000
    nxt = fills + 1
    assert nxt[-1] < len(ev)
    assert (ev.action[nxt] == CANCEL).all()
    for col in ("order_id", "size", "side", "ts"):
        assert np.array_equal(getattr(ev, col)[nxt], getattr(ev, col)[fills]), col
    assert np.array_equal(ev.flags[nxt] & F_AUCTION, ev.flags[fills] & F_AUCTION)
    # In continuous trading an order fills at its own price; in an uncross at the uncross
    # price, while its C names the price it rests at.
    continuous = (ev.flags[fills] & F_AUCTION) == 0
    assert np.array_equal(ev.price[nxt][continuous], ev.price[fills][continuous])


@pytest.mark.parametrize("fixture", ["small_two_days", "large_day"])
def test_trade_packets_print_one_trade_of_the_summed_fills(fixture, request):
    ev = _tape(request.getfixturevalue(fixture))
    packet = _packet_ids(ev)
    trades = np.flatnonzero(ev.action == TRADE)
    fills = ev.action == FILL
    # One T per packet, first in it, and every F belongs to a packet with a T.
    assert len(np.unique(packet[trades])) == len(trades)
    assert (trades == 0).sum() == 0 and (packet[trades - 1] != packet[trades]).all()
    assert np.isin(packet[fills], packet[trades]).all()
    # The print's size is what the resting side filled; in an uncross both sides are
    # resting orders, and each side fills the volume.
    auction = (ev.flags[trades] & F_AUCTION) != 0
    for side in (BID, ASK):
        mine = fills & (ev.side == side)
        fill_sum = np.bincount(packet[mine], weights=ev.size[mine], minlength=packet[-1] + 1)
        traded = fill_sum[packet[trades]]
        assert np.array_equal(traded[auction], ev.size[trades][auction])
        assert ((traded == ev.size[trades]) | (traded == 0))[~auction].all()
    fill_sum = np.bincount(packet[fills], weights=ev.size[fills], minlength=packet[-1] + 1)
    assert np.array_equal(fill_sum[packet[trades]][~auction], ev.size[trades][~auction])
    # A market order's print: the last price walked, side the aggressor's (opposite the F).
    # An uncross's: side N at the one price every F of the packet carries.
    assert (ev.side[trades][auction] == NONE).all() and auction.sum() >= 2
    last_fill = np.zeros(packet[-1] + 1, np.int64)
    last_fill[packet[fills]] = np.flatnonzero(fills)  # later rows overwrite earlier ones
    lf = last_fill[packet[trades]]
    assert np.array_equal(ev.price[lf], ev.price[trades])
    market = trades[~auction]
    assert ((ev.side[market] == BID) == (ev.side[last_fill[packet[market]]] == ASK)).all()
    auction_fills = np.flatnonzero(fills & (ev.flags & F_AUCTION != 0))
    t_of = dict(zip(packet[trades].tolist(), ev.price[trades].tolist(), strict=True))
    assert all(ev.price[i] == t_of[packet[i]] for i in auction_fills)


@pytest.mark.parametrize("fixture", ["small_two_days", "large_day"])
def test_packets_share_one_ts_and_only_known_packets_have_many_rows(fixture, request):
    """Every packet ends with F_LAST and its rows share one ts. Two packets share a ts only
    at an uncross: the opening one and the book's top-up, the closing one and the deletes
    (docs/reference/krx.md: "Every single-price auction ends at a random moment within 30 s
    after its nominal end", which is where both happen)."""
    chunks = request.getfixturevalue(fixture)
    seed = SMALL_SEED if fixture == "small_two_days" else LARGE_SEED
    ev = _tape(chunks)
    assert ev.flags[-1] & F_LAST
    packet = _packet_ids(ev)
    first_row = np.flatnonzero(np.append(True, packet[1:] != packet[:-1]))
    last_row = np.append(first_row[1:] - 1, len(ev) - 1)
    assert np.array_equal(ev.ts[first_row], ev.ts[last_row])
    assert (np.diff(ev.ts) >= 0).all()
    uncross_ts = [t for d in seoul_days(ev) for t in (schedule(d, seed).open_ns,
                                                      schedule(d, seed).close_ns)]
    shared = np.unique(ev.ts[first_row][1:][np.diff(ev.ts[first_row]) == 0])
    assert set(shared.tolist()) <= set(uncross_ts)
    # Multi-row packets: trades (market orders, uncrosses), the top-up, the deletes.
    multi = first_row[last_row > first_row]
    kind = ev.action[multi]
    assert np.isin(kind, (TRADE, ADD, DELETE)).all()
    assert np.isin(ev.ts[multi][kind != TRADE], uncross_ts).all()
    assert (kind == DELETE).sum() == len(_days(chunks))
    assert np.isin(ev.ts[ev.action == DELETE], uncross_ts[1::2]).all()  # at the close


def test_order_id_book_replays_the_small_cap_tape_cleanly(small_two_days):
    ev = _tape(small_two_days)
    tops = replay_spreads(ev, SMALL_SEED)
    checked = (ev.flags & F_LAST).astype(bool) & uncrossed_phase(ev, SMALL_SEED)
    assert len(tops) > 0.9 * checked.sum() - 10
    first_day, _, table = _days(small_two_days)[0]
    ladder = price_grid(*price_limits(table.instruments[0].prev_close_units, on=first_day),
                        on=first_day)
    ticks = spread_ticks(tops[: len(tops) // 2], ladder)
    assert (ticks >= 1).all()
    assert 0.05 < np.mean(ticks >= 2) < 0.6  # a thin book: often wider than one tick


def test_large_cap_day_has_millions_of_events_and_a_one_tick_spread(large_day,
                                                                    small_two_days):
    (day, ev, table), = _days(large_day)
    assert len(ev) >= 1_000_000
    assert len(_days(small_two_days)[0][1]) < len(ev) / 3
    # Replay a prefix that ends at a packet boundary (the whole day takes too long here).
    cut = int(np.flatnonzero(ev.flags[:LARGECAP_REPLAY_ROWS] & F_LAST)[-1]) + 1
    tops = replay_spreads(ev.take(slice(0, cut)), LARGE_SEED)
    ladder = price_grid(*price_limits(table.instruments[0].prev_close_units, on=day), on=day)
    ticks = spread_ticks(tops, ladder)
    assert np.median(ticks) == 1
    assert np.mean(ticks == 1) > 0.9
    # A deep book at the open: the auction's rest and the top-up spread thousands of shares
    # over 10+ levels a side.
    opened = ev.take(slice(0, int(np.flatnonzero(ev.ts == schedule(day, LARGE_SEED).open_ns)
                                  [-1]) + 1))
    book = DictBook()
    for row, (action, side, price, size, oid) in enumerate(zip(
            opened.action.tolist(), opened.side.tolist(), opened.price.tolist(),
            opened.size.tolist(), opened.order_id.tolist(), strict=True)):
        book.apply(row, action, side, price, size, oid)
    for side in (BID, ASK):
        depth = np.array([q for q in book.levels[side].values() if q > 0])
        assert (depth >= 1_000).sum() >= 10, side


def test_next_day_base_is_the_close_and_falls_on_the_next_trading_day(small_two_days):
    """docs/reference/krx.md: "Base price: previous close; with no trade, the previous base." The
    close is the closing uncross's price (the last trade before it if nothing crosses)."""
    (d1, ev1, t1), (d2, ev2, t2) = _days(small_two_days)
    assert t1.instruments[0].prev_close_units == SMALLCAP.start_price
    last_trade = int(ev1.price[ev1.action == TRADE][-1])
    assert t2.instruments[0].prev_close_units == last_trade
    # Friday 2024-01-05 -> Monday 2024-01-08, on XKRX and on weekdays alike.
    assert (d1, d2) == tuple(trading_days(FRIDAY, 2)) == (FRIDAY, date(2024, 1, 8))
    sched = schedule(d2, SMALL_SEED)
    assert sched.pre_open_ns < ev2.ts[0] < sched.open_ns and ev2.ts[-1] == sched.close_ns
    assert (np.diff(np.concatenate([ev1.ts, ev2.ts])) >= 0).all()
    # Order ids and sequence numbers keep increasing across the day boundary.
    assert ev2.sequence[0] == ev1.sequence[-1] + 1
    assert ev2.order_id[ev2.action == ADD].min() > ev1.order_id[ev1.action == ADD].max()


def test_written_tape_reads_back_identical_with_its_session_seed(tmp_path):
    path = write_synthetic_tape(tmp_path / "small.parquet", "krx-smallcap", 1, seed=2,
                                chunk_events=100_000)
    tape = Tape(path)
    assert tape.session_seed == 2  # a replay draws the same auction ends from it
    inst = tape.instruments.by_symbol("SYNTH-SMALL")
    assert (inst.venue, inst.market, inst.price_decimals) == ("XKRX", "KOSPI", 0)
    assert (inst.prev_close_units, inst.tick_units) == (6_000, 10)
    back = tape.read()
    fresh = _tape(synthesize("krx-smallcap", 1, seed=2))
    for col in ("ts", "instrument", "action", "side", "price", "size", "order_id", "flags"):
        assert np.array_equal(getattr(back, col), getattr(fresh, col)), col


def test_placement_hook_never_crosses_and_yields_at_a_locked_limit():
    params = LARGECAP.to_params()
    lower, upper = price_limits(70_000)
    ladder = price_grid(lower, upper)
    rng = np.random.default_rng(1)
    bids = [place_price(BID, 70_000, 70_100, 70_000, params, ladder, rng) for _ in range(500)]
    asks = [place_price(ASK, 70_000, 70_100, 70_000, params, ladder, rng) for _ in range(500)]
    assert max(bids) == 70_000 and min(asks) == 70_100
    assert np.isin(bids + asks, ladder).all()
    # Bids stacked at the upper limit and no asks: no sell can rest without crossing.
    assert place_price(ASK, upper, 0, upper, params, ladder, rng) == 0


def test_profiles_are_validated_and_named():
    with pytest.raises(ValueError, match="leave room"):
        dataclasses.replace(SMALLCAP, cancel_share=0.95)
    with pytest.raises(ValueError, match="krx-largecap, krx-smallcap"):
        next(synthesize("krx-midcap", 1, seed=0))
