"""A replay with a broker attached, and its counterfactual, written to one run directory.

``cascade replay TAPE --broker PRESET --population FILE`` runs the tape twice with the same
seed and injected orders. The first run has the broker's forced orders. The second, the
counterfactual, has the broker evaluating the same accounts but sending nothing. The
difference between the two is the liquidation-induced move.

Written beside the replay's own tables:

- ``forced_orders.parquet``: ts, account_id, instrument, trigger, ratio_at_trigger,
  generation, qty, filled_qty, avg_price.
- ``accounts.parquet``: each account's state at each close (KRX venue), streamed to disk
  as each close happens (:class:`AccountSnapshots`), or at the end of the run.
- ``counterfactual_trades.parquet``: the counterfactual run's trade prints, for the price
  path without the forced sales, streamed as the replay flushes them
  (:class:`CounterfactualTrades`).
- ``summary.json``, under ``broker`` and ``counterfactual``: forced volume and value, the
  accounts managed, ignored (other kinds), called, force-ordered, force-sold and wiped out
  (:func:`metrics`), amplification, broker shortfall and max drawdown, each computed the
  same way for the two runs, reading the trade prints back a batch at a time.

So memory does not grow with the tape's length: no close's snapshot and no trade print is
held after it is written.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from brokers.engine import Broker
from brokers.rules import KINDS
from replay.engine import TRADE_NAMES
from replay.rundir import TableStream, write_parquet
from venues.codes import ASK, SRC_HISTORY
from venues.matching import TRADES

if TYPE_CHECKING:
    from brokers.population import Population
    from replay.tape import Tape

SELL = ASK  # the aggressor side of a sell print


def load_brokers(specs, tape: Tape, seed: int, splits: dict[str, Any] | None = None, *,
                 cache: dict[Any, Any] | None = None,
                 rekinded: list[bool] | None = None) -> list[tuple[str, Any, Population]]:
    """(label, rules, population) per broker of ``specs`` (:class:`replay.runner.BrokerSpec`):
    each population file is read once; a broker without one shares the first. Labels are the
    rules' names, made unique with -2, -3. Two brokers of one kind on the same accounts are
    refused: every account has one broker (docs/brokers.md: several brokers). ``splits``
    receives, per spec with a ``[market]`` table, how its balances were split
    (:func:`split_record`). ``cache``, a dict kept by the caller for this tape, holds the
    populations loaded (by path and seed) for the next call: a population is not changed
    by a broker holding it (brokers.engine.Broker copies an array before changing it).
    ``rekinded`` receives, per spec, whether its population's accounts were taken as its
    rules' kind (``spec.rekind`` and none of that kind held)."""
    from brokers.population import KIND_CODES
    from brokers.rules import load_rules

    loaded: dict[Path, Population] = {}
    out: list[tuple[str, Any, Population]] = []
    first = Path(specs[0].population) if specs else None
    seen: dict[tuple[Path, str], str] = {}
    for spec in specs:
        path = Path(spec.population) if spec.population is not None else first
        rules = load_rules(spec.rules, list(spec.overrides))
        if path not in loaded and cache is not None and (str(path), seed) in cache:
            loaded[path], split = cache[str(path), seed]
            if split is not None and splits is not None:
                splits[str(path)] = split
        elif path not in loaded:
            own: dict[str, Any] = {}
            loaded[path] = load_population(path, tape, seed, own)
            if splits is not None:
                splits.update(own)
            if cache is not None:
                cache[str(path), seed] = (loaded[path], own.get(str(path)))
        pop = loaded[path]
        applied = spec.rekind and not (np.asarray(pop.kind) == KIND_CODES[rules.kind]).any()
        if applied:
            from brokers.population import rekind

            pop = rekind(pop, rules.kind)
        if rekinded is not None:
            rekinded.append(bool(applied))
        label, k = rules.name, 2
        while label in {o[0] for o in out}:
            label, k = f"{rules.name}-{k}", k + 1
        if (path, rules.kind) in seen:
            raise ValueError(f"brokers {seen[path, rules.kind]!r} and {label!r} both take the "
                             f"{rules.kind} accounts of {path}: give each its own population")
        seen[path, rules.kind] = label
        out.append((label, rules, pop))
    return out


