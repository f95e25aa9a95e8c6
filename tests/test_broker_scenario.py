"""The shipped small-cap CFD unwind (brokers/examples): a 5-day synthetic small-cap tape
with a -12% news shock on day 2, replayed at the KRX venue in relative mode with the
``cfd`` preset. The heavily leveraged population drives the stock limit-down with forced
sells left unfilled at the lower limit (as on 2023-04-24..27, docs/reference/krx.md,
"Episodes to replay"); the lightly leveraged one on the same tape and seed has no forced sale
and no locked day."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from replay.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "brokers" / "examples"


@pytest.fixture(scope="module")
def tape(unwind_tape):
    return unwind_tape


def replay(tape, population, out):
    r = CliRunner().invoke(app, ["replay", str(tape), "--venue", "krx", "--mode", "relative",
                                 "--broker", "cfd", "--population", str(population),
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    return (pq.read_table(out / "sessions.parquet").to_pandas(),
            pq.read_table(out / "forced_orders.parquet").to_pandas(),
            json.loads((out / "summary.json").read_text()))


def test_heavy_leverage_locks_the_stock_limit_down(tape, tmp_path):
    sessions, forced, summary = replay(tape, EXAMPLES / "unwind-heavy.csv", tmp_path / "h")
    assert sessions.limit_locked_down.any()
    # forced sells were left unfilled at the lower limit on those days
    days = pd.to_datetime(forced.ts, utc=True).dt.tz_convert("Asia/Seoul").dt.date
    unfilled = forced[forced.filled_qty < forced.qty]
    locked_days = set(sessions.day[sessions.limit_locked_down])
    assert set(days[unfilled.index]) & locked_days
    assert summary["broker"]["max_generation"] >= 1  # the cascade fed itself
    assert summary["broker"]["max_drawdown"] > summary["counterfactual"]["max_drawdown"]


def test_light_leverage_on_the_same_tape_sells_nothing(tape, tmp_path):
    sessions, forced, summary = replay(tape, EXAMPLES / "unwind-light.csv", tmp_path / "l")
    assert forced.empty and not sessions.limit_locked_down.any()
    assert summary["broker"]["forced_volume"] == 0
