"""Fingerprints of what the replay produces, to show a change of the code's shape left its
results alone: the demo's run directories and the benchmarks' scenarios, each table hashed.

    .venv/bin/python -m bench.fingerprint OUT.json [--demo DIR]
    .venv/bin/python -m bench.fingerprint --compare BEFORE.json AFTER.json

A Parquet table is hashed on its data (schema and columns, in Arrow IPC form) without its
metadata, which carries the run's id; a JSON file on its content without the run's id,
timings, process ids, code versions, the output folder's own path (in a table's text
columns too) and the repository's (the shipped example populations). ``report.html`` and
``comparison.html`` are drawn from those tables and carry the run's id, so they are not
hashed. The scenarios are the benchmarks' (bench/test_bench_*.py) on one synthetic KRX
large-cap day: the bare replay with 40 sweeps, the KRX venue, 10^6 ``instant`` accounts that
never breach and 20,000 that do, and a strategy subscribed to every trade.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

VOLATILE = ("run_id", "seconds", "per_second", "versions", "wall", "created", "pid")


def _table_hash(table: pa.Table, root: str | None = None) -> str:
    table = table.replace_schema_metadata(None).combine_chunks()  # however it was written
    if root is not None:  # paths inside the output folder, as the folder's own name
        for i, f in enumerate(table.schema):
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
                table = table.set_column(i, f.name, pa.array(
                    [None if v is None else v.replace(root, "<OUT>")
                     for v in table.column(i).to_pylist()], f.type))
    table = pa.Table.from_arrays(table.columns, schema=pa.schema(
        [f.remove_metadata() for f in table.schema]))
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return hashlib.sha256(sink.getvalue()).hexdigest()


REPO = str(Path(__file__).resolve().parents[1])


def _clean(obj, root: str):
    if isinstance(obj, dict):
        return {k: _clean(v, root) for k, v in obj.items()
                if not any(word in k for word in VOLATILE)}
    if isinstance(obj, list):
        return [_clean(v, root) for v in obj]
    if isinstance(obj, str):
        return obj.replace(root, "<OUT>").replace(REPO, "<REPO>")
    return obj


def directory_hashes(root: Path) -> dict[str, str]:
    """Every Parquet and JSON file under ``root``, by relative path."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.suffix == ".parquet":
            out[rel] = _table_hash(pq.read_table(path), str(root))
        elif path.suffix == ".json":
            data = _clean(json.loads(path.read_text()), str(root))
            out[rel] = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
        elif path.suffix == ".csv":
            text = path.read_text().replace(str(root), "<OUT>")
            out[rel] = hashlib.sha256(text.encode()).hexdigest()
    return out


def _frame_hash(frame: pd.DataFrame) -> str:
    return _table_hash(pa.Table.from_pandas(frame.reset_index(drop=True),
                                            preserve_index=False))


def _result_hashes(result, extra: dict | None = None) -> dict[str, str]:
    out = {name: _frame_hash(getattr(result, name))
           for name in ("fills", "trades", "top_of_book", "injected", "venue_events",
                        "sessions", "unfilled")}
    out["counters"] = hashlib.sha256(json.dumps(result.counters, sort_keys=True)
                                     .encode()).hexdigest()
    for k, v in (extra or {}).items():
        out[k] = _frame_hash(v) if isinstance(v, pd.DataFrame) else str(v)
    return out


