"""The ``cascade`` command line."""

from __future__ import annotations

import functools
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
                  help="""Order-book replay with a margin-aware broker: forced liquidations walk the
simulated book, and a counterfactual replay shows the market without them.

A session, step by step (each command's --help has more examples):

* cascade data import --format kis recording.txt -o day.parquet (or: cascade data synth
  --profile krx-smallcap --days 5 --seed 5 --shock 1:-0.12 -o day.parquet)
* cascade replay day.parquet --venue krx --mode relative --broker krx-credit
  --population accounts.csv --strategy my_strategy.py:MyStrategy -o runs/day
* cascade report runs/day
* cascade compare day.parquet --population accounts.csv --broker krx-credit
  --broker krx-credit,maintenance_ratio=1.3 -o runs/140-vs-130
* cascade sweep sweep.toml -o runs/sweep (variants x tapes x populations x seeds, paired,
  resumable, local or on Ray: docs/sweeps.md)
* cascade demo (the bundled scenarios, end to end)
""")
data_app = typer.Typer(no_args_is_help=True, help="Import, check and synthesise tapes.")
app.add_typer(data_app, name="data")
err = Console(stderr=True)
out = Console()


def _friendly(fn):
    """Turn input errors, and files that cannot be read or written (a full disk), into one
    clear line naming the file and exit code 2 instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, KeyError, OSError) as exc:
            err.print(f"[bold red]error:[/] {escape(_one_line(exc))}", highlight=False,
                      soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _one_line(exc: BaseException) -> str:
    """The error's message on one line; an OSError names its file."""
    if isinstance(exc, OSError) and type(exc).__str__ is OSError.__str__ and exc.strerror \
            and not (exc.args and len(exc.args) == 1):
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror}"
    else:
        text = str(exc)
    return " ".join(text.split())


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err, disable=not sys.stderr.isatty())


@data_app.command("import")
@_friendly
def data_import(
    sources: Annotated[list[Path], typer.Argument(help="Vendor files to read.")],
    fmt: Annotated[str, typer.Option("--format", help="dbn, bybit, binance, tardis, lobster, "
                                     "csv, kis, krx-orders, kiwoom-ticks, koscom-trades or "
                                     "nautilus (a nautilus_trader catalog directory) "
                                     "(docs/data-formats.md).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Tape to write (.parquet).")],
    repair: Annotated[bool, typer.Option(help="Apply the documented repairs (sort, drop bad "
                                         "rows) and count them, instead of stopping.")] = False,
    date: Annotated[str | None, typer.Option(help="Session date YYYY-MM-DD (lobster; kis "
                                        "frames without a trade date).")]
    = None,
    symbol: Annotated[str | None, typer.Option(help="Symbol (lobster; kiwoom-ticks, else the "
                                               "file name's 6-digit code; koscom-trades: "
                                               "keep only this code's or ISIN's trades).")]
    = None,
    bars: Annotated[list[Path] | None, typer.Option(help="Daily bars (pykrx, FinanceData"
                                                    "Reader, Yahoo): each instrument's base "
                                                    "price, market, shares and the day's "
                                                    "OHLCV as its reference.")] = None,
    columns: Annotated[Path | None, typer.Option(help="Columns map MAP.toml: our field -> "
                                                 "the file's column name or 0-based "
                                                 "position (krx-orders).")] = None,
) -> None:
    """Convert vendor files to a tape.

    Example: cascade data import --format dbn tests/data/esh4-glbx-mdp3-20231225.mbo.dbn.zst
    -o esh4.parquet
    """
    from replay.loaders import load
    from replay.tape import write_tape

    options = {k: v for k, v in (("date", date), ("symbol", symbol), ("columns", columns))
               if v is not None}
    t0 = time.perf_counter()
    loaded = load(fmt, sources, repair=repair, **options)
    if bars:
        loaded.instruments = _bars_reference(bars, loaded)
    write_tape(output, loaded.events, loaded.instruments,
               quality=loaded.repairs.to_json() if loaded.repairs.total else None,
               book_check=json.dumps(loaded.book_check) if loaded.book_check else None,
               extra=loaded.extra or None)
    out.print(f"wrote {len(loaded.events):,} events of "
              f"{', '.join(i.symbol for i in loaded.instruments)} to {output} "
              f"in {time.perf_counter() - t0:.2f}s")
    if loaded.repairs.total:
        out.print(f"repairs: {dict(loaded.repairs.counts)} (see: cascade data check {output})")
    if loaded.book_check:
        from replay.check import book_check_lines

        for line in book_check_lines({"book_check_at_import": loaded.book_check}):
            out.print(escape(line))


def _bars_reference(bars: list[Path], loaded):
    """The loaded instruments with their reference for the tape's day (its first event's
    Seoul date) from daily bars (docs/data-formats.md: daily bars)."""
    from replay.loaders.daily_bars import read_bars, reference_instruments
    from venues.krx.session import seoul_date

    day = seoul_date(int(loaded.events.ts[0]))
    table = reference_instruments(read_bars(bars), day, loaded.instruments)
    for inst, was in zip(table, loaded.instruments, strict=True):
        if was.prev_close_units and was.prev_close_units != inst.prev_close_units:
            out.print(f"{inst.symbol}: the file's base price {was.prev_close_units:,} is "
                      f"replaced by the bars' previous close {inst.prev_close_units:,}")
        out.print(f"{inst.symbol} on {day}: base price {inst.prev_close_units:,}, "
                  f"{inst.market or 'market unknown'}, real open/high/low/close "
                  f"{inst.ref_open_units:,}/{inst.ref_high_units:,}/{inst.ref_low_units:,}/"
                  f"{inst.ref_close_units:,}, volume {inst.ref_volume:,}")
    return table


