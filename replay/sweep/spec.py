"""A sweep's spec: the axes, their values, and the cells they make (docs/sweeps.md).

A spec is a TOML file of five axes, each a table of named values:

- ``[variants]``: rule variants. A value is ``"PRESET_OR_TOML[,KEY=VALUE...]"`` (as
  ``cascade compare --broker``), or a table: ``rules`` (that text), ``set`` (overrides,
  ``{maintenance_ratio = 1.3}``), ``vary`` (overrides each given as a list: the variant is
  one per combination, named ``NAME[key=value,...]``) and ``brokers`` (more brokers of the
  same run, each such a text or ``{rules, set, population}``).
- ``[tapes]``: ``{file = PATH}`` (a tape of ``cascade data import/synth``) or
  ``{synthetic = PROFILE, days = N, shocks = {DAY = MOVE}, seed = S, start = DATE}``: a
  tape made by replay.synth, with the cell's seed unless ``seed`` is given.
- ``[populations]``: ``{file = PATH}`` (a CSV of accounts, or a population spec TOML as
  it is) or ``{spec = PATH, set = {...}, vary = {...}}``: a population spec with keys
  overridden (``market.accounts`` reaches into its ``[market]`` table), one per
  combination of ``vary``.
- ``[sweep]``: ``seeds`` (a list, or ``{first = 1, count = 20}``), ``modes`` (default
  ``["relative"]``), ``baseline`` (the variant the others are differenced against; default
  the first), ``venue``, ``index_prior_close``, ``inject``, ``strategy`` and ``params``.
- ``[[cells]]`` (optional): a listed subset, each entry naming some axes' values
  (``{tape = "crash", seed = 3}``); the axes it does not name take all their values.

Otherwise the cells are the cartesian product. Every variant of a cell sees the identical
tape, population, mode and seed: cells are paired. Paths are relative to the spec file.
:func:`load_spec` checks the whole spec (every key, every rule set, every file) before
anything runs; an error names the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

#: The replay modes a sweep runs (generative: a synthetic tape's profile, no tape).
MODES = ("absolute", "relative", "propagator", "generative")
SECTIONS = ("sweep", "variants", "tapes", "populations", "cells")
SWEEP_KEYS = ("seeds", "modes", "baseline", "venue", "index_prior_close", "inject",
              "strategy", "params", "description")
VARIANT_KEYS = ("rules", "set", "vary", "brokers")
BROKER_KEYS = ("rules", "set", "population")
TAPE_KINDS = ("file", "synthetic", "episode", "market")
SYNTH_KEYS = ("synthetic", "days", "shocks", "seed", "start")
EPISODE_KEYS = ("episode", "days", "seed")
MARKET_KEYS = ("market", "start", "days", "codes", "top", "rate", "seed", "listing",
               "allow_missing", "index_knots", "index_closes")
POPULATION_KEYS = ("file", "spec", "episode", "set", "vary")
CELL_AXES = ("variant", "tape", "population", "mode", "seed")
#: The most cells a spec may make: each is a replay, and the store holds a file per cell.
MAX_CELLS = 1_000_000
MAX_SEED = 2**63 - 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+,\[\]-]*$")


class SpecError(ValueError):
    """The spec is invalid: the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class BrokerDef:
    """One broker of a variant: its rules text, overrides and population (None: the
    cell's)."""

    rules: str
    overrides: tuple[str, ...] = ()
    population: str | None = None  # a name of [populations]


@dataclass(frozen=True)
class Variant:
    name: str
    brokers: tuple[BrokerDef, ...]
    #: the values of ``vary`` this variant has (key -> value as written): columns of the table
    params: tuple[tuple[str, Any], ...] = ()
    given: str = ""  # the text it was given as (cascade compare --broker)

    def text(self) -> str:
        """The first broker as ``cascade compare --broker`` takes it."""
        b = self.brokers[0]
        return ",".join([b.rules, *b.overrides])


@dataclass(frozen=True)
class TapeDef:
    name: str
    kind: str  # file, synthetic, episode or market (:data:`TAPE_KINDS`)
    path: Path | None = None  # a file tape; a market tape's bars
    profile: str | None = None
    days: int = 1  # synthetic, market; an episode's (0: the episode's own)
    shocks: tuple[tuple[int, float], ...] = ()
    seed: int | None = None  # None: the cell's seed
    start: date = date(2024, 1, 2)
    episode: str | None = None
    codes: tuple[str, ...] = ()
    top: int | None = None
    rate: float = 400.0
    listing: tuple[Path, ...] = ()
    allow_missing: bool = False
    knots: tuple[tuple[str, str, float], ...] = ()  # (day, HH:MM:SS, return vs prior close)
    index_closes: tuple[tuple[str, float], ...] = ()

    def tape_seed(self, cell_seed: int) -> int:
        return self.seed if self.seed is not None else cell_seed


