"""A market day from daily bars: many names on one anchored tape, moving together.

:func:`plan_market` selects the names of a real day (or days) from daily bars of any
layout :func:`replay.loaders.daily_bars.read_bars` reads: all of them, ``codes``, or the
``top`` N by turnover (close x volume on the first day). A name the bars cannot anchor is
left out and *counted*, with the reason (:attr:`MarketPlan.dropped`): a name without a
trade on the first day and none before it (no base price), without a bar on every
selected day, or whose bar is inconsistent with KRX rules (a price outside the day's
limits of the previous close: an adjusted series). Nothing is left out silently.

:func:`synthesize_market` makes the tape: every name anchored to its own open, high, low,
close and volume (:mod:`replay.anchor`), with

- **common timing**: a latent series per name on a one-minute grid,
  ``X = beta M + gamma S_sector + sqrt(1 - beta^2 - gamma^2) e``: the market's ``M`` a
  random walk of unit steps drawn once per day from the seed, each sector's ``S`` and the
  name's own ``e`` Ornstein-Uhlenbeck series of unit steps reverting in ``REVERSION_MIN``
  (30) minutes, so a name departs from the market and comes back rather than drifting
  away from it. The lowest and highest points of ``X`` over the session time the name's
  low and high, and the value follows ``X``'s wiggles between its knots (scaled to
  ``SHAPE_SHARE`` of the day's range per unit of X's range). A market-wide fall thus
  happens at about the same time across names. With ``knots`` (an index path: per day,
  ``(ns after 09:00, return vs prior close)`` waypoints), ``M`` is the piecewise-linear
  path through them, scaled to the walk's range, plus a Brownian bridge pinned to zero at
  every knot (``KNOT_NOISE`` of a unit walk), so the market's low and its fall come when
  the waypoints say (the names still open, close and touch their own high and low: only
  their timing follows); the extremes' window then reaches ``KNOT_EXTREME_END`` and the
  value follows ``X``'s wiggles whole (a share of 1, not ``SHAPE_SHARE``). The loadings
  (default 0.6 and 0.4) and the reversion are parameters: no source in
  docs/reference/krx.md gives intraday correlations of Korean names, so the defaults are
  an assumption; a sector is a name's ``sector`` column in the bars (none: each name its
  own, i.e. no common sector);
- **events by turnover**: name ``i`` gets ``rate x turnover_i / sum(turnover)`` decisions a
  second in all (``rate`` the market's total), at least ``MIN_RATE`` and at most
  ``MAX_RATE``, so a large cap's book is as deep and busy as the default anchored tape's
  and a small one's thin.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from replay.anchor import (
    DEFAULT_EVENT_RATE,
    AnchorPlan,
    DayPath,
    plan_from_bars,
    synthesize_from_bars,
)
from replay.tape import Events, InstrumentTable, write_tape_chunks
from venues.krx.session import CLOSE_AUCTION, OPEN, seoul_ns

#: Loadings of a name's latent series on the market and on its sector (an assumption; see
#: the module docstring), and how fast a name's or a sector's own departure reverts.
BETA = 0.6
GAMMA = 0.4
REVERSION_MIN = 30.0
#: The value's wiggles between its knots per unit of the latent series' range, as a share
#: of the day's range.
SHAPE_SHARE = 0.5
#: Decisions a second of the whole market by default, and the least and most one name gets.
MARKET_RATE = 400.0
MIN_RATE = 0.02
MAX_RATE = DEFAULT_EVENT_RATE
#: The grid of the latent series (ns) and the window the extremes fall in (shares of the
#: session from 09:00: not in its first minutes, and leaving room for the close's approach).
GRID_NS = 60 * 10**9
EXTREME_WINDOW = (0.02, 0.82)
#: With index knots: the bridge's noise (a share of a unit-step walk), the knot path's range
#: in unit steps per sqrt(grid points), and the end of the extremes' window.
KNOT_NOISE = 0.3
KNOT_RANGE = 2.0
KNOT_EXTREME_END = 0.93
#: Rows a day of the market may hold in memory while it is merged (about 60 bytes a row).
MAX_MARKET_DAY_ROWS = 30_000_000


@dataclass(frozen=True)
class MarketPlan:
    """The names of a market tape (an :class:`replay.anchor.AnchorPlan`), their event rates
    and sectors, and the names left out with why (``dropped``: code, reason)."""

    plan: AnchorPlan
    rates: tuple[float, ...]
    sectors: tuple[str, ...]
    turnover: tuple[float, ...]
    dropped: tuple[tuple[str, str], ...] = ()
    asked: int = 0
    notes: dict = field(default_factory=dict)

    @property
    def names(self):
        return self.plan.names


def _turnover(bars: pd.DataFrame, day: date) -> pd.Series:
    on = bars[bars["date"] == day]
    return (on["close"].astype(float) * on["volume"].astype(float)).groupby(on["code"]).sum()


def plan_market(bars: pd.DataFrame, start: date, *, days: int = 1,
                codes: Sequence[str] | None = None, top: int | None = None,
                rate: float = MARKET_RATE, source: str | None = None,
                listing: pd.DataFrame | None = None,
                listing_missing: str = "raise") -> MarketPlan:
    """The names and days of a market tape (see the module docstring). ``start`` is the
    first day (it must be in the bars), ``days`` how many of the bars' days from it;
    ``codes`` or ``top`` select names (neither: every name of the bars); ``rate`` is the
    market's decisions a second in all. ``listing`` (replay.loaders.listing.read_listing)
    gives the selected names their market and shares; a selected code it lacks is an
    error, or with ``listing_missing="keep"`` stays KOSPI with shares 0 (listed in
    ``notes["listing_missing"]``). Raises ValueError for a selection the bars cannot give
    (a code not in them, a day not in them, no name left)."""
    source = source or bars.attrs.get("source", "bars")
    if codes and top:
        raise ValueError("give codes or top, not both")
    if top is not None and top < 1:
        raise ValueError(f"--top {top}: must be at least 1")
    if not rate > 0 or not math.isfinite(rate):
        raise ValueError(f"--rate {rate}: must be a positive number of decisions a second")
    frame = bars.copy()
    frame["code"] = frame["code"].astype(str)
    frame["date"] = pd.to_datetime(frame["date"]).dt.date
    all_days = sorted(set(frame["date"]))
    if start not in all_days:
        shown = ", ".join(map(str, all_days[:8])) + (" ..." if len(all_days) > 8 else "")
        raise ValueError(f"{source}: no bars on {start} (the file's days: {shown})")
    chosen = [d for d in all_days if d >= start][:days]
    if len(chosen) < days:
        raise ValueError(f"{source}: {days} day(s) from {start} asked, the file has "
                         f"{len(chosen)} ({chosen[0]} to {chosen[-1]})")
    known = list(dict.fromkeys(frame["code"]))
    turnover = _turnover(frame, start)
    if codes:
        wanted = list(dict.fromkeys(str(c).strip() for c in codes))
        for c in wanted:
            if c not in known:
                raise ValueError(f"{source}: code {c} is not in the file")
    elif top:
        wanted = list(turnover.sort_values(ascending=False, kind="stable").index[:top])
    else:
        wanted = sorted(known)
    notes: dict = {}
    if listing is not None:
        from replay.loaders.listing import with_listing

        picked = frame[frame["code"].isin(wanted)].reset_index(drop=True)
        picked.attrs["source"] = source
        frame = with_listing(picked, listing, missing=listing_missing)
        notes["listing_missing"] = list(frame.attrs.get("listing_missing", []))
        notes["listing"] = str(listing.attrs.get("source", "listing"))
    dropped: list[tuple[str, str]] = []
    keep_rows, plans = [], []
    groups = {c: g for c, g in frame.groupby("code", sort=False)}
    for code in wanted:
        rows = groups[code]
        on = set(rows["date"])
        missing = [d for d in chosen if d not in on]
        if missing:
            dropped.append((code, f"no bar on {missing[0]}"))
            continue
        try:  # each name planned on its own: one bad series leaves only itself out
            plans.append(plan_from_bars(rows, source=source, start=start, days=days))
        except ValueError as e:
            dropped.append((code, str(e).removeprefix(f"{source}: ").removeprefix(
                f"{code} ")))
            continue
        keep_rows.append(rows)
    if not keep_rows:
        raise ValueError(f"{source}: none of the {len(wanted)} selected names can be anchored "
                         f"from {start} (first reason: {dropped[0][1] if dropped else '-'})")
    kept = pd.concat(keep_rows, ignore_index=True)
    # every kept name has a bar on each chosen day, so the names' plans join into one
    plan = AnchorPlan(source=source, names=tuple(p.names[0] for p in plans),
                      rounded=sum(p.rounded for p in plans),
                      rounded_rows=tuple(r for p in plans for r in p.rounded_rows))
    turn = np.array([float(turnover.get(n.code, 0.0)) for n in plan.names])
    rates = market_rates(turn, rate)
    if "sector" in kept.columns:
        sec = kept.groupby("code")["sector"].first().astype(str)
        sectors = tuple(str(sec.get(n.code, n.code)) for n in plan.names)
    else:
        sectors = tuple(n.code for n in plan.names)
    return MarketPlan(plan=plan, rates=tuple(float(r) for r in rates), sectors=sectors,
                      turnover=tuple(float(t) for t in turn), dropped=tuple(dropped),
                      asked=len(wanted), notes=notes)


def market_rates(turnover: np.ndarray, rate: float) -> np.ndarray:
    """Each name's decisions a second: ``rate`` split in proportion to turnover, kept in
    [MIN_RATE, MAX_RATE] (a name without turnover gets MIN_RATE)."""
    t = np.asarray(turnover, np.float64)
    total = t.sum()
    share = t / total if total > 0 else np.full(len(t), 1.0 / max(len(t), 1))
    return np.clip(rate * share, MIN_RATE, MAX_RATE)


IndexKnots = Mapping[date, Sequence[tuple[int, float]]]


def parse_index_knot(text: str) -> tuple[date, int, float]:
    """``DATE,HH:MM:SS,RET`` (RET a fraction vs the prior close, e.g. -0.0242) as (day, ns
    after 09:00, return); ValueError naming the field otherwise."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise ValueError(f"--index-knot {text!r}: give DATE,HH:MM:SS,RET")
    try:
        day = date.fromisoformat(parts[0])
    except ValueError:
        raise ValueError(f"--index-knot {text!r}: {parts[0]!r} is not a date") from None
    try:
        hh, mm, *ss = (int(x) for x in parts[1].split(":"))
        secs = hh * 3600 + mm * 60 + (ss[0] if ss else 0) - 9 * 3600
    except ValueError:
        raise ValueError(f"--index-knot {text!r}: {parts[1]!r} is not HH:MM:SS") from None
    if not 0 <= secs <= 6 * 3600 + 20 * 60:
        raise ValueError(f"--index-knot {text!r}: {parts[1]} is outside 09:00-15:20")
    try:
        ret = float(parts[2])
    except ValueError:
        raise ValueError(f"--index-knot {text!r}: {parts[2]!r} is not a number") from None
    if not -0.5 < ret < 0.5:
        raise ValueError(f"--index-knot {text!r}: return {ret} is a fraction (-0.0242 "
                         "for -2.42%), within (-0.5, 0.5)")
    return day, secs * 10**9, ret


