"""cascade sweep: the spec checked whole, cells equal to cascade replay's runs, records that
survive a SIGKILL, the same table on the local pool and on Ray (replay/sweep,
docs/sweeps.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from replay.sweep import SpecError, load_spec, run_sweep
from replay.sweep.run import tasks_of

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ROOT / "brokers" / "examples" / "unwind-heavy.csv"
CASCADE = Path(sys.executable).with_name("cascade")

#: Two days of the small cap with a 12% gap on day 2: the instant broker sells 2,000 CFD
#: accounts into it (the stock locks limit-down); the cfd broker only calls them.
SPEC = f"""
[sweep]
seeds = {{first = 5, count = 2}}
baseline = "cfd"

[variants]
cfd = "cfd"
instant = "instant"
"instant-120" = {{ rules = "instant", set = {{ maintenance_ratio = 1.2 }} }}

[tapes]
gap = {{ synthetic = "krx-smallcap", days = 2, shocks = {{ 1 = -0.12 }} }}

[populations]
heavy = "{HEAVY.as_posix()}"
"""


def write_spec(tmp_path: Path, text: str = SPEC, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_cells_are_the_figures_cascade_replay_writes(tmp_path):
    """The in-memory cells (one counterfactual per block, tapes held by the worker) give
    the same table, byte for byte, as the same cells run as full cascade replay runs."""
    spec = write_spec(tmp_path)
    fast = run_sweep(spec, tmp_path / "fast", jobs=1)
    run_sweep(spec, tmp_path / "kept", jobs=1, keep_runs=True)
    assert (fast.table.status == "ok").all(), fast.table.error.tolist()
    assert len(fast.table) == 6 and fast.ran == 6
    t = fast.table.set_index(["variant", "seed"])
    # the instant broker sells; the cfd broker, with a day's grace, does not in two days
    assert (t.loc["instant", "forced_volume"] > 0).all()
    assert (t.loc["cfd", "forced_volume"] == 0).all()
    assert (t.loc["instant", "limit_locked_days"] >= 1).all()
    assert (t.loc["cfd", "excess_drawdown"] == 0).all()
    # paired: every variant of a seed saw the same tape and the same counterfactual
    cf = fast.table.groupby("seed").counterfactual_max_drawdown.nunique()
    assert (cf == 1).all()
    assert fast.table.groupby("seed").tape_sell_volume.nunique().max() >= 1
    assert (tmp_path / "fast" / "cells.parquet").read_bytes() == \
        (tmp_path / "kept" / "cells.parquet").read_bytes()
    runs = sorted((tmp_path / "kept" / "runs").iterdir())
    assert len(runs) == 6 and all((r / "summary.json").is_file() for r in runs)
    assert not (tmp_path / "fast" / "runs").exists()
    assert len(list((tmp_path / "kept" / "tapes").iterdir())) == 2  # one per seed
    # the spec without a variant: its records and kept runs go, nothing stale is left
    fewer = write_spec(tmp_path, SPEC.replace('instant = "instant"\n', ""), "fewer.toml")
    less = run_sweep(fewer, tmp_path / "kept", jobs=1, keep_runs=True)
    assert less.ran == 0 and less.pruned == 2 and len(less.table) == 4
    assert sorted(d.name for d in (tmp_path / "kept" / "runs").iterdir()) == \
        sorted(k[:16] for k in less.table.key)
    assert len(list((tmp_path / "kept" / "tapes").iterdir())) == 2


def test_a_spec_is_checked_whole_before_anything_runs(tmp_path):
    bad = {
        "sweep.baseline": SPEC.replace('baseline = "cfd"', 'baseline = "nope"'),
        "variants.cfd": SPEC.replace('cfd = "cfd"', 'cfd = "cfd,no_such_field=1"'),
        "tapes.gap.days": SPEC.replace("days = 2", "days = 0"),
        "tapes.gap.synthetic": SPEC.replace('"krx-smallcap"', '"krx-midcap"'),
        "sweep.seeds": SPEC.replace("{first = 5, count = 2}", "[1, 1]"),
        "populations.heavy.file": SPEC.replace("unwind-heavy.csv", "missing.csv"),
        "sweep.colour": SPEC.replace("[sweep]", "[sweep]\ncolour = 1"),
        "variants.instant-120.vary": SPEC.replace(
            "set = { maintenance_ratio = 1.2 }", "vary = { maintenance_ratio = 1.2 }"),
    }
    for key, text in bad.items():
        with pytest.raises(SpecError, match=key.replace(".", r"\.").replace("-", r"\-")):
            load_spec(write_spec(tmp_path, text, "bad.toml"))
    # a population that does not fit the tape stops the sweep before any cell runs
    other = SPEC.replace('heavy = "', 'heavy = "').replace(
        HEAVY.as_posix(), (ROOT / "brokers" / "examples" / "crash-credit.csv").as_posix())
    with pytest.raises(ValueError, match="population 'heavy' on tape 'gap'"):
        run_sweep(write_spec(tmp_path, other, "other.toml"), tmp_path / "out", jobs=1)
    assert not (tmp_path / "out" / "cells").exists()


def test_vary_makes_one_variant_per_combination(tmp_path):
    text = SPEC.replace('"instant-120" = { rules = "instant", set = { maintenance_ratio = 1.2 } }',
                        '[variants.grid]\nrules = "krx-credit"\n'
                        'vary = { maintenance_ratio = [1.3, 1.4], grace_days = [1, 2] }')
    spec = load_spec(write_spec(tmp_path, text))
    names = [v.name for v in spec.variants]
    assert names[2:] == ["grid[maintenance_ratio=1.3,grace_days=1]",
                         "grid[maintenance_ratio=1.3,grace_days=2]",
                         "grid[maintenance_ratio=1.4,grace_days=1]",
                         "grid[maintenance_ratio=1.4,grace_days=2]"]
    assert spec.variants[3].brokers[0].overrides == ("maintenance_ratio=1.3", "grace_days=2")
    assert len(spec.cells) == 6 * 2
    # a listed subset: the axes an entry does not name take all their values
    sub = load_spec(write_spec(tmp_path, text + '\n[[cells]]\nvariant = "cfd"\nseed = 6\n',
                               "sub.toml"))
    assert [(c.variant.name, c.seed) for c in sub.cells] == [("cfd", 6)]


def test_tasks_keep_blocks_whole_and_balance_small_sweeps(tmp_path):
    spec = load_spec(write_spec(tmp_path, SPEC.replace("count = 2", "count = 40")))
    tasks = tasks_of(spec.cells, jobs=2)
    assert len(tasks) == 40 and all(len({c.group for c in t}) == 1 for t in tasks)
    few = load_spec(write_spec(tmp_path, SPEC.replace("count = 2", "count = 1"), "few.toml"))
    tasks = tasks_of(few.cells, jobs=2)
    assert sorted(len(t) for t in tasks) == [1, 1, 1]
    assert sum(len(t) for t in tasks) == len(few.cells)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sweep_killed_with_sigkill_resumes_to_the_same_table(tmp_path):
    """SIGKILL the driver after some cells are recorded: no worker outlives it, and the
    sweep run again runs only the missing cells and ends with the uninterrupted table."""
    spec = write_spec(tmp_path, SPEC.replace("count = 2", "count = 4"))
    whole = run_sweep(spec, tmp_path / "whole", jobs=2)
    out = tmp_path / "killed"
    proc = subprocess.Popen([str(CASCADE), "sweep", str(spec), "-o", str(out), "--jobs", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    workers: set[int] = set()
    while time.monotonic() < deadline:
        workers |= set(_children(proc.pid))
        if (out / "cells").is_dir() and len(list((out / "cells").glob("*.json"))) >= 3:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    recorded = len(list((out / "cells").glob("*.json")))
    assert 3 <= recorded < 12, recorded
    workers |= set(_children(proc.pid))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert workers, "the sweep started no worker"
    for _ in range(100):
        if not any(_alive(w) for w in workers):
            break
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "a worker outlived its driver"
    assert not (out / "cells.parquet").exists()
    again = run_sweep(spec, out, jobs=2)
    assert again.reused == recorded and again.ran == 12 - recorded
    assert (out / "cells.parquet").read_bytes() == \
        (tmp_path / "whole" / "cells.parquet").read_bytes()
    pd.testing.assert_frame_equal(again.table, whole.table)


def test_the_ray_backend_gives_the_local_table(tmp_path):
    """The same sweep as Ray actors on a local Ray instance: identical cells.parquet."""
    pytest.importorskip("ray")
    spec = write_spec(tmp_path)
    run_sweep(spec, tmp_path / "local", jobs=2)
    on_ray = run_sweep(spec, tmp_path / "ray", jobs=2, backend="ray")
    assert on_ray.ran == 6 and on_ray.summary["backend"] == "ray"
    assert (tmp_path / "ray" / "cells.parquet").read_bytes() == \
        (tmp_path / "local" / "cells.parquet").read_bytes()
    pids = {r["worker_pid"] for r in _records(tmp_path / "ray")}
    assert os.getpid() not in pids


def _records(out: Path) -> list[dict]:
    import json

    return [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]


BOOM = '''
from pathlib import Path
from strategies.base import Strategy


class Boom(Strategy):
    """Fails while the run starts when the file ``flag`` exists."""
    account = "cash"
    flag = ""

    def on_start(self) -> None:
        if self.flag and Path(self.flag).exists():
            raise RuntimeError("the flag is up")
'''


def test_failed_cells_are_recorded_and_retried_on_request(tmp_path):
    (tmp_path / "boom.py").write_text(BOOM, encoding="utf-8")
    flag = tmp_path / "flag"
    flag.touch()
    text = SPEC.replace("count = 2", "count = 1").replace(
        "[sweep]", f'[sweep]\nstrategy = "boom.py:Boom"\nparams = {{ flag = "{flag}" }}')
    spec = write_spec(tmp_path, text)
    first = run_sweep(spec, tmp_path / "out", jobs=1)
    assert first.failed == 3 and (first.table.status == "failed").all()
    assert first.table.error.str.contains("the flag is up").all()
    assert first.table.forced_volume.isna().all()  # a failed cell has no figures, not 0
    flag.unlink()
    again = run_sweep(spec, tmp_path / "out", jobs=1)
    assert again.ran == 0 and again.failed == 3  # recorded: not rerun unless asked
    retried = run_sweep(spec, tmp_path / "out", jobs=1, retry_failed=True)
    assert retried.ran == 3 and retried.failed == 0
    assert retried.table.strategy_return.notna().all()


def test_the_command_line_runs_a_sweep_and_redraws_its_page(tmp_path):
    spec = write_spec(tmp_path, SPEC.replace("count = 2", "count = 1"))
    out = tmp_path / "out"
    done = subprocess.run([str(CASCADE), "sweep", str(spec), "-o", str(out), "--jobs", "1"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "3 cells: 3 run now" in done.stdout
    table = pq.read_table(out / "cells.parquet").to_pandas()
    assert list(table.variant) == ["cfd", "instant", "instant-120"]
    (out / "sweep.html").unlink()
    redrawn = subprocess.run([str(CASCADE), "sweep", "report", str(out)],
                             capture_output=True, text=True)
    assert redrawn.returncode == 0, redrawn.stderr
    assert (out / "sweep.html").is_file()
    bad = subprocess.run([str(CASCADE), "sweep", str(spec), "-o", str(out), "--backend", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--backend 'x'" in bad.stderr


EPISODE = """
[sweep]
seeds = [1]