@dataclass(frozen=True)
class PopulationDef:
    name: str
    path: Path | None  # the file, or the spec the overrides apply to (None: an episode's)
    overrides: tuple[tuple[str, Any], ...] = ()  # (dotted key, value): a spec's keys
    params: tuple[tuple[str, Any], ...] = ()  # the values of ``vary``
    episode: str | None = None  # the bundled episode whose population this is


@dataclass(frozen=True)
class Cell:
    """One replay of the sweep: a variant on a tape, population, mode and seed."""

    index: int  # its place in the spec's order (the row of cells.parquet)
    variant: Variant
    tape: TapeDef
    population: PopulationDef
    mode: str
    seed: int
    key: str = ""  # the SHA-256 of what decides its figures (:func:`cell_key`)

    @property
    def group(self) -> tuple[str, str, str, int]:
        """The paired block it belongs to: the cells of one tape, population, mode and seed."""
        return (self.tape.name, self.population.name, self.mode, self.seed)

    def axes(self) -> dict[str, Any]:
        return {"variant": self.variant.name, "tape": self.tape.name,
                "population": self.population.name, "mode": self.mode, "seed": self.seed}


@dataclass(frozen=True)
class SweepSpec:
    path: Path
    variants: tuple[Variant, ...]
    tapes: tuple[TapeDef, ...]
    populations: tuple[PopulationDef, ...]
    modes: tuple[str, ...]
    seeds: tuple[int, ...]
    baseline: str
    cells: tuple[Cell, ...]
    venue: str | None = None
    index_prior_close: float = 0.0
    inject: Path | None = None
    strategy: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    #: a kept run's directory is named by the cell's key ("key": runs/<key[:16]>) or by its
    #: variant ("variant": cascade compare's DIR/<label>)
    run_names: str = "key"

    def population(self, name: str) -> PopulationDef:
        return next(p for p in self.populations if p.name == name)


def _fail(where: str, key: str, reason: str) -> SpecError:
    return SpecError(f"{where}: {key}: {reason}")


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check the spec at ``path``: its keys and values, every variant's rules
    (brokers.rules.load_rules), every file named. The cells' keys are not computed here
    (:func:`keyed`: they need the files' digests)."""
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such sweep spec")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: invalid TOML: {exc}") from None
    return parse_spec(data, path)


