"""The KRX single-price auction (단일가매매): the uncross price and who gets filled.

docs/reference/krx.md, "Single-price auction (uncross)":

- The price executes the maximum volume: every bid above it and every ask below it in full,
  one side at it in full and the other at least partly. Executable volume
  ``min(bids at or above p, asks at or below p)`` rises then falls in ``p``, so the prices of
  maximum volume form one interval.
- Several candidates: the one equal to the reference (the previous price; before the open,
  the base price), otherwise the candidate closest to it: the reference clamped into that
  interval, which is always a price on the tick grid.
- Priority: price, then time. At an open (or reopen) that prints at the upper or lower limit,
  orders at the limit price on the rationed side count as simultaneous and are filled in
  rounds of 100, 500, 1,000 and 2,000 units per order, then half of each order's remainder,
  then the rest (not at the close).

Unconfirmed details, made explicit here: within a round that cannot serve every order in
full, earlier orders are served first; "half the remainder" rounds up, so a 1-unit remainder
is served; market orders on the rationed side join the simultaneous group (they are priced
at the limit); client orders are not put before a broker's own (orders carry no such flag).

The work is done on int64 arrays (:func:`uncross_arrays`, sorts and cumulative sums, so a
book of 10^5 orders uncrosses in milliseconds); :func:`uncross` is the same rule over
``(price, size)`` tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ROUNDS = (100, 500, 1_000, 2_000)
#: The price of a market order in :func:`uncross_arrays`' price arrays.
MARKET_PRICE = -1

Order = tuple[int | None, int]  # (limit price or None for a market order, size)


@dataclass(frozen=True)
class Uncross:
    """The auction's outcome. ``price`` is None when nothing crosses; ``bid_fills`` and
    ``ask_fills`` are the filled quantity of each order, in the order given."""

    price: int | None
    volume: int
    bid_fills: list[int]
    ask_fills: list[int]


def uncross(bids: Sequence[Order], asks: Sequence[Order], reference: int, *,
            lower_limit: int | None = None, upper_limit: int | None = None,
            opening: bool = True) -> Uncross:
    """Uncross a single-price auction.

    ``bids`` and ``asks`` are ``(price, size)`` in time priority, price None for a market
    order; ``reference`` is the previous price (the base price before the open). Pass the
    day's limits and ``opening=True`` for an open or reopen, where a print at a limit fills
    the simultaneous orders at that limit in rounds.
    """
    bid_px, bid_sz = _columns(bids, "bid")
    ask_px, ask_sz = _columns(asks, "ask")
    price, volume, bid_fills, ask_fills = uncross_arrays(
        bid_px, bid_sz, ask_px, ask_sz, reference, lower_limit=lower_limit,
        upper_limit=upper_limit, opening=opening)
    return Uncross(price, volume, bid_fills.tolist(), ask_fills.tolist())


def uncross_arrays(bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray,
                   ask_sz: np.ndarray, reference: int, *, lower_limit: int | None = None,
                   upper_limit: int | None = None, opening: bool = True,
                   ) -> tuple[int | None, int, np.ndarray, np.ndarray]:
    """:func:`uncross` over integer arrays, each side in time priority, price
    :data:`MARKET_PRICE` (-1) for a market order. Returns ``(price, volume, bid_fills,
    ask_fills)``: price None when nothing crosses, fills as int64 arrays."""
    bid_px, bid_sz = _checked(bid_px, bid_sz, "bid")
    ask_px, ask_sz = _checked(ask_px, ask_sz, "ask")
    bid_market, ask_market = bid_px == MARKET_PRICE, ask_px == MARKET_PRICE
    limit_bid_px, limit_bid_sz = bid_px[~bid_market], bid_sz[~bid_market]
    limit_ask_px, limit_ask_sz = ask_px[~ask_market], ask_sz[~ask_market]
    # executable volume at each candidate: the limit prices and the reference
    prices = np.unique(np.concatenate([limit_bid_px, limit_ask_px,
                                       np.array([reference], np.int64)]))
    by_px = np.argsort(limit_bid_px, kind="stable")
    px_sorted, below = limit_bid_px[by_px], _cumsum0(limit_bid_sz[by_px])
    demand = bid_sz[bid_market].sum() + below[-1] - below[np.searchsorted(px_sorted, prices)]
    by_px = np.argsort(limit_ask_px, kind="stable")
    px_sorted, below = limit_ask_px[by_px], _cumsum0(limit_ask_sz[by_px])
    supply = ask_sz[ask_market].sum() + below[np.searchsorted(px_sorted, prices, "right")]
    executable = np.minimum(demand, supply)
    volume = int(executable.max())
    if volume == 0:
        return None, 0, np.zeros(len(bid_px), np.int64), np.zeros(len(ask_px), np.int64)
    best = np.flatnonzero(executable == volume)  # one interval of candidates
    price = min(max(int(reference), int(prices[best[0]])), int(prices[best[-1]]))
    at_limit = opening and price in (lower_limit, upper_limit)
    bid_fills = _allocate(bid_px, bid_sz, price, volume, buy=True,
                          simultaneous=at_limit and price == upper_limit)
    ask_fills = _allocate(ask_px, ask_sz, price, volume, buy=False,
                          simultaneous=at_limit and price == lower_limit)
    return price, volume, bid_fills, ask_fills


def _allocate(px: np.ndarray, sz: np.ndarray, price: int, volume: int, *, buy: bool,
              simultaneous: bool) -> np.ndarray:
    """Fill ``volume`` among the orders that accept ``price``: better prices first (market
    orders best), then time; the orders at ``price`` share what is left, in rounds when
    ``simultaneous``."""
    fills = np.zeros(len(px), np.int64)
    market = px == MARKET_PRICE
    better = ~market & ((px > price) if buy else (px < price))
    if not simultaneous:
        better |= market
    # best price first (market orders before any limit), then time: a stable sort on price
    ranked = np.flatnonzero(better)
    key = -px[ranked] if buy else px[ranked]
    key[market[ranked]] = np.iinfo(np.int64).min
    ranked = ranked[np.argsort(key, kind="stable")]
    fills[ranked] = _serve(sz[ranked], volume)
    left = volume - int(fills[ranked].sum())
    # the marginal level, in time order; a market order is at the limit when rounds apply
    marginal = np.flatnonzero((~market & (px == price)) | (market & simultaneous))
    remaining = sz[marginal].copy()
    for cap in (*ROUNDS, "half", "rest") if simultaneous else ("rest",):
        if left == 0:
            break
        if cap == "half":
            give = (remaining + 1) // 2
        elif cap == "rest":
            give = remaining
        else:
            give = np.minimum(remaining, cap)
        taken = _serve(give, left)
        remaining -= taken
        left -= int(taken.sum())
    fills[marginal] = sz[marginal] - remaining
    return fills


def _serve(wanted: np.ndarray, available: int) -> np.ndarray:
    """Serve ``wanted`` in order, earlier first, until ``available`` runs out."""
    served = np.minimum(np.cumsum(wanted), available)
    return np.diff(served, prepend=0)


def _cumsum0(sizes: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros(1, np.int64), np.cumsum(sizes)])


def _columns(orders: Sequence[Order], side: str) -> tuple[np.ndarray, np.ndarray]:
    """``(price, size)`` tuples as price and size arrays, None becoming :data:`MARKET_PRICE`."""
    n = len(orders)
    market = np.fromiter((p is None for p, _ in orders), bool, n)
    px = np.fromiter((MARKET_PRICE if p is None else p for p, _ in orders), np.int64, n)
    sz = np.fromiter((s for _, s in orders), np.int64, n)
    bad = (sz <= 0) | (~market & (px <= 0))
    if bad.any():
        i = int(np.argmax(bad))
        if sz[i] <= 0:
            raise ValueError(f"{side} order {i}: size must be positive, got {orders[i][1]}")
        raise ValueError(f"{side} order {i}: price must be positive or None (market)")
    return px, sz


def _checked(px: np.ndarray, sz: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    px, sz = np.asarray(px), np.asarray(sz)
    for name, a in (("prices", px), ("sizes", sz)):
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise TypeError(f"{side} {name} must be a 1-D integer array, got {a.dtype} "
                            f"with shape {a.shape}")
    if len(px) != len(sz):
        raise ValueError(f"{len(px)} {side} prices but {len(sz)} sizes")
    px, sz = px.astype(np.int64, copy=False), sz.astype(np.int64, copy=False)
    bad = (sz <= 0) | ((px <= 0) & (px != MARKET_PRICE))
    if bad.any():
        i = int(np.argmax(bad))
        if sz[i] <= 0:
            raise ValueError(f"{side} order {i}: size must be positive, got {sz[i]}")
        raise ValueError(f"{side} order {i}: price must be positive or {MARKET_PRICE} (market)")
    return px, sz
