"""Writes the two example populations of the small-cap CFD unwind scenario (docs/brokers.md):
2,000 CFD accounts on SYNTH-SMALL bought at 6,000 won on 2024-01-02, heavily leveraged
(3 million shares, 40-42% margin) or lightly (300,000 shares, 80-90% margin). Seeded: run it
again and the files come out the same.

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


if __name__ == "__main__":
    population(3_000_000, (0.40, 0.42), 1).to_csv(HERE / "unwind-heavy.csv", index=False)
    population(300_000, (0.80, 0.90), 2).to_csv(HERE / "unwind-light.csv", index=False)
