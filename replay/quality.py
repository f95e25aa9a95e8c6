"""Bad input: errors that name the file, row and field, and repairs that are counted.

Every loader either raises :class:`TapeError` or, when the user asked for repairs
(``repair=True``, ``--repair`` on the CLI), applies one of the documented policies below
and records it in a :class:`RepairLog`. The log travels in the tape's metadata so that
``cascade data check TAPE`` reports what was changed at import.

Repair policies (docs/data-quality.md):

- ``unsorted_ts``: rows are stably sorted by time (file order breaks ties).
- ``duplicate_row``: an exact duplicate of the previous row is dropped.
- ``non_positive_size``: a row whose size must be positive (add, trade, fill) is dropped.
- ``missing_value``: a row with an empty or NaN required field is dropped.

Never repaired (always an error): a missing column, an unparsable value, a price off the
instrument's tick grid.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QUALITY_KEY = b"cascade.quality"


class TapeError(ValueError):
    """Malformed input: names the file, the row (1-based, as a user counts lines or rows)
    and the field."""

    def __init__(self, file: str | Path, row: int | None, field_name: str | None,
                 reason: str) -> None:
        self.file = str(file)
        self.row = row
        self.field = field_name
        self.reason = reason
        where = [self.file]
        if row is not None:
            where.append(f"row {row}")
        if field_name is not None:
            where.append(f"field {field_name!r}")
        super().__init__(f"{', '.join(where)}: {reason}")


@dataclass
class RepairLog:
    """Counts of repairs applied under the documented policies, with the first rows hit."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[int]] = field(default_factory=dict)

    def add(self, policy: str, rows: np.ndarray | list[int]) -> None:
        rows = [int(r) for r in np.asarray(rows).ravel()]
        if not rows:
            return
        self.counts[policy] += len(rows)
        self.examples.setdefault(policy, [])
        self.examples[policy].extend(rows[: max(0, 5 - len(self.examples[policy]))])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> str:
        return json.dumps({"counts": dict(self.counts), "example_rows": self.examples})

    @classmethod
    def from_json(cls, text: str | bytes) -> RepairLog:
        d = json.loads(text)
        return cls(Counter(d.get("counts", {})), dict(d.get("example_rows", {})))


def sort_or_reject(ts: np.ndarray, file: str | Path, row_of: np.ndarray, field_name: str,
                   repair: bool, log: RepairLog) -> np.ndarray | None:
    """Return a stable sorting permutation if ``ts`` goes backwards and repairs are on;
    raise naming the first row that goes back otherwise; None if already sorted."""
    back = np.flatnonzero(np.diff(ts) < 0) + 1
    if len(back) == 0:
        return None
    if not repair:
        r = int(back[0])
        raise TapeError(file, int(row_of[r]), field_name,
                        f"time goes backwards ({ts[r]} after {ts[r - 1]}); "
                        "rows must be in time order (use --repair to sort them)")
    log.add("unsorted_ts", row_of[back])
    return np.argsort(ts, kind="stable")


def decimals_needed(values: list[str] | np.ndarray, file: str | Path, field_name: str,
                    max_decimals: int = 9) -> int:
    """The number of decimal digits needed to hold every decimal string exactly."""
    best = 0
    for v in values:
        s = str(v)
        if "e" in s or "E" in s:
            raise TapeError(file, None, field_name, f"exponent notation {s!r} is not supported")
        if "." in s:
            frac = s.split(".", 1)[1].rstrip("0")
            best = max(best, len(frac))
    if best > max_decimals:
        raise TapeError(file, None, field_name, f"more than {max_decimals} decimals")
    return best


def to_units(values: np.ndarray, decimals: int, file: str | Path, field_name: str,
             row_of: np.ndarray) -> np.ndarray:
    """Decimal strings to exact int64 units (no float rounding decides a price)."""
    out = np.empty(len(values), np.int64)
    scale = 10**decimals
    for i, v in enumerate(values):
        s = str(v).strip()
        try:
            neg = s.startswith("-")
            if neg:
                s = s[1:]
            whole, _, frac = s.partition(".")
            frac = frac.rstrip("0")
            if len(frac) > decimals:
                raise ValueError
            n = int(whole or "0") * scale + (int(frac.ljust(decimals, "0")) if decimals else 0)
        except ValueError:
            raise TapeError(file, int(row_of[i]), field_name,
                            f"{v!r} is not a decimal number with at most {decimals} "
                            "decimals") from None
        if n >= 2**63:
            raise TapeError(file, int(row_of[i]), field_name,
                            f"{v!r} is too large for 64-bit integer units ({decimals} decimals)")
        out[i] = -n if neg else n
    return out
