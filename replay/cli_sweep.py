"""``cascade sweep SPEC.toml -o DIR`` and ``cascade sweep report DIR``: rule variants x
tapes x populations x modes x seeds, paired and resumable (replay/sweep, docs/sweeps.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

#: Figures the console shows per variant, with a short header (all of them, by their full
#: names, are in cells.parquet).
SHOWN = (("forced_volume", "shares sold", "{:,.0f}"),
         ("excess_drawdown", "added dd", "{:.2%}"),
         ("max_drawdown", "drawdown", "{:.2%}"),
         ("accounts_force_sold", "accts sold", "{:,.0f}"))


def register(app: typer.Typer) -> None:
    """Add ``sweep`` to the ``cascade`` app."""
    from replay import cli

    @app.command("sweep", short_help="Run a sweep of rule variants x tapes x populations x "
                                     "modes x seeds (or redraw one: sweep report DIR).")
    @cli._friendly
    def sweep_cmd(
        spec: Annotated[str, typer.Argument(
            help="The sweep spec (TOML, docs/sweeps.md); or the word report, then DIR.",
            metavar="SPEC.toml | report")],
        directory: Annotated[Path | None, typer.Argument(
            help="With report: the sweep directory to redraw.", metavar="[DIR]")] = None,
        output: Annotated[Path | None, typer.Option(
            "-o", "--output", help="The sweep directory: a record per cell, cells.parquet, "
                                   "sweep.json, sweep.html.")] = None,
        jobs: Annotated[int | None, typer.Option(
            help="Workers (local processes or Ray actors). Default: the CPUs.")] = None,
        backend: Annotated[str, typer.Option(
            help="local (a process pool on this machine) or ray.")] = "local",
        address: Annotated[str | None, typer.Option(
            help="--backend ray: the cluster (auto, or ray://host:port). Default: a local "
                 "Ray started for the sweep.")] = None,
        keep_runs: Annotated[bool, typer.Option(
            help="Also write each cell's full run directory under DIR/runs/ (as cascade "
                 "replay writes it).")] = False,
        retry_failed: Annotated[bool, typer.Option(
            help="Run again the cells recorded as failed.")] = False,
        cell: Annotated[list[str] | None, typer.Option(
            help="Run only the cell(s) whose key starts with this (repeatable); with "
                 "--keep-runs, re-makes their run directories.")] = None,
        overwrite: Annotated[bool, typer.Option(
            help="Empty DIR first (default: resume, running only the cells without a "
                 "record).")] = False,
    ) -> None:
        """Run every cell of SPEC.toml that DIR has no record of, each recorded as it
        finishes, then write DIR/cells.parquet (a row per cell), DIR/sweep.json and
        DIR/sweep.html (distributions per variant, paired differences against the
        baseline with bootstrap intervals, tails, and the cells behind every point).

        A sweep killed at any point and run again runs only the cells missing; a cell
        that fails is recorded with its error and the others go on (--retry-failed runs
        them again). The spec is checked whole before anything runs.

        Examples (sweep-small.toml: the spec docs/sweeps.md opens with): cascade sweep
        sweep-small.toml -o runs/sweep; cascade sweep sweep-small.toml -o runs/sweep-ray
        --backend ray; cascade sweep report runs/sweep
        """
        if spec == "report":
            if directory is None:
                raise ValueError("cascade sweep report DIR: give the sweep directory")
            from replay.sweep.page import redraw

            cli.out.print(f"wrote {redraw(directory)}", highlight=False)
            return
        if directory is not None:
            raise ValueError(f"{directory}: unexpected argument; the sweep directory is -o DIR")
        if output is None:
            raise ValueError("give the sweep directory: -o DIR")
        _run(cli, Path(spec), output, jobs=jobs, backend=backend, address=address,
             keep_runs=keep_runs, retry_failed=retry_failed, only=cell or (),
             overwrite=overwrite)


def _run(cli, spec: Path, output: Path, **kw) -> None:
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from replay.sweep import run_sweep

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn(), console=cli.err,
                   disable=not sys.stderr.isatty())
    with bar:
        task = bar.add_task("cells", total=None, failed=0)

        def done(rec, n, failed, total):
            bar.update(task, completed=n, total=total, failed=failed)
            if rec["status"] != "ok":
                ax = rec["axes"]
                bar.console.print(f"[red]failed[/] {escape(ax['variant'])} on "
                                  f"{escape(ax['tape'])}, seed {ax['seed']}: "
                                  f"{escape(str(rec['error']))}", highlight=False)

        from replay.sweep import SweepError

        try:
            result = run_sweep(spec, output, progress=done,
                               log=lambda s: bar.console.print(s, highlight=False), **kw)
        except (SweepError, RuntimeError) as exc:
            cli.err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
    _print(cli, result, output)
    if result.failed:
        cli.err.print(f"[bold red]{result.failed} cell(s) failed[/] (their errors are in "
                      f"{output / 'cells.parquet'}, column error); run again with "
                      "--retry-failed to rerun them", highlight=False)
        raise typer.Exit(1)


def _print(cli, result, output: Path) -> None:
    from rich.markup import escape
    from rich.table import Table

    frame = result.table
    ok = frame[frame.status == "ok"]
    shown = Table(box=None, padding=(0, 2, 0, 0), header_style="bold")
    # the numbers are never cut: a long variant name folds onto a second line instead
    shown.add_column("variant (mean over its cells)", overflow="fold", min_width=22)
    shown.add_column("cells", justify="right", no_wrap=True)
    for _, header, _ in SHOWN:
        shown.add_column(header, justify="right", no_wrap=True)
    for variant, g in ok.groupby("variant", sort=False):
        shown.add_row(escape(variant), str(len(g)),
                      *(fmt.format(g[name].mean()) if g[name].notna().any() else "-"
                        for name, _, fmt in SHOWN))
    cli.out.print(shown)
    cli.out.print("added dd: the drawdown the forced sales added (excess_drawdown); accts "
                  "sold: accounts force-sold", highlight=False)
    timing = result.summary.get("timing", {})
    rate = timing.get("cells_per_minute")
    cli.out.print(f"{len(frame):,} cells: {result.ran:,} run now"
                  + (f" ({rate:,.1f} per minute)" if rate else "")
                  + f", {result.reused:,} recorded before, {result.failed:,} failed"
                  + (f"; {result.pruned:,} records of cells no longer in the spec removed"
                     if result.pruned else ""), highlight=False)
    cli.out.print(f"wrote {output / 'cells.parquet'}, {output / 'sweep.json'}, "
                  f"{output / 'sweep.html'}", highlight=False)
