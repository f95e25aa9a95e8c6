"""docs/reference/krx.md, "Single-price auction (uncross)": maximum volume, the reference rule,
price-time priority and the limit-open allocation rounds.

``reference_uncross`` below is the original pure-Python implementation (one pass over the
orders per candidate price, allocation order by order), kept as the oracle the array version
is compared against on random books."""

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venues.krx.uncross import MARKET_PRICE, ROUNDS, Uncross, uncross, uncross_arrays


def test_the_reference_price_wins_among_equal_volume_candidates():
    # krx.md: "Several candidates: take the one equal to the previous price"
    r = uncross([(105, 10)], [(100, 10)], reference=102)
    assert (r.price, r.volume) == (102, 10)


def test_otherwise_the_candidate_closest_to_the_reference():
    # krx.md: "otherwise the candidate closest to it"
    assert uncross([(105, 10)], [(100, 10)], reference=110).price == 105
    assert uncross([(105, 10)], [(100, 10)], reference=90).price == 100


def test_maximum_executable_volume_decides_first():
    # 101: min(15, 8) = 8; 102: min(15, 12) = 12; 103: min(5, 12) = 5
    r = uncross([(103, 5), (102, 10)], [(101, 8), (102, 4)], reference=103)
    assert (r.price, r.volume) == (102, 12)
    # price priority: the 103 bid in full, the 102 bid gets the rest; asks all filled
    assert r.bid_fills == [5, 7]
    assert r.ask_fills == [8, 4]


def test_time_priority_at_the_uncross_price():
    r = uncross([(102, 5), (102, 5)], [(102, 7)], reference=102)
    assert r.bid_fills == [5, 2]


def test_market_orders_take_any_price():
    r = uncross([(None, 10)], [(100, 5), (101, 10)], reference=100)
    assert (r.price, r.volume) == (101, 10)
    assert r.ask_fills == [5, 5]


def test_nothing_crosses():
    r = uncross([(99, 10)], [(100, 10)], reference=100)
    assert (r.price, r.volume) == (None, 0)
    assert r.bid_fills == [0] and r.ask_fills == [0]


def test_an_open_at_the_upper_limit_fills_the_limit_bids_in_rounds():
    # krx.md: "orders at the limit price count as simultaneous and are filled in rounds
    # (100, 500, 1,000, 2,000 units per order, ...)". 600 shares for three bids at 13,000:
    # round 1: 100 + 100 + 50 = 250; round 2: the first bid takes the remaining 350.
    bids = [(13_000, 1_000), (13_000, 300), (13_000, 50)]
    r = uncross(bids, [(13_000, 600)], reference=10_000, lower_limit=7_000,
                upper_limit=13_000)
    assert (r.price, r.volume) == (13_000, 600)
    assert r.bid_fills == [450, 100, 50]
    # at the close (or when not at a limit) the same book goes by time priority
    closing = uncross(bids, [(13_000, 600)], reference=10_000, lower_limit=7_000,
                      upper_limit=13_000, opening=False)
    assert closing.bid_fills == [600, 0, 0]


def test_an_open_at_the_lower_limit_rations_the_sellers():
    # forced sales at the lower limit: 2,600 shares offered against 1,000 bid
    asks = [(7_000, 2_000), (None, 500), (7_000, 100)]
    r = uncross([(7_000, 1_000)], asks, reference=10_000, lower_limit=7_000,
                upper_limit=13_000)
    assert (r.price, r.volume) == (7_000, 1_000)
    # rounds: 100 each (300), then up to 500 each in time order: 500 + 200
    assert r.ask_fills == [600, 300, 100]
    assert sum(r.ask_fills) == r.volume


def test_later_rounds_give_half_the_remainder_then_the_rest():
    # two bids of 10,000 share 9,000: rounds 100/500/1,000/2,000 give each 3,600 (7,200);
    # the half-remainder round would give the first bid 3,200, but only 1,800 are left
    r = uncross([(13_000, 10_000), (13_000, 10_000)], [(13_000, 9_000)], reference=10_000,
                lower_limit=7_000, upper_limit=13_000)
    assert r.bid_fills == [3_600 + 1_800, 3_600]
    assert sum(r.bid_fills) == 9_000


