"""Synthetic KRX-like L3 tapes: seeded, reactive order flow over a KRX trading day.

A tape made here looks like a KRX market-by-order feed of one stock on consecutive XKRX
trading days (docs/reference/krx.md: sessions): the opening call auction from 08:30, its uncross
at the day's random end after 09:00, continuous trading to 15:20, the closing call auction
and its uncross at the random end after 15:30 ("Every single-price auction ends at a random
moment within 30 s after its nominal end"). Prices sit on the day's tick grid
(docs/reference/krx.md: tick size) and inside the day's daily limits from the base price
(docs/reference/krx.md: daily price limits); the next day's base price is the day's closing
price ("Base price: previous close; with no trade, the previous base").

The continuous order flow is a Santa Fe / queue-reactive model around a latent value:

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
  an order that moves the price leaves part of its impact behind. Overnight it moves by
  :attr:`Profile.overnight_volatility`, by a random news jump
  (:attr:`Profile.jump_probability`, :attr:`Profile.jump_size`) and by any ``shocks`` given.

The value is not clamped to the daily limits. While it lies at or beyond a limit the book is
*limit-locked*: the side pressing on the limit (sellers at the lower limit) prices every
order at the limit, trading with whatever it crosses and resting the rest there; the other
side mostly stays away (:attr:`Profile.locked_buy_share` of the orders still come, at the
limit); orders queued at the limit mostly keep their place
(:attr:`Profile.locked_cancel_share`). A trade at a limit does not pull a value that lies
beyond it.

Auctions (단일가매매). In each call auction orders arrive as a Poisson process
(:attr:`Profile.auction_orders_open`, :attr:`Profile.auction_orders_close`), on both sides,
priced around the latent value with :attr:`Profile.auction_spread_ticks` of spread, so the
auction book crosses near the value; some arrivals cancel a live order. Nothing matches
until the uncross, at exactly the schedule's ``open_ns`` / ``close_ns``
(:func:`venues.krx.session.schedule` with the tape's seed), which is
:func:`venues.krx.uncross.uncross` over the resting orders in price-time priority (the
reference: the base price at the open, the last trade price at the close).

The book is the venue's: orders rest in a :class:`venues.book.BookState` (price-time FIFO
queues on the day's ladder), a market order, or a limit order crossing at a locked limit,
walks it by :func:`venues.matching.match`, and an uncross reads its orders in priority by
:func:`venues.auction.gather`. The generator keeps beside it only what the engine's book has
no use for: the list of live orders that cancels and modifies pick from uniformly.

Tape conventions. A market order is one packet sharing one ``ts``: a ``T`` print (side =
aggressor, price = last price walked, size = total), then per resting order hit an ``F``
(its order_id, side, fill price and size) followed by a ``C`` of the same size on that
order; only the packet's last row carries ``F_LAST``. A limit order at a locked limit that
trades is the same packet with an ``A`` of its rest at the end. An uncross is one packet,
every row flagged ``F_AUCTION``: a ``T`` (side ``N``, the uncross price, the volume), then
an ``F`` (uncross price) and a ``C`` (the order's own price) per filled order. At
``open_ns`` a second packet, without ``F_AUCTION``, may follow: non-crossing adds that top
the book up to ``live_orders`` (not on a locked day). At ``close_ns`` a packet of deletes
follows the closing uncross: KRX orders are day orders. Every other event is a packet of
one row with ``F_LAST``. Order ids and sequence numbers increase over the whole tape.

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

Determinism: the same profile, days, seed, start and shocks give byte-identical events,
whatever ``chunk_events`` is; every draw comes from one ``numpy.random.Generator`` seeded
from ``seed``, and the auctions' random ends from :func:`venues.krx.session.schedule` with
the same seed (a written tape records it as its session seed). Trading days come from the
XKRX calendar (venues/krx/calendar.py), the session clock from venues/krx/session.py. The
late opens of the first trading day of the year and of the college entrance exam day, the
volatility interruptions and the post-close sessions are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
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
    F_AUCTION,
    F_LAST,
    FILL,
    MODIFY,
    NONE,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
    write_tape_chunks,
)
from venues.auction import gather
from venues.book import (
    BookState,
    alloc_order,
    best_price,
    can_alloc,
    enqueue,
    find_order,
    level_index,
    order_fields,
    reduce_order,
    release,
    requeue,
)
from venues.codes import (
    SRC_HISTORY,
)
from venues.krx.calendar import trading_days
from venues.krx.limits import price_limits
from venues.krx.session import CLOSE, CLOSE_AUCTION, OPEN, PRE_OPEN, schedule, seoul_ns
from venues.krx.ticks import price_grid, tick_size
from venues.krx.uncross import uncross
from venues.matching import (
    Reports,
    clear_fills,
    fill_at,
    fill_count,
    match,
)

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
    # Call auctions (docs/reference/krx.md: sessions, single-price auction).
    auction_orders_open: float = 0.0  # expected orders in the opening auction, 08:30-09:00
    auction_orders_close: float = 0.0  # expected orders in the closing auction, 15:20-15:30
    auction_spread_ticks: float = 4.0  # sd of auction limit prices around the value, ticks
    auction_cancel_share: float = 0.1  # share of auction arrivals that cancel a live order
    # Limit-locked days (docs/reference/krx.md: daily price limits).
    locked_buy_share: float = 0.005  # share of a locked day's orders that lean against the
    # lock (buyers at a lower-limit lock, sellers at an upper-limit one)
    locked_cancel_share: float = 0.05  # share of cancels and re-prices that still hit an
    # order queued at the locked limit on the pressing side (the rest keep their place)
    jump_probability: float = 0.0  # chance of an overnight news jump of the value, per day
    jump_size: float = 0.0  # its size, a fractional move up or down (0.35 = +-35%)
    # shares outstanding: the stock's weight in the KRX venue's index (circuit breakers);
    # 0 keeps it out of the index
    shares_outstanding: int = 0

    def __post_init__(self) -> None:
        shares = {"market_share": self.market_share, "cancel_share": self.cancel_share,
                  "modify_share": self.modify_share,
                  "partial_cancel_share": self.partial_cancel_share,
                  "limit_lean": self.limit_lean,
                  "auction_cancel_share": self.auction_cancel_share,
                  "locked_buy_share": self.locked_buy_share,
                  "locked_cancel_share": self.locked_cancel_share,
                  "jump_probability": self.jump_probability}
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
        non_negative = {"auction_orders_open": self.auction_orders_open,
                        "auction_orders_close": self.auction_orders_close,
                        "auction_spread_ticks": self.auction_spread_ticks}
        for key, v in non_negative.items():
            if not v >= 0:
                raise ValueError(f"profile {self.name!r}: {key}={v} must not be negative")
        if not 0.0 <= self.jump_size < 1.0:
            raise ValueError(f"profile {self.name!r}: jump_size={self.jump_size} must lie in "
                             "[0, 1)")
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
        head[P_AUCTION_SPREAD] = self.auction_spread_ticks
        head[P_AUCTION_CANCEL] = self.auction_cancel_share
        head[P_LOCKED_BUY] = self.locked_buy_share
        head[P_LOCKED_CANCEL] = self.locked_cancel_share
        w = np.asarray(self.placement_weights, np.float64)
        cdf = np.cumsum(w) / w.sum()
        cdf[-1] = 1.0
        return np.concatenate([head, cdf])


# Layout of the params array (Profile.to_params).
(P_BASE_RATE_PER_NS, P_OPEN_BOOST, P_CLOSE_BOOST, P_DECAY_NS, P_SESSION_NS, P_MARKET,
 P_CANCEL, P_MODIFY, P_PARTIAL, P_LIVE_TARGET, P_LOG_SIZE, P_SIZE_SIGMA, P_LOG_MKT_SIZE,
 P_MKT_SIZE_SIGMA, P_SIZE_MAX, P_SIGMA_PER_SQRT_NS, P_PULL, P_LIMIT_LEAN, P_FOLLOW_VOLUME,
 P_AUCTION_SPREAD, P_AUCTION_CANCEL, P_LOCKED_BUY, P_LOCKED_CANCEL, P_PLACEMENT) = range(24)


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
    auction_orders_open=1_500.0, auction_orders_close=800.0, auction_spread_ticks=4.0,
    auction_cancel_share=0.1, locked_buy_share=0.005, locked_cancel_share=0.05,
    jump_probability=0.0, jump_size=0.0,
    shares_outstanding=5_969_782_550,  # a market by itself: its fall is the index's
)

#: A thin small-cap: ~6,000 won, a spread of 1-3 ticks, a few hundred thousand tape rows a
#: day, about twice the large-cap's volatility, and a 1% chance a day of a +-35% news jump
#: overnight, which locks the day at a daily limit.
SMALLCAP = Profile(
    name="krx-smallcap", symbol="SYNTH-SMALL", start_price=6_000,
    event_rate=14.0, open_boost=2.5, close_boost=1.0, boost_decay_s=1_800.0,
    market_share=0.05, cancel_share=0.40, modify_share=0.04, partial_cancel_share=0.1,
    live_orders=160, placement_weights=_weights(20, rise=0.3, scale=7.0),
    size_median=60.0, size_sigma=1.1, market_size_median=80.0, market_size_sigma=1.2,
    size_max=20_000, daily_volatility=0.025, overnight_volatility=0.02,
    value_pull=0.25, limit_lean=0.5, follow_volume=500_000.0,
    auction_orders_open=200.0, auction_orders_close=100.0, auction_spread_ticks=4.0,
    auction_cancel_share=0.1, locked_buy_share=0.005, locked_cancel_share=0.05,
    jump_probability=0.01, jump_size=0.35,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (LARGECAP, SMALLCAP)}


def _seconds(start, end) -> float:
    d = date(2000, 1, 1)
    return (datetime.combine(d, end) - datetime.combine(d, start)).seconds


def _session_seconds() -> float:
    return _seconds(OPEN, CLOSE_AUCTION)


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
# The generator on the venue's book: venues.book's arena holds the orders, venues.matching's
# walk fills a market order; beside them the generator keeps the one index the engine's
# book has no use for, a list of the live orders to pick a cancel or a modify from.
# ---------------------------------------------------------------------------------------

# Slots of the integer state array; _S_LAST is the last trade's price.
_S_T, _S_NEXT_ID, _S_SEQ, _S_LAST, _S_TRADED, _S_LIVE, _NSTATE = range(7)
_INST = 0  # the stock's row in the book (the tape calls it INSTRUMENT_ID)
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
def _add_order(book, st, side, price, size, ts):
    """A new order at the back of its level's queue and at the end of the live list; the
    caller has checked :func:`venues.book.can_alloc`. Returns its order id.

    Its history size is its size: this book is history's own, so an order the walk fills
    completely stays in the id table (CONSUMED) until :func:`_forget` releases it."""
    S, live, where = book[0], book[2], book[3]
    row = alloc_order(S)
    oid = st[_S_NEXT_ID]
    st[_S_NEXT_ID] += 1
    enqueue(S, row, oid, _INST, side, price, size, size, -1, ts,
            level_index(S, _INST, side, price))
    where[row] = st[_S_LIVE]
    live[st[_S_LIVE]] = row
    st[_S_LIVE] += 1
    return oid


@njit(cache=True)
def _forget(book, st, row):
    # An order with nothing left: its row goes back to the book, and it is swap-removed
    # from the live list, which keeps uniform picks O(1).
    S, live, where = book[0], book[2], book[3]
    release(S, row)
    st[_S_LIVE] -= 1
    moved = live[st[_S_LIVE]]
    live[where[row]] = moved
    where[moved] = where[row]


@njit(cache=True)
def _reduce(book, st, row, q):
    """Take ``q`` shares from resting order ``row``; at zero it leaves the book."""
    reduce_order(book[0], row, q)
    if order_fields(book[0], row)[3] == 0:
        _forget(book, st, row)


@njit(cache=True)
def _top_up(params, ladder, rng, book, st, outs, pos, ts, center, first, i, n):
    """A packet of ``n`` adds from ``first``, alternating sides, each placed against the
    book built so far (so the packet never crosses), around ladder index ``center`` when
    the book is empty. Resumes at add ``i``; returns ``(pos, i, status)``, _POOL_FULL
    before a draw when the book needs room."""
    S = book[0]
    while i < n:
        if not can_alloc(S):
            return pos, i, _POOL_FULL
        side = BID if i % 2 == 0 else ASK
        i += 1
        price = place_price(side, best_price(S, _INST, BID), best_price(S, _INST, ASK),
                            ladder[center], params, ladder, rng)
        size = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]), rng)
        if price == 0:
            continue
        oid = _add_order(book, st, side, price, size, ts)
        pos = _emit(outs, pos, st, ts, ADD, side, price, size, oid, 0)
    if pos > first:
        outs[6][pos - 1] = F_LAST
    return pos, i, _DONE


@njit(cache=True)
def _close_book(book, st, outs, pos, ts):
    """The packet after the closing uncross: a delete for every live order, in live-list
    order (KRX orders are day orders)."""
    S, live = book[0], book[2]
    first = pos
    while st[_S_LIVE] > 0:
        row = live[st[_S_LIVE] - 1]
        oid, side, price, size = order_fields(S, row)
        pos = _emit(outs, pos, st, ts, DELETE, side, price, size, oid, 0)
        _reduce(book, st, row, size)
    if pos > first:
        outs[6][pos - 1] = F_LAST
    return pos


@njit(cache=True)
def _follow(value, ladder, price, size, params):
    # A print at a limit says nothing about a value lying beyond that limit.
    if (value < ladder[0] and price == ladder[0]) or (value > ladder[-1]
                                                      and price == ladder[-1]):
        return value
    return follow_trade(value, price, size, params)


@njit(cache=True)
def _walk(params, ladder, book, st, fst, outs, pos, ts, side, size, limit):
    """An order of ``size`` on aggressor ``side`` taking liquidity up to price ``limit``
    (-1: a market order) by :func:`venues.matching.match`, in price-time priority: a T
    print, then F + C per resting order hit. Returns ``(pos, unfilled size)``; the caller
    has checked that the opposite best is within the limit, and the packet's last row
    carries F_LAST."""
    S, OUT = book[0], book[1]
    filled, _ = match(S, OUT, _INST, side, limit, size, ts, -1, SRC_HISTORY, False, -1)
    opp = ASK if side == BID else BID
    t_row = pos  # the T row comes first; its price is the last fill's
    pos = _emit(outs, pos, st, ts, TRADE, side, 0, filled, 0, 0)
    last = 0
    for j in range(fill_count(OUT)):
        price, q, oid = fill_at(OUT, j)
        pos = _emit(outs, pos, st, ts, FILL, opp, price, q, oid, 0)
        pos = _emit(outs, pos, st, ts, CANCEL, opp, price, q, oid, 0)
        row = find_order(S, oid, _INST)
        if order_fields(S, row)[3] == 0:
            _forget(book, st, row)
        last = price
    clear_fills(OUT)
    outs[3][t_row] = last
    outs[6][pos - 1] = F_LAST
    st[_S_LAST] = last
    st[_S_TRADED] = 1
    fst[0] = _follow(fst[0], ladder, last, filled, params)
    return pos, size - filled


@njit(cache=True)
def _locked(params, ladder, rng, book, st, fst, outs, pos, ts, action, down):
    """An ADD or TRADE decision while the value lies at or beyond a limit (the lower one if
    ``down``): the pressing side (sellers at the lower limit) sends it with probability
    1 - locked_buy_share, the other side otherwise. A limit order is priced at the limit
    (a sell that would go lower sells at the lower limit): it trades with what it crosses
    and rests the rest there; a market order walks the opposite side."""
    S = book[0]
    lim = ladder[0] if down else ladder[ladder.shape[0] - 1]
    press = ASK if down else BID
    side = press if rng.random() >= params[P_LOCKED_BUY] else (BID if press == ASK else ASK)
    opp_best = best_price(S, _INST, ASK if side == BID else BID)
    if action == TRADE:
        size = _size(params[P_LOG_MKT_SIZE], params[P_MKT_SIZE_SIGMA],
                     int(params[P_SIZE_MAX]), rng)
        if opp_best == 0:
            return pos
        pos, _ = _walk(params, ladder, book, st, fst, outs, pos, ts, side, size, -1)
        return pos
    size = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]), rng)
    if side == ASK:
        crosses = opp_best > 0 and opp_best >= lim
    else:
        crosses = opp_best > 0 and opp_best <= lim
    rest = size
    if crosses:
        pos, rest = _walk(params, ladder, book, st, fst, outs, pos, ts, side, size, lim)
    if rest > 0:
        if crosses:
            outs[6][pos - 1] = 0  # the rest's add ends the packet
        oid = _add_order(book, st, side, lim, rest, ts)
        pos = _emit(outs, pos, st, ts, ADD, side, lim, rest, oid, F_LAST)
    return pos


@njit(cache=True)
def _queued_at_lock(side, price, value, lo, ladder):
    # An order on ``side`` at ``price`` is the pressing side queued at the locked limit.
    if value <= lo:
        return side == ASK and price == ladder[0]
    return side == BID and price == ladder[ladder.shape[0] - 1]


@njit(cache=True)
def _ladder_ticks(ladder, price):
    # Fractional ladder index of a price, extended beyond the limits with the end ticks.
    n = ladder.shape[0]
    if price < ladder[0]:
        return (price - ladder[0]) / (ladder[1] - ladder[0])
    if price > ladder[n - 1]:
        return (n - 1) + (price - ladder[n - 1]) / (ladder[n - 1] - ladder[n - 2])
    return _ladder_position(ladder, price)


@njit(cache=True)
def _auction(params, ladder, rng, book, st, fst, outs, pos, origin_ns, end_t, rate_per_ns):
    """Call-auction arrivals from the state's clock to ``end_t`` (ns after ``origin_ns``,
    exclusive): Poisson at ``rate_per_ns``; a share cancel a live order, the rest add one on
    either side at the value plus N(0, auction_spread_ticks) ticks, so bids and asks overlap
    around the value ``fst[0]``. Nothing matches. A price beyond a limit: the side that wants it (a
    sell below the lower limit) goes to the limit, the other side stays away but for
    locked_buy_share of its orders, which go to the limit."""
    S, live = book[0], book[2]
    cap = outs[0].shape[0]
    n = ladder.shape[0]
    x = _ladder_ticks(ladder, fst[0])
    spread = params[P_AUCTION_SPREAD]
    while True:
        if cap - pos < 2:
            return pos, _ROWS_FULL
        if not can_alloc(S):
            return pos, _POOL_FULL
        gap = int(rng.standard_exponential() / rate_per_ns) + 1
        if st[_S_T] + gap >= end_t:
            st[_S_T] = end_t
            return pos, _DONE
        st[_S_T] += gap
        ts = origin_ns + st[_S_T]
        if st[_S_LIVE] > 0 and rng.random() < params[P_AUCTION_CANCEL]:
            row = live[pick_live(st[_S_LIVE], rng)]
            oid, side, price, size = order_fields(S, row)
            q = cancel_size(size, params, rng)
            pos = _emit(outs, pos, st, ts, CANCEL, side, price, q, oid, F_LAST)
            _reduce(book, st, row, q)
            continue
        side = BID if rng.random() < 0.5 else ASK
        size = _size(params[P_LOG_SIZE], params[P_SIZE_SIGMA], int(params[P_SIZE_MAX]), rng)
        j = int(math.floor(x + spread * rng.standard_normal() + 0.5))
        away = rng.random() >= params[P_LOCKED_BUY]
        if j < 0:
            if side == BID and away:
                continue
            j = 0
        elif j > n - 1:
            if side == ASK and away:
                continue
            j = n - 1
        oid = _add_order(book, st, side, ladder[j], size, ts)
        pos = _emit(outs, pos, st, ts, ADD, side, ladder[j], size, oid, F_LAST)


@njit(cache=True)
def _emit_uncross(book, st, outs, pos, ts, price, volume, rows, fills):
    """The uncross packet, every row F_AUCTION: the T print (side N), then per filled order
    an F at the uncross price and a C at the order's own price, the order reduced."""
    S = book[0]
    pos = _emit(outs, pos, st, ts, TRADE, NONE, price, volume, 0, F_AUCTION)
    for k in range(rows.shape[0]):
        q = fills[k]
        if q == 0:
            continue
        row = rows[k]
        oid, side, own, _ = order_fields(S, row)
        pos = _emit(outs, pos, st, ts, FILL, side, price, q, oid, F_AUCTION)
        pos = _emit(outs, pos, st, ts, CANCEL, side, own, q, oid, F_AUCTION)
        _reduce(book, st, row, q)
    outs[6][pos - 1] = F_AUCTION | F_LAST
    st[_S_LAST] = price
    st[_S_TRADED] = 1
    return pos