@data_app.command("instruments")
@_friendly
def data_instruments(
    bars: Annotated[list[Path], typer.Argument(help="Daily-bar files (pykrx, "
                                               "FinanceDataReader, Yahoo).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write.")],
    date: Annotated[str | None, typer.Option(help="Only this day, YYYY-MM-DD.")] = None,
    listing: Annotated[list[Path] | None, typer.Option(
        help="A listing giving each code's market and shares outstanding "
             "(FinanceDataReader StockListing, KRX 전종목 시세, marcap, pykrx "
             "get_market_cap); repeat it for one file per market.")] = None,
    listing_market: Annotated[str | None, typer.Option(
        help="The market of a listing without a market column (pykrx).")] = None,
    allow_missing: Annotated[bool, typer.Option(
        help="Keep codes the listing lacks (without market and shares) instead of "
             "failing; they are printed.")] = False,
) -> None:
    """Write each code's reference data per day from daily bars: ISIN, market, base price
    (previous close), OHLCV, shares outstanding (docs/data-formats.md: daily bars; with
    --listing, market and shares from the listing: docs/data-formats.md: listings).

    Example: cascade data instruments tests/data/daily-2024-08-largecaps-pykrx.csv
    --date 2024-08-05 -o instruments.csv
    """
    import pandas as pd

    from replay.loaders.daily_bars import instrument_rows, read_bars

    table = read_bars(bars)
    if listing:
        on = date if date is not None else f"{table['date'].max():%Y-%m-%d}"
        table = _with_listing(table, listing, on, listing_market, allow_missing)
    rows = instrument_rows(table)
    if date is not None:
        try:
            day = pd.Timestamp(date).normalize()
        except ValueError:
            raise ValueError(f"--date {date!r} is not a date YYYY-MM-DD") from None
        rows = rows[rows["date"] == day]
        if rows.empty:
            raise ValueError(f"{', '.join(map(str, bars))}: no bars on {day:%Y-%m-%d}")
    rows.to_csv(output, index=False, date_format="%Y-%m-%d")
    derived = int((rows["prev_close_from"] == "change").sum())
    empty = int((rows["prev_close_from"] == "").sum())
    out.print(f"wrote {len(rows):,} rows of {rows['code'].nunique():,} codes to {output}")
    if derived:
        out.print(f"prev_close of {derived:,} rows is close / (1 + change) rounded to the tick "
                  "(no bar of the previous session): prev_close_from = change")
    if empty:
        out.print(f"prev_close of {empty:,} rows is empty: no previous session's bar and no "
                  "change given")
    if rows["off_grid"].any():
        out.print(f"{int(rows['off_grid'].sum()):,} rows have prices off the KRX tick grid "
                  "(back-adjusted bars): off_grid = True")


def _with_listing(table, listing: list[Path], on: str, listing_market: str | None,
                  allow_missing: bool):
    """Daily bars with their codes' market and shares from a listing (docs/data-formats.md:
    listings), saying how many codes it covered and which it lacks."""
    from replay.loaders.listing import read_listing, with_listing

    listed = read_listing(listing, on=on, market=listing_market)
    table = with_listing(table, listed, missing="keep" if allow_missing else "raise")
    when = f" of {listed.attrs['date']}" if "date" in listed.attrs else ""
    out.print(f"listing{when}: {len(listed):,} codes; market and shares for "
              f"{table['code'].nunique() - len(table.attrs['listing_missing']):,} of the "
              f"bars' {table['code'].nunique():,} codes")
    if table.attrs["listing_missing"]:
        gone = table.attrs["listing_missing"]
        out.print(f"{len(gone):,} codes not in the listing (no market, shares 0): "
                  + ", ".join(gone[:20]) + (" ..." if len(gone) > 20 else ""))
    return table


@data_app.command("check")
@_friendly
def data_check(tape: Annotated[Path, typer.Argument(help="Tape to check.")],
               json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON "
                                                   "(for machines) instead of a table.")]
               = False) -> None:
    """Report what a tape holds and every data-quality problem, with the first row of each.

    Exits 1 if a problem was found. Example: cascade data check esh4.parquet
    """
    from replay.check import check_tape, format_report, report_table

    report = check_tape(tape)
    if json_:
        print(format_report(report))
    else:
        out.print(report_table(report))
        if not report["replayed"]:
            out.print("not replayed through the book"
                      + (f": {report['replay_error']}" if report["replay_error"] else
                         ": it has rows the book has no level for (see above)"))
        if report["crossed_in_call_auction"]:
            out.print(f"{report['crossed_in_call_auction']:,} packet ends with a crossed book "
                      "inside KRX call auctions: orders accumulate there unmatched until the "
                      "uncross (not a problem)")
        if report["repairs_at_import"]:
            out.print(f"repairs at import: {report['repairs_at_import']} "
                      f"(first rows: {report['repair_example_rows']})")
        from replay.check import book_check_lines

        for line in book_check_lines(report):
            out.print(escape(line))
    if any(report["problems"].values()) or not report["replayed"]:
        raise typer.Exit(1)


@data_app.command("synth")
@_friendly
def data_synth(
    output: Annotated[Path, typer.Option("-o", "--output", help="Tape to write.")],
    profile: Annotated[str | None, typer.Option(
        help="krx-largecap or krx-smallcap (with --anchor: the flow's shape, default "
             "krx-largecap at 5 decisions/s).")] = None,
    days: Annotated[int | None, typer.Option(
        help="Trading days (XKRX calendar; default 1); with --anchor, days of the file "
             "from --start (default all).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same tape (and the "
                                      "same auction random ends).")] = 0,
    shock: Annotated[list[str] | None, typer.Option(
        help="DAY:FRACTION, repeatable: move the latent value by FRACTION before day DAY's "
             "open (0 = the first day), e.g. 1:-0.4; beyond the daily limit the day is "
             "limit-locked.")] = None,
    anchor: Annotated[Path | None, typer.Option(
        help="Daily bars (pykrx, FinanceDataReader or Yahoo layout) whose open, high, low, "
             "close and volume each day of the tape reproduces (docs/synthetic-tapes.md: "
             "anchored tapes).")] = None,
    format: Annotated[str, typer.Option(
        "--format", help="Layout of --anchor: bars (daily bars), intraday-bars (Kiwoom "
                         "opt10080 minute bars or a datetime,open,...,volume CSV), or a "
                         "trades format of cascade data import (kiwoom-ticks, kis, ...): "
                         "every print on the tape as recorded.")] = "bars",
    codes: Annotated[str | None, typer.Option(
        help="With --anchor: codes to put on the tape, comma-separated (default all), "
             "e.g. 005930,000660.")] = None,
    start: Annotated[str | None, typer.Option(
        help="With --anchor: first day, YYYY-MM-DD (default the file's first).")] = None,
    rate: Annotated[float | None, typer.Option(
        help="With --anchor: decisions per second of each name's flow (fewer rows: a "
             "thinner book and fewer orders; default 5); with krx-market, the market's in "
             "all (default 400).")] = None,
    names: Annotated[int | None, typer.Option(
        help="With --profile krx-market: how many names (a made-up market moving "
             "together, docs/synthetic-tapes.md: a market day).")] = None,
) -> None:
    """Make a synthetic KRX-like L3 tape: opening auction, continuous session, closing
    auction (docs/synthetic-tapes.md); with --anchor, one whose days follow daily bars;
    with --profile krx-market --names N, a made-up market of N names.

    Example: cascade data synth --profile krx-smallcap --days 2 --seed 1 --shock 1:-0.4
    -o locked.parquet
    """
    from replay.tape import Tape

    t0 = time.perf_counter()
    if profile == "krx-market" or names is not None:
        _market_synth(output, profile, names, days, seed, shock, rate, anchor, codes, start)
        return
    if anchor is not None:
        _anchored_synth(anchor, format, output, profile, days, seed, shock, codes, start,
                        rate)
        return
    from replay.synth import write_synthetic_tape

    for name, given in (("--codes", codes), ("--start", start), ("--rate", rate)):
        if given is not None:
            raise ValueError(f"{name} selects from --anchor's file: give --anchor FILE")
    if profile is None:
        raise ValueError("give --profile (krx-largecap or krx-smallcap) or --anchor FILE")
    days = 1 if days is None else days
    shocks = _parse_shocks(shock or [])
    path = write_synthetic_tape(output, profile, days=days, seed=seed, shocks=shocks)
    out.print(f"wrote {len(Tape(path)):,} events ({profile}, {days} day(s), seed {seed}) to "
              f"{path} in {time.perf_counter() - t0:.1f}s")


