"""Margin rules as data: one frozen :class:`Rules` per broker variant, loaded from TOML.

A rule set says when an account is in breach (the trigger and the price it is valued at),
how long it has to cure, and how the broker then sells (when, at what price, how much).
The four presets in ``brokers/presets/`` carry the numbers of docs/reference/krx.md: KRX credit
loans (신용융자), KRX cash-account margin (미수), CFD, and a crypto-style account that is
liquidated at once. A variant is a preset with fields overridden
(``load_rules("krx-credit", ["maintenance_ratio=1.3"])``, ``--set`` on the command line),
so rule variants can be benchmarked on the identical tape and seed (docs/brokers.md).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

PRESETS = Path(__file__).parent / "presets"

#: The margin kinds, each run by its class in brokers/margin.py; a kind registered there
#: (brokers.margin.register) is appended, so this list is extended only by that.
KINDS = ["credit", "misu", "cfd", "instant"]
VALUATIONS = ("close", "last")
EXECUTIONS = ("preopen_lower_limit", "market")
SIZES = ("restore", "all")

#: The kind-specific fields each kind reads; for the other kinds they must stay 0 (off),
#: so a value that would silently do nothing is rejected.
USED_BY_KIND: dict[str, frozenset[str]] = {
    "credit": frozenset({"maintenance_ratio", "target_ratio"}),
    "misu": frozenset({"haircut", "freeze_days", "freeze_threshold"}),
    "cfd": frozenset({"call_level", "liquidation_level"}),
    "instant": frozenset({"maintenance_ratio", "target_ratio"}),
}
_KIND_SPECIFIC = frozenset().union(*USED_BY_KIND.values())


@dataclass(frozen=True, kw_only=True)
class Rules:
    """One broker's margin rules (docs/reference/krx.md: 미수, 신용융자, CFD).

    Ratios are fractions (1.4, never 140). Days are XKRX trading days unless the name says
    calendar days. Fields that a kind does not use are 0 (see :data:`USED_BY_KIND`).
    """

    name: str
    kind: str
    description: str = ""
    source: str = ""
    #: Price the trigger is checked at: "close" (the day's close, after the close) or
    #: "last" (every trade's last price).
    valuation: str
    #: Collateral ratio (담보유지비율) = (holdings value + cash) / (loan + accrued interest);
    #: below it the account is in breach. credit and instant only.
    maintenance_ratio: float
    #: Ratio a "restore" sale brings the account back to; 0 means maintenance_ratio.
    target_ratio: float = 0.0
    #: XKRX trading days to cure a breach before the forced sale (0 = sold at once).
    grace_days: int
    #: "preopen_lower_limit": entered in the next pre-open auction at the lower limit;
    #: "market": a market order at once.
    execution: str
    #: "restore": sell just enough to restore the ratio (misu: cover the shortfall);
    #: "all": sell the whole position.
    size: str
    #: Down payment / deposit / initial margin as a fraction of the purchase.
    margin_rate: float
    #: Loan term in calendar days (credit: sold the morning after maturity); 0 = none.
    loan_term_days: int = 90
    #: Annual interest on the loan; not in docs/reference/krx.md: set your broker's rate.
    interest_rate: float = 0.0
    #: misu: the sale quantity is valued at prior close x (1 - haircut).
    haircut: float = 0.0
    #: misu: calendar days the account is frozen (100% cash) after a forced sale ...
    freeze_days: int = 0
    #: ... if the shortfall exceeded this many won.
    freeze_threshold: int = 0
    #: cfd: margin level (equity / required margin) below which, at the close, a top-up is
    #: due within grace_days.
    call_level: float = 0.0
    #: cfd: margin level at or below which the position is sold at once, intraday.
    liquidation_level: float = 0.0
    #: Probability that an account in a margin call tops up before the deadline (a seeded
    #: draw by the engine).
    cure_probability: float = 0.0
    #: Alternatively: an account tops up while its loss vs entry is below this fraction
    #: (e.g. 0.2); -1 = off.
    cure_max_loss: float = -1.0

    def __post_init__(self) -> None:
        types = field_types()
        for f in fields(self):
            value = getattr(self, f.name)
            want = types[f.name]
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif not isinstance(value, want) or isinstance(value, bool):
                raise RuleError(f.name, f"{f.name} = {value!r} must be {_TYPE_WORDS[want]}")
            elif want is float and not math.isfinite(value):
                raise RuleError(f.name, f"{f.name} = {value!r} must be a finite number")
        if not self.name.strip():
            raise RuleError("name", "name must not be empty")
        _choice("kind", self.kind, KINDS)
        _choice("valuation", self.valuation, VALUATIONS)
        _choice("execution", self.execution, EXECUTIONS)
        _choice("size", self.size, SIZES)
        used = USED_BY_KIND[self.kind]
        for name in sorted(_KIND_SPECIFIC - used):
            if getattr(self, name) != 0:
                users = [k for k in KINDS if name in USED_BY_KIND[k]]
                raise RuleError(name, f"{name} = {getattr(self, name)!r} is not used by kind "
                                f"{self.kind!r} (only by {', '.join(users)}); set it to 0")
        for name, valid in RANGES.items():
            value = getattr(self, name)
            if name in _KIND_SPECIFIC and name not in used:
                continue  # 0, checked above
            if value in valid.off:
                continue
            if not valid.contains(value):
                raise RuleError(name, f"{name} = {value!r} is outside {valid.text()}; "
                                f"{valid.hint}")
        if self.target_ratio != 0 and self.target_ratio < self.maintenance_ratio:
            raise RuleError("target_ratio", f"target_ratio = {self.target_ratio!r} must be 0 "
                            f"(use maintenance_ratio) or >= maintenance_ratio "
                            f"({self.maintenance_ratio!r}); {RATIOS}")
        if self.kind == "cfd" and not self.liquidation_level < self.call_level:
            raise RuleError("liquidation_level", f"liquidation_level = "
                            f"{self.liquidation_level!r} must be below call_level "
                            f"({self.call_level!r}); {RATIOS}")
        if self.cure_probability > 0 and self.cure_max_loss != -1.0:
            raise RuleError("cure_max_loss", f"set cure_probability "
                            f"({self.cure_probability!r}) or cure_max_loss "
                            f"({self.cure_max_loss!r}), not both")

    @property
    def restore_ratio(self) -> float:
        """The ratio a "restore" sale brings a credit or instant account back to."""
        return self.target_ratio or self.maintenance_ratio

    def to_toml(self) -> str:
        """The rules as TOML that :func:`load_rules` reads back to an equal object."""
        lines = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                text = json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
            else:
                text = repr(value)
            lines.append(f"{f.name} = {text}")
        return "\n".join(lines) + "\n"


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number"}

#: The largest amount of won (or price x size units) a broker input may hold: a loan, cash,
#: a position's shares x entry price, freeze_threshold. 10^12 won (one trillion) leaves room
#: for every product the broker computes in int64 (a value x 10^4 basis points x a trigger
#: ratio of at most 10) and keeps an account's sums exact in float64 (below 2^53).
MAX_WON = 10**12

RATIOS = "ratios are fractions: 1.4 = 140%"
RATES = "rates are fractions: 0.4 = 40%"


class RuleError(ValueError):
    """A rules field out of its documented range; ``key`` names the field."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Range:
    """A numeric field's valid interval (docs/brokers.md, "Every parameter"), with the
    values that mean "off" (``off``) and the hint an out-of-range value is told."""

    low: float
    high: float
    hint: str
    low_open: bool = False
    high_open: bool = False
    off: tuple[float, ...] = ()

    def contains(self, value: float) -> bool:
        return (value > self.low if self.low_open else value >= self.low) and (
            value < self.high if self.high_open else value <= self.high)

    def text(self) -> str:
        """``[1, 3]``, ``(0, 1]``, ``[0, 10^12]``; with the off values: ``0 or [1, 3]``."""
        def num(x: float) -> str:
            return "10^12" if x == MAX_WON else f"{x:g}"
        body = (f"{'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}"
                f"{')' if self.high_open else ']'}")
        return " or ".join([*(f"{x:g}" for x in self.off), body])


