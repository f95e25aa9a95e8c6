"""A value as a page's tables show it, and a figure's name with its unit.

Both pages read alike: thousands separated, a fraction with the unit % as a percentage, –
for a missing value, ∞ for an infinite one, and "won" standing for the run's currency (won
at the KRX venue, the tape's quote currency elsewhere).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

import numpy as np
import pandas as pd

MISSING = "–"


def currency_of(venue: str | None) -> str:
    """The prices' unit: won at the KRX venue, else the tape's quote currency."""
    return "won" if venue == "krx" else "quote currency"


def cell(value: Any, unit: str = "") -> str:
    """One value as the tables show it: thousands separated, a float below 1,000 to four
    significant digits, a fraction as a percentage when its unit is %, a generation below 0
    as none (no forced order), – for missing, ∞ for infinite."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):  # counts by kind: accounts_ignored
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items()) or "0"
    if isinstance(value, list | tuple):
        return json.dumps(value, ensure_ascii=False)
    if unit == "generation" and isinstance(value, int) and value < 0:
        return "none"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if unit == "%" and isinstance(value, int | float):
        return f"{value:.2%}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000 or value == int(value):
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def with_unit(name: str, unit: str, currency: str) -> str:
    """``name (unit)``; the unit "won" stands for ``currency``, and a generation (a count)
    has none."""
    unit = {"won": currency, "generation": ""}.get(unit, unit)
    return f"{name} ({unit})" if unit else name


def words(key: Any) -> str:
    """A snake_case key as words: ``forced_volume`` -> ``forced volume``."""
    return str(key).replace("_", " ")


def hover(value: Any) -> str:
    """A value for plotly hover text, which reads a few HTML tags: escaped."""
    return html.escape("" if value is None else str(value), quote=False)
