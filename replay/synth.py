"""Synthetic KRX-like L3 tapes: seeded, reactive order flow over the continuous session.

A tape made here looks like a KRX market-by-order feed of one stock over the continuous
session, 09:00-15:20 Asia/Seoul, on consecutive XKRX trading days (reference/krx.md:
sessions). Prices sit on the day's tick grid (reference/krx.md: tick size) and inside the
day's daily limits from the previous close (reference/krx.md: daily price limits); the
next day's previous close is the day's last trade.

The order flow is a Santa Fe / queue-reactive model around a latent value:

- decisions arrive as a Poisson process whose rate rises at the open and the close;
- a *limit order* rests ``d`` ticks from the opposite best (``d >= 1``, so it never crosses),
  with ``d`` drawn from :attr:`Profile.placement_weights`, which therefore shapes the depth
  profile; the side leans towards the latent value;
- a *cancellation* (or a *modification*, which re-prices) picks a live order uniformly, at a
  rate that grows with the number of live orders, so the book settles near
  :attr:`Profile.live_orders` resting orders;
- a *market order* walks the opposite side; its direction leans towards the latent value,
  which is what makes the price follow the value;
- the latent value is a geometric random walk with :attr:`Profile.daily_volatility`, pulled
  towards each trade's price in proportion to its size (:attr:`Profile.follow_volume`), so
  an order that moves the price leaves part of its impact behind.

Tape conventions. Each day opens with one packet of adds at exactly 09:00:00 (the book the
opening auction would leave behind) and closes with one packet of deletes at exactly
15:20:00 (day orders expire; the closing auction is not modelled). A market order is one
packet sharing one ``ts``: a ``T`` print (side = aggressor, price = last price walked,
size = total), then per resting order hit an ``F`` (its order_id, side, fill price and size)
followed by a ``C`` of the same size on that order; only the packet's last row carries
``F_LAST``. Every other event is a packet of one row with ``F_LAST``. Order ids and
sequence numbers increase over the whole tape.

Reactive hooks. The decision logic is a set of compiled functions the generator calls and
that an engine owning a different book can call too (the "generative" replay mode):
:func:`arrival_gap_ns`, :func:`evolve_value`, :func:`choose_action`, :func:`limit_order`,
:func:`place_price`, :func:`market_order`, :func:`follow_trade`, :func:`cancel_size`,
:func:`pick_live`. They take the book's top as prices (``best_bid``/``best_ask`` in won,
0 when that side is empty), the last trade price, the params array of
:meth:`Profile.to_params`, the day's price ladder (:func:`venues.krx.ticks.price_grid`
between the daily limits), the latent value and a ``numpy.random.Generator``, and return
the next event's fields. An engine keeps its own value with :func:`evolve_value` and moves
it after each of its trades with :func:`follow_trade`; which live order a cancel or modify
hits is the book owner's pick (:func:`pick_live` over its list of live orders).

Determinism: the same profile, days, seed and start give byte-identical events, whatever
``chunk_events`` is; every draw comes from one ``numpy.random.Generator`` seeded from
``seed``. Trading days come from the XKRX calendar (venues/krx/calendar.py), the session
clock from venues/krx/session.py. The late opens of the first trading day of the year and of
the college entrance exam day are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
from numba import njit

from replay.tape import (
    ADD,
    ASK,
    BID,
    CANCEL,
    DELETE,
    F_LAST,
    FILL,
    MODIFY,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
    TapeWriter,
)
from venues.krx.calendar import trading_days
from venues.krx.limits import price_limits
from venues.krx.session import CLOSE_AUCTION, OPEN, continuous_bounds_ns
from venues.krx.ticks import price_grid, tick_size

INSTRUMENT_ID = 1



@dataclass(frozen=True)
class Profile:
    """Parameters of one synthetic stock's order flow; rates are per decision, not per
    tape row (a market order makes 1 + 2 rows per resting order it hits).

    ``placement_weights[d - 1]`` is the relative weight of resting a limit order ``d`` ticks
    from the opposite best; with uniform cancellations the resting depth takes roughly this
    shape. Sizes are log-normal: ``median * exp(sigma * N(0, 1))``, rounded, within
    ``[1, size_max]``. The cancel and modify shares hold when the book has ``live_orders``
    orders; they scale with the live count, which keeps the book near that size.
    """

    name: str
    symbol: str
    start_price: int  # won: the first day's previous close
    event_rate: float  # decisions per second, averaged over the session
    open_boost: float  # extra rate at 09:00, as a multiple of the base rate
    close_boost: float  # extra rate at 15:20, as a multiple of the base rate
    boost_decay_s: float  # e-folding time of both boosts, seconds
    market_share: float  # share of decisions that are market orders
    cancel_share: float  # share that cancel a live order (at the target book size)
    modify_share: float  # share that re-price a live order (at the target book size)
    partial_cancel_share: float  # share of cancellations that leave part of the order
    live_orders: int  # target number of resting orders, both sides together
    placement_weights: tuple[float, ...]  # by distance d = 1, 2, ... ticks from opposite best
    size_median: float  # limit order size, shares
    size_sigma: float
    market_size_median: float  # market order size, shares
    market_size_sigma: float
    size_max: int  # cap on any order's size, shares
    daily_volatility: float  # of the latent value over one session (0.02 = 2%); the flow
    # adds noise of its own, so the traded price's volatility comes out somewhat higher
    overnight_volatility: float  # of the latent value from one close to the next open
    value_pull: float  # lean of order sides per tick of gap between value and mid (tanh gain)
    limit_lean: float  # cap on the lean of limit orders' sides (1 = may become one-sided)
    follow_volume: float  # traded shares that would pull the value all the way to the price

    def __post_init__(self) -> None:
        shares = {"market_share": self.market_share, "cancel_share": self.cancel_share,
                  "modify_share": self.modify_share,
                  "partial_cancel_share": self.partial_cancel_share,
                  "limit_lean": self.limit_lean}
        for key, v in shares.items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"profile {self.name!r}: {key}={v} must lie in [0, 1]")
        if self.market_share + self.cancel_share + self.modify_share >= 1.0:
            raise ValueError(f"profile {self.name!r}: market_share + cancel_share + "
                             "modify_share must leave room for limit orders (< 1)")
        positive = {"start_price": self.start_price, "event_rate": self.event_rate,
                    "live_orders": self.live_orders, "size_median": self.size_median,
                    "market_size_median": self.market_size_median,
                    "size_max": self.size_max, "boost_decay_s": self.boost_decay_s,
                    "follow_volume": self.follow_volume}
        for key, v in positive.items():
            if not v > 0:
                raise ValueError(f"profile {self.name!r}: {key}={v} must be positive")
        if not self.placement_weights or min(self.placement_weights) < 0 \
                or sum(self.placement_weights) <= 0:
            raise ValueError(f"profile {self.name!r}: placement_weights must be non-negative "
                             "with a positive sum")

    def to_params(self) -> np.ndarray:
        """The float64 params array the compiled hooks read (layout: the ``P_*`` indices,
        then the cumulative placement distribution from ``P_PLACEMENT``)."""
        session_s = _session_seconds()
        tau = self.boost_decay_s
        # Mean of the rate shape over the session, so that event_rate stays the mean.
        shape_mean = 1.0 + (self.open_boost + self.close_boost) * tau / session_s \
            * (1.0 - math.exp(-session_s / tau))
        head = np.zeros(P_PLACEMENT, np.float64)
        head[P_BASE_RATE_PER_NS] = self.event_rate / shape_mean / 1e9
        head[P_OPEN_BOOST] = self.open_boost
        head[P_CLOSE_BOOST] = self.close_boost
        head[P_DECAY_NS] = tau * 1e9
        head[P_SESSION_NS] = session_s * 1e9
        head[P_MARKET] = self.market_share
        head[P_CANCEL] = self.cancel_share
        head[P_MODIFY] = self.modify_share
        head[P_PARTIAL] = self.partial_cancel_share
        head[P_LIVE_TARGET] = self.live_orders
        head[P_LOG_SIZE] = math.log(self.size_median)
        head[P_SIZE_SIGMA] = self.size_sigma
        head[P_LOG_MKT_SIZE] = math.log(self.market_size_median)
        head[P_MKT_SIZE_SIGMA] = self.market_size_sigma
        head[P_SIZE_MAX] = self.size_max
        head[P_SIGMA_PER_SQRT_NS] = self.daily_volatility / math.sqrt(session_s * 1e9)
        head[P_PULL] = self.value_pull
        head[P_LIMIT_LEAN] = self.limit_lean
        head[P_FOLLOW_VOLUME] = self.follow_volume
        w = np.asarray(self.placement_weights, np.float64)
        cdf = np.cumsum(w) / w.sum()
        cdf[-1] = 1.0
        return np.concatenate([head, cdf])


# Layout of the params array (Profile.to_params).
(P_BASE_RATE_PER_NS, P_OPEN_BOOST, P_CLOSE_BOOST, P_DECAY_NS, P_SESSION_NS, P_MARKET,
 P_CANCEL, P_MODIFY, P_PARTIAL, P_LIVE_TARGET, P_LOG_SIZE, P_SIZE_SIGMA, P_LOG_MKT_SIZE,
 P_MKT_SIZE_SIGMA, P_SIZE_MAX, P_SIGMA_PER_SQRT_NS, P_PULL, P_LIMIT_LEAN, P_FOLLOW_VOLUME,
 P_PLACEMENT) = range(20)


def _weights(n: int, rise: float, scale: float) -> tuple[float, ...]:
    """``d**rise * exp(-d / scale)`` for d = 1..n: rising to a peak at ``d = rise * scale``
    ticks from the opposite best, then decaying, which is how resting depth usually looks."""
    return tuple(round(d ** rise * math.exp(-d / scale), 6) for d in range(1, n + 1))


#: Samsung-like: ~70,000 won, tick 100, a deep book (thousands of shares per level over 10+
#: levels), a spread of one tick nearly all day, several million tape rows a day.
LARGECAP = Profile(
    name="krx-largecap", symbol="SYNTH-LARGE", start_price=70_000,
    event_rate=140.0, open_boost=2.0, close_boost=1.0, boost_decay_s=1_800.0,
    market_share=0.035, cancel_share=0.43, modify_share=0.04, partial_cancel_share=0.1,
    live_orders=3_000, placement_weights=_weights(30, rise=0.2, scale=6.0),
    size_median=80.0, size_sigma=1.0, market_size_median=60.0, market_size_sigma=1.1,
    size_max=50_000, daily_volatility=0.012, overnight_volatility=0.01,
    value_pull=0.35, limit_lean=0.5, follow_volume=2_000_000.0,
)

#: A thin small-cap: ~6,000 won, a spread of 1-3 ticks, a few hundred thousand tape rows a
#: day, about twice the large-cap's volatility.
SMALLCAP = Profile(
    name="krx-smallcap", symbol="SYNTH-SMALL", start_price=6_000,
    event_rate=14.0, open_boost=2.5, close_boost=1.0, boost_decay_s=1_800.0,
    market_share=0.05, cancel_share=0.40, modify_share=0.04, partial_cancel_share=0.1,
    live_orders=160, placement_weights=_weights(20, rise=0.3, scale=7.0),
    size_median=60.0, size_sigma=1.1, market_size_median=80.0, market_size_sigma=1.2,
    size_max=20_000, daily_volatility=0.025, overnight_volatility=0.02,
    value_pull=0.25, limit_lean=0.5, follow_volume=500_000.0,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (LARGECAP, SMALLCAP)}


def _session_seconds() -> float:
    d = date(2000, 1, 1)
    return (datetime.combine(d, CLOSE_AUCTION) - datetime.combine(d, OPEN)).seconds


# ---------------------------------------------------------------------------------------
# Reactive hooks: the order-flow decisions, compiled, book-agnostic.
# ---------------------------------------------------------------------------------------

@njit(cache=True)
def _bisect(ladder, price):
    # First index whose price is >= ``price``: np.searchsorted's left side, on a scalar.
    lo, hi = 0, ladder.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if ladder[mid] < price:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def ladder_index(ladder: np.ndarray, price: int) -> int:
    """Index of an on-grid ``price`` in the day's ladder."""
    return _bisect(ladder, price)


