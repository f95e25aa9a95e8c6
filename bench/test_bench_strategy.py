"""What a strategy costs a replay: one synthetic KRX large-cap day (about 3.6 M L3 events)
replayed at the KRX venue alone and with strategies that subscribe to more and more.

- ``silent``: attached, subscribed to nothing (the loop never stops for it);
- ``bars``: one-minute bars and a book snapshot every second (the loop pauses on a grid);
- ``trades``: every trade print (the loop stops after each event that printed one).

Rounds alternate between the variants so that the machine's drift hits them alike; the
closing section prints each variant's best round over the bare replay's. Timings are
printed, never asserted; every variant is checked to leave the market as the bare replay
does (the strategies only watch).

    .venv/bin/python -m pytest bench/test_bench_strategy.py --benchmark-only -q
"""

from __future__ import annotations

import time
from datetime import date

import pandas as pd
import pytest

from replay.engine import Replay
from replay.synth import synthesize
from replay.tape import Events
from strategies.base import Strategy, attach_strategy

DAY = date(2024, 1, 2)
ROUNDS = 3


class Silent(Strategy):
    pass


class Bars(Strategy):
    def on_start(self):
        self.bars = self.books = 0
        self.subscribe_bars("SYNTH-LARGE", "1min")
        self.subscribe_book("SYNTH-LARGE", "1s", depth=5)

    def on_bar(self, bar):
        self.bars += 1

    def on_book(self, book):
        self.books += 1


class Trades(Strategy):
    def on_start(self):
        self.trades = 0
        self.subscribe_trades("SYNTH-LARGE")

    def on_trade(self, trade):
        self.trades += 1


VARIANTS = {"bare": None, "silent": Silent, "bars": Bars, "trades": Trades}


@pytest.fixture(scope="module")
def day():
    chunks = list(synthesize("krx-largecap", 1, 1, DAY))
    return Events.concat([ev for ev, _ in chunks]), chunks[0][1]


def _run(day, variant):
    events, instruments = day
    rp = Replay(instruments, "relative", venue="krx", seed=1)
    strategy = VARIANTS[variant]() if VARIANTS[variant] else None
    if strategy is not None:
        attach_strategy(rp, strategy)
    t0 = time.perf_counter()
    result = rp.run([events])
    return time.perf_counter() - t0, result, strategy


class _Table:
    lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lines:
            terminalreporter.section("strategy overhead on the replay (best of alternating "
                                     "rounds)")
            for line in self.lines:
                terminalreporter.write_line(line)


def test_strategy_overhead(benchmark, day, request):
    table = _Table()
    request.config.pluginmanager.register(table, "bench-strategy-overhead")
    _run(day, "bare")  # compile
    best = {v: float("inf") for v in VARIANTS}
    results = {}

    def rounds():
        for _ in range(ROUNDS):
            for v in VARIANTS:
                seconds, result, strategy = _run(day, v)
                best[v] = min(best[v], seconds)
                results[v] = (result, strategy)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    bare = results["bare"][0]
    for v in VARIANTS:
        pd.testing.assert_frame_equal(results[v][0].trades, bare.trades)
    assert results["trades"][1].trades == len(bare.trades)
    lines = [f"{'variant':>8} {'best s':>8} {'M ev/s':>7} {'ratio':>6}  callbacks"]
    for v in VARIANTS:
        s = results[v][1]
        calls = ("" if s is None else f"{s.trades:,} trades" if v == "trades" else
                 f"{s.bars:,} bars, {s.books:,} books" if v == "bars" else "none")
        lines.append(f"{v:>8} {best[v]:>8.3f} {bare.events / best[v] / 1e6:>7.2f} "
                     f"{best[v] / best['bare']:>6.3f}  {calls}")
    benchmark.extra_info["best_seconds"] = best
    table.lines = lines
