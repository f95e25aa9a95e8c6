"""A whole ST5001 name-day built from the documented layout (docs/reference/krx-data-formats.md:
1), with its embedded book columns filled by a plain-Python reference book of its own.

The day: an opening call auction (MKTSTAT_TP_CD 10) of limit and market orders, some
cancelled or modified; continuous trading (40) with resting and marketable limit orders,
market orders, full and partial cancels and modifies; a closing call auction (50). Each
row's columns 11-30 (best 5 asks, then bids, price and size alternating) and 44/45 (the
totals) show the reference book AFTER the row's event; column 42 (예상체결가격) carries the
reference's indicative uncross price during a call auction.

The reference book shares no code with the loader: dicts of FIFO lists, its own walk and its
own single-price uncross (maximum volume, then the price closest to the reference; price
then time priority, market orders first). Columns the loader does not read are filled with
neutral values: REGUL_OFFHR_TP_CD 1, BLKTRD_TP_CD 0, ORD_TP_CD 2 (limit; 1 for a market
order), ORD_COND_CD 0, INVST_TP_CD 8000, member, branch and flags 0, 회원사주문시각 =
ORD_ACPT_TM, 시장구분코드 1, and 0 for the day's figures the loader does not check.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

ISIN = "KR7009620006"
DAY = 20171030
TICK = 50  # KOSPI before 2023-01-25, 10,000-50,000 won (docs/reference/krx.md: tick size)
BASE = 19_550
ASK, BID = 1, 2  # ASKBID_TP_CD


class ReferenceBook:
    """Price levels of FIFO queues per side, plus the market orders of a call auction."""

    def __init__(self) -> None:
        self.levels = {ASK: {}, BID: {}}  # price -> list of [order no, qty]
        self.market = {ASK: [], BID: []}  # [order no, qty] waiting in a call auction
        self.where = {}  # order no -> (side, price or None)

    def add(self, side: int, price: int | None, no: int, qty: int) -> None:
        if price is None:
            self.market[side].append([no, qty])
        else:
            self.levels[side].setdefault(price, []).append([no, qty])
        self.where[no] = (side, price)

    def rest_of(self, no: int) -> int:
        side, price = self.where[no]
        queue = self.market[side] if price is None else self.levels[side][price]
        return next(q for n, q in queue if n == no)

    def take(self, no: int, qty: int) -> None:
        side, price = self.where[no]
        queue = self.market[side] if price is None else self.levels[side][price]
        for entry in queue:
            if entry[0] == no:
                entry[1] -= qty
                if entry[1] == 0:
                    queue.remove(entry)
                    del self.where[no]
                break
        if price is not None and not queue:
            del self.levels[side][price]

    def best(self, side: int) -> int | None:
        prices = self.levels[side]
        if not prices:
            return None
        return min(prices) if side == ASK else max(prices)

    def walk(self, side: int, limit: int | None, qty: int) -> tuple[int, int | None]:
        """An aggressor on ``side`` takes the other side up to ``limit`` (None: any price)."""
        other = ASK if side == BID else BID
        filled, last = 0, None
        while qty > 0:
            p = self.best(other)
            if p is None or (limit is not None and (p > limit if side == BID else p < limit)):
                break
            no, rest = self.levels[other][p][0]
            q = min(rest, qty)
            self.take(no, q)
            qty -= q
            filled += q
            last = p
        return filled, last

    def uncross(self, reference: int) -> tuple[int | None, int]:
        """The single-price auction's price (max volume, then closest to ``reference``) and
        volume, without changing the book."""
        bids = [(p, q) for p, queue in self.levels[BID].items() for _, q in queue]
        asks = [(p, q) for p, queue in self.levels[ASK].items() for _, q in queue]
        mb = sum(q for _, q in self.market[BID])
        ma = sum(q for _, q in self.market[ASK])
        best_v, best = 0, []
        for p in sorted({p for p, _ in bids + asks}):
            v = min(mb + sum(q for b, q in bids if b >= p), ma + sum(q for a, q in asks if a <= p))
            if v > best_v:
                best_v, best = v, [p]
            elif v == best_v and v > 0:
                best.append(p)
        if best_v == 0:
            return None, 0
        return min(max(reference, best[0]), best[-1]), best_v

    def execute_uncross(self, reference: int) -> int | None:
        price, volume = self.uncross(reference)
        if price is not None:
            for side in (BID, ASK):
                left = volume
                queue = [e[0] for e in self.market[side]]
                prices = sorted(self.levels[side], reverse=(side == BID))
                queue += [no for p in prices
                          if (p >= price if side == BID else p <= price)
                          for no, _ in self.levels[side][p]]
                for no in queue:
                    if left == 0:
                        break
                    q = min(self.rest_of(no), left)
                    self.take(no, q)
                    left -= q
        for side in (BID, ASK):  # market orders left over are dropped
            for no, q in list(self.market[side]):
                self.take(no, q)
        return price

    def shown(self) -> list[int]:
        """Columns 11-30 and 44, 45: best 5 asks and bids (price, size), the totals."""
        out = []
        for side in (ASK, BID):
            prices = sorted(self.levels[side], reverse=(side == BID))[:5]
            for k in range(5):
                if k < len(prices):
                    out += [prices[k], sum(q for _, q in self.levels[side][prices[k]])]
                else:
                    out += [0, 0]
        totals = [sum(q for queue in self.levels[s].values() for _, q in queue)
                  for s in (ASK, BID)]
        return out + totals

    def live(self) -> list[int]:
        return sorted(self.where)


def _tm(seconds: float) -> int:
    """HHMMSSmmm as the file writes it (no leading zero before 10:00)."""
    ms = round(seconds * 1000)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return ((h * 100 + m) * 100 + s) * 1000 + ms


def _row(no: int, side: int, kind: int, tm: int, qty: int, price: int, parent: int,
         state: int, shown: list[int], expected: int, last: int) -> list:
    row = [0] * 61
    row[0], row[1], row[2], row[3], row[4] = ISIN, DAY, no, 1, 0
    row[5], row[6], row[7] = price, side, kind
    row[8], row[9], row[10] = (1 if price == 0 and kind != 3 else 2), 0, 8000
    row[11:31] = shown[:20]
    row[31], row[32], row[33] = tm, qty, price
    row[41], row[42] = tm, expected
    row[44], row[45] = shown[20], shown[21]
    row[46], row[47] = no, last
    row[54], row[55], row[57] = parent, 1, state
    return row


def name_day(seed: int = 7, continuous_rows: int = 2_400, call_rows: int = 150) -> list[list]:
    """The rows of one name-day, in time order (see the module docstring)."""
    rng = random.Random(seed)
    book = ReferenceBook()
    rows: list[list] = []
    no = 0
    last = 0
    expected = 0

    def near(p: int, k: int) -> int:
        return min(max(p + k * TICK, 15_000), 24_000)

    def call_event(t: float, state: int, reference: int) -> None:
        nonlocal no, expected
        no += 1
        live = book.live()
        u = rng.random()
        if live and u < 0.12:  # cancel, whole or part
            parent = rng.choice(live)
            rest = book.rest_of(parent)
            q = rest if rng.random() < 0.7 else rng.randint(1, rest)
            side = book.where[parent][0]
            book.take(parent, q)
            row = (no, side, 3, q, 0, parent)
        elif live and u < 0.2:  # modify to a new limit price
            parent = rng.choice(live)
            side, _ = book.where[parent]
            rest = book.rest_of(parent)
            q = rest if rng.random() < 0.6 else rng.randint(1, rest)
            price = near(BASE, rng.randint(-4, 4))
            book.take(parent, q)
            book.add(side, price, no, q)
            row = (no, side, 2, q, price, parent)
        else:
            side = rng.choice((ASK, BID))
            qty = rng.randint(1, 400)
            price = 0 if rng.random() < 0.08 else near(BASE, rng.randint(-5, 5))
            book.add(side, price or None, no, qty)
            row = (no, side, 1, qty, price, 0)
        expected = book.uncross(reference)[0] or 0
        rows.append(_row(row[0], row[1], row[2], _tm(t), row[3], row[4], row[5], state,
                         book.shown(), expected, last))

    # opening call auction, 08:30:00 to 08:59:59
    for j in range(call_rows):
        call_event(8.5 * 3600 + 1800 * (j + rng.random()) / call_rows, 10, BASE)
    last = book.execute_uncross(expected or BASE) or last

    # continuous trading, 09:00:01 to 15:19:59
    span = (15 * 3600 + 20 * 60) - (9 * 3600 + 2)
    for j in range(continuous_rows):
        t = 9 * 3600 + 1 + span * (j + rng.random()) / continuous_rows
        no += 1
        live = book.live()
        bid, ask = book.best(BID), book.best(ASK)
        mid = ((bid or ask or BASE) + (ask or bid or BASE)) // 2 // TICK * TICK
        u = rng.random()
        if live and u < 0.25:  # cancel, all or part; ORD_QTY 0 cancels the whole rest
            parent = rng.choice(live)
            side = book.where[parent][0]
            rest = book.rest_of(parent)
            q = rest if rng.random() < 0.8 else rng.randint(1, rest)
            qty = 0 if rng.random() < 0.1 else q
            q = rest if qty == 0 else q
            book.take(parent, q)
            kind, price, pno = 3, 0, parent
        elif live and u < 0.40:  # modify: a new price, all or part of the rest
            parent = rng.choice(live)
            side = book.where[parent][0]
            rest = book.rest_of(parent)
            q = rest if rng.random() < 0.7 else rng.randint(1, rest)
            price = near(mid, rng.randint(-3, 3))
            book.take(parent, q)
            filled, p = book.walk(side, price, q)
            if q - filled:
                book.add(side, price, no, q - filled)
            last = p or last
            kind, qty, pno = 2, q, parent
        elif u < 0.47:  # market order
            side = rng.choice((ASK, BID))
            qty = rng.randint(1, 300)
            _, p = book.walk(side, None, qty)
            last = p or last
            kind, price, pno = 1, 0, 0
        else:  # limit order, a few of them marketable
            side = rng.choice((ASK, BID))
            qty = rng.randint(1, 500)
            if rng.random() < 0.12:
                k = rng.randint(0, 2)
                price = near(ask or mid, k) if side == BID else near(bid or mid, -k)
            else:
                k = rng.randint(1, 6)
                price = near(bid or mid, -k + 1) if side == BID else near(ask or mid, k - 1)
                if side == BID and ask is not None and price >= ask:
                    price = ask - TICK
                if side == ASK and bid is not None and price <= bid:
                    price = bid + TICK
            filled, p = book.walk(side, price, qty)
            if qty - filled:
                book.add(side, price, no, qty - filled)
            last = p or last
            kind, pno = 1, 0
        rows.append(_row(no, side, kind, _tm(t), qty, price, pno, 40, book.shown(), 0, last))

    # closing call auction, 15:20:00 to 15:29:59
    expected = 0
    for j in range(call_rows):
        call_event(15 * 3600 + 1200 + 600 * (j + rng.random()) / call_rows, 50, last)
    return rows


def write(path: Path, rows: list[list], *, header: list[str] | None = None,
          encoding: str = "cp949") -> Path:
    """Write rows as the vendor does: comma-separated, CP949; ``.gz`` compressed."""
    lines = ([",".join(header)] if header else []) + [",".join(map(str, r)) for r in rows]
    data = ("\n".join(lines) + "\n").encode(encoding)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path
