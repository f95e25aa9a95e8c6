"""reference/krx.md, "Single-price auction (uncross)": maximum volume, the reference rule,
price-time priority and the limit-open allocation rounds."""

import pytest

from venues.krx.uncross import uncross


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