def _market_synth(output: Path, profile: str | None, names: int | None, days: int | None,
                  seed: int, shock: list[str] | None, rate: float | None,
                  anchor: Path | None, codes: str | None, start: str | None) -> None:
    """``cascade data synth --profile krx-market --names N``: made-up daily bars of N names
    (replay.market.synthetic_market_bars) built into a market tape as real ones are."""
    from datetime import date as Date

    from replay.market import MARKET_RATE, plan_market, synthetic_market_bars, write_market_tape
    from replay.tape import Tape

    t0 = time.perf_counter()
    if profile != "krx-market":
        raise ValueError("--names makes a synthetic market: give --profile krx-market")
    if names is None:
        raise ValueError("--profile krx-market needs --names N (how many names)")
    for flag, given in (("--anchor", anchor), ("--codes", codes)):
        if given is not None:
            raise ValueError(f"{flag} anchors to a file; a krx-market tape is made up: for "
                             "real bars use cascade market build")
    first = Date(2024, 1, 2)
    if start is not None:
        try:
            first = Date.fromisoformat(start)
        except ValueError:
            raise ValueError(f"--start {start!r} is not a date YYYY-MM-DD") from None
    days = 1 if days is None else days
    bars = synthetic_market_bars(names, days, seed, start=first,
                                 shocks=_parse_shocks(shock or []))
    mplan = plan_market(bars, bars["date"].min().date(), days=days,
                        rate=MARKET_RATE if rate is None else rate)
    with _bar_factory("synthetic market", len(mplan.names) * days) as advance:
        path = write_market_tape(output, mplan, seed, progress=advance)
    out.print(f"wrote {len(Tape(path)):,} events (krx-market: {len(mplan.names)} name(s) x "
              f"{days} day(s), seed {seed}) to {path} in {time.perf_counter() - t0:.1f}s")


def _trades_synth(anchor: Path, fmt: str, output: Path, profile: str | None,
                  days: int | None, seed: int, codes: str | None, start: str | None,
                  rate: float | None) -> None:
    """``cascade data synth --anchor FILE --format LOADER``: a trades-only file -> an L3
    tape whose prints are the file's (docs/synthetic-tapes.md: anchored to trades)."""
    from replay.anchor_trades import write_trades_anchored_tape
    from replay.loaders import FORMATS, load
    from replay.tape import TRADE, Tape

    t0 = time.perf_counter()
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: choose bars (daily bars), intraday-bars or a "
                         f"trades format of cascade data import ({', '.join(FORMATS)})")
    for name, given in (("--codes", codes), ("--start", start), ("--days", days)):
        if given is not None:
            raise ValueError(f"{name} selects daily bars; a trades file is anchored whole")
    loaded = load(fmt, [anchor])
    path = write_trades_anchored_tape(output, loaded.events, loaded.instruments, seed,
                                      profile, event_rate=rate, source=str(anchor))
    prints = int((loaded.events.action == TRADE).sum())
    out.print(f"wrote {len(Tape(path)):,} events anchored to the {prints:,} prints of "
              f"{anchor} ({fmt}, seed {seed}) to {path} in "
              f"{time.perf_counter() - t0:.1f}s")


def _intraday_synth(anchor: Path, output: Path, profile: str | None, days: int | None,
                    seed: int, codes: str | None, start: str | None,
                    rate: float | None) -> None:
    """``cascade data synth --anchor FILE --format intraday-bars``: Kiwoom opt10080 or
    generic OHLCV bars -> a tape through every bar's prices (docs/synthetic-tapes.md:
    anchored to intraday bars). --codes selects codes, --start and --days the bars' days."""
    from datetime import date as Date

    import numpy as np

    from replay.anchor_intraday import write_intraday_anchored_tape
    from replay.loaders.intraday_bars import read_intraday_bars
    from replay.tape import Tape
    from venues.krx.session import seoul_date

    t0 = time.perf_counter()
    bars = read_intraday_bars(anchor)
    if codes:
        wanted = [c.strip() for c in codes.split(",") if c.strip()]
        known = list(dict.fromkeys(bars["code"]))
        for c in wanted:
            if c not in known:
                raise ValueError(f"{anchor}: code {c} is not in the file (codes: "
                                 f"{', '.join(known[:12])})")
        bars = bars[bars["code"].isin(wanted)]
    day = np.array([seoul_date(int(t)) for t in bars["start"]])
    all_days = sorted(set(day))
    first = all_days[0]
    if start is not None:
        try:
            first = Date.fromisoformat(start)
        except ValueError:
            raise ValueError(f"--start {start!r} is not a date YYYY-MM-DD") from None
    chosen = [d for d in all_days if d >= first][:days]
    if not chosen or (days is not None and (days < 1 or len(chosen) < days)):
        raise ValueError(f"{anchor}: {days or 1} day(s) from {first} asked, the file's bars "
                         f"run {all_days[0]} to {all_days[-1]} ({len(all_days)} day(s))")
    attrs = dict(bars.attrs)
    bars = bars[np.isin(day, chosen)].reset_index(drop=True)
    bars.attrs.update(attrs)
    path = write_intraday_anchored_tape(output, bars, seed, profile, event_rate=rate)
    out.print(f"wrote {len(Tape(path)):,} events anchored to {len(bars):,} bars "
              f"({bars.attrs['interval_s']} s) of {bars['code'].nunique()} code(s) x "
              f"{len(chosen)} day(s) of {anchor}, seed {seed}, to {path} in "
              f"{time.perf_counter() - t0:.1f}s")