@njit(cache=True)
def _ladder_position(ladder, price):
    # Fractional ladder index of any price, so gaps are measured in ticks across bands.
    n = ladder.shape[0]
    i = _bisect(ladder, price)
    if i <= 0:
        return 0.0
    if i >= n:
        return float(n - 1)
    lo = ladder[i - 1]
    return (i - 1) + (price - lo) / (ladder[i] - lo)


@njit(cache=True)
def _gap_ticks(best_bid, best_ask, last_price, ladder, value):
    # Latent value minus the mid, in ticks; the mid falls back to the side that exists.
    if best_bid > 0 and best_ask > 0:
        mid = 0.5 * (ladder_index(ladder, best_bid) + ladder_index(ladder, best_ask))
    elif best_bid > 0:
        mid = float(ladder_index(ladder, best_bid))
    elif best_ask > 0:
        mid = float(ladder_index(ladder, best_ask))
    else:
        mid = float(ladder_index(ladder, last_price))
    return _ladder_position(ladder, value) - mid


@njit(cache=True)
def arrival_gap_ns(t_ns: int, params: np.ndarray, rng: np.random.Generator) -> int:
    """Nanoseconds from a decision at ``t_ns`` after the open to the next one (Poisson,
    with the rate boosted near the open and the close); at least 1."""
    tau = params[P_DECAY_NS]
    shape = (1.0 + params[P_OPEN_BOOST] * math.exp(-t_ns / tau)
             + params[P_CLOSE_BOOST] * math.exp(-(params[P_SESSION_NS] - t_ns) / tau))
    return int(rng.standard_exponential() / (params[P_BASE_RATE_PER_NS] * shape)) + 1


