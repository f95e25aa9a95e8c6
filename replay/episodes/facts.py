"""An episode's reported facts against its run: one row per fact (docs/episodes.md).

Each fact of an episode TOML names a ``measure`` (a function of :data:`MEASURES`) and its
arguments; the measure reads the run directory (summary.json's ``indices``, sessions,
trades and forced orders) and returns the simulated value, or None with the reason when
the run cannot produce it (a row with ``n/a``, never left out). ``gap`` is simulated -
reported: in the fact's unit for numbers, in minutes for times of day (``HH:MM:SS``), in
trading days for days.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from replay.episodes import FACT_COLUMNS

EOK = 1e8  # 억 won


class _Run:
    """The tables of a run directory a measure reads, loaded once."""

    def __init__(self, run_dir: Path, summary: dict):
        self.dir = run_dir
        self.summary = summary
        self._cache: dict[str, pd.DataFrame] = {}

    def table(self, name: str) -> pd.DataFrame:
        if name not in self._cache:
            path = self.dir / f"{name}.parquet"
            self._cache[name] = pd.read_parquet(path) if path.exists() else pd.DataFrame()
        return self._cache[name]

    def sessions(self) -> pd.DataFrame:
        s = self.table("sessions")
        if len(s):
            s = s.assign(day=pd.to_datetime(s["day"]).dt.date)
        return s

    def symbols(self) -> dict[int, str]:
        s = self.sessions()
        return dict(zip(s["instrument"], s["symbol"], strict=True)) if len(s) else {}

    def forced(self, broker: str | None = None) -> pd.DataFrame:
        f = self.table("forced_orders")
        if not len(f):
            return f
        if broker and "broker" in f.columns:
            f = f[f["broker"].astype(str) == broker]
        day = pd.to_datetime(f["ts"], utc=True).dt.tz_convert("Asia/Seoul").dt.date
        value = f["filled_qty"].astype(float) * f["avg_price"].fillna(0).astype(float)
        return f.assign(day=day, value=value)

    def index(self, name: str) -> dict | None:
        return (self.summary.get("indices") or {}).get(name)


def _day(text: str) -> date:
    return date.fromisoformat(str(text))


def index_return(run: _Run, index: str, day: str, which: str = "close"):
    ix = run.index(index)
    if ix is None:
        return None, f"no {index} index in the run (no {index} name with shares on the tape)"
    for d in ix["days"]:
        if d["day"] == day:
            level = d[which]
            return round(100 * (level / d["prior_close"] - 1), 2), (
                f"{index} from the tape's {ix['names']} constituents (cap-weighted, weights "
                f"renormalised to them), level {level:,.2f}")
    return None, f"{day} is not a day of the run"


def _events(run: _Run, index: str, kind: str, day: str) -> list[dict]:
    ix = run.index(index)
    if ix is None:
        return []
    return [e for e in ix["events"] if e["kind"].startswith(kind)
            and pd.Timestamp(e["ts_ns"], tz="UTC").tz_convert("Asia/Seoul").date()
            == _day(day)]


def event_time(run: _Run, index: str, kind: str, day: str):
    ev = _events(run, index, kind, day)
    if run.index(index) is None:
        return None, f"no {index} index in the run"
    if not ev:
        return None, f"no {kind} on {day} in the run: the index never met its threshold"
    return ev[0]["time_seoul"], f"{ev[0]['kind']} at {100 * ev[0]['return']:.2f}%"


def event_return(run: _Run, index: str, kind: str, day: str):
    ev = _events(run, index, kind, day)
    if not ev:
        return None, f"no {kind} on {day} in the run"
    return round(100 * ev[0]["return"], 2), f"at {ev[0]['time_seoul']}"


def forced_value(run: _Run, day: str, broker: str | None = None):
    s = run.sessions()
    if not len(s) or _day(day) not in set(s["day"]):
        return None, f"{day} is not a session of the run"
    f = run.forced(broker)
    if not len(f):
        return 0.0, f"no forced order of {broker or 'any broker'} in the run"
    on = f[f["day"] == _day(day)]
    ordered = int(on["qty"].sum()) if len(on) else 0
    return round(float(on["value"].sum()) / EOK, 1), (
        f"{len(on):,} forced orders of {broker or 'all brokers'} entered that day "
        f"({ordered:,} shares ordered, {int(on['filled_qty'].sum()) if len(on) else 0:,} "
        "filled), valued at their fill prices")


def forced_peak_day(run: _Run, broker: str | None = None):
    f = run.forced(broker)
    if not len(f) or f["value"].sum() <= 0:
        return None, f"no filled forced sale of {broker or 'any broker'} in the run"
    by = f.groupby("day")["value"].sum()
    peak = by.idxmax()
    return peak.isoformat(), "the day of the largest filled forced-sale value: " + ", ".join(
        f"{d.strftime('%m/%d')} {v / EOK:,.1f}억" for d, v in by.items())


def _locked(run: _Run, day: str, how: str) -> pd.DataFrame:
    s = run.sessions()
    on = s[s["day"] == _day(day)]
    if how == "opened":
        return on[on["open"] == on["lower_limit"]]
    if how == "closed":
        return on[on["closed_at_lower_limit"]]
    return on[on["limit_locked_down"]]


_RULE = {"opened": "opened at the lower limit (the venue's opening print)",
         "closed": "closed at the lower limit (the venue's closing print)",
         "locked": "locked limit-down at the close by the venue (sells queued at the lower "
                   "limit, no bid)"}


def limit_down_count(run: _Run, day: str, how: str = "locked"):
    s = run.sessions()
    if not len(s) or _day(day) not in set(s["day"]):
        return None, f"{day} is not a session of the run"
    on = _locked(run, day, how)
    locked = _locked(run, day, "locked")
    return int(len(on)), (f"{_RULE[how]}: {', '.join(sorted(on['symbol'])) or 'none'}; "
                          f"locked at the close: {', '.join(sorted(locked['symbol'])) or 'none'}")


def limit_down_streak(run: _Run, code: str, start: str, how: str = "locked"):
    s = run.sessions()
    mine = s[s["symbol"] == code].sort_values("day")
    mine = mine[mine["day"] >= _day(start)]
    if not len(mine):
        return None, f"{code} has no session from {start} in the run"
    n = 0
    for r in mine.itertuples():
        locked = {"opened": r.open == r.lower_limit, "closed": r.closed_at_lower_limit,
                  "locked": r.limit_locked_down}[how]
        if not locked:
            break
        n += 1
    return n, f"consecutive sessions of {code} from {start}, each {_RULE[how]}"


def offered_at_limit(run: _Run, code: str, day: str):
    s = run.sessions()
    on = s[(s["symbol"] == code) & (s["day"] == _day(day))]
    if not len(on):
        return None, f"{code} has no session on {day} in the run (halted or not on the tape)"
    r = on.iloc[0]
    return int(r["ask_qty_at_lower_limit"]), (
        "shares offered at the lower limit at the close (the anchored tape's locked sell "
        "side plus forced sales queued there); "
        + ("locked" if r["limit_locked_down"] else "not locked"))


def traded_volume(run: _Run, code: str, day: str):
    ids = [i for i, c in run.symbols().items() if c == code]
    if not ids:
        return None, f"{code} is not on the tape"
    t = run.table("trades")
    if not len(t):
        return 0, "no trade in the run"
    t = t[t["instrument"] == ids[0]]
    d = pd.to_datetime(t["ts"], utc=True).dt.tz_convert("Asia/Seoul").dt.date
    return int(t.loc[d == _day(day), "size"].sum()), (
        "shares traded in the replay (the bar's volume is anchored; forced sales add to it "
        "only where they fill)")


def forced_below_limit(run: _Run):
    f = run.forced()
    if not len(f):
        return 0, "no forced order in the run"
    s = run.sessions()
    lower = {(r.instrument, r.day): r.lower_limit for r in s.itertuples()}
    filled = f[f["filled_qty"] > 0]
    lim = np.array([lower.get((i, d), 0) for i, d in zip(filled["instrument"], filled["day"],
                                                          strict=True)])
    below = int((filled["avg_price"].to_numpy(float) < lim).sum())
    unfilled = int((f["qty"] - f["filled_qty"]).sum())
    return below, (f"{len(filled):,} forced orders filled, none may average below the day's "
                   f"lower limit; {unfilled:,} shares ordered and not filled (queued at "
                   "the locked limit, carried to the next pre-open)")


MEASURES = {
    "index_close_return": lambda run, **a: index_return(run, which="close", **a),
    "index_low_return": lambda run, **a: index_return(run, which="low", **a),
    "event_time": event_time,
    "event_return": event_return,
    "forced_value": forced_value,
    "forced_peak_day": forced_peak_day,
    "limit_down_count": limit_down_count,
    "limit_down_streak": limit_down_streak,
    "offered_at_limit": offered_at_limit,
    "traded_volume": traded_volume,
    "forced_below_limit": forced_below_limit,
    "none": lambda run, why: (None, why),
}


def gap(reported, simulated, unit: str):
    """simulated - reported: numbers in their unit, times of day in minutes, days in
    trading days (XKRX); None when either is missing."""
    if simulated is None or reported is None:
        return None
    if unit == "time":
        def minutes(t: str) -> float:
            h, m, *s = (int(x) for x in str(t).split(":"))
            return h * 60 + m + (s[0] if s else 0) / 60
        return round(minutes(simulated) - minutes(reported), 2)
    if unit == "day":
        from venues.krx.calendar import sessions

        days = sessions()
        a, b = (int(np.searchsorted(days, np.datetime64(_day(x), "D")))
                for x in (reported, simulated))
        return b - a
    return round(float(simulated) - float(reported), 4)


def measure_facts(ep, run_dir: Path, summary: dict) -> pd.DataFrame:
    """The reported-vs-simulated table of an episode's run (module docstring)."""
    run = _Run(Path(run_dir), summary)
    rows = []
    for f in ep.facts:
        fn = MEASURES.get(f["measure"])
        if fn is None:
            raise ValueError(f"{ep.path}: fact {f['fact']!r}: measure {f['measure']!r} is "
                             f"not one of {', '.join(MEASURES)}")
        simulated, how = fn(run, **f.get("args", {}))
        note = "; ".join(x for x in (f.get("note", ""), how,
                                     f"source: {f['source']}") if x)
        rows.append({"fact": f["fact"], "reported": f["reported"],
                     "simulated": "n/a" if simulated is None else simulated,
                     "gap": gap(f["reported"], simulated, f["unit"]),
                     "unit": f["unit"], "note": note})
    return pd.DataFrame(rows, columns=list(FACT_COLUMNS), dtype=object)