def group_knots(items: Sequence[tuple[date, int, float]],
                ) -> dict[date, list[tuple[int, float]]]:
    """Knots by day, in time order (a time given twice on a day is an error)."""
    out: dict[date, list[tuple[int, float]]] = {}
    for day, t, r in items:
        out.setdefault(day, []).append((int(t), float(r)))
    for day, ks in out.items():
        ks.sort()
        ts = [t for t, _ in ks]
        if len(set(ts)) != len(ts):
            raise ValueError(f"index knots of {day}: a time is given twice")
    return out


def knot_series(grid: np.ndarray, knots: Sequence[tuple[int, float]],
                rng: np.random.Generator) -> np.ndarray:
    """The market factor of a day with index knots (module docstring): the linear path
    through the knots (flat before the first and after the last), scaled to KNOT_RANGE
    unit steps per sqrt(len(grid)), plus a Brownian bridge pinned at the knots."""
    kt = np.array([t for t, _ in knots], np.float64)
    kv = np.array([r for _, r in knots], np.float64)
    g = grid.astype(np.float64)
    base = np.interp(g, kt, kv)
    span = float(base.max() - base.min())
    scale = KNOT_RANGE * math.sqrt(len(grid)) / span if span > 0 else 0.0
    walk = np.concatenate([[0.0], np.cumsum(rng.standard_normal(len(grid) - 1))])
    # pin the walk to zero at each knot (and the ends): a bridge between the pins
    pins = np.unique(np.concatenate([[g[0]], np.clip(kt, g[0], g[-1]), [g[-1]]]))
    pinned = np.interp(g, pins, np.interp(pins, g, walk))
    return scale * base + KNOT_NOISE * (walk - pinned)


