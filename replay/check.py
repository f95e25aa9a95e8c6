"""``cascade data check``: what a tape contains and what is wrong with it.

Reads the tape in chunks and reports, per instrument: rows by action, time order, sizes that
must be positive, prices off the tick grid, and, from a replay of the tape through the book,
unknown order ids, duplicate adds and packet ends at which the book is crossed. Repairs made
at import (replay/quality.py policies) are listed from the tape's metadata.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from replay.engine import Replay
from replay.quality import RepairLog
from replay.tape import ADD, FILL, TRADE, Tape


def check_tape(path: str | Path, chunk_rows: int = 1 << 20) -> dict:
    tape = Tape(path)
    actions: Counter = Counter()
    backwards = 0
    non_positive = 0
    off_grid = 0
    last_ts = np.iinfo(np.int64).min
    first_problem: dict[str, int] = {}
    ticks = np.ones(max((i.instrument_id for i in tape.instruments), default=0) + 1, np.int64)
    for inst in tape.instruments:
        ticks[inst.instrument_id] = max(1, inst.tick_units)
    row0 = 0

    def note(kind: str, mask: np.ndarray) -> None:
        if kind not in first_problem and mask.any():
            first_problem[kind] = row0 + int(np.flatnonzero(mask)[0]) + 1

    def chunks():
        nonlocal row0, backwards, non_positive, off_grid, last_ts
        for ev in tape.chunks(chunk_rows):
            codes, counts = np.unique(ev.action, return_counts=True)
            for c, k in zip(codes, counts, strict=True):
                actions[chr(c)] += int(k)
            back = np.zeros(len(ev), bool)
            if len(ev):
                back[0] = ev.ts[0] < last_ts
                back[1:] = np.diff(ev.ts) < 0
            backwards += int(back.sum())
            note("unsorted_ts", back)
            must_be_positive = np.isin(ev.action, [ADD, TRADE, FILL]) & (ev.size <= 0)
            non_positive += int(must_be_positive.sum())
            note("non_positive_size", must_be_positive)
            priced = ev.price > 0
            grid = priced & (ev.price % ticks[ev.instrument] != 0)
            off_grid += int(grid.sum())
            note("off_grid_price", grid)
            last_ts = int(ev.ts[-1]) if len(ev) else last_ts
            yield ev
            row0 += len(ev)

    result = Replay(tape.instruments, "absolute").run(chunks())
    tob = result.top_of_book
    crossed = int(((tob.bid_px >= 0) & (tob.ask_px >= 0) & (tob.bid_px >= tob.ask_px)).sum())
    repairs = RepairLog.from_json(tape.quality) if tape.quality else RepairLog()
    return {
        "tape": str(path),
        "rows": len(tape),
        "instruments": [i.symbol for i in tape.instruments],
        "actions": dict(sorted(actions.items())),
        "problems": {
            "unsorted_ts": backwards,
            "non_positive_size": non_positive,
            "off_grid_price": off_grid,
            "unknown_order_id": result.counters["unknown_order"],
            "duplicate_add": result.counters["duplicate_add"],
            "crossed_book_at_packet_end": crossed,
        },
        "first_row": first_problem,
        "repairs_at_import": dict(repairs.counts),
        "repair_example_rows": repairs.examples,
    }


def format_report(report: dict) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False)
