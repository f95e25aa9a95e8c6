"""An obviously-correct pure-Python book with the replay's absolute-mode semantics.

``cross_all``: a historical order (or an L2 level's gain) that crosses the opposite side
executes against all of it, not only injected orders, as in the re-centring modes and at
the KRX venue (docs/replay-modes.md: crossing history).

Slow and simple on purpose: dicts and lists, no incremental best-price tracking. The
compiled book must agree with it after every event (tests/test_book_properties.py).
"""

from __future__ import annotations

from dataclasses import dataclass

BID, ASK = 66, 65


@dataclass
class Order:
    oid: int
    side: int
    price: int
    size: int  # what the simulation has left
    hist: int  # what history believes the order has
    owner: int  # -1 historical, else the injected order's index


class ReferenceBook:
    def __init__(self, cross_all: bool = False) -> None:
        self.cross_all = cross_all
        self.orders: dict[int, Order] = {}
        self.queues: dict[tuple[int, int], list[int]] = {}  # (side, price) -> FIFO of oids
        self.anon: dict[tuple[int, int], int] = {}
        self.ledger: dict[tuple[int, int], int] = {}
        self.fills: list[tuple[int, int, int, int]] = []  # (aggressor side, price, size, maker)
        self.noops = 0
        self.unknown = 0
        self.dropped = 0
        self.results: dict[int, int] = {}  # injected index -> filled

    # -- views --------------------------------------------------------------------------
    def level_size(self, side: int, price: int) -> int:
        q = self.queues.get((side, price), [])
        return self.anon.get((side, price), 0) + sum(self.orders[o].size for o in q)

    def levels(self, side: int, depth: int) -> list[tuple[int, int]]:
        prices = {p for (s, p) in list(self.queues) + list(self.anon) if s == side}
        out = [(p, self.level_size(side, p)) for p in prices]
        out = [x for x in out if x[1] > 0]
        out.sort(key=lambda x: -x[0] if side == BID else x[0])
        return out[:depth]

    # -- primitives ---------------------------------------------------------------------
    def _unqueue(self, o: Order) -> None:
        q = self.queues[(o.side, o.price)]
        q.remove(o.oid)

    def _take(self, aggressor: int, limit: int | None, qty: int, taker: int,
              exclude: int | None = None, only_injected: bool = False) -> int:
        maker_side = ASK if aggressor == BID else BID
        filled = 0
        while qty > 0:
            candidates = [p for p, s in self.levels(maker_side, 10**9)]
            if aggressor == BID:
                candidates = [p for p in candidates if limit is None or p <= limit]
            else:
                candidates = [p for p in candidates if limit is None or p >= limit]
            progressed = False
            for price in candidates:  # best first
                key = (maker_side, price)
                if not only_injected and self.anon.get(key, 0) > 0:
                    take = min(qty, self.anon[key])
                    self.anon[key] -= take
                    self.ledger[key] = self.ledger.get(key, 0) + take
                    self.fills.append((aggressor, price, take, -1))
                    qty -= take
                    filled += take
                    progressed = True
                for oid in list(self.queues.get(key, [])):
                    if qty == 0:
                        break
                    o = self.orders[oid]
                    if oid == exclude or (only_injected and o.owner < 0):
                        continue
                    take = min(qty, o.size)
                    o.size -= take
                    qty -= take
                    filled += take
                    progressed = True
                    self.fills.append((aggressor, price, take, o.owner))
                    if o.owner >= 0:
                        self.results[o.owner] = self.results.get(o.owner, 0) + take
                    if o.size == 0:
                        self._unqueue(o)
                        if o.owner >= 0 or o.hist == 0:
                            del self.orders[oid]
                if qty == 0:
                    break
            if not progressed:
                break
        return filled

    # -- history ------------------------------------------------------------------------
    def apply(self, action: str, side: int, price: int, size: int, oid: int) -> None:
        if action == "R":
            self.__init__(self.cross_all)
            return
        if action == "T":
            return
        if oid == 0:
            key = (side, price)
            if action == "F":
                return
            hist_now = self.anon.get(key, 0) + self.ledger.get(key, 0)
            new_hist = {"D": 0, "C": max(hist_now - size, 0)}.get(action, size)
            if self.cross_all and action not in ("C", "D") and new_hist > hist_now:
                took = self._take(side, price, new_hist - hist_now, -1)
                self.ledger[key] = self.ledger.get(key, 0) + took
            led = self.ledger.get(key, 0)
            self.anon[key] = max(new_hist - led, 0)
            self.ledger[key] = min(led, new_hist)
            return
        o = self.orders.get(oid)
        if action == "A":
            if o is not None:
                return
            took = self._cross(side, price, size)
            o = Order(oid, side, price, size - took, size, -1)
            self.orders[oid] = o
            if o.size > 0:
                self.queues.setdefault((side, price), []).append(oid)
            return
        if o is None:
            self.unknown += 1
            return
        queued = o.size > 0
        if action in ("C", "D"):
            take = min(size if action == "C" else o.hist, o.hist)
            if not queued:
                self.noops += 1
            else:
                cut = min(take, o.size) if action == "C" else o.size
                o.size -= cut
                if o.size == 0:
                    self._unqueue(o)
            o.hist -= take
            if action == "D" or o.hist == 0:
                if o.size > 0:
                    self._unqueue(o)
                del self.orders[oid]
            return
        if action == "M":
            consumed = o.hist - o.size
            new_size = max(size - consumed, 0)
            if price == o.price and new_size <= o.size and queued:
                o.size = new_size
                if new_size == 0:
                    self._unqueue(o)
            else:
                if queued:
                    self._unqueue(o)
                o.price, o.side = price, side
                took = self._cross(side, price, new_size) if new_size > 0 else 0
                o.size = new_size - took
                if o.size > 0:
                    self.queues.setdefault((side, price), []).append(oid)
            o.hist = size
            if size == 0:
                if o.size > 0:
                    self._unqueue(o)
                del self.orders[oid]
            return
        if action == "F":
            if o.size < size:
                deficit = size - o.size
                aggressor = ASK if o.side == BID else BID
                got = self._take(aggressor, price, deficit, -1, exclude=oid)
                self.dropped += deficit - got
            return
        raise ValueError(action)

    def _cross(self, side: int, price: int, size: int) -> int:
        return self._take(side, price, size, -1, only_injected=not self.cross_all)

    # -- injected orders ----------------------------------------------------------------
    def inject(self, index: int, kind: str, side: int, price: int, size: int) -> None:
        limit = None if kind == "market" else price
        if kind == "fok":
            maker = ASK if side == BID else BID
            avail = sum(s for p, s in self.levels(maker, 10**9)
                        if (p <= price if side == BID else p >= price))
            if avail < size:
                return
        filled = self._take(side, limit, size, index)
        self.results[index] = self.results.get(index, 0) + filled
        if kind == "limit" and filled < size:
            oid = (1 << 62) + index
            self.orders[oid] = Order(oid, side, price, size - filled, 0, index)
            self.queues.setdefault((side, price), []).append(oid)
