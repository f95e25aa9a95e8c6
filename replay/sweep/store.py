"""A sweep directory's records: one JSON file per finished cell, and the table of them all.

``DIR/cells/<key>.json`` is written atomically (a temporary name in the same folder,
flushed to disk, renamed over), so a sweep killed at any point, SIGKILL included, leaves
each cell either recorded whole or not at all. The key is the SHA-256 of what decides the
cell's figures (replay.sweep.spec.cell_identity): a record is reused only by the same
cell. ``DIR/cells.parquet`` is made from the records in the spec's cell order, so the same
spec gives the same bytes however many times it was interrupted and resumed, on either
backend; timings and worker ids stay in the records and in ``sweep.json``, not in it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from replay.sweep.cell import FIGURES, PER_BROKER, STRATEGY_FIGURES
from replay.sweep.spec import Cell, SweepSpec

RECORDS = "cells"
_TMP = ".tmp-"


def record_path(out: Path, key: str) -> Path:
    return out / RECORDS / f"{key}.json"


def write_record(out: Path, record: dict[str, Any]) -> Path:
    """Write one cell's record atomically (flushed before the rename)."""
    final = record_path(out, record["key"])
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{_TMP}{os.getpid()}-{final.name}")
    text = json.dumps(record, sort_keys=True, allow_nan=True)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def clear_temporary(out: Path) -> int:
    """Remove the temporary files a killed sweep left in its records folder."""
    folder = out / RECORDS
    n = 0
    if folder.is_dir():
        for p in folder.glob(f"{_TMP}*"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def read_records(out: Path) -> dict[str, dict[str, Any]]:
    """The records in ``out`` by key. A file that is not a whole record (not JSON, or
    not the record its name says: a disk fault) is left out, so its cell runs again."""
    folder = out / RECORDS
    records: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return records
    for p in sorted(folder.glob("*.json")):
        try:
            rec = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("key") == p.stem and \
                rec.get("status") in ("ok", "failed"):
            records[p.stem] = rec
    return records


def prune(out: Path, keep: Iterable[str]) -> int:
    """Remove the records of cells the spec no longer has; returns how many."""
    keep = set(keep)
    n = 0
    folder = out / RECORDS
    if folder.is_dir():
        for p in folder.glob("*.json"):
            if p.stem not in keep:
                p.unlink(missing_ok=True)
                n += 1
    return n


def _param_columns(spec: SweepSpec) -> list[tuple[str, str]]:
    """(column, where) for every key a ``vary`` of the spec varies: ``rules.<key>`` of
    the variants, ``population.<key>`` of the populations."""
    out: list[tuple[str, str]] = []
    for v in spec.variants:
        for k, _ in v.params:
            if (f"rules.{k}", "variant") not in out:
                out.append((f"rules.{k}", "variant"))
    for p in spec.populations:
        for k, _ in p.params:
            if (f"population.{k}", "population") not in out:
                out.append((f"population.{k}", "population"))
    return out


def table(spec: SweepSpec, records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per cell of ``spec`` with a record, in the spec's order: the axes, the
    values ``vary`` gave, ``status`` and ``error``, the figures (:data:`FIGURES`, the
    strategy's with a strategy, each broker's with several), and the cell's ``key``.
    A figure a cell does not have (a failed cell; the venue's at the generic venue) is
    missing, never 0."""
    params = _param_columns(spec)
    per_broker = _broker_columns(spec, records)
    rows = []
    for cell in spec.cells:
        rec = records.get(cell.key)
        if rec is None:
            continue
        row: dict[str, Any] = cell.axes()
        for column, where in params:
            values = dict(cell.variant.params if where == "variant" else
                          cell.population.params)
            row[column] = values.get(column.partition(".")[2])
        row["status"] = rec["status"]
        row["error"] = rec.get("error")
        fig = rec.get("figures") or {}
        for name, _ in FIGURES + (STRATEGY_FIGURES if spec.strategy else ()):
            row[name] = fig.get(name)
        for name in per_broker:
            row[name] = fig.get(name)
        row["key"] = cell.key
        rows.append(row)
    columns = (list(cell_axes()) + [c for c, _ in params] + ["status", "error"]
               + [n for n, _ in FIGURES + (STRATEGY_FIGURES if spec.strategy else ())]
               + per_broker + ["key"])
    frame = pd.DataFrame(rows, columns=columns)
    dtypes = dict(FIGURES + STRATEGY_FIGURES)
    for name in frame.columns:
        base = name.partition("[")[0]
        if name in dtypes:
            frame[name] = _as(frame[name], dtypes[name])
        elif base in dtypes and name in per_broker:
            frame[name] = _as(frame[name], "Int64" if dtypes[base] == "int64" else "float64")
    frame["seed"] = frame["seed"].astype("int64")
    for column, _ in params:
        frame[column] = _param_series(frame[column])
    return frame


def cell_axes() -> tuple[str, ...]:
    return ("variant", "tape", "population", "mode", "seed")


def _broker_columns(spec: SweepSpec, records: dict[str, dict[str, Any]]) -> list[str]:
    """The per-broker columns (``forced_volume[krx-misu]``...) the records hold, in a
    fixed order: by broker label as first seen in the spec's cells, then by figure."""
    labels: list[str] = []
    for cell in spec.cells:
        fig = (records.get(cell.key) or {}).get("figures") or {}
        for name in fig:
            if "[" in name:
                label = name[name.index("[") + 1:-1]
                if label not in labels:
                    labels.append(label)
    return [f"{k}[{label}]" for label in labels for k in PER_BROKER]


def _as(series: pd.Series, dtype: str) -> pd.Series:
    values = [None if v is None or (isinstance(v, float) and math.isnan(v)) else v
              for v in series]
    if dtype == "float64":
        return pd.Series([np.nan if v is None else float(v) for v in values],
                         index=series.index, dtype="float64")
    if dtype == "int64" and all(v is not None for v in values):
        return pd.Series(values, index=series.index, dtype="int64")
    return pd.Series(values, index=series.index, dtype="Int64")


def _param_series(series: pd.Series) -> pd.Series:
    """A varied key's values: numbers as float64 when every value is a number, else text."""
    values = list(series)
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return pd.Series([float(v) for v in values], index=series.index, dtype="float64")
    return pd.Series([None if v is None else str(v) for v in values], index=series.index,
                     dtype="object")


def write_table(path: Path, frame: pd.DataFrame) -> None:
    """cells.parquet, atomically; the same frame gives the same bytes."""
    from replay.rundir import atomic_write

    t = pa.Table.from_pandas(frame, preserve_index=False)
    atomic_write(path, lambda p: pq.write_table(t, p, compression="zstd"))


def missing(spec: SweepSpec, records: dict[str, dict[str, Any]],
            retry_failed: bool) -> list[Cell]:
    """The cells to run: those without a record, and with ``retry_failed`` the failed."""
    return [c for c in spec.cells
            if c.key not in records or (retry_failed and records[c.key]["status"] != "ok")]
