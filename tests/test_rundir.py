"""Run directories are complete or absent, carry one run id, and every output is written
atomically: an earlier run's tables never mix with a later one's, a failed or killed run
leaves nothing that looks current, and a full disk is one line naming the file."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.tape import Instrument, InstrumentTable, write_tape
from tests.test_broker_cascade import book_tape

RUN_ID_KEY = b"cascade.run_id"  # where a table carries its run id (replay/rundir.py)

ACCOUNTS = ("account_id,kind,instrument,shares,entry_price,cash,loan,trade_date\n"
            "101,instant,X,60,10000,0,426450,1970-01-01\n"
            "102,instant,X,100,10000,0,703607,1970-01-01\n"
            "103,instant,X,120,10000,0,835757,1970-01-01\n")


@pytest.fixture
def case(tmp_path):
    """The hand-computed cascade of tests/test_broker_cascade.py: a tape, three accounts
    and one exogenous sell; the broker sells all three."""
    tape = write_tape(tmp_path / "book.parquet", book_tape(),
                      InstrumentTable([Instrument(1, "X", tick_units=100)]))
    pop = tmp_path / "accounts.csv"
    pop.write_text(ACCOUNTS)
    sells = tmp_path / "sells.csv"
    sells.write_text("ts,instrument,side,type,price,size\n3,X,sell,market,,150\n")
    return tape, pop, sells


def replay(*args: str):
    return CliRunner().invoke(app, ["replay", *map(str, args)])


def broker_args(case):
    tape, pop, sells = case
    return [tape, "--broker", "instant", "--population", pop, "--inject", sells]


def test_a_second_run_into_the_same_directory_is_refused_and_overwrite_replaces_it(case,
                                                                                   tmp_path):
    out = tmp_path / "R"
    assert replay(*broker_args(case), "-o", out).exit_code == 0
    first = json.loads((out / "summary.json").read_text())
    r = replay(case[0], "-o", out)  # a plain run, no broker
    assert r.exit_code == 2 and "--overwrite" in r.output and str(out) in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert json.loads((out / "summary.json").read_text()) == first  # untouched
    r = replay(case[0], "-o", out, "--overwrite")
    assert r.exit_code == 0, r.output
    # the broker run's tables are gone with it: the report draws no forced sales
    assert not (out / "forced_orders.parquet").exists()
    assert not (out / "accounts.parquet").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".R.")]
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    assert "Forced sales by generation" not in (out / "report.html").read_text()


def test_every_table_carries_the_run_id_and_the_data_stays_the_same(case, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert replay(*broker_args(case), "-o", out).exit_code == 0
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["run_id"] != sb["run_id"]
    names = sorted(p.name for p in a.glob("*.parquet"))
    assert names == sa["tables"] and "counterfactual_trades.parquet" in names
    for name in names:
        ta, tb = pq.read_table(a / name), pq.read_table(b / name)
        assert ta.schema.metadata[RUN_ID_KEY].decode() == sa["run_id"]
        assert tb.schema.metadata[RUN_ID_KEY].decode() == sb["run_id"]
        # the same inputs and seed give the same data; only the metadata holds the id
        assert data_bytes(ta) == data_bytes(tb)


def data_bytes(table: pa.Table) -> bytes:
    """The table's data (its schema and values, not its metadata) as Parquet bytes."""
    sink = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(None), sink)
    return sink.getvalue().to_pybytes()


def test_report_refuses_mixed_missing_and_temporary_directories(case, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert replay(*broker_args(case), "-o", a).exit_code == 0
    assert replay(*broker_args(case), "-o", b).exit_code == 0
    shutil.copy(a / "forced_orders.parquet", b / "forced_orders.parquet")
    r = CliRunner().invoke(app, ["report", str(b)])
    assert r.exit_code == 2 and str(b / "forced_orders.parquet") in r.output
    assert "another" in r.output or "not from the run" in r.output
    (a / "summary.json").unlink()
    r = CliRunner().invoke(app, ["report", str(a)])
    assert r.exit_code == 2 and str(a / "summary.json") in r.output
    temp = tmp_path / ".c.123.abc.partial"
    shutil.copytree(b, temp)
    r = CliRunner().invoke(app, ["report", str(temp)])
    assert r.exit_code == 2 and "did not finish" in r.output
    # a table the summary lists but that is gone
    c = tmp_path / "c"
    assert replay(*broker_args(case), "-o", c).exit_code == 0
    (c / "accounts.parquet").unlink()
    r = CliRunner().invoke(app, ["report", str(c)])
    assert r.exit_code == 2 and str(c / "accounts.parquet") in r.output


def test_a_run_that_fails_leaves_no_directory(case, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from strategies.base import Strategy\n\n"
                   "class Bad(Strategy):\n"
                   "    def on_start(self):\n"
                   "        raise ValueError('the strategy stops the run')\n")
    out = tmp_path / "R"
    r = replay(*broker_args(case), "--strategy", f"{bad}:Bad", "-o", out)
    assert r.exit_code == 2 and "the strategy stops the run" in r.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".R.")]