@njit(cache=True)
def evolve_value(value: float, gap_ns: int, params: np.ndarray,
                 rng: np.random.Generator) -> float:
    """The latent value ``gap_ns`` later: a driftless geometric random walk."""
    return value * math.exp(params[P_SIGMA_PER_SQRT_NS] * math.sqrt(gap_ns)
                            * rng.standard_normal())


@njit(cache=True)
def choose_action(n_live: int, params: np.ndarray, rng: np.random.Generator) -> int:
    """ADD (limit order), CANCEL, MODIFY or TRADE (market order). Cancels and modifies
    scale with the live order count: the restoring force that keeps the book's size."""
    load = n_live / params[P_LIVE_TARGET]
    w_mkt = params[P_MARKET]
    w_cxl = params[P_CANCEL] * load
    w_mod = params[P_MODIFY] * load
    w_add = 1.0 - params[P_MARKET] - params[P_CANCEL] - params[P_MODIFY]
    u = rng.random() * (w_add + w_mkt + w_cxl + w_mod)
    if u < w_add:
        return ADD
    if u < w_add + w_mkt:
        return TRADE
    if u < w_add + w_mkt + w_cxl:
        return CANCEL
    return MODIFY


@njit(cache=True)
def _size(log_median, sigma, size_max, rng):
    s = int(math.exp(log_median + sigma * rng.standard_normal()) + 0.5)
    return min(max(s, 1), size_max)


