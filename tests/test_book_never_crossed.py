"""In continuous trading the simulated book is never crossed or locked at a packet end: a
historical order that crosses the opposite side executes, as the exchange would match it
(docs/replay-modes.md: crossing history). The hand-built tapes work out every expected fill.
"""

from __future__ import annotations

from datetime import time as t

import numpy as np

from replay.engine import InjectedOrders, Replay
from replay.tape import ADD, ASK, BID, F_LAST, TRADE, Events, Instrument, InstrumentTable
from tests.test_krx_venue import DAY, LMT, opened_tape, orders, stock
from venues.codes import (
    ORDER_TYPES,
)
from venues.krx.session import seoul_ns

SEC = 10**9


def _events(rows):
    cols = ["ts", "instrument", "action", "side", "price", "size", "order_id", "flags"]
    return Events.from_columns({c: np.array([r[i] for r in rows], np.int64)
                                for i, c in enumerate(cols)})


def _locked_rows(top):
    both = (top.bid_px > 0) & (top.ask_px > 0)
    return top[both & (top.bid_px >= top.ask_px)]


def test_relative_shifted_ask_meeting_a_bid_executes_instead_of_locking_the_book():
    """A 5-share injected sell moves the last price 101 -> 100: the gap is -1, so the tape's
    ask at 100 arrives at 99, where a bid rests. It executes at the bid's price; before, the
    book showed bid 99 = ask 99."""
    inst = InstrumentTable([Instrument(0, "T", tick_units=1)])
    rows = [(1 * SEC, 0, ADD, BID, 100, 5, 1, F_LAST), (2 * SEC, 0, ADD, BID, 99, 5, 2, F_LAST),
            (3 * SEC, 0, ADD, ASK, 103, 5, 3, F_LAST),
            (4 * SEC, 0, TRADE, BID, 101, 1, 0, F_LAST),
            (6 * SEC, 0, ADD, ASK, 100, 3, 4, F_LAST)]  # shifted to 99
    sell = InjectedOrders(np.array([5 * SEC]), np.array([0]), np.array([ASK]),
                          np.array([ORDER_TYPES["market"]]), np.array([0]), np.array([5]))
    r = Replay(inst, "relative").run([_events(rows)], sell)
    assert r.injected.filled[0] == 5
    cross = r.fills[r.fills.source == 3]  # history_cross
    assert cross[["side", "price", "size", "maker_order_id"]].values.tolist() == [[ASK, 99, 3, 2]]
    assert r.counters["history_crossing_executed"] == 1
    assert r.counters["history_crossing_qty"] == 3
    assert len(_locked_rows(r.top_of_book)) == 0
    last = r.top_of_book.iloc[-1]
    assert (last.bid_px, last.bid_sz, last.ask_px, last.ask_sz) == (99, 2, 103, 5)


def test_absolute_generic_venue_keeps_a_crossed_book_the_tape_carries():
    """At the generic venue in absolute mode history keeps its prices: a tape whose own bid
    crosses its own ask (a CME pre-open, say) stays crossed, nothing executes."""
    inst = InstrumentTable([Instrument(0, "T", tick_units=1)])
    rows = [(1 * SEC, 0, ADD, ASK, 100, 5, 1, F_LAST), (2 * SEC, 0, ADD, BID, 101, 5, 2, F_LAST)]
    r = Replay(inst, "absolute").run([_events(rows)])
    assert len(r.fills) == 0 and r.counters["history_crossing_executed"] == 0
    last = r.top_of_book.iloc[-1]
    assert (last.bid_px, last.ask_px) == (101, 100)