def _anchored_synth(anchor: Path, fmt: str, output: Path, profile: str | None,
                    days: int | None, seed: int, shock: list[str] | None, codes: str | None,
                    start: str | None, rate: float | None) -> None:
    """``cascade data synth --anchor``: daily bars -> an anchored L3 tape."""
    from datetime import date as Date

    from replay.anchor import plan_from_bars, write_anchored_tape
    from replay.loaders.daily_bars import read_bars
    from replay.tape import Tape

    t0 = time.perf_counter()
    if shock:
        raise ValueError("--shock moves a free latent value; an anchored tape's value "
                         "follows the file (leave --shock out)")
    if fmt == "intraday-bars":
        _intraday_synth(anchor, output, profile, days, seed, codes, start, rate)
        return
    if fmt != "bars":
        _trades_synth(anchor, fmt, output, profile, days, seed, codes, start, rate)
        return
    first = None
    if start is not None:
        try:
            first = Date.fromisoformat(start)
        except ValueError:
            raise ValueError(f"--start {start!r} is not a date YYYY-MM-DD") from None
    bars = read_bars(anchor)
    wanted = [c.strip() for c in codes.split(",") if c.strip()] if codes else None
    plan = plan_from_bars(bars, source=str(anchor), codes=wanted, start=first, days=days)
    n_days = len(plan.days)
    with _bar_factory("anchored tape", len(plan.names) * n_days) as advance:
        path = write_anchored_tape(output, plan, seed, profile, event_rate=rate,
                                   progress=advance)
    rounded = (f"; {plan.rounded} price(s) off the tick grid rounded to it"
               if plan.rounded else "")
    out.print(f"wrote {len(Tape(path)):,} events ({len(plan.names)} name(s) x {n_days} "
              f"day(s) anchored to {anchor}, seed {seed}{rounded}) to {path} in "
              f"{time.perf_counter() - t0:.1f}s")


def _parse_params(values: list[str], strategy: str | None) -> dict[str, str]:
    """``["cash=50000000", "take_profit=0.5"]`` as ``{"cash": "50000000", ...}``, checked
    against ``strategy``'s parameters: each known, given once, and parsing to its type
    (strategies.base.Strategy.parameter_types). The text is kept as given (and recorded so
    in summary.json); the strategy parses it when it is made."""
    params: dict[str, str] = {}
    for text in values:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--param {text!r}: expected KEY=VALUE, e.g. cash=50000000")
        if key in params:
            raise ValueError(f"--param {text}: {key} is given twice (first {key}="
                             f"{params[key]}); give each parameter once")
        params[key] = value.strip()
    if params and not strategy:
        raise ValueError("--param sets a strategy's parameters: give --strategy")
    if strategy:
        from strategies.base import load_strategy

        cls = load_strategy(strategy)
        try:
            cls(**params)
        except ValueError as exc:
            raise ValueError(f"--param: {exc}") from None
    return params


@contextmanager
def _bar_factory(label: str, total: int | None):
    """A progress bar on stderr (shown only on a terminal); yields ``advance(n)``."""
    with _progress() as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def _parse_shocks(values: list[str]) -> dict[int, float]:
    """``["1:-0.4", ...]`` as ``{1: -0.4}``; a day given twice is an error."""
    shocks: dict[int, float] = {}
    for text in values:
        day, sep, fraction = text.partition(":")
        try:
            if not sep:
                raise ValueError
            key, move = int(day), float(fraction)
        except ValueError:
            raise ValueError(f"--shock {text!r}: expected DAY:FRACTION, e.g. 1:-0.4") from None
        if key in shocks:
            raise ValueError(f"--shock {text!r}: day {key} is shocked twice")
        shocks[key] = move
    return shocks


market_app = typer.Typer(no_args_is_help=True,
                         help="Build tapes of a whole market day from daily bars.")
app.add_typer(market_app, name="market")


