"""The whole command a user runs, against nautilus_trader on the same stream, in one run.

The case: ``cascade replay`` of a synthetic 4-day KRX large-cap tape (seed 11, about 14.3 M
L3 events) at the KRX venue in relative mode, with a ``krx-credit`` broker over 10^5 credit
accounts (drawn as bench/test_bench_sweep.py draws them). It runs as a user runs it: a new
process (the installed ``cascade replay ...``), wall time from its start to its exit,
reading the Parquet tape and writing the run directory, with the counterfactual replay the
broker brings. Its rate is the tape's events over that wall time. The summary's own
``events_per_second`` (the kernel's, counted from after start-up) is printed beside it.

nautilus_trader's ``BacktestEngine`` replays the first ``CASCADE_BENCH_NAUTILUS_EVENTS``
(default 200,000) of the same stream as L2 deltas (``replay.convert.to_l2``) in the same
session; its rate is its run alone (building its objects is excluded, to its advantage).
The closing section prints both rates and their ratio. ``CASCADE_BENCH_COMMAND_DAYS`` sets
the tape's days (default 4); ``CASCADE_BENCH_COMMAND_ROUNDS`` the command's rounds (best
kept; default 2). Timings are printed, never asserted.

    .venv/bin/python -m pytest bench/test_bench_command.py --benchmark-only -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.peers import run_nautilus
from bench.test_bench_sweep import credit_accounts
from replay.convert import to_l2
from replay.synth import write_synthetic_tape
from replay.tape import Tape

DAYS = int(os.environ.get("CASCADE_BENCH_COMMAND_DAYS", "4"))
ROUNDS = int(os.environ.get("CASCADE_BENCH_COMMAND_ROUNDS", "2"))
NAUTILUS_EVENTS = int(os.environ.get("CASCADE_BENCH_NAUTILUS_EVENTS", "200000"))
ACCOUNTS = 100_000
ROOT = Path(__file__).resolve().parents[1]

_RATES: dict[str, tuple[int, float, str]] = {}  # name: (events, seconds, detail)


class _Section:
    """The closing section, registered as a plugin like bench/test_bench_sweep.py's."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        _section(terminalreporter)


def _section(tr) -> None:
    command, nautilus = _RATES.get("command"), _RATES.get("nautilus")
    if not command:
        return
    tr.section("the whole command against nautilus_trader (same stream, same run)")
    for name, (events, seconds, detail) in _RATES.items():
        tr.write_line(f"{name:10} {events:>12,} events {seconds:>8.2f} s "
                      f"{events / seconds / 1e6:>7.2f} M events/s  {detail}")
    if nautilus:
        ratio = (command[0] / command[1]) / (nautilus[0] / nautilus[1])
        tr.write_line(f"ratio: the whole command at {ratio:.1f}x nautilus_trader's "
                      "BacktestEngine")


@pytest.fixture(scope="module")
def case(tmp_path_factory, request) -> tuple[Path, Path]:
    request.config.pluginmanager.register(_Section(), "bench-command")
    root = tmp_path_factory.mktemp("command")
    tape = root / "krx-largecap.parquet"
    write_synthetic_tape(tape, "krx-largecap", days=DAYS, seed=11)
    population = root / "credit-100k.csv"
    credit_accounts(ACCOUNTS, 10_000_000, seed=3).to_csv(population, index=False)
    return tape, population


def _command(tape: Path, population: Path, out: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "cascade"), "replay", str(tape), "--venue", "krx",
            "--mode", "relative", "--broker", "krx-credit", "--population", str(population),
            "-o", str(out), "--overwrite"]


def test_cascade_replay_whole_command(benchmark, case, tmp_path):
    tape, population = case
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # one run first: the kernels' cache is written by a first process, as after install
    subprocess.run(_command(tape, population, tmp_path / "warm"), check=True, env=env,
                   capture_output=True, cwd=ROOT)
    rounds: list[tuple[float, dict]] = []  # wall seconds, that round's summary.json

    def once() -> None:
        t0 = time.perf_counter()
        subprocess.run(_command(tape, population, tmp_path / "run"), check=True, env=env,
                       capture_output=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        rounds.append((wall, json.loads((tmp_path / "run" / "summary.json")
                                        .read_text(encoding="utf-8"))))

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    best, summary = min(rounds, key=lambda r: r[0])  # the fastest round, with its summary
    events = int(summary["events_processed"])
    benchmark.extra_info.update(events=events, wall_seconds=round(best, 3),
                                events_per_s=round(events / best))
    _RATES["command"] = (events, best, (
        f"(whole command, best of {len(rounds)}; inside it the replay counts "
        f"{summary['events_per_second'] / 1e6:.2f} M events/s over "
        f"{summary['replay_seconds']:.2f} s, loading {summary['load_seconds']:.2f} s)"))


def test_nautilus_on_the_same_stream(benchmark, case):
    tape, _ = case
    t = Tape(tape)
    events, table = to_l2(t.read(), t.instruments)
    prefix = events.take(slice(0, NAUTILUS_EVENTS))
    results = []
    benchmark.pedantic(lambda: results.append(run_nautilus(prefix, list(table)[0])),
                       rounds=1, iterations=1)
    r = results[0]
    _RATES["nautilus"] = (r.events, r.seconds, f"({r.name}, first {NAUTILUS_EVENTS:,} L2 "
                          "rows of the same stream, its run alone)")