def parse_spec(data: Mapping[str, Any], path: Path) -> SweepSpec:
    """The spec of ``data`` (a parsed TOML file at ``path``), checked whole."""
    where = str(path)
    base = path.parent
    for key in data:
        if key not in SECTIONS:
            raise _fail(where, key, f"unknown section; the sections are {', '.join(SECTIONS)}")
    for key in ("variants", "tapes", "populations"):
        if not isinstance(data.get(key), Mapping) or not data[key]:
            raise _fail(where, f"[{key}]", "missing or empty: name at least one value "
                        "(docs/sweeps.md)")
    sweep = data.get("sweep", {})
    if not isinstance(sweep, Mapping):
        raise _fail(where, "sweep", "must be a table")
    for key in sweep:
        if key not in SWEEP_KEYS:
            raise _fail(where, f"sweep.{key}", f"unknown key; valid: {', '.join(SWEEP_KEYS)}")
    populations = _populations(data["populations"], where, base)
    variants = _variants(data["variants"], where, base, {p.name for p in populations})
    tapes = _tapes(data["tapes"], where, base)
    modes = _modes(sweep.get("modes", ["relative"]), where)
    seeds = _seeds(sweep.get("seeds", [0]), where)
    names = [v.name for v in variants]
    baseline = sweep.get("baseline", names[0])
    if baseline not in names:
        raise _fail(where, "sweep.baseline", f"{baseline!r} is not a variant; the variants: "
                    f"{', '.join(names)}")
    if "generative" in modes:
        for t in tapes:
            if t.kind != "synthetic":
                raise _fail(where, f"tapes.{t.name}", "generative mode makes its own flow "
                            "from a synthetic profile: with modes including 'generative' "
                            "every tape must be {synthetic = PROFILE, ...}")
    venue = sweep.get("venue")
    if venue is not None and venue not in ("generic", "krx"):
        raise _fail(where, "sweep.venue", f"{venue!r}: choose generic or krx")
    prior = sweep.get("index_prior_close", 0.0)
    if isinstance(prior, bool) or not isinstance(prior, int | float) or \
            not math.isfinite(prior) or prior < 0:
        raise _fail(where, "sweep.index_prior_close", "must be a number of index points >= 0")
    inject = None
    if "inject" in sweep:
        inject = _file(sweep["inject"], where, "sweep.inject", base)
    strategy = sweep.get("strategy")
    params = sweep.get("params", {})
    if strategy is not None:
        if not isinstance(strategy, str) or ":" not in strategy:
            raise _fail(where, "sweep.strategy", "must be FILE.py:Class or module:Class")
        module, _, cls = strategy.rpartition(":")
        shipped = module.startswith("strategies/") and not (base / module).is_file()
        if module.endswith(".py") and shipped:  # the shipped examples, from any folder
            strategy = f"{module[:-3].replace('/', '.')}:{cls}"
        elif module.endswith(".py"):
            strategy = f"{_file(module, where, 'sweep.strategy', base)}:{cls}"
    if not isinstance(params, Mapping):
        raise _fail(where, "sweep.params", "must be a table of the strategy's parameters")
    if params and strategy is None:
        raise _fail(where, "sweep.params", "parameters of a strategy: give sweep.strategy")
    description = sweep.get("description", "")
    if not isinstance(description, str):
        raise _fail(where, "sweep.description", "must be text")

    cells = _cells(data.get("cells"), where, variants, tapes, populations, modes, seeds)
    spec = SweepSpec(path=path, variants=variants, tapes=tapes, populations=populations,
                     modes=modes, seeds=seeds, baseline=baseline, cells=cells, venue=venue,
                     index_prior_close=float(prior), inject=inject, strategy=strategy,
                     params=dict(params), description=description)
    _check_rules(spec)
    return spec


def _name(name: str, where: str, section: str) -> str:
    if not _NAME.match(name) or len(name) > 120:
        raise _fail(where, f"{section}.{name}", "a name of letters, digits and . _ = + , - "
                    "[ ] (at most 120), starting with a letter or digit")
    return name


