"""The tapes a sweep names, made or read for a cell: files, synthetic profiles, bundled
episodes and anchored market days (docs/sweeps.md: tapes).

A tape is held in memory (:class:`MemoryTape`) in the 2^20-row chunks a tape file gives
(replay.tape.Tape.chunks), so a cell's replay is the one ``cascade replay`` runs on the
same tape written to a file: :func:`write_tape` writes it, for a kept run. A synthetic,
episode or market tape is made with the cell's seed unless its entry fixes one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from replay.sweep.spec import TapeDef

CHUNK_ROWS = 1 << 20  # as replay.runner.RunSpec.chunk_rows: the chunks a tape file gives
#: The rows of the buffer replay.synth writes a one-day tape into (a chunk never spans two
#: days, and the events do not depend on its size): a large-cap day (about 3.6 M rows) comes
#: in one buffer and is cut into :data:`CHUNK_ROWS` views instead of being copied.
SYNTH_ROWS = 1 << 22


class MemoryTape:
    """A tape held in memory: what replay.runner.prepare reads of a replay.tape.Tape
    (``instruments``, ``session_seed``, ``first_day``, ``chunks``, ``len``)."""

    def __init__(self, chunks: list, instruments, session_seed: int | None, first_day,
                 path: Path | None = None) -> None:
        self._chunks = chunks
        self.instruments = instruments
        self.session_seed = session_seed
        self.first_day = first_day
        self.path = path
        self.rows = sum(len(c) for c in chunks)

    def __len__(self) -> int:
        return self.rows

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator:
        """The chunks held (``rows`` = :data:`CHUNK_ROWS`: as a tape file gives them), or
        each cut into pieces of at most ``rows``."""
        if rows == CHUNK_ROWS:
            yield from self._chunks
            return
        for c in self._chunks:
            for lo in range(0, len(c), rows):
                yield c.take(slice(lo, lo + rows))

    @property
    def nbytes(self) -> int:
        return sum(getattr(c, f).nbytes for c in self._chunks for f in c.__dataclass_fields__)


def rechunk(parts: Iterable, rows: int = CHUNK_ROWS) -> list:
    """Events chunks of any sizes as chunks of exactly ``rows`` (the last shorter), never
    holding more than one part and one chunk twice."""
    from replay.tape import Events

    out, pending, held = [], [], 0
    for part in parts:
        if not len(part):
            continue
        pending.append(part)
        held += len(part)
        if held >= rows:
            whole = Events.concat(pending) if len(pending) > 1 else pending[0]
            cut = (held // rows) * rows
            out.extend(whole.take(slice(lo, lo + rows)) for lo in range(0, cut, rows))
            pending = [whole.take(slice(cut, held))] if cut < held else []
            held -= cut
    if pending:
        out.append(Events.concat(pending) if len(pending) > 1 else pending[0])
    return out


@functools.lru_cache(maxsize=8)
def market_plan(tape: TapeDef) -> tuple[Any, Any, dict[str, float]]:
    """(replay.market.MarketPlan, index knots, index closes) of an episode or market tape."""
    from replay.market import group_knots, parse_index_knot, plan_market

    if tape.kind == "episode":
        from replay.episodes import episode_bars, load_episode

        ep = load_episode(tape.episode)
        bars = episode_bars(ep)
        mplan = plan_market(bars, ep.start, days=tape.days or ep.days, rate=ep.rate,
                            source=bars.attrs["source"], codes=list(ep.codes) or None)
        knots = [(d, t, r) for d, t, r in ep.knots]
        closes = dict(ep.index_closes)
    else:
        from replay.loaders.daily_bars import read_bars

        listed = None
        if tape.listing:
            from replay.loaders.listing import read_listing

            listed = read_listing(list(tape.listing), on=tape.start.isoformat())
        mplan = plan_market(read_bars(tape.path), tape.start, days=tape.days,
                            codes=list(tape.codes) or None, top=tape.top,
                            rate=tape.rate, source=str(tape.path), listing=listed,
                            listing_missing="keep" if tape.allow_missing else "raise")
        knots = list(tape.knots)
        closes = dict(tape.index_closes)
    knots = group_knots([parse_index_knot(",".join((d, t, repr(r)))) for d, t, r in knots]
                        ) if knots else None
    return mplan, knots, closes


def index_closes(tape: TapeDef) -> dict[str, float]:
    """The real index prior closes a tape's day comes with (an episode's, a market entry's
    ``index_closes``); {} for the others."""
    if tape.kind in ("episode", "market"):
        return market_plan(tape)[2]
    return {}


def _synthetic(tape: TapeDef, seed: int) -> Iterator:
    from replay.synth import synthesize

    return synthesize(tape.profile, tape.days, tape.tape_seed(seed), tape.start,
                      chunk_events=SYNTH_ROWS if tape.days == 1 else CHUNK_ROWS,
                      shocks=dict(tape.shocks))


def _market(tape: TapeDef, seed: int) -> Iterator:
    from replay.market import synthesize_market

    mplan, knots, _ = market_plan(tape)
    return synthesize_market(mplan, tape.tape_seed(seed), knots=knots)


def read_tape(tape: TapeDef, seed: int) -> MemoryTape:
    """The tape of ``tape`` for a cell of ``seed``: a file read whole, or the tape made
    (replay.synth, replay.market: the same events ``cascade data synth`` or ``cascade
    market build`` writes)."""
    from replay.broker_run import tape_first_day
    from replay.tape import Tape
    from venues.krx.session import seoul_date

    if tape.kind == "file":
        t = Tape(tape.path)
        return MemoryTape(list(t.chunks(CHUNK_ROWS)), t.instruments, t.session_seed,
                          tape_first_day(t), tape.path)
    made = _synthetic(tape, seed) if tape.kind == "synthetic" else _market(tape, seed)
    first_table: list = []

    def parts():
        for events, table in made:
            if not first_table:
                first_table.append(table)  # the first day's, as a tape file keeps
            yield events

    chunks = rechunk(parts())
    if not chunks:
        raise ValueError(f"tape {tape.name!r}: makes no event")
    return MemoryTape(chunks, first_table[0], tape.tape_seed(seed),
                      seoul_date(int(chunks[0].ts[0])))


def write_tape(tape: TapeDef, seed: int, path: Path) -> Path:
    """The tape as a file (a kept run replays it by path): a file tape's own path, else
    made at ``path`` (atomically; kept for the next cell of the same tape and seed)."""
    if tape.kind == "file":
        return tape.path
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        if tape.kind == "synthetic":
            from replay.synth import write_synthetic_tape

            write_synthetic_tape(tmp, tape.profile, tape.days, tape.tape_seed(seed),
                                 tape.start, shocks=dict(tape.shocks))
        else:
            from replay.market import write_market_tape

            mplan, knots, _ = market_plan(tape)
            write_market_tape(tmp, mplan, tape.tape_seed(seed), knots=knots)
        os.replace(tmp, path)
    return path


def head(tape: TapeDef, seed: int) -> MemoryTape:
    """A tape's instrument table, session seed and first day, without its events: what a
    population is checked against before the sweep runs."""
    from replay.broker_run import tape_first_day
    from replay.tape import Tape
    from venues.krx.session import seoul_date

    if tape.kind == "file":
        t = Tape(tape.path)
        return MemoryTape([], t.instruments, t.session_seed, tape_first_day(t), tape.path)
    if tape.kind == "synthetic":
        from replay.synth import synthesize

        events, table = next(synthesize(tape.profile, 1, tape.tape_seed(seed), tape.start,
                                        chunk_events=1 << 12))
        return MemoryTape([], table, tape.tape_seed(seed), seoul_date(int(events.ts[0])))
    from replay.anchor import instrument_table

    mplan, _, _ = market_plan(tape)
    return MemoryTape([], instrument_table(mplan.plan, 0), tape.tape_seed(seed),
                      mplan.names[0].days[0].day)
