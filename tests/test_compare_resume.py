"""``cascade compare`` killed or run again: its workers die with it, and a re-run reuses
each variant whose run directory is complete and made the same way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from replay.cli import app
from replay.tape import Instrument, InstrumentTable, write_tape
from tests.test_broker_cascade import book_tape
from tests.test_rundir import ACCOUNTS

EXAMPLES = Path(__file__).resolve().parents[1] / "brokers" / "examples"


@pytest.fixture
def case(tmp_path):
    tape = write_tape(tmp_path / "book.parquet", book_tape(),
                      InstrumentTable([Instrument(1, "X", tick_units=100)]))
    pop = tmp_path / "accounts.csv"
    pop.write_text(ACCOUNTS)
    sells = tmp_path / "sells.csv"
    sells.write_text("ts,instrument,side,type,price,size\n3,X,sell,market,,150\n")
    return tape, pop, sells


def compare(case, out, *variants, extra=()):
    tape, pop, sells = case
    args = ["compare", str(tape), "--population", str(pop), "--inject", str(sells),
            "-o", str(out), "--label", "base", "--label", "strict", *extra]
    for v in variants:
        args += ["--broker", v]
    return CliRunner().invoke(app, args)


def pid(out, label):
    return json.loads((out / label / "summary.json").read_text())["compare"]["worker_pid"]


def test_a_rerun_reuses_complete_variants_and_reruns_a_changed_one(case, tmp_path):
    out = tmp_path / "cmp"
    r = compare(case, out, "instant", "instant,maintenance_ratio=1.3")
    assert r.exit_code == 0, r.output
    first = {k: pid(out, k) for k in ("base", "strict")}
    csv = (out / "comparison.csv").read_bytes()
    r = compare(case, out, "instant", "instant,maintenance_ratio=1.3")
    assert r.exit_code == 0, r.output
    assert r.output.count("reused") >= 2 and {k: pid(out, k) for k in first} == first
    assert (out / "comparison.csv").read_bytes() == csv
    # the strict variant changed: it runs again, the base one is reused
    r = compare(case, out, "instant", "instant,maintenance_ratio=1.2")
    assert r.exit_code == 0, r.output
    assert pid(out, "base") == first["base"] and pid(out, "strict") != first["strict"]
    assert "reused base" in " ".join(r.output.split())
    s = json.loads((out / "strict" / "summary.json").read_text())
    assert s["compare"]["variant"] == "instant,maintenance_ratio=1.2"
    # a changed input file: every variant runs again
    tape, pop, sells = case
    sells.write_text("ts,instrument,side,type,price,size\n3,X,sell,market,,120\n")
    r = compare(case, out, "instant", "instant,maintenance_ratio=1.2")
    assert r.exit_code == 0, r.output
    assert pid(out, "base") != first["base"] and "reused" not in r.output


def test_a_comparison_directory_holds_only_its_own_files(case, tmp_path):
    out = tmp_path / "cmp"
    assert compare(case, out, "instant", "instant,maintenance_ratio=1.3").exit_code == 0
    (out / "notes.txt").write_text("mine")
    r = compare(case, out, "instant", "instant,maintenance_ratio=1.3")
    assert r.exit_code == 2 and str(out / "notes.txt") in r.output and "--overwrite" in r.output
    before = pid(out, "base")
    r = compare(case, out, "instant", "instant,maintenance_ratio=1.3", extra=["--overwrite"])
    assert r.exit_code == 0, r.output
    assert not (out / "notes.txt").exists() and pid(out, "base") != before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cmp.")]


def _workers(marker: str) -> list[int]:
    """Processes spawned by multiprocessing whose environment holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in env and b"spawn_main" in cmd:
            found.append(int(entry.name))
    return found


def _listing(root: Path) -> dict[str, int]:
    out = {}
    for p in root.rglob("*"):
        try:
            out[str(p)] = p.stat().st_size
        except OSError:
            pass
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_compare_takes_its_workers_with_it(unwind_tape, tmp_path):
    marker = f"cascade-test-{uuid.uuid4().hex}"
    out = tmp_path / "cmp"
    cascade = str(Path(sys.executable).with_name("cascade"))
    env = {**os.environ, "CASCADE_TEST_MARKER": marker}
    proc = subprocess.Popen([cascade, "compare", str(unwind_tape), "--population",
                             str(EXAMPLES / "unwind-heavy.csv"), "--broker", "cfd",
                             "--broker", "cfd,call_level=0.6", "-o", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        # mid-run: both workers are up and writing their run directories
        while time.monotonic() < deadline and not (
                len(_workers(marker)) == 2 and len(list(out.rglob("*trades*"))) >= 2):
            assert proc.poll() is None, "compare ended before it could be killed"
            time.sleep(0.2)
        assert len(_workers(marker)) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        gone = time.monotonic() + 5
        while _workers(marker) and time.monotonic() < gone:
            time.sleep(0.1)
        assert _workers(marker) == []
        before = _listing(out)
        time.sleep(2)
        assert _listing(out) == before  # nothing writes on
        assert not (out / "comparison.csv").exists()
    finally:
        for p in _workers(marker):
            os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("name", ["comparison.csv", "comparison.html"])
def test_a_full_disk_writing_the_comparison_is_one_line(case, tmp_path, monkeypatch, name):
    from tests.test_rundir import _full_disk

    _full_disk(monkeypatch, name)
    out = tmp_path / "cmp"
    r = compare(case, out, "instant", "instant,maintenance_ratio=1.3")
    assert r.exit_code == 2, r.output
    # beside the variants' progress lines, one error line naming the file, no traceback
    lines = [line for line in r.output.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and str(out / name) in lines[0] and "No space left" in lines[0]
    assert "Traceback" not in r.output and r.output.rstrip().endswith("No space left on device")
    assert not list(out.glob(f"*{name}*"))
