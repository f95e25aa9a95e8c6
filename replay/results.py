"""A run directory: Parquet tables and summary.json, each written atomically."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from replay.engine import SOURCE_NAMES, STATUS_NAMES, ReplayResult


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("cascade-replay", "numpy", "numba", "pyarrow", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _atomic_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _atomic_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_run(result: ReplayResult, run_dir: str | Path, *, seed: int,
              config: dict | None = None) -> Path:
    """Write fills, trades, top of book, injected-order outcomes and summary.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    symbols = {i.instrument_id: i.symbol for i in result.instruments}
    scale = {i.instrument_id: 10.0**i.price_decimals for i in result.instruments}

    def natural(frame, cols):
        frame = frame.copy()
        frame.insert(1, "symbol", frame["instrument"].map(symbols))
        factor = frame["instrument"].map(scale)
        for c in cols:
            frame[c + "_natural"] = frame[c].where(frame[c] >= 0) / factor
        return frame

    fills = natural(result.fills, ["price"])
    fills["source"] = fills["source"].map(SOURCE_NAMES)
    trades = natural(result.trades, ["price"])
    trades["source"] = trades["source"].map(SOURCE_NAMES)
    tob = natural(result.top_of_book, ["bid_px", "ask_px"])
    injected = result.injected.copy()
    injected["status"] = injected["status"].map(dict(enumerate(STATUS_NAMES)))
    for name, frame in (("fills", fills), ("trades", trades), ("top_of_book", tob),
                        ("injected", injected)):
        _atomic_table(pa.Table.from_pandas(frame, preserve_index=False),
                      run_dir / f"{name}.parquet")
    summary = {
        "mode": result.mode,
        "seed": seed,
        "events_processed": result.events,
        "wall_seconds": round(result.wall_seconds, 6),
        "events_per_second": round(result.events_per_second, 1),
        "counters": result.counters,
        "injected_orders": len(result.injected),
        "fills": len(result.fills),
        "versions": versions(),
        "config": config or {},
    }
    _atomic_text(json.dumps(summary, indent=2, ensure_ascii=False), run_dir / "summary.json")
    return run_dir
