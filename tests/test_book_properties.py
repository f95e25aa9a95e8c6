"""Generated event streams: the compiled book equals the reference book after every event,
and under re-centring (relative, propagator) it is never crossed or locked at a packet end."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay.engine import InjectedOrders, Replay
from replay.tape import Events, Instrument, InstrumentTable
from tests.reference_book import ASK, BID, ReferenceBook
from venues import loop
from venues.book import snapshot_levels
from venues.codes import (
    ORDER_TYPES,
)

DEPTH = 8
SIDE = st.sampled_from([BID, ASK])
PRICE = st.integers(95, 105)
SIZE = st.integers(1, 12)

step = st.one_of(
    st.tuples(st.just("A"), SIDE, PRICE, SIZE),
    st.tuples(st.just("C"), st.integers(0, 40), SIZE),
    st.tuples(st.just("D"), st.integers(0, 40)),
    st.tuples(st.just("M"), st.integers(0, 40), PRICE, st.integers(0, 12)),
    st.tuples(st.just("F"), st.integers(0, 40), SIZE),
    st.tuples(st.just("inject"), st.sampled_from(["market", "limit", "ioc", "fok"]), SIDE,
              PRICE, SIZE),
)
l2_step = st.one_of(
    st.tuples(st.just("set"), SIDE, PRICE, st.integers(0, 30)),
    st.tuples(st.just("cut"), SIDE, PRICE, SIZE),
    st.tuples(st.just("inject"), st.sampled_from(["market", "limit", "ioc", "fok"]), SIDE,
              PRICE, SIZE),
)


def _event(ts, action, side, price, size, oid):
    return Events.from_columns({
        "ts": [ts], "instrument": [0], "action": [ord(action)], "side": [side],
        "price": [price], "size": [size], "order_id": [oid], "flags": [128], "sequence": [ts]})


def _inject(ts, kind, side, price, size):
    one = np.array
    return InjectedOrders(one([ts]), one([0]), one([side]), one([ORDER_TYPES[kind]]),
                          one([price]), one([size]))


def _levels(rp):
    out = np.zeros(4 * DEPTH, np.int64)
    snapshot_levels(rp.book.S, 0, DEPTH, out, 0)
    bids = [(int(out[4 * k]), int(out[4 * k + 1])) for k in range(DEPTH) if out[4 * k + 1]]
    asks = [(int(out[4 * k + 2]), int(out[4 * k + 3])) for k in range(DEPTH) if out[4 * k + 3]]
    return bids, asks


def _fills(result):
    f = result.fills
    return [(int(s), int(p), int(q), int(m) >= 0) for s, p, q, m in
            zip(f["side"], f["price"], f["size"], f["maker"], strict=True)]


def _replay(book_type, mode="absolute"):
    inst = InstrumentTable([Instrument(0, "T", book_type=book_type, tick_units=1)])
    # tiny pool, id table and buffers: every growth and rehash path runs
    rp = Replay(inst, mode, order_capacity=8, buffer_rows=64, table_size=4)
    rp._ensure_ladder(0, np.array([90, 110]))
    return rp


def _step(rp, ref, ts, events=None, injected=None):
    result = rp.run([events] if events is not None else [], injected)
    return _fills(result)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=60))
def test_l3_book_matches_reference_after_every_event(steps):
    rp, ref = _replay("L3"), ReferenceBook()
    oids: list[int] = []
    for ts, s in enumerate(steps, start=1):
        n_before = len(ref.fills)
        if s[0] == "A":
            oid = len(oids) + 1
            oids.append(oid)
            ref.apply("A", s[1], s[2], s[3], oid)
            got = _step(rp, ref, ts, _event(ts, "A", s[1], s[2], s[3], oid))
        elif s[0] == "inject":
            _, kind, side, price, size = s
            ref.inject(ts, kind, side, price, size)
            got = _step(rp, ref, ts, injected=_inject(ts, kind, side, price, size))
        else:
            if not oids:
                continue
            oid = oids[s[1] % len(oids)]
            o = ref.orders.get(oid)
            side = o.side if o else BID
            if s[0] == "M":
                side, price, size = side, s[2], s[3]
            else:
                price = o.price if o else 100
                size = s[2] if len(s) > 2 else 0
            ref.apply(s[0], side, price, size, oid)
            got = _step(rp, ref, ts, _event(ts, s[0], side, price, size, oid))
        want = [(a, p, q, m >= 0) for a, p, q, m in ref.fills[n_before:]]
        assert got == want, f"fills differ after step {ts}: {s}"
        assert _levels(rp) == (ref.levels(BID, DEPTH), ref.levels(ASK, DEPTH)), (
            f"book differs after step {ts}: {s}")
    assert rp.counters["consumed_noop"] == ref.noops
    assert rp.counters["unknown_order"] == ref.unknown
    assert rp.counters["reapplied_dropped_qty"] == ref.dropped


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(l2_step, min_size=1, max_size=60))
def test_l2_book_with_consumption_ledger_matches_reference(steps):
    rp, ref = _replay("L2"), ReferenceBook()
    for ts, s in enumerate(steps, start=1):
        n_before = len(ref.fills)
        if s[0] == "inject":
            _, kind, side, price, size = s
            ref.inject(ts, kind, side, price, size)
            got = _step(rp, ref, ts, injected=_inject(ts, kind, side, price, size))
        else:
            kind, side, price, size = s
            action = "C" if kind == "cut" else ("D" if size == 0 else "M")
            ref.apply(action, side, price, size, 0)
            got = _step(rp, ref, ts, _event(ts, action, side, price, size, 0))
        want = [(a, p, q, m >= 0) for a, p, q, m in ref.fills[n_before:]]
        assert got == want, f"fills differ after step {ts}: {s}"
        assert _levels(rp) == (ref.levels(BID, DEPTH), ref.levels(ASK, DEPTH)), (
            f"book differs after step {ts}: {s}")


def test_id_table_survives_many_tombstones_and_growth():
    """Thousands of orders added and cancelled through a 4-entry id table: it is rebuilt in
    place and doubled many times, and every surviving order is still found."""
    rp = _replay("L3")
    n = 5000
    rows = []
    for i in range(1, n + 1):
        rows.append((2 * i, "A", BID if i % 2 else ASK, 95 if i % 2 else 105, i % 7 + 1, i))
        if i % 3:  # two orders in three are cancelled again
            rows.append((2 * i + 1, "D", BID if i % 2 else ASK, 0, 0, i))
    ts, act, side, px, sz, oid = zip(*rows, strict=True)
    ev = Events.from_columns({"ts": ts, "instrument": [0] * len(ts),
                              "action": [ord(a) for a in act], "side": side, "price": px,
                              "size": sz, "order_id": oid, "flags": [128] * len(ts),
                              "sequence": range(len(ts))})
    rp.run([ev])
    kept = [i for i in range(1, n + 1) if i % 3 == 0]
    assert rp.book.live_orders == len(kept)
    bids, asks = _levels(rp)
    assert bids == [(95, sum(i % 7 + 1 for i in kept if i % 2))]
    assert asks == [(105, sum(i % 7 + 1 for i in kept if not i % 2))]
    assert rp.counters["unknown_order"] == 0


# -- re-centring: shifted history never leaves a crossed or locked book ----------------------

GAP = st.integers(-4, 4)
shifted_step = st.one_of(step, st.tuples(st.just("G"), GAP))
shifted_l2_step = st.one_of(l2_step, st.tuples(st.just("G"), GAP))


def _assert_not_crossed(rp, where):
    bids, asks = _levels(rp)
    if bids and asks:
        assert bids[0][0] < asks[0][0], (
            f"book crossed or locked after {where}: bid {bids[0]} ask {asks[0]}")


def _set_gap(rp, gap):
    rp.F[loop.FS_HEADER + 0] = gap  # the relative gap of instrument 0, as if impact set it


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(shifted_step, min_size=1, max_size=60))
def test_relative_l3_shifted_history_crossing_the_book_executes(steps):
    """Relative mode with the gap changing between events: every historical add, modify
    and fill lands at its price plus the gap; one that crosses the opposite side executes
    against it (history's orders too) like the reference's, and no packet end shows a
    crossed or locked book."""
    rp, ref = _replay("L3", "relative"), ReferenceBook(cross_all=True)
    oids: list[int] = []
    tape_px: dict[int, int] = {}  # the price each order has on the tape (unshifted)
    gap = 0
    for ts, s in enumerate(steps, start=1):
        n_before = len(ref.fills)
        _set_gap(rp, gap)
        if s[0] == "G":
            gap = s[1]
            continue
        if s[0] == "A":
            oid = len(oids) + 1
            oids.append(oid)
            tape_px[oid] = s[2]
            ref.apply("A", s[1], s[2] + gap, s[3], oid)
            got = _step(rp, ref, ts, _event(ts, "A", s[1], s[2], s[3], oid))
        elif s[0] == "inject":
            _, kind, side, price, size = s
            ref.inject(ts, kind, side, price, size)
            got = _step(rp, ref, ts, injected=_inject(ts, kind, side, price, size))
        else:
            if not oids:
                continue
            oid = oids[s[1] % len(oids)]
            o = ref.orders.get(oid)
            side = o.side if o else BID
            if s[0] == "M":
                price, size = s[2], s[3]
                tape_px[oid] = price
            else:
                price = tape_px[oid]
                size = s[2] if len(s) > 2 else 0
            ref.apply(s[0], side, price + gap, size, oid)
            got = _step(rp, ref, ts, _event(ts, s[0], side, price, size, oid))
        want = [(a, p, q, m >= 0) for a, p, q, m in ref.fills[n_before:]]
        assert got == want, f"fills differ after step {ts}: {s} (gap {gap})"
        assert _levels(rp) == (ref.levels(BID, DEPTH), ref.levels(ASK, DEPTH)), (
            f"book differs after step {ts}: {s} (gap {gap})")
        _assert_not_crossed(rp, f"step {ts}: {s} (gap {gap})")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(shifted_l2_step, min_size=1, max_size=60))
def test_relative_l2_shifted_level_crossing_the_book_executes(steps):
    """The same on a market-by-price feed: the quantity a shifted level gains where it
    crosses the opposite side executes first, and is remembered as consumed."""
    rp, ref = _replay("L2", "relative"), ReferenceBook(cross_all=True)
    gap = 0
    for ts, s in enumerate(steps, start=1):
        n_before = len(ref.fills)
        _set_gap(rp, gap)
        if s[0] == "G":
            gap = s[1]
            continue
        if s[0] == "inject":
            _, kind, side, price, size = s
            ref.inject(ts, kind, side, price, size)
            got = _step(rp, ref, ts, injected=_inject(ts, kind, side, price, size))
        else:
            kind, side, price, size = s
            action = "C" if kind == "cut" else ("D" if size == 0 else "M")
            ref.apply(action, side, price + gap, size, 0)
            got = _step(rp, ref, ts, _event(ts, action, side, price, size, 0))
        want = [(a, p, q, m >= 0) for a, p, q, m in ref.fills[n_before:]]
        assert got == want, f"fills differ after step {ts}: {s} (gap {gap})"
        assert _levels(rp) == (ref.levels(BID, DEPTH), ref.levels(ASK, DEPTH)), (
            f"book differs after step {ts}: {s} (gap {gap})")
        _assert_not_crossed(rp, f"step {ts}: {s} (gap {gap})")


propagator_step = st.one_of(step, st.tuples(st.just("T"), PRICE))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(propagator_step, min_size=1, max_size=60), st.sampled_from(["L3", "L2"]))
def test_propagator_shifted_history_never_leaves_a_crossed_book(steps, book_type):
    """Propagator mode, its gap made by the injected orders' own price moves and decaying
    over the seconds between events: at no packet end is the book crossed or locked."""
    rp = _replay(book_type, "propagator")
    live: list[tuple[int, int, int]] = []  # (oid, side, tape price)
    for k, s in enumerate(steps, start=1):
        ts = k * 10**10  # 10 s apart: the impacts decay between events
        if s[0] == "inject":
            _, kind, side, price, size = s
            rp.run([], _inject(ts, kind, side, price, size))
        elif s[0] == "T":
            rp.run([_event(ts, "T", BID, s[1], 1, 0)])
        elif s[0] == "A":
            oid = k if book_type == "L3" else 0
            live.append((oid, s[1], s[2]))
            rp.run([_event(ts, "A" if oid else "M", s[1], s[2], s[3], oid)])
        elif live:
            oid, side, price = live[s[1] % len(live)]
            action = s[0] if oid else {"C": "C", "D": "D", "M": "M", "F": "F"}[s[0]]
            if s[0] == "M":
                price = s[2]
            size = s[-1] if s[0] != "D" else 0
            rp.run([_event(ts, action, side, price, size, oid)])
        _assert_not_crossed(rp, f"step {k}: {s}")
