"""A run directory is complete or absent: written beside its target, renamed into place.

A run (``cascade replay``, each variant of ``cascade compare``, each scenario of the demo)
writes into a fresh temporary directory beside its target, ``.NAME.PID.ID.partial``, and
:meth:`RunDirectory.finish` renames it into place only once every table and summary.json
are written. A non-empty target is refused before any work unless ``overwrite``, which
replaces it whole: the earlier run is gone only once the new one is in place.

Every table carries the run's id in its Parquet schema metadata (:data:`RUN_ID_KEY`) and
summary.json carries it and the list of tables, so :func:`verify` can refuse a directory
whose tables come from different runs, whose summary is missing, or that is still a
temporary directory. The id sits in metadata only: the same inputs and seed still give
the same table data.

Every file is written atomically (:func:`atomic_write`: a temporary name, then a rename),
and a write that fails (a full disk) raises :class:`OutputError`, one line naming the file,
leaving nothing under the final name.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: The Parquet schema metadata key holding the run's id.
RUN_ID_KEY = b"cascade.run_id"
SUMMARY = "summary.json"
#: Present in a run's temporary directory until it is renamed into place.
INCOMPLETE = ".incomplete"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<id>[0-9a-f]+)\.(partial|old)$")


class OutputError(OSError):
    """An output file or directory could not be written; the message names it."""

    def __init__(self, path: Path, exc: OSError) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        path = final_name(Path(path))
        self.filename = str(path)
        self.message = f"cannot write {path}: {exc.strerror or exc}"

    def __str__(self) -> str:
        return self.message


def final_name(path: Path) -> Path:
    """``path`` as it is named once its run is in place: a run's temporary directory
    ``.NAME.PID.ID.partial`` in it is read as ``NAME``."""
    parts = [m["name"] if (m := _TEMP.match(part)) else part for part in path.parts]
    return Path(*parts) if parts else path


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it to ``path``.
    On any failure the temporary file is removed; an OSError becomes :class:`OutputError`
    naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False))


def with_run_id(table: pa.Table, run_id: str | None) -> pa.Table:
    """``table`` with the run's id added to its schema metadata (its data unchanged)."""
    if run_id is None:
        return table
    return table.replace_schema_metadata({**(table.schema.metadata or {}),
                                          RUN_ID_KEY: run_id.encode()})


def write_parquet(path: str | Path, table: pa.Table, run_id: str | None = None,
                  **options: Any) -> Path:
    """Write ``table`` to ``path`` atomically, carrying ``run_id`` in its metadata."""
    table = with_run_id(table, run_id)
    return atomic_write(path, lambda p: pq.write_table(table, p, **options))


class TableStream:
    """A Parquet table written batch by batch under a temporary name, renamed to ``path``
    by :meth:`close`; the writer opens with the first batch. Failed writes raise
    :class:`OutputError` naming ``path`` and remove the temporary file."""

    def __init__(self, path: str | Path, run_id: str | None = None, **options: Any) -> None:
        self.path = Path(path)
        self.run_id = run_id
        self.rows = 0
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self._options = options
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        try:
            if self._writer is None:
                schema = with_run_id(table, self.run_id).schema
                self._writer = pq.ParquetWriter(self._tmp, schema, **self._options)
            self._writer.write_table(table.replace_schema_metadata(
                self._writer.schema.metadata))
        except OSError as exc:
            self.abort()
            raise OutputError(self.path, exc) from None
        self.rows += table.num_rows

    def close(self) -> bool:
        """Finish the file under its final name; False (and no file) if nothing was
        written."""
        if self._writer is None:
            return False
        try:
            self._writer.close()
            self._writer = None
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(self.path, exc) from None
        return True

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        self._tmp.unlink(missing_ok=True)


