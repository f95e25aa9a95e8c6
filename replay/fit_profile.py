"""A synthetic flow's book shape fitted from a recorded book (docs/synthetic-tapes.md:
anchored tapes, fitting the profile): the median spread in ticks and the median depth at
each level of a loaded L2 or L3 tape (a KIS H0STASP0 recording, a KRX order file), read
from the book after every complete packet (:func:`replay.bookview.book_levels`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from replay.bookview import book_levels
from replay.synth import Profile
from replay.tape import Events, InstrumentTable
from venues.krx.ticks import tick_size


@dataclass(frozen=True)
class BookFit:
    """What a recorded book says about the flow's shape: ``spread_ticks`` the median spread
    (in the instrument's ticks at the bid), ``depth`` the median size resting at level k
    (k = 0 the best), bids and asks together, over ``snapshots`` two-sided books."""

    symbol: str
    snapshots: int
    spread_ticks: float
    depth: tuple[float, ...]


def fit_book(chunks: Iterable[Events], instruments: InstrumentTable, instrument_id: int,
             depth: int = 10) -> BookFit:
    """Median spread in ticks and median depth per level of one instrument of a loaded
    tape, over the books after every packet with both sides present. Ticks are the KRX
    table's on XKRX, else the instrument's ``tick_units``. Raises ValueError when the tape
    has no two-sided book of that instrument."""
    inst = instruments[instrument_id]
    batches = [b for b in book_levels(chunks, instruments, depth=depth)]
    table = pa.Table.from_batches(batches) if batches else None
    if table is None or table.num_rows == 0:
        raise ValueError(f"{inst.symbol}: the tape holds no book to fit")
    frame = table.to_pandas()
    frame = frame[(frame["instrument"] == instrument_id) & (frame["bid_sz_0"] > 0)
                  & (frame["ask_sz_0"] > 0)]
    if frame.empty:
        raise ValueError(f"{inst.symbol}: no two-sided book on the tape to fit a profile to")
    scale = 10 ** inst.price_decimals
    bid = np.rint(frame["bid_px_0"].to_numpy() * scale).astype(np.int64)
    ask = np.rint(frame["ask_px_0"].to_numpy() * scale).astype(np.int64)
    if inst.venue == "XKRX":
        ticks = np.asarray(tick_size(bid, market=inst.market or "KOSPI"), np.int64)
    else:
        ticks = np.full(len(bid), max(inst.tick_units, 1), np.int64)
    spread = (ask - bid) / ticks
    levels = []
    for k in range(depth):
        sizes = np.concatenate([frame[f"bid_sz_{k}"].to_numpy(),
                                frame[f"ask_sz_{k}"].to_numpy()]).astype(np.float64)
        levels.append(float(np.median(sizes)))
    return BookFit(symbol=inst.symbol, snapshots=len(frame),
                   spread_ticks=float(np.median(spread)), depth=tuple(levels))


def fit_profile(base: Profile, fit: BookFit) -> Profile:
    """``base`` with its book shaped like the fitted one: ``placement_weights`` proportional
    to the fitted depth per level (a limit order rests ``d`` ticks from the opposite best
    with the weight of level ``d - 1``; with a one-tick spread level k is ``k + 1`` ticks
    from the opposite best), shifted out by the median spread beyond one tick (those ticks
    get no weight). The sizes keep the base's: an anchored tape scales them to the day's
    volume (replay.anchor.day_params)."""
    gap = max(int(round(fit.spread_ticks)) - 1, 0)
    weights = [0.0] * gap + [max(d, 0.0) for d in fit.depth]
    if sum(weights) <= 0:
        raise ValueError(f"{fit.symbol}: the fitted book has no depth")
    return replace(base, name=f"{base.name}-fit-{fit.symbol}",
                   placement_weights=tuple(round(w / max(weights), 6) for w in weights))
