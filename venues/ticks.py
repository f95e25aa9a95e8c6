"""An instrument's tick bands, by the venue it is listed on.

A listing venue with its own tick table names it here (``XKRX``: the KRX table of the
session date, docs/reference/krx.md: tick size); an instrument of any other venue, or one
priced in fractions, has one band of its ``tick_units``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

#: Listing venue (MIC) -> ``module:function`` giving its (lower bounds, ticks) on a date.
TICK_TABLES = {"XKRX": "venues.krx.ticks:tick_table"}


def tick_scheme(inst: Any, on: object = None) -> tuple[np.ndarray, np.ndarray]:
    """The instrument's tick bands (lower bound, tick), in price units, on date ``on``
    (None: today's table)."""
    where = TICK_TABLES.get(inst.venue) if inst.price_decimals == 0 else None
    if where is not None:
        module, name = where.split(":")
        table = getattr(importlib.import_module(module), name)
        bounds, ticks = table(on=on) if on is not None else table()
        return np.asarray(bounds, np.int64), np.asarray(ticks, np.int64)
    return np.array([0], np.int64), np.array([max(1, inst.tick_units)], np.int64)
