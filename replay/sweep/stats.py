"""A sweep's statistics over its cells: paired differences against the baseline variant,
with a bootstrap interval, and each variant's tail figures (docs/sweeps.md: the sweep page).

Cells are paired (replay.sweep.spec): the cells of one tape, population, mode and seed see
identical inputs whatever their variant, so a variant is compared with the baseline pair
by pair, and the spread between days and seeds, common to both, cancels. Only cells whose
status is ``ok`` count; a failed cell, and the cell it would have been paired with, are
left out and counted. Everything here is vectorised over the cells (numpy, pandas), and
the bootstrap is seeded: the same table gives the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The axes that make a pair: the cells of one block, one per variant.
PAIR_AXES = ("tape", "population", "mode", "seed")
CELL_AXES = ("variant",) + PAIR_AXES
#: Bootstrap resamples of the pairs, and the seed of numpy's default_rng that draws them.
RESAMPLES = 2000
SEED = 0
#: The interval's level.
LEVEL = 0.95
#: Resampled pair indices drawn at once, at most (bounds the memory of a large sweep).
_DRAW = 4_000_000
#: The upper quantiles of the drawdowns the tail table gives.
QUANTILES = (0.95, 0.99)


def _values(frame: pd.DataFrame, figure: str) -> pd.Series:
    """``figure`` as float64 (a missing value, Int64's NA included, as NaN)."""
    return pd.to_numeric(frame[figure], errors="coerce").astype("float64")


def _check_cells(frame: pd.DataFrame) -> None:
    missing = [c for c in CELL_AXES + ("status",) if c not in frame.columns]
    if missing:
        raise ValueError(f"the cells table has no column {', '.join(missing)} (it needs "
                         f"{', '.join(CELL_AXES)} and status)")
    twice = frame.duplicated(list(CELL_AXES))
    if twice.any():
        row = frame[twice].iloc[0]
        raise ValueError("two cells of the table share the axes "
                         + ", ".join(f"{c}={row[c]}" for c in CELL_AXES))


def bootstrap_interval(diffs: np.ndarray, resamples: int = RESAMPLES,
                       seed: int = SEED) -> tuple[float, float]:
    """The percentile interval (:data:`LEVEL`) of the mean of ``diffs`` over ``resamples``
    resamples of them with replacement, drawn by ``numpy.random.default_rng(seed)``; NaN
    for fewer than two values (one pair says nothing of the spread)."""
    n = len(diffs)
    if n < 2:
        return float("nan"), float("nan")
    if resamples < 1:
        raise ValueError(f"resamples {resamples}: must be at least 1")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, _DRAW // n)
    for lo in range(0, resamples, step):
        hi = min(resamples, lo + step)
        means[lo:hi] = diffs[rng.integers(0, n, size=(hi - lo, n))].mean(axis=1)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_differences(frame: pd.DataFrame, baseline: str, figure: str,
                       resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """For each variant but ``baseline`` (in the order of the table), the mean of
    (variant - baseline) of ``figure`` over the pairs: the blocks (:data:`PAIR_AXES`) where
    both cells are ok and both have the figure, with its bootstrap interval
    (:func:`bootstrap_interval`, the pairs resampled).

    Columns: ``variant``, ``figure``, ``pairs``, ``left_out`` (the variant's cells not in a
    pair: failed, without the figure, or without an ok baseline cell that has it),
    ``baseline_mean`` (over the same pairs), ``mean``, ``low``, ``high``, ``excludes_zero``
    (the interval lies wholly above or below 0; False when there is none) and
    ``resamples``."""
    _check_cells(frame)
    if figure not in frame.columns:
        raise ValueError(f"the cells table has no figure {figure!r}")
    values = _values(frame, figure).where(frame["status"] == "ok")
    wide = (frame.assign(_value=values)
            .pivot(index=list(PAIR_AXES), columns="variant", values="_value"))
    counts = frame.groupby("variant", sort=False).size()
    base = wide[baseline].to_numpy() if baseline in wide.columns else \
        np.full(len(wide), np.nan)
    rows = []
    for variant in frame["variant"].drop_duplicates():
        if variant == baseline:
            continue
        mine = wide[variant].to_numpy()
        both = ~np.isnan(mine) & ~np.isnan(base)
        diffs = mine[both] - base[both]
        n = len(diffs)
        low, high = bootstrap_interval(diffs, resamples, seed)
        rows.append({
            "variant": variant, "figure": figure, "pairs": n,
            "left_out": int(counts[variant]) - n,
            "baseline_mean": float(base[both].mean()) if n else float("nan"),
            "mean": float(diffs.mean()) if n else float("nan"),
            "low": low, "high": high,
            "excludes_zero": bool(low > 0 or high < 0),
            "resamples": resamples,
        })
    columns = ["variant", "figure", "pairs", "left_out", "baseline_mean", "mean", "low",
               "high", "excludes_zero", "resamples"]
    return pd.DataFrame(rows, columns=columns).astype({"pairs": "int64", "left_out": "int64"})


def tail_figures(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant (in the order of the table), over its ok cells: ``cells`` (how many), the
    :data:`QUANTILES` of ``max_drawdown`` and ``excess_drawdown`` (linear interpolation,
    columns ``max_drawdown_p95``...), and the share of the cells with a value that have a
    limit-locked-down session (``limit_locked_days`` > 0) and a circuit breaker
    (``circuit_breakers`` > 0), with the cells it is over (``..._cells``). NaN where no ok
    cell has the figure (the generic venue has no limits and no circuit breakers)."""
    _check_cells(frame)
    ok = frame[frame["status"] == "ok"]
    variants = pd.Index(frame["variant"].drop_duplicates(), name="variant")
    out = pd.DataFrame(index=variants)
    out["cells"] = ok.groupby("variant").size().reindex(variants, fill_value=0)
    for figure in ("max_drawdown", "excess_drawdown"):
        values = _values(ok, figure) if figure in ok.columns else \
            pd.Series(np.nan, index=ok.index)
        grouped = values.groupby(ok["variant"])
        for q in QUANTILES:
            out[f"{figure}_p{round(q * 100)}"] = grouped.quantile(q).reindex(variants)
    for figure, name in (("limit_locked_days", "p_limit_locked"),
                         ("circuit_breakers", "p_circuit_breaker")):
        values = _values(ok, figure) if figure in ok.columns else \
            pd.Series(np.nan, index=ok.index)
        has = values.notna()
        n = has.groupby(ok["variant"]).sum().reindex(variants, fill_value=0)
        hit = (values > 0).groupby(ok["variant"]).sum().reindex(variants, fill_value=0)
        out[f"{name}_cells"] = n.astype("int64")
        out[name] = (hit / n.where(n > 0)).astype("float64")
    return out.reset_index()
