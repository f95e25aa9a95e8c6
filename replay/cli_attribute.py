"""``cascade attribute``: how much of an anchored tape's observed fall a population's forced
sales made (replay/attribution.py, docs/attribution.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: Name-days the console shows (the whole table is in attribution.csv).
SHOWN_ROWS = 20


def _pct(share: float | None) -> str:
    """A share as a percentage; "-" where the price did not fall (no share)."""
    return "-" if share is None or share != share else f"{share:.1%}"


def register(app: typer.Typer) -> None:
    """Add ``attribute`` to the ``cascade`` app."""
    from replay import cli

    @app.command("attribute", short_help="Solve for the exogenous path of an anchored tape "
                                         "and the share of each fall the forced sales made.")
    @cli._friendly
    def attribute_cmd(
        tape_or_bars: Annotated[Path, typer.Argument(
            help="An anchored tape (cascade data synth --anchor, cascade market build) or "
                 "the daily bars to build one from (with --date).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Directory to write.")]
        = Path("attribution"),
        broker: Annotated[list[str] | None, typer.Option(
            help="The population's broker(s), as cascade replay takes them (repeatable).")]
        = None,
        population: Annotated[list[Path] | None, typer.Option(
            help="The brokers' accounts (one per --broker, or one for all).")] = None,
        set_: Annotated[list[str] | None, typer.Option(
            "--set", help="A rule override of the (single) broker, as cascade replay.")]
        = None,
        tolerance_ticks: Annotated[float, typer.Option(
            help="Converged when every simulated close is within this many of its name's "
                 "KRX ticks of the observed close.")] = 1.0,
        max_iter: Annotated[int, typer.Option(
            help="At most this many iterations per day (days are solved in order; each "
                 "iteration rebuilds the tape and replays it).")]
        = 12,
        variant: Annotated[list[str] | None, typer.Option(
            help="KEY=VALUE rule override replayed on the exogenous path into DIR/variant "
                 "(every broker; repeatable, all in one variant), e.g. "
                 "--variant maintenance_ratio=1.3.")] = None,
        bars: Annotated[Path | None, typer.Option(
            help="The daily bars the tape was built from (a tape of cascade data synth "
                 "--anchor does not record them; a market tape does).")] = None,
        date: Annotated[str | None, typer.Option(
            help="With bars as the argument: the first day, YYYY-MM-DD.")] = None,
        days: Annotated[int, typer.Option(help="With bars: how many days.")] = 1,
        codes: Annotated[str | None, typer.Option(
            help="With bars: codes, comma-separated.")] = None,
        top: Annotated[int | None, typer.Option(
            help="With bars: the top N names by turnover (a market tape).")] = None,
        anchored: Annotated[bool, typer.Option(
            help="With bars: build as cascade data synth --anchor does (default: as "
                 "cascade market build does).")] = False,
        rate: Annotated[float | None, typer.Option(
            help="The decisions a second the tape was built with (cascade data synth "
                 "--rate, cascade market build --rate).")] = None,
        seed: Annotated[int | None, typer.Option(
            help="The tape's seed (default: the tape's session seed; with bars, 1).")] = None,
        index_close: Annotated[list[str] | None, typer.Option(
            help="An index's real previous close, NAME=POINTS (as cascade replay).")] = None,
        mode: Annotated[str, typer.Option(help="relative (default) or propagator.")]
        = "relative",
        overwrite: Annotated[bool, typer.Option(
            help="Replace a non-empty output directory.")] = False,
    ) -> None:
        """Solve for the exogenous daily bars whose anchored tape, replayed with the
        population's forced sales, closes every name and day at its observed close (to
        --tolerance-ticks); write attribution.csv, attribution.json, exogenous_bars.csv
        and the final runs: forced/ (with the forced sales), counterfactual/ (the
        exogenous path alone), observed/ (the observed tape alone) and, with --variant,
        variant/ (docs/attribution.md).

        Example: cascade attribute aug.parquet --bars
        tests/data/daily-2024-08-largecaps-pykrx.csv --broker krx-credit --broker
        krx-misu --population aug-credit.toml -o attribution
        """
        from replay.attribution import attribute, recipe_from_bars, recipe_from_tape
        from replay.runner import RunSpec

        is_tape = tape_or_bars.suffix.lower() == ".parquet"
        if is_tape:
            for flag, given in (("--date", date), ("--codes", codes), ("--top", top)):
                if given:
                    raise ValueError(f"{flag} selects from bars; a tape holds its own names "
                                     "and days (give --bars for the file it was built from)")
            recipe = recipe_from_tape(tape_or_bars, bars=bars, seed=seed, rate=rate)
        else:
            if date is None:
                raise ValueError(f"{tape_or_bars}: daily bars need --date (the first day) "
                                 "and --codes or --top, as cascade market build")
            wanted = [c.strip() for c in codes.split(",") if c.strip()] if codes else None
            recipe = recipe_from_bars(tape_or_bars, start=date, days=days, codes=wanted,
                                      top=top, seed=1 if seed is None else seed,
                                      market=not anchored, rate=rate)
        first, more = cli._brokers(broker or [], population or [], set_ or [])
        if first is None:
            raise ValueError("attribution needs the population's brokers: give --broker and "
                             "--population")
        spec = RunSpec(tape=tape_or_bars if is_tape else None, output=output, mode=mode,
                       seed=seed, broker=first.rules, population=first.population,
                       overrides=first.overrides, more_brokers=more,
                       index_closes=cli._parse_index_closes(index_close or []))
        result = attribute(recipe, spec, output, tolerance_ticks=tolerance_ticks,
                           max_iter=max_iter, variant=variant or (), overwrite=overwrite,
                           progress=cli._bar_factory,
                           log=lambda s: cli.out.print(s, highlight=False))
        print_result(result, tolerance_ticks, output)


def print_result(result, tolerance_ticks: float, output) -> None:
    """The console lines of an attribution: convergence, the name-days (at most
    SHOWN_ROWS), the indices, where the files are."""
    from replay import cli

    last = result.history[-1]
    cli.out.print(f"converged in {len(result.history)} iteration(s): max gap "
                  f"{last['max_gap_ticks']:g} tick(s) (tolerance {tolerance_ticks:g}), "
                  f"{result.seconds:.1f}s", highlight=False)
    shown = result.table.head(SHOWN_ROWS)
    for r in shown.itertuples(index=False):
        cli.out.print(f"{r.code} {r.date}: observed {r.observed_close:,}, exogenous "
                      f"{r.exogenous_close:,}, with forced sales {r.simulated_close:,}; "
                      f"forced sales made {_pct(r.share_of_fall)} of the day's fall, "
                      f"{_pct(r.share_of_fall_since_start)} of the fall since the first "
                      "prior close", highlight=False)
    if len(result.table) > len(shown):
        cli.out.print(f"({len(result.table):,} name-days in all: attribution.csv)")
    for r in result.indices.itertuples(index=False):
        cli.out.print(f"{r.index} {r.date}: observed {r.observed_close:,.2f}, exogenous "
                      f"{r.exogenous_close:,.2f}, with forced sales "
                      f"{r.simulated_close:,.2f}; forced sales made "
                      f"{_pct(r.share_of_fall)} of the day's fall", highlight=False)
    cli.out.print(f"results in {output}/ (attribution.csv, attribution.json, "
                  "exogenous_bars.csv)", highlight=False)
