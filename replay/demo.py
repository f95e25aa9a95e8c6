"""The demo: a synthetic KRX small-cap day hit by a large injected market sell, replayed in
the three tape modes and run in generative mode, so the difference between transient,
decaying, permanent and flow-driven impact shows; then the same sell at the KRX venue,
where it meets the VI and the lower limit."""

from __future__ import annotations

import json
from datetime import date, time
from pathlib import Path

import numpy as np
from rich.console import Console

from replay.engine import InjectedOrders, Replay
from replay.generative import run_generative
from replay.results import write_run
from replay.synth import write_synthetic_tape
from replay.tape import ASK, Tape
from venues.krx.calendar import trading_days
from venues.krx.session import seoul_ns
from venues.matching import ORDER_TYPES


def run_demo(output: Path, console: Console, seed: int = 7) -> dict:
    output.mkdir(parents=True, exist_ok=True)
    tape_path = output / "krx-smallcap.parquet"
    console.print("synthesising one KRX small-cap session ...")
    write_synthetic_tape(tape_path, "krx-smallcap", days=1, seed=seed)
    tape = Tape(tape_path)
    first = next(tape.chunks(1 << 16))
    # 10:00 Seoul, an hour into continuous trading: a market sell of 20x the median order
    ts = seoul_ns(trading_days(date(2024, 1, 2), 1)[0], time(10, 0))
    size = 5_000  # about half the resting bids of a small-cap book
    sell = InjectedOrders(np.array([ts]), np.array([int(first.instrument[0])]), np.array([ASK]),
                          np.array([ORDER_TYPES["market"]]), np.array([0]), np.array([size]))
    summary = {}
    for mode in ("absolute", "relative", "propagator"):
        result = Replay(tape.instruments, mode).run(tape.chunks(), sell)
        run_dir = write_run(result, output / f"run-{mode}", seed=seed,
                            config={"tape": str(tape_path), "mode": mode, "sell_size": size})
        close = int(result.trades.price.iloc[-1]) if len(result.trades) else None
        summary[mode] = {"events": result.events, "seconds": round(result.wall_seconds, 3),
                         "sell_filled": int(result.injected.filled.iloc[0]),
                         "last_price": close, "run_dir": str(run_dir)}
        console.print(f"{mode:>10}: {result.events:,} events in {result.wall_seconds:.2f}s, "
                      f"last price {close}, results in {run_dir}/")
    krx = Replay(tape.instruments, "relative", venue="krx",
                 seed=tape.session_seed or 0).run(tape.chunks(), sell)
    run_dir = write_run(krx, output / "run-krx", seed=tape.session_seed or 0,
                        config={"tape": str(tape_path), "mode": "relative", "venue": "krx",
                                "sell_size": size})
    vis = int(krx.venue_events.kind.str.startswith("vi").sum())
    summary["krx"] = {"events": krx.events, "seconds": round(krx.wall_seconds, 3),
                      "sell_filled": int(krx.injected.filled.iloc[0]),
                      "volatility_interruptions": vis, "close": int(krx.sessions.close.iloc[0]),
                      "run_dir": str(run_dir)}
    console.print(f"{'krx venue':>10}: the same sell (relative mode): {vis} VI(s), close "
                  f"{int(krx.sessions.close.iloc[0])}, results in {run_dir}/")
    gen = run_generative("krx-smallcap", days=1, seed=seed, injected=sell)
    run_dir = write_run(gen, output / "run-generative", seed=seed,
                        config={"mode": "generative", "profile": "krx-smallcap",
                                "sell_size": size})
    close = int(gen.trades.price.iloc[-1])
    summary["generative"] = {"events": gen.events, "seconds": round(gen.wall_seconds, 3),
                             "sell_filled": int(gen.injected.filled.iloc[0]),
                             "last_price": close, "run_dir": str(run_dir)}
    console.print(f"{'generative':>10}: {gen.events:,} flow events in {gen.wall_seconds:.2f}s, "
                  f"last price {close}, results in {run_dir}/")
    (output / "demo-summary.json").write_text(json.dumps(summary, indent=2))
    console.print(f"done: open {output}/demo-summary.json and the run directories beside it")
    return summary
