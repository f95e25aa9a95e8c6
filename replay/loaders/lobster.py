"""LOBSTER message files: the order-by-order (L3) event stream of one Nasdaq stock and day.

A message file has no header and six columns: ``Time`` (seconds after midnight, a decimal
with up to nine digits), ``Type``, ``Order ID``, ``Size``, ``Price`` (dollars times 10000)
and ``Direction`` (1 buy, -1 sell limit order). Times are local to the exchange, so the
date and time zone come as options: ``date="YYYY-MM-DD"`` (required) and ``tz`` (default
``"America/New_York"``); ``ts`` = that date's midnight in ``tz`` plus ``Time``, in UTC ns.

Mapping (``Direction`` is the side of the resting order, as LOBSTER defines it):

====  ==========================  ========================================================
Type  LOBSTER                     tape
====  ==========================  ========================================================
1     submission                  ``A`` order ``Order ID`` on its side
2     partial cancellation        ``C`` by ``Size`` (the cancelled amount)
3     deletion                    ``D``
4     visible execution           ``F`` (resting order, its side, price, size), then ``C``
                                  of the same size on that order: the fill is demand, the
                                  cancel is the book change
5     hidden execution            ``T``, aggressor = the side opposite ``Direction``
6     cross trade                 ``T`` with side ``N``
7     trading halt                ``S`` with side ``N``; ``price`` keeps LOBSTER's code
                                  (-1 halt, 0 quoting resumes, 1 trading resumes)
====  ==========================  ========================================================

``T`` and ``S`` carry ``order_id`` 0. A halt row's ``Price`` is a status code, not a price:
the book never sizes its ladder from it. Every other row's price must be positive and near
the day's (replay/quality.py: bounds); ``Time`` must lie within two days of midnight. An
exact duplicate of the previous row and a row cut short are errors (``--repair``: dropped
and counted). The last event of every row carries ``F_LAST``;
``sequence`` is the row's position among the data rows (0-based, across files in the order
given). Options: ``symbol`` (default: the file name up to its first ``_``, as in
``AAPL_2012-06-21_34200000_57600000_message_10.csv``), ``price_decimals`` (default 4),
``venue`` (default ``"NASDAQ"``).

Row numbers in errors are line numbers in the file (there is no header: the first row is 1).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from replay.loaders import Loaded
from replay.loaders.text import Table, instrument_ids, merge_by_time, read_table
from replay.quality import (
    RepairLog,
    TapeError,
    check_bounds,
    check_prices,
    check_ts_ns,
    sort_or_reject,
)
from replay.tape import (
    ADD,
    ASK,
    BID,
    CANCEL,
    DELETE,
    F_LAST,
    FILL,
    NONE,
    STATUS,
    TRADE,
    Events,
    Instrument,
    InstrumentTable,
)

DAY_NS = 86_400 * 10**9
NAMES = ("Time", "Type", "Order ID", "Size", "Price", "Direction")
SUBMIT, PARTIAL_CANCEL, DELETION, EXECUTE_VISIBLE, EXECUTE_HIDDEN, CROSS, HALT = range(1, 8)
# tape action of each Type (index 0 unused); a visible execution adds a C after its F
ACTION_OF_TYPE = np.array([0, ADD, CANCEL, DELETE, FILL, TRADE, TRADE, STATUS])
MUST_BE_POSITIVE = np.array([SUBMIT, PARTIAL_CANCEL, EXECUTE_VISIBLE, EXECUTE_HIDDEN, CROSS])


def midnight_ns(day: str, tz: str) -> int:
    """Midnight of ``day`` in time zone ``tz``, as UTC nanoseconds since the epoch."""
    try:
        d = datetime.strptime(day, "%Y-%m-%d")
    except (TypeError, ValueError):
        raise ValueError(f"lobster: date must be 'YYYY-MM-DD', not {day!r}") from None
    moment = datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1) * 10**9


def _fail(table: Table, bad: np.ndarray, name: str, reason: str) -> None:
    r = int(np.flatnonzero(bad)[0])
    raise TapeError(table.path, int(table.lines[r]), name, f"{table[name][r]!r}: {reason}")


def _columns(table: Table, start_ns: int) -> dict[str, np.ndarray]:
    """Parse and check one file's columns (everything but the size's sign)."""
    kind = table.ints("Type")
    unknown = (kind < SUBMIT) | (kind > HALT)
    if unknown.any():
        _fail(table, unknown, "Type", "unknown event type; LOBSTER types are 1 to 7")
    order_id = table.ints("Order ID")
    if np.any(order_id < 0):
        _fail(table, order_id < 0, "Order ID", "negative order id")
    direction = table.ints("Direction")
    off = (kind <= EXECUTE_HIDDEN) & (direction != 1) & (direction != -1)
    if off.any():
        _fail(table, off, "Direction", "Direction must be 1 (buy) or -1 (sell)")
    seconds_ns = table.units("Time", 9)
    late = (seconds_ns < 0) | (seconds_ns > 2 * DAY_NS)
    if late.any():
        _fail(table, late, "Time", "not seconds after midnight (0 to 172800)")
    ts = start_ns + seconds_ns
    check_ts_ns(ts, table.path, table.lines, "Time")
    size, price = table.ints("Size"), table.ints("Price")
    check_bounds(size, table.path, table.lines, "Size")
    priced = kind != HALT  # a halt row's Price is LOBSTER's status code
    check_prices(price, priced, np.zeros(len(kind), np.int64), np.ones(1, np.int64),
                 table.path, table.lines, "Price")
    return {"kind": kind, "ts": ts, "order_id": order_id,
            "size": size, "price": price, "direction": direction,
            "line": table.lines, "sequence": table.order}


def _events(table: Table, inst: int, start_ns: int, repair: bool, log: RepairLog) -> Events:
    """One message file's rows as time-ordered events."""
    c = _columns(table, start_ns)
    bad = (c["size"] < 0) | ((c["size"] == 0) & np.isin(c["kind"], MUST_BE_POSITIVE))
    if bad.any():
        if not repair:
            _fail(table, bad, "Size", "size must be positive (use --repair to drop such rows)")
        log.add("non_positive_size", table.lines[bad])
        c = {k: v[~bad] for k, v in c.items()}
    perm = sort_or_reject(c["ts"], table.path, c["line"], "Time", repair, log)
    if perm is not None:
        c = {k: v[perm] for k, v in c.items()}

    kind, direction = c["kind"], c["direction"]
    resting = np.where(direction == 1, BID, ASK)
    side = np.select([kind <= EXECUTE_VISIBLE, kind == EXECUTE_HIDDEN],
                     [resting, np.where(direction == 1, ASK, BID)], NONE)
    count = 1 + (kind == EXECUTE_VISIBLE)
    first = np.cumsum(count) - count
    owner = np.repeat(np.arange(len(kind)), count)  # the row of each event
    action = ACTION_OF_TYPE[kind[owner]]
    action[first[kind == EXECUTE_VISIBLE] + 1] = CANCEL
    flags = np.zeros(len(owner), np.int64)
    flags[first + count - 1] = F_LAST
    return Events.from_columns({
        "ts": c["ts"][owner], "instrument": np.full(len(owner), inst), "action": action,
        "side": side[owner], "price": c["price"][owner], "size": c["size"][owner],
        "order_id": np.where(kind <= EXECUTE_VISIBLE, c["order_id"], 0)[owner],
        "flags": flags, "sequence": c["sequence"][owner],
    })