@market_app.command("build")
@_friendly
def market_build(
    bars: Annotated[Path, typer.Option(
        help="Daily bars of many codes (pykrx, FinanceDataReader or Yahoo layout, one file "
             "with a code column or a folder of per-code files).")],
    date: Annotated[str, typer.Option("--date", help="The (first) day, YYYY-MM-DD.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Tape to write.")],
    codes: Annotated[str | None, typer.Option(
        help="Codes to put on the tape, comma-separated (default: every code).")] = None,
    top: Annotated[int | None, typer.Option(
        help="The N names of the largest turnover (close x volume) on --date.")] = None,
    days: Annotated[int, typer.Option(help="Days of the file from --date.")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same tape.")] = 0,
    rate: Annotated[float, typer.Option(
        help="Decisions a second of the whole market, split by turnover (each name "
             "0.02-5).")] = 400.0,
    beta: Annotated[float, typer.Option(
        help="Loading of each name's path on the market factor (an assumption).")] = 0.6,
    gamma: Annotated[float, typer.Option(
        help="Loading on its sector's factor (the bars' sector column).")] = 0.4,
    listing: Annotated[list[Path] | None, typer.Option(
        help="A listing giving each code's market and shares outstanding (the index "
             "weights), repeatable (docs/data-formats.md: listings).")] = None,
    listing_market: Annotated[str | None, typer.Option(
        help="The market of a listing without a market column (pykrx).")] = None,
    allow_missing: Annotated[bool, typer.Option(
        "--allow-missing", help="Keep codes the listing lacks (KOSPI, shares 0: outside "
                                "the index) instead of stopping.")] = False,
    index_knot: Annotated[list[str] | None, typer.Option(
        "--index-knot", help="DATE,HH:MM:SS,RET: a waypoint of the market factor (return "
                             "vs prior close, e.g. 2024-08-05,09:00:00,-0.0242), "
                             "repeatable (docs/synthetic-tapes.md: an index path).")] = None,
) -> None:
    """One anchored tape of a market day: every name opens, touches its high and low and
    closes at its recorded prices, the names moving together through a market and a sector
    factor (docs/synthetic-tapes.md: a market day).

    Example: cascade market build --bars tests/data/daily-2024-08-05-all-krx-pykrx.csv
    --date 2024-08-05 --top 50 -o market.parquet
    """
    from datetime import date as Date

    from replay.loaders.daily_bars import read_bars
    from replay.market import group_knots, parse_index_knot, plan_market, write_market_tape
    from replay.tape import Tape

    t0 = time.perf_counter()
    knots = group_knots([parse_index_knot(k) for k in index_knot or ()])
    try:
        first = Date.fromisoformat(date)
    except ValueError:
        raise ValueError(f"--date {date!r} is not a date YYYY-MM-DD") from None
    wanted = [c.strip() for c in codes.split(",") if c.strip()] if codes else None
    frame = read_bars(bars)
    listed = None
    if listing:
        from replay.loaders.listing import read_listing

        listed = read_listing(listing, on=date, market=listing_market)
    mplan = plan_market(frame, first, days=days, codes=wanted, top=top, rate=rate,
                        source=str(bars), listing=listed,
                        listing_missing="keep" if allow_missing else "raise")
    if listed is not None:
        gone = mplan.notes["listing_missing"]
        when = f" of {listed.attrs['date']}" if "date" in listed.attrs else ""
        out.print(f"listing{when}: market and shares for {mplan.asked - len(gone):,} of the "
                  f"{mplan.asked:,} selected codes")
        if gone:
            out.print(f"{len(gone):,} codes not in the listing (KOSPI, shares 0: outside "
                      "the index): " + ", ".join(gone[:20]) + (" ..." if len(gone) > 20
                                                              else ""))
    with _bar_factory("market tape", len(mplan.names) * days) as advance:
        path = write_market_tape(output, mplan, seed, beta=beta, gamma=gamma, knots=knots,
                                 progress=advance)
    left = ""
    if mplan.dropped:
        shown = "; ".join(f"{c}: {r}" for c, r in mplan.dropped[:3])
        more = f"; {len(mplan.dropped) - 3} more" if len(mplan.dropped) > 3 else ""
        left = (f"; {len(mplan.dropped)} of {mplan.asked} left out ({shown}{more}; the "
                "tape's cascade.market lists them)")
    out.print(f"wrote {len(Tape(path)):,} events ({len(mplan.names)} name(s) x {days} "
              f"day(s) of {bars}, {sum(mplan.rates):.0f} decisions/s in all, seed "
              f"{seed}{left}) to {path} in {time.perf_counter() - t0:.1f}s")


@app.command("book")
@_friendly
def book(
    tape: Annotated[Path, typer.Argument(help="Tape to rebuild the book from.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Parquet file to write.")],
    levels: Annotated[int, typer.Option(help="Levels per side.")] = 10,
) -> None:
    """Write the top N levels after every complete event (packet end).

    Example: cascade book esh4.parquet --levels 10 -o esh4-book.parquet
    """
    import pyarrow as pa

    from replay.bookview import book_levels
    from replay.rundir import TableStream
    from replay.tape import Tape

    t = Tape(tape)
    stream = TableStream(output, compression="zstd")  # under its name only once complete
    try:
        with _progress() as bar:
            task = bar.add_task("book", total=len(t))

            def chunks():
                for ev in t.chunks():
                    yield ev
                    bar.advance(task, len(ev))

            for batch in book_levels(chunks(), t.instruments, levels):
                stream.write(pa.Table.from_batches([batch]))
        if not stream.close():
            raise ValueError(f"{tape}: no complete event to snapshot")
    except BaseException:
        stream.abort()
        raise
    rows = stream.rows
    out.print(f"wrote {rows:,} book rows x {levels} levels to {output}")


def _parse_index_closes(items: list[str]) -> dict[str, float]:
    """``--index-close NAME=POINTS`` options as a mapping, each index once."""
    from venues.krx.venue import index_closes

    out: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ValueError(f"--index-close {item!r}: give NAME=POINTS, e.g. KOSPI=2676.19")
        key = name.strip().upper()
        if key in out:
            raise ValueError(f"--index-close {key} given twice")
        out[key] = value.strip()
    try:
        return index_closes(out)
    except ValueError as exc:
        raise ValueError(f"--index-close: {exc}") from None


def _index_line(name: str, ix: dict) -> str:
    """One index in the console: its close and return, its low, its halts."""
    halts = ", ".join(f"{e['kind'].replace('_', ' ')} at {e['time_seoul']}" for e in ix["events"])
    return (f"{name} close {ix['close']:,.2f} ({ix['close_return']:+.2%}), low "
            f"{ix['low']:,.2f} ({ix['low_return']:+.2%})" + (f", {halts}" if halts else ""))


@app.command("replay", short_help="Replay a tape through the book, with injected orders, a "
                                  "broker and a strategy.")
@_friendly
def replay_cmd(
    tape: Annotated[Path | None, typer.Argument(help="Tape to replay (none in generative "
                                                "mode).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Run directory to write.")]
    = Path("run"),
    mode: Annotated[str, typer.Option(help="absolute, relative, propagator or generative "
                                      "(docs/replay-modes.md). Default: relative, as in "
                                      "cascade compare.")] = "relative",
    inject: Annotated[Path | None, typer.Option(help="CSV of orders to inject: ts,instrument,"
                                                "side,type,price,size.")] = None,
    profile: Annotated[str, typer.Option(help="Generative mode: the flow's profile, "
                                         "krx-largecap or krx-smallcap.")] = "krx-smallcap",
    days: Annotated[int, typer.Option(help="Generative mode: sessions to generate.")] = 1,
    shock: Annotated[list[str] | None, typer.Option(
        help="Generative mode: DAY:FRACTION moves the flow's value at that day's open, e.g. "
             "--shock 1:-0.2 (a 20% gap down on the second day; repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed of the generative flow and of the KRX venue's random auction ends; "
             "recorded with every run. Default: the tape's own session seed (synthetic "
             "tapes), else 0.")] = None,
    venue: Annotated[str | None, typer.Option(
        help="generic (price-time matching, no session rules) or krx (ticks, daily limits, "
             "auctions, VI, circuit breakers: docs/krx-venue.md). Default, as in cascade "
             "compare: krx when every instrument of the tape is on XKRX, else generic.")]
    = None,
    index_prior_close: Annotated[float, typer.Option(
        help="KRX venue: KOSPI's previous close, to report its levels in index points "
             "(the same as --index-close KOSPI=...).")] = 0.0,
    index_close: Annotated[list[str] | None, typer.Option(
        help="KRX venue: an index's real previous close, NAME=POINTS for KOSPI, KOSDAQ or "
             "KOSPI200, e.g. --index-close KOSPI=2676.19 --index-close KOSDAQ=779.33 "
             "(repeatable; the indices are computed from the tape's constituents: "
             "docs/krx-venue.md).")] = None,
    broker: Annotated[list[str] | None, typer.Option(
        help="Attach a margin broker: a preset (cascade brokers list) or a rules TOML file, "
             "with overrides after commas (krx-credit,maintenance_ratio=1.3). Repeatable: "
             "several brokers in one market, each with its --population, or all sharing one "
             "file whose accounts go to the broker of their kind.")] = None,
    population: Annotated[list[Path] | None, typer.Option(
        help="The broker's accounts: a CSV (account_id,kind,instrument,shares,entry_price,"
             "cash,loan,trade_date) or a TOML spec synthesised from daily bars "
             "(docs/brokers.md). One per --broker, in order, or one for all.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a rule: --set maintenance_ratio=1.3 (repeatable, each key "
                      "once; ratios are fractions, 1.3 = 130%; ranges: docs/brokers.md).")]
    = None,
    strategy: Annotated[str | None, typer.Option(
        help="A strategy to run in the replay: FILE.py:Class or module:Class, e.g. "
             "strategies/credit_momentum.py:CreditMomentum (docs/strategies.md). Its account "
             "is an account of --broker, or of its own kind's KRX preset when no broker is "
             "given.")] = None,
    param: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE passed to the strategy's constructor (repeatable, each key once), "
             "parsed to the type of the class's parameter, e.g. --param cash=50000000.")]
    = None,
    chunk_rows: Annotated[int, typer.Option(help="Rows read per chunk.")] = 1 << 20,
    overwrite: Annotated[bool, typer.Option(
        help="Replace a non-empty run directory whole (the earlier run is removed once the "
             "new one is complete). Without it a non-empty -o is refused.")] = False,
) -> None:
    """Replay a tape with injected orders; write fills, trade prints, top of book and
    summary.json to the run directory (at --venue krx also venue_events, sessions and
    unfilled). With --broker and --population, a margin broker liquidates its accounts
    through the book, and the same tape is replayed a second time without its orders (the
    counterfactual): forced_orders.parquet, accounts.parquet and the figures of both in
    summary.json.

    With --strategy, a strategy trades in the replay (docs/strategies.md) and its equity
    and events are written too.

    The run directory appears only once the run is complete (it is written beside it and
    renamed); a non-empty -o is refused unless --overwrite. Defaults, the same as cascade
    compare's: --mode relative, and --venue krx for a tape whose instruments are all on
    XKRX (generic otherwise).

    Examples:

    * cascade replay day.parquet --mode absolute --inject sells.csv -o runs/day
    * cascade replay krx2d.parquet --inject sells.csv -o runs/krx
    * cascade replay krx2d.parquet --broker krx-credit --population accts.csv
      --set maintenance_ratio=1.3 -o runs/credit
    * cascade replay krx2d.parquet --strategy
      strategies/credit_momentum.py:CreditMomentum --param cash=30000000 -o runs/momentum
    * cascade replay --mode generative --profile krx-smallcap --seed 3 --inject sells.csv
      -o runs/gen
    """

    from replay.runner import RunSpec, run_tape

    if mode == "generative" and tape is not None:
        raise ValueError("generative mode takes no tape; drop the TAPE argument")
    if mode != "generative" and tape is None:
        raise ValueError(f"{mode} mode replays a tape: give TAPE")
    if mode != "generative" and shock:
        raise ValueError("--shock moves the generative flow's value: use it with --mode "
                         "generative (a tape's own shocks are made by cascade data synth)")
    first, more = _brokers(broker or [], population or [], set_ or [])
    spec = RunSpec(tape=tape, output=output, mode=mode, venue=venue, seed=seed,
                   inject=inject, broker=first.rules if first else None,
                   population=first.population if first else None,
                   overrides=first.overrides if first else tuple(set_ or ()),
                   more_brokers=more, index_prior_close=index_prior_close,
                   index_closes=_parse_index_closes(index_close or []),
                   chunk_rows=chunk_rows, strategy=strategy,
                   strategy_params=_parse_params(param or [], strategy),
                   overwrite=overwrite, profile=profile, days=days,
                   shocks=_parse_shocks(shock or []))
    summary = run_tape(spec, _bar_factory)
    if summary.get("market"):  # a tape of several names
        m = summary["market"]
        out.print(f"market: {m['names']:,} names (" + ", ".join(
            f"{k} {v:,}" for k, v in m["by_market"].items()) + ")", highlight=False)
    if summary.get("indices"):
        out.print("indices: " + "; ".join(_index_line(name, ix)
                                          for name, ix in summary["indices"].items()),
                  highlight=False)
    if "broker" in summary:
        _print_broker(summary)
    if "strategy" in summary:
        st = summary["strategy"]
        out.print(f"strategy {st['name']}: final equity {st['final_equity']:,.0f} "
                  f"(started {st['initial_cash']:,.0f}), {st['fills']:,} fills, "
                  f"{st['margin_calls']} margin call(s), {st['liquidations']} forced "
                  "sale(s)")
    out.print(f"{mode} at the {summary['venue']} venue: {summary['events_processed']:,} "
              f"events in {summary['replay_seconds']:.2f}s "
              f"({summary['events_per_second'] / 1e6:.2f} M events/s; loading "
              f"{summary['load_seconds']:.2f}s), {summary['rows']['fills']:,} fills; "
              f"results in {output}/", highlight=False)
    _print_injected_outcomes(output)


