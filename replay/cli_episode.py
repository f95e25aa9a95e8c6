"""``cascade episode list`` and ``cascade episode run NAME``: the bundled episodes
(replay/episodes, docs/episodes.md), each replayed and checked against what was reported."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

episode_app = typer.Typer(no_args_is_help=True,
                          help="Past KRX episodes replayed and checked against the record.")
out = Console()


def _sets(items: list[str] | None) -> dict[str, str]:
    sets = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: give KEY=VALUE")
        sets[key.strip()] = value.strip()
    return sets


@episode_app.command("list")
def episode_list() -> None:
    """The bundled episodes: name, days, names on the tape and facts checked.

    Example: cascade episode list
    """
    from replay.episodes import list_episodes, load_episode

    table = Table(box=None, header_style="bold", padding=(0, 2, 0, 0))
    for c in ("episode", "from", "days", "names", "facts"):
        table.add_column(c, no_wrap=True)
    table.add_column("title")
    for name in list_episodes():
        ep = load_episode(name)
        table.add_row(name, str(ep.start), str(ep.days),
                      str(len(ep.codes)) if ep.codes else "the bars' (--top)",
                      str(len(ep.facts)), ep.title)
    out.print(table)


def _shown(v, sign: bool = False) -> str:
    """A cell: numbers with thousands separators (a sign for gaps), text as is."""
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    s = f"{v:+,}" if sign else f"{v:,}"
    return s if isinstance(v, int) or float(v) != int(v) else (
        f"{int(v):+,}" if sign else f"{int(v):,}")


def print_table(result) -> None:
    """The reported-vs-simulated table on the console."""
    t = Table(title=f"{result.name}: reported vs simulated", box=None, header_style="bold",
              padding=(0, 2, 0, 0))
    for c in ("fact", "reported", "simulated", "gap", "unit"):
        t.add_column(c, justify="left" if c == "fact" else "right")
    for r in result.table.itertuples():
        t.add_row(r.fact, _shown(r.reported), _shown(r.simulated), _shown(r.gap, sign=True),
                  r.unit)
    out.print(t)
    out.print(f"notes: {result.run_dir / 'reported_vs_simulated.csv'}; run directory "
              f"{result.run_dir} (cascade report {result.run_dir}); built in "
              f"{result.build_seconds:.0f}s, {result.wall_seconds:.0f}s in all",
              highlight=False, soft_wrap=True)


@episode_app.command("run")
def episode_run(
    name: Annotated[str, typer.Argument(help="An episode of `cascade episode list`.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Run directory to write.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE: seed, rate, days, accounts, or broker.N.RULE (a rule of "
                      "the episode's broker N), repeatable.")] = None,
    top: Annotated[int | None, typer.Option(
        help="Keep the N names of the largest turnover (episodes of all the bars' names)."
    )] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a non-empty output directory whole.")] = False,
    attribute: Annotated[bool, typer.Option(
        "--attribute", help="Then solve for the exogenous path and the share of each fall "
                            "the forced sales made, into DIR/attribution "
                            "(docs/attribution.md).")] = False,
    tolerance_ticks: Annotated[float, typer.Option(
        help="--attribute: converged when every close is within this many ticks.")] = 1.0,
    max_iter: Annotated[int, typer.Option(
        help="--attribute: iterations at most per day (each rebuilds and replays the tape)."
    )] = 12,
) -> None:
    """Build the episode's market tape, replay it at the KRX venue (relative mode) with its
    brokers and population, and write the run directory with reported_vs_simulated.csv.

    Example: cascade episode run 2023-10-youngpoong -o runs/youngpoong
    """
    from replay.cli import _bar_factory
    from replay.episodes import run_episode

    try:
        result = run_episode(name, output, _sets(set_), top, overwrite=overwrite,
                             progress=_bar_factory, attribute=attribute,
                             tolerance_ticks=tolerance_ticks, max_iter=max_iter,
                             log=lambda s: out.print(s, highlight=False))
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        out.print(f"error: {exc}", style="red", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    print_table(result)
    if result.attribution is not None:
        from replay.cli_attribute import print_result

        print_result(result.attribution, tolerance_ticks, output / "attribution")
    if result.attribution_error:
        out.print(f"error: attribution: {result.attribution_error}", style="red",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(1)
