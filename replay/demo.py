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
   a 130% maintenance ratio, each in its own process.

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

EXAMPLES = Path(__file__).resolve().parents[1] / "brokers" / "examples"

SMALL = {"profile": "krx-smallcap", "days": 5, "seed": 5, "shocks": {1: -0.12}}
LARGE = {"profile": "krx-largecap", "days": 4, "seed": 3, "shocks": {1: -0.17}}
SUMMARY = "demo-summary.json"
#: What the demo writes into its output directory, and all it may find there.
OWN = frozenset({"smallcap-unwind.parquet", "largecap-crash.parquet", "smallcap-unwind",
                 "largecap-crash", "compare-140-130", SUMMARY})


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
    for name in ("smallcap-unwind", "largecap-crash"):
        console.print(f"  {summary[name]['report']}", highlight=False, soft_wrap=True)
    console.print(f"  {summary['compare']['html']}", highlight=False, soft_wrap=True)
