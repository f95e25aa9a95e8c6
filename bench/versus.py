"""Two checkouts of the code timed on the same scenarios in alternating rounds, each round a
fresh process per checkout, so that the machine's drift hits both alike.

    .venv/bin/python -m bench.versus OLD_CHECKOUT NEW_CHECKOUT [--rounds 5]

The scenarios are the benchmarks' (bench/test_bench_*.py) on one synthetic KRX large-cap day
(about 3.6 M L3 events): the bare replay, the KRX venue, 10^6 ``instant`` accounts that
never breach, and a strategy subscribed to every trade. Each process times the replay only
(``Replay.run``, after a warm-up run that loads the compiled kernels); the table prints each
scenario's best round per checkout and their ratio. Timings are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCENARIOS = ("bare", "krx_venue", "broker_1e6", "strategy_trades")

_CHILD = r'''
import json, sys, time
from datetime import date
import numpy as np
from replay.engine import Replay
from replay.synth import INSTRUMENT_ID, synthesize
from replay.tape import TRADE, Events

name = sys.argv[1]
day = date(2024, 1, 2)
chunks = list(synthesize("krx-largecap", 1, 1, day))
events, instruments = Events.concat([ev for ev, _ in chunks]), chunks[0][1]


def make():
    if name == "bare":
        return Replay(instruments, "absolute"), None
    if name == "krx_venue":
        return Replay(instruments, "relative", venue="krx", seed=1), None
    if name == "broker_1e6":
        from brokers.engine import BP, Broker
        from brokers.population import KIND_CODES, Population
        from brokers.rules import load_rules
        rules = load_rules("instant")
        low = int(events.price[events.action == TRADE].min())
        n = 1_000_000
        rng = np.random.default_rng(1)
        shares = rng.integers(10, 2_000, n)
        breach = np.floor(rng.uniform(0.5, 0.9, n) * low).astype(np.int64)
        m_bp = int(round(rules.maintenance_ratio * BP))
        pop = Population(
            account_id=np.arange(1, n + 1), kind=np.full(n, KIND_CODES["instant"]),
            cash=np.zeros(n, np.int64), loan=breach * shares * BP // m_bp,
            pos_account=np.arange(n), pos_instrument=np.full(n, INSTRUMENT_ID),
            pos_shares=shares, pos_entry=np.full(n, instruments[INSTRUMENT_ID].prev_close_units),
            pos_trade_date=np.full(n, np.datetime64(day, "D").astype(np.int64)))
        rp = Replay(instruments)
        return rp, (rules, pop)
    from strategies.base import Strategy, attach_strategy

    class Trades(Strategy):
        def on_start(self):
            self.subscribe_trades("SYNTH-LARGE")

    rp = Replay(instruments, "relative", venue="krx", seed=1)
    attach_strategy(rp, Trades())
    return rp, None


def once():
    rp, broker = make()
    if broker is not None:
        from brokers.engine import Broker
        Broker(*broker).attach(rp)
    t0 = time.perf_counter()
    rp.run([events])
    return time.perf_counter() - t0


once()  # load the compiled kernels
print(json.dumps({"seconds": once(), "events": len(events)}))
'''


def run(checkout: Path, scenario: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    out = subprocess.run([sys.executable, "-c", _CHILD, scenario], env=env, cwd=checkout,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds"]


def main(argv: list[str]) -> int:
    old, new = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 5
    best: dict[tuple[str, str], float] = {}
    for r in range(rounds):
        for scenario in SCENARIOS:
            for label, checkout in (("old", old), ("new", new)) if r % 2 == 0 else \
                    (("new", new), ("old", old)):
                s = run(checkout, scenario)
                key = (scenario, label)
                best[key] = min(best.get(key, float("inf")), s)
                print(f"round {r + 1} {scenario:16} {label}: {s:.3f} s", flush=True)
    print(f"\n{'scenario':16} {'old best s':>10} {'new best s':>10} {'new/old':>8}")
    for scenario in SCENARIOS:
        o, n = best[scenario, "old"], best[scenario, "new"]
        print(f"{scenario:16} {o:>10.3f} {n:>10.3f} {n / o:>8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