[variants]
both = { rules = "cfd", brokers = ["krx-credit"] }

[variants.credit-150]
rules = "cfd"
brokers = [{ rules = "krx-credit", set = { maintenance_ratio = 1.5 } }]

[tapes]
cfd = { episode = "2023-04-cfd", days = 2 }

[tapes.aug]
market = "BARS"
start = "2024-08-02"
top = 3
rate = 20.0
index_knots = ["2024-08-02,10:00:00,-0.02"]
index_closes = { KOSPI = 2777.68 }

[populations]
cfd = { episode = "2023-04-cfd", vary = { "market.accounts" = [2000, 4000] } }
market = "MARKET_SPEC"

[[cells]]
tape = "cfd"
population = "cfd"
"""

MARKET_SPEC = """
bars = "BARS"
loan_term_days = 4
margin_rate = [0.4, 0.45]

[market]
as_of = "2024-08-02"
accounts = 3000
kospi_credit_balance_krw = 1e11
cfd_balance_krw = 5e10
cfd_margin_rate = [0.4, 0.45]
default_market = "KOSPI"
names_not_in_table = "leave"   # the bars' other 30 names are not on the three-name tape
"""


def test_episodes_market_days_and_population_fields_as_axes(tmp_path):
    """A bundled episode's tape and population, a population spec's field varied, two
    brokers per variant, and an anchored market day: each cell the figures of the same
    cell run as cascade replay runs it."""
    bars = (ROOT / "tests" / "data" / "daily-2024-08-largecaps-pykrx.csv").as_posix()
    market = tmp_path / "market.toml"
    market.write_text(MARKET_SPEC.replace("BARS", bars), encoding="utf-8")
    text = EPISODE.replace("MARKET_SPEC", market.as_posix()).replace("BARS", bars)
    spec = load_spec(write_spec(tmp_path, text))
    assert [(c.variant.name, c.population.name) for c in spec.cells] == [
        ("both", "cfd[market.accounts=2000]"), ("both", "cfd[market.accounts=4000]"),
        ("credit-150", "cfd[market.accounts=2000]"),
        ("credit-150", "cfd[market.accounts=4000]")]
    fast = run_sweep(write_spec(tmp_path, text), tmp_path / "fast", jobs=2)
    assert (fast.table.status == "ok").all(), fast.table.error.tolist()
    assert fast.table["population.market.accounts"].tolist() == [2000.0, 4000.0] * 2
    t = fast.table.set_index(["variant", "population"])
    assert (t["forced_volume[cfd]"] > 0).all()
    assert (t["accounts_managed"].xs("cfd[market.accounts=4000]", level=1) >
            t["accounts_managed"].xs("cfd[market.accounts=2000]", level=1)).all()
    written = " ".join(p.read_text() for p in (tmp_path / "fast" / "inputs").glob("*.toml"))
    assert "accounts = 4000" in written and "accounts = 2000" in written
    kept = run_sweep(write_spec(tmp_path, text), tmp_path / "kept", jobs=2, keep_runs=True)
    assert kept.ran == 4
    assert (tmp_path / "fast" / "cells.parquet").read_bytes() == \
        (tmp_path / "kept" / "cells.parquet").read_bytes()
    # the market day: three names of the 2024-08 large caps
    day = text.replace('tape = "cfd"\npopulation = "cfd"',
                       'tape = "aug"\npopulation = "market"\nvariant = "both"')
    one = run_sweep(write_spec(tmp_path, day, "day.toml"), tmp_path / "day", jobs=1)
    assert one.table.status.tolist() == ["ok"], one.table.error.tolist()
    assert one.table.accounts_managed.iloc[0] == 3000
    # pykrx bars carry no shares outstanding: no index weights, so no index close (missing,
    # never 0), while the venue's own figures are there
    assert pd.isna(one.table.index_close.iloc[0]) and one.table.vi_count.notna().all()
    wrong = day.replace(f'market = "{market.as_posix()}"',
                        f'market = "{HEAVY.as_posix()}"')
    with pytest.raises(ValueError, match="population 'market' on tape 'aug'"):
        run_sweep(write_spec(tmp_path, wrong, "wrong.toml"), tmp_path / "wrong", jobs=1)


def test_the_docs_spec_runs_as_written_on_both_backends(tmp_path):
    """docs/sweeps.md opens with a complete spec and the commands that run it (saved as
    sweep-small.toml in the repository root): at most 24 cells, the same cells.parquet on
    the local pool and on Ray."""
    pytest.importorskip("ray")
    from tests.test_docs_examples import SHIPPED

    page = (ROOT / "docs" / "sweeps.md").read_text(encoding="utf-8")
    toml = page.split("```toml\n", 1)[1].split("```", 1)[0]
    commands = page.split("```bash\n", 1)[1].split("```", 1)[0]
    assert page.index("```toml") < page.index("```bash")
    for name in SHIPPED:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    (tmp_path / "sweep-small.toml").write_text(toml, encoding="utf-8")
    assert len(load_spec(tmp_path / "sweep-small.toml").cells) <= 24
    env = {**os.environ, "PATH": f"{CASCADE.parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", commands], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    local = tmp_path / "runs" / "sweep-small" / "cells.parquet"
    assert local.read_bytes() == (tmp_path / "runs" / "sweep-small-ray" /
                                  "cells.parquet").read_bytes()
    table = pq.read_table(local).to_pandas()
    assert (table.status == "ok").all() and table.forced_volume.gt(0).all()


def test_a_one_day_synthetic_tape_in_memory_is_its_tape_file(tmp_path):
    """A worker makes a one-day tape in one buffer cut into views: the same chunks, row for
    row, as the tape file ``cascade data synth`` writes and a kept run reads."""
    import numpy as np

    from replay.broker_run import tape_first_day
    from replay.sweep.spec import TapeDef
    from replay.sweep.tapes import CHUNK_ROWS, read_tape, write_tape
    from replay.tape import COLUMNS, Tape

    day = TapeDef("day", "synthetic", profile="krx-largecap")
    held = read_tape(day, 3)
    tape = Tape(write_tape(day, 3, tmp_path / "day.parquet"))
    from_file = list(tape.chunks(CHUNK_ROWS))
    assert len(from_file) >= 2 and [len(c) for c in held.chunks()] == \
        [len(c) for c in from_file]
    for a, b in zip(held.chunks(), from_file, strict=True):
        for c in COLUMNS:
            assert np.array_equal(getattr(a, c), getattr(b, c)), c
    assert held.session_seed == tape.session_seed == 3
    assert held.first_day == tape_first_day(tape)


def test_a_worker_keeps_a_made_tape_per_seed(tmp_path):
    """One worker runs both seeds of an episode tape: each seed's cells replay that seed's
    tape (the figures of the same cells run as cascade replay runs them)."""
    text = """
[sweep]
seeds = [1, 2]

[variants]
both = { rules = "cfd", brokers = ["krx-credit"] }

[tapes]
cfd = { episode = "2023-04-cfd", days = 2 }

[populations]
cfd = { episode = "2023-04-cfd" }
"""
    spec = write_spec(tmp_path, text)
    fast = run_sweep(spec, tmp_path / "fast", jobs=1)
    assert len({r["worker_pid"] for r in _records(tmp_path / "fast")}) == 1
    kept = run_sweep(spec, tmp_path / "kept", jobs=1, keep_runs=True)
    assert fast.table.events.nunique() == 2  # two seeds, two tapes
    pd.testing.assert_frame_equal(fast.table, kept.table)