def load(paths: list[Path], *, repair: bool = False, date: str | None = None,
         tz: str = "America/New_York", symbol: str | None = None, price_decimals: int = 4,
         venue: str = "NASDAQ") -> Loaded:
    """Load LOBSTER message files of one date into one time-ordered L3 tape."""
    if date is None:
        raise ValueError("lobster: the option date='YYYY-MM-DD' is required "
                         "(message times are seconds after the exchange's midnight)")
    start_ns = midnight_ns(date, tz)
    log = RepairLog()
    symbols = [symbol or Path(p).stem.split("_")[0] for p in paths]
    names, ids = instrument_ids([np.array([s]) for s in symbols])
    parts = []
    offset = 0
    for path, inst in zip(paths, ids, strict=True):
        table = read_table(Path(path), NAMES, names=NAMES, repair=repair, log=log)
        n_rows = len(table)
        table = table.drop_missing(NAMES, repair, log).drop_duplicates(repair, log)
        table.order = table.order + offset
        parts.append(_events(table, int(inst[0]), start_ns, repair, log))
        offset += n_rows
    instruments = InstrumentTable([
        Instrument(k, s, venue=venue, book_type="L3", price_decimals=price_decimals)
        for k, s in enumerate(names)])
    return Loaded(merge_by_time(parts), instruments, log)