def market_paths(mplan: MarketPlan, seed: int, *, beta: float = BETA,
                 gamma: float = GAMMA, knots: IndexKnots | None = None,
                 ) -> Callable[[int, int], DayPath | None]:
    """``paths(k, i)``: the :class:`DayPath` of name ``k`` on day ``i`` from the factor
    model of the module docstring, seeded from ``seed`` (the market's and sectors' series
    from (seed, day, 1) and (seed, day, 2, sector), the name's own from (seed, day, 3,
    k)). ``knots`` (by day) give the market factor an index path (module docstring).
    Raises ValueError for loadings outside [0, 1] or with beta^2 + gamma^2 > 1, or for
    knots on a day the plan lacks."""
    if not (0.0 <= beta <= 1.0 and 0.0 <= gamma <= 1.0 and beta**2 + gamma**2 <= 1.0):
        raise ValueError(f"loadings beta {beta}, gamma {gamma}: each in [0, 1] and "
                         "beta^2 + gamma^2 at most 1")
    own = math.sqrt(max(0.0, 1.0 - beta**2 - gamma**2))
    names = mplan.plan.names
    knots = dict(knots or {})
    plan_days = {d.day for d in names[0].days}
    for day in knots:
        if day not in plan_days:
            raise ValueError(f"index knots on {day}: not a day of the tape "
                             f"({', '.join(str(d) for d in sorted(plan_days))})")
    sector_ids = {s: j for j, s in enumerate(dict.fromkeys(mplan.sectors))}
    shared = {s for s in mplan.sectors if mplan.sectors.count(s) > 1}
    cache: dict[int, tuple[np.ndarray, np.ndarray, dict]] = {}

    def walk(key: list[int], n: int) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))
        return np.concatenate([[0.0], np.cumsum(rng.standard_normal(n - 1))])

    a = math.exp(-GRID_NS / (REVERSION_MIN * 60e9))

    def wander(key: list[int], n: int) -> np.ndarray:
        # an Ornstein-Uhlenbeck series of unit steps reverting in REVERSION_MIN minutes:
        # a name's (or sector's) own departure from the market, which does not accumulate
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(key)))
        z = rng.standard_normal(n)
        x = np.empty(n)
        x[0] = 0.0
        for j in range(1, n):
            x[j] = a * x[j - 1] + z[j]
        return x

    def day_series(i: int):
        if i not in cache:
            day = names[0].days[i].day
            session = seoul_ns(day, CLOSE_AUCTION) - seoul_ns(day, OPEN)
            grid = np.arange(0, session + 1, GRID_NS, dtype=np.int64)
            if day in knots:
                rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
                    [seed, day.toordinal(), 1])))
                m = knot_series(grid, knots[day], rng)
            else:
                m = walk([seed, day.toordinal(), 1], len(grid))
            secs = {s: wander([seed, day.toordinal(), 2, sector_ids[s]], len(grid))
                    for s in shared}
            cache.clear()  # one day at a time
            cache[i] = (grid, m, secs)
        return cache[i]

    def paths(k: int, i: int) -> DayPath | None:
        bar = names[k].days[i]
        if not bar.traded or bar.high == bar.low:
            return None
        grid, m, secs = day_series(i)
        s = secs.get(mplan.sectors[k])
        x = beta * m + own * wander([seed, bar.day.toordinal(), 3, k], len(grid))
        x = x + gamma * s if s is not None else x + gamma * wander(
            [seed, bar.day.toordinal(), 4, k], len(grid))
        end = KNOT_EXTREME_END if bar.day in knots else EXTREME_WINDOW[1]
        lo, hi = (int(EXTREME_WINDOW[0] * grid[-1]), int(end * grid[-1]))
        win = (grid >= lo) & (grid <= hi)
        idx = np.flatnonzero(win)
        t_high = int(grid[idx[np.argmax(x[win])]])
        t_low = int(grid[idx[np.argmin(x[win])]])
        span = float(x.max() - x.min())
        share = 1.0 if bar.day in knots else SHAPE_SHARE  # an index path: followed whole
        scale = share * (bar.high - bar.low) / span if span > 0 else 0.0
        return DayPath(high_t=t_high, low_t=t_low, grid_t=grid, shape=x, scale=scale)

    return paths


