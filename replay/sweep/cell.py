"""One sweep cell's figures, computed in a worker that keeps what it has loaded.

A worker (a process of the local pool, or a Ray worker) runs one paired block at a time
(:func:`run_block`): the cells of one tape, population, mode and seed, one per rule
variant. It keeps the compiled kernels loaded (a warm-up replay once per mode and venue),
the last :data:`KEEP_TAPES` tapes it has read or made (in memory, as the 2^20-row chunks
a tape file gives) and, per tape, the populations drawn on it; so a cell pays for its
replay, not for process start, imports, kernel loading, tape parsing or drawing accounts.

The replay is the one ``cascade replay`` runs (replay.runner.prepare) with the report rows
reduced as they are flushed (:class:`FigureSink`) instead of written: the figures are the
numbers summary.json would hold for the same inputs (tests/test_sweep.py checks them
against :func:`replay.runner.run_tape`). Without a strategy the counterfactual (no forced
order) is the same market for every variant of a block, so it is replayed once per block.
"""

from __future__ import annotations

import gc
import os
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from replay.sweep.spec import Cell, SweepSpec, TapeDef
from replay.sweep.tapes import MemoryTape, read_tape, write_tape

#: Tapes a worker keeps in memory (a one-day large-cap tape is about 170 MB), and the bytes
#: beyond which it keeps only the one in use (a whole market day is several GB).
KEEP_TAPES = 2
KEEP_BYTES = 3 << 30

#: The figures of a cell, in the order of cells.parquet (after the axes): (name, dtype).
FIGURES = (
    ("forced_orders", "int64"), ("forced_volume", "int64"), ("forced_value", "float64"),
    ("amplification", "float64"), ("max_drawdown", "float64"),
    ("counterfactual_max_drawdown", "float64"), ("excess_drawdown", "float64"),
    ("accounts_managed", "int64"), ("accounts_called", "int64"),
    ("accounts_force_sold", "int64"), ("accounts_wiped_out", "int64"),
    ("broker_shortfall", "int64"), ("max_generation", "int64"),
    ("tape_sell_volume", "int64"), ("limit_locked_days", "Int64"), ("vi_count", "Int64"),
    ("circuit_breakers", "Int64"), ("sidecars", "Int64"), ("index_close", "float64"),
    ("index_return", "float64"), ("events", "int64"),
)
STRATEGY_FIGURES = (("strategy_return", "float64"), ("strategy_final_equity", "float64"),
                    ("strategy_margin_calls", "Int64"), ("strategy_liquidations", "Int64"))
#: Per broker of a run of several: ``<figure>[<broker label>]``.
PER_BROKER = ("forced_volume", "forced_value", "accounts_called", "accounts_force_sold",
              "accounts_wiped_out", "broker_shortfall")


class FigureSink:
    """A replay's report sink that keeps only the trade prints' figures
    (replay.broker_run.TradeFigures): nothing is written, memory stays flat."""

    def __init__(self) -> None:
        from replay.broker_run import TradeFigures

        self.trades = TradeFigures()

    def append(self, table: int, rows: np.ndarray) -> None:
        from venues.matching import TRADES

        if table == TRADES:
            self.trades.add_rows(rows)


@dataclass
class _Loaded:
    tape: MemoryTape
    populations: dict  # replay.broker_run.load_brokers' cache, for this tape
    seconds: float


class WorkerState:
    """What a worker keeps between blocks."""

    def __init__(self) -> None:
        self.tapes: OrderedDict[tuple, _Loaded] = OrderedDict()
        self.warm: set[tuple[str, str]] = set()

    def tape(self, tape: TapeDef, seed: int) -> _Loaded:
        key = (tape, None if tape.kind == "file" else tape.tape_seed(seed))  # made: by seed
        if key in self.tapes:
            self.tapes.move_to_end(key)
            hit = self.tapes[key]
            return _Loaded(hit.tape, hit.populations, 0.0)
        while len(self.tapes) >= KEEP_TAPES:
            self.tapes.popitem(last=False)
        t0 = time.perf_counter()
        loaded = _Loaded(read_tape(tape, seed), {}, 0.0)
        loaded.seconds = time.perf_counter() - t0
        self.tapes[key] = loaded
        while len(self.tapes) > 1 and sum(x.tape.nbytes for x in self.tapes.values()) > \
                KEEP_BYTES:
            self.tapes.popitem(last=False)
        return loaded

    def warm_up(self, tape: MemoryTape, mode: str, venue: str, seed: int) -> None:
        from replay.runner import warm_up

        if (mode, venue) not in self.warm:
            warm_up(tape, mode, venue, seed)
            self.warm.add((mode, venue))


STATE = WorkerState()