@njit(cache=True)
def _continuous(params, ladder, rng, book, st, fst, outs, pos, origin_ns, session_ns):
    """Decisions from the state's clock (ns after ``origin_ns``, 09:00) to the session's
    end, until the rows buffer or the book's order pool runs short. Those checks come
    before any draw, so where a chunk ends never changes what is drawn."""
    S, live = book[0], book[2]
    cap = outs[0].shape[0]
    lo, hi = float(ladder[0]), float(ladder[-1])
    while True:
        if cap - pos < 2 * st[_S_LIVE] + 4:
            return pos, _ROWS_FULL
        if not can_alloc(S):
            return pos, _POOL_FULL
        gap = arrival_gap_ns(st[_S_T], params, rng)
        if st[_S_T] + gap >= session_ns:
            st[_S_T] = session_ns
            return pos, _DONE
        st[_S_T] += gap
        ts = origin_ns + st[_S_T]
        fst[0] = evolve_value(fst[0], gap, params, rng)
        bb = best_price(S, _INST, BID)
        ba = best_price(S, _INST, ASK)
        last = st[_S_LAST]
        action = choose_action(st[_S_LIVE], params, rng)
        locked = fst[0] <= lo or fst[0] >= hi
        if locked and (action == ADD or action == TRADE):
            pos = _locked(params, ladder, rng, book, st, fst, outs, pos, ts, action,
                          fst[0] <= lo)
        elif action == ADD:
            side, price, size = limit_order(bb, ba, last, params, ladder, fst[0], rng)
            if size == 0:
                continue
            oid = _add_order(book, st, side, price, size, ts)
            pos = _emit(outs, pos, st, ts, ADD, side, price, size, oid, F_LAST)
        elif action == TRADE:
            side, size = market_order(bb, ba, last, params, ladder, fst[0], rng)
            if (ba if side == BID else bb) == 0:
                continue
            pos, _ = _walk(params, ladder, book, st, fst, outs, pos, ts, side, size, -1)
        elif st[_S_LIVE] > 0:
            row = live[pick_live(st[_S_LIVE], rng)]
            oid, side, price, size = order_fields(S, row)
            if locked and _queued_at_lock(side, price, fst[0], lo, ladder) \
                    and rng.random() >= params[P_LOCKED_CANCEL]:
                continue  # a seller queued at a lower-limit lock keeps its place
            if action == CANCEL:
                q = cancel_size(size, params, rng)
                pos = _emit(outs, pos, st, ts, CANCEL, side, price, q, oid, F_LAST)
                _reduce(book, st, row, q)
            else:
                new = place_price(side, bb, ba, last, params, ladder, rng)
                if new == 0 or new == price:
                    continue
                pos = _emit(outs, pos, st, ts, MODIFY, side, new, size, oid, F_LAST)
                requeue(S, row, new)  # to the back of its new level's queue