def scenario_hashes() -> dict[str, dict[str, str]]:
    """The benchmarks' scenarios on one synthetic large-cap day (seed 1)."""
    from brokers.engine import BP, Broker
    from brokers.population import KIND_CODES, Population
    from brokers.rules import load_rules
    from replay.engine import InjectedOrders, Replay
    from replay.synth import INSTRUMENT_ID, synthesize
    from replay.tape import ASK, BID, TRADE, Events
    from strategies.base import Strategy, attach_strategy
    try:
        from venues.codes import ORDER_TYPES
    except ImportError:  # before the codes had their module
        from venues.matching import ORDER_TYPES

    day = date(2024, 1, 2)
    chunks = list(synthesize("krx-largecap", 1, 1, day))
    events, instruments = Events.concat([ev for ev, _ in chunks]), chunks[0][1]
    out = {}

    n = 40
    ts = np.linspace(events.ts[0], events.ts[-1], n + 2)[1:-1].astype(np.int64)
    sweeps = InjectedOrders(ts, np.full(n, int(events.instrument[0])),
                            np.where(np.arange(n) % 2 == 0, ASK, BID),
                            np.full(n, ORDER_TYPES["market"]), np.zeros(n, np.int64),
                            np.full(n, 20_000))
    out["bare_sweeps"] = _result_hashes(Replay(instruments, "absolute").run([events],
                                                                            sweeps))
    out["krx_venue"] = _result_hashes(Replay(instruments, "relative", venue="krx",
                                             seed=1).run([events]))

    rules = load_rules("instant")
    low = int(events.price[events.action == TRADE].min())
    high = int(events.price[events.action == TRADE].max())
    entry = instruments[INSTRUMENT_ID].prev_close_units

    def accounts(k: int, lo: float, hi: float, seed: int) -> Population:
        rng = np.random.default_rng(seed)
        shares = rng.integers(10, 2_000, k)
        breach = np.floor(rng.uniform(lo, hi, k)).astype(np.int64)
        m_bp = int(round(rules.maintenance_ratio * BP))
        return Population(
            account_id=np.arange(1, k + 1), kind=np.full(k, KIND_CODES["instant"]),
            cash=np.zeros(k, np.int64), loan=breach * shares * BP // m_bp,
            pos_account=np.arange(k), pos_instrument=np.full(k, INSTRUMENT_ID),
            pos_shares=shares, pos_entry=np.full(k, entry),
            pos_trade_date=np.full(k, np.datetime64(day, "D").astype(np.int64)))

    for name, pop in (("broker_1e6_quiet", accounts(1_000_000, 0.5 * low, 0.9 * low, 1)),
                      ("broker_2e4_selling", accounts(20_000, low, 0.5 * (low + high), 2))):
        rp = Replay(instruments)
        broker = Broker(rules, pop).attach(rp)
        result = rp.run([events])
        out[name] = _result_hashes(result, {"forced_orders": broker.forced_orders(),
                                            "accounts": broker.accounts()})

    class Trades(Strategy):
        def on_start(self):
            self.seen = 0
            self.subscribe_trades("SYNTH-LARGE")

        def on_trade(self, trade):
            self.seen += 1

    class Bars(Strategy):
        def on_start(self):
            self.bars = self.books = 0
            self.subscribe_bars("SYNTH-LARGE", "1min")
            self.subscribe_book("SYNTH-LARGE", "1s", depth=5)

        def on_bar(self, bar):
            self.bars += 1

        def on_book(self, book):
            self.books += 1

    for name, cls in (("strategy_trades", Trades), ("strategy_bars", Bars)):
        rp = Replay(instruments, "relative", venue="krx", seed=1)
        strategy = cls()
        attach_strategy(rp, strategy)
        result = rp.run([events])
        calls = {k: v for k, v in vars(strategy).items() if k in ("seen", "bars", "books")}
        out[name] = _result_hashes(result, {"callbacks": json.dumps(calls, sort_keys=True)})
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        before, after = (json.loads(Path(p).read_text()) for p in argv[1:3])
        differ = 0
        for group in sorted(set(before) | set(after)):
            a, b = before.get(group, {}), after.get(group, {})
            for key in sorted(set(a) | set(b)):
                same = a.get(key) == b.get(key)
                differ += not same
                print(f"{'same ' if same else 'DIFF '} {group}/{key} {a.get(key, '-')[:16]} "
                      f"{b.get(key, '-')[:16]}")
        print(f"{differ} differ")
        return 1 if differ else 0
    out_path = Path(argv[0])
    result: dict[str, dict[str, str]] = {}
    if "--demo" in argv:
        demo = Path(argv[argv.index("--demo") + 1])
    else:
        demo = Path(tempfile.mkdtemp()) / "demo"
        subprocess.run([str(Path(sys.executable).parent / "cascade"), "demo", "-o", str(demo)],
                       check=True)
    result["demo"] = directory_hashes(demo)
    result.update(scenario_hashes())
    out_path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