_DAYS = "days are whole days, e.g. grace_days=1"
#: Every numeric field's valid range, enforced at load (and listed in docs/brokers.md). Fields
#: a kind does not use must be 0 instead (:data:`USED_BY_KIND`).
RANGES: dict[str, Range] = {
    "maintenance_ratio": Range(1.0, 3.0, RATIOS),
    "target_ratio": Range(1.0, 3.0, RATIOS, off=(0.0,)),
    "grace_days": Range(0, 30, "grace_days counts XKRX trading days, e.g. 1 = D+1"),
    "margin_rate": Range(0.0, 1.0, RATES, low_open=True),
    "loan_term_days": Range(0, 3650, "loan_term_days counts calendar days, e.g. 90"),
    "interest_rate": Range(0.0, 1.0, RATES + " a year"),
    "haircut": Range(0.0, 1.0, RATES, high_open=True),
    "freeze_days": Range(0, 365, "freeze_days counts calendar days, e.g. 30"),
    "freeze_threshold": Range(0, MAX_WON, "freeze_threshold is in won, e.g. 100000"),
    "call_level": Range(0.0, 1.0, RATIOS, low_open=True),
    "liquidation_level": Range(0.0, 0.9, RATIOS),
    "cure_probability": Range(0.0, 1.0, "a probability: 0.3 = 30%"),
    "cure_max_loss": Range(0.0, 1.0, RATES, off=(-1.0,)),
}