def test_bad_orders_are_rejected():
    with pytest.raises(ValueError, match="bid order 0: size must be positive"):
        uncross([(100, 0)], [(100, 1)], reference=100)


def test_the_array_form_takes_minus_one_for_a_market_order():
    price, volume, bid_fills, ask_fills = uncross_arrays(
        np.array([MARKET_PRICE, 13_000, 13_000]), np.array([300, 1_000, 50]),
        np.array([13_000]), np.array([600]), 10_000, lower_limit=7_000, upper_limit=13_000)
    # the market bid joins the simultaneous group at the upper limit
    assert (price, volume) == (13_000, 600)
    assert bid_fills.tolist() == [100 + 200, 100 + 150, 50]
    assert bid_fills.dtype == np.int64


def test_the_array_form_rejects_bad_orders():
    with pytest.raises(ValueError, match="ask order 1: price must be positive or -1"):
        uncross_arrays(np.array([100]), np.array([1]), np.array([100, -2]),
                       np.array([1, 1]), 100)
    with pytest.raises(TypeError, match="integer"):
        uncross_arrays(np.array([100.0]), np.array([1]), np.array([100]), np.array([1]), 100)
    # a literal -1 is not a market order in the tuple form
    with pytest.raises(ValueError, match="bid order 0: price must be positive or None"):
        uncross([(-1, 5)], [(100, 5)], reference=100)


# --- equivalence with the original implementation --------------------------------------

LOWER, UPPER = 7_000, 13_000
GRID = [LOWER, 9_900, 10_000, 10_100, UPPER]


def orders(max_size=40):
    return st.lists(st.tuples(st.sampled_from([None, *GRID]), st.integers(1, 5_000)),
                    max_size=max_size)


@settings(max_examples=400, deadline=None)
@given(bids=orders(), asks=orders(), reference=st.sampled_from([8_000, *GRID, 12_000]),
       limits=st.sampled_from([(LOWER, UPPER), (None, None), (LOWER, None)]),
       opening=st.booleans())
def test_the_array_uncross_matches_the_reference_implementation(bids, asks, reference,
                                                                limits, opening):
    kwargs = dict(lower_limit=limits[0], upper_limit=limits[1], opening=opening)
    assert uncross(bids, asks, reference, **kwargs) == reference_uncross(bids, asks,
                                                                         reference, **kwargs)


