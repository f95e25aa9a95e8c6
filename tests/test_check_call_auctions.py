"""cascade data check: a crossed book inside a KRX call auction is what the auction is (orders
accumulate unmatched until the uncross), not a problem; one in continuous trading is."""

import json
from datetime import date, time

import numpy as np
from typer.testing import CliRunner

from replay.cli import app
from replay.synth import synthesize
from replay.tape import ADD, ASK, F_LAST, Events, write_tape
from venues.krx.session import seoul_ns


def _day():
    (events, table), = list(synthesize("krx-smallcap", days=1, seed=3, start=date(2024, 3, 4)))
    return events, table


def _check(path) -> dict:
    r = CliRunner().invoke(app, ["data", "check", "--json", str(path)])
    return json.loads(r.output)


def test_crossed_packet_ends_of_the_call_auctions_are_counted_apart(tmp_path):
    events, table = _day()
    path = write_tape(tmp_path / "day.parquet", events, table)
    report = _check(path)
    assert report["problems"]["crossed_book_at_packet_end"] == 0
    assert report["crossed_in_call_auction"] > 0
    table_run = CliRunner().invoke(app, ["data", "check", str(path)])
    assert table_run.exit_code == 0, table_run.output
    assert "inside KRX call auctions" in table_run.output


def test_a_crossed_book_in_continuous_trading_is_still_a_problem(tmp_path):
    events, table = _day()
    at = seoul_ns(date(2024, 3, 4), time(10, 0))
    k = int(np.searchsorted(events.ts, at))
    # an ask far below every bid, resting: the book is crossed from 10:00 to the close
    low = int(events.price[events.price > 0].min())
    row = Events.from_columns({
        "ts": np.array([at], np.int64), "instrument": events.instrument[:1],
        "action": np.array([ADD], np.uint8), "side": np.array([ASK], np.uint8),
        "price": np.array([low], np.int64), "size": np.array([1], np.int64),
        "order_id": np.array([10**15], np.uint64), "flags": np.array([F_LAST], np.uint8),
        "sequence": np.array([0], np.uint64)})
    spliced = Events.concat([events.take(slice(0, k)), row, events.take(slice(k, len(events)))])
    path = write_tape(tmp_path / "crossed.parquet", spliced, table)
    report = _check(path)
    assert report["problems"]["crossed_book_at_packet_end"] >= 1
    assert report["first_row"]["crossed_book_at_packet_end"] == k + 1
