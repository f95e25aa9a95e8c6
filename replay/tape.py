"""The tape: one row per market event, columnar, time-ordered.

A tape is a single Parquet file. Its rows follow :data:`EVENT_SCHEMA` (in the spirit of
Databento MBO and Nautilus ``OrderBookDelta``); its key-value metadata carries the
instrument table, so a tape is self-describing and can be streamed in chunks.

Semantics of ``action`` (ASCII codes, as Databento uses them):

- ``A`` add: a new resting order (L3), or on an L2 book (``order_id == 0``) set the
  level at ``price`` to ``size``.
- ``C`` cancel: reduce order ``order_id`` by ``size`` (removed at zero); on L2 reduce the
  level by ``size``.
- ``D`` delete: remove order ``order_id`` whatever its size; on L2 remove the level.
- ``M`` modify: order ``order_id`` now rests at ``price`` with ``size`` (loses time priority
  when the price changes or the size grows); on L2 set the level to ``size``.
- ``T`` trade print: ``price``/``size`` traded, ``side`` = aggressor. Does not change the book.
- ``F`` fill: resting order ``order_id`` (on ``side``) was executed for ``size`` at ``price``.
  Does not change the book: the venue's following ``C``/``M``/``D`` does (as in Databento
  MBO). This is the historical *demand* the replay modes re-apply.
- ``R`` clear: empty the instrument's book.
- ``S`` status: trading status change (``flags`` carry the venue's code).

``side`` is ``B`` (bid/buy), ``A`` (ask/sell) or ``N`` (none). ``flags`` use Databento's
bits: :data:`F_LAST` marks the event that completes a packet (the book is consistent
after it), :data:`F_SNAPSHOT` marks snapshot rows; :data:`F_AUCTION` (a bit Databento leaves
unused) marks history's own auction uncross.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TAPE_VERSION = 1
# Bounds every tape row keeps (replay/quality.py: bounds; docs/data-quality.md).
TS_MIN_NS = 631_152_000 * 10**9  # 1990-01-01T00:00:00Z
TS_MAX_NS = 4_102_444_800 * 10**9  # 2100-01-01T00:00:00Z
MAX_UNITS = 2**53
METADATA_KEY = b"cascade.instruments"
VERSION_KEY = b"cascade.tape_version"

# The tape's codes (actions, sides, row flags) are defined in venues/codes.py; the loaders
# and the tape's readers take them from here.
from venues.codes import (  # noqa: E402, F401
    ACTIONS,
    ADD,
    ASK,
    BID,
    CANCEL,
    CLEAR,
    DELETE,
    F_AUCTION,
    F_BAD_TS_RECV,
    F_LAST,
    F_MAYBE_BAD_BOOK,
    F_MBP,
    F_SNAPSHOT,
    F_TOB,
    FILL,
    MODIFY,
    NONE,
    SIDES,
    STATUS,
    TRADE,
)

EVENT_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("instrument", pa.uint32(), nullable=False),
        pa.field("action", pa.uint8(), nullable=False),
        pa.field("side", pa.uint8(), nullable=False),
        pa.field("price", pa.int64(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("order_id", pa.uint64(), nullable=False),
        pa.field("flags", pa.uint8(), nullable=False),
        pa.field("sequence", pa.uint64(), nullable=False),
    ]
)
COLUMNS = tuple(EVENT_SCHEMA.names)
DTYPES = {f.name: np.dtype(f.type.to_pandas_dtype()) for f in EVENT_SCHEMA}
#: Optional columns a tape may carry after :data:`EVENT_SCHEMA`'s, 0 where a row has none.
#: A trade file that names both orders of each trade (Koscom: BIDORD_ACPT_NO,
#: ASKORD_ACPT_NO) keeps them here for joining with an order file; replay never reads them.
EXTRA_FIELDS = {"bid_order_no": pa.uint64(), "ask_order_no": pa.uint64()}


@dataclass(frozen=True)
class Instrument:
    """One row of the instrument table.

    Prices on the tape are integers: ``price_units = natural_price * 10**price_decimals``
    (KRW: 0 decimals, 1 unit = 1 won). Sizes likewise with ``size_decimals``.

    ``ref_*``: the real daily bar of ``ref_date`` (YYYY-MM-DD) kept as the instrument's
    reference, in price units and shares (docs/data-formats.md: daily bars); 0 and ""
    where unknown (tapes written before these fields load with those).
    """

    instrument_id: int
    symbol: str
    venue: str = ""
    book_type: str = "L3"  # "L3" market-by-order or "L2" market-by-price
    price_decimals: int = 0
    size_decimals: int = 0
    tick_units: int = 1
    lot_size: int = 1
    prev_close_units: int = 0
    market: str = ""
    index_member: str = ""
    shares_outstanding: int = 0
    ref_date: str = ""
    ref_open_units: int = 0
    ref_high_units: int = 0
    ref_low_units: int = 0
    ref_close_units: int = 0
    ref_volume: int = 0


@dataclass
class InstrumentTable:
    """The instruments of a tape, by id."""

    instruments: list[Instrument] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = [i.instrument_id for i in self.instruments]
        if len(set(ids)) != len(ids):
            raise ValueError(f"instrument table: duplicate instrument_id in {ids}")

    def __getitem__(self, instrument_id: int) -> Instrument:
        for inst in self.instruments:
            if inst.instrument_id == instrument_id:
                return inst
        raise KeyError(f"instrument {instrument_id} is not in the instrument table")

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self.instruments)

    def __len__(self) -> int:
        return len(self.instruments)

    def by_symbol(self, symbol: str) -> Instrument:
        for inst in self.instruments:
            if inst.symbol == symbol:
                return inst
        raise KeyError(f"symbol {symbol!r} is not in the instrument table")

    def to_json(self) -> str:
        return json.dumps([asdict(i) for i in self.instruments], ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> InstrumentTable:
        return cls([Instrument(**row) for row in json.loads(text)])

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pylist([asdict(i) for i in self.instruments])


@dataclass
class Events:
    """A chunk of tape rows as numpy arrays, one per column (no Python object per row)."""

    ts: np.ndarray
    instrument: np.ndarray
    action: np.ndarray
    side: np.ndarray
    price: np.ndarray
    size: np.ndarray
    order_id: np.ndarray
    flags: np.ndarray
    sequence: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls, n: int = 0) -> Events:
        return cls(**{c: np.zeros(n, DTYPES[c]) for c in COLUMNS})

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> Events:
        """Build from a mapping of column arrays, casting each to the schema's dtype."""
        n = len(columns["ts"])
        out = {}
        for c in COLUMNS:
            if c in columns:
                out[c] = np.ascontiguousarray(columns[c], dtype=DTYPES[c])
            elif c in ("flags", "sequence", "order_id"):
                out[c] = np.zeros(n, DTYPES[c])
            else:
                raise KeyError(f"events: missing column {c!r}")
            if len(out[c]) != n:
                raise ValueError(f"events: column {c!r} has {len(out[c])} rows, ts has {n}")
        return cls(**out)

    @classmethod
    def from_arrow(cls, batch: pa.RecordBatch | pa.Table) -> Events:
        return cls.from_columns(
            {c: batch.column(c).to_numpy(zero_copy_only=False) for c in COLUMNS}
        )

    @classmethod
    def concat(cls, parts: list[Events]) -> Events:
        if not parts:
            return cls.empty()
        return cls(**{c: np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS})

    def take(self, index: np.ndarray | slice) -> Events:
        return Events(**{c: getattr(self, c)[index] for c in COLUMNS})

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_arrays([pa.array(getattr(self, c)) for c in COLUMNS],
                                    schema=EVENT_SCHEMA)

    def columns(self) -> tuple[np.ndarray, ...]:
        return tuple(getattr(self, c) for c in COLUMNS)

    def kernel_columns(self) -> tuple[np.ndarray, ...]:
        """ts, instrument, action, side, price, size, order_id, flags as compiled kernels
        take them: order ids as int64 (the same bits), so no mixed signed/unsigned
        arithmetic turns them into floats."""
        return (self.ts, self.instrument, self.action, self.side, self.price, self.size,
                self.order_id.view(np.int64), self.flags)


