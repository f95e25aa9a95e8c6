"""Single-price auctions on the book: gather the resting orders, apply an uncross.

The uncross itself (price, volume, who is filled) is the venue's rule and lives in
:func:`venues.krx.uncross.uncross_arrays`; these kernels only read the book into arrays in
priority order and write the outcome back. During an auction nothing matches, so the book
may be crossed; after the uncross it is not.

Priority order per side: better prices first; at one price the level's anonymous (L2)
quantity first (it was there before any order the simulation tracks), then the queued orders
in time order. An injected market order rests at the day's limit price, so in an auction it
ranks with the limit orders there (KRX would put it ahead of them; see docs/krx-venue.md).

What an uncross fills of an order:

- an injected order: its result (filled, notional, status, resting) is updated, as in
  continuous matching;
- a historical order: its size and its history size both drop by the fill, just as
  history's own uncross rows (flagged ``F_AUCTION``, skipped at the KRX venue) would have
  reduced it;
- anonymous L2 quantity: it drops by the fill, and the injected orders' share of the
  opposite side's executed volume is recorded in the level's consumption ledger (integer
  pro rata), so history's next level update does not restore liquidity the simulation used.
"""

from __future__ import annotations

import numpy as np

from venues.book import (
    CONSUMED,
    I_LAST,
    I_N,
    I_OFF,
    L_ANON,
    L_HEAD,
    L_LEDGER,
    L_SIZE,
    O_HIST,
    O_ID,
    O_LIVE,
    O_NEXT,
    O_OWNER,
    O_SIZE,
    R_FILLED,
    R_NOTIONAL,
    R_RESTING,
    R_STATUS,
    ii,
    level_add,
    level_price,
    li_,
    oi,
    release,
    ri,
    unlink,
)
from venues.codes import (
    BID,
    SRC_AUCTION,
    ST_FILLED,
    ST_PARTIAL,
)
from venues.kernel import kernel, njit_alloc
from venues.matching import (
    _fill,
    print_trade,
)

SIDE_NONE = 78  # ord("N"): an auction print has no aggressor


@njit_alloc
def gather(S, inst, side):
    """The resting orders of one side in priority order, as arrays: price, size, order row
    (-1 for a level's anonymous quantity), level row, owner (injected index, -1 history)."""
    off = S[ii(S, inst, I_OFF)]
    n = S[ii(S, inst, I_N)]
    base = off if side == BID else off + n
    count = 0
    for k in range(n):
        li = base + k
        if S[li_(S, li, L_SIZE)] > 0:
            if S[li_(S, li, L_ANON)] > 0:
                count += 1
            r = S[li_(S, li, L_HEAD)]
            while r >= 0:
                count += 1
                r = S[oi(S, r, O_NEXT)]
    px = np.empty(count, np.int64)
    sz = np.empty(count, np.int64)
    rows = np.empty(count, np.int64)
    lis = np.empty(count, np.int64)
    owners = np.empty(count, np.int64)
    j = 0
    for step in range(n):
        k = n - 1 - step if side == BID else step  # best price first
        li = base + k
        if S[li_(S, li, L_SIZE)] == 0:
            continue
        p = level_price(S, inst, k)
        a = S[li_(S, li, L_ANON)]
        if a > 0:
            px[j], sz[j], rows[j], lis[j], owners[j] = p, a, -1, li, -1
            j += 1
        r = S[li_(S, li, L_HEAD)]
        while r >= 0:
            px[j], sz[j], rows[j], lis[j] = p, S[oi(S, r, O_SIZE)], r, li
            owners[j] = S[oi(S, r, O_OWNER)]
            j += 1
            r = S[oi(S, r, O_NEXT)]
    return px, sz, rows, lis, owners


@kernel
def apply_fills(S, OUT, inst, side, ts, price, rows, lis, owners, fills, inj_num, inj_den):
    """Write one side's uncross fills back into the book and the fills report.
    ``inj_num / inj_den`` is the injected share of the opposite side's executed volume."""
    for k in range(rows.shape[0]):
        f = fills[k]
        if f <= 0:
            continue
        r = rows[k]
        li = lis[k]
        owner = owners[k]
        if r < 0:
            S[li_(S, li, L_ANON)] -= f
            level_add(S, inst, side, li, -f)
            if inj_den > 0:
                S[li_(S, li, L_LEDGER)] += f * inj_num // inj_den
            _fill(OUT, ts, inst, side, price, f, -1, -1, 0, SRC_AUCTION)
            continue
        _fill(OUT, ts, inst, side, price, f, owner, -1, S[oi(S, r, O_ID)], SRC_AUCTION)
        size = S[oi(S, r, O_SIZE)]
        if owner >= 0:
            S[ri(S, owner, R_FILLED)] += f
            S[ri(S, owner, R_NOTIONAL)] += f * price
            S[ri(S, owner, R_RESTING)] = size - f
            S[ri(S, owner, R_STATUS)] = ST_FILLED if f == size else ST_PARTIAL
        else:
            hist = S[oi(S, r, O_HIST)] - f
            S[oi(S, r, O_HIST)] = hist if hist > 0 else 0
        if f >= size:
            unlink(S, r, li)
            S[oi(S, r, O_SIZE)] = 0
            if owner < 0 and S[oi(S, r, O_HIST)] > 0:
                S[oi(S, r, O_LIVE)] = CONSUMED  # history still believes part of it rests
            else:
                release(S, r)
        else:
            S[oi(S, r, O_SIZE)] = size - f
            level_add(S, inst, side, li, -f)


@kernel
def print_uncross(S, OUT, inst, ts, price, volume):
    print_trade(OUT, ts, inst, price, volume, SIDE_NONE, SRC_AUCTION)
    S[ii(S, inst, I_LAST)] = price

