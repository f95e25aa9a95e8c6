"""Generative mode: no tape; the reactive flow and injected orders share the simulated book."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from replay.engine import InjectedOrders, Replay
from replay.generative import run_generative
from replay.synth import INSTRUMENT_ID
from replay.tape import ASK, Instrument, InstrumentTable
from venues.codes import (
    ORDER_TYPES,
)
from venues.krx.calendar import trading_days
from venues.krx.session import continuous_bounds_ns

DAY = trading_days(date(2024, 1, 2), 1)[0]
OPEN_NS, CLOSE_NS = continuous_bounds_ns(DAY)
AT = OPEN_NS + 3600 * 10**9  # 10:00 KST


def sell(size, ts=AT):
    return InjectedOrders(np.array([ts]), np.array([INSTRUMENT_ID]), np.array([ASK]),
                          np.array([ORDER_TYPES["market"]]), np.array([0]), np.array([size]))


def last_price(result, ts):
    trades = result.trades[result.trades.ts <= ts]
    return int(trades.price.iloc[-1])


def test_same_seed_same_session_and_a_new_seed_a_new_one():
    a = run_generative("krx-smallcap", seed=5)
    b = run_generative("krx-smallcap", seed=5)
    c = run_generative("krx-smallcap", seed=6)
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.top_of_book, b.top_of_book)
    assert not a.trades.equals(c.trades)
    assert a.mode == "generative" and a.events > 100_000


def test_flow_stays_on_the_tick_grid_inside_the_limits_and_uncrossed():
    result = run_generative("krx-smallcap", seed=2)
    from venues.krx.limits import price_limits
    from venues.krx.ticks import is_on_grid

    lower, upper = price_limits(6_000, on=DAY)
    assert result.trades.price.between(lower, upper).all()
    assert is_on_grid(result.trades.price.to_numpy(), on=DAY).all()
    tob = result.top_of_book
    both = (tob.bid_px > 0) & (tob.ask_px > 0)
    assert (tob.bid_px[both] < tob.ask_px[both]).all()


def test_an_injected_sell_walks_the_simulated_book_of_the_flow():
    base = run_generative("krx-smallcap", seed=1)
    hit = run_generative("krx-smallcap", seed=1, injected=sell(20_000))
    before = base.top_of_book[base.top_of_book.ts < AT].iloc[-1]
    # identical up to the sell: the flow is the same until it sees the sell
    pd.testing.assert_frame_equal(base.trades[base.trades.ts < AT].reset_index(drop=True),
                                  hit.trades[hit.trades.ts < AT].reset_index(drop=True))
    fills = hit.fills[(hit.fills.taker == 0)]
    assert fills["size"].sum() == hit.injected.filled.iloc[0] > 0
    assert fills.price.max() == before.bid_px  # starts at the best bid ...
    assert fills.price.nunique() >= 3  # ... and walks down the depth the flow built
    after = hit.top_of_book[hit.top_of_book.ts >= AT].iloc[0]
    assert after.bid_px < fills.price.min() or after.bid_px == -1


def test_impact_emerges_then_relaxes_through_the_flow():
    """Over fixed seeds, the sell's price impact is large at once and smaller an hour later:
    nothing re-centres the price but the flow's own reaction."""
    now, later = [], []
    for seed in range(8):
        base = run_generative("krx-smallcap", seed=seed)
        hit = run_generative("krx-smallcap", seed=seed, injected=sell(20_000))
        now.append(last_price(hit, AT + 10**9) - last_price(base, AT + 10**9))
        later.append(last_price(hit, AT + 3600 * 10**9) - last_price(base, AT + 3600 * 10**9))
    assert np.mean(now) < -50
    assert abs(np.mean(later)) < abs(np.mean(now))


def test_replay_refuses_generative_without_a_tape():
    rp = Replay(InstrumentTable([Instrument(0, "X")]), "generative")
    with pytest.raises(ValueError, match="no tape"):
        rp.run([])