@njit(cache=True)
def place_price(side: int, best_bid: int, best_ask: int, last_price: int,
                params: np.ndarray, ladder: np.ndarray, rng: np.random.Generator) -> int:
    """Resting price for a new limit order on ``side``: ``d`` ticks from the opposite best,
    ``d`` from the placement distribution, clamped to the day's limits. Returns 0 when no
    price is both inside the limits and non-crossing (a side locked at a limit)."""
    n = ladder.shape[0]
    ib = ladder_index(ladder, best_bid) if best_bid > 0 else -1
    ia = ladder_index(ladder, best_ask) if best_ask > 0 else -1
    if ia >= 0:
        ask_ref = ia
    elif ib >= 0:
        ask_ref = ib + 1
    else:
        ask_ref = ladder_index(ladder, last_price) + 1
    bid_ref = ib if ib >= 0 else ask_ref - 1
    u = rng.random()
    d = 1
    k = P_PLACEMENT
    while k < params.shape[0] - 1 and params[k] <= u:
        k += 1
        d += 1
    if side == BID:
        j = min(max(ask_ref - d, 0), n - 1)
        if ia >= 0 and j >= ia:
            return 0
    else:
        j = min(max(bid_ref + d, 0), n - 1)
        if ib >= 0 and j <= ib:
            return 0
    return ladder[j]


@njit(cache=True)
def limit_order(best_bid: int, best_ask: int, last_price: int, params: np.ndarray,
                ladder: np.ndarray, value: float,
                rng: np.random.Generator) -> tuple[int, int, int]:
    """``(side, price, size)`` of a new limit order; size 0 means none can rest. The side
    leans towards the value: P(bid) = 0.5 + 0.5 limit_lean tanh(value_pull x gap), gap =
    value - mid in ticks."""
    gap = _gap_ticks(best_bid, best_ask, last_price, ladder, value)
    # Capped lean: however far the value is, both sides keep receiving orders; a book whose
    # other side dried up could otherwise never move (a bid cannot step past an empty ask).
    lean = params[P_LIMIT_LEAN] * math.tanh(params[P_PULL] * gap)
    side = BID if rng.random() < 0.5 + 0.5 * lean else ASK
    price = place_price(side, best_bid, best_ask, last_price, params, ladder, rng)
    size = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]), rng)
    if price == 0:
        return side, 0, 0
    return side, price, size


@njit(cache=True)
def market_order(best_bid: int, best_ask: int, last_price: int, params: np.ndarray,
                 ladder: np.ndarray, value: float,
                 rng: np.random.Generator) -> tuple[int, int]:
    """``(aggressor side, size)`` of a market order: P(buy) = 0.5 + 0.5 tanh(value_pull x
    gap), gap = value - mid in ticks. The caller walks its own book and drops the rest."""
    gap = _gap_ticks(best_bid, best_ask, last_price, ladder, value)
    side = BID if rng.random() < 0.5 + 0.5 * math.tanh(params[P_PULL] * gap) else ASK
    size = _size(params[P_LOG_MKT_SIZE], params[P_MKT_SIZE_SIGMA], int(params[P_SIZE_MAX]),
                 rng)
    return side, size


