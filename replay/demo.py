"""The demo: two leverage unwinds on synthetic KRX tapes, each replayed with a margin broker
and a strategy, reported, and one compared under two maintenance ratios.

1. **Small-cap CFD unwind** (5 days): a -12% news gap before day 2 pushes 2,000 heavily
   leveraged CFD accounts (brokers/examples/unwind-heavy.csv) under their margin call
   level; their forced sales at the lower limit lock the stock limit-down two days running.
   A liquidity provider (strategies/liquidity_provider.py) bids for those sales at the
   lower limit in each pre-open auction.
2. **Large-cap crash** (4 days): a -17% gap on day 2 halts the market (circuit breaker
   stage 1) and leaves hundreds of the 5,000 신용융자 accounts of
   brokers/examples/crash-credit.csv valued under 140% at the close; uncured by D+1, they
   are sold in the pre-open auction of day 4. A leveraged momentum strategy
   (strategies/credit_momentum.py) that bought on day 1 is among them.
3. **140% vs 130%**: the large-cap crash under ``krx-credit`` and under the same rules with
   a 130% maintenance ratio (a one-axis sweep: replay/compare.py).
4. **A market, credit concentrated or spread** (2024-08-02..08-07, real bars): the 33 large
   caps of tests/data on one anchored market tape (replay.market), with 1 trillion won of
   신용융자 and 100 billion of 미수 over 20,000 accounts (a fifth holding two names) laid
   by a ``[market]`` population spec either 70% in the semiconductor names 005930, 000660
   and 042700 or spread by turnover (docs/brokers.md: a market's leverage); the same tape,
   brokers and seed, under krx-credit and krx-misu.

The output directory holds only the demo's own files (:data:`OWN`); run again, the demo
replaces its run directories whole, resumes the comparison, and writes demo-summary.json
last, so a demo that did not finish leaves none.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from replay.compare import compare
from replay.report import write_report
from replay.rundir import OutputError, is_temporary, write_json
from replay.runner import RunSpec, run_tape
from replay.synth import write_synthetic_tape

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "brokers" / "examples"

SMALL = {"profile": "krx-smallcap", "days": 5, "seed": 5, "shocks": {1: -0.12}}
LARGE = {"profile": "krx-largecap", "days": 4, "seed": 3, "shocks": {1: -0.17}}
SUMMARY = "demo-summary.json"
#: The market scenario: real bars, the days, the market's decisions a second, the seed, the
#: semiconductor names the credit is concentrated in, and the two ways it is laid.
MARKET_DAY = {"bars": ROOT / "tests" / "data" / "daily-2024-08-largecaps-pykrx.csv",
          "start": "2024-08-02", "days": 4, "rate": 165.0, "seed": 2}
SEMIS = ("005930", "000660", "042700")
LAYOUTS = {"market-concentrated": ", share = 0.7", "market-spread": ""}
MARKET_SPEC = """# the demo's market population (replay/demo.py): amounts are assumptions
bars = "{bars}"
loan_term_days = 4            # credit bought 07-29..08-01, the bars' first days
margin_rate = [0.4, 0.45]     # down payments at the low end of 40-60% (docs/reference/krx.md)

[market]
as_of = "2024-08-02"
accounts = 20000
kospi_credit_balance_krw = 1e12
default_market = "KOSPI"
misu_share = 0.1
misu_loan_term_days = 2       # 미수 bought 07-31..08-01, due on T+2
portfolio_share = 0.2
concentrate = {{ codes = {codes}{share} }}
"""
#: What the demo writes into its output directory, and all it may find there.
OWN = frozenset({"smallcap-unwind.parquet", "largecap-crash.parquet", "smallcap-unwind",
                 "largecap-crash", "compare-140-130", SUMMARY, "market-2024-08.parquet",
                 *LAYOUTS, *(f"{name}.toml" for name in LAYOUTS)})


def check_output(output: Path) -> None:
    """Refuse an output that holds anything but the demo's own files (:data:`OWN`)."""
    if output.exists() and not output.is_dir():
        raise ValueError(f"{output}: exists and is not a directory; choose another -o")
    if output.is_dir():
        for entry in sorted(output.iterdir()):
            if entry.name not in OWN and not is_temporary(entry):
                raise ValueError(f"{entry}: not written by the demo; give the demo an empty "
                                 "or new directory (-o)")


