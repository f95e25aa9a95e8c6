"""A sweep of 1,000 cells: 10 rule variants x 100 one-day large-cap tapes, 10^5 accounts.

The requirement: "1,000 cells (one-day synthetic large-cap tapes of 3.5 M events, 10^5
credit accounts, 10 variants x 100 seeds) on this machine's 2 cores, with cells per minute
and the share of time spent outside the replay itself. The target is under 10 minutes in
all." The benchmark writes a population of 10^5 신용융자 accounts on SYNTH-LARGE (as
brokers/examples/make_unwind_populations.py draws them: bought on credit in the last two
months of 2023 at 62,000-80,000 won with 40-60% down) and a spec whose tape is
``{ synthetic = "krx-largecap", days = 1 }`` with the cell's seed, so each seed is its own
day, and runs it with :func:`replay.sweep.run_sweep` on ``--jobs 2``.

The variants: ``krx-credit`` at maintenance ratios 1.3-1.7 (valued at the close, sold in
the next pre-open auction: on a one-day tape they call accounts, about 14% of them at 1.7,
but never sell) and ``instant`` at 1.45-1.6 (valued at every trade and sold at once with a
market order; the credit accounts are taken as the instant broker's), which sell a few
dozen accounts a day at 1.45, about a thousand at 1.5, and from 1.525 on start a cascade
that locks the stock at its lower limit (every one of the 100 days).

The closing section prints the cells, the wall time, cells per minute, the share of the
workers' time outside the replays, and where the time went: tapes made, prepare (rules,
population from the worker's cache), the replays with forced orders, the counterfactuals
(one per seed), the rest of each cell (the warm-up replay, the figures), and what lies
outside every cell (process start, imports, the collection after each block, a worker
idle at the end), with the driver's own time
(checking the spec and populations, keys, the table and page), and the load average.
Timings are printed, never asserted; the run is checked: every cell ok, one row per cell,
the credit variants never sell and the instant ones do.

    CASCADE_BENCH_SWEEP_SEEDS=10 .venv/bin/python -m pytest bench/test_bench_sweep.py \\
        --benchmark-only -q

``CASCADE_BENCH_SWEEP_SEEDS`` (default 100), ``CASCADE_BENCH_SWEEP_VARIANTS`` (default 10:
the first half of them krx-credit, the rest instant) and ``CASCADE_BENCH_SWEEP_JOBS``
(default 2) shrink it for a quick try.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from replay.sweep import run_sweep

SEEDS = int(os.environ.get("CASCADE_BENCH_SWEEP_SEEDS", "100"))
VARIANTS = int(os.environ.get("CASCADE_BENCH_SWEEP_VARIANTS", "10"))
JOBS = int(os.environ.get("CASCADE_BENCH_SWEEP_JOBS", "2"))
ACCOUNTS = 100_000
TOTAL_SHARES = 10_000_000  # about 0.9 of a synthetic large-cap day's volume
CREDIT_RATIOS = (1.3, 1.4, 1.5, 1.6, 1.7)
INSTANT_RATIOS = (1.45, 1.5, 1.525, 1.55, 1.6)


def credit_accounts(n: int, total_shares: int, seed: int) -> pd.DataFrame:
    """``n`` credit accounts on SYNTH-LARGE, as make_unwind_populations.credit_population
    draws them: ``total_shares`` split at random, bought between 2023-11-01 and 2023-12-28
    at 62,000-80,000 won (tick 100) with 40-60% down: at the 70,000 prior close every one
    is above 145%, and at 70,000 about 0.5% are below 150%, 14% below 170%."""
    rng = np.random.default_rng(seed)
    shares = np.maximum(1, (rng.dirichlet(np.ones(n)) * total_shares).astype(np.int64))
    entry = (rng.uniform(62_000, 80_000, n) // 100 * 100).astype(np.int64)
    down = rng.uniform(0.40, 0.60, n)
    loan = ((1.0 - down) * shares * entry).astype(np.int64)
    days = pd.bdate_range("2023-11-01", "2023-12-28")
    trade = days[rng.integers(0, len(days), n)].strftime("%Y-%m-%d")
    return pd.DataFrame({"account_id": np.arange(1, n + 1), "kind": "credit",
                         "instrument": "SYNTH-LARGE", "shares": shares, "entry_price": entry,
                         "cash": 0, "loan": loan, "trade_date": trade})


def variants(count: int) -> dict[str, tuple[str, float]]:
    """``count`` variants: name -> (preset, maintenance ratio), krx-credit first."""
    credit = [("krx-credit", r) for r in CREDIT_RATIOS[:count // 2]]
    instant = [("instant", r) for r in INSTANT_RATIOS[:count - count // 2]]
    if count < 1 or len(credit) + len(instant) != count:
        raise ValueError(f"CASCADE_BENCH_SWEEP_VARIANTS={count}: must be in [1, "
                         f"{len(CREDIT_RATIOS) + len(INSTANT_RATIOS)}]")
    return {f"{p}-{r:g}": (p, r) for p, r in credit + instant}


def spec_text(population: Path, seeds: int, chosen: dict[str, tuple[str, float]]) -> str:
    lines = ["[sweep]", f"seeds = {{ first = 1, count = {seeds} }}", "", "[variants]"]
    lines += [f'"{name}" = {{ rules = "{preset}", set = {{ maintenance_ratio = {ratio!r} }} }}'
              for name, (preset, ratio) in chosen.items()]
    lines += ["", "[tapes]", 'day = { synthetic = "krx-largecap", days = 1 }', "",
              "[populations]", f'credit = "{population.as_posix()}"', ""]
    return "\n".join(lines)


class _SweepTable:
    """The closing section, printed in the terminal summary (visible without ``-s``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lines:
            terminalreporter.section("sweep: cells per minute and where the time went")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def sweep_table(request: pytest.FixtureRequest) -> _SweepTable:
    table = _SweepTable()
    request.config.pluginmanager.register(table, "bench-sweep")
    return table


def breakdown(out: Path, summary: dict, wall: float, jobs: int) -> list[str]:
    """Where the time went, from the cells' records (worker seconds) and the summary."""
    timings = [json.loads(p.read_text())["timing"] for p in (out / "cells").glob("*.json")]
    total = {k: sum(t.get(k, 0.0) for t in timings) for k in (
        "load_seconds", "prepare_seconds", "replay_seconds", "counterfactual_seconds",
        "wall_seconds")}
    t = summary["timing"]
    busy = t["run_seconds"] * jobs
    in_cells = total["wall_seconds"] - sum(total[k] for k in (
        "load_seconds", "prepare_seconds", "replay_seconds", "counterfactual_seconds"))
    rows = [("tapes made (synthesize)", total["load_seconds"]),
            ("prepare (rules, population)", total["prepare_seconds"]),
            ("replay with forced orders", total["replay_seconds"]),
            ("counterfactual replays", total["counterfactual_seconds"]),
            ("rest of the cells (warm-up, figures)", in_cells),
            ("outside cells (start, gc, idle)", busy - total["wall_seconds"])]
    cells = summary["ran"]
    lines = [f"{cells:,} cells ({summary['axes']['seeds']} seeds x "
             f"{len(summary['axes']['variants'])} variants) on {jobs} jobs: wall {wall:.1f} s "
             f"({wall / 60:.2f} min), cells run in {t['run_seconds']:.1f} s, "
             f"{t['cells_per_minute']:.1f} cells/min, outside the replay "
             f"{t['outside_replay_share']:.1%}",
             f"{'worker seconds':40} {'total s':>9} {'per cell s':>10} {'share':>7}"]
    lines += [f"{name:40} {s:>9.1f} {s / cells:>10.3f} {s / busy:>7.1%}" for name, s in rows]
    lines.append(f"{'all (run seconds x jobs)':40} {busy:>9.1f} {busy / cells:>10.3f} "
                 f"{1:>7.1%}")
    lines.append(f"driver outside the run (spec, inputs checked, keys, table, page): "
                 f"{wall - t['run_seconds']:.1f} s")
    return lines


def test_sweep_of_one_day_tapes(benchmark, tmp_path, sweep_table):
    population = tmp_path / "credit-100k.csv"
    credit_accounts(ACCOUNTS, TOTAL_SHARES, seed=3).to_csv(population, index=False)
    chosen = variants(VARIANTS)
    spec = tmp_path / "sweep.toml"
    spec.write_text(spec_text(population, SEEDS, chosen), encoding="utf-8")
    out = tmp_path / "out"

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    result = benchmark.pedantic(lambda: run_sweep(spec, out, jobs=JOBS), rounds=1,
                                iterations=1)
    wall = time.perf_counter() - t0

    table = result.table
    assert len(table) == SEEDS * VARIANTS and result.ran == SEEDS * VARIANTS
    assert (table.status == "ok").all(), table.error.dropna().head().tolist()
    by = table.groupby("variant")
    credit = [n for n, (p, _) in chosen.items() if p == "krx-credit"]
    instant = [n for n, (p, _) in chosen.items() if p == "instant"]
    # a close-then-grace rule never sells within one day; it only calls
    assert (by.forced_volume.sum()[credit] == 0).all()
    if instant:
        assert by.forced_volume.sum()[instant].max() > 0
    assert (table.groupby("seed").counterfactual_max_drawdown.nunique() == 1).all()

    lines = breakdown(out, result.summary, wall, JOBS)
    lines.append("load average (1, 5, 15 min) before: "
                 f"{', '.join(f'{x:.2f}' for x in load_before)}; after: "
                 f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (on {os.cpu_count()} CPUs)")
    figures = by[["accounts_called", "accounts_force_sold", "forced_volume",
                  "excess_drawdown", "limit_locked_days"]].mean()
    lines.append("mean per cell, by variant:")
    lines += ["  " + line for line in figures.loc[list(chosen)].to_string(
        float_format=lambda x: f"{x:,.3f}").splitlines()]
    sweep_table.lines += lines
    benchmark.extra_info.update(result.summary["timing"], cells=len(table))
    print("\n" + "\n".join(lines))
