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
- ``summary.json``, under ``broker`` and ``counterfactual``: forced volume and value,
  accounts liquidated, amplification, broker shortfall and max drawdown, each computed the
  same way for the two runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from brokers.engine import Broker

SELL = 65  # ord("A"): the aggressor side of a sell print


def load_population(path: Path, instruments, seed: int):
    """A population from a CSV of accounts or a TOML spec synthesised from daily bars."""
    from brokers.population import load_population_csv, synthesize_population

    if path.suffix.lower() == ".toml":
        return synthesize_population(path, instruments, seed)
    return load_population_csv(path, instruments)


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
    """The broker's figures for one run; ``trades`` are the run's trade prints."""
    forced = broker.forced_orders()
    accounts = broker.accounts()
    # the tape's own sell volume: prints of history whose aggressor sold
    own_sells = int(trades.loc[(trades.source == "history") | (trades.source == 0)]
                    .query("side == @SELL")["size"].sum()) if len(trades) else 0
    filled = forced.filled_qty.to_numpy(dtype=np.int64) if len(forced) else np.zeros(0, int)
    value = float(np.nansum(forced.filled_qty * forced.avg_price)) if len(forced) else 0.0
    return {
        "forced_orders": len(forced),
        "forced_qty_ordered": int(forced.qty.sum()) if len(forced) else 0,
        "forced_volume": int(filled.sum()),
        "forced_value": value,
        "accounts_breached": int(forced.account_id.nunique()) if len(forced) else 0,
        "accounts_liquidated": int(forced.account_id[filled > 0].nunique())
        if len(forced) else 0,
        "max_generation": int(forced.generation.max()) if len(forced) else -1,
        "tape_sell_volume": own_sells,
        "amplification": (float(filled.sum()) / own_sells) if own_sells else None,
        "broker_shortfall": int(accounts.shortfall.sum()),
        "accounts_wiped_out": int((accounts.shortfall > 0).sum()),
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