def _file(value: Any, where: str, key: str, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(where, key, "must be a path (relative to the spec file)")
    p = Path(value)
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise _fail(where, key, f"{value!r}: no such file ({p})")
    return p.resolve()  # workers (a Ray actor) may run in another folder


def _overrides(value: Any, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, Mapping):
        raise _fail(where, key, "must be a table of rule fields, e.g. {maintenance_ratio = 1.3}")
    return tuple(f"{k}={_text(v)}" for k, v in value.items())


def _text(value: Any) -> str:
    """A TOML value as ``--set KEY=VALUE`` writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str | int):
        return str(value)
    raise SpecError(f"{value!r}: a rule field takes a number, a word or true/false")


def _combinations(vary: Any, where: str, key: str) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of a ``vary`` table's lists, the first key varying slowest."""
    if vary is None:
        return [()]
    if not isinstance(vary, Mapping) or not vary:
        raise _fail(where, key, "must be a table of lists, e.g. {maintenance_ratio = [1.3, 1.4]}")
    axes = []
    for k, values in vary.items():
        if not isinstance(values, list) or not values:
            raise _fail(where, f"{key}.{k}", "must be a non-empty list of values")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise _fail(where, f"{key}.{k}", f"lists a value twice: {values}")
        axes.append([(k, v) for v in values])
    return [tuple(c) for c in itertools.product(*axes)]


def _label(name: str, combo: Sequence[tuple[str, Any]]) -> str:
    if not combo:
        return name
    return f"{name}[{','.join(f'{k}={_text(v)}' for k, v in combo)}]"


def _variants(table: Mapping[str, Any], where: str, base: Path,
              populations: set[str]) -> tuple[Variant, ...]:
    out: list[Variant] = []
    for name, value in table.items():
        _name(name, where, "variants")
        key = f"variants.{name}"
        if isinstance(value, str):
            value = {"rules": value}
        if not isinstance(value, Mapping):
            raise _fail(where, key, "must be 'PRESET[,KEY=VALUE...]' or a table with rules, "
                        "set, vary, brokers")
        for k in value:
            if k not in VARIANT_KEYS:
                raise _fail(where, f"{key}.{k}", f"unknown key; valid: {', '.join(VARIANT_KEYS)}")
        if "rules" not in value:
            raise _fail(where, key, "missing key 'rules' (a preset or rules TOML)")
        first = _broker(value["rules"], value.get("set", {}), where, key, base)
        more = []
        for i, b in enumerate(value.get("brokers", [])):
            bkey = f"{key}.brokers[{i}]"
            if isinstance(b, str):
                b = {"rules": b}
            if not isinstance(b, Mapping) or "rules" not in b:
                raise _fail(where, bkey, "must be 'PRESET[,KEY=VALUE...]' or {rules, set, "
                            "population}")
            for k in b:
                if k not in BROKER_KEYS:
                    raise _fail(where, f"{bkey}.{k}", f"unknown key; valid: "
                                f"{', '.join(BROKER_KEYS)}")
            pop = b.get("population")
            if pop is not None and pop not in populations:
                raise _fail(where, f"{bkey}.population", f"{pop!r} is not a population; "
                            f"the populations: {', '.join(sorted(populations))}")
            d = _broker(b["rules"], b.get("set", {}), where, bkey, base)
            more.append(BrokerDef(d.rules, d.overrides, pop))
        if not isinstance(value.get("brokers", []), list):
            raise _fail(where, f"{key}.brokers", "must be a list of brokers")
        for combo in _combinations(value.get("vary"), where, f"{key}.vary"):
            sets = tuple(f"{k}={_text(v)}" for k, v in combo)
            label = _label(name, combo)
            out.append(Variant(label, (BrokerDef(first.rules, first.overrides + sets),
                                       *more), combo))
    _unique([v.name for v in out], where, "variants")
    return tuple(out)


def _broker(rules: Any, sets: Any, where: str, key: str, base: Path) -> BrokerDef:
    from replay.compare import parse_variant

    if not isinstance(rules, str):
        raise _fail(where, f"{key}.rules", "must be a preset name or rules TOML path")
    try:
        name, own = parse_variant(rules)
    except ValueError as exc:
        raise _fail(where, f"{key}.rules", str(exc).replace("--broker ", "")) from None
    if name.endswith(".toml"):
        name = str(_file(name, where, f"{key}.rules", base))
    return BrokerDef(name, tuple(own) + _overrides(sets, where, f"{key}.set"))


def _tapes(table: Mapping[str, Any], where: str, base: Path) -> tuple[TapeDef, ...]:
    from replay.synth import PROFILES

    out = []
    for name, value in table.items():
        _name(name, where, "tapes")
        key = f"tapes.{name}"
        if isinstance(value, str):
            value = {"file": value}
        if not isinstance(value, Mapping):
            raise _fail(where, key, "must be {file = PATH} or {synthetic = PROFILE, ...}")
        kinds = [k for k in TAPE_KINDS if k in value]
        if len(kinds) != 1:
            raise _fail(where, key, f"give exactly one of {', '.join(TAPE_KINDS)}")
        if kinds[0] == "file":
            if len(value) != 1:
                extra = [k for k in value if k != "file"]
                raise _fail(where, f"{key}.{extra[0]}", "a file tape takes only 'file'")
            out.append(TapeDef(name, "file", path=_file(value["file"], where, f"{key}.file",
                                                        base)))
            continue
        if kinds[0] == "episode":
            out.append(_episode_tape(name, value, where, key))
            continue
        if kinds[0] == "market":
            out.append(_market_tape(name, value, where, key, base))
            continue
        for k in value:
            if k not in SYNTH_KEYS:
                raise _fail(where, f"{key}.{k}", f"unknown key; valid: {', '.join(SYNTH_KEYS)}")
        profile = value["synthetic"]
        if profile not in PROFILES:
            raise _fail(where, f"{key}.synthetic", f"{profile!r}: choose one of "
                        f"{', '.join(PROFILES)}")
        days = value.get("days", 1)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 250:
            raise _fail(where, f"{key}.days", "must be a whole number of trading days in [1, 250]")
        shocks = value.get("shocks", {})
        if not isinstance(shocks, Mapping):
            raise _fail(where, f"{key}.shocks", "must be a table {DAY = MOVE}, e.g. {1 = -0.17}")
        moves = []
        for day, move in shocks.items():
            if not str(day).isdigit() or not 0 <= int(day) < days:
                raise _fail(where, f"{key}.shocks.{day}", f"a day index in [0, {days - 1}]")
            if isinstance(move, bool) or not isinstance(move, int | float) or \
                    not -1.0 < move < 10.0:
                raise _fail(where, f"{key}.shocks.{day}", "a fractional move in (-1, 10): "
                            "-0.17 is a 17% fall")
            moves.append((int(day), float(move)))
        out.append(TapeDef(name, "synthetic", profile=profile, days=days,
                           shocks=tuple(sorted(moves)), seed=_tape_seed(value, where, key),
                           start=_date(value.get("start", date(2024, 1, 2)), where,
                                       f"{key}.start")))
    _unique([t.name for t in out], where, "tapes")
    return tuple(out)


def _tape_seed(value: Mapping[str, Any], where: str, key: str) -> int | None:
    seed = value.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)
                             or not 0 <= seed <= MAX_SEED):
        raise _fail(where, f"{key}.seed", f"a whole number in [0, {MAX_SEED}] (omit it: "
                    "the tape takes each cell's seed)")
    return seed


