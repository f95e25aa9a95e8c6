"""Broker rule variants on the identical tape, population and seed: ``cascade compare``.

Each variant is a preset or rules TOML with ``key=value`` overrides
(``krx-credit,maintenance_ratio=1.3``). Every variant is replayed by
:func:`replay.runner.run_tape` into ``DIR/<label>/``, in a process of its own (spawned, not
forked: the replay runs compiled numba code), and the figures of all of them are written side
by side: ``comparison.csv`` and ``comparison.parquet`` (one row per variant, the same bytes
for the same inputs) and ``comparison.html`` (replay/comparison_page.py).

Each variant's run directory is complete or absent (replay/rundir.py), so a comparison that
was killed resumes: a variant whose run directory is complete, made by the same options,
rules, code versions and input files (by their SHA-256), is reused, not run again; any
other is run again and replaced. The workers die with the process that started them
(Linux: ``PR_SET_PDEATHSIG``; elsewhere they watch their parent's pid). ``overwrite``
runs every variant again into a directory beside the output and replaces it whole.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from replay.comparison_page import comparison_html
from replay.rundir import (
    OutputError,
    atomic_write,
    is_temporary,
    remove_stale,
    swap_into_place,
    temp_beside,
    verify,
    write_text,
)
from replay.runner import DEFAULT_MODE, RunSpec, default_venue

#: ``progress(label, summary)``: called in the calling process as each variant finishes.
VariantDone = Callable[[str, dict[str, Any]], None]

OUTPUTS = ("comparison.csv", "comparison.parquet", "comparison.html")

#: The comparison's columns after label, broker and overrides: (column, section of
#: summary.json, key there). ``excess_drawdown`` and ``run_dir`` are added after them.
FIGURES = (
    ("forced_volume", "broker", "forced_volume"),
    ("forced_value", "broker", "forced_value"),
    ("amplification", "broker", "amplification"),
    ("max_drawdown", "broker", "max_drawdown"),
    ("counterfactual_max_drawdown", "counterfactual", "max_drawdown"),
    ("accounts_called", "broker", "accounts_called"),
    ("accounts_force_sold", "broker", "accounts_force_sold"),
    ("accounts_wiped_out", "broker", "accounts_wiped_out"),
    ("broker_shortfall", "broker", "broker_shortfall"),
    ("limit_locked_days", "venue_summary", "limit_locked_down_sessions"),
    ("vi_count", "venue_summary", "volatility_interruptions"),
    ("circuit_breakers", "venue_summary", "circuit_breakers"),
    ("max_generation", "broker", "max_generation"),
)
_DTYPES = {"forced_volume": "int64", "forced_value": "float64", "amplification": "float64",
           "max_drawdown": "float64", "counterfactual_max_drawdown": "float64",
           "accounts_called": "int64", "accounts_force_sold": "int64",
           "accounts_wiped_out": "int64",
           "broker_shortfall": "int64", "limit_locked_days": "Int64", "vi_count": "Int64",
           "circuit_breakers": "Int64", "max_generation": "int64"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


class VariantError(RuntimeError):
    """One or more variants failed while running; the message names each and its error."""


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"krx-credit,maintenance_ratio=1.3"`` as ``("krx-credit", ["maintenance_ratio=1.3"])``:
    a preset name or rules TOML, then ``key=value`` overrides, comma-separated."""
    name, *overrides = (part.strip() for part in text.split(","))
    if not name or "=" in name:
        raise ValueError(f"--broker {text!r}: expected PRESET_OR_TOML[,KEY=VALUE...], e.g. "
                         "krx-credit,maintenance_ratio=1.3")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--broker {text!r}: {item!r} is not KEY=VALUE")
    return name, overrides


