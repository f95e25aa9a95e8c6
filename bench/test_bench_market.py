"""A market day: build the shipped 2024-08-05 cross-section into one anchored tape and replay
it at the KRX venue (``cascade market build``; docs/synthetic-tapes.md: a market day).

Run with ``make bench``. ``CASCADE_BENCH_MARKET_TOP`` limits the names (default 0: every name
of the file, about 2,565 after those it cannot anchor); the closing lines print the events,
the build and replay times and rates, and the process's peak RSS. There is no peer: no
other tool builds a market from daily bars; the replay's events/s compare with the
single-name replay's in test_bench_replay.py.
"""

from __future__ import annotations

import os
import resource
import time
from datetime import date

import pytest

from replay.engine import Replay
from replay.loaders.daily_bars import read_bars
from replay.market import plan_market, write_market_tape
from replay.tape import Tape

BARS = "tests/data/daily-2024-08-05-all-krx-pykrx.csv"
TOP = int(os.environ.get("CASCADE_BENCH_MARKET_TOP", "0")) or None


@pytest.fixture(scope="module")
def market_plan():
    return plan_market(read_bars(BARS), date(2024, 8, 5), top=TOP, source=BARS)


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def test_market_build(benchmark, market_plan, tmp_path):
    path = tmp_path / "market.parquet"
    t0 = time.perf_counter()
    benchmark.pedantic(lambda: write_market_tape(path, market_plan, seed=1), rounds=1,
                       iterations=1)
    seconds = time.perf_counter() - t0
    n = len(Tape(path))
    print(f"\nmarket build: {len(market_plan.names):,} names, {n:,} events in {seconds:.1f}s "
          f"({n / seconds / 1e6:.2f} M events/s), peak RSS {_peak_gb():.2f} GB")


def test_market_replay(benchmark, market_plan, tmp_path):
    path = write_market_tape(tmp_path / "market.parquet", market_plan, seed=1)
    tape = Tape(path)

    def replay():
        return Replay(tape.instruments, venue="krx", seed=tape.session_seed).run(
            tape.chunks())

    replay()  # the kernels compiled or loaded before the clock starts
    t0 = time.perf_counter()
    result = benchmark.pedantic(replay, rounds=1, iterations=1)
    seconds = time.perf_counter() - t0
    n = result.counters["events"]
    print(f"\nmarket replay at the KRX venue: {n:,} events of {len(tape.instruments):,} "
          f"names in {seconds:.1f}s ({n / seconds / 1e6:.2f} M events/s), peak RSS "
          f"{_peak_gb():.2f} GB")
