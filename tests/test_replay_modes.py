"""Each replay mode's definition (DESIGN.md: replay modes), shown on a small hand-made tape."""

import numpy as np
import pytest

from replay.engine import InjectedOrders, Replay
from replay.tape import ADD, ASK, BID, CANCEL, FILL, TRADE, Events, Instrument, InstrumentTable
from venues.book import snapshot_levels
from venues.codes import (
    ORDER_TYPES,
)

SEC = 1_000_000_000


def tape(rows):
    ts, action, side, price, size, oid = (list(c) for c in zip(*rows, strict=True))
    return Events.from_columns({
        "ts": ts, "instrument": [0] * len(ts), "action": action, "side": side, "price": price,
        "size": size, "order_id": oid, "flags": [128] * len(ts), "sequence": range(len(ts))})


def market_sell(ts, size):
    return InjectedOrders(np.array([ts]), np.array([0]), np.array([ASK]),
                          np.array([ORDER_TYPES["market"]]), np.array([0]), np.array([size]))


INSTRUMENTS = InstrumentTable([Instrument(0, "X", tick_units=10)])

# A book 1000 bid (oids 1, 2) / 1010 ask, a trade print at 1000, then later history.
BASE = [
    (1, ADD, BID, 1000, 5, 1),
    (2, ADD, BID, 1000, 5, 2),
    (3, ADD, BID, 990, 5, 3),
    (4, ADD, BID, 980, 50, 4),
    (5, ADD, ASK, 1010, 5, 5),
    (6, TRADE, ASK, 1000, 1, 0),
]


def test_absolute_cancel_of_a_consumed_order_is_a_counted_noop():
    rows = BASE + [(20, CANCEL, BID, 1000, 5, 1), (21, ADD, BID, 1000, 7, 6)]
    result = Replay(INSTRUMENTS, "absolute").run([tape(rows)], market_sell(10, 10))
    # the sell took both orders at 1000 (oids 1 and 2), in time priority
    assert list(result.fills["maker_order_id"]) == [1, 2]
    assert list(result.fills["price"]) == [1000, 1000]
    assert result.counters["consumed_noop"] == 1
    # the later historical add keeps its historical price: impact is transient
    last = result.top_of_book.iloc[-1]
    assert (last.bid_px, last.bid_sz) == (1000, 7)


def test_absolute_partial_consumption_clips_later_cancels():
    rows = BASE + [(20, CANCEL, BID, 1000, 4, 1)]
    # the sell takes 3 of order 1's 5: history then cancels 4 of them; only 2 remain to cancel
    result = Replay(INSTRUMENTS, "absolute").run([tape(rows)], market_sell(10, 3))
    assert result.counters["clipped"] == 1
    last = result.top_of_book.iloc[-1]
    assert (last.bid_px, last.bid_sz) == (1000, 5)  # order 2 untouched


def test_absolute_fill_of_a_consumed_order_is_reapplied_as_ioc():
    # history fills order 1 (5 @ 1000) after the sell consumed it: the buyer's demand takes
    # what is left at 1000 or better (order 2) instead of vanishing
    rows = BASE + [(20, FILL, BID, 1000, 5, 1), (20, CANCEL, BID, 1000, 5, 1)]
    result = Replay(INSTRUMENTS, "absolute").run([tape(rows)], market_sell(10, 5))
    reapplied = result.fills[result.fills.source == 2]
    assert list(reapplied.maker_order_id) == [2]
    assert reapplied["size"].sum() == 5
    assert result.counters["reapplied_ioc"] == 1
    assert result.counters["reapplied_dropped_qty"] == 0


def test_reapplied_demand_that_finds_nothing_is_dropped_and_counted():
    rows = BASE + [(20, FILL, BID, 1000, 5, 2), (20, CANCEL, BID, 1000, 5, 2)]
    result = Replay(INSTRUMENTS, "absolute").run([tape(rows)], market_sell(10, 10))
    assert result.counters["reapplied_dropped_qty"] == 5


def test_relative_shifts_later_adds_by_the_reference_gap_snapped_to_ticks():
    # the sell walks 1000 (10) and 990 (5) and takes 1 at 980: last price 980, 2 ticks below
    # the historical 1000. A later add at 1003 -> 983 -> snapped to 980; ask 1010 -> 990.
    rows = BASE + [(20, ADD, BID, 1003, 4, 7), (21, ADD, ASK, 1010, 3, 8)]
    inst = InstrumentTable([Instrument(0, "X", tick_units=1)])
    coarse = InstrumentTable([Instrument(0, "X", tick_units=10)])
    result = Replay(coarse, "relative").run([tape(rows)], market_sell(10, 16))
    assert result.fills["price"].tolist()[-1] == 980
    last = result.top_of_book.iloc[-1]
    assert last.ask_px == 990
    assert result.counters["shifted_events"] == 2
    # snapping: on a 1-unit grid the same add lands exactly 20 below
    fine = Replay(inst, "relative").run([tape(rows)], market_sell(10, 16))
    assert fine.top_of_book.iloc[-1].ask_px == 990
    bids = fine.top_of_book.bid_px.tolist()
    assert 983 in bids and 980 not in bids[-1:]


def test_absolute_does_not_shift():
    rows = BASE + [(20, ADD, ASK, 1010, 3, 8)]
    result = Replay(INSTRUMENTS, "absolute").run([tape(rows)], market_sell(10, 16))
    assert result.counters["shifted_events"] == 0


def test_propagator_gap_decays_with_the_kernel():
    # same impact as the relative test (-20); an add one tau later is shifted by
    # -20 * 2^-beta; with beta = 1 that is -10 (one tick)
    tau = 100 * SEC
    rows = BASE + [(10 + tau, ADD, ASK, 1050, 3, 8), (10 + 1000 * tau, ADD, ASK, 1060, 3, 9)]
    rp = Replay(INSTRUMENTS, "propagator", propagator_tau_s=100, propagator_beta=1.0)
    result = rp.run([tape(rows)], market_sell(10, 16))
    out = np.zeros(4 * 4, np.int64)
    snapshot_levels(rp.book.S, 0, 4, out, 0)
    asks = [(int(out[4 * k + 2]), int(out[4 * k + 3])) for k in range(4)]
    assert asks[:3] == [(1010, 5), (1040, 3), (1060, 3)]  # 1050 - 10; 1060 unshifted
    # 1000 tau later the impact has decayed to -20/1001: rounds to 0, no shift
    assert result.counters["shifted_events"] == 1


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown replay mode"):
        Replay(INSTRUMENTS, "sideways")


def test_an_injected_order_for_an_unknown_instrument_is_rejected():
    orders = InjectedOrders(np.array([1]), np.array([3]), np.array([ASK]),
                            np.array([ORDER_TYPES["market"]]), np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="instrument 3 is not in the instrument table"):
        Replay(INSTRUMENTS, "absolute").run([tape(BASE)], orders)


def test_a_historical_price_off_the_tick_grid_is_counted_and_dropped():
    rows = BASE + [(20, ADD, BID, 1005, 9, 7)]  # tick 10: 1005 is off the grid
    result = Replay(INSTRUMENTS, "absolute").run([tape(rows)])
    assert result.counters["off_grid"] == 1
    last = result.top_of_book.iloc[-1]
    assert (last.bid_px, last.bid_sz) == (1000, 10)
