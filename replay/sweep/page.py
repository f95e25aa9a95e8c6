"""sweep.html: the sweep's figures per variant (docs/sweeps.md: the sweep page)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd


def write_page(out: Path, frame: pd.DataFrame, info: dict) -> Path:
    from replay.rundir import write_text

    ok = frame[frame.status == "ok"]
    rows = []
    for name, g in ok.groupby("variant", sort=False):
        rows.append(f"<tr><td>{html.escape(str(name))}</td><td>{len(g)}</td>"
                    f"<td>{g.forced_volume.mean():,.0f}</td>"
                    f"<td>{g.excess_drawdown.mean():.4%}</td></tr>")
    body = ("<table><tr><th>variant</th><th>cells</th><th>mean forced volume</th>"
            "<th>mean excess drawdown</th></tr>" + "".join(rows) + "</table>")
    return write_text(out / "sweep.html", f"<!doctype html><meta charset=utf-8><title>"
                      f"{html.escape(Path(info['spec']).name)}</title>{body}")


def redraw(out: Path) -> Path:
    import json

    import pyarrow.parquet as pq

    return write_page(out, pq.read_table(out / "cells.parquet").to_pandas(),
                      json.loads((out / "sweep.json").read_text(encoding="utf-8")))
