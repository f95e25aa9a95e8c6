"""The liquidation engine: a broker attached to a replay, selling out accounts that breach.

This first part implements intraday rules (``valuation = "last"``: the ``instant`` preset):
each single-name account's trigger price is computed in closed form and the triggers are
kept sorted per instrument, so the compiled loop only compares the last price with one
number per instrument (``I_WATCH``: the highest trigger not yet breached) and stops when it
is reached. The broker then finds every account breached at that price by walking the
sorted triggers (no scan of the population), and submits their forced orders, which go
through the venue like any other order.

Cascade generations: the loop records who set each instrument's last price (``I_LAST_GEN``:
0 for the tape or any order that is not a forced sale, ``k + 1`` for a generation-``k``
forced order); accounts breached at that price get that generation.

Trigger price, integers only: an account with ``shares`` and debt ``loan`` breaches the
maintenance ratio ``m`` when ``shares * P / loan < m``, i.e. ``P * shares * 10_000 <
m_bp * loan`` with ``m_bp = round(m * 10_000)``; the trigger is the highest such price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from venues.book import H_BK_INST, H_BK_TS, I_LAST, I_LAST_GEN, I_WATCH, SIDE_ASK
from venues.matching import MARKET, R_FILLED, R_NOTIONAL

BP = 10_000


def trigger_prices(shares: np.ndarray, debt: np.ndarray, ratio_bp: int) -> np.ndarray:
    """The highest price at which ``shares * P / debt`` is below ``ratio_bp / 10_000``:
    ``ceil(ratio_bp * debt / (shares * BP)) - 1`` (-1 where there is no debt)."""
    shares = np.asarray(shares, np.int64)
    debt = np.asarray(debt, np.int64)
    num = ratio_bp * debt
    den = shares * BP
    t = -((-num) // den) - 1
    return np.where(debt > 0, t, -1)


@dataclass
class _Watch:
    """One instrument's single-name accounts, by trigger price, highest first."""

    rows: np.ndarray  # position rows, sorted by trigger descending
    triggers: np.ndarray
    cursor: int = 0  # rows[:cursor] are breached

    def next_trigger(self) -> int:
        return int(self.triggers[self.cursor]) if self.cursor < len(self.rows) else -1


