"""A replay with a broker attached, and its counterfactual, written to one run directory.

``cascade replay TAPE --broker PRESET --population FILE`` runs the tape twice with the same
seed and injected orders. The first run has the broker's forced orders. The second, the
counterfactual, has the broker evaluating the same accounts but sending nothing. The
difference between the two is the liquidation-induced move.

Written beside the replay's own tables:

- ``forced_orders.parquet``: ts, account_id, instrument, trigger, ratio_at_trigger,
  generation, qty, filled_qty, avg_price.
- ``accounts.parquet``: each account's state at each close (KRX venue), or at the end of
  the run.
- ``counterfactual_trades.parquet``: the counterfactual run's trade prints, for the price
  path without the forced sales.
- ``summary.json``, under ``broker`` and ``counterfactual``: forced volume and value, the
  accounts managed, ignored (other kinds), called, force-ordered, force-sold and wiped out
  (:func:`metrics`), amplification, broker shortfall and max drawdown, each computed the
  same way for the two runs.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from brokers.engine import Broker
from brokers.rules import KINDS

if TYPE_CHECKING:
    from brokers.population import Population
    from replay.tape import Tape

SELL = 65  # ord("A"): the aggressor side of a sell print


def load_population(path: Path, tape: Tape, seed: int) -> Population:
    """A population from a CSV of accounts or a TOML spec synthesised from daily bars, for
    a replay of ``tape``: every position must be dated on or before the tape's first day
    (:func:`tape_first_day`), or the load stops naming the row (CSV) or the key (spec)."""
    from brokers.population import load_population_csv, synthesize_population

    path = Path(path)
    first = tape_first_day(tape)
    if path.suffix.lower() == ".toml":
        return synthesize_population(path, tape.instruments, seed, held_by=first)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such population file")
    return load_population_csv(path, tape.instruments, held_by=first)


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


def metrics(broker: Broker, trades: pd.DataFrame) -> dict[str, Any]:
    """The broker's figures for one run; ``trades`` are the run's trade prints.

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
    # the tape's own sell volume: prints of history whose aggressor sold
    own_sells = int(trades.loc[(trades.source == "history") | (trades.source == 0)]
                    .query("side == @SELL")["size"].sum()) if len(trades) else 0
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
        "max_drawdown": max_drawdown(trades),
    }


def write_broker_tables(run_dir: Path, broker: Broker) -> None:
    forced = broker.forced_orders()
    pq.write_table(pa.Table.from_pandas(forced, preserve_index=False),
                   run_dir / "forced_orders.parquet")
    snaps = broker.snapshots
    if snaps:
        accounts = pd.concat(snaps, ignore_index=True)
        accounts["state"] = accounts["state"].astype(str)
    else:
        accounts = broker.accounts()
    pq.write_table(pa.Table.from_pandas(accounts, preserve_index=False),
                   run_dir / "accounts.parquet")
