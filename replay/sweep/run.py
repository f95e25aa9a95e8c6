"""Running a sweep: the cells not yet recorded, on a local process pool or Ray, into DIR.

:func:`run_sweep` checks the spec whole (replay.sweep.spec.load_spec, then every
population drawn on every tape it meets), runs the cells that have no record (with
``retry_failed``, the failed ones too) in paired blocks (replay.sweep.cell.run_block),
records each as it finishes (replay.sweep.store), and writes ``cells.parquet``,
``sweep.json`` and ``sweep.html`` from the records.

Backends (docs/sweeps.md):

- ``local``: ``jobs`` spawned worker processes, kept for the whole sweep (each keeps its
  kernels, tapes and populations loaded). A worker dies with the process that started it
  (Linux ``PR_SET_PDEATHSIG``, and a watcher thread elsewhere), so a sweep killed with
  SIGKILL leaves no worker behind.
- ``ray``: one Ray actor per job, on the cluster at ``address`` (``auto``,
  ``ray://host:port``), or on a local Ray instance started for the sweep; each actor keeps
  its state as a local worker does and streams each record back as it finishes. The
  records are the same bytes as the local backend's.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from replay.sweep import store
from replay.sweep.cell import run_block
from replay.sweep.spec import Cell, SweepSpec, apply_overrides, keyed, load_spec

BACKENDS = ("local", "ray")
#: What a sweep directory holds: all it may hold.
OUTPUTS = ("spec.toml", "cells.parquet", "sweep.json", "sweep.html", store.RECORDS,
           "inputs", "runs", "tapes")

#: ``progress(record, done, failed, total)``: in the driver, as each cell is recorded.
CellDone = Callable[[dict[str, Any], int, int, int], None]


@dataclass
class SweepResult:
    table: pd.DataFrame
    ran: int
    reused: int
    failed: int
    seconds: float
    pruned: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


class SweepError(RuntimeError):
    """The sweep could not go on (a worker died, the cluster was lost); what was recorded
    is kept: run it again to resume."""


def check_output(out: Path, overwrite: bool) -> None:
    """``out`` may be absent, or a sweep directory (only :data:`OUTPUTS`); anything else is
    refused unless ``overwrite``, which empties it first."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory; choose another -o")
    if not out.is_dir():
        return
    foreign = [p for p in sorted(out.iterdir()) if p.name not in OUTPUTS
               and not p.name.startswith(".tmp")]
    if foreign and not overwrite:
        raise ValueError(f"{foreign[0]}: not part of a sweep directory (it holds "
                         f"{', '.join(OUTPUTS)}); choose another -o, or give --overwrite to "
                         f"replace {out} whole")
    if overwrite:
        shutil.rmtree(out)


def population_paths(spec: SweepSpec, out: Path) -> dict[str, Path]:
    """The file each population is read from: its own; for a spec with overrides, the spec
    rewritten under ``out/inputs/`` (its paths made absolute); for an episode's, its
    population spec and bars written there (as ``cascade episode run`` writes them)."""
    import tomllib

    import tomli_w

    from brokers.rules import read_toml
    from replay.rundir import write_text

    paths: dict[str, Path] = {}
    for p in spec.populations:
        if p.episode is None and not p.overrides:
            paths[p.name] = p.path
            continue
        if p.episode is not None:
            data = tomllib.loads(_episode_population(p.episode, out))
            note = f"episode {p.episode}'s population"
        else:
            data = read_toml(p.path)
            for node in (data, data.get("market")):
                if isinstance(node, dict):
                    for key in ("bars", "credit_file", "credit_ratio"):
                        v = node.get(key)
                        if isinstance(v, str) and not Path(v).is_absolute():
                            node[key] = str((p.path.parent / v).resolve())
            note = str(p.path)
        data = apply_overrides(data, p.overrides)
        target = out / "inputs" / f"{_safe(p.name)}.toml"
        sets = ", ".join(f"{k} = {v!r}" for k, v in p.overrides)
        text = (f"# {p.name}: {note}{' with ' + sets if sets else ''} (written by cascade "
                "sweep)\n" + tomli_w.dumps(data))
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            write_text(target, text)
        paths[p.name] = target
    folder = out / "inputs"
    if folder.is_dir():  # what an earlier spec derived, no longer read
        written = {p.resolve() for p in paths.values()} | {
            (folder / f"episode-{p.episode}-bars.csv").resolve()
            for p in spec.populations if p.episode}
        for f in folder.iterdir():
            if f.resolve() not in written:
                f.unlink(missing_ok=True)
    return paths