def _print_injected_outcomes(run_dir: Path) -> None:
    """How many injected orders were rejected or left unfilled, and why (injected.parquet)."""
    import pyarrow.parquet as pq

    from replay.inject import outcome_lines

    for line in outcome_lines(pq.read_table(run_dir / "injected.parquet")):
        out.print(line, markup=False, highlight=False)


def _brokers(brokers: list[str], populations: list[Path], overrides: list[str]):
    """The first broker and the others (:class:`replay.runner.BrokerSpec`) of --broker,
    --population and --set: one population per broker, or one for all; --set with one broker
    only (with several, each takes its overrides after commas)."""
    from replay.compare import parse_variant
    from replay.runner import BrokerSpec

    if not brokers:
        if populations:
            raise ValueError("--population gives a broker's accounts: give --broker")
        return None, ()
    if len(populations) not in (1, len(brokers)):
        raise ValueError(f"{len(brokers)} --broker and {len(populations)} --population: give "
                         "one population per broker, in the same order, or one for all")
    if overrides and len(brokers) > 1:
        raise ValueError("--set with several brokers: give each broker its overrides after "
                         "commas, e.g. --broker krx-credit,maintenance_ratio=1.3")
    specs = []
    for k, text in enumerate(brokers):
        name, own = parse_variant(text)
        pop = populations[k] if len(populations) > 1 else (populations[0] if k == 0 else None)
        specs.append(BrokerSpec(name, pop, tuple([*overrides, *own])))
    return specs[0], tuple(specs[1:])


