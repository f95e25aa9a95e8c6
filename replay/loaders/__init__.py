"""Loaders: vendor files in, tape events out.

Each format is one module with a ``load(paths, *, repair=False) -> Loaded`` function.
A loader reads everything it needs from its files, converts prices and sizes to exact
integers (never through a float), orders rows by time, marks packet ends with ``F_LAST``,
and either raises :class:`replay.quality.TapeError` naming file, row and field, or applies a
documented repair and counts it in ``Loaded.repairs``. Times, prices and sizes are checked
against the bounds of replay/quality.py; files that give no event are an error.

L2 (market-by-price) feeds use ``order_id == 0`` and these actions: ``M`` sets the level at
``price`` to ``size``, ``D`` removes it, ``R`` clears the book before a snapshot.

Beside the tape formats, two modules read a broker's inputs under the same error rules:
:mod:`replay.loaders.population` (a population CSV, or a TOML spec synthesised from daily
bars) and :mod:`replay.loaders.daily_bars` (pykrx / FinanceDataReader daily bars).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from replay.quality import RepairLog
from replay.tape import Events, InstrumentTable

#: ``--format`` name -> module of replay.loaders that reads it.
FORMATS = {
    "dbn": "dbn",
    "bybit": "bybit",
    "binance": "binance",
    "tardis": "tardis",
    "lobster": "lobster",
    "csv": "csv",
    "kis": "kis",
    "kiwoom-ticks": "kiwoom",
    "nautilus": "nautilus",
    "krx-orders": "krx_orders",
    "koscom-trades": "koscom",
}


@dataclass
class Loaded:
    events: Events
    instruments: InstrumentTable
    repairs: RepairLog = field(default_factory=RepairLog)
    #: what the loader found checking the file against itself (krx-orders: its book
    #: against the book columns every row carries), kept in the tape's metadata
    book_check: dict | None = None
    #: optional tape columns (replay.tape.EXTRA_FIELDS) by name, row for row with ``events``
    extra: dict = field(default_factory=dict)


def load(fmt: str, paths: Sequence[str | Path], **options) -> Loaded:
    """Load ``paths`` with the loader for ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    module = importlib.import_module(f"replay.loaders.{FORMATS[fmt]}")
    for p in paths:
        if not Path(p).exists():
            raise FileNotFoundError(f"{p}: no such file")
    loaded = module.load([Path(p) for p in paths], **options)
    if len(loaded.events) == 0:
        raise ValueError(f"no events in {', '.join(str(p) for p in paths)}")
    return loaded