@njit(cache=True)
def follow_trade(value: float, price: int, size: int, params: np.ndarray) -> float:
    """The latent value after a trade of ``size`` shares at ``price``: it closes
    ``size / follow_volume`` of the gap (all of it for a trade that large), which is the
    permanent part of a trade's impact."""
    return value + min(1.0, size / params[P_FOLLOW_VOLUME]) * (price - value)


@njit(cache=True)
def cancel_size(resting: int, params: np.ndarray, rng: np.random.Generator) -> int:
    """Shares to cancel from an order resting with ``resting`` shares: all of it, or with
    ``partial_cancel_share`` probability a uniform part of it."""
    if resting > 1 and rng.random() < params[P_PARTIAL]:
        return 1 + int(rng.random() * (resting - 1))
    return resting


@njit(cache=True)
def pick_live(n_live: int, rng: np.random.Generator) -> int:
    """Uniform index into the caller's list of ``n_live`` live orders."""
    return int(rng.random() * n_live)


# ---------------------------------------------------------------------------------------
# The generator's own book: an order pool with per-level FIFO lists on the day's ladder.
# ---------------------------------------------------------------------------------------

# Slots of the integer state array.
(_S_T, _S_NEXT_ID, _S_SEQ, _S_LAST, _S_TRADED, _S_BID, _S_ASK, _S_LIVE, _S_FREE, _S_NBID,
 _S_NASK, _NSTATE) = range(12)

# Kernel exit codes.
_DONE, _ROWS_FULL, _POOL_FULL = 0, 1, 2


@njit(cache=True)
def _emit(outs, pos, st, ts, action, side, price, size, oid, flags):
    outs[0][pos] = ts
    outs[1][pos] = action
    outs[2][pos] = side
    outs[3][pos] = price
    outs[4][pos] = size
    outs[5][pos] = oid
    outs[6][pos] = flags
    outs[7][pos] = st[_S_SEQ]
    st[_S_SEQ] += 1
    return pos + 1


@njit(cache=True)
def _link(book, slot, s, lvl):
    o_lvl, o_prev, o_next, head, tail = book[2], book[4], book[5], book[9], book[10]
    o_lvl[slot] = lvl
    o_next[slot] = -1
    o_prev[slot] = tail[s, lvl]
    if tail[s, lvl] >= 0:
        o_next[tail[s, lvl]] = slot
    else:
        head[s, lvl] = slot
    tail[s, lvl] = slot


@njit(cache=True)
def _unlink(book, slot):
    o_side, o_lvl, o_prev, o_next, head, tail = (book[1], book[2], book[4], book[5], book[9],
                                                 book[10])
    s, lvl = o_side[slot], o_lvl[slot]
    p, q = o_prev[slot], o_next[slot]
    if p >= 0:
        o_next[p] = q
    else:
        head[s, lvl] = q
    if q >= 0:
        o_prev[q] = p
    else:
        tail[s, lvl] = p


@njit(cache=True)
def _improve_best(st, s, lvl):
    if s == 0:
        if st[_S_BID] < 0 or lvl > st[_S_BID]:
            st[_S_BID] = lvl
    elif st[_S_ASK] < 0 or lvl < st[_S_ASK]:
        st[_S_ASK] = lvl


@njit(cache=True)
def _repair_best(book, st, s):
    # After a level emptied: move the side's best to its next non-empty level.
    head = book[9]
    n = head.shape[1]
    if s == 0:
        if st[_S_NBID] == 0:
            st[_S_BID] = -1
            return
        i = st[_S_BID]
        while head[0, i] < 0:
            i -= 1
        st[_S_BID] = i
    else:
        if st[_S_NASK] == 0:
            st[_S_ASK] = -1
            return
        i = st[_S_ASK]
        while i < n and head[1, i] < 0:
            i += 1
        st[_S_ASK] = i


@njit(cache=True)
def _add_order(book, st, s, lvl, size):
    o_id, o_side, o_size, o_pos, live, free = book[0], book[1], book[3], book[6], book[7], book[8]
    st[_S_FREE] -= 1
    slot = free[st[_S_FREE]]
    o_id[slot] = st[_S_NEXT_ID]
    st[_S_NEXT_ID] += 1
    o_side[slot] = s
    o_size[slot] = size
    o_pos[slot] = st[_S_LIVE]
    live[st[_S_LIVE]] = slot
    st[_S_LIVE] += 1
    st[_S_NBID + s] += 1
    _link(book, slot, s, lvl)
    _improve_best(st, s, lvl)
    return slot