def load_population(path: Path, tape: Tape, seed: int,
                    splits: dict[str, Any] | None = None) -> Population:
    """A population from a CSV of accounts or a TOML spec synthesised from daily bars, for
    a replay of ``tape``: every position must be dated on or before the tape's first day
    (:func:`tape_first_day`), or the load stops naming the row (CSV) or the key (spec).
    A spec with a ``[market]`` table records in ``splits`` how it split its balances."""
    from replay.loaders.population import (
        load_population_csv,
        synthesize_market_population,
        synthesize_population,
    )

    path = Path(path)
    first = getattr(tape, "first_day", None) or tape_first_day(tape)
    if path.suffix.lower() == ".toml":
        if splits is not None and _is_market_spec(path):
            pop, split = synthesize_market_population(path, tape.instruments, seed,
                                                      held_by=first)
            splits[str(path)] = split_record(split)
            return pop
        return synthesize_population(path, tape.instruments, seed, held_by=first)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such population file")
    return load_population_csv(path, tape.instruments, held_by=first)


def _is_market_spec(path: Path) -> bool:
    from brokers.rules import read_toml

    return "market" in read_toml(path)


def split_record(split: Any) -> dict[str, Any]:
    """summary.json's record of a market population's split
    (:class:`brokers.synthetic_population.MarketSplit`): per market its balances and how
    they were laid (the concentration group's share among them), the accounts drawn, and
    every name holding a balance (code, market, rule, credit, 미수 and CFD in won)."""
    names = split.names
    held = names[names[["credit_krw", "misu_krw", "cfd_krw"]].sum(axis=1) > 0]
    columns = ["code", "market", "rule", "credit_krw", "misu_krw", "cfd_krw"]
    rows = [[str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5])]
            for r in held[columns].itertuples(index=False)]
    return {**split.summary(), "names": {"columns": columns, "rows": rows}}


