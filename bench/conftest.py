"""Fixtures for the peer benchmarks, and a closing table of events/s and ratios.

Every benchmark records its :class:`~bench.peers.PeerResult` with ``record_peer``; at the
end of the session the table of all recorded results, with the ratio of each to the
slowest, is printed in the terminal summary (visible without ``-s``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest bench` from anywhere, not only `python -m pytest`
    sys.path.insert(0, str(ROOT))

from bench.peers import PeerResult, bench_sizes, l2_stream_for_bench  # noqa: E402
from replay.tape import Events, Instrument  # noqa: E402

_RESULTS: list[tuple[str, PeerResult]] = []


@pytest.fixture(scope="session")
def bench_stream() -> tuple[Events, Instrument]:
    """The benchmark stream: long enough for the larger of the two peer sizes; the slower
    peer replays a prefix of the same stream."""
    n_hft, n_nautilus = bench_sizes()
    return l2_stream_for_bench(max(n_hft, n_nautilus), seed=7)


@pytest.fixture
def record_peer(request: pytest.FixtureRequest):
    """Record a peer's best result under the running benchmark's name."""

    def record(result: PeerResult) -> None:
        _RESULTS.append((request.node.name, result))

    return record


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _RESULTS:
        return
    slowest = min(r.events_per_s for _, r in _RESULTS)
    tr = terminalreporter
    tr.section("peer replay throughput (best round; run time only)")
    tr.write_line(f"{'benchmark':50} {'events':>10} {'run s':>8} {'M ev/s':>8} "
                  f"{'x slowest':>9} {'prep s':>7}  best bid/ask")
    for name, r in _RESULTS:
        tr.write_line(f"{name:50} {r.events:>10,} {r.seconds:>8.3f} "
                      f"{r.events_per_s / 1e6:>8.3f} {r.events_per_s / slowest:>9.1f} "
                      f"{r.prepare_seconds:>7.2f}  {r.best_bid}/{r.best_ask}")