def run_demo(output: Path, console: Console) -> dict:
    check_output(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / SUMMARY).unlink(missing_ok=True)  # no summary of an earlier demo stays
    except OSError as exc:
        raise OutputError(output, exc) from None
    bars = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                    transient=False)

    @contextmanager
    def progress(label: str, total: int | None):
        task = bars.add_task(label, total=total or 1)
        yield lambda n: bars.advance(task, n)
        bars.update(task, completed=total or 1)

    summary: dict = {}
    with bars:
        tapes = {}
        for name, spec in (("smallcap-unwind", SMALL), ("largecap-crash", LARGE)):
            path = output / f"{name}.parquet"
            task = bars.add_task(f"synthesise {name} ({spec['days']} KRX days)", total=1)
            write_synthetic_tape(path, spec["profile"], days=spec["days"], seed=spec["seed"],
                                 shocks=spec["shocks"])
            bars.update(task, completed=1)
            tapes[name] = path
        runs = {
            "smallcap-unwind": RunSpec(
                tape=tapes["smallcap-unwind"], output=output / "smallcap-unwind",
                mode="relative", venue="krx", broker="cfd",
                population=EXAMPLES / "unwind-heavy.csv",
                strategy="strategies.liquidity_provider:LiquidityProvider", overwrite=True),
            "largecap-crash": RunSpec(
                tape=tapes["largecap-crash"], output=output / "largecap-crash",
                mode="relative", venue="krx", broker="krx-credit",
                population=EXAMPLES / "crash-credit.csv",
                strategy="strategies.credit_momentum:CreditMomentum", overwrite=True),
        }
        for name, spec in runs.items():
            result = run_tape(spec, progress)
            with progress(f"report {name}", 1) as advance:
                report = write_report(spec.output)
                advance(1)
            summary[name] = {"run_dir": str(spec.output), "run_id": result["run_id"],
                             "report": str(report),
                             "broker": result["broker"],
                             "counterfactual": result["counterfactual"],
                             "venue": result.get("venue_summary", {}),
                             "strategy": result.get("strategy", {})}
        summary.update(_market(output, bars, progress))
        task = bars.add_task("compare 140% vs 130% (two processes)", total=2)
        table = compare(tapes["largecap-crash"], ["krx-credit",
                                                  "krx-credit,maintenance_ratio=1.3"],
                        EXAMPLES / "crash-credit.csv", output / "compare-140-130",
                        labels=["ratio-140", "ratio-130"], mode="relative", venue="krx",
                        progress=lambda label, s: bars.advance(task, 1))
    import json

    summary["compare"] = {"dir": str(output / "compare-140-130"),
                          "html": str(output / "compare-140-130" / "comparison.html"),
                          "rows": json.loads(table.drop(columns=["run_dir"]).to_json(
                              orient="records"))}
    write_json(output / SUMMARY, summary)
    _print(console, summary, table)
    return summary


def _market(output: Path, bars: Progress, progress) -> dict:
    """Scenario 4: one market tape of the large caps, its credit laid two ways."""
    import json
    from datetime import date

    import pandas as pd

    from replay.loaders.daily_bars import read_bars
    from replay.market import plan_market, write_market_tape
    from replay.runner import BrokerSpec

    day = MARKET_DAY
    mplan = plan_market(read_bars(day["bars"]), date.fromisoformat(day["start"]),
                        days=day["days"], rate=day["rate"], source=str(day["bars"]))
    tape = output / "market-2024-08.parquet"
    task = bars.add_task(f"build the market tape ({len(mplan.names)} names x "
                         f"{day['days']} days)", total=len(mplan.names) * day["days"])
    write_market_tape(tape, mplan, day["seed"], progress=lambda n: bars.advance(task, n))
    out = {}
    for name, share in LAYOUTS.items():
        spec = output / f"{name}.toml"
        spec.write_text(MARKET_SPEC.format(bars=day["bars"].as_posix(),
                                           codes=json.dumps(list(SEMIS)), share=share),
                        encoding="utf-8")
        run = RunSpec(tape=tape, output=output / name, mode="relative", venue="krx",
                      broker="krx-credit", population=spec,
                      more_brokers=(BrokerSpec("krx-misu"),), overwrite=True)
        result = run_tape(run, progress)
        with progress(f"report {name}", 1) as advance:
            report = write_report(run.output)
            advance(1)
        forced = pd.read_parquet(run.output / "forced_orders.parquet")
        symbols = {k + 1: n.code for k, n in enumerate(mplan.names)}  # the tape's ids
        value = forced.filled_qty * forced.avg_price.fillna(0)
        semis = forced.instrument.map(symbols).isin(SEMIS)
        out[name] = {"run_dir": str(run.output), "run_id": result["run_id"],
                     "report": str(report), "broker": result["broker"],
                     "counterfactual": result["counterfactual"],
                     "venue": result.get("venue_summary", {}), "strategy": {},
                     "forced_value_semis": float(value[semis].sum()),
                     "forced_value_others": float(value[~semis].sum())}
    return out