def tape_first_day(tape: Tape) -> date | None:
    """The trading day of the tape's first event: its Seoul date when every instrument is
    at the KRX (docs/reference/krx.md: sessions are in KST), else its UTC date. None for an
    empty tape."""
    import pyarrow.parquet as pq

    from venues.krx.session import seoul_date

    batch = next(pq.ParquetFile(tape.path).iter_batches(batch_size=1, columns=["ts"]), None)
    if batch is None or not batch.num_rows:
        return None
    ts = int(batch.column(0)[0].as_py())
    if all(i.venue == "XKRX" for i in tape.instruments):
        return seoul_date(ts)
    return date(1970, 1, 1) + timedelta(days=ts // 86_400_000_000_000)


#: Trade prints read back per batch when the figures are computed.
BATCH_ROWS = 1 << 20


def max_drawdown(trades: pd.DataFrame) -> float:
    """The largest fall from a running peak of the trade price, as a fraction, over the
    instruments (0 when nothing traded)."""
    worst = 0.0
    for _, g in trades.groupby("instrument"):
        px = g.sort_values("ts", kind="stable").price.to_numpy(dtype=float)
        if len(px):
            peak = np.maximum.accumulate(px)
            worst = max(worst, float(np.max(1.0 - px / peak)))
    return worst


class TradeFigures:
    """The tape's own sell volume (prints of history whose aggressor sold) and the max
    drawdown (:func:`max_drawdown`) of trade prints given a batch at a time, in time order:
    memory does not grow with the number of prints. Fed batch by batch or whole, the
    figures are the same numbers."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self.worst = 0.0
        self.own_sells = 0

    def add(self, ts: np.ndarray, inst: np.ndarray, price: np.ndarray, size: np.ndarray,
            side: np.ndarray, history: np.ndarray) -> None:
        if not len(ts):
            return
        self.own_sells += int(size[history & (side == SELL)].sum())
        px = price.astype(float)
        order = np.argsort(inst, kind="stable")
        inst, px = inst[order], px[order]
        cuts = np.flatnonzero(np.diff(inst)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(inst)], strict=True):
            k = int(inst[lo])
            peak = np.maximum.accumulate(np.r_[self.peaks.get(k, -np.inf), px[lo:hi]])[1:]
            self.peaks[k] = float(peak[-1])
            self.worst = max(self.worst, float(np.max(1.0 - px[lo:hi] / peak)))

    def add_rows(self, rows: np.ndarray) -> None:
        """Report rows of the trades table (:data:`replay.engine.TRADE_NAMES` columns)."""
        ts, inst, price, size, side, source = (rows[:, j] for j in range(6))
        self.add(ts, inst, price, size, side, source == SRC_HISTORY)

    @property
    def figures(self) -> tuple[int, float]:
        return self.own_sells, self.worst


def trade_figures(path: Path) -> tuple[int, float]:
    """:class:`TradeFigures` of the trade prints in ``path``, read a batch at a time. The
    prints are in time order (the replay writes them as they happen); if they are not, the
    file is read whole."""
    f = pq.ParquetFile(path)
    acc, last_ts = TradeFigures(), np.iinfo(np.int64).min
    for batch in f.iter_batches(BATCH_ROWS, columns=["ts", "instrument", "price", "size",
                                                      "side", "source"]):
        ts = batch.column("ts").to_numpy()
        if len(ts) == 0:
            continue
        if ts[0] < last_ts or np.any(np.diff(ts) < 0):
            frame = pq.read_table(path).to_pandas()
            history = (frame.source == "history") | (frame.source == 0)
            return (int(frame.loc[history & (frame.side == SELL), "size"].sum()),
                    max_drawdown(frame))
        last_ts = int(ts[-1])
        source = batch.column("source")
        if pa.types.is_dictionary(source.type):
            source = source.cast(pa.string())
            history = pc.equal(source, "history").to_numpy(zero_copy_only=False)
        else:
            history = source.to_numpy() == SRC_HISTORY
        acc.add(ts, batch.column("instrument").to_numpy(), batch.column("price").to_numpy(),
                batch.column("size").to_numpy(), batch.column("side").to_numpy(), history)
    return acc.figures


def metrics(broker: Broker, trades: tuple[int, float]) -> dict[str, Any]:
    """The broker's figures for one run; ``trades`` is the run's own sell volume and max
    drawdown (:func:`trade_figures` of its trade prints file, or :class:`TradeFigures`).

    The account counts (docs/brokers.md, "What the summary counts"), each over the accounts
    of the broker's kind, each counted once however often it happened:

    - ``accounts_managed``: accounts of the broker's kind (with a margin strategy, its
      account too); ``accounts_ignored``: the population's accounts of other kinds, per kind,
      which this broker does not handle;
    - ``accounts_called``: breached their rule at least once (a margin call at a close, a
      미수 purchase unpaid on its due day, a matured loan, an intraday breach);
    - ``accounts_force_ordered``: given at least one forced order (a call not cured by its
      deadline, or an intraday breach); in the counterfactual, the orders it would have sent;
    - ``accounts_force_sold``: at least one forced order filled, in part or whole;
    - ``accounts_wiped_out``: sold out at the end with a loan left (the broker's shortfall).
    """
    forced = broker.forced_orders()
    accounts = broker.accounts()
    pop = broker.population
    own_sells, drawdown = trades
    filled = forced.filled_qty.to_numpy(dtype=np.int64) if len(forced) else np.zeros(0, int)
    value = float(np.nansum(forced.filled_qty * forced.avg_price)) if len(forced) else 0.0
    kinds = np.bincount(np.asarray(pop.kind)[~broker.managed], minlength=len(KINDS))
    return {
        "kind": broker.rules.kind,
        "forced_orders": len(forced),
        "forced_qty_ordered": int(forced.qty.sum()) if len(forced) else 0,
        "forced_volume": int(filled.sum()),
        "forced_value": value,
        "accounts_managed": int(broker.managed.sum()),
        "accounts_ignored": {KINDS[k]: int(c) for k, c in enumerate(kinds) if c},
        "accounts_called": int((broker.called & broker.managed).sum()),
        "accounts_force_ordered": int(forced.account_id.nunique()) if len(forced) else 0,
        "accounts_force_sold": int(forced.account_id[filled > 0].nunique())
        if len(forced) else 0,
        "accounts_wiped_out": int((accounts.shortfall > 0).sum()),
        "max_generation": int(forced.generation.max()) if len(forced) else -1,
        "tape_sell_volume": own_sells,
        "amplification": (float(filled.sum()) / own_sells) if own_sells else None,
        "broker_shortfall": int(accounts.shortfall.sum()),
        "max_drawdown": drawdown,
    }


class AccountSnapshots:
    """A broker's ``snapshot_sink``: each close's snapshot appended to accounts.parquet as it
    happens, then dropped; with a ``label`` (a run of several brokers) each row names its
    broker in a ``broker`` column."""

    def __init__(self, stream: TableStream, label: str | None = None) -> None:
        self.stream = stream
        self.label = label

    def __call__(self, snapshot: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(snapshot, preserve_index=False)
        i = table.schema.get_field_index("state")
        table = table.set_column(i, "state", table.column(i).cast(pa.string()))
        if self.label is not None:
            table = table.append_column("broker", pa.array([self.label] * len(table),
                                                           pa.string()))
        self.stream.write(table.replace_schema_metadata(None))


def discard_snapshot(snapshot: pd.DataFrame) -> None:
    """The counterfactual broker's ``snapshot_sink``: its snapshots are not written."""


class CounterfactualTrades:
    """The counterfactual replay's report sink: its trade prints streamed to
    counterfactual_trades.parquet (ts, instrument, price, size, side, source), its fills and
    top of book dropped."""

    def __init__(self, stream: TableStream) -> None:
        self.stream = stream

    def append(self, table: int, rows: np.ndarray) -> None:
        if table == TRADES:
            self.stream.write(pa.table({name: pa.array(np.ascontiguousarray(rows[:, j]))
                                        for j, name in enumerate(TRADE_NAMES)}))

    def close(self) -> None:
        if not self.stream.rows:  # no print: still a table, with its columns
            self.append(TRADES, np.zeros((0, len(TRADE_NAMES)), np.int64))
        self.stream.close()


def _labelled(frames: list[pd.DataFrame], labels: list[str | None]) -> pd.DataFrame:
    """One frame of several brokers' rows, each naming its broker (one broker: as it is)."""
    if labels == [None]:
        return frames[0]
    named = [f.assign(broker=label) for f, label in zip(frames, labels, strict=True)]
    rows = [f for f in named if len(f)]  # an empty frame would blur the columns' types
    return pd.concat(rows, ignore_index=True) if rows else named[0]


def write_broker_tables(run_dir: Path, brokers: list[Broker], labels: list[str | None],
                        accounts: TableStream, run_id: str) -> None:
    """forced_orders.parquet (several brokers: in time order, each row naming its broker),
    and accounts.parquet: the snapshots streamed at each close, or the accounts at the end
    of the run when there was no close (generic venue)."""
    forced = _labelled([b.forced_orders() for b in brokers], labels)
    if labels != [None]:
        forced = forced.sort_values("ts", kind="stable", ignore_index=True)
    write_parquet(run_dir / "forced_orders.parquet",
                  pa.Table.from_pandas(forced, preserve_index=False), run_id)
    if not accounts.close():
        frame = _labelled([b.accounts() for b in brokers], labels)
        write_parquet(run_dir / "accounts.parquet",
                      pa.Table.from_pandas(frame, preserve_index=False), run_id)


#: Figures of one broker that add up over the brokers of a run (the rest are the market's:
#: the tape's own sell volume and the drawdown, the same for every broker).
_ADDED = ("forced_orders", "forced_qty_ordered", "forced_volume", "forced_value",
          "accounts_managed", "accounts_called", "accounts_force_ordered",
          "accounts_force_sold", "accounts_wiped_out", "broker_shortfall")


def total(sections: list[dict[str, Any]], brokers: list[Broker]) -> dict[str, Any]:
    """The figures of several brokers' sections as one: counts and amounts added (every
    account has one broker), the highest generation, the market's own figures as they are,
    and the accounts no broker of the run handles as ``accounts_ignored``."""
    out = {"kind": "+".join(s["kind"] for s in sections)}
    out.update({k: sum(s[k] for s in sections) for k in _ADDED})
    out["max_generation"] = max(s["max_generation"] for s in sections)
    out["tape_sell_volume"] = sections[0]["tape_sell_volume"]
    own = out["tape_sell_volume"]
    out["amplification"] = float(out["forced_volume"]) / own if own else None
    out["max_drawdown"] = sections[0]["max_drawdown"]
    handled: dict[int, tuple[Any, np.ndarray]] = {}
    for b in brokers:
        pop, mask = handled.get(id(b.population), (b.population, np.zeros(len(
            b.population.account_id), bool)))
        handled[id(b.population)] = (pop, mask | b.managed)
    kinds = np.zeros(len(KINDS), np.int64)
    for pop, mask in handled.values():
        kinds += np.bincount(np.asarray(pop.kind)[~mask], minlength=len(KINDS))
    out["accounts_ignored"] = {KINDS[k]: int(c) for k, c in enumerate(kinds) if c}
    return {k: out[k] for k in sections[0]}  # the order of one broker's section


def broker_sections(brokers: list[Broker], cf_brokers: list[Broker],
                    labels: list[str | None], trades: tuple[int, float],
                    cf_trades: tuple[int, float]) -> dict[str, Any]:
    """summary.json's broker figures: ``broker`` and ``counterfactual`` (several brokers:
    their totals), and with several brokers ``brokers``, each broker's two sections by
    label. ``trades`` and ``cf_trades``: each run's own sell volume and max drawdown
    (:class:`TradeFigures`)."""
    run = [metrics(b, trades) for b in brokers]
    cf = [metrics(b, cf_trades) for b in cf_brokers]
    if labels == [None]:
        return {"broker": run[0], "counterfactual": cf[0]}
    return {"broker": total(run, brokers), "counterfactual": total(cf, cf_brokers),
            "brokers": {label: {"broker": r, "counterfactual": c}
                        for label, r, c in zip(labels, run, cf, strict=True)}}