def test_krx_history_bid_meets_history_ask_first_then_the_injected_one_behind_it():
    """At the KRX venue a historical bid at 10,000 meets the asks resting there in time
    priority: the tape's own ask (queued first), then an injected ask. Before, it took only
    the injected ask and rested the rest at 10,000: bid = ask = 10,000 in continuous
    trading."""
    tape = opened_tape()  # opens at 10,000 (100 shares)
    tape.add(t(9, 5), ASK, 10_000, 100)
    tape.add(t(9, 10), BID, 10_000, 120)
    tape.add(t(9, 15), BID, 9_990, 10)
    at = seoul_ns(DAY, t(9, 7))
    r = Replay(InstrumentTable([stock()]), venue="krx", seed=1).run(
        [tape.events()], orders((at, 1, ASK, LMT, 10_000, 50)))
    cross = r.fills[r.fills.source == 3]
    assert cross["size"].tolist() == [100, 20] and (cross.price == 10_000).all()
    assert cross.maker.tolist() == [-1, 0]  # the tape's ask, then injected order 0
    assert r.injected.filled[0] == 20 and r.injected.resting[0] == 30
    assert r.counters["history_crossing_executed"] == 1
    assert r.counters["history_crossing_qty"] == 120
    top = r.top_of_book
    cont = top[(top.ts >= seoul_ns(DAY, t(9, 0))) & (top.ts < seoul_ns(DAY, t(15, 20)))]
    assert len(_locked_rows(cont)) == 0
    after = cont[cont.ts >= seoul_ns(DAY, t(9, 10))].iloc[0]
    assert (after.bid_px, after.ask_px, after.ask_sz) == (-1, 10_000, 30)


def test_krx_crossing_history_beyond_a_vi_threshold_triggers_the_vi_instead():
    """Within the VI rules: a historical bid that would execute against an ask at or beyond
    the dynamic VI threshold (6% above the last 10,000 for a non-KOSPI200 name) does not
    execute; it triggers the VI, and the name goes to a single-price auction."""
    tape = opened_tape()
    tape.add(t(9, 5), ASK, 10_600, 100)  # 6% above the last price: at the threshold
    tape.add(t(9, 10), BID, 10_600, 50)
    r = Replay(InstrumentTable([stock()]), venue="krx", seed=1).run([tape.events()])
    assert len(r.fills[r.fills.source == 3]) == 0
    vi = r.venue_events[r.venue_events.kind == "vi_dynamic"]
    assert len(vi) == 1 and vi.ts.iloc[0] == seoul_ns(DAY, t(9, 10))
    assert vi.price.iloc[0] == 10_600
    # the VI auction uncrosses the two at 10,600
    ux = r.venue_events[r.venue_events.kind == "uncross_vi"]
    assert ux.price.tolist() == [10_600] and ux.volume.tolist() == [50]



def _continuous(top, events=None):
    """Rows of top_of_book in continuous trading: 09:00-15:20 KST, and at the KRX venue
    after the day's opening uncross and outside every VI auction."""
    kst = (top.ts // SEC + 9 * 3600) % 86_400
    keep = (kst >= 9 * 3600) & (kst < 15 * 3600 + 20 * 60)
    if events is not None:
        for ev in events.itertuples():
            if ev.kind == "uncross_open":
                day = top.ts // (86_400 * SEC) == ev.ts // (86_400 * SEC)
                keep &= ~(day & (top.ts < ev.ts))
            elif ev.kind.startswith(("vi_", "circuit_breaker")):
                keep &= ~((top.ts >= ev.ts) & (top.ts < ev.release_ts))
    return top[keep]


def test_readme_relative_sell_leaves_no_locked_book_at_either_venue(tmp_path):
    """The README's example: a 5,000-share market sell into the seed-7 small-cap day in
    relative mode. The shifted history used to lock the book (33 rows at bid >= ask in
    continuous trading, at the generic and the KRX venue alike)."""
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from replay.cli import app

    def cascade(*args):
        r = CliRunner().invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, r.output

    day, sell = tmp_path / "day.parquet", tmp_path / "sell.csv"
    cascade("data", "synth", "--profile", "krx-smallcap", "--days", 1, "--seed", 7, "-o", day)
    sell.write_text("ts,instrument,side,type,price,size\n"
                    "2024-01-02T01:00:00Z,SYNTH-SMALL,sell,market,,5000\n")
    for venue in ("generic", "krx"):
        run = tmp_path / venue
        cascade("replay", day, "--mode", "relative", "--venue", venue, "--inject", sell,
                "-o", run)
        top = pd.read_parquet(run / "top_of_book.parquet")
        events = pd.read_parquet(run / "venue_events.parquet") if venue == "krx" else None
        cont = _continuous(top, events)
        assert len(cont) > 10_000
        assert len(_locked_rows(cont)) == 0, venue
        counters = json.loads((run / "summary.json").read_text())["counters"]
        assert counters["history_crossing_executed"] > 0, venue
