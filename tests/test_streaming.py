"""A tape replays in chunks exactly as in one piece: what lets a tape larger than memory
replay with results that do not depend on the chunk size."""

import numpy as np
import pandas as pd
import pytest

from replay.engine import InjectedOrders, Replay
from replay.synth import write_synthetic_tape
from replay.tape import ASK, BID, Tape
from venues.codes import (
    ORDER_TYPES,
)


@pytest.fixture(scope="module")
def tape(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "small.parquet"
    write_synthetic_tape(path, "krx-smallcap", days=1, seed=21)
    return Tape(path)


def _orders(events):
    ts = np.linspace(events.ts[0], events.ts[-1], 12)[1:-1].astype(np.int64)
    n = len(ts)
    kinds = np.array([ORDER_TYPES[k] for k in ["market", "limit", "ioc", "fok", "market"] * 2])
    mid = int(np.median(events.price[events.price > 0]))
    return InjectedOrders(ts, np.full(n, int(events.instrument[0])),
                          np.where(np.arange(n) % 2, BID, ASK), kinds, np.full(n, mid),
                          np.full(n, 400))


@pytest.mark.parametrize("mode", ["absolute", "relative", "propagator"])
def test_chunked_replay_equals_whole_replay(tape, mode):
    whole_events = tape.read()
    orders = _orders(whole_events)
    whole = Replay(tape.instruments, mode).run([whole_events], orders)
    chunked = Replay(tape.instruments, mode).run(tape.chunks(7_919), orders)
    assert chunked.events == whole.events == len(tape)
    for name in ("fills", "trades", "top_of_book", "injected"):
        pd.testing.assert_frame_equal(getattr(chunked, name), getattr(whole, name))
    assert chunked.counters == whole.counters
    assert whole.injected.filled.sum() > 0


def test_reports_streamed_to_disk_equal_the_in_memory_ones(tape, tmp_path):
    from replay.results import RunWriter, write_run

    orders = _orders(tape.read())
    in_memory = Replay(tape.instruments, "relative").run(tape.chunks(50_000), orders)
    write_run(in_memory, tmp_path / "mem", seed=1)
    writer = RunWriter(tmp_path / "stream", tape.instruments)
    rp = Replay(tape.instruments, "relative", buffer_rows=4096)  # many flushes
    streamed = rp.run(tape.chunks(50_000), orders, sink=writer)
    writer.close(streamed, seed=1)
    assert streamed.top_of_book.empty and streamed.fills.empty  # nothing held in memory
    for name in ("fills", "trades", "top_of_book", "injected"):
        a = pd.read_parquet(tmp_path / "mem" / f"{name}.parquet")
        b = pd.read_parquet(tmp_path / "stream" / f"{name}.parquet")
        pd.testing.assert_frame_equal(a, b)
        assert len(a) > 0
    assert not list((tmp_path / "stream").glob("*.partial"))