QUALITY_KEY = b"cascade.quality"
#: What a loader found checking its file against itself (krx-orders: its book against the
#: file's book columns), JSON, shown by ``cascade data check``.
BOOK_CHECK_KEY = b"cascade.book_check"
#: The seed a synthetic tape's session schedule (auction random ends) was drawn from.
SESSION_SEED_KEY = b"cascade.session_seed"
#: How a market tape was made (replay.market): its day, names, the names left out and why,
#: the factor loadings and the event-rate rule; JSON.
MARKET_KEY = b"cascade.market"


def _schema_with_metadata(instruments: InstrumentTable, quality: str | None,
                          session_seed: int | None, book_check: str | None = None,
                          extra: tuple[str, ...] = (), market: str | None = None) -> pa.Schema:
    meta = {METADATA_KEY: instruments.to_json().encode(), VERSION_KEY: str(TAPE_VERSION).encode()}
    if quality:
        meta[QUALITY_KEY] = quality.encode()
    if book_check:
        meta[BOOK_CHECK_KEY] = book_check.encode()
    if market:
        meta[MARKET_KEY] = market.encode()
    if session_seed is not None:
        meta[SESSION_SEED_KEY] = str(int(session_seed)).encode()
    schema = EVENT_SCHEMA
    for name in extra:
        schema = schema.append(pa.field(name, EXTRA_FIELDS[name], nullable=False))
    return schema.with_metadata(meta)


