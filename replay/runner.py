"""One replay of a tape into a run directory: what ``cascade replay`` does, as a function.

:func:`run_tape` is shared by the command line, ``cascade compare`` (which calls it once per
rule variant, as a sweep cell whose run is kept) and the demo. With a broker it also runs the
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


@dataclass(frozen=True)
class BrokerSpec:
    """One more broker of a run: its rules (a preset or a rules TOML), its accounts (None:
    the run's first population, shared: each broker takes the accounts of its kind) and its
    rule overrides."""

    rules: str
    population: Path | None = None
    overrides: tuple[str, ...] = ()
    #: take the population's accounts as accounts of the rules' kind when it holds none
    #: (brokers.population.rekind): how cascade compare compares kinds
    rekind: bool = False


@dataclass
class RunSpec:
    """Everything that decides a run's output (recorded under ``config`` in summary.json).

    ``seed`` None takes the tape's own session seed (synthetic tapes), else 0.
    ``strategy`` is ``FILE.py:Class`` or ``module:Class``; ``strategy_params`` are passed to
    its constructor. ``broker``, ``population`` and ``overrides`` are the first broker;
    ``more_brokers`` the others of the same market (docs/brokers.md: several brokers)."""

    tape: Path | None  # None: generative mode, the flow of ``profile``
    output: Path
    mode: str = DEFAULT_MODE
    venue: str | None = None  # None: default_venue of the tape's instruments
    seed: int | None = None
    inject: Path | None = None
    broker: str | None = None
    population: Path | None = None
    overrides: Sequence[str] = ()
    index_prior_close: float = 0.0  # KOSPI's prior close (index points; 0: none)
    #: real prior closes by index name (KOSPI, KOSDAQ, KOSPI200): docs/krx-venue.md
    index_closes: dict[str, float] = field(default_factory=dict)
    chunk_rows: int = 1 << 20
    strategy: str | None = None
    strategy_params: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False  # replace a non-empty output whole (else it is refused)
    more_brokers: tuple[BrokerSpec, ...] = ()
    rekind: bool = False  # the first broker's BrokerSpec.rekind
    profile: str | None = None  # generative mode: the flow's profile, days and shocks
    days: int = 1
    shocks: dict[int, float] = field(default_factory=dict)

    def brokers(self) -> list[BrokerSpec]:
        """Every broker of the run, in the order given (the order they are called in)."""
        if not self.broker:
            return []
        first = BrokerSpec(self.broker, self.population, tuple(self.overrides), self.rekind)
        return [first, *self.more_brokers]

    def config(self) -> dict[str, Any]:
        def plain(v):
            return str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        config = {k: plain(v) for k, v in asdict(self).items()
                  if k not in ("output", "overwrite", "more_brokers", "rekind", "profile",
                               "days", "shocks", "index_closes")}
        if self.index_closes:
            config["index_closes"] = dict(self.index_closes)
        if self.mode == "generative":
            config.update(profile=self.profile, days=self.days,
                          shocks={str(k): v for k, v in self.shocks.items()})
        if self.rekind:
            config["rekind"] = True
        if self.more_brokers:
            config["more_brokers"] = [{k: plain(v) for k, v in asdict(b).items()}
                                      for b in self.more_brokers]
        return config


def index_closes(spec: RunSpec) -> dict[str, float]:
    """The run's real index prior closes by name: ``index_prior_close`` is KOSPI's, and
    ``index_closes`` may name KOSPI too, with the same value. ValueError otherwise, or for a
    close that is not a positive number."""
    from venues.krx.venue import index_closes as parse

    kospi = parse(spec.index_prior_close)
    named = parse(spec.index_closes)
    if kospi and "KOSPI" in named and named["KOSPI"] != kospi["KOSPI"]:
        raise ValueError(f"--index-prior-close {kospi['KOSPI']:g} and --index-close "
                         f"KOSPI={named['KOSPI']:g} disagree: give KOSPI's close once")
    return {**kospi, **named}


def no_progress(label: str, total: int | None):
    return nullcontext(lambda n: None)


@dataclass
class Prepared:
    """A run's inputs read and checked, ready to replay any number of times: the tape (or
    the generative flow), the seed, the injected orders, the index closes, each broker's
    (label, rules, population) and the strategy's class. :meth:`make_replay` gives a fresh
    replay with everything attached; :meth:`replay_all` drives it. ``cascade replay`` runs
    it twice (with the forced orders, then the counterfactual) into a run directory; a
    sweep cell (replay/sweep/) runs it in memory."""

    spec: RunSpec
    tape: Any  # replay.tape.Tape, a tape held in memory, or replay.generative.FlowInputs
    seed: int
    injected: Any
    closes: dict[str, float]
    market: list[tuple[str, Any, Any]]
    splits: dict[str, Any]
    strategy_class: Any = None

    @property
    def generative(self) -> bool:
        from replay.generative import FlowInputs

        return isinstance(self.tape, FlowInputs)

    def make_replay(self, submit_forced: bool = True):
        """A fresh replay with the brokers (and strategy) attached, in the order given; a
        margin strategy's account joins the first broker of its kind (with none, a broker of
        its kind's preset holding its account alone)."""
        from brokers.engine import Broker
        from replay.engine import Replay

        spec, t, seed = self.spec, self.tape, self.seed
        rp = t.replay(spec.venue, seed) if self.generative else Replay(
            t.instruments, spec.mode, venue=spec.venue, seed=seed,
            index_prior_close=self.closes)
        brokers, host = [], None
        cls = self.strategy_class
        strategy = cls(**spec.strategy_params) if cls else None
        for _, rules_, pop in self.market:
            if strategy is not None and host is None and strategy.account == rules_.kind:
                from strategies.base import attach_strategy

                host = attach_strategy(rp, strategy, rules=rules_, population=pop, seed=seed,
                                       submit_forced=submit_forced)
                brokers.append(host.population_broker)
            else:
                brokers.append(Broker(rules_, pop, seed=seed,
                                      submit_orders=submit_forced).attach(rp))
        if strategy is not None and host is None:
            from strategies.base import attach_strategy

            host = attach_strategy(rp, strategy, seed=seed, submit_forced=submit_forced)
        return rp, brokers, host

    def replay_all(self, rp, sink, advance=None):
        """The run's events through ``rp``: the tape's chunks, or the generative flow."""
        if self.generative:
            result = self.tape.run(rp, self.seed, self.injected, sink)
            if advance is not None:
                advance(result.events)
            return result
        return rp.run(self.tape.chunks(self.spec.chunk_rows), self.injected,
                      progress=advance, sink=sink)