def _date(value: Any, where: str, key: str) -> date:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            raise _fail(where, key, "must be a date YYYY-MM-DD") from None
    if not isinstance(value, date):
        raise _fail(where, key, "must be a date YYYY-MM-DD")
    return value


def _keys(value: Mapping[str, Any], allowed: Sequence[str], where: str, key: str) -> None:
    for k in value:
        if k not in allowed:
            raise _fail(where, f"{key}.{k}", f"unknown key; valid: {', '.join(allowed)}")


def _episode_tape(name: str, value: Mapping[str, Any], where: str, key: str) -> TapeDef:
    """``{episode = NAME, days = N, seed = S}``: a bundled episode's market tape
    (replay/episodes), its first ``days`` (default all), with its index closes."""
    from replay.episodes import list_episodes, load_episode

    _keys(value, EPISODE_KEYS, where, key)
    episode = value["episode"]
    if episode not in list_episodes():
        raise _fail(where, f"{key}.episode", f"{episode!r}: choose one of "
                    f"{', '.join(list_episodes())}")
    ep = load_episode(episode)
    days = value.get("days", ep.days)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= ep.days:
        raise _fail(where, f"{key}.days", f"a whole number of days in [1, {ep.days}] (the "
                    "episode's)")
    return TapeDef(name, "episode", episode=episode, days=days,
                   seed=_tape_seed(value, where, key), start=ep.start,
                   index_closes=tuple(sorted(ep.index_closes.items())))


