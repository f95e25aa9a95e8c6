"""The Ray backend of a sweep: the same blocks of cells as Ray actor calls.

One actor per job (one CPU each) on the cluster at ``address`` (``auto``: the one this
machine belongs to; ``ray://host:port``: a remote one through Ray Client), or on a local
Ray instance started for the sweep and stopped after it when no address is given. An
actor is a worker of the local backend in all but transport: it keeps its kernels, tapes
and populations loaded between blocks (replay.sweep.cell.STATE), and yields each cell's
record as it finishes (a streaming generator), which the driver writes, so a record is the
same bytes on both backends.

The actors read the spec's input files by their paths: on a cluster of several machines,
the inputs (and with ``--keep-runs`` the sweep directory) must be at the same paths on every
node (a shared filesystem). Ray is an optional extra: ``pip install cascade-replay[ray]``.
A driver killed with SIGKILL takes its actors with it (Ray ends the actors of a job whose
driver is gone, and a local instance started by the driver shares its fate).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from replay.sweep.spec import Cell, SweepSpec


def _ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError("--backend ray needs Ray: pip install 'cascade-replay[ray]' "
                           "(or pip install ray)") from None
    return ray


def _actor_class(ray):
    @ray.remote(num_cpus=1)
    class SweepWorker:
        """A sweep worker on the cluster (replay.sweep.cell.iter_block)."""

        def run(self, spec: SweepSpec, cells: list[Cell], populations: dict[str, Path],
                runs: Path | None):
            from replay.sweep.cell import iter_block

            yield from iter_block(spec, cells, populations, runs)

    return SweepWorker


def run_ray(spec: SweepSpec, tasks: list[list[Cell]], populations: dict[str, Path],
            runs: Path | None, jobs: int, address: str | None,
            record: Callable[[dict[str, Any]], None]) -> None:
    from replay.sweep.run import SweepError

    ray = _ray()
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                  configure_logging=False)
        if address is None:
            kw["num_cpus"] = jobs
        try:
            ray.init(address=address, **kw)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds here
            raise SweepError(f"--backend ray: could not reach the Ray cluster "
                             f"{address or '(a local instance)'}: {type(exc).__name__}: {exc}"
                             ) from None
    try:
        worker = _actor_class(ray)
        actors = [worker.remote() for _ in range(min(jobs, len(tasks)))]
        ref = ray.put(spec)
        queue = list(reversed(tasks))
        running: dict[Any, Any] = {}

        def submit(actor) -> None:
            if queue:
                running[actor.run.remote(ref, queue.pop(), populations, runs)] = actor

        for actor in actors:
            submit(actor)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for gen in ready:
                try:
                    rec = ray.get(next(gen))
                except StopIteration:
                    submit(running.pop(gen))
                    continue
                except Exception as exc:  # noqa: BLE001 - an actor lost, a node down
                    raise SweepError(f"a Ray sweep worker stopped: {type(exc).__name__}: "
                                     f"{exc}; the cells recorded are kept: run the sweep "
                                     "again to resume") from None
                record(rec)
    finally:
        if started:
            ray.shutdown()