def synthesize_market(mplan: MarketPlan, seed: int, *, beta: float = BETA,
                      gamma: float = GAMMA, knots: IndexKnots | None = None,
                      progress: Callable[[int], None] | None = None,
                      max_day_rows: int = MAX_MARKET_DAY_ROWS,
                      ) -> Iterator[tuple[Events, InstrumentTable]]:
    """The market tape of ``mplan``, one day at a time (see the module docstring)."""
    return synthesize_from_bars(mplan.plan, seed, rates=mplan.rates,
                                paths=market_paths(mplan, seed, beta=beta, gamma=gamma,
                                                   knots=knots),
                                progress=progress, max_day_rows=max_day_rows)


def write_market_tape(path: str | Path, mplan: MarketPlan, seed: int, *, beta: float = BETA,
                      gamma: float = GAMMA, knots: IndexKnots | None = None,
                      progress: Callable[[int], None] | None = None) -> Path:
    """Stream :func:`synthesize_market` into a Parquet tape at ``path`` (session seed
    ``seed``; the instrument table is the first day's)."""
    chunks = synthesize_market(mplan, seed, beta=beta, gamma=gamma, knots=knots,
                               progress=progress)
    return write_tape_chunks(path, chunks, seed, "the market plan makes an empty tape",
                             market=json.dumps(describe(mplan, beta=beta, gamma=gamma,
                                                        knots=knots)))


