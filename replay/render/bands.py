"""Halts as bands on a time axis and thresholds as lines across it, each labelled with its
time and level, as the market report draws an index's circuit breakers, its sidecars and
the -8/-15/-20% stages (docs/reference/krx.md: circuit breakers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from replay.render.clock import stamp

HALT_COLOUR, SIDECAR_COLOUR, LEVEL_COLOUR = "#ff7f0e", "#9467bd", "#d62728"


@dataclass(frozen=True)
class Band:
    """A stretch of time halted: from ``start_ns`` to ``end_ns`` (UTC epoch nanoseconds),
    with the label written on it."""

    start_ns: int
    end_ns: int
    label: str


def add_bands(fig: go.Figure, bands: Sequence[Band], row: int | str = "all",
              colour: str = HALT_COLOUR) -> None:
    """One shaded band per halt, labelled at its top, beneath the lines."""
    for b in bands:
        fig.add_vrect(x0=stamp(b.start_ns), x1=stamp(max(b.end_ns, b.start_ns)), row=row,
                      col=1, fillcolor=colour, opacity=0.2, layer="below",
                      line={"width": 1, "color": colour}, annotation_text=b.label,
                      annotation_position="top left", annotation_font_size=10,
                      annotation_font_color=colour)


def add_levels(fig: go.Figure, levels_pct: Sequence[tuple[str, float]],
               row: int | str = "all") -> None:
    """A dashed line across the panel at each level (in %), named on it."""
    for name, level in levels_pct:
        fig.add_hline(y=level, row=row, col=1,
                      line={"color": LEVEL_COLOUR, "dash": "dash", "width": 1},
                      annotation_text=name, annotation_position="bottom right",
                      annotation_font_size=10, annotation_font_color=LEVEL_COLOUR)