def run_spec(spec: SweepSpec, cell: Cell, populations: dict[str, Path], *,
             brokers: bool = True, output: Path | None = None):
    """The replay.runner.RunSpec of a cell (``brokers`` False: the same run with none)."""
    from replay.runner import BrokerSpec, RunSpec

    v, t = cell.variant, cell.tape
    generative = cell.mode == "generative"
    first, *more = v.brokers
    kw: dict[str, Any] = {}
    if brokers:
        kw = dict(broker=first.rules, population=populations[first.population
                                                             or cell.population.name],
                  overrides=tuple(first.overrides),
                  more_brokers=tuple(BrokerSpec(b.rules, populations[b.population]
                                                if b.population else None,
                                                tuple(b.overrides)) for b in more),
                  # a variant of one broker takes a population holding none of its kind as
                  # its own (as cascade compare: comparing kinds); with several brokers
                  # every account keeps its kind, and so its one broker
                  rekind=not more)
    from replay.sweep.tapes import index_closes

    return RunSpec(tape=None if generative else (t.path if t.kind == "file"
                                                 else Path(f"{t.name}.parquet")),
                   output=output or Path(os.devnull), mode=cell.mode, venue=spec.venue,
                   seed=cell.seed, inject=spec.inject, index_prior_close=spec.index_prior_close,
                   index_closes=index_closes(t),
                   strategy=spec.strategy, strategy_params=dict(spec.params),
                   profile=t.profile if generative else None,
                   days=t.days if generative else 1,
                   shocks=dict(t.shocks) if generative else {}, **kw)


def _replay(prepared, submit_forced: bool):
    from replay.broker_run import discard_snapshot

    rp, brokers, host = prepared.make_replay(submit_forced)
    for b in brokers:
        b.snapshot_sink = discard_snapshot
    sink = FigureSink()
    result = prepared.replay_all(rp, sink)
    return result, sink.trades, brokers, host


def cell_figures(spec: SweepSpec, cell: Cell, populations: dict[str, Path], loaded,
                 counterfactual: tuple | None) -> tuple[dict[str, Any], dict[str, float]]:
    """The figures of one cell and its timings; ``counterfactual`` (its max drawdown,
    seconds) when already replayed for its block. ``loaded``: the cell's tape (None in
    generative mode). The figures are read from the summary.json sections ``cascade
    replay`` would write (:func:`summary_figures`), made here without writing them."""
    from replay.broker_run import metrics, total
    from replay.results import venue_summary
    from replay.runner import prepare

    t0 = time.perf_counter()
    kw = {} if loaded is None else {"tape": loaded.tape, "populations": loaded.populations}
    prepared = prepare(run_spec(spec, cell, populations), **kw)
    t1 = time.perf_counter()
    result, trades, brokers, host = _replay(prepared, True)
    t2 = time.perf_counter()
    if counterfactual is None or spec.strategy:
        _, cf_trades, _, _ = _replay(prepared, False)
        cf_drawdown, cf_seconds = cf_trades.figures[1], time.perf_counter() - t2
    else:
        cf_drawdown, cf_seconds = counterfactual
    labels = [label for label, _, _ in prepared.market]
    own = [metrics(b, trades.figures) for b in brokers]
    summary: dict[str, Any] = {
        "broker": own[0] if len(own) == 1 else total(own, brokers),
        "counterfactual": {"max_drawdown": cf_drawdown},
        "venue_summary": venue_summary(result), "indices": result.indices or {},
        "events_processed": int(result.events)}
    if len(labels) > 1:
        summary["brokers"] = {label: {"broker": one} for label, one in
                              zip(labels, own, strict=True)}
    if host is not None:
        summary["strategy"] = host.summary()
    timing = {"prepare_seconds": t1 - t0, "replay_seconds": t2 - t1,
              "counterfactual_seconds": cf_seconds}
    return summary_figures(summary), timing


def block_counterfactual(spec: SweepSpec, cell: Cell, populations: dict[str, Path],
                         loaded) -> tuple[float, float]:
    """The counterfactual of a block, its max drawdown and seconds: its tape replayed with
    no broker (what every variant's counterfactual is, its brokers sending nothing)."""
    from replay.runner import prepare

    t0 = time.perf_counter()
    kw = {} if loaded is None else {"tape": loaded.tape}
    prepared = prepare(run_spec(spec, cell, populations, brokers=False), **kw)
    _, trades, _, _ = _replay(prepared, False)
    return trades.figures[1], time.perf_counter() - t0


#: ``emit(record)``: a finished cell's record (replay.sweep.store.Record fields as a dict).
Emit = Callable[[dict[str, Any]], None]