def test_a_killed_runs_temporary_directory_is_removed_by_the_next_run(case, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = tmp_path / f".R.{dead}.0123456789ab.partial"
    left.mkdir()
    (left / "trades.parquet").write_bytes(b"half a table")
    out = tmp_path / "R"
    assert replay(*broker_args(case), "-o", out).exit_code == 0
    assert not left.exists() and out.is_dir()


# -- a full disk -----------------------------------------------------------------------------

def _full_disk(monkeypatch, name: str) -> None:
    """Writes of the file ``name`` (under any temporary name) fail as on a full disk."""
    def failing(original, path_of):
        def write(*args, **kwargs):
            if name in str(path_of(*args, **kwargs)):
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(*args, **kwargs)
        return write

    import pyarrow.parquet as pqm

    monkeypatch.setattr(pqm, "write_table",
                        failing(pqm.write_table, lambda table, where, *a, **k: where))
    original_init = pqm.ParquetWriter.__init__

    def init(self, where, *args, **kwargs):
        original_init(self, where, *args, **kwargs)
        self._cascade_path = str(where)

    original_write = pqm.ParquetWriter.write_table

    def write_table(self, *args, **kwargs):
        if name in getattr(self, "_cascade_path", ""):
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_write(self, *args, **kwargs)

    monkeypatch.setattr(pqm.ParquetWriter, "__init__", init)
    monkeypatch.setattr(pqm.ParquetWriter, "write_table", write_table)
    monkeypatch.setattr(Path, "write_text",
                        failing(Path.write_text, lambda self, *a, **k: self))
    import pandas as pd

    monkeypatch.setattr(pd.DataFrame, "to_csv",
                        failing(pd.DataFrame.to_csv, lambda self, where=None, *a, **k: where))


def _no_final(root: Path, name: str) -> list[Path]:
    return [p for p in root.rglob(name)]


@pytest.mark.parametrize("name", ["trades.parquet", "forced_orders.parquet",
                                  "accounts.parquet", "counterfactual_trades.parquet",
                                  "injected.parquet", "strategy_equity.parquet",
                                  "summary.json"])
def test_a_full_disk_is_one_line_naming_the_file(case, tmp_path, monkeypatch, name):
    idle = tmp_path / "idle.py"
    idle.write_text("from strategies.base import Strategy\n\nclass Idle(Strategy):\n"
                    "    pass\n")
    _full_disk(monkeypatch, name)
    out = tmp_path / "R"
    r = replay(*broker_args(case), "--strategy", f"{idle}:Idle", "-o", out)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "No space left" in lines[0], r.output
    assert not out.exists() and not _no_final(tmp_path, name)


def test_a_full_disk_writing_the_report_leaves_the_old_page(case, tmp_path, monkeypatch):
    out = tmp_path / "R"
    assert replay(*broker_args(case), "-o", out).exit_code == 0
    _full_disk(monkeypatch, "report.html")
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and str(out / "report.html") in lines[0]
    assert not list(out.glob("*report.html*"))


def test_a_full_disk_writing_the_book_is_one_line_and_leaves_nothing(case, tmp_path,
                                                                     monkeypatch):
    tape, _, _ = case
    _full_disk(monkeypatch, "book.out.parquet")
    out = tmp_path / "book.out.parquet"
    r = CliRunner().invoke(app, ["book", str(tape), "--levels", "2", "-o", str(out)])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and str(out) in lines[0] and "No space left" in lines[0], r.output
    assert not list(tmp_path.glob("*book.out.parquet*"))


def test_a_real_full_disk(case, tmp_path):
    """A 1 MB tmpfs in a private mount namespace; skipped where mounting is not allowed."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c",
                            f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
                           capture_output=True)
    if probe.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    tape, pop, sells = case
    disk = tmp_path / "disk"
    disk.mkdir()
    cascade = str(Path(sys.executable).with_name("cascade"))
    script = (f"mount -t tmpfs -o size=16k tmpfs {disk} && {cascade} replay {tape} --broker "
              f"instant --population {pop} --inject {sells} -o {disk}/R; echo rc=$?; "
              f"ls -a {disk}")
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                         text=True, timeout=600)
    assert "rc=2" in res.stdout, res.stdout + res.stderr
    err = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert len(err) == 1 and f"{disk}/R" in err[0] and "No space left" in err[0], res.stderr
    assert res.stdout.split("rc=2")[1].split() == [".", ".."]  # nothing left on the disk