def check_spec(spec: RunSpec) -> None:
    """The checks of ``spec`` that read no file: a broker has a population, and so on."""
    if bool(spec.broker) != bool(spec.population):
        raise ValueError("a broker needs both --broker and --population")
    if spec.overrides and not spec.broker:
        raise ValueError("--set overrides a broker's rules: give --broker")
    if spec.more_brokers and not spec.broker:
        raise ValueError("more brokers need a first one (RunSpec.broker)")


def prepare(spec: RunSpec, *, tape: Any = None,
            populations: dict[Any, Any] | None = None) -> Prepared:
    """Read and check everything ``spec`` names: the tape (``tape``: one already read, in
    its place), the injected orders, the index closes, the brokers' rules and populations
    (``populations``: a cache of those already loaded, shared between calls) and the
    strategy's class. ValueError names what is wrong."""
    from replay.inject import read_injected
    from replay.tape import Tape

    check_spec(spec)
    if spec.mode == "generative":
        from replay.generative import FlowInputs

        if spec.tape is not None:
            raise ValueError("generative mode takes no tape; drop the TAPE argument")
        t = FlowInputs(spec.profile or "krx-smallcap", spec.days, spec.shocks)
        spec = replace(spec, venue=spec.venue or "generic")
        seed = spec.seed or 0
    else:
        if spec.tape is None:
            raise ValueError(f"{spec.mode} mode replays a tape: give TAPE")
        t = tape if tape is not None else Tape(spec.tape)
        if spec.venue is None:
            spec = replace(spec, venue=default_venue(t.instruments))
        seed = spec.seed if spec.seed is not None else (t.session_seed or 0)
    injected = read_injected(spec.inject, t.instruments) if spec.inject else None
    closes = index_closes(spec)
    market = []  # (label, rules, population) per broker
    splits: dict[str, Any] = {}  # a [market] population's split, per spec
    if spec.broker:
        from replay.broker_run import load_brokers

        applied: list[bool] = []
        market = load_brokers(spec.brokers(), t, seed, splits, cache=populations,
                              rekinded=applied)
        # the run records a rekind only where it was applied (docs/brokers.md: comparing kinds)
        spec = replace(spec, rekind=applied[0], more_brokers=tuple(
            replace(b, rekind=a) for b, a in zip(spec.more_brokers, applied[1:], strict=True)))
    strategy_class = None
    if spec.strategy:
        from strategies.base import load_strategy

        strategy_class = load_strategy(spec.strategy)
    return Prepared(spec, t, seed, injected, closes, market, splits, strategy_class)


