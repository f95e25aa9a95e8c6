"""Sweeps: rule variants x tapes x populations x modes x seeds, paired, resumable, on a
local process pool or a Ray cluster (docs/sweeps.md).

- :mod:`replay.sweep.spec`: the spec file, checked whole, and its cells;
- :mod:`replay.sweep.cell`: one paired block of cells in a worker that keeps its kernels,
  tapes and populations loaded;
- :mod:`replay.sweep.store`: a record per finished cell, written atomically, and
  cells.parquet;
- :mod:`replay.sweep.run`: the driver and the local backend; :mod:`replay.sweep.ray_backend`
  the Ray one;
- :mod:`replay.sweep.page`: sweep.html.
"""

from replay.sweep.run import SweepError, SweepResult, run_sweep
from replay.sweep.spec import SpecError, load_spec

__all__ = ["SpecError", "SweepError", "SweepResult", "load_spec", "run_sweep"]
