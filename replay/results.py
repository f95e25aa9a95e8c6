"""A run's tables: fills, trade prints, top of book, injected orders and the venue's.

:class:`RunWriter` takes report rows as the replay flushes them, so a long replay streams
its fills, trade prints and top-of-book path to disk instead of holding them in memory;
:func:`write_run` writes a finished in-memory result the same way. Each table gets the
instrument's symbol and natural-unit prices beside the integer ones. The tables go into a
run's temporary directory and carry its id (replay/rundir.py); the summary is returned, for
:meth:`replay.rundir.RunDirectory.finish` to write.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pyarrow as pa

from replay.engine import (
    FILL_NAMES,
    TOB_NAMES,
    TRADE_NAMES,
    ReplayResult,
)
from replay.inject import injected_table
from replay.rundir import RunDirectory, TableStream, write_parquet
from replay.tape import InstrumentTable
from venues.codes import (
    SOURCE_NAMES,
)
from venues.matching import FILLS, TOB, TRADES

TABLES = {FILLS: ("fills", FILL_NAMES, ["price"]),
          TRADES: ("trades", TRADE_NAMES, ["price"]),
          TOB: ("top_of_book", TOB_NAMES, ["bid_px", "ask_px"])}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("cascade-replay", "numpy", "numba", "pyarrow", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class RunWriter:
    """Streams report rows into the directory ``run_dir``, each table carrying ``run_id``;
    nothing is visible under its final name until :meth:`close`."""

    def __init__(self, run_dir: str | Path, instruments: InstrumentTable,
                 run_id: str | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        ids = [i.instrument_id for i in instruments]
        n = max(ids) + 1 if ids else 0
        self._symbols = np.array([""] * n, dtype=object)
        self._scale = np.ones(n)
        for i in instruments:
            self._symbols[i.instrument_id] = i.symbol
            self._scale[i.instrument_id] = 10.0**i.price_decimals
        self._source_names = pa.array([SOURCE_NAMES.get(k, str(k))
                                       for k in range(max(SOURCE_NAMES) + 1)])
        self._streams = {table: TableStream(self.run_dir / f"{name}.parquet", run_id,
                                            compression="zstd", compression_level=1)
                         for table, (name, _, _) in TABLES.items()}
        self.rows = {name: 0 for name, _, _ in TABLES.values()}

    def _frame(self, table: int, rows: np.ndarray) -> pa.Table:
        """Report rows as an Arrow table: integer columns as they are, the symbol and the
        source as dictionary columns (no Python object per row), natural-unit prices."""
        _, names, price_cols = TABLES[table]
        inst = rows[:, names.index("instrument")]
        columns: dict[str, pa.Array] = {}
        for j, name in enumerate(names):
            col = np.ascontiguousarray(rows[:, j])
            if name == "source":
                columns[name] = pa.DictionaryArray.from_arrays(
                    pa.array(col.astype(np.int32)), self._source_names)
            else:
                columns[name] = pa.array(col)
            if name == "instrument":
                columns["symbol"] = pa.DictionaryArray.from_arrays(
                    pa.array(col.astype(np.int32)), pa.array(self._symbols.tolist()))
        for c in price_cols:
            px = rows[:, names.index(c)]
            columns[c + "_natural"] = pa.array(
                np.where(px >= 0, px / self._scale[inst], np.nan))
        return pa.table(columns)

    def append(self, table: int, rows: np.ndarray) -> None:
        self._streams[table].write(self._frame(table, rows))
        self.rows[TABLES[table][0]] += len(rows)

    def abort(self) -> None:
        for stream in self._streams.values():
            stream.abort()

    def close(self, result: ReplayResult, *, seed: int, config: dict | None = None) -> dict:
        """Finish the tables and write injected.parquet (and the venue's); return the
        run's summary."""
        for table, (_, names, _) in TABLES.items():
            if not self._streams[table].rows:  # no rows: still a table, with its columns
                self.append(table, np.zeros((0, len(names)), np.int64))
            self._streams[table].close()
        write_parquet(self.run_dir / "injected.parquet",  # docs/replay-modes.md: injected orders
                      injected_table(result), self.run_id)
        venue = self._venue_tables(result)
        summary = {
            "mode": result.mode,
            "venue": result.venue,
            "seed": seed,
            "events_processed": result.events,
            # the replay alone; a run adds load_seconds and the whole run's wall_seconds
            "replay_seconds": round(result.wall_seconds, 6),
            "events_per_second": round(result.events_per_second, 1),
            "wall_seconds": round(result.wall_seconds, 6),
            "counters": result.counters,
            "injected_orders": len(result.injected),
            "rows": self.rows,
            **({"venue_summary": venue} if venue else {}),
            # KRX venue: each index's levels and halts (docs/krx-venue.md: summary.json)
            **({"indices": result.indices} if result.indices else {}),
            "versions": versions(),
            "config": config or {},
        }
        return summary

    def _venue_tables(self, result: ReplayResult) -> dict:
        """Write venue_events, sessions and unfilled (KRX venue); return their summary."""
        if result.venue == "generic":
            return {}
        for name in ("venue_events", "sessions", "unfilled"):
            frame = getattr(result, name)
            write_parquet(self.run_dir / f"{name}.parquet",
                          pa.Table.from_pandas(frame, preserve_index=False), self.run_id)
        return venue_summary(result)


def venue_summary(result: ReplayResult) -> dict:
    """summary.json's ``venue_summary`` of a run at the KRX venue ({} at the generic
    venue): its VIs, circuit breakers and sidecars, its events by kind, sessions,
    limit-locked-down sessions and the injected orders left unfilled."""
    if result.venue == "generic":
        return {}
    ev, ses, unf = result.venue_events, result.sessions, result.unfilled
    kinds = ev["kind"].value_counts().to_dict() if len(ev) else {}
    return {
        "volatility_interruptions": int(sum(v for k, v in kinds.items()
                                            if k.startswith("vi_"))),
        "circuit_breakers": int(sum(v for k, v in kinds.items()
                                    if k.startswith("circuit_breaker"))),
        "sidecars": int(sum(v for k, v in kinds.items() if k.startswith("sidecar"))),
        "events_by_kind": {k: int(v) for k, v in sorted(kinds.items())},
        "sessions": len(ses),
        "limit_locked_down_sessions": int(ses["limit_locked_down"].sum()) if len(ses) else 0,
        "unfilled_orders": len(unf),
        "unfilled_quantity": int(unf["unfilled"].sum()) if len(unf) else 0,
    }


def write_run(result: ReplayResult, run_dir: str | Path, *, seed: int,
              config: dict | None = None, overwrite: bool = False) -> Path:
    """Write a finished in-memory result as the run directory ``run_dir``: fills, trades,
    top of book, injected-order outcomes and summary.json."""
    with RunDirectory(run_dir, overwrite=overwrite) as run:
        writer = RunWriter(run.path, result.instruments, run.run_id)
        for table, (_, names, _) in TABLES.items():
            frame = {FILLS: result.fills, TRADES: result.trades, TOB: result.top_of_book}[table]
            writer.append(table, frame[names].to_numpy(np.int64))
        return run.finish(writer.close(result, seed=seed, config=config))
