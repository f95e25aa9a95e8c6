"""Writes the example populations of the demo's scenarios (docs/brokers.md), seeded: run it
again and the files come out the same.

- The small-cap CFD unwind: 2,000 CFD accounts on SYNTH-SMALL bought at 6,000 won on
  2024-01-02, heavily leveraged (3 million shares, 40-42% margin, ``unwind-heavy.csv``) or
  lightly (300,000 shares, 80-90% margin, ``unwind-light.csv``).
- The large-cap crash: 5,000 신용융자 accounts on SYNTH-LARGE (20 million shares, about
  700 billion won of loans) bought on
  credit in the rally of the last two months of 2023 at 62,000-80,000 won with 40-60% down,
  so at the 70,000 close of 2023 every one is above 140%, the most leveraged near it
  (``crash-credit.csv``).

    python brokers/examples/make_unwind_populations.py
"""

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent


def population(total_shares: int, margin: tuple[float, float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 2_000
    shares = np.maximum(1, (rng.dirichlet(np.ones(n)) * total_shares).astype(np.int64))
    entry = 6_000
    down = rng.uniform(*margin, n)
    loan = ((1.0 - down) * shares * entry).astype(np.int64)
    return pd.DataFrame({"account_id": np.arange(1, n + 1), "kind": "cfd",
                         "instrument": "SYNTH-SMALL", "shares": shares, "entry_price": entry,
                         "cash": 0, "loan": loan, "trade_date": "2024-01-02"})


def credit_population(total_shares: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 5_000
    shares = np.maximum(1, (rng.dirichlet(np.ones(n)) * total_shares).astype(np.int64))
    entry = (rng.uniform(62_000, 80_000, n) // 100 * 100).astype(np.int64)  # tick 100
    down = rng.uniform(0.40, 0.60, n)
    loan = ((1.0 - down) * shares * entry).astype(np.int64)
    days = pd.bdate_range("2023-11-01", "2023-12-28")
    trade = days[rng.integers(0, len(days), n)].strftime("%Y-%m-%d")
    return pd.DataFrame({"account_id": np.arange(1, n + 1), "kind": "credit",
                         "instrument": "SYNTH-LARGE", "shares": shares, "entry_price": entry,
                         "cash": 0, "loan": loan, "trade_date": trade})


if __name__ == "__main__":
    population(3_000_000, (0.40, 0.42), 1).to_csv(HERE / "unwind-heavy.csv", index=False)
    population(300_000, (0.80, 0.90), 2).to_csv(HERE / "unwind-light.csv", index=False)
    credit_population(20_000_000, 3).to_csv(HERE / "crash-credit.csv", index=False)
