"""Participants: the parties a replay hosts beside its book, behind one small protocol.

The venue's session rules, each broker and each strategy are participants of a
:class:`replay.engine.Replay` (the driver). This module is the lowest layer's, so that
venues/, brokers/ and strategies/ can each implement it. The compiled loop knows none of
them: it stops when a time one of them asked for comes (PAUSE), when a venue rule fires
(VENUE_EVENT), or when a wake condition holds (WAKE): an instrument's last price fell to a
participant's wake price, or a trade was printed on an instrument someone wakes on prints
for. The driver then calls the participants, always in the order of
:attr:`Replay.participants`: by :data:`ROLES` (the venue, then brokers, then strategies),
and within a role in the order they were attached.

The calls, each a no-op unless a participant overrides it:

- ``start(replay)``: once, before the replay's first event (a broker arms its wake prices).
- ``begin(ts)``: at the first event's time (the venue opens its first day; a strategy's
  ``on_start``).
- ``next_ts()``: the next time it must run, :data:`NEVER` for none. The loop pauses at the
  earliest; the first participant in order whose time it is gets ``on_time(ts, next_input)``
  (``next_input``: the time of the next tape row or injected order).
- ``on_wake(instrument, ts)``: the instrument's last price is at or below this participant's
  wake price (:meth:`Replay.wake_below`).
- ``on_venue_event()``: the venue only: one of its rules fired in the loop.
- ``observe(ts)``: after every stop, for every participant the stop did not call through
  ``on_time``: what has happened is visible (fills, prints: a strategy reads them here; the
  prints of :meth:`Replay.wake_on_prints` instruments wake the loop for this).
- ``on_pre_open(day, ts, lower_limits)``, ``on_day_end(day, ts)``: the venue's session
  events, told to every other participant in order.
- ``before_flush()``, ``after_flush()``: around each flush of the report buffers (the trade
  prints are readable until then).
- ``finish()``: the input is exhausted, in order (the venue first runs its day to the end).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np

NEVER = np.iinfo(np.int64).max

#: The order of participants by role; within a role, the order of attachment.
ROLES = ("venue", "broker", "strategy")


class Participant:
    """The protocol, with every call a no-op (see the module docstring)."""

    role = "strategy"

    def start(self, replay: Any) -> None: ...

    def begin(self, ts: int) -> None: ...

    def next_ts(self) -> int:
        return NEVER

    def on_time(self, ts: int, next_input: int) -> None: ...

    def on_wake(self, instrument: int, ts: int) -> None: ...

    def on_venue_event(self) -> None: ...

    def observe(self, ts: int) -> None: ...

    def on_pre_open(self, day: date, ts: int, lower_limits: dict[int, int]) -> None: ...

    def on_day_end(self, day: date, ts: int) -> None: ...

    def before_flush(self) -> None: ...

    def after_flush(self) -> None: ...

    def finish(self) -> None: ...


def ordered(participants: list[Participant]) -> list[Participant]:
    """``participants`` by role (:data:`ROLES`), attachment order within a role."""
    rank = {role: k for k, role in enumerate(ROLES)}
    for p in participants:
        if p.role not in rank:
            raise ValueError(f"{type(p).__name__}: role {p.role!r} is not one of {ROLES}")
    return sorted(participants, key=lambda p: rank[p.role])