def _print(console: Console, summary: dict, table) -> None:
    columns = {"smallcap unwind": summary["smallcap-unwind"],
               "largecap crash": summary["largecap-crash"]}
    for _, row in table.iterrows():
        columns[f"crash at {row.label[-3:]}%"] = {
            "broker": {"forced_volume": row.forced_volume,
                       "accounts_force_sold": row.accounts_force_sold,
                       "max_drawdown": row.max_drawdown},
            "counterfactual": {"max_drawdown": row.counterfactual_max_drawdown},
            "venue": {"volatility_interruptions": row.vi_count,
                      "circuit_breakers": row.circuit_breakers,
                      "limit_locked_down_sessions": row.limit_locked_days}}
    shown = Table(title="what the forced sales did", box=None, padding=(0, 2, 0, 0),
                  header_style="bold")
    shown.add_column("", no_wrap=True)
    for name in columns:
        shown.add_column(name, justify="right")
    rows = (("shares force-sold", "broker", "forced_volume", "{:,}"),
            ("accounts force-sold", "broker", "accounts_force_sold", "{:,}"),
            ("max drawdown", "broker", "max_drawdown", "{:.1%}"),
            ("  without them", "counterfactual", "max_drawdown", "{:.1%}"),
            ("VI", "venue", "volatility_interruptions", "{}"),
            ("circuit breakers", "venue", "circuit_breakers", "{}"),
            ("limit-locked days", "venue", "limit_locked_down_sessions", "{}"))
    for title, part, key, fmt in rows:
        shown.add_row(title, *(fmt.format(c[part].get(key, 0)) for c in columns.values()))
    console.print(shown)
    market = Table(title="one market, its credit laid two ways (2024-08-02..08-07, 33 large "
                         "caps)", box=None, padding=(0, 2, 0, 0), header_style="bold")
    market.add_column("", no_wrap=True)
    for name in LAYOUTS:
        market.add_column(name.removeprefix("market-"), justify="right")
    m = [summary[name] for name in LAYOUTS]
    for title, get in (
            ("accounts called", lambda c: f"{c['broker']['accounts_called']:,}"),
            ("accounts force-sold", lambda c: f"{c['broker']['accounts_force_sold']:,}"),
            ("forced sales, bn won", lambda c: f"{c['broker']['forced_value'] / 1e9:,.1f}"),
            (f"  of them in {', '.join(SEMIS)}",
             lambda c: f"{c['forced_value_semis'] / 1e9:,.1f}"),
            ("max drawdown", lambda c: f"{c['broker']['max_drawdown']:.1%}"),
            ("  without them", lambda c: f"{c['counterfactual']['max_drawdown']:.1%}"),
            ("VI", lambda c: f"{c['venue'].get('volatility_interruptions', 0)}")):
        market.add_row(title, *(get(c) for c in m))
    console.print(market)
    # the crash run and the comparison's first variant are "the same" case: say why their
    # figures differ (the crash run trades a strategy, the comparison does not)
    from replay.comparison_page import config_differences, run_config

    first = table.iloc[0]
    why = config_differences(
        ["largecap crash", f"crash at {first.label[-3:]}%"],
        [run_config(Path(summary["largecap-crash"]["run_dir"])), run_config(Path(first.run_dir))])
    if why:
        console.print(f"largecap crash and crash at {first.label[-3:]}% (the same tape and "
                      f"rules) also differ in {'; '.join(why)}", highlight=False)
    for name in ("smallcap-unwind", "largecap-crash"):
        st = summary[name]["strategy"]
        if st:
            console.print(f"{name}: strategy {st['name']} ended with {st['final_equity']:,.0f} "
                          f"won of {st['initial_cash']:,.0f}; {st['margin_calls']} margin "
                          f"call(s), {st['liquidations']} forced sale(s)", highlight=False)
    console.print("\nopen these in a browser:", style="bold")
    for name in ("smallcap-unwind", "largecap-crash", *LAYOUTS):
        console.print(f"  {summary[name]['report']}", highlight=False, soft_wrap=True)
    console.print(f"  {summary['compare']['html']}", highlight=False, soft_wrap=True)
