"""Account populations: the leveraged accounts a broker holds, as arrays.

A :class:`Population` is a struct of numpy arrays (no Python object per account), one set
for accounts and one for positions (account x instrument), so 10^6 accounts are cheap. An
account with several positions is a portfolio account: a fall in one name lowers its
collateral for all of them (cross-name contagion).

This module is the model only; it reads no file. A population comes from a CSV of accounts
(:func:`replay.loaders.population.load_population_csv`) or is synthesised from daily bars
(:mod:`brokers.synthetic_population`, read from a TOML spec by
:func:`replay.loaders.population.synthesize_population`); docs/brokers.md describes both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from brokers.rules import KINDS, MAX_WON

#: kind name -> the int8 code stored in :attr:`Population.kind`.
KIND_CODES = {k: i for i, k in enumerate(KINDS)}
_EPOCH = np.datetime64("1970-01-01", "D")
#: The most accounts a population may hold (a spec's ``accounts``): its arrays stay in the
#: hundreds of megabytes.
MAX_ACCOUNTS = 10_000_000


@dataclass
class Population:
    """Accounts and their positions as parallel arrays.

    Accounts (index ``a``): ``account_id`` int64, ``kind`` int8 (a code of :data:`KINDS`),
    ``cash`` and ``loan`` int64 won (``loan``: what the broker financed: the credit loan,
    the unpaid part of a 미수 purchase, a CFD's financed notional).
    Positions (one row per account x instrument, grouped by account): ``pos_account`` the
    account's index ``a``, ``pos_instrument`` instrument_id, ``pos_shares`` in the
    instrument's size units, ``pos_entry`` in its price units, ``pos_trade_date`` days since
    1970-01-01 (``numpy.datetime64[D]`` as int64).
    """

    account_id: np.ndarray
    kind: np.ndarray
    cash: np.ndarray
    loan: np.ndarray
    pos_account: np.ndarray
    pos_instrument: np.ndarray
    pos_shares: np.ndarray
    pos_entry: np.ndarray
    pos_trade_date: np.ndarray

    def __post_init__(self) -> None:
        for f in fields(self):
            dtype = np.int8 if f.name == "kind" else np.int64
            setattr(self, f.name, np.ascontiguousarray(getattr(self, f.name), dtype=dtype))
        n, m = len(self.account_id), len(self.pos_account)
        for f in fields(self):
            want = m if f.name.startswith("pos_") else n
            if len(getattr(self, f.name)) != want:
                raise ValueError(f"population: {f.name} has {len(getattr(self, f.name))} "
                                 f"rows, expected {want}")
        if m and (self.pos_account.min() < 0 or self.pos_account.max() >= n):
            raise ValueError("population: pos_account must index the accounts arrays")
        if n and (self.kind.min() < 0 or self.kind.max() >= len(KINDS)):
            raise ValueError(f"population: kind codes must be 0..{len(KINDS) - 1}")
        for name in ("cash", "loan"):
            bad = np.flatnonzero((getattr(self, name) < 0) | (getattr(self, name) > MAX_WON))
            if len(bad):
                raise ValueError(f"population: account {self.account_id[bad[0]]}: {name} "
                                 f"{getattr(self, name)[bad[0]]:,} is outside [0, 10^12] won")
        big = np.flatnonzero(self.pos_shares > MAX_WON // np.maximum(self.pos_entry, 1))
        if len(big):
            i = big[0]
            raise ValueError(f"population: account {self.account_id[self.pos_account[i]]}: "
                             f"{self.pos_shares[i]:,} shares x entry {self.pos_entry[i]:,} is "
                             "above 10^12 won, the bound of a position")

    def __len__(self) -> int:
        return len(self.account_id)

    @property
    def positions(self) -> int:
        """The number of positions (account x instrument rows)."""
        return len(self.pos_account)

    def to_frame(self) -> pd.DataFrame:
        """One row per position, with its account's id, kind, cash and loan."""
        a = self.pos_account
        return pd.DataFrame({
            "account_id": self.account_id[a],
            "kind": pd.Categorical.from_codes(self.kind[a], categories=list(KINDS)),
            "instrument_id": self.pos_instrument,
            "shares": self.pos_shares,
            "entry_units": self.pos_entry,
            "trade_date": (self.pos_trade_date + _EPOCH).astype("datetime64[s]"),
            "cash": self.cash[a],
            "loan": self.loan[a],
        })

    def subset(self, keep: np.ndarray) -> Population:
        """The accounts where the boolean mask ``keep`` (one per account) is true, with their
        positions, both in their order here; ``pos_account`` re-indexed to the new
        accounts."""
        keep = np.asarray(keep, bool)
        if keep.shape != self.account_id.shape:
            raise ValueError(f"population: the mask has {keep.size} values, expected one per "
                             f"account ({len(self)})")
        new_index = np.cumsum(keep, dtype=np.int64) - 1
        held = keep[self.pos_account]
        return Population(
            account_id=self.account_id[keep], kind=self.kind[keep], cash=self.cash[keep],
            loan=self.loan[keep], pos_account=new_index[self.pos_account[held]],
            pos_instrument=self.pos_instrument[held], pos_shares=self.pos_shares[held],
            pos_entry=self.pos_entry[held], pos_trade_date=self.pos_trade_date[held])


def rekind(population: Population, kind: str) -> Population:
    """The same accounts, positions, loans and cash as accounts of ``kind``: how one
    population is compared under rules of another kind (``cascade compare`` with a
    ``krx-credit`` and an ``instant`` variant, docs/brokers.md: comparing kinds). Only a
    population of one kind is re-kinded: with several, which accounts would become what is
    not the population's to say."""
    held = [KINDS[k] for k in np.unique(population.kind)]
    if len(held) > 1:
        raise ValueError(f"the population holds {', '.join(held)} accounts: only a "
                         f"population of one kind can be taken as {kind} accounts")
    if kind not in KIND_CODES:
        raise ValueError(f"kind {kind!r}: choose one of {', '.join(KINDS)}")
    return replace(population, kind=np.full(len(population.kind), KIND_CODES[kind],
                                            population.kind.dtype))


def split_by_kind(population: Population) -> dict[str, Population]:
    """One population per kind present, in :data:`KINDS` order: each holds the accounts of
    that kind and their positions (:meth:`Population.subset`), so one file holding credit,
    미수 and CFD accounts can feed a broker of each kind."""
    present = np.flatnonzero(np.bincount(population.kind, minlength=len(KINDS)))
    return {KINDS[code]: population.subset(population.kind == code) for code in present}


def concatenate(parts: Sequence[Population]) -> Population:
    """The accounts of ``parts`` as one population, in order: each part's account ids are
    numbered on after the previous part's largest (a synthesised population of several
    names, docs/brokers.md), and its positions follow its accounts."""
    if not parts:
        raise ValueError("population: nothing to concatenate")
    ids, pos_account, start, rows = [], [], 0, 0
    for p in parts:
        ids.append(p.account_id - (p.account_id.min() if len(p) else 0) + start)
        pos_account.append(p.pos_account + rows)
        start = int(ids[-1].max()) + 1 if len(p) else start
        rows += len(p)

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    return Population(
        account_id=np.concatenate(ids), kind=joined("kind"), cash=joined("cash"),
        loan=joined("loan"), pos_account=np.concatenate(pos_account),
        pos_instrument=joined("pos_instrument"), pos_shares=joined("pos_shares"),
        pos_entry=joined("pos_entry"), pos_trade_date=joined("pos_trade_date"))


def merge_accounts(population: Population, into: np.ndarray) -> Population:
    """Accounts sharing a label of ``into`` (one integer per account) as one portfolio
    account: its positions are theirs, its cash and loan their sums, its ``account_id`` the
    label. Accounts come out in label order, their positions in the order they had here.
    The accounts merged must be of one kind and hold different instruments (an account has
    one position per instrument, as a CSV population does)."""
    into = np.asarray(into, np.int64)
    if into.shape != population.account_id.shape:
        raise ValueError(f"population: {into.size} labels, expected one per account "
                         f"({len(population)})")
    labels, new = np.unique(into, return_inverse=True)
    n = len(labels)
    kind = np.full(n, -1, np.int64)
    kind[new] = population.kind
    mixed = np.flatnonzero(kind[new] != population.kind)
    if len(mixed):
        raise ValueError(f"population: account {labels[new[mixed[0]]]} would merge accounts "
                         f"of kinds {KINDS[kind[new[mixed[0]]]]} and "
                         f"{KINDS[population.kind[mixed[0]]]}")
    pos_new = new[population.pos_account]
    order = np.argsort(pos_new, kind="stable")
    key = pos_new[order] * (int(population.pos_instrument.max(initial=0)) + 1) \
        + population.pos_instrument[order]
    twice = np.flatnonzero(key[1:] == key[:-1])
    if len(twice):
        row = order[twice[0]]
        raise ValueError(f"population: account {labels[pos_new[row]]} would hold instrument "
                         f"{population.pos_instrument[row]} twice")
    return Population(
        account_id=labels, kind=kind,
        cash=_sum_by(new, population.cash, n),
        loan=_sum_by(new, population.loan, n), pos_account=pos_new[order],
        pos_instrument=population.pos_instrument[order],
        pos_shares=population.pos_shares[order], pos_entry=population.pos_entry[order],
        pos_trade_date=population.pos_trade_date[order])


def _sum_by(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Exact int64 sums of ``values`` per ``group`` (bincount sums in float)."""
    out = np.zeros(n, np.int64)
    np.add.at(out, group, values)
    return out