def _print_broker(summary: dict) -> None:
    """The brokers' lines (each, then their total when several): whom each manages and
    ignores, what the accounts went through (docs/brokers.md, "What the summary counts"),
    what was sold."""
    sections = summary.get("brokers")
    if sections:
        for label, s in sections.items():
            _print_one_broker(label, s["broker"], s["counterfactual"], ignored=False)
        _print_one_broker("total", summary["broker"], summary["counterfactual"])
    else:
        _print_one_broker(summary["config"]["broker"], summary["broker"],
                          summary["counterfactual"])


def _print_one_broker(name: str, b: dict, c: dict, ignored: bool = True) -> None:
    """``ignored``: say which accounts of the population it left (with several brokers, the
    total says which accounts no broker handles)."""
    kind = b["kind"]
    out.print(f"broker {name}: {b['accounts_managed']:,} {kind} accounts: "
              f"{b['accounts_called']:,} called, {b['accounts_force_ordered']:,} given forced "
              f"orders, {b['accounts_force_sold']:,} force-sold, {b['accounts_wiped_out']:,} "
              f"wiped out", highlight=False)
    left = (b.get("accounts_ignored") or {}) if ignored else {}
    if left:
        counts = ", ".join(f"{n:,} {k}" for k, n in left.items())
        out.print(f"broker {name}: ignored {counts} account(s) of the population: "
                  f"{kind} rules handle {kind} accounts only (summary.json: "
                  "broker.accounts_ignored)", highlight=False)
    out.print(f"broker {name}: {b['forced_orders']:,} forced orders, {b['forced_volume']:,} "
              f"shares sold, shortfall {b['broker_shortfall']:,} won; max drawdown "
              f"{b['max_drawdown']:.2%} vs {c['max_drawdown']:.2%} without the forced orders",
              highlight=False)


brokers_app = typer.Typer(invoke_without_command=True,
                           help="Broker margin-rule presets (docs/brokers.md).")
app.add_typer(brokers_app, name="brokers")


@brokers_app.callback()
def brokers_main(ctx: typer.Context) -> None:
    """Broker margin-rule presets: with no subcommand, list them.

    Example: cascade brokers
    """
    if ctx.invoked_subcommand is None:
        brokers_list()


@brokers_app.command("list")
@_friendly
def brokers_list() -> None:
    """List the shipped margin-rule presets: valuation, maintenance ratio, CFD call and
    liquidation levels, grace days, execution and sale size.

    Example: cascade brokers list
    """
    from rich.table import Table

    from brokers.rules import list_presets

    table = Table(title="broker presets (details: cascade brokers show NAME)", box=None,
                  padding=(0, 1, 0, 0), header_style="bold")
    for column in ("name", "kind", "valued at", "ratio", "call/liq", "grace", "execution",
                   "size"):
        table.add_column(column, no_wrap=True)
    for r in list_presets():
        ratio = f"{r.maintenance_ratio:g}" if r.maintenance_ratio else "-"
        levels = f"{r.call_level:g}/{r.liquidation_level:g}" if r.call_level else "-"
        table.add_row(r.name, r.kind, r.valuation, ratio, levels, f"{r.grace_days}d",
                      r.execution, r.size)
    out.print(table)


@brokers_app.command("show")
@_friendly
def brokers_show(
    rules: Annotated[str, typer.Argument(metavar="NAME_OR_FILE",
                                         help="A preset name or a rules .toml file.")],
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE, repeatable: override one field, e.g. "
                      "maintenance_ratio=1.3.")] = None,
) -> None:
    """Print the resolved rules as TOML (save it to start your own rules file).

    Example: cascade brokers show krx-credit --set maintenance_ratio=1.3 --set grace_days=2
    """
    from brokers.rules import load_rules

    resolved = load_rules(rules, overrides or [])
    header = f"# {rules}" + (f" with --set {' '.join(overrides)}" if overrides else "")
    out.print(header, markup=False, highlight=False, soft_wrap=True)
    out.print(resolved.to_toml(), end="", markup=False, highlight=False, soft_wrap=True)


@app.command("compare", short_help="Compare broker rule variants on the same tape, "
                                   "population and seed.")
