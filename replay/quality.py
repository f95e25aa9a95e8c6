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
- ``truncated_row``: a row with fewer fields than the header (a cut-off last line) is dropped.
- ``off_grid_price``: a DBN record whose price is off the instrument's tick grid is dropped.

Never repaired (always an error): a missing or unknown column, an unparsable value, a price
off a known tick grid, a value outside the bounds below.

Bounds (docs/data-quality.md: bounds), checked at import and when a tape is written:

- every ``ts`` lies in [1990-01-01, 2100-01-01) UTC (:data:`TS_MIN_NS`, :data:`TS_MAX_NS`),
  checked before any unit scaling, so nothing wraps around int64;
- every price and size, in integer units, has magnitude below 2**53 (:data:`MAX_UNITS`):
  exact in a float64 where a report shows it, and far from int64's limit in the engine's
  level sums;
- a price must be positive where the action needs one (add, modify, trade, fill; an L2
  cancel or delete), and lie within :data:`MAX_SPAN_TICKS` ticks of its instrument's median
  price, so one stray price cannot make the book's dense ladder allocate gigabytes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from replay.tape import MAX_UNITS, TS_MAX_NS, TS_MIN_NS

QUALITY_KEY = b"cascade.quality"


TS_RANGE = "1990-01-01 to 2100-01-01 UTC"
#: A price may lie at most this many ticks from its instrument's median price: the book's
#: ladder (venues/book.py) then never needs more than ``4 * MAX_SPAN_TICKS`` levels.
MAX_SPAN_TICKS = 2**19
#: ASCII digits only: Python's int() also takes "70_900" and full-width "７０９００".
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)", re.ASCII)


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
    back = np.flatnonzero(ts[1:] < ts[:-1]) + 1  # no np.diff: it wraps around int64
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
        s = str(v).strip()
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
            if not _DECIMAL_TEXT.fullmatch(s):
                raise ValueError
            neg = s.startswith("-")
            if s[0] in "+-":
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
        if n >= MAX_UNITS:
            raise TapeError(file, int(row_of[i]), field_name,
                            f"{v!r} is out of bounds: |value| in units ({decimals} decimals) "
                            "must be below 2**53")
        out[i] = -n if neg else n
    return out


def first_row_error(mask: np.ndarray, file: str | Path, row_of: np.ndarray, field_name: str,
                    reason: str) -> None:
    """Raise naming the first row where ``mask`` holds (nothing if it holds nowhere)."""
    hit = np.flatnonzero(mask)
    if len(hit):
        raise TapeError(file, int(row_of[hit[0]]), field_name, reason)


def scaled_ts(values: np.ndarray, scale: int, file: str | Path, row_of: np.ndarray,
              field_name: str, unit: str, offset: int = 0) -> np.ndarray:
    """``offset + values * scale`` as int64 ns, rejecting the first value whose time falls
    outside 1990-2100: the check is made on the unscaled value, so nothing wraps around."""
    v = np.asarray(values)
    lo = -(-(TS_MIN_NS - offset) // scale)
    hi = -(-(TS_MAX_NS - offset) // scale)
    bad = (v < lo) | (v >= hi)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise TapeError(file, int(row_of[r]), field_name,
                        f"{v[r]} ({unit}) is outside {TS_RANGE}")
    return v.astype(np.int64) * scale + offset


def check_ts_ns(ts: np.ndarray, file: str | Path, row_of: np.ndarray, field_name: str) -> None:
    """Reject the first nanosecond time outside 1990-2100."""
    first_row_error((ts < TS_MIN_NS) | (ts >= TS_MAX_NS), file, row_of, field_name,
                    f"time is outside {TS_RANGE}")


def check_bounds(values: np.ndarray, file: str | Path, row_of: np.ndarray,
                 field_name: str) -> None:
    """Reject the first integer value whose magnitude is not below 2**53."""
    v = np.asarray(values)
    bad = (v >= MAX_UNITS) | (v <= -MAX_UNITS)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise TapeError(file, int(row_of[r]), field_name,
                        f"{v[r]} is out of bounds: |value| must be below 2**53")


def check_prices(price: np.ndarray, needs_price: np.ndarray, instrument: np.ndarray,
                 tick_units: np.ndarray, file: str | Path, row_of: np.ndarray,
                 field_name: str) -> None:
    """Prices where the action needs one: positive, below 2**53, and within
    :data:`MAX_SPAN_TICKS` ticks of the instrument's median price (the ladder bound)."""
    price = np.asarray(price, np.int64)
    check_bounds(np.where(needs_price, price, 0), file, row_of, field_name)
    first_row_error(needs_price & (price <= 0), file, row_of, field_name,
                    "price must be positive for this action")
    for k in np.unique(instrument[needs_price]):
        rows = np.flatnonzero(needs_price & (instrument == k))
        ref = int(np.median(price[rows]))
        tick = max(1, int(tick_units[k]))
        far = np.abs(price[rows] - ref) > MAX_SPAN_TICKS * tick
        if far.any():
            r = rows[int(np.flatnonzero(far)[0])]
            raise TapeError(file, int(row_of[r]), field_name,
                            f"price {price[r]} is more than {MAX_SPAN_TICKS:,} ticks of "
                            f"{tick} from the instrument's median price {ref}: the book "
                            "would need an unbounded price ladder")


def distinct_lines(lines: Iterable[str], name: str, repair: bool,
                   log: RepairLog) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each non-blank line of a line-framed file (Bybit JSON
    lines, KIS frames). A line repeating the previous non-blank line exactly is an error
    naming both lines, or under ``--repair`` dropped and counted as ``duplicate_row``
    (docs/data-quality.md)."""
    previous, previous_line = None, 0
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if text == previous:
            if not repair:
                raise TapeError(name, line, None, f"exact duplicate of line {previous_line}"
                                " (use --repair to drop such lines)")
            log.add("duplicate_row", [line])
            continue
        previous, previous_line = text, line
        yield line, text