def _episode_population(name: str, out: Path) -> str:
    """An episode's population spec, reading its bars from ``out/inputs/`` (written there:
    the bars of the names its tape holds), without the balance of a market none of them is
    in (replay.episodes.run_episode does the same)."""
    from replay.episodes import _for_markets, _write_bars, episode_bars, load_episode
    from replay.rundir import atomic_write
    from replay.sweep.spec import TapeDef
    from replay.sweep.tapes import market_plan

    ep = load_episode(name)
    mplan, _, _ = market_plan(TapeDef(f"episode-{name}", "episode", episode=name,
                                      days=ep.days, start=ep.start))
    bars = episode_bars(ep)
    kept = [n.code for n in mplan.names]
    path = (out / "inputs" / f"episode-{name}-bars.csv").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: _write_bars(bars[bars["code"].isin(kept)], tmp))
    text, _ = _for_markets(ep.population, {n.market for n in mplan.names})
    return text.replace("{bars}", path.as_posix())


def _safe(name: str) -> str:
    import hashlib
    import re

    base = re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("._")[:80] or "population"
    return f"{base}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def check_inputs(spec: SweepSpec, populations: dict[str, Path]) -> None:
    """Every population drawn on every tape it is paired with (the first seed), so a
    population that does not fit a tape (a symbol it lacks, a position dated after its
    first day, a spec value out of range) stops the sweep before any cell runs. A
    synthetic tape is represented by its first day's instrument table."""
    from replay.broker_run import load_population

    pairs: list[tuple[Any, str]] = []
    for cell in spec.cells:
        names = [cell.population.name] + [b.population for b in cell.variant.brokers
                                          if b.population]
        for name in names:
            if (cell.tape, name) not in pairs:
                pairs.append((cell.tape, name))
    from replay.sweep.tapes import head

    tapes: dict[Any, Any] = {}
    for tape, name in pairs:
        if tape not in tapes:
            tapes[tape] = head(tape, spec.seeds[0])
        try:
            load_population(populations[name], tapes[tape], spec.seeds[0])
        except (ValueError, FileNotFoundError) as exc:
            raise ValueError(f"{spec.path}: population {name!r} on tape {tape.name!r}: "
                             f"{exc}") from None


def tasks_of(cells: Sequence[Cell], jobs: int) -> list[list[Cell]]:
    """The cells as tasks: each paired block whole (its tape read and counterfactual run
    once), split evenly where there are too few blocks to keep ``jobs`` workers busy."""
    blocks: dict[tuple, list[Cell]] = {}
    for c in cells:
        blocks.setdefault(c.group, []).append(c)
    size = max(1, math.ceil(len(cells) / (2 * jobs)))
    out = []
    for block in blocks.values():
        parts = math.ceil(len(block) / size)
        step = math.ceil(len(block) / parts)
        out.extend(block[i:i + step] for i in range(0, len(block), step))
    return out