@_friendly
def compare_cmd(
    tape: Annotated[Path, typer.Argument(help="Tape every variant replays.")],
    broker: Annotated[list[str], typer.Option(
        help="A rule variant, repeatable (at least two): PRESET_OR_TOML[,KEY=VALUE...], e.g. "
             "--broker krx-credit --broker krx-credit,maintenance_ratio=1.3.")],
    population: Annotated[Path, typer.Option(
        help="The accounts every variant holds (as in cascade replay).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory to write: one run "
                                         "directory per variant and the comparison.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="KEY=VALUE applied to every variant before its own (repeatable).")]
    = None,
    label: Annotated[list[str] | None, typer.Option(
        help="Name the variants' run directories, one per --broker in order (repeatable); "
             "default: from the variant text.")] = None,
    mode: Annotated[str, typer.Option(help="absolute, relative or propagator. Default: "
                                      "relative, as in cascade replay.")] = "relative",
    venue: Annotated[str | None, typer.Option(
        help="generic or krx. Default, as in cascade replay: krx when every instrument of "
             "the tape is on XKRX, else generic.")] = None,
    seed: Annotated[int | None, typer.Option(
        help="Seed shared by every variant. Default: the tape's session seed, else 0.")]
    = None,
    inject: Annotated[Path | None, typer.Option(
        help="CSV of orders injected in every variant.")] = None,
    index_prior_close: Annotated[float, typer.Option(
        help="KRX venue: the index's previous close (circuit-breaker levels).")] = 0.0,
    jobs: Annotated[int | None, typer.Option(
        help="Worker processes running the variants. Default: min(variants, CPUs).")]
    = None,
    strategy: Annotated[str | None, typer.Option(
        help="A strategy trading in every variant (FILE.py:Class), its account under each "
             "variant's rules; its final equity, calls and forced sales join the table.")]
    = None,
    param: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE for the strategy's constructor (repeatable).")] = None,
    overwrite: Annotated[bool, typer.Option(
        help="Run every variant again and replace OUTPUT whole (default: resume, reusing "
             "each variant whose run directory is complete and made the same way).")]
    = False,
) -> None:
    """Replay the same tape, population and seed under each broker rule variant and write
    comparison.csv, comparison.parquet and comparison.html (table, bar charts, each
    variant's price path against the counterfactual) to OUTPUT.

    Run again into the same OUTPUT, it resumes: a variant whose run directory is complete
    and was made with the same options, rules, code and input files (by their SHA-256) is
    reused, not run again, and the table says so; any other variant runs again. OUTPUT may
    hold only the comparison's own files unless --overwrite. If the command is killed, its
    worker processes die with it.

    Example: cascade compare krx2d.parquet --population accts.csv --broker krx-credit
    --broker krx-credit,maintenance_ratio=1.3 -o runs/ratio
    """
    import pandas as pd
    from rich.table import Table

    from replay.compare import OUTPUTS, VariantError, compare

    with _progress() as bar:
        task = bar.add_task("variants", total=len(broker))

        reused: set[str] = set()

        def done(name: str, summary: dict) -> None:
            b, c = summary["broker"], summary["counterfactual"]
            if summary["compare"].get("reused"):
                reused.add(name)
                how = (f"[cyan]reused[/] {escape(name)} (complete run directory, made the "
                       "same way)")
            else:
                how = f"[green]done[/] {escape(name)}"
            bar.console.print(f"{how}: {b['forced_volume']:,} shares force-sold, max drawdown "
                              f"{b['max_drawdown']:.2%} vs {c['max_drawdown']:.2%} "
                              f"counterfactual ({summary['wall_seconds']:.1f}s)",
                              highlight=False)
            bar.advance(task)

        try:
            table = compare(tape, broker, population, output, labels=label,
                            overrides=set_ or (), mode=mode, venue=venue, seed=seed,
                            inject=inject, index_prior_close=index_prior_close, jobs=jobs,
                            progress=done, strategy=strategy,
                            strategy_params=_parse_params(param or [], strategy),
                            overwrite=overwrite)
        except VariantError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
    # one column per variant: a few variants with long labels still fit a terminal
    shown = Table(box=None, padding=(0, 2, 0, 0), header_style="bold")
    shown.add_column("", no_wrap=True)
    for name in table.label:
        shown.add_column(name, justify="right", overflow="fold")
    formats = {"forced_volume": "{:,}", "forced_value": "{:,.0f}", "amplification": "{:.4f}",
               "max_drawdown": "{:.2%}", "counterfactual_max_drawdown": "{:.2%}",
               "excess_drawdown": "{:.2%}", "accounts_called": "{:,}",
               "accounts_force_sold": "{:,}",
               "accounts_wiped_out": "{:,}", "broker_shortfall": "{:,}",
               "limit_locked_days": "{}", "vi_count": "{}", "circuit_breakers": "{}",
               "max_generation": "{}", "strategy_final_equity": "{:,.0f}",
               "strategy_margin_calls": "{}", "strategy_liquidations": "{}"}
    shown.add_row("run", *("reused" if name in reused else "ran" for name in table.label))
    for column, fmt in formats.items():
        if column not in table:
            continue
        shown.add_row(column.replace("_", " "),
                      *("-" if pd.isna(v) else fmt.format(v) for v in table[column]))
    out.print(shown)
    out.print(f"wrote {', '.join(str(output / name) for name in OUTPUTS)} and a run directory "
              f"per variant under {output}/", highlight=False)


@app.command("report", short_help="Write a run directory's report.html.")
@_friendly
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR",
                                            help="Run directory written by cascade replay.")],
) -> None:
    """Write RUN_DIR/report.html, one self-contained page (opens offline): the price path
    with and without the forced sales, the cascade by generation, collateral ratios at each
    close, VI and circuit breakers, a strategy's equity, the summary figures. Prints its path.

    Refuses (exit 2, naming the file) a directory that is not a complete run: no
    summary.json, tables of another run (their run id differs from the summary's), or the
    temporary directory of a run that did not finish.

    Example: cascade report runs/credit
    """
    from replay.report import write_report
    from replay.rundir import verify

    verify(run_dir)
    out.print(str(write_report(run_dir)), markup=False, highlight=False, soft_wrap=True)


@app.command("demo", short_help="Run the bundled scenarios and write their reports.")
@_friendly
def demo(output: Annotated[Path, typer.Option("-o", "--output", help="Directory to write.")]
         = Path("demo-output")) -> None:
    """Run the bundled scenarios: synthesise a 5-day small-cap CFD unwind and a 4-day
    large-cap crash, replay each at the KRX venue with a margin broker and an example
    strategy, write their reports, and compare the crash under 140% and 130% maintenance
    ratios. A few minutes on two cores; prints the pages to open.

    Example: cascade demo -o demo-output
    """
    from replay.demo import run_demo

    run_demo(output, out)


from replay.cli_attribute import register as _register_attribute  # noqa: E402

_register_attribute(app)

from replay.cli_episode import episode_app  # noqa: E402  (cascade episode list / run)
from replay.cli_sweep import register as _register_sweep  # noqa: E402

_register_sweep(app)

app.add_typer(episode_app, name="episode")


def main() -> None:  # pragma: no cover
    app()
