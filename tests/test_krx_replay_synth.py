"""A 2-day synthetic small-cap tape replayed at the KRX venue, from the command line: both
auctions each day, a VI pushed by an injected order, a limit-locked book when an injected
sell exceeds every bid down to the lower limit (docs/reference/krx.md, sessions, VI, limits)."""

from __future__ import annotations

import json
from datetime import datetime, time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.synth import write_synthetic_tape
from replay.tape import Tape
from venues.krx.calendar import trading_days
from venues.krx.session import SEOUL, schedule

SEED = 11


@pytest.fixture(scope="module")
def krx2d(tmp_path_factory):
    path = tmp_path_factory.mktemp("krx") / "small2d.parquet"
    write_synthetic_tape(path, "krx-smallcap", days=2, seed=SEED)
    return path


def iso(day, at):
    return datetime.combine(day, at, tzinfo=SEOUL).isoformat()


def replay(tape, tmp_path, orders_csv, *extra):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["replay", str(tape), "--venue", "krx", "--inject",
                                 str(orders_csv), "-o", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out


def test_two_day_krx_replay_auctions_vi_and_a_limit_locked_book(krx2d, tmp_path):
    days = trading_days(pd.Timestamp("2024-01-02").date(), 2)
    symbol = Tape(krx2d).instruments.instruments[0].symbol
    assert Tape(krx2d).session_seed == SEED
    orders = tmp_path / "orders.csv"
    # day 1, 10:00: a market sell of 60,000 shares walks the thin book down by more than 6%
    # (a dynamic VI); day 2, 15:25 (closing auction): a sell of 10 million shares at the
    # lower limit, more than every bid in the book
    orders.write_text(
        "ts,instrument,side,type,price,size\n"
        f"{iso(days[0], time(10, 0))},{symbol},sell,market,,60000\n"
        f"{iso(days[1], time(15, 25))},{symbol},sell,market,,10000000\n")
    out = replay(krx2d, tmp_path, orders)
    events = pq.read_table(out / "venue_events.parquet").to_pandas()
    sessions = pq.read_table(out / "sessions.parquet").to_pandas()
    unfilled = pq.read_table(out / "unfilled.parquet").to_pandas()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["venue"] == "krx"
    # both auctions each day, at the tape's own seeded random ends (krx.md:29-33)
    for day in days:
        sch = schedule(day, SEED)
        on_day = events[events.ts.between(sch.pre_open_ns, sch.post_close_end_ns)]
        opens = on_day[on_day.kind == "uncross_open"]
        closes = on_day[on_day.kind == "uncross_close"]
        assert len(opens) == 1 and len(closes) == 1
        assert opens.volume.iloc[0] > 0
        # without a VI extension, the uncross is at the schedule's random end
        if not (on_day.kind.str.startswith("vi") & (on_day.ts == sch.open_ns)).any():
            assert opens.ts.iloc[0] == sch.open_ns
    # the tape's own uncross rows were replaced by the venue's
    assert summary["counters"]["history_auction_rows_replaced"] > 0
    # the injected sell on day 1 pushed the name into a VI (krx.md:48-53): it swept the bids
    # down to the dynamic threshold and rested its rest at the lower limit; the next buy
    # would have executed there, beyond the threshold, and triggered the VI
    at = pd.Timestamp(iso(days[0], time(10, 0))).value
    vis = events[events.kind.str.startswith("vi")]
    assert (vis.ts >= at).all()  # none before the injected order
    v = vis.iloc[0]
    assert v.ts - at < 60 * 10**9
    assert v.price * 100 <= v.reference * 94  # at or beyond 6% below the reference
    assert 120 * 10**9 <= v.release_ts - v.ts < 150 * 10**9
    # day 2: every bid met the sell; the rest rests at the lower limit: limit-locked
    day2 = sessions.iloc[1]
    assert day2.base == sessions.close.iloc[0]  # krx.md:26
    assert day2.limit_locked_down and day2.ask_qty_at_lower_limit > 9_000_000
    left = unfilled[unfilled["size"] == 10_000_000].iloc[0]
    assert left.price == day2.lower_limit and left.unfilled == day2.ask_qty_at_lower_limit
    inj = pq.read_table(out / "injected.parquet").to_pandas()
    assert inj.status.iloc[1] == "expired"
    assert summary["venue_summary"]["limit_locked_down_sessions"] >= 1
    assert summary["venue_summary"]["volatility_interruptions"] >= 1


def test_the_same_tape_and_seed_replay_identically(krx2d, tmp_path):
    orders = tmp_path / "o.csv"
    days = trading_days(pd.Timestamp("2024-01-02").date(), 2)
    symbol = Tape(krx2d).instruments.instruments[0].symbol
    orders.write_text("ts,instrument,side,type,price,size\n"
                      f"{iso(days[0], time(11, 0))},{symbol},sell,market,,3000\n")
    a = replay(krx2d, tmp_path / "a", orders)
    b = replay(krx2d, tmp_path / "b", orders)
    for name in ("fills", "trades", "venue_events", "sessions"):
        ta = pq.read_table(a / f"{name}.parquet").to_pandas()
        tb = pq.read_table(b / f"{name}.parquet").to_pandas()
        pd.testing.assert_frame_equal(ta, tb)
    assert np.array_equal(pq.read_table(a / "injected.parquet").to_pandas().filled,
                          pq.read_table(b / "injected.parquet").to_pandas().filled)


def test_a_sale_filled_in_the_opening_auction_shifts_history_by_what_it_moved(tmp_path):
    # day 2 opens about 12% below day 1's close (a news gap history made itself); a small
    # sell at the lower limit in the pre-open auction fills at the uncross. The re-centring
    # gap is what the sale moved the uncross (a tick or so), not the overnight move: later
    # history trades where it did without the sale, give or take that gap.
    tape = tmp_path / "gap.parquet"
    write_synthetic_tape(tape, "krx-smallcap", days=2, seed=SEED, shocks={1: -0.12})
    days = trading_days(pd.Timestamp("2024-01-02").date(), 2)
    symbol = Tape(tape).instruments.instruments[0].symbol
    orders = tmp_path / "orders.csv"
    orders.write_text("ts,instrument,side,type,price,size\n"
                      f"{iso(days[1], time(8, 40))},{symbol},sell,market,,50\n")
    with_sale = replay(tape, tmp_path / "a", orders, "--mode", "relative")
    injected = pq.read_table(with_sale / "injected.parquet").to_pandas()
    assert injected.filled.tolist() == [50]

    def later_history(run):
        t = pq.read_table(run / "trades.parquet").to_pandas()
        at = pd.Timestamp(iso(days[1], time(10, 0))).value
        return t[(t.ts > at) & (t.source.astype(str) == "history")].price.to_numpy()

    r = CliRunner().invoke(app, ["replay", str(tape), "--venue", "krx", "--mode", "relative",
                                 "-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    moved = np.median(later_history(with_sale)) - np.median(later_history(tmp_path / "b"))
    tick = Tape(tape).instruments.instruments[0].tick_units
    assert abs(moved) <= 3 * tick, moved  # it was about the whole overnight gap (-12%)
