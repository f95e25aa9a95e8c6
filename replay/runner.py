"""One replay of a tape into a run directory: what ``cascade replay`` does, as a function.

:func:`run_tape` is shared by the command line, ``cascade compare`` (which calls it once per
rule variant, each in its own process) and the demo. With a broker it also runs the
counterfactual: the same tape, seed, injected orders and strategy with the broker's forced
orders switched off (replay/broker_run.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: ``progress(label, total)`` -> a context manager whose value is ``advance(n)``.
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]


@dataclass
class RunSpec:
    """Everything that decides a run's output (recorded under ``config`` in summary.json).

    ``seed`` None takes the tape's own session seed (synthetic tapes), else 0.
    ``strategy`` is ``FILE.py:Class`` or ``module:Class``; ``strategy_params`` are passed to
    its constructor."""

    tape: Path
    output: Path
    mode: str = "absolute"
    venue: str = "generic"
    seed: int | None = None
    inject: Path | None = None
    broker: str | None = None
    population: Path | None = None
    overrides: Sequence[str] = ()
    index_prior_close: float = 0.0
    chunk_rows: int = 1 << 20
    strategy: str | None = None
    strategy_params: dict[str, Any] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items() if k != "output"}


def _no_progress(label: str, total: int | None):
    return nullcontext(lambda n: None)


def run_tape(spec: RunSpec, progress: ProgressFactory = _no_progress) -> dict[str, Any]:
    """Replay ``spec.tape`` into ``spec.output``; return the summary written there."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from replay.engine import Replay
    from replay.inject import read_injected
    from replay.results import RunWriter, add_to_summary
    from replay.tape import Tape

    t = Tape(spec.tape)
    seed = spec.seed if spec.seed is not None else (t.session_seed or 0)
    injected = read_injected(spec.inject, t.instruments) if spec.inject else None
    if bool(spec.broker) != bool(spec.population):
        raise ValueError("a broker needs both --broker and --population")
    if spec.overrides and not spec.broker:
        raise ValueError("--set overrides a broker's rules: give --broker")
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

    rp, broker, host = make_replay()
    writer = RunWriter(spec.output, t.instruments)  # reports stream to disk as they come
    with progress(f"replay ({spec.mode}, {spec.venue})", len(t)) as advance:
        result = rp.run(t.chunks(spec.chunk_rows), injected, progress=advance, sink=writer)
    config = spec.config()
    writer.close(result, seed=seed, config=config)
    extra: dict[str, Any] = {}
    if host is not None:
        extra["strategy"] = host.write_tables(spec.output)
    if broker is not None and rules is not None:
        from replay.broker_run import metrics, write_broker_tables

        write_broker_tables(spec.output, broker)
        with progress("counterfactual (no forced orders)", len(t)) as advance:
            cf, cf_broker, _ = make_replay(submit_forced=False)
            cf_result = cf.run(t.chunks(spec.chunk_rows), injected, progress=advance)
        pq.write_table(pa.Table.from_pandas(cf_result.trades, preserve_index=False),
                       spec.output / "counterfactual_trades.parquet")
        trades = pq.read_table(spec.output / "trades.parquet").to_pandas()
        extra["broker"] = metrics(broker, trades)
        extra["counterfactual"] = metrics(cf_broker, cf_result.trades)
        extra["config"] = {**config, "broker": rules.name}
    if extra:
        add_to_summary(spec.output, extra)
    return json.loads((spec.output / "summary.json").read_text())