@njit(cache=True)
def _remove_order(book, st, slot):
    o_side, o_lvl, o_pos, live, free, head = (book[1], book[2], book[6], book[7], book[8],
                                              book[9])
    s, lvl = o_side[slot], o_lvl[slot]
    _unlink(book, slot)
    # Swap-remove from the live list, which keeps uniform picks O(1).
    st[_S_LIVE] -= 1
    moved = live[st[_S_LIVE]]
    live[o_pos[slot]] = moved
    o_pos[moved] = o_pos[slot]
    free[st[_S_FREE]] = slot
    st[_S_FREE] += 1
    st[_S_NBID + s] -= 1
    best = st[_S_BID] if s == 0 else st[_S_ASK]
    if lvl == best and head[s, lvl] < 0:
        _repair_best(book, st, s)


@njit(cache=True)
def _side_code(s):
    return BID if s == 0 else ASK


@njit(cache=True)
def _open_book(params, ladder, rng, book, st, outs, pos, ts, center):
    """The 09:00 packet: ``live_orders`` adds, alternating sides, each placed against the
    book built so far (so the packet never crosses), around ladder index ``center``."""
    n = int(params[P_LIVE_TARGET])
    first = pos
    for i in range(n):
        s = i % 2
        bb = ladder[st[_S_BID]] if st[_S_BID] >= 0 else 0
        ba = ladder[st[_S_ASK]] if st[_S_ASK] >= 0 else 0
        price = place_price(_side_code(s), bb, ba, ladder[center], params, ladder, rng)
        size = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]), rng)
        if price == 0:
            continue
        slot = _add_order(book, st, s, ladder_index(ladder, price), size)
        pos = _emit(outs, pos, st, ts, ADD, _side_code(s), price, size, book[0][slot], 0)
    if pos > first:
        outs[6][pos - 1] = F_LAST
    return pos


@njit(cache=True)
def _close_book(ladder, book, st, outs, pos, ts):
    """The 15:20 packet: a delete for every live order, in live-list order."""
    o_id, o_side, o_lvl, o_size, live = book[0], book[1], book[2], book[3], book[7]
    first = pos
    while st[_S_LIVE] > 0:
        slot = live[st[_S_LIVE] - 1]
        pos = _emit(outs, pos, st, ts, DELETE, _side_code(o_side[slot]),
                    ladder[o_lvl[slot]], o_size[slot], o_id[slot], 0)
        _remove_order(book, st, slot)
    if pos > first:
        outs[6][pos - 1] = F_LAST
    return pos


@njit(cache=True)
def _walk(params, ladder, book, st, fst, outs, pos, ts, side, size):
    """A market order of ``size`` on aggressor ``side``: T print, then F + C per resting
    order hit in price-time priority; the unfilled rest is dropped."""
    o_id, o_size, head = book[0], book[3], book[9]
    opp = 1 if side == BID else 0
    opp_code = _side_code(opp)
    t_row = pos  # the T row comes first; its price and size are known after the walk
    outs[7][t_row] = st[_S_SEQ]
    st[_S_SEQ] += 1
    pos += 1
    remaining = size
    total = 0
    lvl = -1
    while remaining > 0 and st[_S_NBID + opp] > 0:
        lvl = st[_S_BID] if opp == 0 else st[_S_ASK]
        price = ladder[lvl]
        slot = head[opp, lvl]
        while slot >= 0 and remaining > 0:
            q = min(remaining, o_size[slot])
            pos = _emit(outs, pos, st, ts, FILL, opp_code, price, q, o_id[slot], 0)
            pos = _emit(outs, pos, st, ts, CANCEL, opp_code, price, q, o_id[slot], 0)
            remaining -= q
            total += q
            o_size[slot] -= q
            nxt = book[5][slot]
            if o_size[slot] == 0:
                _remove_order(book, st, slot)
            slot = nxt
    outs[0][t_row] = ts
    outs[1][t_row] = TRADE
    outs[2][t_row] = side
    outs[3][t_row] = ladder[lvl]
    outs[4][t_row] = total
    outs[5][t_row] = 0
    outs[6][t_row] = 0
    outs[6][pos - 1] = F_LAST
    st[_S_LAST] = lvl
    st[_S_TRADED] = 1
    fst[0] = follow_trade(fst[0], ladder[lvl], total, params)
    return pos