@settings(max_examples=400, deadline=None)
@given(limit=st.sampled_from(["upper", "lower"]), data=st.data(), opening=st.booleans())
def test_the_rounds_match_the_reference_implementation(limit, data, opening):
    # the rationed side at the limit (or market), often with orders large enough to reach the
    # half and rest rounds; the other side at the limit, offering any part of what the
    # rationed side wants, so that the rounds run out part-way through any one of them
    at = UPPER if limit == "upper" else LOWER
    sizes = st.integers(1, 5_000) | st.integers(3_600, 5_000)
    crowd = data.draw(st.lists(st.tuples(st.sampled_from([None, at, at, at]), sizes),
                               min_size=1, max_size=12))
    wanted = sum(s for _, s in crowd)
    offered = max(1, wanted * data.draw(st.integers(1, 1_000)) // 1_000)
    other = [(at, 5_000)] * (offered // 5_000) + [(at, offered % 5_000)] * (offered % 5_000 > 0)
    bids, asks = (crowd, other) if limit == "upper" else (other, crowd)
    kwargs = dict(lower_limit=LOWER, upper_limit=UPPER, opening=opening)
    assert uncross(bids, asks, 10_000, **kwargs) == reference_uncross(bids, asks, 10_000,
                                                                      **kwargs)


def test_a_book_of_fifty_thousand_orders_a_side_uncrosses():
    rng = np.random.default_rng(7)
    n, tick = 50_000, 10
    levels = rng.integers(0, 201, size=(2, n))
    bid_px, ask_px = 9_000 + tick * levels[0], 9_500 + tick * levels[1]
    bid_px[rng.random(n) < 0.01] = MARKET_PRICE
    ask_px[rng.random(n) < 0.01] = MARKET_PRICE
    bid_sz, ask_sz = rng.integers(1, 5_001, size=(2, n))
    price, volume, bid_fills, ask_fills = uncross_arrays(bid_px, bid_sz, ask_px, ask_sz, 10_000)
    # independently: sizes per tick level over the whole grid (market orders at its ends)
    grid = np.arange(9_000, 11_501, tick)
    bid_level = np.where(bid_px == MARKET_PRICE, len(grid) - 1, (bid_px - 9_000) // tick)
    ask_level = np.where(ask_px == MARKET_PRICE, 0, (ask_px - 9_000) // tick)
    at_or_above = np.cumsum(np.bincount(bid_level, bid_sz, len(grid)).astype(np.int64)[::-1])
    at_or_below = np.cumsum(np.bincount(ask_level, ask_sz, len(grid)).astype(np.int64))
    assert volume == np.minimum(at_or_above[::-1], at_or_below).max() > 0
    assert bid_fills.sum() == ask_fills.sum() == volume
    assert (bid_fills <= bid_sz).all() and (ask_fills <= ask_sz).all()
    assert 9_500 <= price <= 11_000


def reference_uncross(bids: Sequence[tuple[int | None, int]],
                      asks: Sequence[tuple[int | None, int]], reference: int, *,
                      lower_limit: int | None = None, upper_limit: int | None = None,
                      opening: bool = True) -> Uncross:
    """The original O(prices x orders) implementation, verbatim but for names."""
    for orders_, side in ((bids, "bid"), (asks, "ask")):
        for i, (price, size) in enumerate(orders_):
            if size <= 0:
                raise ValueError(f"{side} order {i}: size must be positive, got {size}")
            if price is not None and price <= 0:
                raise ValueError(f"{side} order {i}: price must be positive or None (market)")

    def volume_at(p):
        demand = sum(s for q, s in bids if q is None or q >= p)
        supply = sum(s for q, s in asks if q is None or q <= p)
        return min(demand, supply)

    prices = sorted({p for p, _ in [*bids, *asks] if p is not None} | {reference})
    best = 0
    lo = hi = None
    for p in prices:
        v = volume_at(p)
        if v > best:
            best, lo, hi = v, p, p
        elif v == best and best > 0:
            hi = p
    if best == 0:
        return Uncross(None, 0, [0] * len(bids), [0] * len(asks))
    price = min(max(reference, lo), hi)
    at_limit = opening and price in (lower_limit, upper_limit)
    bid_fills = _reference_allocate(bids, price, best, buy=True,
                                    simultaneous=at_limit and price == upper_limit)
    ask_fills = _reference_allocate(asks, price, best, buy=False,
                                    simultaneous=at_limit and price == lower_limit)
    return Uncross(price, best, bid_fills, ask_fills)


def _reference_allocate(orders_, price, volume, *, buy, simultaneous):
    fills = [0] * len(orders_)

    def better(p):
        if p is None:
            return not simultaneous  # a market order is at the limit when rounds apply
        return p > price if buy else p < price

    left = volume
    ranked = sorted((i for i, (p, _) in enumerate(orders_) if better(p)),
                    key=lambda i: (0 if orders_[i][0] is None else 1,
                                   -(orders_[i][0] or 0) if buy else (orders_[i][0] or 0), i))
    for i in ranked:
        take = min(left, orders_[i][1])
        fills[i] = take
        left -= take
    marginal = [i for i, (p, _) in enumerate(orders_) if p == price or (p is None and
                                                                        not better(p))]
    if not simultaneous:
        for i in marginal:
            take = min(left, orders_[i][1])
            fills[i] += take
            left -= take
        return fills
    caps = list(ROUNDS) + ["half", "rest"]
    for cap in caps:
        for i in marginal:
            if left == 0:
                return fills
            remaining = orders_[i][1] - fills[i]
            if remaining == 0:
                continue
            if cap == "half":
                give = (remaining + 1) // 2
            elif cap == "rest":
                give = remaining
            else:
                give = min(cap, remaining)
            give = min(give, left)
            fills[i] += give
            left -= give
    return fills
