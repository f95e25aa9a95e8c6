"""The examples in README.md and docs/ run as written.

Each page runs in a fresh, empty folder in which only the repository's shipped inputs are
reachable at their usual relative paths (``tests/data``, ``brokers``, ``strategies``), so an
example that uses a file it did not make first fails. A page's fenced ``bash``/``sh`` blocks
run with ``bash -euo pipefail``; its ``python`` blocks run in one interpreter, in order, as a
reader pasting them into one session would. A block the reader is not meant to paste is
marked on the line before its fence with ``<!-- example: not run (the reason) -->``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHIPPED = ("tests", "brokers", "strategies")
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"<!--\s*example:\s*not run \((.+)\)\s*-->")
LANGS = {"bash": "sh", "sh": "sh", "python": "python"}


def blocks(page: Path) -> list[tuple[str, str, int, str | None]]:
    """(kind, code, line, reason-not-run) for each runnable fenced block of a page."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        kind = LANGS.get(m[1])
        if kind is not None:
            skip = NOT_RUN.search(lines[i - 1]) if i else None
            out.append((kind, "\n".join(lines[i + 1:j]), i + 1, skip[1] if skip else None))
        i = j + 1
    return out


DRIVER = textwrap.dedent("""
    import subprocess, sys, traceback
    namespace = {"__name__": "__main__"}
    for kind, code, line in BLOCKS:
        print(f"--- block at line {line} ({kind})", flush=True)
        if kind == "sh":
            rc = subprocess.run(["bash", "-euo", "pipefail", "-c", code]).returncode
            if rc:
                sys.exit(f"the shell block at line {line} exited {rc}")
        else:
            try:
                exec(compile(code, f"<block at line {line}>", "exec"), namespace)
            except BaseException:
                traceback.print_exc()
                sys.exit(f"the python block at line {line} raised")
""")


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_page_examples_run_as_written(page: Path, tmp_path: Path):
    runnable = [(k, c, n) for k, c, n, skip in blocks(page) if skip is None]
    if not runnable:
        pytest.skip(f"{page.name}: every example is marked not run")
    for name in SHIPPED:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", f"BLOCKS = {runnable!r}\n{DRIVER}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f"{page.relative_to(ROOT)}: {proc.stderr.strip().splitlines()[-1:]}\n"
        f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")


def test_only_setup_blocks_are_marked_not_run():
    """A block may be left out only with a reason; the README's two set-up commands are."""
    marked = {(p.name, code): reason for p in PAGES for _, code, _, reason in blocks(p)
              if reason}
    assert all(reason.strip() for reason in marked.values())
    assert [name for name, code in marked if "make demo" in code] == ["README.md"]
    assert len(marked) <= 3, marked