def variant_labels(variants: Sequence[str], labels: Sequence[str] | None = None) -> list[str]:
    """A directory name per variant: the given ``labels`` (checked), else the variant text
    made filesystem-safe (``krx-credit,maintenance_ratio=1.3`` ->
    ``krx-credit_maintenance_ratio=1.3``; a TOML file by its stem), made unique with -2, -3."""
    if labels:
        if len(labels) != len(variants):
            raise ValueError(f"{len(labels)} --label for {len(variants)} --broker: give one "
                             "label per variant, in the same order")
        for label in labels:
            if _UNSAFE.search(label) or label in ("", ".", "..") or label in OUTPUTS:
                raise ValueError(f"--label {label!r}: use letters, digits and . _ = + - "
                                 f"(it names the run directory), not {', '.join(OUTPUTS)}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"--label: each label must be different, got {list(labels)}")
        return list(labels)
    out: list[str] = []
    for text in variants:
        name, overrides = parse_variant(text)
        if name.endswith(".toml") or "/" in name or "\\" in name:
            name = Path(name).stem
        base = _UNSAFE.sub("_", "_".join([name, *overrides])).strip("._") or "variant"
        label, n = base, 1
        while label in out or label in OUTPUTS:
            n += 1
            label = f"{base}-{n}"
        out.append(label)
    return out


def compare(tape: str | Path, variants: list[str], population: str | Path,
            output: str | Path, *, labels: Sequence[str] | None = None,
            overrides: Sequence[str] = (), mode: str = DEFAULT_MODE,
            venue: str | None = None, seed: int | None = None,
            inject: str | Path | None = None, index_prior_close: float = 0.0,
            jobs: int | None = None, progress: VariantDone | None = None,
            strategy: str | None = None, strategy_params: dict[str, Any] | None = None,
            overwrite: bool = False) -> pd.DataFrame:
    """Replay ``tape`` once per rule variant, each in its own process, into
    ``output/<label>/``; write the comparison files (:data:`OUTPUTS`) and return its table.

    ``overrides`` apply to every variant before the variant's own. Every variant's rules,
    the tape, the population and the options are checked before any run starts; a variant
    that fails while running raises :class:`VariantError` naming it. The workers are spawned:
    a script calling this needs the ``if __name__ == "__main__":`` guard. With ``strategy``
    (``FILE.py:Class``), the same strategy trades in every variant, its account under each
    variant's rules, and its figures join the table.

    ``venue`` None follows the tape (:func:`replay.runner.default_venue`). ``output`` may
    hold only this comparison's own files (a resumed run) unless ``overwrite``. A variant
    reused from an earlier run reaches ``progress`` with ``summary["compare"]["reused"]``
    True."""
    from brokers.engine import Broker
    from brokers.population import KIND_CODES, rekind
    from brokers.rules import load_rules
    from replay.broker_run import load_population
    from replay.engine import VENUES
    from replay.tape import Tape
    from venues import loop

    if len(variants) < 2:
        raise ValueError(f"compare needs at least two --broker variants, got {len(variants)}")
    if mode not in loop.MODES or mode == "generative":
        raise ValueError(f"--mode {mode!r}: compare replays a tape in absolute, relative or "
                         "propagator mode")
    if venue is not None and venue not in VENUES:
        raise ValueError(f"--venue {venue!r}: choose one of {', '.join(VENUES)}")
    jobs = jobs if jobs is not None else min(len(variants), os.cpu_count() or 1)
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: must be at least 1")
    names = variant_labels(variants, labels)
    t = Tape(tape)
    venue = venue if venue is not None else default_venue(t.instruments)
    seed = seed if seed is not None else (t.session_seed or 0)
    pop = load_population(Path(population), t, seed)
    if inject is not None and not Path(inject).is_file():
        raise FileNotFoundError(f"{inject}: no such file of orders to inject")
    if strategy:
        from strategies.base import load_strategy

        load_strategy(strategy)(**(strategy_params or {}))  # its parameters, before any run
    parsed = []
    for text in variants:
        name, own = parse_variant(text)
        sets = [*overrides, *own]
        try:
            rules = load_rules(name, sets)
            # a variant of another kind than the population's accounts takes them as its own
            # (brokers.population.rekind; docs/brokers.md: comparing kinds)
            held = (np.asarray(pop.kind) == KIND_CODES[rules.kind]).any()
            Broker(rules, pop if held else rekind(pop, rules.kind))
        except (ValueError, FileNotFoundError) as exc:
            raise ValueError(f"variant {text!r}: {exc}") from None
        parsed.append((name, sets, not held))

    output = Path(output)
    _check_output(output, names, overwrite)
    target, output = output, (temp_beside(output) if overwrite and output.exists() else output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        for name in OUTPUTS:  # a failed rerun leaves no stale comparison behind
            (output / name).unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(output, exc) from None
    specs = [RunSpec(tape=Path(tape), output=output / label, mode=mode, venue=venue, seed=seed,
                     inject=Path(inject) if inject else None, broker=name,
                     population=Path(population), overrides=tuple(sets), rekind=other,
                     index_prior_close=index_prior_close, strategy=strategy,
                     strategy_params=dict(strategy_params or {}))
             for label, (name, sets, other) in zip(names, parsed, strict=True)]
    inputs = _inputs(tape, population, inject, strategy)
    try:
        _run_all(names, variants, specs, jobs, progress, inputs)
        if output != target:  # --overwrite: the new comparison replaces the old whole
            swap_into_place(output, target)
    except BaseException:
        if output != target:
            shutil.rmtree(output, ignore_errors=True)
        raise
    run_dirs = [target / label for label in names]
    summaries = [verify(d) for d in run_dirs]
    table = comparison_table(names, [(n, s) for n, s, _ in parsed], summaries, run_dirs)
    atomic_write(target / "comparison.csv", lambda p: table.to_csv(p, index=False))
    atomic_write(target / "comparison.parquet",
                 lambda p: pq.write_table(pa.Table.from_pandas(table, preserve_index=False), p))
    write_text(target / "comparison.html",
               comparison_html(table, t.instruments, venue,
                               title=f"{Path(tape).name}: {len(names)} broker rule variants, "
                                     f"population {Path(population).name}, {mode} mode, "
                                     f"{venue} venue, seed {seed}"))
    return table


def _check_output(output: Path, labels: Sequence[str], overwrite: bool) -> None:
    """``output`` may be absent, or hold this comparison's own files: the comparison
    files, the variants' run directories and temporary names. Anything else (a run
    directory of a variant not compared now, a file of the user's) is refused unless
    ``overwrite``, which replaces ``output`` whole."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: exists and is not a directory; choose another -o")
    if overwrite or not output.is_dir():
        return
    own = set(OUTPUTS) | set(labels)
    for entry in sorted(output.iterdir()):
        if entry.name not in own and not is_temporary(entry):
            raise ValueError(f"{entry}: not part of this comparison (its variants: "
                             f"{', '.join(labels)}); remove it, or give --overwrite to "
                             f"replace {output} whole")


def _inputs(tape, population, inject, strategy) -> dict[str, str]:
    """The input files' SHA-256: a variant is reused only if its inputs are the same."""
    files = {"tape": tape, "population": population, "inject": inject}
    if strategy and strategy.rpartition(":")[0].endswith(".py") \
            and Path(strategy.rpartition(":")[0]).is_file():
        files["strategy"] = strategy.rpartition(":")[0]
    out = {}
    for key, path in files.items():
        if path is None:
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
        out[key] = digest.hexdigest()
    return out


def reusable(spec: RunSpec, inputs: dict[str, str]) -> dict[str, Any] | None:
    """The summary of the complete run directory of ``spec`` made by the same options,
    code versions and input files; None when there is none (it must run)."""
    from replay.results import versions

    if not spec.output.is_dir():
        return None
    try:
        summary = verify(spec.output)
    except (ValueError, FileNotFoundError):
        return None
    made = summary.get("compare", {})
    if made.get("spec") == spec.config() and made.get("inputs") == inputs \
            and summary.get("versions") == versions():
        return summary
    return None


def _run_variant(spec: RunSpec, label: str, variant: str,
                 inputs: dict[str, str]) -> dict[str, Any]:
    """One variant in a worker process; its summary.json gets a ``compare`` section: the
    label, the variant text, the options and input digests it was made with (what a
    resumed comparison checks) and the worker's process id."""
    from dataclasses import replace

    from replay.runner import run_tape

    section = {"label": label, "variant": variant, "spec": spec.config(), "inputs": inputs,
               "worker_pid": os.getpid()}
    # an earlier, different run of this variant is replaced whole
    return run_tape(replace(spec, overwrite=True), sections={"compare": section})


_PR_SET_PDEATHSIG = 1


def _worker_init(parent: int) -> None:
    """Make a worker die with the process that started it: the kernel kills it when its
    parent exits (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``), and a watcher thread exits
    it if its parent is gone anyway (the parent died before the prctl, another system)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _run_all(labels: list[str], variants: Sequence[str], specs: list[RunSpec], jobs: int,
             progress: VariantDone | None, inputs: dict[str, str]) -> None:
    """Run every spec not reusable from an earlier run, one fresh spawned process per
    variant; on a failure the variants not yet started are cancelled and every failure is
    raised together."""
    failures: list[str] = []
    todo = []
    for spec, label, text in zip(specs, labels, variants, strict=True):
        earlier = reusable(spec, inputs)
        if earlier is None:
            remove_stale(spec.output)
            todo.append((spec, label, text))
        elif progress is not None:
            earlier["compare"] = {**earlier["compare"], "reused": True}
            progress(label, earlier)
    if not todo:
        return
    # spawn, not fork: the parent may hold numba's and Arrow's threads; a fresh process per
    # variant (max_tasks_per_child=1) so no state passes from one variant to the next
    with ProcessPoolExecutor(max_workers=min(jobs, len(todo)),
                             mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1, initializer=_worker_init,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_run_variant, spec, label, text, inputs): (label, text)
                   for spec, label, text in todo}
        for future in as_completed(futures):
            label, text = futures[future]
            if future.cancelled():
                continue
            exc = future.exception()
            if exc is not None:
                failures.append(f"variant {label!r} ({text}) failed: "
                                f"{type(exc).__name__}: {exc}")
                for other in futures:
                    other.cancel()
            elif progress is not None:
                progress(label, future.result())
    if failures:
        raise VariantError("; ".join(failures))


def comparison_table(labels: Sequence[str], parsed: Sequence[tuple[str, Sequence[str]]],
                     summaries: Sequence[dict[str, Any]],
                     run_dirs: Sequence[Path]) -> pd.DataFrame:
    """One row per variant, in the order given, from each run's summary.json. Figures a run
    does not have (the venue's, at the generic venue; amplification without a sell on the
    tape) are missing, not 0."""
    rows = []
    for label, (name, sets), summary, run_dir in zip(labels, parsed, summaries, run_dirs,
                                                     strict=True):
        row: dict[str, Any] = {"label": label, "broker": name, "overrides": ",".join(sets)}
        for column, section, key in FIGURES:
            value = summary.get(section, {}).get(key)
            row[column] = np.nan if value is None and column == "amplification" else value
        st = summary.get("strategy")
        if st:
            row |= {"strategy_final_equity": st["final_equity"],
                    "strategy_margin_calls": st["margin_calls"],
                    "strategy_liquidations": st["liquidations"]}
        rows.append(row | {"run_dir": str(run_dir)})
    table = pd.DataFrame(rows).astype(_DTYPES)
    where = table.columns.get_loc("counterfactual_max_drawdown") + 1
    table.insert(where, "excess_drawdown",
                 table.max_drawdown - table.counterfactual_max_drawdown)
    return table[[c for c in table.columns if c != "run_dir"] + ["run_dir"]]

