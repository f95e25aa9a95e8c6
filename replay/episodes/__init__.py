"""Bundled episodes: past KRX days rebuilt from their daily bars, replayed with a leveraged
population, and checked against what was reported (docs/episodes.md).

Each episode is one TOML file in this package (:func:`list_episodes`) holding its bars
(package data beside it), its days, codes and seed, the market tape's settings (rate, an
index path), the population spec (a ``[market]`` table), the brokers and their rule
overrides, the indices' prior closes, and its reported facts, each with its source and the
measure of the run that answers it (:mod:`replay.episodes.facts`).

:func:`run_episode` builds the market tape (replay.market), replays it at the KRX venue in
relative mode with the brokers (replay.runner.run_tape), and writes
``reported_vs_simulated.csv`` and ``.json`` into the run directory.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
TABLE = "reported_vs_simulated"
FACT_COLUMNS = ("fact", "reported", "simulated", "gap", "unit", "note")


@dataclass(frozen=True)
class Episode:
    """One bundled episode, as its TOML says (checked by :func:`load_episode`)."""

    name: str
    title: str
    path: Path
    bars: tuple[Path, ...]
    start: date
    days: int
    codes: tuple[str, ...]
    seed: int
    rate: float
    markets: dict[str, str]  # code -> KOSPI/KOSDAQ where the bars do not say
    shares: str  # how index weights are set: "none" or "volume_x40" (an assumption)
    knots: tuple[tuple[str, str, float], ...]  # (day, HH:MM:SS, return)
    brokers: tuple[dict, ...]
    index_closes: dict[str, float]
    population: str  # the spec's TOML text ({bars}: the episode's bars, at run time)
    facts: tuple[dict, ...]
    raw: dict = field(repr=False, compare=False, default_factory=dict)


@dataclass
class EpisodeResult:
    """What :func:`run_episode` made: the run directory, the table, the timings."""

    name: str
    run_dir: Path
    table: pd.DataFrame
    summary: dict
    build_seconds: float
    wall_seconds: float
    settings: dict
    #: with ``attribute``: the attribution (replay.attribution.AttributionResult), or the
    #: error that stopped it (its attribution.json still says how far it got)
    attribution: Any = None
    attribution_error: str | None = None


def list_episodes() -> list[str]:
    """The names of the bundled episodes (their TOML files), sorted."""
    return sorted(p.stem for p in HERE.glob("*.toml"))


def _fail(path: Path, key: str, reason: str) -> ValueError:
    return ValueError(f"{path}: {key}: {reason}")


def load_episode(name: str, overrides: dict[str, str] | None = None) -> Episode:
    """The episode ``name`` with ``overrides`` (``--set KEY=VALUE``: ``seed``, ``rate``,
    ``days``, ``accounts``, or ``broker.N.KEY`` for a rule of broker N) applied; ValueError
    naming the file and key for anything missing or wrong."""
    path = HERE / f"{name}.toml"
    if not path.exists():
        raise ValueError(f"episode {name!r}: not bundled (episodes: "
                         f"{', '.join(list_episodes())})")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for key in ("title", "bars", "start", "days", "seed", "rate", "brokers", "population",
                "facts"):
        if key not in data:
            raise _fail(path, key, "missing")
    raw = json.loads(json.dumps(data, default=str))
    brokers = [dict(b) for b in data["brokers"]]
    accounts = None
    for key, value in (overrides or {}).items():
        if key in ("seed", "days"):
            data[key] = _int(value, key)
        elif key == "rate":
            data[key] = _float(value, key)
        elif key == "accounts":
            accounts = _int(value, key)
        elif key.startswith("broker."):
            parts = key.split(".", 2)
            if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(brokers):
                raise ValueError(f"--set {key}: give broker.N.RULE with N in 0.."
                                 f"{len(brokers) - 1}")
            b = brokers[int(parts[1])]
            b["set"] = [*b.get("set", []), f"{parts[2]}={value}"]
        else:
            raise ValueError(f"--set {key}: unknown; give seed, rate, days, accounts or "
                             "broker.N.RULE")
    population = data["population"]
    if accounts is not None:
        import re

        population, n = re.subn(r"(?m)^accounts\s*=.*$", f"accounts = {accounts}", population)
        if not n:
            raise ValueError(f"--set accounts: {path} has no accounts key")
    try:
        start = date.fromisoformat(str(data["start"]))
    except ValueError:
        raise _fail(path, "start", f"{data['start']!r} is not a date") from None
    bars = tuple(HERE / b for b in data["bars"])
    for b in bars:
        if not b.exists():
            raise _fail(path, "bars", f"{b.name} is not in {HERE}")
    facts = tuple(dict(f) for f in data["facts"])
    for k, f in enumerate(facts):
        for key in ("fact", "reported", "unit", "source", "measure"):
            if key not in f:
                raise _fail(path, f"facts[{k}].{key}", "missing")
    markets = {}
    for market, codes in data.get("markets", {}).items():
        for c in codes:
            markets[str(c)] = market
    knots = tuple((str(d), str(t), float(r)) for d, t, r in data.get("index_knots", []))
    return Episode(name=name, title=data["title"], path=path, bars=bars, start=start,
                   days=int(data["days"]), codes=tuple(str(c) for c in data.get("codes", [])),
                   seed=int(data["seed"]), rate=float(data["rate"]), markets=markets,
                   shares=str(data.get("shares", "none")), knots=knots,
                   brokers=tuple(brokers),
                   index_closes={k: float(v) for k, v in data.get("index_closes", {}).items()},
                   population=population, facts=facts, raw=raw)


def _int(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--set {key}={value}: must be an integer") from None


def _float(value: str, key: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"--set {key}={value}: must be a number") from None


def episode_bars(ep: Episode) -> pd.DataFrame:
    """The episode's bars (all its files), with the markets it names and, for
    ``shares = "volume_x40"``, made-up shares outstanding (the first day's volume x 40:
    no listing of the day ships, so the index weights are an assumption); plan_market
    selects the codes or the top N from them."""
    from replay.loaders.daily_bars import read_bars

    frame = pd.concat([read_bars(b) for b in ep.bars], ignore_index=True)
    frame["code"] = frame["code"].astype(str)
    if ep.markets:
        frame["market"] = [ep.markets.get(c, m or "KOSPI") for c, m in
                           zip(frame["code"], frame["market"], strict=True)]
    if ep.shares == "volume_x40":
        first = frame[pd.to_datetime(frame["date"]).dt.date == ep.start]
        shares = (first.set_index("code")["volume"] * 40).to_dict()
        frame["shares"] = frame["code"].map(shares).fillna(0).astype("int64")
    frame.attrs["source"] = ", ".join(b.name for b in ep.bars)
    return frame


def _write_bars(frame: pd.DataFrame, path: Path) -> Path:
    """The bars as one FinanceDataReader-layout CSV (the population spec's ``bars``)."""
    out = pd.DataFrame({"code": frame["code"], "Date": pd.to_datetime(frame["date"]).dt.date,
                        "Open": frame["open"], "High": frame["high"], "Low": frame["low"],
                        "Close": frame["close"], "Volume": frame["volume"],
                        "Change": frame["change"]})
    out.to_csv(path, index=False)
    return path


def run_episode(name: str, out_dir: str | Path, overrides: dict[str, str] | None = None,
                top: int | None = None, *, overwrite: bool = False,
                progress=None, attribute: bool = False, tolerance_ticks: float | None = None,
                max_iter: int | None = None, log=lambda s: None) -> EpisodeResult:
    """Build the episode's market tape, replay it at the KRX venue (relative mode) with its
    brokers and population into ``out_dir``, and write the reported-vs-simulated table
    there (``reported_vs_simulated.csv`` and ``.json``). ``top`` keeps the N names of the
    largest turnover on the first day (an episode with fixed codes refuses it).

    ``attribute`` then solves for the exogenous bars of the episode's tape (replay.attribution,
    docs/attribution.md) with the same brokers and population, into ``out_dir/attribution``;
    a run that does not converge keeps its table and says why in ``attribution_error``."""
    from replay.episodes.facts import measure_facts
    from replay.market import group_knots, parse_index_knot, plan_market, write_market_tape
    from replay.runner import BrokerSpec, RunSpec, no_progress, run_tape

    t0 = time.perf_counter()
    ep = load_episode(name, overrides)
    out_dir = Path(out_dir)
    if top is not None and ep.codes:
        raise ValueError(f"--top: episode {name} replays fixed codes "
                         f"({', '.join(ep.codes)})")
    bars = episode_bars(ep)
    kw: dict[str, Any] = {"top": top} if top else {"codes": list(ep.codes) or None}
    mplan = plan_market(bars, ep.start, days=ep.days, rate=ep.rate,
                        source=bars.attrs["source"], **kw)
    knots = group_knots([parse_index_knot(",".join((d, t, repr(r)))) for d, t, r in ep.knots])
    with tempfile.TemporaryDirectory(prefix=f"episode-{name}-") as tmp:
        tmp = Path(tmp)
        tape = tmp / "tape.parquet"
        write_market_tape(tape, mplan, ep.seed, knots=knots)
        build_seconds = time.perf_counter() - t0
        kept = [n.code for n in mplan.names]
        bars_file = _write_bars(bars[bars["code"].isin(kept)], tmp / "bars.csv")
        population, dropped_balances = _for_markets(ep.population, {n.market for n in
                                                                     mplan.names})
        spec = tmp / "population.toml"
        spec.write_text(population.replace("{bars}", bars_file.as_posix()), encoding="utf-8")
        first, *more = ep.brokers
        run = RunSpec(tape=tape, output=out_dir, mode="relative", venue="krx", seed=ep.seed,
                      broker=first["rules"], population=spec,
                      overrides=tuple(first.get("set", [])),
                      more_brokers=tuple(BrokerSpec(b["rules"], None, tuple(b.get("set", [])))
                                         for b in more),
                      index_closes=dict(ep.index_closes), overwrite=overwrite)
        settings = {"episode": name, "start": str(ep.start), "days": ep.days, "seed": ep.seed,
                    "rate": ep.rate, "top": top, "names": kept,
                    "names_dropped": [list(d) for d in mplan.dropped],
                    "index_knots": [list(k) for k in ep.knots],
                    "brokers": [dict(b) for b in ep.brokers],
                    "index_closes": dict(ep.index_closes), "shares": ep.shares,
                    "overrides": dict(overrides or {}),
                    "balances_dropped": dropped_balances}
        summary = run_tape(run, progress or no_progress, sections={"episode": settings})
        # the run's population spec, with the bars it reads beside it (rerunnable from DIR)
        shutil.copyfile(bars_file, out_dir / "bars.csv")
        (out_dir / "population.toml").write_text(population.replace("{bars}", "bars.csv"),
                                                 encoding="utf-8")
        solved, error = None, None
        if attribute:
            import replay.attribution as attribution

            recipe = attribution.TapeRecipe(plan=mplan.plan, seed=ep.seed, market=mplan,
                                            knots=knots, source=str(bars.attrs["source"]))
            try:
                solved = attribution.attribute(
                    recipe, run, out_dir / "attribution",
                    tolerance_ticks=tolerance_ticks or attribution.TOLERANCE_TICKS,
                    max_iter=max_iter or attribution.MAX_ITER,
                    progress=progress or no_progress, log=log)
            except attribution.AttributionError as exc:
                error = str(exc)
    table = measure_facts(ep, out_dir, summary)
    write_table(table, out_dir)
    return EpisodeResult(name=name, run_dir=out_dir, table=table, summary=summary,
                         build_seconds=build_seconds,
                         wall_seconds=time.perf_counter() - t0, settings=settings,
                         attribution=solved, attribution_error=error)


def _for_markets(population: str, markets: set[str]) -> tuple[str, list[str]]:
    """The spec without the credit balance of a market none of the tape's names is in (a
    --top selection may hold no KOSDAQ name); the keys dropped, for the summary."""
    import re

    dropped = []
    for market in ("KOSPI", "KOSDAQ"):
        if market not in markets:
            key = f"{market.lower()}_credit_balance_krw"
            population, n = re.subn(rf"(?m)^{key}\s*=.*$\n?", "", population)
            if n:
                dropped.append(key)
    return population, dropped


def write_table(table: pd.DataFrame, out_dir: Path) -> None:
    """reported_vs_simulated.csv and .json (the same rows)."""
    table.to_csv(out_dir / f"{TABLE}.csv", index=False)
    rows = json.loads(table.to_json(orient="records"))
    (out_dir / f"{TABLE}.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False),
                                           encoding="utf-8")


__all__ = ["Episode", "EpisodeResult", "list_episodes", "load_episode", "run_episode"]