def check_target(target: str | Path, overwrite: bool = False, what: str = "run") -> None:
    """Refuse a target that is a file, or a non-empty directory unless ``overwrite``."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target}: exists and is not a directory; choose another -o")
    if not overwrite and target.is_dir() and any(target.iterdir()):
        first = sorted(p.name for p in target.iterdir())[0]
        raise ValueError(f"{target}: not empty (holds {first}, ...); give --overwrite to "
                         f"replace it whole with the new {what}, or choose another -o")


def new_run_id() -> str:
    return uuid.uuid4().hex


class RunDirectory:
    """A run being written: :attr:`path` is the temporary directory beside ``target``.

    Use as a context manager: leaving it with an exception removes the temporary
    directory; :meth:`finish` writes summary.json and renames it into place."""

    def __init__(self, target: str | Path, *, overwrite: bool = False) -> None:
        self.target = Path(target)
        check_target(self.target, overwrite)
        self.run_id = new_run_id()
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            remove_stale(self.target)
            self.path = parent / f".{self.target.name}.{os.getpid()}.{self.run_id[:12]}.partial"
            self.path.mkdir()
            (self.path / INCOMPLETE).write_text(self.run_id)
        except OSError as exc:
            raise OutputError(parent / f".{self.target.name}...partial", exc) from None
        self.finished = False

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, kind, exc, tb) -> None:
        if not self.finished:
            self.abort()

    def write_parquet(self, name: str, table: pa.Table, **options: Any) -> Path:
        return write_parquet(self.path / name, table, self.run_id, **options)

    def stream(self, name: str, **options: Any) -> TableStream:
        return TableStream(self.path / name, self.run_id, **options)

    def finish(self, summary: dict[str, Any]) -> Path:
        """Write summary.json (with ``run_id`` and the list of ``tables``), check every
        table carries the run's id, and rename the directory into place."""
        tables = sorted(p.name for p in self.path.glob("*.parquet"))
        summary = {"run_id": self.run_id, **summary, "tables": tables}
        write_json(self.path / SUMMARY, summary)
        _check_tables(self.path, summary)
        try:
            (self.path / INCOMPLETE).unlink()
            swap_into_place(self.path, self.target)
        except OSError as exc:
            raise OutputError(self.target, exc) from None
        self.finished = True
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def temp_beside(target: Path) -> Path:
    """A fresh temporary directory's path beside ``target`` (not created)."""
    return target.parent / f".{target.name}.{os.getpid()}.{new_run_id()[:12]}.partial"


def remove_stale(target: Path) -> None:
    """Remove temporary directories of ``target`` left by runs whose process is gone (a
    killed run)."""
    for p in target.parent.glob(f".{glob_escape(target.name)}.*"):
        m = _TEMP.match(p.name)
        if m and m["name"] == target.name and p.is_dir() and not _alive(int(m["pid"])):
            shutil.rmtree(p, ignore_errors=True)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; an existing target (empty, or replaced under
    --overwrite) is removed only once the new directory is in place."""
    if not target.exists():
        os.rename(tmp, target)
        return
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
        os.rename(tmp, target)
        return
    if _exchange(tmp, target):  # tmp now holds the earlier run
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = tmp.with_name(tmp.name[: -len(".partial")] + ".old")
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def is_temporary(path: Path) -> bool:
    """Whether ``path`` is a run's (or an atomic write's) temporary name."""
    return bool(_TEMP.match(path.name)) or (path.name.startswith(".")
                                            and path.name.endswith(".partial"))


def table_run_id(path: Path) -> str | None:
    """The run id in a Parquet file's schema metadata (None if it has none)."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    value = meta.get(RUN_ID_KEY)
    return value.decode() if value is not None else None


def _check_tables(run_dir: Path, summary: dict[str, Any]) -> None:
    run_id = summary.get("run_id")
    listed = summary.get("tables")
    if not isinstance(run_id, str) or not isinstance(listed, list):
        raise ValueError(f"{run_dir / SUMMARY}: no run_id or tables list (written by an "
                         "earlier version, or not by cascade); replay again")
    for name in listed:
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir / name}: missing, but {SUMMARY} lists it: the "
                             "directory is incomplete; replay again")
    for path in sorted(run_dir.glob("*.parquet")):
        found = table_run_id(path)
        if path.name not in listed or found != run_id:
            raise ValueError(f"{path}: not from the run {SUMMARY} describes (run id "
                             f"{found or 'none'}, summary {run_id}): the directory mixes "
                             "runs; replay into an empty directory")


def verify(run_dir: str | Path) -> dict[str, Any]:
    """The summary of a complete run directory; ValueError naming the file when it is a
    temporary directory, its summary is missing or unreadable, or its tables disagree."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    if _TEMP.match(run_dir.name) or (run_dir / INCOMPLETE).exists():
        raise ValueError(f"{run_dir}: the temporary directory of a run that did not finish "
                         "(killed or failed); replay again")
    path = run_dir / SUMMARY
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing; {run_dir} is not a complete run directory "
                         "(a run that did not finish, or not written by cascade replay)"
                         ) from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{path}: unreadable (not a JSON object)")
    _check_tables(run_dir, summary)
    return summary


def is_complete(run_dir: str | Path) -> bool:
    try:
        verify(run_dir)
    except (ValueError, FileNotFoundError):
        return False
    return True
