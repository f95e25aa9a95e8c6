"""The KRX single-price auction (단일가매매): the uncross price and who gets filled.

reference/krx.md, "Single-price auction (uncross)":

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ROUNDS = (100, 500, 1_000, 2_000)

Order = tuple[int | None, int]  # (limit price or None for a market order, size)


@dataclass(frozen=True)
class Uncross:
    """The auction's outcome. ``price`` is None when nothing crosses; ``bid_fills`` and
    ``ask_fills`` are the filled quantity of each order, in the order given."""

    price: int | None
    volume: int
    bid_fills: list[int]
    ask_fills: list[int]


def _validate(orders: Sequence[Order], side: str) -> None:
    for i, (price, size) in enumerate(orders):
        if size <= 0:
            raise ValueError(f"{side} order {i}: size must be positive, got {size}")
        if price is not None and price <= 0:
            raise ValueError(f"{side} order {i}: price must be positive or None (market)")


def _volume_at(p: int, bids: Sequence[Order], asks: Sequence[Order]) -> int:
    demand = sum(s for q, s in bids if q is None or q >= p)
    supply = sum(s for q, s in asks if q is None or q <= p)
    return min(demand, supply)


def uncross(bids: Sequence[Order], asks: Sequence[Order], reference: int, *,
            lower_limit: int | None = None, upper_limit: int | None = None,
            opening: bool = True) -> Uncross:
    """Uncross a single-price auction.

    ``bids`` and ``asks`` are ``(price, size)`` in time priority, price None for a market
    order; ``reference`` is the previous price (the base price before the open). Pass the
    day's limits and ``opening=True`` for an open or reopen, where a print at a limit fills
    the simultaneous orders at that limit in rounds.
    """
    _validate(bids, "bid")
    _validate(asks, "ask")
    prices = sorted({p for p, _ in [*bids, *asks] if p is not None} | {reference})
    best = 0
    lo = hi = None
    for p in prices:
        v = _volume_at(p, bids, asks)
        if v > best:
            best, lo, hi = v, p, p
        elif v == best and best > 0:
            hi = p
    if best == 0:
        return Uncross(None, 0, [0] * len(bids), [0] * len(asks))
    price = min(max(reference, lo), hi)
    at_limit = opening and price in (lower_limit, upper_limit)
    bid_fills = _allocate(bids, price, best, buy=True,
                          simultaneous=at_limit and price == upper_limit)
    ask_fills = _allocate(asks, price, best, buy=False,
                          simultaneous=at_limit and price == lower_limit)
    return Uncross(price, best, bid_fills, ask_fills)


def _allocate(orders: Sequence[Order], price: int, volume: int, *, buy: bool,
              simultaneous: bool) -> list[int]:
    """Fill ``volume`` among the orders that accept ``price``: better prices first (market
    orders best), then time; the orders at ``price`` share what is left, in rounds when
    ``simultaneous``."""
    fills = [0] * len(orders)

    def better(p: int | None) -> bool:
        if p is None:
            return not simultaneous  # a market order is at the limit when rounds apply
        return p > price if buy else p < price

    left = volume
    # strictly better limit prices, best first, then time
    ranked = sorted((i for i, (p, _) in enumerate(orders) if better(p)),
                    key=lambda i: (0 if orders[i][0] is None else 1,
                                   -(orders[i][0] or 0) if buy else (orders[i][0] or 0), i))
    for i in ranked:
        take = min(left, orders[i][1])
        fills[i] = take
        left -= take
    marginal = [i for i, (p, _) in enumerate(orders) if p == price or (p is None and
                                                                       not better(p))]
    if not simultaneous:
        for i in marginal:
            take = min(left, orders[i][1])
            fills[i] += take
            left -= take
        return fills
    caps = list(ROUNDS) + ["half", "rest"]
    for cap in caps:
        for i in marginal:
            if left == 0:
                return fills
            remaining = orders[i][1] - fills[i]
            if remaining == 0:
                continue
            if cap == "half":
                give = (remaining + 1) // 2
            elif cap == "rest":
                give = remaining
            else:
                give = min(cap, remaining)
            give = min(give, left)
            fills[i] += give
            left -= give
    return fills