def run_tape(spec: RunSpec, progress: ProgressFactory = no_progress, *,
             sections: dict[str, Any] | None = None) -> dict[str, Any]:
    """Replay ``spec.tape`` into the run directory ``spec.output``; return the summary
    written there (``sections`` are added to it).

    A non-empty output is refused before any work unless ``spec.overwrite``. Timings:
    ``load_seconds`` (inputs read, compiled kernels loaded), ``replay_seconds`` (the replay
    alone; ``events_per_second`` is over it) and ``wall_seconds`` (everything)."""
    from replay.results import RunWriter
    from replay.rundir import RunDirectory, check_target, verify

    t_start = time.perf_counter()
    check_spec(spec)
    check_target(spec.output, spec.overwrite)
    run_ = prepare(spec)
    spec, t, seed, market = run_.spec, run_.tape, run_.seed, run_.market
    rules = market[0][1] if market else None

    with RunDirectory(spec.output, overwrite=spec.overwrite) as run:
        if not run_.generative:
            warm_up(t, spec.mode, spec.venue, seed)
        load_seconds = time.perf_counter() - t_start
        rp, brokers, host = run_.make_replay()
        labels = [label for label, _, _ in market] if len(market) > 1 else [None]
        snapshots = None
        if brokers:
            from replay.broker_run import AccountSnapshots

            stream = run.stream("accounts.parquet")
            snapshots = [AccountSnapshots(stream, label) for label in labels]
            for broker, sink in zip(brokers, snapshots, strict=True):
                broker.snapshot_sink = sink
        writer = RunWriter(run.path, t.instruments, run.run_id)  # streams as rows come
        with progress(f"replay ({spec.mode}, {spec.venue})", len(t) or None) as advance:
            result = run_.replay_all(rp, writer, advance)
        config = spec.config()
        summary = writer.close(result, seed=seed, config=config)
        if host is not None:
            summary["strategy"] = host.write_tables(run.path, run.run_id)
        if brokers:
            from replay.broker_run import (
                CounterfactualTrades,
                broker_sections,
                discard_snapshot,
                trade_figures,
                write_broker_tables,
            )

            write_broker_tables(run.path, brokers, labels, snapshots[0].stream, run.run_id)
            with progress("counterfactual (no forced orders)", len(t) or None) as advance:
                cf, cf_brokers, _ = run_.make_replay(submit_forced=False)
                for b in cf_brokers:
                    b.snapshot_sink = discard_snapshot
                cf_trades = CounterfactualTrades(run.stream("counterfactual_trades.parquet"))
                run_.replay_all(cf, cf_trades, advance)
                cf_trades.close()
            summary.update(broker_sections(
                brokers, cf_brokers, labels, trade_figures(run.path / "trades.parquet"),
                trade_figures(run.path / "counterfactual_trades.parquet")))
            summary["config"] = {**config, "broker": rules.name}
            summary["rules"] = asdict(rules)  # as applied, overrides included
            if len(market) > 1:
                summary["config"]["brokers"] = labels
                summary["rules_by_broker"] = {label: asdict(r) for label, r, _ in market}
        summary["load_seconds"] = round(load_seconds, 6)
        summary["wall_seconds"] = round(time.perf_counter() - t_start, 6)
        if run_.splits:
            summary["population_split"] = run_.splits
        if spec.mode != "generative" and len(t.instruments) > 1:
            summary["market"] = market_record(t.instruments)
        summary.update(sections or {})
        run.finish(summary)
    return verify(spec.output)


def market_record(instruments) -> dict[str, Any]:
    """summary.json's ``market`` of a tape of several names: how many, per market, and each
    name's market, shares outstanding, prior close and KOSPI200 membership, from which the
    report draws the indices through the day (docs/reports.md: a market run)."""
    columns = ["instrument", "symbol", "market", "shares", "prior_close", "kospi200"]
    rows = [[int(i.instrument_id), str(i.symbol), str(i.market or ""),
             int(i.shares_outstanding or 0), int(i.prev_close_units or 0),
             "KOSPI200" in str(i.index_member or "")] for i in instruments]
    by_market: dict[str, int] = {}
    for r in rows:
        by_market[r[2] or "unknown"] = by_market.get(r[2] or "unknown", 0) + 1
    return {"names": len(rows), "by_market": by_market,
            "constituents": {"columns": columns, "rows": rows}}


def warm_up(tape, mode: str, venue: str, seed: int) -> None:
    """Load the compiled kernels before the measured replay: a throwaway replay of the
    tape's first :data:`WARM_UP_ROWS` rows, nothing attached (it writes nothing)."""
    from replay.engine import Replay

    head = next(iter(tape.chunks(WARM_UP_ROWS)), None)
    if head is not None:
        Replay(tape.instruments, mode, venue=venue, seed=seed).run([head])