def _market_tape(name: str, value: Mapping[str, Any], where: str, key: str,
                 base: Path) -> TapeDef:
    """``{market = BARS, start = DATE, ...}``: an anchored market tape, as ``cascade market
    build`` makes it (replay/market.py)."""
    from replay.market import parse_index_knot

    _keys(value, MARKET_KEYS, where, key)
    bars = value["market"]
    if not isinstance(bars, str) or not bars:
        raise _fail(where, f"{key}.market", "must be the path of daily bars of many codes")
    path = Path(bars) if Path(bars).is_absolute() else base / bars
    if not path.exists():
        raise _fail(where, f"{key}.market", f"{bars!r}: no such file or folder ({path})")
    path = path.resolve()
    if "start" not in value:
        raise _fail(where, key, "missing key 'start' (the first day, YYYY-MM-DD)")
    start = _date(value["start"], where, f"{key}.start")
    days = value.get("days", 1)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 250:
        raise _fail(where, f"{key}.days", "a whole number of trading days in [1, 250]")
    codes = value.get("codes", [])
    if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise _fail(where, f"{key}.codes", "a list of codes as text, e.g. [\"005930\"]")
    top = value.get("top")
    if top is not None and (not isinstance(top, int) or isinstance(top, bool) or top < 1):
        raise _fail(where, f"{key}.top", "a whole number of names >= 1")
    if codes and top:
        raise _fail(where, f"{key}.top", "give codes or top, not both")
    rate = value.get("rate", 400.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0 or \
            not math.isfinite(rate):
        raise _fail(where, f"{key}.rate", "decisions a second of the market: a number > 0")
    listing = value.get("listing", [])
    listing = [listing] if isinstance(listing, str) else listing
    if not isinstance(listing, list):
        raise _fail(where, f"{key}.listing", "a path or a list of paths")
    files = tuple(_file(p, where, f"{key}.listing", base) for p in listing)
    allow = value.get("allow_missing", False)
    if not isinstance(allow, bool):
        raise _fail(where, f"{key}.allow_missing", "true or false")
    knots = []
    for i, k in enumerate(value.get("index_knots", [])):
        try:
            parse_index_knot(str(k))
        except ValueError as exc:
            raise _fail(where, f"{key}.index_knots[{i}]", str(exc)) from None
        day, at, ret = (p.strip() for p in str(k).split(","))
        knots.append((day, at, float(ret)))
    closes = value.get("index_closes", {})
    if not isinstance(closes, Mapping):
        raise _fail(where, f"{key}.index_closes", "a table {KOSPI = 2676.19, ...}")
    return TapeDef(name, "market", path=path, days=days, seed=_tape_seed(value, where, key),
                   start=start, codes=tuple(codes), top=top, rate=float(rate),
                   listing=files, allow_missing=allow, knots=tuple(knots),
                   index_closes=tuple(sorted((str(k), float(v)) for k, v in closes.items())))


def _populations(table: Mapping[str, Any], where: str, base: Path) -> tuple[PopulationDef, ...]:
    from brokers.rules import read_toml

    out = []
    for name, value in table.items():
        _name(name, where, "populations")
        key = f"populations.{name}"
        if isinstance(value, str):
            value = {"file": value}
        if not isinstance(value, Mapping):
            raise _fail(where, key, "must be {file = PATH} or {spec = PATH, set, vary}")
        for k in value:
            if k not in POPULATION_KEYS:
                raise _fail(where, f"{key}.{k}", f"unknown key; valid: "
                            f"{', '.join(POPULATION_KEYS)}")
        if sum(k in value for k in ("file", "spec", "episode")) != 1:
            raise _fail(where, key, "give exactly one of file (accounts CSV or spec as it "
                        "is), spec (a population spec with set/vary) or episode (a bundled "
                        "episode's population, with set/vary)")
        if "file" in value:
            if "set" in value or "vary" in value:
                raise _fail(where, key, "set and vary change a population spec: give "
                            "spec = PATH instead of file")
            out.append(PopulationDef(name, _file(value["file"], where, f"{key}.file", base)))
            continue
        episode = None
        if "episode" in value:
            import tomllib

            from replay.episodes import list_episodes, load_episode

            episode, path = value["episode"], None
            if episode not in list_episodes():
                raise _fail(where, f"{key}.episode", f"{episode!r}: choose one of "
                            f"{', '.join(list_episodes())}")
            data = tomllib.loads(load_episode(episode).population)
        else:
            path = _file(value["spec"], where, f"{key}.spec", base)
            if path.suffix.lower() != ".toml":
                raise _fail(where, f"{key}.spec", "must be a population spec (.toml); a CSV "
                            "of accounts is file = PATH")
            data = read_toml(path)
        sets = value.get("set", {})
        if not isinstance(sets, Mapping):
            raise _fail(where, f"{key}.set", "must be a table of spec keys, e.g. "
                        "{accounts = 100000}")
        what = path.name if path else f"episode {episode}'s population"
        for k in sets:
            _check_spec_key(data, k, where, f"{key}.set.{k}", what)
        for combo in _combinations(value.get("vary"), where, f"{key}.vary"):
            for k, _ in combo:
                _check_spec_key(data, k, where, f"{key}.vary.{k}", what)
            out.append(PopulationDef(_label(name, combo), path,
                                     tuple(sets.items()) + combo, combo, episode))
    _unique([p.name for p in out], where, "populations")
    return tuple(out)


def _check_spec_key(data: Mapping[str, Any], key: str, where: str, at: str,
                    what: str) -> None:
    """A dotted key of a population spec: ``market.accounts`` needs a [market] table; the
    value itself is checked when the population is drawn (the whole spec, before any cell
    runs: :func:`replay.sweep.runner.check_inputs`)."""
    head, _, rest = key.partition(".")
    if rest and not isinstance(data.get(head), Mapping):
        raise _fail(where, at, f"{what} has no [{head}] table")


def apply_overrides(data: dict[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict:
    """A spec's keys with dotted ``overrides`` set (a copy)."""
    import copy

    out = copy.deepcopy(data)
    for key, value in overrides:
        *heads, last = key.split(".")
        node = out
        for h in heads:
            node = node[h]
        node[last] = value
    return out


def _modes(value: Any, where: str) -> tuple[str, ...]:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value:
        raise _fail(where, "sweep.modes", f"a list of modes from {', '.join(MODES)}")
    for m in value:
        if m not in MODES:
            raise _fail(where, "sweep.modes", f"{m!r}: choose from {', '.join(MODES)}")
    _unique(value, where, "sweep.modes")
    return tuple(value)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, Mapping):
        if set(value) != {"first", "count"}:
            raise _fail(where, "sweep.seeds", "a list of seeds, or {first = S, count = N}")
        first, count = value["first"], value["count"]
        for k, v in (("first", first), ("count", count)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise _fail(where, f"sweep.seeds.{k}", "must be a whole number >= 0")
        if count < 1 or count > MAX_CELLS or first + count - 1 > MAX_SEED:
            raise _fail(where, "sweep.seeds.count", f"must be in [1, {MAX_CELLS:,}], the "
                        f"seeds within [0, {MAX_SEED}]")
        return tuple(range(first, first + count))
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(where, "sweep.seeds", "a list of seeds, or {first = S, count = N}")
    for s in value:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED:
            raise _fail(where, "sweep.seeds", f"{s!r}: a seed is a whole number in "
                        f"[0, {MAX_SEED}]")
    _unique(value, where, "sweep.seeds")
    return tuple(value)


def _unique(values: Sequence[Any], where: str, what: str) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise _fail(where, what, f"{v!r} appears twice")
        seen.add(v)


def _cells(listed: Any, where: str, variants, tapes, populations, modes,
           seeds) -> tuple[Cell, ...]:
    axes = {"variant": {v.name: v for v in variants}, "tape": {t.name: t for t in tapes},
            "population": {p.name: p for p in populations}, "mode": {m: m for m in modes},
            "seed": {s: s for s in seeds}}
    size = len(variants) * len(tapes) * len(populations) * len(modes) * len(seeds)
    if listed is None:
        if size > MAX_CELLS:
            raise _fail(where, "cells", f"the axes make {size:,} cells, above the "
                        f"{MAX_CELLS:,} a sweep may hold: list a subset under [[cells]]")
        picks = [dict(zip(CELL_AXES, c, strict=True)) for c in
                 itertools.product(*(axes[a].values() for a in CELL_AXES))]
    else:
        if not isinstance(listed, list) or not listed:
            raise _fail(where, "cells", "a list of tables ([[cells]]), each naming axes' values")
        picks, seen = [], set()
        for i, entry in enumerate(listed):
            if not isinstance(entry, Mapping):
                raise _fail(where, f"cells[{i}]", "must be a table of axis = value")
            choice = []
            for a in CELL_AXES:
                if a in entry:
                    v = entry[a]
                    # a variant's or population's name stands for every value its vary made
                    family = [x for k, x in axes[a].items()
                              if isinstance(k, str) and isinstance(v, str)
                              and k.startswith(f"{v}[")]
                    if v not in axes[a] and not family:
                        raise _fail(where, f"cells[{i}].{a}", f"{v!r} is not one of "
                                    f"{', '.join(map(str, axes[a]))}")
                    choice.append([axes[a][v]] if v in axes[a] else family)
                else:
                    choice.append(list(axes[a].values()))
            for k in entry:
                if k not in CELL_AXES:
                    raise _fail(where, f"cells[{i}].{k}", f"unknown axis; the axes: "
                                f"{', '.join(CELL_AXES)}")
            for c in itertools.product(*choice):
                ident = (c[0].name, c[1].name, c[2].name, c[3], c[4])
                if ident not in seen:
                    seen.add(ident)
                    picks.append(dict(zip(CELL_AXES, c, strict=True)))
                if len(picks) > MAX_CELLS:
                    raise _fail(where, "cells", f"more than {MAX_CELLS:,} cells")
    return tuple(Cell(i, p["variant"], p["tape"], p["population"], p["mode"], p["seed"])
                 for i, p in enumerate(picks))


def _check_rules(spec: SweepSpec) -> None:
    """Every broker of every variant loads (its overrides name real fields, in range), and
    a variant's brokers of one kind do not share accounts."""
    from brokers.rules import load_rules

    for v in spec.variants:
        kinds: dict[tuple[str | None, str], str] = {}
        for b in v.brokers:
            try:
                rules = load_rules(b.rules, list(b.overrides))
            except (ValueError, FileNotFoundError) as exc:
                raise _fail(str(spec.path), f"variants.{v.name}", str(exc)) from None
            at = (b.population, rules.kind)
            if at in kinds:
                raise _fail(str(spec.path), f"variants.{v.name}", f"two {rules.kind} brokers "
                            f"({kinds[at]} and {rules.name}) on the same population: give "
                            "each its own population")
            kinds[at] = rules.name


# -- identity -------------------------------------------------------------------------------

def file_digest(path: Path, _cache: dict[tuple[str, int, int], str] = {}) -> str:  # noqa: B006
    """The SHA-256 of a file (memoised by path, size and modification time)."""
    st = path.stat()
    k = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if k not in _cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                h.update(block)
        _cache[k] = h.hexdigest()
    return _cache[k]


def population_files(p: PopulationDef) -> list[Path]:
    """The files a population reads: the CSV or spec, and a spec's bars and credit files."""
    from brokers.rules import read_toml

    if p.episode is not None:
        from replay.episodes import load_episode

        ep = load_episode(p.episode)
        return [ep.path, *ep.bars]
    files = [p.path]
    if p.path.suffix.lower() == ".toml":
        data = apply_overrides(read_toml(p.path), p.overrides)
        for key in ("bars", "credit_file", "credit_ratio"):
            for node in (data, data.get("market", {})):
                v = node.get(key) if isinstance(node, Mapping) else None
                if isinstance(v, str) and (p.path.parent / v).is_file():
                    files.append(p.path.parent / v)
    return files


def cell_identity(spec: SweepSpec, cell: Cell, code: dict[str, str] | None = None,
                  memo: dict[str, Any] | None = None) -> dict[str, Any]:
    """What decides a cell's figures, as plain data: the variant's rules and overrides,
    the tape (a file by its SHA-256; a synthetic tape by its recipe and seed), the
    populations (their files' SHA-256 and overrides), mode, seed, venue, injected orders,
    strategy, and the code's versions (``code``: replay.results.versions(), given once
    for many cells; ``memo`` keeps each population's record between calls)."""
    from replay.results import versions

    memo = {} if memo is None else memo

    def pop(p: PopulationDef) -> dict[str, Any]:
        if p.name not in memo:
            memo[p.name] = {"files": [file_digest(f) for f in population_files(p)],
                            "overrides": [[k, v] for k, v in p.overrides]}
        return memo[p.name]

    t = cell.tape
    tape: dict[str, Any]
    if t.kind == "file":
        tape = {"file": file_digest(t.path)}
    elif t.kind == "episode":
        from replay.episodes import load_episode

        ep = load_episode(t.episode)
        tape = {"episode": t.episode, "days": t.days, "seed": t.tape_seed(cell.seed),
                "files": [file_digest(f) for f in (ep.path, *ep.bars)]}
    elif t.kind == "market":
        bars = sorted(t.path.rglob("*")) if t.path.is_dir() else [t.path]
        tape = {"market": [file_digest(f) for f in bars if f.is_file()],
                "listing": [file_digest(f) for f in t.listing], "start": t.start.isoformat(),
                "days": t.days, "codes": list(t.codes), "top": t.top, "rate": t.rate,
                "allow_missing": t.allow_missing, "knots": [list(k) for k in t.knots],
                "index_closes": [list(c) for c in t.index_closes],
                "seed": t.tape_seed(cell.seed)}
    else:
        tape = {"synthetic": t.profile, "days": t.days, "shocks": [list(s) for s in t.shocks],
                "seed": t.tape_seed(cell.seed), "start": t.start.isoformat()}
    brokers = []
    for b in cell.variant.brokers:
        rules = {"rules": b.rules if not b.rules.endswith(".toml")
                 else file_digest(Path(b.rules)), "overrides": list(b.overrides)}
        if b.population is not None:
            rules["population"] = pop(spec.population(b.population))
        brokers.append(rules)
    strategy = None
    if spec.strategy:
        module = spec.strategy.rpartition(":")[0]
        strategy = {"strategy": spec.strategy.rpartition(":")[2], "params": spec.params,
                    "file": file_digest(Path(module)) if module.endswith(".py") else module}
    return {"brokers": brokers, "tape": tape, "population": pop(cell.population),
            "mode": cell.mode, "seed": cell.seed, "venue": spec.venue,
            "index_prior_close": spec.index_prior_close,
            "inject": file_digest(spec.inject) if spec.inject else None,
            "strategy": strategy, "versions": code if code is not None else versions()}


def keyed(spec: SweepSpec) -> SweepSpec:
    """``spec`` with every cell's key: the SHA-256 of :func:`cell_identity`."""
    from dataclasses import replace

    from replay.results import versions

    code, memo, cells = versions(), {}, []
    for c in spec.cells:
        text = json.dumps(cell_identity(spec, c, code, memo), sort_keys=True,
                          separators=(",", ":"))
        cells.append(replace(c, key=hashlib.sha256(text.encode()).hexdigest()))
    return replace(spec, cells=tuple(cells))
