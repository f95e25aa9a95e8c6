"""Broker rule variants on the identical tape, population and seed: ``cascade compare``.

Each variant is a preset or rules TOML with ``key=value`` overrides
(``krx-credit,maintenance_ratio=1.3``). A comparison is a sweep of one axis
(:func:`as_sweep`, replay/sweep, docs/sweeps.md): its variants run as the sweep's cells
on the local backend, each cell's full run directory (:func:`replay.runner.run_tape`)
kept as ``DIR/<label>/``, and the figures of all of them are written side by side:
``comparison.csv`` and ``comparison.parquet`` (one row per variant, the same bytes for the
same inputs) and ``comparison.html`` (replay/comparison_page.py).

Each finished variant is recorded in ``DIR/cells/`` (replay/sweep/store.py) under the hash
of everything that decides it (options, rules, code versions, input files by their
SHA-256), and its run directory is complete or absent (replay/rundir.py), so a comparison
that was killed resumes: a variant recorded with a complete run directory is reused, not
run again; any other is run again and replaced. The workers die with the process that
started them. ``overwrite`` runs every variant again into a directory beside the output
and replaces it whole.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
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
from replay.runner import DEFAULT_MODE, default_venue
from replay.sweep.store import RECORDS

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
    """Replay ``tape`` once per rule variant, in the sweep's worker processes, into
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
    spec = as_sweep(tape, names, variants, [(n, s) for n, s, _ in parsed], population,
                    output, mode=mode, venue=venue, seed=seed, inject=inject,
                    index_prior_close=index_prior_close, strategy=strategy,
                    strategy_params=strategy_params)
    try:
        _run_cells(spec, output.absolute(), jobs, progress)
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


def as_sweep(tape: str | Path, labels: Sequence[str], variants: Sequence[str],
             parsed: Sequence[tuple[str, Sequence[str]]], population: str | Path,
             output: Path, *, mode: str, venue: str, seed: int,
             inject: str | Path | None, index_prior_close: float, strategy: str | None,
             strategy_params: dict[str, Any] | None):
    """The comparison as a sweep of one axis (replay/sweep): a variant per label, on the
    one tape, population, mode and seed, each cell's run directory kept as
    ``output/<label>/``."""
    from dataclasses import replace

    from replay.sweep.spec import keyed, parse_spec

    def absolute(path: str | Path) -> str:
        return str(Path(path).resolve())

    rules = {label: ",".join([absolute(name) if name.endswith(".toml") else name, *sets])
             for label, (name, sets) in zip(labels, parsed, strict=True)}
    sweep: dict[str, Any] = {"seeds": [seed], "modes": [mode], "baseline": labels[0],
                             "venue": venue, "index_prior_close": index_prior_close}
    if inject is not None:
        sweep["inject"] = absolute(inject)
    if strategy:
        module, _, cls = strategy.rpartition(":")
        sweep["strategy"] = f"{absolute(module)}:{cls}" if module.endswith(".py") and \
            Path(module).is_file() else strategy  # else a module, or a shipped example
        sweep["params"] = dict(strategy_params or {})
    spec = parse_spec({"sweep": sweep, "variants": rules,
                       "tapes": {Path(tape).stem or "tape": {"file": absolute(tape)}},
                       "populations": {Path(population).stem or "population":
                                       {"file": absolute(population)}}},
                      output / "comparison")
    given = dict(zip(labels, variants, strict=True))
    spec = replace(spec, run_names="variant",
                   variants=tuple(replace(v, given=given[v.name]) for v in spec.variants))
    cells = tuple(replace(c, variant=replace(c.variant, given=given[c.variant.name]))
                  for c in spec.cells)
    return keyed(replace(spec, cells=cells))


def _run_cells(spec, output: Path, jobs: int, progress: VariantDone | None) -> None:
    """Run the variants not recorded with a complete run directory (the sweep's local
    backend, replay.sweep.run.execute), reporting the reused ones first; a failed variant
    raises :class:`VariantError` naming it, after the others have run."""
    from replay.rundir import is_complete
    from replay.sweep import store
    from replay.sweep.run import execute

    def stale(cell, record) -> bool:
        return record["status"] != "ok" or not is_complete(output / cell.variant.name)

    records = store.read_records(output)
    for cell in spec.cells:
        rec = records.get(cell.key)
        if rec is not None and not stale(cell, rec):
            if progress is not None:
                summary = verify(output / cell.variant.name)
                summary["compare"] = {**summary.get("compare", {}), "reused": True}
                progress(cell.variant.name, summary)
        else:
            remove_stale(output / cell.variant.name)

    def done(rec: dict[str, Any], n: int, failed: int, total: int) -> None:
        if rec["status"] == "ok" and progress is not None:
            progress(rec["axes"]["variant"], verify(output / rec["axes"]["variant"]))

    ran = execute(spec, output, jobs=jobs, backend="local", address=None,
                  populations={p.name: p.path for p in spec.populations}, runs=output,
                  progress=done, stale=stale)
    failures = [f"variant {c.variant.name!r} ({c.variant.given}) failed: "
                f"{ran.records[c.key]['error']}" for c in spec.cells
                if ran.records[c.key]["status"] != "ok"]
    if failures:
        raise VariantError("; ".join(failures))


def _check_output(output: Path, labels: Sequence[str], overwrite: bool) -> None:
    """``output`` may be absent, or hold this comparison's own files: the comparison
    files, the variants' run directories and temporary names. Anything else (a run
    directory of a variant not compared now, a file of the user's) is refused unless
    ``overwrite``, which replaces ``output`` whole."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: exists and is not a directory; choose another -o")
    if overwrite or not output.is_dir():
        return
    own = set(OUTPUTS) | set(labels) | {RECORDS}
    for entry in sorted(output.iterdir()):
        if entry.name not in own and not is_temporary(entry):
            raise ValueError(f"{entry}: not part of this comparison (its variants: "
                             f"{', '.join(labels)}); remove it, or give --overwrite to "
                             f"replace {output} whole")


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

