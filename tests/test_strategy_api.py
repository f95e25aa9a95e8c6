"""The strategy API: callbacks see exactly what the replay printed, when they subscribed and
only then; orders arrive after the latency; refusals are explained."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from replay.engine import Replay
from replay.synth import write_synthetic_tape
from replay.tape import Tape
from strategies.base import Strategy, attach_strategy, load_strategy

MIN = 60 * 10**9


@pytest.fixture(scope="module")
def tape(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "day.parquet"
    write_synthetic_tape(path, "krx-smallcap", days=1, seed=11)
    return Tape(path)


def run(tape: Tape, strategy: Strategy, venue: str = "krx"):
    rp = Replay(tape.instruments, "relative", venue=venue, seed=tape.session_seed or 0)
    host = attach_strategy(rp, strategy) if strategy is not None else None
    return rp.run(tape.chunks(1 << 16)), host


class Recorder(Strategy):
    trades_on = True
    bars = ""
    book_every = ""

    def on_start(self):
        self.inst = self.instrument("SYNTH-SMALL")
        self.trades, self.bar_list, self.books = [], [], []
        if self.trades_on:
            self.subscribe_trades(self.inst)
        if self.bars:
            self.subscribe_bars(self.inst, self.bars)
        if self.book_every:
            self.subscribe_book(self.inst, self.book_every, depth=3)

    def on_trade(self, trade):
        assert trade.ts == self.now
        self.trades.append(trade)

    def on_bar(self, bar):
        self.bar_list.append(bar)

    def on_book(self, book):
        self.books.append(book)


def test_on_trade_sees_every_print_and_a_silent_strategy_changes_nothing(tape):
    plain, _ = run(tape, None)
    rec = Recorder()
    result, _ = run(tape, rec)
    got = pd.DataFrame([(t.ts, t.price, t.size) for t in rec.trades],
                       columns=["ts", "price", "size"])
    want = result.trades[["ts", "price", "size"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert len(got) > 100
    # watching the market does not move it
    pd.testing.assert_frame_equal(result.trades, plain.trades)
    quiet = Recorder(trades_on=False)
    result, _ = run(tape, quiet)
    assert quiet.trades == []
    pd.testing.assert_frame_equal(result.fills, plain.fills)


def test_bars_are_the_trade_prints_resampled(tape):
    rec = Recorder(trades_on=False, bars="5min")
    result, _ = run(tape, rec)
    t = result.trades.copy()
    t["bin"] = t.ts // (5 * MIN) * (5 * MIN)
    want = t.groupby("bin").agg(open=("price", "first"), high=("price", "max"),
                                low=("price", "min"), close=("price", "last"),
                                volume=("size", "sum"), trades=("price", "size"))
    got = pd.DataFrame([(b.start, b.open, b.high, b.low, b.close, b.volume, b.trades)
                        for b in rec.bar_list],
                       columns=["bin", "open", "high", "low", "close", "volume", "trades"])
    pd.testing.assert_frame_equal(got.set_index("bin"), want, check_dtype=False)
    assert all(b.end - b.start == 5 * MIN for b in rec.bar_list)


def test_book_snapshots_are_throttled_and_match_the_top_of_book(tape):
    rec = Recorder(trades_on=False, book_every="1min")
    result, _ = run(tape, rec)
    ts = np.array([b.ts for b in rec.books])
    assert len(ts) > 100
    assert (ts % MIN == 0).all() and (np.diff(ts) >= MIN).all()  # on the grid, one a minute
    tob = result.top_of_book
    for b in rec.books[::37]:
        before = tob[tob.ts < b.ts]
        if len(before) and b.bids and b.asks:
            last = before.iloc[-1]
            assert (b.best_bid, b.best_ask) == (last.bid_px, last.ask_px)


class Timed(Strategy):
    latency_ns = 5_000_000

    def on_start(self):
        self.inst = self.instrument("SYNTH-SMALL")
        self.set_timer("go", interval="30min")
        self.fills, self.rejections, self.sent = [], [], []

    def on_timer(self, timer):
        if not self.sent and self.phase(self.inst) == "continuous" and self.last_price(
                self.inst) > 0:
            self.sent.append((self.now, self.submit_order(self.inst, "buy", 10)))
            # more than the cash buys, and a sale of shares it does not have
            self.submit_order(self.inst, "buy", 10**9, "limit", self.last_price(self.inst))
            self.submit_order(self.inst, "sell", 11)
            far = self.to_tick(self.inst, self.last_price(self.inst) * 0.8)
            self.resting = self.submit_order(self.inst, "buy", 5, "limit", far)
        elif self.sent and self.resting.order_id in [o.order_id for o in self.open_orders()]:
            self.cancel_order(self.resting)

    def on_fill(self, fill):
        self.fills.append(fill)

    def on_order_rejected(self, order, reason):
        self.rejections.append(reason)


def test_orders_arrive_after_the_latency_and_refusals_say_why(tape):
    s = Timed()
    result, host = run(tape, s)
    sent_at, order = s.sent[0]
    assert sent_at % (30 * MIN) == 0
    mine = result.fills[result.fills.taker == order.order_id]
    assert mine.ts.min() == sent_at + 5_000_000  # arrival = decision + latency
    assert sum(f.qty for f in s.fills) == 10 == s.position("SYNTH-SMALL")
    assert s.fills[0].ts == sent_at + 5_000_000
    assert any("buying power" in r for r in s.rejections)
    assert any("no short sales" in r for r in s.rejections)
    assert s.resting.status == "cancelled" and s.resting.filled == 0
    # a cash account pays in full
    spent = sum(f.notional for f in s.fills)
    assert s.balance == Timed.cash - spent and s.loan == 0


def test_a_generic_venue_runs_interval_timers(tape):
    s = Timed()
    run(tape, s, venue="generic")
    assert s.sent and s.sent[0][0] % (30 * MIN) == 0


def test_loading_and_parameters_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="FILE.py:Class"):
        load_strategy("strategies/credit_momentum.py")
    with pytest.raises(FileNotFoundError, match="no file"):
        load_strategy("nowhere.py:X")
    with pytest.raises(ValueError, match="CreditMomentum"):
        load_strategy("strategies/credit_momentum.py:Momentum")
    cls = load_strategy("strategies.credit_momentum:CreditMomentum")
    with pytest.raises(TypeError, match="unknown parameter 'lookbak'.*lookback"):
        cls(lookbak=3)
    assert cls(lookback=3.0).lookback == 3 and cls(meet_calls="true").meet_calls is True
    with pytest.raises(ValueError, match="account"):
        Recorder(account="margin")


class BuysOnSecondBar(Strategy):
    """Buys once, on its second bar in continuous trading; notes when each bar was told and
    when it heard of the fill."""

    def on_start(self):
        self.inst = self.instrument("SYNTH-SMALL")
        self.subscribe_bars(self.inst, "1min")
        self.order = None
        self.fills, self.told = [], []

    def on_bar(self, bar):
        self.told.append((self.now, bar.end))
        if self.order is None and len(self.told) >= 2 and self.phase(self.inst) == "continuous":
            self.order = self.submit_order(self.inst, "buy", 10)

    def on_fill(self, fill):
        self.fills.append(fill)


@pytest.mark.parametrize("buffer_rows", [4096, 16384])
def test_a_bar_is_told_at_its_end_and_its_order_sent_then(tape, buffer_rows):
    """With small report buffers the replay flushes often, and reads the trade prints before
    each flush. A bar is still told when its period ends, not when a flush happens to read
    its trades; the order sent from it carries that time and its fill is heard at once (it
    used to be held back until the loop's next stop for another reason: 15 minutes to two
    hours on this tape)."""
    s = BuysOnSecondBar()
    rp = Replay(tape.instruments, "relative", venue="krx", seed=tape.session_seed or 0,
                buffer_rows=buffer_rows)
    attach_strategy(rp, s)
    result = rp.run(tape.chunks(1 << 16))
    assert s.told and all(now == end for now, end in s.told[:-1])  # the last: at the end
    assert s.order is not None and s.fills
    assert result.injected.iloc[0].status == 1  # filled
    assert s.order.ts == s.told[1][1] + s.latency_ns
    assert s.fills[0].ts - s.order.ts < 10**9