@dataclass
class Broker:
    """A population under one set of rules (:class:`brokers.rules.Rules`), attached to a
    :class:`replay.engine.Replay` with :meth:`attach`."""

    rules: Any
    population: Any
    seed: int = 0
    forced: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.rules.valuation != "last":
            raise NotImplementedError(f"rules {self.rules.name!r}: valuation "
                                      f"{self.rules.valuation!r} is not supported yet; the "
                                      "broker runs intraday ('last') rules")
        self._replay = None
        self._watch: dict[int, _Watch] = {}

    def attach(self, replay) -> Broker:
        replay.broker = self
        return self

    # -- the replay calls these -----------------------------------------------------------
    def start(self, replay) -> None:
        """Compute the triggers and arm the watch prices (the replay starts)."""
        self._replay = replay
        pop = self.population
        n_pos = np.bincount(pop.pos_account, minlength=len(pop.account_id))
        single = n_pos[pop.pos_account] == 1
        m_bp = int(round(self.rules.maintenance_ratio * BP))
        debt = pop.loan[pop.pos_account] - pop.cash[pop.pos_account]
        trig = trigger_prices(pop.pos_shares, np.maximum(debt, 0), m_bp)
        ins = replay.book.ins
        for inst in np.unique(pop.pos_instrument[single]):
            rows = np.flatnonzero(single & (pop.pos_instrument == inst) & (trig > 0))
            order = np.argsort(-trig[rows], kind="stable")
            w = _Watch(rows[order], trig[rows][order])
            self._watch[int(inst)] = w
            ins[int(inst), I_WATCH] = w.next_trigger()
        self._shares_left = pop.pos_shares.copy()

    def on_watch(self) -> None:
        """The loop stopped: an instrument's last price reached its watch price."""
        rp = self._replay
        S = rp.book.S
        inst, ts = int(S[H_BK_INST]), int(S[H_BK_TS])
        ins = rp.book.ins
        price = int(ins[inst, I_LAST])
        generation = int(ins[inst, I_LAST_GEN])
        w = self._watch[inst]
        start = w.cursor
        while w.cursor < len(w.rows) and w.triggers[w.cursor] >= price:
            w.cursor += 1
        rows = w.rows[start:w.cursor]
        ins[inst, I_WATCH] = w.next_trigger()
        if not len(rows):
            return
        pop = self.population
        qty = self._shares_left[rows]
        self._shares_left[rows] = 0
        n = len(rows)
        ids = rp.submit(np.full(n, ts), np.full(n, inst), np.full(n, SIDE_ASK),
                        np.full(n, MARKET), np.zeros(n, np.int64), qty,
                        np.full(n, generation))
        acct = pop.pos_account[rows]
        debt = pop.loan[acct] - pop.cash[acct]
        for k in range(n):
            self.forced.append({
                "ts": ts, "account_id": int(pop.account_id[acct[k]]), "instrument": inst,
                "trigger": int(w.triggers[start + k]),
                "ratio_at_trigger": float(pop.pos_shares[rows[k]] * price / debt[k]),
                "generation": generation, "qty": int(qty[k]), "order": int(ids[k])})

    # -- results ---------------------------------------------------------------------------
    def accounts(self) -> pd.DataFrame:
        """Each account after the run: shares left, the forced sales' proceeds (which repay
        the loan first), the loan and cash left, and the broker's shortfall where the
        proceeds and the cash did not cover the loan of a position sold out."""
        pop = self.population
        n = len(pop.account_id)
        proceeds = np.zeros(n, np.int64)
        sold = np.zeros(n, np.int64)
        if self.forced:
            frame = pd.DataFrame(self.forced)
            res = self._replay.book.results
            acct = pd.Index(pop.account_id).get_indexer(frame.account_id)
            np.add.at(proceeds, acct, res[frame.order.to_numpy(), R_NOTIONAL])
            np.add.at(sold, acct, res[frame.order.to_numpy(), R_FILLED])
        held = np.zeros(n, np.int64)
        np.add.at(held, pop.pos_account, pop.pos_shares)
        repay = np.minimum(proceeds, pop.loan)
        loan_left = pop.loan - repay
        cash_left = pop.cash + proceeds - repay
        shares_left = held - sold
        # a sold-out account whose loan is still open: its cash covers what it can
        cover = np.where(shares_left == 0, np.minimum(cash_left, loan_left), 0)
        loan_left = loan_left - cover
        cash_left = cash_left - cover
        shortfall = np.where(shares_left == 0, loan_left, 0)
        return pd.DataFrame({"account_id": pop.account_id, "shares_left": shares_left,
                             "proceeds": proceeds, "loan_left": loan_left,
                             "cash_left": cash_left, "shortfall": shortfall})

    def forced_orders(self) -> pd.DataFrame:
        """One row per forced order: ts, account_id, instrument, trigger, ratio_at_trigger,
        generation, qty, filled_qty, avg_price."""
        cols = ["ts", "account_id", "instrument", "trigger", "ratio_at_trigger", "generation",
                "qty", "filled_qty", "avg_price"]
        if not self.forced:
            return pd.DataFrame(columns=cols)
        frame = pd.DataFrame(self.forced)
        res = self._replay.book.results
        filled = res[frame.order.to_numpy(), R_FILLED]
        notional = res[frame.order.to_numpy(), R_NOTIONAL]
        frame["filled_qty"] = filled
        frame["avg_price"] = np.where(filled > 0, notional / np.maximum(filled, 1), np.nan)
        return frame[cols]
