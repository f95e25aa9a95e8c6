"""How much of an observed fall the forced sales made (docs/attribution.md).

An anchored tape reproduces the *observed* daily bars, which already hold whatever forced
selling happened. :func:`attribute` solves for the *exogenous* bars: the anchors whose tape,
replayed in relative mode with a population's forced sales, closes every name-day at its
observed close to within ``tolerance_ticks`` of the name's KRX tick. Each iteration
rebuilds the tape from the current exogenous bars (same builder, same seed: only the
anchors change) and replays it with the brokers; each name-day's exogenous close then moves
by a secant step on its own gap (slope kept in [0.5, 2], bracketed by the closes already
seen above and below the target, on the tick grid), its open kept and its high and low
widened to take the new close in (:func:`exogenous_plan`). The exogenous path replayed
*without* the forced sales is the counterfactual, and the share of a fall the forced sales
made is read from the two.

:class:`TapeRecipe` is what rebuilds a tape from its bars: the anchored plan of
``cascade data synth --anchor`` or the market plan of ``cascade market build``
(:func:`recipe_from_tape`, :func:`recipe_from_bars`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from replay.anchor import AnchorDay, AnchorPlan, _grid_round, plan_from_bars
from replay.runner import RunSpec, no_progress, run_tape
from venues.krx.limits import price_limits
from venues.krx.ticks import tick_size

#: Default tolerance: a name-day is converged when its simulated close is within this many
#: of its own KRX ticks (at the observed close) of the observed close.
TOLERANCE_TICKS = 1.0
#: Default cap on iterations (each rebuilds the tape and replays it).
MAX_ITER = 12
#: The secant slope (simulated close per won of exogenous close) is kept in this range;
#: relative mode moves the simulated close one for one with the anchor when the forced
#: sales do not change (docs/replay-modes.md), so the first step takes slope 1.
SLOPE_RANGE = (0.5, 2.0)


class AttributionError(ValueError):
    """The iteration did not converge: which name-days and by how much."""


# ---------------------------------------------------------------------------------------
# Rebuilding a tape from its bars.
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TapeRecipe:
    """The anchored plan a tape was built from and the builder's settings: with
    ``market`` (a :class:`replay.market.MarketPlan`) the tape is ``cascade market
    build``'s, else ``cascade data synth --anchor``'s (``profile``, ``event_rate``)."""

    plan: AnchorPlan
    seed: int
    market: Any = None
    profile: str | None = None
    event_rate: float | None = None
    beta: float = 0.6
    gamma: float = 0.4
    source: str = ""
    #: a market tape's index path (replay.market.group_knots), rebuilt with it
    knots: Any = None

    def with_plan(self, plan: AnchorPlan) -> TapeRecipe:
        return replace(self, plan=plan)

    def write(self, path: Path, progress: Callable[[int], None] | None = None) -> Path:
        """The tape of this recipe at ``path`` (the builder's own writer)."""
        if self.market is not None:
            from replay.market import write_market_tape

            return write_market_tape(path, replace(self.market, plan=self.plan), self.seed,
                                     beta=self.beta, gamma=self.gamma, knots=self.knots,
                                     progress=progress)
        from replay.anchor import write_anchored_tape

        return write_anchored_tape(path, self.plan, self.seed, self.profile,
                                   event_rate=self.event_rate, progress=progress)

    @property
    def builder(self) -> str:
        return "market" if self.market is not None else "anchor"


def recipe_from_bars(bars: str | Path, *, start: str | date, days: int = 1,
                     codes: Sequence[str] | None = None, top: int | None = None,
                     seed: int = 1, market: bool = True, rate: float | None = None,
                     beta: float = 0.6, gamma: float = 0.4, profile: str | None = None,
                     frame: pd.DataFrame | None = None) -> TapeRecipe:
    """The recipe of the tape ``cascade market build`` (``market=True``) or ``cascade data
    synth --anchor`` (``market=False``: ``codes`` required unless every code is wanted,
    no ``top``) makes from ``bars`` with these options."""
    from replay.loaders.daily_bars import read_bars

    first = pd.Timestamp(start).date()
    frame = read_bars(bars) if frame is None else frame
    if market:
        from replay.market import MARKET_RATE, plan_market

        mplan = plan_market(frame, first, days=days, codes=codes, top=top,
                            rate=MARKET_RATE if rate is None else rate, source=str(bars))
        return TapeRecipe(plan=mplan.plan, seed=seed, market=mplan, beta=beta, gamma=gamma,
                          source=str(bars))
    if top:
        raise ValueError("--top selects names of a market tape; an anchored tape takes "
                         "--codes")
    plan = plan_from_bars(frame, source=str(bars), codes=codes, start=first, days=days)
    return TapeRecipe(plan=plan, seed=seed, profile=profile, event_rate=rate,
                      source=str(bars))


def _tape_days(path: Path) -> list[date]:
    """The Seoul trading days a tape's events fall on (read from its ts column)."""
    import pyarrow.parquet as pq

    from venues.krx.session import seoul_date

    ts = pq.read_table(path, columns=["ts"]).column(0).to_numpy()
    # a day's events are hours apart from the next day's: one probe per hour is enough
    probe = np.unique(ts // (3600 * 10**9)) * 3600 * 10**9
    return sorted({seoul_date(int(t)) for t in probe} | {seoul_date(int(ts[-1]))})


def _with_total_rate(mplan, total: float):
    """``mplan`` with the market rate whose split by turnover (replay.market.market_rates)
    adds up to ``total``, the sum a market tape records (found by bisection: the sum grows
    with the rate)."""
    from replay.market import market_rates

    turn = np.asarray(mplan.turnover, np.float64)

    def rates(r: float) -> np.ndarray:
        return market_rates(turn, r)

    if abs(sum(mplan.rates) - total) <= 1e-6 * max(total, 1.0):
        return mplan
    lo, hi = 1e-9, 1e9
    for _ in range(200):
        mid = (lo * hi) ** 0.5
        if rates(mid).sum() < total:
            lo = mid
        else:
            hi = mid
    return replace(mplan, rates=tuple(float(r) for r in rates(hi)))


def recipe_from_tape(tape: str | Path, *, bars: str | Path | None = None,
                     seed: int | None = None, rate: float | None = None,
                     profile: str | None = None) -> TapeRecipe:
    """The recipe of an anchored tape. A market tape (``cascade market build``) records
    its bars file, days, names and factor loadings (``Tape.market``), so it rebuilds
    itself (``bars`` overrides a file that has moved). A tape of ``cascade data synth
    --anchor`` records only its names and seed: ``bars`` is then required (its days are
    read from the tape, ``rate`` and ``profile`` must be the ones it was built with; the
    first iteration checks the rebuilt tape against it)."""
    from replay.tape import Tape

    t = Tape(tape)
    codes = [i.symbol for i in t.instruments]
    the_seed = seed if seed is not None else (t.session_seed or 0)
    if t.market:
        meta = json.loads(t.market)
        source = Path(bars) if bars is not None else Path(meta["source"])
        if not source.is_file():
            raise ValueError(f"{tape}: a market tape of {meta['source']}, which is not "
                             "there; give --bars FILE (the same daily bars)")
        from replay.loaders.daily_bars import read_bars

        frame = read_bars(source)
        # the names' market and shares as the tape holds them (a listing may have given them)
        inst = {i.symbol: i for i in t.instruments}
        frame["code"] = frame["code"].astype(str)
        mine = frame["code"].isin(inst)
        frame.loc[mine, "market"] = [inst[c].market for c in frame.loc[mine, "code"]]
        frame.loc[mine, "shares"] = [inst[c].shares_outstanding for c in frame.loc[mine, "code"]]
        factor = meta.get("factor", {})
        recipe = recipe_from_bars(source, start=meta["days"][0], days=len(meta["days"]),
                                  codes=codes, seed=the_seed, market=True, rate=rate,
                                  beta=float(factor.get("beta", 0.6)),
                                  gamma=float(factor.get("gamma", 0.4)), frame=frame)
        knots = factor.get("index_knots")
        if knots:  # the index path the tape was built on
            from replay.market import group_knots, parse_index_knot

            recipe = replace(recipe, knots=group_knots(
                [parse_index_knot(f"{d},{t},{r!r}") for d, ks in knots.items() for t, r in ks]))
        if rate is None:  # the tape records its names' total rate, not the --rate given
            recipe = replace(recipe, market=_with_total_rate(recipe.market,
                                                             float(meta["rates"]["total"])))
        return recipe
    if bars is None:
        raise ValueError(f"{tape}: an anchored tape records its names ({', '.join(codes[:6])}"
                         f"{' ...' if len(codes) > 6 else ''}) and seed but not its bars; "
                         "give --bars FILE (and --rate if it was built with one), or pass "
                         "the bars file with --date, --days and --codes or --top instead "
                         "of the tape")
    days = _tape_days(Path(tape))
    return recipe_from_bars(bars, start=days[0], days=len(days), codes=codes, seed=the_seed,
                            market=False, rate=rate, profile=profile)


# ---------------------------------------------------------------------------------------
# Exogenous bars: the observed days moved to new closes.
# ---------------------------------------------------------------------------------------

def closes_of(plan: AnchorPlan) -> np.ndarray:
    """Each name-day's close, [names, days] (int64)."""
    return np.array([[d.close for d in n.days] for n in plan.names], np.int64)


def _snap(price: float, day: date, market: str, lower: int, upper: int) -> int:
    return min(max(_grid_round(min(max(price, lower), upper), day, market), lower), upper)


def exogenous_plan(observed: AnchorPlan, closes: np.ndarray) -> AnchorPlan:
    """``observed`` with each traded name-day closing at ``closes[k, i]`` (on the tick
    grid, inside the day's limits of its new base, the previous exogenous close); the
    observed open is kept (inside those limits), the high and low are the observed ones
    widened to take in the new close. The first day's base is the observed one; a day
    without trades stays at its base.

    Only the close moves because in relative mode a replayed day closes at its simulated
    open plus the tape's move from open to close: moving the tape's open with its close
    would leave that move, and so the simulated close, unchanged (docs/attribution.md:
    uniqueness)."""
    names = []
    for k, name in enumerate(observed.names):
        base = name.days[0].base
        days = []
        for i, d in enumerate(name.days):
            if not d.traded:
                days.append(replace(d, base=base, open=base, high=base, low=base, close=base))
                continue
            lower, upper = price_limits(base, on=d.day, market=name.market)
            c = _snap(float(closes[k, i]), d.day, name.market, lower, upper)
            o, h, lo = (_snap(float(p), d.day, name.market, lower, upper)
                        for p in (d.open, d.high, d.low))
            days.append(AnchorDay(day=d.day, base=base, open=o, high=max(h, o, c),
                                  low=min(lo, o, c), close=c, volume=d.volume))
            base = c
        names.append(replace(name, days=tuple(days)))
    return replace(observed, names=tuple(names))


def bars_frame(plan: AnchorPlan) -> pd.DataFrame:
    """A plan's days as daily bars in read_bars' English layout (code, date, open, high,
    low, close, volume, change as a fraction of the base, shares, market): read back by
    replay.loaders.daily_bars.read_bars, the first day's base included."""
    rows = []
    for n in plan.names:
        for d in n.days:
            if d.traded:
                rows.append((n.code, d.day.isoformat(), d.open, d.high, d.low, d.close,
                             d.volume, repr(d.close / d.base - 1.0), n.shares, n.market))
            else:  # pykrx's day without trades: open = high = low = 0, volume 0
                rows.append((n.code, d.day.isoformat(), 0, 0, 0, d.close, 0, "0.0",
                             n.shares, n.market))
    return pd.DataFrame(rows, columns=["code", "date", "open", "high", "low", "close",
                                       "volume", "change", "shares", "market"])


# ---------------------------------------------------------------------------------------
# One iteration's replay: the closes with the forced sales.
# ---------------------------------------------------------------------------------------

class _Discard:
    """A report sink that keeps nothing (an iteration needs only the sessions' closes)."""

    def append(self, table: int, rows: np.ndarray) -> None:
        pass


def _replay_closes(tape_path: Path, spec: RunSpec, seed: int, plan: AnchorPlan,
                   advance: Callable[[int], None]) -> np.ndarray:
    """The simulated closes [names, days] of ``tape_path`` replayed at the KRX venue in
    ``spec.mode`` with ``spec``'s brokers."""
    from brokers.engine import Broker
    from replay.broker_run import discard_snapshot, load_brokers
    from replay.engine import Replay
    from replay.runner import index_closes
    from replay.tape import Tape

    t = Tape(tape_path)
    market = load_brokers(spec.brokers(), t, seed)
    rp = Replay(t.instruments, spec.mode, venue="krx", seed=seed,
                index_prior_close=index_closes(spec))
    brokers = []
    for _, rules, pop in market:
        b = Broker(rules, pop, seed=seed, submit_orders=True).attach(rp)
        b.snapshot_sink = discard_snapshot
        brokers.append(b)
    result = rp.run(t.chunks(spec.chunk_rows), None, progress=advance, sink=_Discard())
    return _session_closes(result.sessions, plan)


def _session_closes(sessions: pd.DataFrame, plan: AnchorPlan) -> np.ndarray:
    """The venue's closes [names, days] in the plan's order (a name-day missing: -1)."""
    out = np.full((len(plan.names), len(plan.names[0].days)), -1, np.int64)
    if not len(sessions):
        return out
    at = {(str(r.symbol), pd.Timestamp(r.day).date()): int(r.close)
          for r in sessions[["symbol", "day", "close"]].itertuples(index=False)}
    for k, n in enumerate(plan.names):
        for i, d in enumerate(n.days):
            out[k, i] = at.get((n.code, d.day), -1)
    return out


# ---------------------------------------------------------------------------------------
# The iteration.
# ---------------------------------------------------------------------------------------

def _ticks(plan: AnchorPlan) -> np.ndarray:
    """Each name-day's KRX tick at its observed close [names, days]."""
    return np.array([[int(tick_size(d.close, on=d.day, market=n.market)) for d in n.days]
                     for n in plan.names], np.int64)


def _traded(plan: AnchorPlan) -> np.ndarray:
    return np.array([[d.traded for d in n.days] for n in plan.names], bool)


@dataclass
class _Solver:
    """Per name-day secant steps on the exogenous close, bracketed and on the grid."""

    observed: np.ndarray
    ticks: np.ndarray
    traded: np.ndarray
    x: np.ndarray = field(init=False)
    slope: np.ndarray = field(init=False)
    lo: np.ndarray = field(init=False)  # largest exogenous close seen to close below target
    hi: np.ndarray = field(init=False)  # smallest seen to close above it
    prev: tuple[np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.x = self.observed.astype(np.float64).copy()
        self.slope = np.ones_like(self.x)
        self.lo = np.full_like(self.x, -np.inf)
        self.hi = np.full_like(self.x, np.inf)

    def step(self, x_used: np.ndarray, y: np.ndarray, open_: np.ndarray,
             active: np.ndarray | None = None) -> np.ndarray:
        """The next exogenous closes from the closes ``x_used`` gave ``y``; only the
        name-days in ``open_`` (not converged) and ``active`` (the day being solved and
        those before it) move. A name-day's bracket and slope learn only from replays in
        which it was active: before, the days before it were still moving, so what its
        close did then says nothing about its own anchor."""
        x_used = x_used.astype(np.float64)
        y = y.astype(np.float64)
        active = np.ones(x_used.shape, bool) if active is None else active
        gap = self.observed - y  # > 0: the replay closed below the observed close
        below, above = active & (gap > 0), active & (gap < 0)
        self.lo = np.where(below, np.maximum(self.lo, x_used), self.lo)
        self.hi = np.where(above, np.minimum(self.hi, x_used), self.hi)
        if self.prev is not None:
            px, py, seen = self.prev
            dx = x_used - px
            ok = (np.abs(dx) > 0) & seen & active
            est = np.where(ok, (y - py) / np.where(ok, dx, 1.0), self.slope)
            self.slope = np.clip(np.where(np.isfinite(est), est, self.slope), *SLOPE_RANGE)
            seen = seen | active
            self.prev = (np.where(active, x_used, px), np.where(active, y, py), seen)
        else:
            self.prev = (x_used, y, active.copy())
        proposal = x_used + gap / self.slope
        inside = (proposal > self.lo) & (proposal < self.hi)
        both = np.isfinite(self.lo) & np.isfinite(self.hi)
        with np.errstate(invalid="ignore"):
            middle = 0.5 * (self.lo + self.hi)
        proposal = np.where(~inside & both, middle, proposal)
        # at least one tick towards the target, so a step never rounds back to itself
        need = np.sign(gap) * self.ticks
        proposal = np.where(np.abs(proposal - x_used) < self.ticks,
                            x_used + need, proposal)
        return np.where(open_ & active & self.traded, proposal, x_used)


@dataclass
class AttributionResult:
    """What :func:`attribute` found: ``table`` (one row per name-day), ``indices`` (one
    row per index-day), ``history`` (one entry per iteration), ``converged``, and the
    files written under ``out_dir``."""

    converged: bool
    table: pd.DataFrame
    indices: pd.DataFrame
    history: list[dict]
    out_dir: Path
    method: dict
    variant: dict | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        def rows(frame: pd.DataFrame) -> list[dict]:
            return json.loads(frame.to_json(orient="records", date_format="iso"))

        return {"method": self.method, "converged": self.converged,
                "iterations": len(self.history), "history": self.history,
                "max_gap_ticks": self.history[-1]["max_gap_ticks"] if self.history else None,
                "names": rows(self.table), "indices": rows(self.indices),
                "variant": self.variant, "seconds": round(self.seconds, 3),
                "files": {"table": "attribution.csv", "exogenous_bars": "exogenous_bars.csv",
                          "exogenous_tape": "exogenous.parquet",
                          "with_forced_sales": "forced", "counterfactual": "counterfactual",
                          "observed": "observed",
                          **({"variant": "variant"} if self.variant else {})}}


def attribute(recipe: TapeRecipe, spec: RunSpec, out_dir: str | Path, *,
              tolerance_ticks: float = TOLERANCE_TICKS, max_iter: int = MAX_ITER,
              variant: Sequence[str] = (), overwrite: bool = False,
              progress=no_progress, log: Callable[[str], None] = lambda s: None,
              ) -> AttributionResult:
    """Solve for the exogenous bars of ``recipe`` whose tape, replayed with the brokers of
    ``spec`` (its ``broker``/``population``/``more_brokers``, ``mode``, ``seed``,
    ``index_closes``; its ``tape`` and ``output`` are ignored), closes every traded
    name-day within ``tolerance_ticks`` of its observed close; write the outputs under
    ``out_dir`` (docs/attribution.md) and return them. ``variant`` (``KEY=VALUE`` rule
    overrides, applied to every broker) is replayed on the exogenous path into
    ``out_dir/variant``. Raises :class:`AttributionError` after ``max_iter`` iterations
    without convergence (attribution.json is written first, ``converged`` false)."""
    from replay.rundir import check_target, write_json, write_text

    t_start = time.perf_counter()
    if not spec.broker:
        raise ValueError("attribution needs the population's brokers: give --broker and "
                         "--population")
    if spec.mode not in ("relative", "propagator"):
        raise ValueError(f"--mode {spec.mode}: attribution needs injected impact that "
                         "persists (relative or propagator)")
    if not tolerance_ticks > 0:
        raise ValueError(f"--tolerance-ticks {tolerance_ticks}: must be positive")
    if max_iter < 1:
        raise ValueError(f"--max-iter {max_iter}: must be at least 1")
    out = Path(out_dir)
    check_target(out, overwrite, "attribution")
    if out.exists() and overwrite:
        shutil.rmtree(out)
    work = out / ".iterations"
    work.mkdir(parents=True, exist_ok=True)
    seed = spec.seed if spec.seed is not None else recipe.seed
    spec = replace(spec, seed=seed, venue="krx", overwrite=True)
    observed = recipe.plan
    obs = closes_of(observed)
    ticks = _ticks(observed)
    traded = _traded(observed)
    solver = _Solver(obs, ticks, traded)
    history: list[dict] = []
    method = {"name": "secant iteration on each name-day's exogenous close",
              "slope_range": list(SLOPE_RANGE), "tolerance_ticks": tolerance_ticks,
              "max_iter": max_iter, "mode": spec.mode, "seed": seed,
              "builder": recipe.builder, "bars": recipe.source or observed.source,
              "bar": "the close moves; the observed open is kept; high and low widen to the close",
              "brokers": [b.rules for b in spec.brokers()]}
    try:
        plan, y, converged = _iterate(recipe, spec, seed, observed, solver, work, history,
                                      tolerance_ticks, max_iter, progress, log)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    final_tape = out / "exogenous.parquet"
    shutil.copyfile(work / f"tape-{len(history)}.parquet", final_tape)
    method["rebuild"] = rebuild_command(recipe, "exogenous_bars.csv")
    write_text(out / "exogenous_bars.csv",
               f"# exogenous bars of {method['bars']} (docs/attribution.md); the exogenous "
               f"tape: {method['rebuild']}\n" + bars_frame(plan).to_csv(index=False))
    if not converged:
        result = AttributionResult(False, _table(observed, plan, y, None, ticks), pd.DataFrame(),
                                   history, out, method, seconds=time.perf_counter() - t_start)
        shutil.rmtree(work, ignore_errors=True)
        write_json(out / "attribution.json", result.to_json())
        raise AttributionError(_not_converged(observed, history, tolerance_ticks,
                                              max_iter, out))
    # the final runs: with the forced sales, without them (the counterfactual), observed
    base = replace(spec, tape=final_tape)
    runs = {}
    try:
        runs["forced"] = run_tape(replace(base, output=out / "forced"), progress)
        plain = replace(base, broker=None, population=None, overrides=(), more_brokers=())
        runs["counterfactual"] = run_tape(replace(plain, output=out / "counterfactual"),
                                          progress)
        note = {"tape": "the tape of the observed bars, rebuilt by the attribution and not "
                        f"kept: {rebuild_command(recipe, method['bars'])}"}
        runs["observed"] = run_tape(replace(plain, tape=work / "tape-1.parquet",
                                            output=out / "observed"), progress,
                                    sections={"attribution": note})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sim = _session_closes(pd.read_parquet(out / "forced" / "sessions.parquet"), observed)
    cf = _session_closes(pd.read_parquet(out / "counterfactual" / "sessions.parquet"), observed)
    table = _table(observed, plan, sim, cf, ticks)
    indices = _index_table(runs)
    result = AttributionResult(True, table, indices, history, out, method)
    if variant:
        result.variant = _run_variant(base, observed, plan, list(variant), out / "variant",
                                      progress, runs)
        for line in result.variant["lines"]:
            log(line)
    result.seconds = time.perf_counter() - t_start
    write_text(out / "attribution.csv", table.to_csv(index=False))
    write_json(out / "attribution.json", result.to_json())
    return result


def _iterate(recipe: TapeRecipe, spec: RunSpec, seed: int, observed: AnchorPlan,
             solver: _Solver, work: Path, history: list[dict], tolerance_ticks: float,
             max_iter: int, progress, log) -> tuple[AnchorPlan, np.ndarray, bool]:
    """The iterations: each rebuilds the tape from the current exogenous closes into
    ``work`` and replays it with the brokers, until every traded name-day is within
    ``tolerance_ticks`` or ``max_iter`` have run; returns the last plan, its simulated
    closes and whether they converged (the last tape stays in ``work``)."""
    from replay.tape import Tape

    obs, ticks, traded = solver.observed.astype(np.int64), solver.ticks, solver.traded
    n_name_days = int(traded.sum())
    x = obs.astype(np.float64)
    plan, y = observed, obs
    spent = np.zeros(obs.shape[1], np.int64)  # iterations spent on each day
    for it in range(1, max_iter * obs.shape[1] + 1):
        plan = exogenous_plan(observed, x)
        x_used = closes_of(plan)
        tape_path = work / f"tape-{it}.parquet"
        t0 = time.perf_counter()
        with progress(f"iteration {it}: tape", len(plan.names) * len(plan.names[0].days)) \
                as advance:
            recipe.with_plan(plan).write(tape_path, progress=advance)
        rows = len(Tape(tape_path))
        if it == 1 and spec.tape is not None and Path(spec.tape).is_file():
            given = len(Tape(spec.tape))
            if given != rows:
                raise ValueError(f"{spec.tape}: {given:,} events, but its bars rebuild a tape "
                                 f"of {rows:,}: the options do not rebuild it (give the "
                                 "--bars, --seed and --rate it was built with)")
        with progress(f"iteration {it}: replay with forced sales", rows) as advance:
            y = _replay_closes(tape_path, spec, seed, observed, advance)
        missing = traded & (y < 0)
        if missing.any():
            k, i = np.argwhere(missing)[0]
            raise ValueError(f"iteration {it}: the replay has no close for "
                             f"{observed.names[k].code} on {observed.names[k].days[i].day}")
        gap_ticks = np.where(traded, np.abs(y - obs) / ticks, 0.0)
        open_ = gap_ticks > tolerance_ticks + 1e-9
        history.append({"iteration": it, "max_gap_ticks": round(float(gap_ticks.max()), 3),
                        "name_days_not_converged": int(open_.sum()),
                        "not_converged": _where(observed, open_, gap_ticks, x_used, y),
                        "events": rows, "seconds": round(time.perf_counter() - t0, 3)})
        log(f"iteration {it}: max gap {gap_ticks.max():.1f} tick(s), "
            f"{int(open_.sum())} of {n_name_days} name-day(s) not within "
            f"{tolerance_ticks:g} ({time.perf_counter() - t0:.1f}s)")
        if it > 2:  # the first (the observed bars' tape) is replayed alone at the end
            (work / f"tape-{it - 1}.parquet").unlink(missing_ok=True)
        if not open_.any():
            return plan, y, True
        # days in order: a day's closes do not depend on later days' anchors, so the first
        # day not yet converged moves alone (the days before it stay put, converged)
        day = int(np.flatnonzero(open_.any(axis=0))[0])
        spent[day] += 1
        if spent[day] >= max_iter:
            return plan, y, False
        active = np.zeros(open_.shape, bool)
        active[:, : day + 1] = True
        x = solver.step(x_used, y, open_, active)
    return plan, y, False


def rebuild_command(recipe: TapeRecipe, bars: str) -> str:
    """The command that builds ``recipe``'s tape from the bars file ``bars`` (its names in
    the tape's order: the order seeds each name's flow)."""
    codes = ",".join(n.code for n in recipe.plan.names)
    days = recipe.plan.days
    if recipe.market is not None:
        return (f"cascade market build --bars {bars} --date {days[0]} --days {len(days)} "
                f"--codes {codes} --seed {recipe.seed} --beta {recipe.beta:g} "
                f"--gamma {recipe.gamma:g} (its event rates follow the bars' turnover, so "
                "exogenous.parquet, built with the observed rates, is the tape the runs used)")
    extra = f" --rate {recipe.event_rate:g}" if recipe.event_rate is not None else ""
    extra += f" --profile {recipe.profile}" if recipe.profile else ""
    return (f"cascade data synth --anchor {bars} --codes {codes} --start {days[0]} "
            f"--days {len(days)} --seed {recipe.seed}{extra}")


def _where(plan: AnchorPlan, open_: np.ndarray, gap_ticks: np.ndarray, x: np.ndarray,
           y: np.ndarray) -> list[dict]:
    return [{"code": plan.names[k].code, "date": plan.names[k].days[i].day.isoformat(),
             "gap_ticks": round(float(gap_ticks[k, i]), 3),
             "observed_close": plan.names[k].days[i].close,
             "exogenous_close": int(x[k, i]), "simulated_close": int(y[k, i])}
            for k, i in np.argwhere(open_)]


def _not_converged(plan: AnchorPlan, history: list[dict], tol: float, max_iter: int,
                   out: Path) -> str:
    last = history[-1]
    first = min(w["date"] for w in last["not_converged"])
    shown = ", ".join(f"{w['code']} {w['date']} {w['gap_ticks']:g} ticks"
                      for w in last["not_converged"][:8])
    more = len(last["not_converged"]) - 8
    stuck = ""
    if len(history) > 2:  # the day's name-days whose exogenous close no longer moves
        # (the same as one or two iterations before: at a limit, or between two ticks)
        before = [{(w["code"], w["date"]): w["exogenous_close"] for w in h["not_converged"]}
                  for h in history[-3:-1]]
        still = [f"{w['code']} {w['date']}" for w in last["not_converged"]
                 if w["date"] == first
                 and any(b.get((w["code"], w["date"])) == w["exogenous_close"]
                         for b in before)]
        if still:
            stuck = (f"; {len(still)} of them no longer move ({', '.join(still[:4])}"
                     f"{' ...' if len(still) > 4 else ''}): their exogenous close is at the "
                     "day's price limit or goes back and forth between two ticks, so no "
                     "exogenous close within the limits gives the observed one with this "
                     "population (its forced sales lock the name, or an account's forced "
                     "sale switches on and off between the two ticks)")
    return (f"attribution did not converge to {tol:g} tick(s): {first} still apart after "
            f"{max_iter} iteration(s) on it ({len(history)} in all): "
            f"{last['name_days_not_converged']} name-day(s) still apart: {shown}"
            f"{f' and {more} more' if more > 0 else ''}{stuck} (history in "
            f"{out}/attribution.json;"
            " raise --max-iter or --tolerance-ticks)")


def _share(prior_fall: float, made: float) -> float | None:
    """``made`` as a share of a fall (None where the price did not fall)."""
    return round(made / prior_fall, 6) if prior_fall > 0 else None


def _table(observed: AnchorPlan, plan: AnchorPlan, sim: np.ndarray, cf: np.ndarray | None,
           ticks: np.ndarray) -> pd.DataFrame:
    """One row per name-day (docs/attribution.md: the table)."""
    rows = []
    for k, n in enumerate(observed.names):
        base0 = n.days[0].base
        prev_obs, prev_impact = base0, 0
        for i, d in enumerate(n.days):
            exo = plan.names[k].days[i].close
            s = int(sim[k, i])
            impact = exo - s  # won the forced sales took off the close (cumulative)
            rows.append({
                "code": n.code, "date": d.day.isoformat(), "prior_close": prev_obs,
                "observed_close": d.close, "exogenous_close": exo, "simulated_close": s,
                "counterfactual_close": int(cf[k, i]) if cf is not None else None,
                "gap_ticks": round(abs(s - d.close) / ticks[k, i], 3),
                "observed_return": round(d.close / prev_obs - 1, 6),
                "exogenous_return": round(exo / plan.names[k].days[i].base - 1, 6),
                "forced_sale_impact": impact,
                "share_of_fall": _share(prev_obs - d.close, impact - prev_impact),
                "share_of_fall_since_start": _share(base0 - d.close, impact),
            })
            prev_obs, prev_impact = d.close, impact
    return pd.DataFrame(rows)


def _index_table(runs: dict[str, dict]) -> pd.DataFrame:
    """One row per index-day: observed (the observed tape replayed alone), exogenous (the
    counterfactual), simulated (with the forced sales), and the shares of its fall."""
    ix = {k: runs[k].get("indices") or {} for k in runs}
    rows = []
    for name, entry in ix["observed"].items():
        if entry.get("proxy"):  # the futures proxy follows KOSPI200: not a market's index
            continue
        first = entry["days"][0]["prior_close"] if entry.get("days") else None
        prev_obs, prev_impact = first, 0.0
        for j, day in enumerate(entry.get("days", [])):
            exo = ix["counterfactual"].get(name, {}).get("days", [])
            sim = ix["forced"].get(name, {}).get("days", [])
            if j >= len(exo) or j >= len(sim):
                continue
            e, s = exo[j]["close"], sim[j]["close"]
            impact = e - s
            rows.append({
                "index": name, "date": day["day"], "prior_close": prev_obs,
                "observed_close": day["close"], "exogenous_close": e, "simulated_close": s,
                "observed_return": round(day["close"] / prev_obs - 1, 6),
                "exogenous_return": round(e / exo[j]["prior_close"] - 1, 6),
                "simulated_return": round(s / sim[j]["prior_close"] - 1, 6),
                "forced_sale_impact": round(impact, 6),
                "share_of_fall": _share(prev_obs - day["close"], impact - prev_impact),
                "share_of_fall_since_start": _share(first - day["close"], impact),
            })
            prev_obs, prev_impact = day["close"], impact
    return pd.DataFrame(rows)


def _run_variant(base: RunSpec, observed: AnchorPlan, plan: AnchorPlan, overrides: list[str],
                 output: Path, progress, runs: dict) -> dict:
    """The brokers with ``overrides`` replayed on the exogenous path: each override goes
    to every broker whose rules use it (maintenance_ratio to a credit broker, not to a 미수
    one); one that no broker uses is an error."""
    from brokers.rules import load_rules

    brokers = base.brokers()
    taken: list[list[str]] = [[] for _ in brokers]
    for item in overrides:
        users, last = [], None
        for j, b in enumerate(brokers):
            try:
                load_rules(b.rules, [*b.overrides, *taken[j], item])
            except ValueError as exc:
                last = exc
                continue
            users.append(j)
        if not users:
            raise ValueError(f"--variant {item}: no broker of the run uses it ({last})")
        for j in users:
            taken[j].append(item)
    first, *rest = (replace(b, overrides=(*b.overrides, *t)) for b, t in zip(brokers, taken,
                                                                               strict=True))
    spec = replace(base, overrides=first.overrides, more_brokers=tuple(rest), output=output)
    summary = run_tape(spec, progress)
    closes = _session_closes(pd.read_parquet(output / "sessions.parquet"), observed)
    what = ", ".join(overrides)
    names, lines = [], []
    for k, n in enumerate(observed.names):
        for i, d in enumerate(n.days):
            c = int(closes[k, i])
            names.append({"code": n.code, "date": d.day.isoformat(), "close": c,
                          "observed_close": d.close,
                          "exogenous_close": plan.names[k].days[i].close})
            if len(lines) < 12:
                lines.append(f"at {what} {n.code} would close {d.day} at {c:,} (observed "
                             f"{d.close:,}, without forced sales "
                             f"{plan.names[k].days[i].close:,})")
    indices = []
    for name, entry in (summary.get("indices") or {}).items():
        obs_days = (runs["observed"].get("indices") or {}).get(name, {}).get("days", [])
        for j, day in enumerate(entry.get("days", [])):
            o = obs_days[j]["close"] if j < len(obs_days) else None
            indices.append({"index": name, "date": day["day"], "close": day["close"],
                            "observed_close": o})
            lines.append(f"at {what} {name} would close {day['day']} at {day['close']:,.2f}"
                         + (f" (observed {o:,.2f})" if o is not None else ""))
    if len(names) > 12:
        lines.append(f"({len(names)} name-days in all: attribution.json, variant)")
    return {"overrides": overrides,
            "applied_to": {b.rules: list(t) for b, t in zip(brokers, taken, strict=True)},
            "names": names, "indices": indices, "lines": lines,
            "run": "variant"}


__all__ = ["AttributionError", "AttributionResult", "TapeRecipe", "attribute", "bars_frame",
           "exogenous_plan", "recipe_from_bars", "recipe_from_tape"]