def describe(mplan: MarketPlan, *, beta: float = BETA, gamma: float = GAMMA,
             knots: IndexKnots | None = None) -> dict:
    """What a market tape records of how it was made (the tape's ``cascade.market``)."""
    return {
        "source": mplan.plan.source, "days": [str(d) for d in mplan.plan.days],
        "names": len(mplan.names), "asked": mplan.asked,
        "dropped": [{"code": c, "reason": r} for c, r in mplan.dropped],
        "rounded_prices": mplan.plan.rounded,
        "listing": mplan.notes.get("listing"),
        "listing_missing": mplan.notes.get("listing_missing", []),
        "factor": {"beta": beta, "gamma": gamma, "grid_s": GRID_NS // 10**9,
                   "sectors": len(set(mplan.sectors)),
                   "extreme_window": list(EXTREME_WINDOW), "shape_share": SHAPE_SHARE,
                   "index_knots": {str(d): [[_clock(t), r] for t, r in ks]
                                   for d, ks in sorted((knots or {}).items())}},
        "rates": {"total": round(sum(mplan.rates), 6), "min": MIN_RATE, "max": MAX_RATE,
                  "rule": "market rate x turnover share, clipped to [min, max]"},
    }


def _clock(ns_after_open: int) -> str:
    s = 9 * 3600 + ns_after_open // 10**9
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


