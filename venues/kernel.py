"""How kernels are compiled, and where they are cached.

:func:`kernel` is the project's one ``njit``: cached, and without numba's reference counting
(``_nrt=False``): kernels index preallocated arrays and never allocate, and the counting
around every compiled call cost about a fifth of the replay's time. A numba that does not
know the option gets plain ``njit(cache=True)``.

The cache lives in a directory keyed by the kernels' own source. numba caches each compiled
function beside its module and re-validates it against that module's file only, so a kernel
that inlines a function from another module (the book's primitives into the replay loop)
would keep stale machine code after that other module changes; a directory per digest of
every kernel module removes that trap.
The front modules listed in :data:`_FRONT` hold no kernel and no constant a kernel reads, so
editing them keeps the cache. ``NUMBA_CACHE_DIR``, when set, wins.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
from numba import njit

_PACKAGES = ("venues", "replay")
#: modules of those packages that no kernel reads: the command line and the run's files
_FRONT = frozenset(f"replay/{name}.py" for name in (
    "cli", "runner", "compare", "report", "demo", "results", "broker_run", "inject", "check"))


def kernel_digest() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            if path.relative_to(root).as_posix() in _FRONT:
                continue
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def use_versioned_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    numba.config.CACHE_DIR = str(base / "cascade-replay" / "numba" / kernel_digest())


def _kernel_options() -> dict:
    try:
        njit(cache=False, _nrt=False)(lambda: 0)
        return {"cache": True, "_nrt": False}
    except (TypeError, KeyError, ValueError):
        return {"cache": True}


kernel = njit(**_kernel_options())

#: For the few compiled helpers that allocate their result arrays (reference counting on).
njit_alloc = njit(cache=True)