@njit(cache=True)
def _continuous(params, ladder, rng, book, st, fst, outs, pos, open_ns, session_ns):
    """Decisions from the state's clock to the session's end, until the rows buffer or the
    order pool runs short. Those checks come before any draw, so where a chunk ends never
    changes what is drawn."""
    o_id, o_side, o_lvl, o_size, live = book[0], book[1], book[2], book[3], book[7]
    cap = outs[0].shape[0]
    lo, hi = float(ladder[0]), float(ladder[-1])
    while True:
        if cap - pos < 2 * st[_S_LIVE] + 4:
            return pos, _ROWS_FULL
        if st[_S_FREE] == 0:
            return pos, _POOL_FULL
        gap = arrival_gap_ns(st[_S_T], params, rng)
        if st[_S_T] + gap >= session_ns:
            st[_S_T] = session_ns
            return pos, _DONE
        st[_S_T] += gap
        ts = open_ns + st[_S_T]
        fst[0] = min(max(evolve_value(fst[0], gap, params, rng), lo), hi)
        bb = ladder[st[_S_BID]] if st[_S_BID] >= 0 else 0
        ba = ladder[st[_S_ASK]] if st[_S_ASK] >= 0 else 0
        last = ladder[st[_S_LAST]]
        action = choose_action(st[_S_LIVE], params, rng)
        if action == ADD:
            side, price, size = limit_order(bb, ba, last, params, ladder, fst[0], rng)
            if size == 0:
                continue
            s = 0 if side == BID else 1
            slot = _add_order(book, st, s, ladder_index(ladder, price), size)
            pos = _emit(outs, pos, st, ts, ADD, side, price, size, o_id[slot], F_LAST)
        elif action == TRADE:
            side, size = market_order(bb, ba, last, params, ladder, fst[0], rng)
            if st[_S_NASK if side == BID else _S_NBID] == 0:
                continue
            pos = _walk(params, ladder, book, st, fst, outs, pos, ts, side, size)
        elif st[_S_LIVE] > 0:
            slot = live[pick_live(st[_S_LIVE], rng)]
            side = _side_code(o_side[slot])
            if action == CANCEL:
                q = cancel_size(o_size[slot], params, rng)
                pos = _emit(outs, pos, st, ts, CANCEL, side, ladder[o_lvl[slot]], q,
                            o_id[slot], F_LAST)
                o_size[slot] -= q
                if o_size[slot] == 0:
                    _remove_order(book, st, slot)
            else:
                price = place_price(side, bb, ba, last, params, ladder, rng)
                if price == 0 or price == ladder[o_lvl[slot]]:
                    continue
                pos = _emit(outs, pos, st, ts, MODIFY, side, price, o_size[slot],
                            o_id[slot], F_LAST)
                # A re-priced order goes to the back of its new level's queue.
                s = o_side[slot]
                _unlink(book, slot)
                _link(book, slot, s, ladder_index(ladder, price))
                _improve_best(st, s, o_lvl[slot])
                # If the old level was the best and is now empty, the best moves to a worse
                # level, which the re-priced order's new level (if not better) lies beyond.
                best = st[_S_BID] if s == 0 else st[_S_ASK]
                if book[9][s, best] < 0:
                    _repair_best(book, st, s)


# Phases of a session: one compiled entry point runs all three.
_OPEN, _CONTINUOUS, _CLOSE = 0, 1, 2


@njit(cache=True)
def _run(phase, params, ladder, rng, book, st, fst, outs, pos, open_ns, session_ns, center):
    if phase == _OPEN:
        return _open_book(params, ladder, rng, book, st, outs, pos, open_ns, center), _DONE
    if phase == _CLOSE:
        return _close_book(ladder, book, st, outs, pos, open_ns + session_ns), _DONE
    return _continuous(params, ladder, rng, book, st, fst, outs, pos, open_ns, session_ns)


class _Book:
    """The generator's arrays: an order pool (grown on demand) and one day's ladder.

    ``arrays`` is the tuple the kernels take: order id, side (0 bid, 1 ask), ladder index,
    size, previous and next order in the level's queue, position in the live list, the
    live list, the free-slot stack, then per side and level the queue's head and tail.
    """

    def __init__(self, capacity: int) -> None:
        pool = [np.full(capacity, -1, np.int64) for _ in range(8)]
        free = np.arange(capacity, dtype=np.int64)
        levels = (np.full((2, 1), -1, np.int64), np.full((2, 1), -1, np.int64))
        self.arrays: tuple = (*pool, free, *levels)
        self.capacity = capacity

    def grow(self, st: np.ndarray) -> None:
        """Double the pool; order identity lives in the arrays, so output is unchanged."""
        old, new = self.capacity, 2 * self.capacity
        n_free = int(st[_S_FREE])
        pool = []
        for a in self.arrays[:8]:
            b = np.full(new, -1, np.int64)
            b[:old] = a
            pool.append(b)
        free = np.full(new, -1, np.int64)
        free[:n_free] = self.arrays[8][:n_free]
        free[n_free:n_free + old] = np.arange(old, new)
        self.arrays = (*pool, free, *self.arrays[9:])
        self.capacity = new
        st[_S_FREE] = n_free + old

    def new_day(self, n_levels: int) -> None:
        levels = (np.full((2, n_levels), -1, np.int64), np.full((2, n_levels), -1, np.int64))
        self.arrays = (*self.arrays[:9], *levels)


