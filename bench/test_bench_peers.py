"""Peer throughput on one synthetic L2 stream: NautilusTrader and hftbacktest.

Sizes: ``CASCADE_BENCH_EVENTS`` for both, else 1,000,000 events for hftbacktest and the
first 200,000 of the same stream for nautilus. Each round builds the peer's engine outside
the timed call (``benchmark.pedantic`` with a ``setup``), so the benchmark's times are the
runs alone; ``extra_info`` carries events, events/s and the final top of book.

    .venv/bin/python -m pytest bench/test_bench_peers.py --benchmark-only -q
"""

from __future__ import annotations

import pytest

from bench.peers import (
    DEPTHS,
    DRIVES,
    HftbacktestReplay,
    NautilusInput,
    NautilusReplay,
    PeerResult,
    bench_sizes,
    hftbacktest_data,
    nautilus_data,
)

pytest.importorskip("nautilus_trader")
pytest.importorskip("hftbacktest")

_NAUTILUS_INPUTS: dict[bool, NautilusInput] = {}
_NAUTILUS_MODES = {  # name: (one message per packet, strategy subscribed to the data)
    "packets": (True, True),
    "deltas": (False, True),
    "packets-venue-only": (True, False),
}


def _report(benchmark, record_peer, results: list[PeerResult]) -> PeerResult:
    best = max(results, key=lambda r: r.events_per_s)
    rates = sorted(r.events_per_s for r in results)
    benchmark.extra_info.update(
        peer=best.name, events=best.events, events_per_s=round(best.events_per_s),
        median_events_per_s=round(rates[len(rates) // 2]), callbacks=best.callbacks,
        prepare_seconds=round(best.prepare_seconds, 3), best_bid=best.best_bid,
        best_ask=best.best_ask, detail=best.detail,
    )
    record_peer(best)
    print(f"\n{best.name}: {best.events:,} events, {best.events_per_s / 1e6:.3f} M events/s "
          f"(best of {len(results)}), bid/ask {best.best_bid}/{best.best_ask}")
    return best


@pytest.mark.parametrize("mode", list(_NAUTILUS_MODES))
def test_nautilus_backtest_engine(benchmark, bench_stream, record_peer, mode: str) -> None:
    events, instrument = bench_stream
    _, n = bench_sizes()
    batch, subscribe = _NAUTILUS_MODES[mode]
    if batch not in _NAUTILUS_INPUTS:
        _NAUTILUS_INPUTS[batch] = nautilus_data(events.take(slice(0, n)), instrument,
                                                batch=batch)
    data = _NAUTILUS_INPUTS[batch]
    results: list[PeerResult] = []

    def run(replay: NautilusReplay) -> None:
        results.append(replay.run())

    benchmark.pedantic(run, setup=lambda: ((NautilusReplay(data, subscribe=subscribe),), {}),
                       rounds=3, iterations=1)
    best = _report(benchmark, record_peer, results)
    assert best.events == data.n_deltas + len(data.trades)


@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("depth", DEPTHS)
def test_hftbacktest(benchmark, bench_stream, record_peer, depth: str, drive: str) -> None:
    events, instrument = bench_stream
    n, _ = bench_sizes()
    data = hftbacktest_data(events.take(slice(0, n)), instrument)
    results: list[PeerResult] = []

    def run(replay: HftbacktestReplay) -> None:
        results.append(replay.run())

    benchmark.pedantic(
        run, setup=lambda: ((HftbacktestReplay(data, instrument, depth=depth, drive=drive),),
                            {}),
        rounds=5, iterations=1,
    )
    best = _report(benchmark, record_peer, results)
    assert best.events == len(data)
