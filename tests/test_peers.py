"""The peer harness (bench/peers.py) feeds NautilusTrader and hftbacktest correctly.

On small L2 streams each peer must end with the same best bid/ask as a plain level-dict
replay written here (set level, reduce level, delete level, clear), and must report every
fed row as processed. No timings are asserted.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.peers import (  # noqa: E402
    DEPTHS,
    DRIVES,
    l2_stream_for_bench,
    resolve_l2_levels,
    run_hftbacktest,
    run_nautilus,
)
from replay.tape import (  # noqa: E402
    ADD,
    ASK,
    BID,
    CANCEL,
    CLEAR,
    DELETE,
    FILL,
    MODIFY,
    TRADE,
    Events,
    Instrument,
)

pytest.importorskip("nautilus_trader")
pytest.importorskip("hftbacktest")


def reference_top(events: Events, instrument: Instrument) -> tuple[float, float]:
    """Best bid/ask (natural units, NaN if a side is empty) after replaying the L2 rows."""
    books: dict[int, dict[int, int]] = {BID: {}, ASK: {}}
    for a, s, p, q in zip(events.action.tolist(), events.side.tolist(),
                          events.price.tolist(), events.size.tolist(), strict=True):
        if a == CLEAR:
            books[BID].clear()
            books[ASK].clear()
        elif a in (ADD, MODIFY):
            books[s][p] = q
        elif a == CANCEL:
            left = books[s].get(p, 0) - q
            if left > 0:
                books[s][p] = left
            else:
                books[s].pop(p, None)
        elif a == DELETE:
            books[s].pop(p, None)
    scale = 10.0**instrument.price_decimals
    bid = max(books[BID]) / scale if books[BID] else math.nan
    ask = min(books[ASK]) / scale if books[ASK] else math.nan
    return round(bid, instrument.price_decimals), round(ask, instrument.price_decimals)


def with_adds_and_cancels(events: Events) -> Events:
    """The same book path written with every L2 verb: a level set that creates a level
    becomes ``A``, one that shrinks a level becomes ``C`` by the difference; plus ``F`` rows
    (not book changes) after each trade."""
    levels: dict[tuple[int, int], int] = {}
    action = events.action.copy()
    size = events.size.copy()
    for i, (a, s, p, q) in enumerate(zip(events.action.tolist(), events.side.tolist(),
                                         events.price.tolist(), events.size.tolist(),
                                         strict=True)):
        if a == CLEAR:
            levels.clear()
            continue
        if a not in (MODIFY, DELETE):
            continue
        old = levels.get((s, p))
        if a == DELETE:
            levels.pop((s, p), None)
        elif old is None:
            action[i] = ADD
            levels[(s, p)] = q
        elif q < old and i % 2 == 0:
            action[i], size[i] = CANCEL, old - q
            levels[(s, p)] = q
        else:
            levels[(s, p)] = q
    out = events.take(slice(None))
    out.action, out.size = action, size
    trades = np.flatnonzero(action == TRADE)
    fills = out.take(trades)
    fills.action = np.full(len(fills), FILL, np.uint8)
    fills.side = np.where(fills.side == BID, ASK, BID).astype(np.uint8)
    merged = Events.concat([out, fills])
    order = np.lexsort((np.concatenate([np.arange(len(out)), trades]), merged.ts))
    return merged.take(order)


def _fed_rows(events: Events) -> int:
    return int(np.isin(events.action, [ADD, CANCEL, DELETE, MODIFY, CLEAR, TRADE]).sum())


@pytest.fixture(scope="module")
def stream() -> tuple[Events, Instrument]:
    # re-snapshots inside the stream exercise CLEAR
    return l2_stream_for_bench(2_000, seed=11, snapshot_every=700)


def test_reference_sees_a_sane_book(stream) -> None:
    events, instrument = stream
    bid, ask = reference_top(events, instrument)
    assert bid < ask
    assert np.count_nonzero(events.action == CLEAR) == 3


@pytest.mark.parametrize("cut", [1, 41, 777, 2_000])
@pytest.mark.parametrize("batch", [True, False], ids=["packets", "deltas"])
def test_nautilus_matches_reference(stream, cut: int, batch: bool) -> None:
    events, instrument = stream
    part = events.take(slice(0, cut))
    result = run_nautilus(part, instrument, batch=batch)
    assert (result.best_bid, result.best_ask) == pytest.approx(
        reference_top(part, instrument), nan_ok=True)
    assert result.events == _fed_rows(part)


@pytest.mark.parametrize("drive", DRIVES)
@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("cut", [1, 41, 777, 2_000])
def test_hftbacktest_matches_reference(stream, cut: int, depth: str, drive: str) -> None:
    events, instrument = stream
    part = events.take(slice(0, cut))
    result = run_hftbacktest(part, instrument, depth=depth, drive=drive)
    assert (result.best_bid, result.best_ask) == pytest.approx(
        reference_top(part, instrument), nan_ok=True)
    assert result.events == _fed_rows(part)


def test_all_l2_verbs_reach_both_peers(stream) -> None:
    events, instrument = stream
    mixed = with_adds_and_cancels(events)
    assert {ADD, CANCEL, DELETE, MODIFY, CLEAR, TRADE, FILL} <= set(mixed.action.tolist())
    expected = reference_top(mixed, instrument)
    assert expected == reference_top(events, instrument)
    for result in (run_nautilus(mixed, instrument),
                   run_hftbacktest(mixed, instrument, depth="roivec", drive="feed")):
        assert (result.best_bid, result.best_ask) == pytest.approx(expected, nan_ok=True)
        assert result.events == _fed_rows(mixed)


def test_nautilus_venue_only_processes_every_row(stream) -> None:
    events, instrument = stream
    result = run_nautilus(events, instrument, subscribe=False)
    assert result.events == _fed_rows(events)
    assert result.callbacks == 0
    assert math.isnan(result.best_bid) and math.isnan(result.best_ask)


def test_only_the_instruments_rows_are_fed(stream) -> None:
    events, instrument = stream
    other, _ = l2_stream_for_bench(1_500, seed=12)
    other.instrument = np.full(len(other), 2, np.uint32)
    other.price = other.price + 5_000
    merged = Events.concat([events, other])
    merged = merged.take(np.argsort(merged.ts, kind="stable"))
    expected = reference_top(events, instrument)
    for result in (run_nautilus(merged, instrument),
                   run_hftbacktest(merged, instrument, depth="hashmap", drive="elapse")):
        assert (result.best_bid, result.best_ask) == pytest.approx(expected, nan_ok=True)
        assert result.events == _fed_rows(events)


def test_level_resolution() -> None:
    events = Events.from_columns({
        "ts": np.arange(7),
        "instrument": np.ones(7),
        "action": np.array([ADD, CANCEL, MODIFY, CANCEL, CLEAR, ADD, DELETE]),
        "side": np.array([BID, BID, BID, BID, ord("N"), ASK, ASK]),
        "price": np.array([100, 100, 100, 100, 0, 101, 101]),
        "size": np.array([10, 3, 20, 25, 0, 5, 0]),
    })
    sizes, existed = resolve_l2_levels(events)
    assert sizes.tolist() == [10, 7, 20, 0, 0, 5, 0]
    assert existed.tolist() == [False, True, True, True, False, False, True]


def test_l3_rows_are_refused(stream) -> None:
    events, instrument = stream
    l3 = events.take(slice(0, 50))
    l3.order_id = np.arange(50, dtype=np.uint64)
    with pytest.raises(ValueError, match="L3"):
        run_hftbacktest(l3, instrument)
