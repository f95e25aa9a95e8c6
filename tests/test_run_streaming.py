"""A broker run's memory does not grow with the tape: each close's account snapshot and the
counterfactual's trade prints go to disk as they come; the summary times the replay apart
from loading; and ``replay`` and ``compare`` share one rule for their defaults."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.tape import Instrument, InstrumentTable, write_tape
from tests.test_broker_cascade import book_tape

EXAMPLES = Path(__file__).resolve().parents[1] / "brokers" / "examples"


@pytest.fixture(scope="module")
def watched(unwind_tape, tmp_path_factory):
    """The five-day CFD unwind replayed by the command line, with every broker and every
    replay result of the run kept for inspection."""
    from brokers import engine
    from replay import engine as replay_engine

    brokers, results, seen = [], [], []
    original_run = replay_engine.Replay.run
    original_end = engine.Broker.on_day_end

    def run(self, *args, **kwargs):
        result = original_run(self, *args, **kwargs)
        results.append(result)
        return result

    def on_day_end(self, day, at):
        original_end(self, day, at)
        if self not in brokers:
            brokers.append(self)
        seen.append(len(self.snapshots))  # what the broker holds after each close

    mp = pytest.MonkeyPatch()
    mp.setattr(replay_engine.Replay, "run", run)
    mp.setattr(engine.Broker, "on_day_end", on_day_end)
    out = tmp_path_factory.mktemp("stream") / "run"
    try:
        r = CliRunner().invoke(app, ["replay", str(unwind_tape), "--venue", "krx", "--mode",
                                     "relative", "--broker", "cfd", "--population",
                                     str(EXAMPLES / "unwind-heavy.csv"), "-o", str(out)])
    finally:
        mp.undo()
    assert r.exit_code == 0, r.output
    return out, brokers, results, seen


def test_no_close_snapshot_is_held_in_memory(watched):
    out, brokers, _, seen = watched
    assert len(brokers) == 2  # the run's broker and the counterfactual's
    assert seen and max(seen) == 0 and all(not b.snapshots for b in brokers)
    accounts = pq.read_table(out / "accounts.parquet").to_pandas()
    assert accounts.day.nunique() == 5 and len(accounts) == 5 * accounts.account_id.nunique()
    assert set(accounts.state) <= {"ok", "called", "selling", "frozen"}
    assert (accounts.state != "ok").any()


def test_no_replay_of_the_run_keeps_its_prints_in_memory(watched):
    out, _, results, _ = watched
    measured = [r for r in results if r.events > 20_000]  # not the warm-up
    assert len(measured) == 2  # the run and its counterfactual
    for r in measured:
        assert r.trades.empty and r.fills.empty and r.top_of_book.empty
    cf = pq.read_table(out / "counterfactual_trades.parquet").to_pandas()
    assert len(cf) > 1000 and list(cf.columns) == ["ts", "instrument", "price", "size",
                                                   "side", "source"]


def test_streamed_figures_equal_the_whole_frames(watched, monkeypatch):
    from replay import broker_run

    out, _, _, _ = watched
    for name in ("trades.parquet", "counterfactual_trades.parquet"):
        frame = pq.read_table(out / name).to_pandas()
        history = (frame.source == "history") | (frame.source == 0)
        expect = (int(frame.loc[history & (frame.side == broker_run.SELL), "size"].sum()),
                  broker_run.max_drawdown(frame))
        monkeypatch.setattr(broker_run, "BATCH_ROWS", 997)  # many batches
        got = broker_run.trade_figures(out / name)
        assert got[0] == expect[0] and got[1] == pytest.approx(expect[1], abs=1e-15)
        assert expect[1] > 0.05
    summary = json.loads((out / "summary.json").read_text())
    assert summary["broker"]["max_drawdown"] > summary["counterfactual"]["max_drawdown"]


def test_prints_out_of_time_order_are_read_whole(tmp_path, monkeypatch):
    from replay import broker_run

    frame = pd.DataFrame({"ts": [1, 2, 3, 2, 5], "instrument": [1, 1, 2, 1, 2],
                          "price": [100, 90, 50, 80, 40], "size": [1, 2, 3, 4, 5],
                          "side": [65, 65, 66, 65, 65], "source": [0, 0, 0, 1, 0]})
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "t.parquet")
    monkeypatch.setattr(broker_run, "BATCH_ROWS", 2)
    sells, dd = broker_run.trade_figures(tmp_path / "t.parquet")
    assert sells == 1 + 2 + 5 and dd == pytest.approx(0.2)


def test_the_summary_times_loading_apart_from_the_replay(watched):
    out, _, results, _ = watched
    s = json.loads((out / "summary.json").read_text())
    run = next(r for r in results if r.events > 20_000)
    assert s["replay_seconds"] == pytest.approx(run.wall_seconds, abs=1e-5)
    assert s["events_per_second"] == pytest.approx(s["events_processed"] / s["replay_seconds"],
                                                   rel=1e-3)
    assert s["load_seconds"] > 0
    assert s["wall_seconds"] >= s["load_seconds"] + s["replay_seconds"]


# -- defaults --------------------------------------------------------------------------------

def test_replay_and_compare_share_their_defaults(unwind_tape, tmp_path):
    from replay.runner import default_venue
    from replay.tape import Tape

    assert default_venue(Tape(unwind_tape).instruments) == "krx"  # all on XKRX
    r = CliRunner().invoke(app, ["replay", str(unwind_tape), "-o", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert (s["mode"], s["venue"]) == ("relative", "krx") and "venue_summary" in s
    r = CliRunner().invoke(app, ["replay", str(unwind_tape), "--venue", "generic",
                                 "-o", str(tmp_path / "b")])
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["venue"] == "generic"
    other = write_tape(tmp_path / "x.parquet", book_tape(),
                       InstrumentTable([Instrument(1, "X", venue="XNAS", tick_units=100)]))
    r = CliRunner().invoke(app, ["replay", str(other), "-o", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert (s["mode"], s["venue"]) == ("relative", "generic")
    mixed = InstrumentTable([Instrument(1, "X", venue="XKRX"), Instrument(2, "Y", venue="")])
    assert default_venue(mixed) == "generic"


def test_compare_follows_the_same_rule(tmp_path):
    other = write_tape(tmp_path / "x.parquet", book_tape(),
                       InstrumentTable([Instrument(1, "X", tick_units=100)]))
    pop = tmp_path / "accounts.csv"
    pop.write_text("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
                   "101,instant,X,60,10000,0,426450,1970-01-01\n")
    r = CliRunner().invoke(app, ["compare", str(other), "--population", str(pop),
                                 "--broker", "instant", "--broker",
                                 "instant,maintenance_ratio=1.3", "-o", str(tmp_path / "c")])
    # at the generic venue (the tape is not on XKRX); compare's old default, krx, would
    # have replayed it under KRX sessions
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "c" / "instant" / "summary.json").read_text())
    assert (s["mode"], s["venue"]) == ("relative", "generic")
    assert np.isfinite(s["events_per_second"])