def _resolve(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"profile {profile!r}: choose one of {', '.join(PROFILES)}") from None


def _new_rows(n: int) -> tuple[np.ndarray, ...]:
    return (np.empty(n, np.int64), np.empty(n, np.uint8), np.empty(n, np.uint8),
            np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.uint64),
            np.empty(n, np.uint8), np.empty(n, np.uint64))


def _events(rows: tuple[np.ndarray, ...], n: int) -> Events:
    ts, action, side, price, size, oid, flags, seq = (r[:n] for r in rows)
    return Events(ts=ts, instrument=np.full(n, INSTRUMENT_ID, np.uint32), action=action,
                  side=side, price=price, size=size, order_id=oid, flags=flags, sequence=seq)


def synthesize(profile: str | Profile, days: int, seed: int, start: date = date(2024, 1, 2),
               *, chunk_events: int = 1 << 20) -> Iterator[tuple[Events, InstrumentTable]]:
    """Generate ``days`` trading days of ``profile`` ("krx-largecap", "krx-smallcap" or a
    :class:`Profile`) from ``start``, yielding chunks of events with the instrument table of
    their day (its ``prev_close_units`` is that day's base price).

    A chunk holds at most ``chunk_events`` rows (raised to ``4 * live_orders + 64`` if
    smaller), never splits a packet and never spans two days; the chunking does not change
    the events.
    """
    prof = _resolve(profile)
    params = prof.to_params()
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    n_open = prof.live_orders
    chunk = max(int(chunk_events), 4 * n_open + 64)
    book = _Book(max(1 << 12, 4 * n_open))
    st = np.zeros(_NSTATE, np.int64)
    st[_S_NEXT_ID] = 1
    st[_S_SEQ] = 1
    st[_S_FREE] = book.capacity
    fst = np.array([float(prof.start_price)])
    base = prof.start_price
    for i, day in enumerate(trading_days(start, days)):
        lower, upper = price_limits(base, on=day)
        ladder = price_grid(lower, upper, on=day)
        book.new_day(len(ladder))
        if i > 0:
            fst[0] *= math.exp(prof.overnight_volatility * rng.standard_normal())
        fst[0] = min(max(fst[0], float(lower)), float(upper))
        st[_S_T] = 0
        st[_S_TRADED] = 0
        st[_S_BID] = st[_S_ASK] = -1
        st[_S_LAST] = int(np.searchsorted(ladder, base, side="right")) - 1
        center = min(max(int(np.searchsorted(ladder, fst[0], side="right")) - 1, 0),
                     len(ladder) - 1)
        table = InstrumentTable([Instrument(
            instrument_id=INSTRUMENT_ID, symbol=prof.symbol, venue="XKRX", book_type="L3",
            price_decimals=0, tick_units=tick_size(base, on=day), prev_close_units=base,
            market="KOSPI")])
        open_ns, close_ns = continuous_bounds_ns(day)
        session_ns = close_ns - open_ns
        rows = _new_rows(chunk)
        while book.capacity - st[_S_LIVE] < n_open:
            book.grow(st)
        pos, _ = _run(_OPEN, params, ladder, rng, book.arrays, st, fst, rows, 0, open_ns,
                      session_ns, center)
        while True:
            pos, status = _run(_CONTINUOUS, params, ladder, rng, book.arrays, st, fst, rows,
                               pos, open_ns, session_ns, center)
            if status == _POOL_FULL:
                book.grow(st)
                continue
            if status == _ROWS_FULL:
                yield _events(rows, pos), table
                rows, pos = _new_rows(chunk), 0
                continue
            break
        if len(rows[0]) - pos < st[_S_LIVE]:
            yield _events(rows, pos), table
            rows, pos = _new_rows(int(st[_S_LIVE])), 0
        pos, _ = _run(_CLOSE, params, ladder, rng, book.arrays, st, fst, rows, pos, open_ns,
                      session_ns, center)
        yield _events(rows, pos), table
        if st[_S_TRADED]:
            # reference/krx.md: the base price is the previous close; with no trade, the
            # previous base.
            base = int(ladder[st[_S_LAST]])


def write_synthetic_tape(path: str | Path, profile: str | Profile, days: int, seed: int,
                         start: date = date(2024, 1, 2), *,
                         chunk_events: int = 1 << 20) -> Path:
    """Stream :func:`synthesize` into a Parquet tape at ``path``; the tape's instrument table
    is the first day's (later days' base prices follow from their previous day's close)."""
    writer: TapeWriter | None = None
    try:
        for events, table in synthesize(profile, days, seed, start, chunk_events=chunk_events):
            if writer is None:
                writer = TapeWriter(path, table)
            writer.write(events)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise ValueError(f"{path}: days={days} makes an empty tape")
    return writer.close()