#: A synthetic market's names: daily volatility of the market factor and of a name's own
#: return (fractions), the share of names per sector, prices and turnover (log-uniform
#: and log-normal), all assumptions of the synthetic market (no source: a plausible shape).
SYNTH_MARKET_VOL = 0.012
SYNTH_OWN_VOL = 0.02
SYNTH_SECTORS = 10
SYNTH_PRICE = (1_000, 300_000)
SYNTH_TURNOVER_MEDIAN = 3e9  # won a day
SYNTH_TURNOVER_SIGMA = 1.5


def synthetic_market_bars(names: int, days: int, seed: int, *, start: date = date(2024, 1, 2),
                          shocks: dict[int, float] | None = None) -> pd.DataFrame:
    """Daily bars of a made-up market of ``names`` KOSPI names over ``days`` XKRX days from
    ``start``, in read_bars' layout (code, date, open, high, low, close, volume, change,
    market, shares, sector): each day's return is ``market + sector/2 + own`` (normal, with
    the SYNTH_* volatilities; ``shocks`` adds a market move on a day, 0 the first), the
    open a share of it, the range around open and close, volume from a log-normal turnover,
    prices on the tick grid and inside the daily limits. Seeded: same arguments, same bars.
    A market tape is then built from them as from real bars (:func:`plan_market`)."""
    from replay.anchor import _grid_round
    from venues.krx.calendar import trading_days
    from venues.krx.limits import price_limits

    if not 1 <= names <= 10_000:
        raise ValueError(f"--names {names}: between 1 and 10,000")
    if not 1 <= days <= 250:
        raise ValueError(f"--days {days}: between 1 and 250")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 5])))
    cal = trading_days(start, days)
    lo, hi = math.log(SYNTH_PRICE[0]), math.log(SYNTH_PRICE[1])
    price0 = np.exp(rng.uniform(lo, hi, names))
    turnover = SYNTH_TURNOVER_MEDIAN * np.exp(SYNTH_TURNOVER_SIGMA * rng.standard_normal(names))
    shares = np.round(turnover * 200 / price0).astype(np.int64) + 1_000
    sector = rng.integers(0, SYNTH_SECTORS, names)
    rows = []
    prev = [_grid_round(p, cal[0], "KOSPI") for p in price0]
    for d, day in enumerate(cal):
        m = SYNTH_MARKET_VOL * rng.standard_normal() + (shocks or {}).get(d, 0.0)
        s = SYNTH_MARKET_VOL * rng.standard_normal(SYNTH_SECTORS)
        own = SYNTH_OWN_VOL * rng.standard_normal(names)
        gap = rng.uniform(0.2, 0.6, names)
        wide = np.abs(SYNTH_OWN_VOL * rng.standard_normal((2, names)))
        for k in range(names):
            base = prev[k]
            lower, upper = price_limits(base, on=day, market="KOSPI")
            ret = m + 0.5 * s[sector[k]] + own[k]
            close = min(max(base * math.exp(ret), lower), upper)
            opn = min(max(base * math.exp(gap[k] * ret), lower), upper)
            high = min(max(opn, close) * (1 + wide[0, k]), upper)
            low = max(min(opn, close) * (1 - wide[1, k]), lower)
            px = {f: min(max(_grid_round(v, day, "KOSPI"), lower), upper)
                  for f, v in (("open", opn), ("high", high), ("low", low), ("close", close))}
            px["high"] = max(px.values())
            px["low"] = min(px.values())
            vol = max(1, int(turnover[k] * math.exp(0.3 * rng.standard_normal()) / px["close"]))
            rows.append((f"{900000 + k:06d}", pd.Timestamp(day), px["open"], px["high"],
                         px["low"], px["close"], vol, px["close"] / base - 1, "KOSPI",
                         int(shares[k]), f"S{sector[k]}"))
            prev[k] = px["close"]
    bars = pd.DataFrame(rows, columns=["code", "date", "open", "high", "low", "close",
                                       "volume", "change", "market", "shares", "sector"])
    bars.attrs["source"] = f"synthetic market ({names} names, seed {seed})"
    return bars


__all__ = ["BETA", "GAMMA", "MarketPlan", "describe", "group_knots", "knot_series",
           "market_paths", "market_rates", "parse_index_knot",
           "plan_market", "synthesize_market", "synthetic_market_bars", "write_market_tape"]