def run_sweep(spec_path: str | Path, out: str | Path, *, jobs: int | None = None,
              backend: str = "local", address: str | None = None, keep_runs: bool = False,
              retry_failed: bool = False, overwrite: bool = False,
              progress: CellDone | None = None, only: Sequence[str] = (),
              log: Callable[[str], None] = lambda s: None) -> SweepResult:
    """Run the sweep of the spec at ``spec_path`` into ``out``; return its table.

    ``only``: run just the cells whose key starts with one of these (with ``keep_runs``,
    to re-make a cell's run directory). The spec is copied to ``out/spec.toml``
    (``cascade sweep report`` reads it back)."""
    t0 = time.perf_counter()
    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ValueError("--address is the Ray cluster's: give --backend ray")
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if not 1 <= jobs <= 1024:
        raise ValueError(f"--jobs {jobs}: must be in [1, 1024]")
    spec_path, out = Path(spec_path), Path(out).absolute()  # workers may run elsewhere
    spec = load_spec(spec_path)
    check_output(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    populations = population_paths(spec, out)
    check_inputs(spec, populations)
    spec = keyed(spec)
    shutil.copyfile(spec_path, out / ".tmp-spec.toml")
    os.replace(out / ".tmp-spec.toml", out / "spec.toml")
    ran = execute(spec, out, jobs=jobs, backend=backend, address=address,
                  populations=populations, runs=out / "runs" if keep_runs else None,
                  retry_failed=retry_failed, only=only, progress=progress, log=log,
                  clear=("cells.parquet", "sweep.html"))
    records, counts, reused = ran.records, ran.counts, ran.reused
    pruned = 0
    if not only:
        pruned = store.prune(out, [c.key for c in spec.cells])
        _prune_kept(spec, out)
    frame = store.table(spec, records)
    store.write_table(out / "cells.parquet", frame)
    summary = _summary(spec, frame, counts, reused, ran.timings, ran.seconds, jobs, backend,
                       time.perf_counter() - t0)
    from replay.rundir import write_json

    write_json(out / "sweep.json", summary)
    from replay.sweep.page import write_page

    write_page(out, frame, summary)
    return SweepResult(frame, counts["done"], reused, int((frame.status != "ok").sum()),
                       time.perf_counter() - t0, pruned, summary)


@dataclass
class Execution:
    records: dict[str, dict[str, Any]]
    counts: dict[str, int]
    reused: int
    timings: list[dict[str, float]]
    seconds: float


def execute(spec: SweepSpec, out: Path, *, jobs: int, backend: str, address: str | None,
            populations: dict[str, Path], runs: Path | None, retry_failed: bool = False,
            only: Sequence[str] = (), progress: CellDone | None = None,
            log: Callable[[str], None] = lambda s: None, clear: Sequence[str] = (),
            stale: Callable[[Cell, dict[str, Any]], bool] | None = None) -> Execution:
    """Run the cells of the keyed ``spec`` that ``out`` has no record of, recording each
    as it finishes; ``cascade sweep`` and ``cascade compare`` both run their cells here.

    ``clear``: files of ``out`` removed before any cell runs (a table that would be stale
    beside new records). ``stale(cell, record)``: a record to run again anyway (compare: a
    record whose run directory is not complete)."""
    store.clear_temporary(out)
    records = store.read_records(out)
    if stale is not None:
        for c in spec.cells:
            if c.key in records and stale(c, records[c.key]):
                del records[c.key]
    todo = store.missing(spec, records, retry_failed)
    if only:
        chosen = [c for c in spec.cells if any(c.key.startswith(k) for k in only)]
        if not chosen:
            raise ValueError(f"--cell {', '.join(only)}: no cell of the spec has that key")
        todo = chosen
    for name in clear:
        (out / name).unlink(missing_ok=True)
    total = len(todo)
    reused = len(spec.cells) - total if not only else 0
    log(f"{len(spec.cells):,} cells: {total:,} to run, {len(spec.cells) - total:,} recorded")
    counts = {"done": 0, "failed": 0}
    timings: list[dict[str, float]] = []

    def record(rec: dict[str, Any]) -> None:
        store.write_record(out, rec)
        records[rec["key"]] = rec
        counts["done"] += 1
        counts["failed"] += rec["status"] != "ok"
        timings.append(rec.get("timing", {}))
        if progress is not None:
            progress(rec, counts["done"], counts["failed"], total)

    light = replace(spec, cells=())
    t_run = time.perf_counter()
    if todo:
        tasks = tasks_of(todo, jobs)
        if backend == "local":
            _run_local(light, tasks, populations, runs, jobs, record)
        else:
            from replay.sweep.ray_backend import run_ray

            run_ray(light, tasks, populations, runs, jobs, address, record)
    return Execution(records, counts, reused, timings, time.perf_counter() - t_run)


def _prune_kept(spec: SweepSpec, out: Path) -> None:
    """Remove the kept run directories and tapes of cells the spec no longer has (a table
    of today's cells beside yesterday's runs would mislead)."""
    from replay.results import versions
    from replay.sweep.cell import kept_tape_name

    runs, tapes = out / "runs", out / "tapes"
    if runs.is_dir():
        keep = {c.key[:16] for c in spec.cells}
        for d in runs.iterdir():
            if d.name in keep:
                continue
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
            else:
                d.unlink(missing_ok=True)
    if tapes.is_dir():
        code = versions()
        keep = {kept_tape_name(spec, c, code) for c in spec.cells if c.mode != "generative"}
        for f in tapes.iterdir():
            if f.name not in keep:
                f.unlink(missing_ok=True)


def _summary(spec: SweepSpec, frame: pd.DataFrame, counts: dict[str, int], reused: int,
             timings: list[dict[str, float]], run_seconds: float, jobs: int, backend: str,
             wall: float) -> dict[str, Any]:
    """sweep.json: the spec, the counts, and this run's timings: cells per minute, and
    the share of the workers' time spent outside the replays themselves."""
    replay = sum(t.get("replay_seconds", 0.0) + t.get("counterfactual_seconds", 0.0)
                 for t in timings)
    busy = run_seconds * jobs
    return {
        "spec": str(spec.path.resolve()), "cells": len(spec.cells), "ran": counts["done"],
        "failed_now": counts["failed"], "failed": int((frame.status != "ok").sum()),
        "reused": reused, "baseline": spec.baseline,
        "axes": {"variants": [v.name for v in spec.variants],
                 "tapes": [t.name for t in spec.tapes],
                 "populations": [p.name for p in spec.populations],
                 "modes": list(spec.modes), "seeds": len(spec.seeds)},
        "backend": backend, "jobs": jobs,
        "timing": {
            "wall_seconds": round(wall, 3), "run_seconds": round(run_seconds, 3),
            "cells_per_minute": round(counts["done"] / run_seconds * 60, 2)
            if run_seconds > 0 and counts["done"] else None,
            "replay_seconds": round(replay, 3),
            "load_seconds": round(sum(t.get("load_seconds", 0.0) for t in timings), 3),
            "outside_replay_share": round(1 - replay / busy, 4) if busy > 0 and timings
            else None,
        },
    }


# -- the local backend ---------------------------------------------------------------------

_QUEUE: Any = None


_PR_SET_PDEATHSIG = 1


def _worker_init(parent: int) -> None:
    """Make a worker die with the process that started it: the kernel kills it when its
    parent exits (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``), and a watcher thread exits
    it if its parent is gone anyway (the parent died before the prctl, another system)."""
    import ctypes
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init_local(parent: int, q) -> None:
    global _QUEUE
    _QUEUE = q
    _worker_init(parent)


def _local_task(spec: SweepSpec, cells: list[Cell], populations: dict[str, Path],
                runs: Path | None) -> int:
    return run_block(spec, cells, populations, _QUEUE.put, runs)


def _run_local(spec: SweepSpec, tasks: list[list[Cell]], populations: dict[str, Path],
               runs: Path | None, jobs: int, record: Callable[[dict[str, Any]], None]) -> None:
    """The tasks on ``jobs`` spawned workers (spawn, not fork: numba's and Arrow's threads),
    each record sent back on a queue and written here, one writer."""
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    expected = sum(len(t) for t in tasks)
    got = 0

    def drain(timeout: float) -> None:
        nonlocal got
        while got < expected:
            try:
                rec = q.get(timeout=timeout)
            except queue.Empty:
                return
            record(rec)
            got += 1

    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=ctx,
                               initializer=_init_local, initargs=(os.getpid(), q))
    try:
        pending = {pool.submit(_local_task, spec, t, populations, runs) for t in tasks}
        while got < expected:
            drain(0.2)
            finished = {f for f in pending if f.done()}
            pending -= finished
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                for f in pending:
                    f.cancel()
                drain(0.5)  # what was sent before the failure is kept
                error = failed[0].exception()
                raise SweepError(f"a sweep worker stopped: {type(error).__name__}: {error}; "
                                 "the cells recorded are kept: run the sweep again to "
                                 "resume") from error
            if not pending:
                drain(5.0)
                if got < expected:
                    raise SweepError(f"{expected - got} cell records never arrived from the "
                                     "workers; run the sweep again to resume")
    except BaseException:  # Ctrl-C, an error: the workers stop now, not after their block
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