def field_types() -> dict[str, type]:
    """Each field's Python type (str, int or float), from the annotations."""
    words = {"str": str, "int": int, "float": float}
    return {f.name: words[f.type] if isinstance(f.type, str) else f.type
            for f in fields(Rules)}


def _choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise RuleError(name, f"{name} = {value!r} must be one of {', '.join(allowed)}")


def preset_names() -> list[str]:
    """Names of the shipped presets (the TOML files in brokers/presets)."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def list_presets() -> list[Rules]:
    """Every shipped preset, in the order of :data:`KINDS`."""
    rules = [load_rules(name) for name in preset_names()]
    return sorted(rules, key=lambda r: (KINDS.index(r.kind), r.name))


def read_toml(path: Path) -> dict:
    """A TOML file as a dict. Invalid TOML (a key given twice too), text that is not
    UTF-8, a missing file: one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8: "
                         "save it as UTF-8 (a CP949/EUC-KR file is not)") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None


def load_rules(spec: str | Path, overrides: Sequence[str] = ()) -> Rules:
    """Rules from a preset name (``"krx-credit"``) or a TOML file, with ``key=value``
    overrides applied (``["maintenance_ratio=1.3", "grace_days=2"]``), each parsed as the
    field's type (:func:`parse_overrides`). Every error is one line naming the file or the
    ``--set`` item, the key, the value and what is allowed (:data:`RANGES`)."""
    path = _resolve(spec)
    data = read_toml(path)
    known = field_types()
    for key in data:
        if key not in known:
            raise ValueError(f"{path}: unknown key {key!r}; valid keys: {', '.join(known)}")
    try:
        rules = Rules(**data)
    except TypeError as exc:  # a required key is missing
        missing = [f.name for f in fields(Rules) if f.name not in data and _required(f)]
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if not overrides:
        return rules
    changes, given = _parse(overrides)
    try:
        return replace(rules, **changes)
    except RuleError as exc:
        where = f"--set {given[exc.key]}" if exc.key in given else f"{path} with --set"
        raise ValueError(f"{where}: {exc}") from None


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


#: Plain ASCII numbers only: ``1_0`` (Python's digit grouping) and full-width digits are
#: refused rather than read as 10.
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["maintenance_ratio=1.3"]`` as ``{"maintenance_ratio": 1.3}``, typed by field.

    Numbers are plain ASCII (``1_0``, ``１０``, ``nan`` are errors); a key given twice is an
    error (which value was meant is ambiguous)."""
    return _parse(overrides)[0]


def _parse(overrides: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The typed values, and each key's ``KEY=VALUE`` text as given."""
    known = field_types()
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for text in overrides:
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"--set {text!r}: expected key=value, e.g. maintenance_ratio=1.3")
        if key not in known:
            raise ValueError(f"--set {text!r}: unknown key {key!r}; valid keys: "
                             f"{', '.join(known)}")
        if key in given:
            raise ValueError(f"--set {text}: {key} is given twice (first {given[key]}); "
                             "give each key once")
        want = known[key]
        pattern = {int: _INT, float: _FLOAT}.get(want)
        if pattern is not None and not pattern.fullmatch(value):
            hint = f"; {RANGES[key].hint}" if key in RANGES else ""
            raise ValueError(f"--set {text}: {key} = {value!r} must be {_TYPE_WORDS[want]} "
                             f"in plain ASCII digits{hint}")
        out[key] = want(value)
        given[key] = f"{key}={value}"
    return out, given


def _resolve(spec: str | Path) -> Path:
    """A preset name to its file; anything that looks like a path to that path."""
    text = str(spec)
    looks_like_path = isinstance(spec, Path) or text.endswith(".toml") or "/" in text \
        or "\\" in text
    if looks_like_path:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such rules file")
        return path
    path = PRESETS / f"{text}.toml"
    if not path.is_file():
        raise ValueError(f"unknown preset {text!r}; presets: {', '.join(preset_names())} "
                         "(or give the path of a .toml file)")
    return path