def _extra_names(extra) -> tuple[str, ...]:
    unknown = [n for n in extra if n not in EXTRA_FIELDS]
    if unknown:
        raise ValueError(f"unknown extra tape column(s) {unknown}; the optional columns are "
                         f"{', '.join(EXTRA_FIELDS)}")
    return tuple(n for n in EXTRA_FIELDS if n in extra)


class TapeWriter:
    """Append event chunks to a Parquet tape; written to a temporary name and renamed on
    close, so a tape on disk is always complete."""

    def __init__(self, path: str | Path, instruments: InstrumentTable,
                 row_group_size: int = 1 << 20, quality: str | None = None,
                 session_seed: int | None = None, book_check: str | None = None,
                 extra: tuple[str, ...] = (), market: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        #: the optional columns (:data:`EXTRA_FIELDS`) every chunk written must give
        self.extra = _extra_names(extra)
        self._writer = pq.ParquetWriter(self._tmp, _schema_with_metadata(instruments, quality,
                                                                  session_seed, book_check,
                                                                  self.extra, market),
                                        compression="zstd")
        self._row_group_size = row_group_size
        self.rows = 0
        self._last_ts = np.iinfo(np.int64).min

    def write(self, events: Events, extra: dict[str, np.ndarray] | None = None) -> None:
        """Append ``events`` (with the writer's optional columns in ``extra``, one value per
        row), refusing rows out of time order or a price or size whose magnitude is not
        below 2**53 (docs/data-quality.md: bounds). Times outside 1990-2100 are refused at
        import and reported by ``cascade data check``."""
        extra = extra or {}
        if set(extra) != set(self.extra):
            raise ValueError(f"{self.path}: the tape's optional columns are "
                             f"{list(self.extra)}, not {sorted(extra)}")
        for name, values in extra.items():
            if len(values) != len(events):
                raise ValueError(f"{self.path}: column {name!r} has {len(values)} rows, the "
                                 f"events {len(events)}")
        if len(events) == 0:
            return
        if events.ts[0] < self._last_ts or np.any(events.ts[1:] < events.ts[:-1]):
            raise ValueError(f"{self.path}: events must be written in time order")
        for name, bad, why in (
                ("price", np.abs(events.price) >= MAX_UNITS, "|price| must be below 2**53"),
                ("size", np.abs(events.size) >= MAX_UNITS, "|size| must be below 2**53")):
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{self.path}: row {self.rows + r + 1}, field {name!r}: "
                                 f"{int(getattr(events, name)[r])} is {why}")
        self._last_ts = int(events.ts[-1])
        table = events.to_arrow()
        for name in self.extra:
            table = table.append_column(pa.field(name, EXTRA_FIELDS[name], nullable=False),
                                        pa.array(extra[name], EXTRA_FIELDS[name]))
        self._writer.write_table(table, row_group_size=self._row_group_size)
        self.rows += len(events)

    def close(self) -> Path:
        self._writer.close()
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        self._writer.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> TapeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_tape(path: str | Path, events: Events, instruments: InstrumentTable,
               quality: str | None = None, book_check: str | None = None,
               extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write a whole tape; ``quality`` is the JSON of the import's repair log,
    ``book_check`` that of the loader's check of its file (:data:`BOOK_CHECK_KEY`), ``extra``
    the optional columns (:data:`EXTRA_FIELDS`) by name."""
    with TapeWriter(path, instruments, quality=quality, book_check=book_check,
                    extra=tuple(extra or ())) as w:
        w.write(events, extra)
    return Path(path)


class Tape:
    """A tape on disk, read lazily in chunks (a tape larger than memory replays)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such tape")
        try:
            # no pre-buffering: it keeps whole row groups' bytes alive and doubled the
            # memory a streamed replay needs
            self._file = pq.ParquetFile(self.path, pre_buffer=False)
        except pa.ArrowInvalid as exc:
            raise ValueError(f"{self.path}: not a Parquet tape ({exc})") from None
        schema = self._file.schema_arrow
        missing = [c for c in COLUMNS if c not in schema.names]
        if missing:
            raise ValueError(f"{self.path}: not a tape, missing columns {missing}")
        meta = schema.metadata or {}
        if METADATA_KEY not in meta:
            raise ValueError(f"{self.path}: not a tape, no instrument table in its metadata")
        self.instruments = InstrumentTable.from_json(meta[METADATA_KEY])
        self.quality = meta.get(QUALITY_KEY, b"").decode() or None
        self.book_check = meta.get(BOOK_CHECK_KEY, b"").decode() or None
        #: how a market tape was made (:data:`MARKET_KEY`, JSON), else None
        self.market = meta.get(MARKET_KEY, b"").decode() or None
        seed = meta.get(SESSION_SEED_KEY)
        #: the seed of the tape's own auction schedule (synthetic tapes), else None
        self.session_seed = int(seed) if seed is not None else None
        #: the optional columns (:data:`EXTRA_FIELDS`) the tape carries
        self.extra = tuple(n for n in EXTRA_FIELDS if n in schema.names)

    def __len__(self) -> int:
        return self._file.metadata.num_rows

    def chunks(self, rows: int = 1 << 20) -> Iterator[Events]:
        for batch in self._file.iter_batches(batch_size=rows, columns=list(COLUMNS)):
            yield Events.from_arrow(batch)

    def read(self) -> Events:
        return Events.concat(list(self.chunks()))

    def read_extra(self, name: str) -> np.ndarray:
        """One optional column (:data:`EXTRA_FIELDS`), row for row with :meth:`read`."""
        if name not in self.extra:
            raise ValueError(f"{self.path}: the tape has no column {name!r} (its optional "
                             f"columns: {', '.join(self.extra) or 'none'})")
        return self._file.read(columns=[name]).column(name).to_numpy()


def write_tape_chunks(path: str | Path, chunks, session_seed: int | None,
                      empty: str, market: str | None = None) -> Path:
    """Stream ``(events, instrument table)`` chunks into a Parquet tape at ``path``: the
    tape's instrument table is the first chunk's, its session seed ``session_seed``
    (``market``: :data:`MARKET_KEY`); a failure leaves nothing under ``path``; no chunk at
    all is an error ``path: empty``."""
    writer: TapeWriter | None = None
    try:
        for events, table in chunks:
            if writer is None:
                writer = TapeWriter(path, table, session_seed=session_seed, market=market)
            writer.write(events)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise ValueError(f"{path}: {empty}")
    return writer.close()
