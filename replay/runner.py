"""One replay of a tape into a run directory: what ``cascade replay`` does, as a function.

:func:`run_tape` is shared by the command line, ``cascade compare`` (which calls it once per
rule variant, each in its own process) and the demo. With a broker it also runs the
counterfactual: the same tape, seed, injected orders and strategy with the broker's forced
orders switched off (replay/broker_run.py). The run is written into a temporary directory
beside ``output`` and renamed into place once complete (replay/rundir.py).

Defaults, the same for every command: the venue follows the tape's instruments (all on
XKRX: the ``krx`` venue, else ``generic``), and the mode is ``relative``
(:func:`default_venue`, :data:`DEFAULT_MODE`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

#: ``progress(label, total)`` -> a context manager whose value is ``advance(n)``.
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]

#: The replay mode when none is given: injected impact is permanent (docs/replay-modes.md).
DEFAULT_MODE = "relative"
#: Rows of the tape's head replayed once, unmeasured, to load the compiled kernels.
WARM_UP_ROWS = 20_000


def default_venue(instruments) -> str:
    """``krx`` when every instrument of the tape is listed on XKRX, else ``generic``."""
    venues = {i.venue for i in instruments}
    return "krx" if venues == {"XKRX"} else "generic"


@dataclass
class RunSpec:
    """Everything that decides a run's output (recorded under ``config`` in summary.json).

    ``seed`` None takes the tape's own session seed (synthetic tapes), else 0.
    ``strategy`` is ``FILE.py:Class`` or ``module:Class``; ``strategy_params`` are passed to
    its constructor."""

    tape: Path
    output: Path
    mode: str = DEFAULT_MODE
    venue: str | None = None  # None: default_venue of the tape's instruments
    seed: int | None = None
    inject: Path | None = None
    broker: str | None = None
    population: Path | None = None
    overrides: Sequence[str] = ()
    index_prior_close: float = 0.0
    chunk_rows: int = 1 << 20
    strategy: str | None = None
    strategy_params: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False  # replace a non-empty output whole (else it is refused)

    def config(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items() if k not in ("output", "overwrite")}


def _no_progress(label: str, total: int | None):
    return nullcontext(lambda n: None)


def run_tape(spec: RunSpec, progress: ProgressFactory = _no_progress, *,
             sections: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replay ``spec.tape`` into the run directory ``spec.output``; return the summary
    written there (``sections`` are added to it).

    A non-empty output is refused before any work unless ``spec.overwrite``. Timings:
    ``load_seconds`` (inputs read, compiled kernels loaded), ``replay_seconds`` (the replay
    alone; ``events_per_second`` is over it) and ``wall_seconds`` (everything)."""
    from replay.engine import Replay
    from replay.inject import read_injected
    from replay.results import RunWriter
    from replay.rundir import RunDirectory, check_target, verify
    from replay.tape import Tape

    t_start = time.perf_counter()
    if bool(spec.broker) != bool(spec.population):
        raise ValueError("a broker needs both --broker and --population")
    if spec.overrides and not spec.broker:
        raise ValueError("--set overrides a broker's rules: give --broker")
    check_target(spec.output, spec.overwrite)
    t = Tape(spec.tape)
    if spec.venue is None:
        spec = replace(spec, venue=default_venue(t.instruments))
    seed = spec.seed if spec.seed is not None else (t.session_seed or 0)
    injected = read_injected(spec.inject, t.instruments) if spec.inject else None
    rules = pop = None
    if spec.broker:
        from brokers.rules import load_rules
        from replay.broker_run import load_population

        rules = load_rules(spec.broker, list(spec.overrides))
        pop = load_population(spec.population, t, seed)
    strategy_class = None
    if spec.strategy:
        from strategies.base import load_strategy

        strategy_class = load_strategy(spec.strategy)

    def make_replay(submit_forced: bool = True):
        """A fresh replay with the broker (and strategy) attached."""
        rp = Replay(t.instruments, spec.mode, venue=spec.venue, seed=seed,
                    index_prior_close=spec.index_prior_close)
        broker = host = None
        if strategy_class is not None:
            from strategies.base import attach_strategy

            host = attach_strategy(rp, strategy_class(**spec.strategy_params), rules=rules,
                                   population=pop, seed=seed, submit_forced=submit_forced)
            broker = host.population_broker
        elif rules is not None:
            from brokers.engine import Broker

            broker = Broker(rules, pop, seed=seed, submit_orders=submit_forced).attach(rp)
        return rp, broker, host

    with RunDirectory(spec.output, overwrite=spec.overwrite) as run:
        warm_up(t, spec.mode, spec.venue, seed)
        load_seconds = time.perf_counter() - t_start
        rp, broker, host = make_replay()
        snapshots = None
        if broker is not None and rules is not None:
            from replay.broker_run import AccountSnapshots

            snapshots = AccountSnapshots(run.stream("accounts.parquet"))
            broker.snapshot_sink = snapshots
        writer = RunWriter(run.path, t.instruments, run.run_id)  # streams as rows come
        with progress(f"replay ({spec.mode}, {spec.venue})", len(t)) as advance:
            result = rp.run(t.chunks(spec.chunk_rows), injected, progress=advance, sink=writer)
        config = spec.config()
        summary = writer.close(result, seed=seed, config=config)
        if host is not None:
            summary["strategy"] = host.write_tables(run.path, run.run_id)
        if broker is not None and rules is not None:
            from replay.broker_run import (
                CounterfactualTrades,
                discard_snapshot,
                metrics,
                write_broker_tables,
            )

            write_broker_tables(run.path, broker, snapshots, run.run_id)
            with progress("counterfactual (no forced orders)", len(t)) as advance:
                cf, cf_broker, _ = make_replay(submit_forced=False)
                cf_broker.snapshot_sink = discard_snapshot
                cf_trades = CounterfactualTrades(run.stream("counterfactual_trades.parquet"))
                cf.run(t.chunks(spec.chunk_rows), injected, progress=advance, sink=cf_trades)
                cf_trades.close()
            summary["broker"] = metrics(broker, run.path / "trades.parquet")
            summary["counterfactual"] = metrics(cf_broker,
                                                run.path / "counterfactual_trades.parquet")
            summary["config"] = {**config, "broker": rules.name}
            summary["rules"] = asdict(rules)  # as applied, overrides included
        summary["load_seconds"] = round(load_seconds, 6)
        summary["wall_seconds"] = round(time.perf_counter() - t_start, 6)
        summary.update(sections or {})
        run.finish(summary)
    return verify(spec.output)


def warm_up(tape, mode: str, venue: str, seed: int) -> None:
    """Load the compiled kernels before the measured replay: a throwaway replay of the
    tape's first :data:`WARM_UP_ROWS` rows, nothing attached (it writes nothing)."""
    from replay.engine import Replay

    head = next(iter(tape.chunks(WARM_UP_ROWS)), None)
    if head is not None:
        Replay(tape.instruments, mode, venue=venue, seed=seed).run([head])