def iter_block(spec: SweepSpec, cells: Sequence[Cell], populations: dict[str, Path],
               keep_runs: Path | None = None) -> Iterator[dict[str, Any]]:
    """Run the cells of one paired block (one tape, population, mode and seed), yielding
    each cell's record as it finishes; a cell that fails is yielded with its error and the
    others go on. ``keep_runs``: each cell also writes its full run directory there
    (replay.runner.run_tape), and its figures are read from it."""
    first = cells[0]
    cf: tuple | None = None
    loaded = None
    load_seconds = 0.0
    for k, cell in enumerate(cells):
        t0 = time.perf_counter()
        try:
            if keep_runs is not None:
                fig, timing = kept_run(spec, cell, populations, keep_runs)
            else:
                if loaded is None and cell.mode != "generative":
                    loaded = STATE.tape(first.tape, first.seed)
                    load_seconds = loaded.seconds
                    venue = spec.venue or _default_venue(loaded.tape)
                    STATE.warm_up(loaded.tape, cell.mode, venue, cell.seed)
                if cf is None and not spec.strategy:
                    cf = block_counterfactual(spec, cell, populations, loaded)
                    cf_share = cf[1]
                else:
                    cf_share = 0.0
                fig, timing = cell_figures(spec, cell, populations, loaded, cf)
                if not spec.strategy:
                    timing["counterfactual_seconds"] = cf_share
            timing["load_seconds"] = load_seconds if k == 0 else 0.0
            record = {"key": cell.key, "axes": cell.axes(), "status": "ok", "figures": fig,
                      "error": None}
        except Exception as exc:  # recorded with its error; the others go on
            timing = {"load_seconds": load_seconds if k == 0 else 0.0}
            record = {"key": cell.key, "axes": cell.axes(), "status": "failed",
                      "figures": None, "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=8)}
        timing["wall_seconds"] = time.perf_counter() - t0
        record["timing"] = {k_: round(v, 6) for k_, v in timing.items()}
        record["worker_pid"] = os.getpid()
        yield record
    # A replay and its brokers refer to each other: what the block's replays held (books,
    # forced orders, about 30 MB a large-cap cell) is freed only by a full collection, which
    # the collector seldom runs on its own; without it a worker grows by every block it ran.
    gc.collect()


def run_block(spec: SweepSpec, cells: Sequence[Cell], populations: dict[str, Path],
              emit: Emit, keep_runs: Path | None = None) -> int:
    """:func:`iter_block`, each record given to ``emit``; returns the cells run."""
    n = 0
    for record in iter_block(spec, cells, populations, keep_runs):
        emit(record)
        n += 1
    return n


def _default_venue(tape: MemoryTape) -> str:
    from replay.runner import default_venue

    return default_venue(tape.instruments)


def kept_run(spec: SweepSpec, cell: Cell, populations: dict[str, Path],
             runs: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """A cell run as ``cascade replay`` runs it, into ``runs/<key[:16]>/`` (cascade compare:
    ``runs/<variant>/``); its figures read from the summary written there."""
    from replay.runner import run_tape

    by_variant = spec.run_names == "variant"
    out = runs / (cell.variant.name if by_variant else cell.key[:16])
    tape_path = None
    if cell.mode != "generative":
        tape_path = write_tape(cell.tape, cell.seed,
                               runs.parent / "tapes" / kept_tape_name(spec, cell))
    rs = replace(run_spec(spec, cell, populations, output=out), tape=tape_path, overwrite=True)
    sections: dict[str, Any] = {"sweep": {"cell": cell.key, **cell.axes()}}
    if by_variant:  # cascade compare's own record of the variant
        sections["compare"] = {"label": cell.variant.name,
                               "variant": cell.variant.given or cell.variant.text(),
                               "worker_pid": os.getpid()}
    summary = run_tape(rs, sections=sections)
    return summary_figures(summary), {"replay_seconds": summary["wall_seconds"]}


def kept_tape_name(spec: SweepSpec, cell: Cell, code: dict[str, str] | None = None) -> str:
    """The file name of a kept run's tape: its name, seed and the digest of its recipe and
    inputs, so a changed recipe under the same name is another file."""
    import hashlib
    import json

    from replay.sweep.spec import cell_identity

    recipe = json.dumps(cell_identity(spec, cell, code)["tape"], sort_keys=True)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"{cell.tape.name}-seed{cell.tape.tape_seed(cell.seed)}-{digest}.parquet"


def summary_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """A run's summary.json sections as a cell's figures (the names of :data:`FIGURES`):
    the one mapping, for a kept run and for a cell run in memory."""
    b, c = summary["broker"], summary["counterfactual"]
    venue = summary.get("venue_summary", {})
    kospi = summary.get("indices", {}).get("KOSPI", {})
    fig = {k: b[k] for k in ("forced_orders", "forced_volume", "forced_value",
                             "amplification", "accounts_managed", "accounts_called",
                             "accounts_force_sold", "accounts_wiped_out", "broker_shortfall",
                             "max_generation", "max_drawdown", "tape_sell_volume")}
    fig.update(counterfactual_max_drawdown=c["max_drawdown"],
               excess_drawdown=b["max_drawdown"] - c["max_drawdown"],
               limit_locked_days=venue.get("limit_locked_down_sessions"),
               vi_count=venue.get("volatility_interruptions"),
               circuit_breakers=venue.get("circuit_breakers"), sidecars=venue.get("sidecars"),
               index_close=kospi.get("close"), index_return=kospi.get("close_return"),
               events=summary["events_processed"])
    for label, s in summary.get("brokers", {}).items():
        for k in PER_BROKER:
            fig[f"{k}[{label}]"] = s["broker"][k]
    st = summary.get("strategy")
    if st:
        fig.update(strategy_return=st["return"], strategy_final_equity=st["final_equity"],
                   strategy_margin_calls=st["margin_calls"],
                   strategy_liquidations=st["liquidations"])
    return fig