class _Book:
    """The day's book: a :class:`venues.book.BookState` of one instrument on the day's
    ladder, the fills table :func:`venues.matching.match` writes into, and the live list
    (``live[:n]`` the book rows of the resting orders, ``where[row]`` each one's place in
    it). ``arrays`` is the tuple the kernels take; the pool grows on demand."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.state = BookState(1, order_capacity=capacity)
        self.reports = Reports(capacity)
        self.live = np.zeros(capacity, np.int64)
        self.where = np.zeros(capacity, np.int64)

    @property
    def arrays(self) -> tuple:
        return (self.state.S, self.reports.OUT, self.live, self.where)

    def grow(self) -> None:
        """Room for one more order (order identity lives in the arrays, so output is
        unchanged); the live list and the fills table follow the pool's size."""
        self.state.make_room()
        capacity = len(self.state.orders)
        if capacity > self.capacity:
            pad = np.zeros(capacity - self.capacity, np.int64)
            self.live = np.concatenate([self.live, pad])
            self.where = np.concatenate([self.where, pad])
            self.reports = Reports(capacity)  # it holds no rows between calls
            self.capacity = capacity

    def new_day(self, ladder: np.ndarray) -> None:
        """An empty book on the day's ladder (the last day's orders all expired)."""
        self.state = BookState(1, order_capacity=self.capacity)
        self.state.set_ladder(_INST, int(ladder[0]), int(ladder[-1]),
                              int(np.diff(ladder).min()))

    def crossing(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The orders an uncross can fill, from :func:`venues.auction.gather`: bids at or
        above the best ask and asks at or below the best bid, each side best price first
        and in time priority within a price. Returns ``(prices, sizes, rows, n_bids)``,
        the bids first."""
        bid_px, bid_sz, bid_rows, _, _ = gather(self.state.S, _INST, BID)
        ask_px, ask_sz, ask_rows, _, _ = gather(self.state.S, _INST, ASK)
        if len(bid_px) == 0 or len(ask_px) == 0 or bid_px[0] < ask_px[0]:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), 0
        nb = int(np.count_nonzero(bid_px >= ask_px[0]))
        na = int(np.count_nonzero(ask_px <= bid_px[0]))
        return (np.concatenate([bid_px[:nb], ask_px[:na]]),
                np.concatenate([bid_sz[:nb], ask_sz[:na]]),
                np.concatenate([bid_rows[:nb], ask_rows[:na]]), nb)


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


def _check_shocks(shocks: Mapping[int, float] | None, days: int) -> dict[int, float]:
    out = {}
    for day, move in (shocks or {}).items():
        if not 0 <= int(day) < days or int(day) != day:
            raise ValueError(f"shock on day {day!r}: day indices run from 0 to {days - 1}")
        if not -1.0 < float(move) < 10.0:
            raise ValueError(f"shock on day {day}: fraction {move} must lie in (-1, 10) "
                             "(-0.4 = a 40% fall)")
        out[int(day)] = float(move)
    return out


def synthesize(profile: str | Profile, days: int, seed: int, start: date = date(2024, 1, 2),
               *, chunk_events: int = 1 << 20, shocks: Mapping[int, float] | None = None,
               ) -> Iterator[tuple[Events, InstrumentTable]]:
    """Generate ``days`` trading days of ``profile`` ("krx-largecap", "krx-smallcap" or a
    :class:`Profile`) from ``start``, yielding chunks of events with the instrument table of
    their day (its ``prev_close_units`` is that day's base price).

    ``shocks`` maps a day index (0 = the first day) to a fractional move of the latent
    value before that day's opening auction, e.g. ``{1: -0.40}``: news overnight. A move
    beyond the daily limit locks the day at the limit.

    A chunk holds at most ``chunk_events`` rows (raised to ``4 * live_orders + 64`` if
    smaller, and to about twice the live orders when a locked day's queue outgrows that,
    so a market order can always walk the whole book), never splits a packet and never
    spans two days; the chunking does not change the events.
    """
    prof = _resolve(profile)
    moves = _check_shocks(shocks, days)
    params = prof.to_params()
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    n_open = prof.live_orders
    chunk = max(int(chunk_events), 4 * n_open + 64)
    book = _Book(max(1 << 12, 4 * n_open))
    st = np.zeros(_NSTATE, np.int64)
    st[_S_NEXT_ID] = 1
    st[_S_SEQ] = 1
    fst = np.array([float(prof.start_price)])
    base = prof.start_price
    rates = {"open": prof.auction_orders_open / (_seconds(PRE_OPEN, OPEN) * 1e9),
             "close": prof.auction_orders_close / (_seconds(CLOSE_AUCTION, CLOSE) * 1e9)}
    for i, day in enumerate(trading_days(start, days)):
        lower, upper = price_limits(base, on=day)
        ladder = price_grid(lower, upper, on=day)
        book.new_day(ladder)
        sched = schedule(day, seed)
        origin = seoul_ns(day, OPEN)  # the clock of the rate shape: ns after 09:00
        if i > 0:
            fst[0] *= math.exp(prof.overnight_volatility * rng.standard_normal())
        if prof.jump_probability > 0 and rng.random() < prof.jump_probability:
            fst[0] *= 1.0 + (prof.jump_size if rng.random() < 0.5 else -prof.jump_size)
        fst[0] *= 1.0 + moves.get(i, 0.0)
        st[_S_TRADED] = 0
        st[_S_LAST] = ladder[int(np.searchsorted(ladder, base, side="right")) - 1]
        table = InstrumentTable([Instrument(
            instrument_id=INSTRUMENT_ID, symbol=prof.symbol, venue="XKRX", book_type="L3",
            price_decimals=0, tick_units=tick_size(base, on=day), prev_close_units=base,
            market="KOSPI", shares_outstanding=prof.shares_outstanding)])
        day_rows = _DayRows(chunk)
        head = (params, ladder, rng)

        # Opening call auction, 08:30 to the random end; its uncross at open_ns.
        st[_S_T] = sched.pre_open_ns - origin
        if rates["open"] > 0:
            yield from day_rows.run(_auction, head, book, st, fst, table, origin,
                                    sched.open_ns - origin, rates["open"])
        yield from _uncross_packet(day_rows, book, st, fst, params, ladder, base, lower, upper,
                                   True, sched.open_ns, table)
        if lower < fst[0] < upper and st[_S_LIVE] < n_open:
            # The top-up: orders that would rest away from the open price, placed without
            # crossing, so continuous trading starts from a book of the profile's depth.
            yield from day_rows.room(n_open, table)
            center = min(max(int(np.searchsorted(ladder, fst[0], side="right")) - 1, 0),
                         len(ladder) - 1)
            first, done, n_adds = day_rows.pos, 0, n_open - int(st[_S_LIVE])
            while True:
                day_rows.pos, done, status = _top_up(
                    params, ladder, rng, book.arrays, st, day_rows.rows, day_rows.pos,
                    sched.open_ns, center, first, done, n_adds)
                if status != _POOL_FULL:
                    break
                book.grow()

        # Continuous trading from the uncross to 15:20.
        st[_S_T] = sched.open_ns - origin
        yield from day_rows.run(_continuous, head, book, st, fst, table, origin,
                                sched.continuous_end_ns - origin)

        # Closing call auction, 15:20 to the random end; its uncross at close_ns, priced
        # against the last trade; then every order expires.
        if rates["close"] > 0:
            yield from day_rows.run(_auction, head, book, st, fst, table, origin,
                                    sched.close_ns - origin, rates["close"])
        yield from _uncross_packet(day_rows, book, st, fst, params, ladder,
                                   int(st[_S_LAST]), lower, upper, False, sched.close_ns,
                                   table)
        yield from day_rows.room(int(st[_S_LIVE]), table)
        day_rows.pos = _close_book(book.arrays, st, day_rows.rows, day_rows.pos,
                                   sched.close_ns)
        if day_rows.pos:
            yield day_rows.events(), table
        if st[_S_TRADED]:
            # docs/reference/krx.md: "Base price: previous close; with no trade, the previous
            # base." The close is the closing uncross, or the last trade if nothing crossed.
            base = int(st[_S_LAST])


class _DayRows:
    """One day's rows buffer: kernels write into ``rows`` from ``pos``; full buffers are
    yielded as chunks (whole packets only) and replaced."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.rows = _new_rows(chunk)
        self.pos = 0

    def events(self) -> Events:
        return _events(self.rows, self.pos)

    def room(self, need: int, table: InstrumentTable) -> Iterator:
        """Make room for a packet of ``need`` rows, yielding the buffer if it is short."""
        if len(self.rows[0]) - self.pos < need:
            if self.pos:
                yield self.events(), table
            self.rows, self.pos = _new_rows(max(self.chunk, need)), 0

    def run(self, kernel, head: tuple, book: _Book, st: np.ndarray, fst: np.ndarray,
            table: InstrumentTable, *tail) -> Iterator:
        """Call ``kernel(*head, book, st, fst, rows, pos, *tail)`` until it is done,
        growing the order pool and yielding full buffers as it asks."""
        while True:
            self.pos, status = kernel(*head, book.arrays, st, fst, self.rows, self.pos, *tail)
            if status == _POOL_FULL:
                book.grow()
            elif status == _ROWS_FULL:
                yield self.events(), table
                # room for a walk through every live order, however large the book grew
                self.rows = _new_rows(max(self.chunk, 2 * int(st[_S_LIVE]) + 64))
                self.pos = 0
            else:
                break


def _uncross_packet(day_rows: _DayRows, book: _Book, st: np.ndarray, fst: np.ndarray,
                    params: np.ndarray, ladder: np.ndarray, reference: int, lower: int,
                    upper: int, opening: bool, ts: int, table: InstrumentTable) -> Iterator:
    """History's own uncross at ``ts``: :func:`venues.krx.uncross.uncross` over the resting
    orders (docs/reference/krx.md: single-price auction), written as an F_AUCTION packet and
    applied to the book; nothing when nothing crosses.

    Only the orders that can trade are passed: a bid below the lowest ask (or an ask above
    the highest bid) is executable at no price with positive volume, so it changes neither
    the price, nor the volume, nor anyone's fill.
    """
    prices, sizes, rows, n_bids = book.crossing()
    if len(rows) == 0:
        return
    prices, sizes = prices.tolist(), sizes.tolist()
    result = uncross(list(zip(prices[:n_bids], sizes[:n_bids], strict=True)),
                     list(zip(prices[n_bids:], sizes[n_bids:], strict=True)),
                     reference, lower_limit=lower, upper_limit=upper, opening=opening)
    if result.price is None:
        return
    fills = np.asarray(result.bid_fills + result.ask_fills, np.int64)
    yield from day_rows.room(1 + 2 * int(np.count_nonzero(fills)), table)
    day_rows.pos = _emit_uncross(book.arrays, st, day_rows.rows, day_rows.pos, ts,
                                 result.price, result.volume, rows, fills)
    fst[0] = _follow(fst[0], ladder, result.price, result.volume, params)


def write_synthetic_tape(path: str | Path, profile: str | Profile, days: int, seed: int,
                         start: date = date(2024, 1, 2), *, chunk_events: int = 1 << 20,
                         shocks: Mapping[int, float] | None = None) -> Path:
    """Stream :func:`synthesize` into a Parquet tape at ``path``; the tape's instrument table
    is the first day's (later days' base prices follow from their previous day's close),
    and its session seed is ``seed``, so a replay draws the same auction ends
    (:func:`venues.krx.session.schedule`)."""
    chunks = synthesize(profile, days, seed, start, chunk_events=chunk_events, shocks=shocks)
    return write_tape_chunks(path, chunks, seed, f"days={days} makes an empty tape")
