"""Our replay on a synthetic KRX large-cap tape, and the same stream as L2 through the peers.

Run with ``make bench``. ``CASCADE_BENCH_DAYS`` sets the tape length (default 2 large-cap
days, about 7 M L3 events); nautilus replays a prefix (``CASCADE_BENCH_NAUTILUS_EVENTS``,
default 200,000) because it is about 25x slower. The closing table prints events/s and the
ratio of each run to the slowest.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from bench.peers import PeerResult, run_hftbacktest, run_nautilus
from replay.convert import to_l2
from replay.engine import InjectedOrders, Replay
from replay.synth import write_synthetic_tape
from replay.tape import ASK, BID, Tape
from venues.codes import (
    ORDER_TYPES,
)

DAYS = int(os.environ.get("CASCADE_BENCH_DAYS", "2"))
NAUTILUS_EVENTS = int(os.environ.get("CASCADE_BENCH_NAUTILUS_EVENTS", "200000"))


@pytest.fixture(scope="session")
def l3_tape(tmp_path_factory) -> Tape:
    path = tmp_path_factory.mktemp("bench") / "krx-largecap.parquet"
    write_synthetic_tape(path, "krx-largecap", days=DAYS, seed=11)
    return Tape(path)


@pytest.fixture(scope="session")
def l3_events(l3_tape):
    return l3_tape.read()


@pytest.fixture(scope="session")
def l2_stream(l3_tape, l3_events):
    return to_l2(l3_events, l3_tape.instruments)


def _sweeps(events, n=40, size=20_000) -> InjectedOrders:
    """Market orders spread over the tape, alternating sides: real matching work."""
    ts = np.linspace(events.ts[0], events.ts[-1], n + 2)[1:-1].astype(np.int64)
    inst = int(events.instrument[0])
    sides = np.where(np.arange(n) % 2 == 0, ASK, BID)
    return InjectedOrders(ts, np.full(n, inst), sides, np.full(n, ORDER_TYPES["market"]),
                          np.zeros(n, np.int64), np.full(n, size))


def _ours(name, instruments, chunks_fn, injected=None) -> PeerResult:
    rp = Replay(instruments, "absolute")
    t0 = time.perf_counter()
    result = rp.run(chunks_fn(), injected)
    seconds = time.perf_counter() - t0
    last = result.top_of_book.iloc[-1] if len(result.top_of_book) else None
    return PeerResult(name=name, events=result.events, seconds=seconds,
                      events_per_s=result.events / seconds,
                      best_bid=float(last.bid_px) if last is not None else float("nan"),
                      best_ask=float(last.ask_px) if last is not None else float("nan"))


def _best_round(benchmark, run, rounds):
    """Run ``run`` ``rounds`` times under pytest-benchmark; the fastest round's result."""
    results: list[PeerResult] = []
    benchmark.pedantic(lambda: results.append(run()), rounds=rounds, iterations=1)
    best = max(results, key=lambda r: r.events_per_s)
    benchmark.extra_info["events_per_s"] = best.events_per_s
    return best


def test_l3_replay_through_the_matching_engine(benchmark, l3_tape, l3_events, record_peer):
    Replay(l3_tape.instruments, "absolute").run([l3_events.take(slice(0, 1000))])  # compile
    sweeps = _sweeps(l3_events)
    record_peer(_best_round(benchmark, lambda: _ours(
        "cascade L3 (in memory, 40 sweeps)", l3_tape.instruments, lambda: [l3_events],
        sweeps), rounds=3))


def test_parquet_to_results_end_to_end(benchmark, l3_tape, record_peer):
    record_peer(_best_round(benchmark, lambda: _ours(
        "cascade L3 (Parquet, streamed)", l3_tape.instruments, lambda: l3_tape.chunks()),
        rounds=2))


def test_l2_same_stream_ours(benchmark, l2_stream, record_peer):
    events, table = l2_stream
    Replay(table, "absolute").run([events.take(slice(0, 1000))])
    record_peer(_best_round(benchmark, lambda: _ours("cascade L2", table, lambda: [events]),
                            rounds=3))


@pytest.mark.parametrize("depth", ["hashmap", "roivec"])
def test_l2_same_stream_hftbacktest(benchmark, l2_stream, record_peer, depth):
    events, table = l2_stream
    inst = list(table)[0]
    record_peer(_best_round(benchmark, lambda: run_hftbacktest(events, inst, depth=depth,
                                                               drive="elapse"), rounds=3))


def test_l2_same_stream_nautilus(benchmark, l2_stream, record_peer):
    events, table = l2_stream
    inst = list(table)[0]
    prefix = events.take(slice(0, NAUTILUS_EVENTS))
    record_peer(_best_round(benchmark, lambda: run_nautilus(prefix, inst), rounds=1))
