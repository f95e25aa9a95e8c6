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
import tomllib
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

PRESETS = Path(__file__).parent / "presets"

KINDS = ("credit", "misu", "cfd", "instant")
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
                raise ValueError(f"rules: {f.name} = {value!r} must be "
                                 f"{_TYPE_WORDS[want]}")
            elif want is float and not math.isfinite(value):
                raise ValueError(f"rules: {f.name} = {value!r} must be a finite number")
        if not self.name.strip():
            raise ValueError("rules: name must not be empty")
        _choice("kind", self.kind, KINDS)
        _choice("valuation", self.valuation, VALUATIONS)
        _choice("execution", self.execution, EXECUTIONS)
        _choice("size", self.size, SIZES)
        for name in ("grace_days", "loan_term_days", "freeze_days", "freeze_threshold"):
            if getattr(self, name) < 0:
                raise ValueError(f"rules: {name} = {getattr(self, name)!r} must be >= 0")
        _between("margin_rate", self.margin_rate, 0.0, 1.0, low_open=True)
        _between("interest_rate", self.interest_rate, 0.0, 1.0)
        _between("cure_probability", self.cure_probability, 0.0, 1.0)
        if self.cure_max_loss != -1.0:
            _between("cure_max_loss", self.cure_max_loss, 0.0, 1.0, extra="or -1 (off)")
        if self.cure_probability > 0 and self.cure_max_loss != -1.0:
            raise ValueError(f"rules: set cure_probability ({self.cure_probability!r}) or "
                             f"cure_max_loss ({self.cure_max_loss!r}), not both")
        used = USED_BY_KIND[self.kind]
        for name in sorted(_KIND_SPECIFIC - used):
            if getattr(self, name) != 0:
                users = [k for k in KINDS if name in USED_BY_KIND[k]]
                raise ValueError(f"rules: {name} = {getattr(self, name)!r} is not used by "
                                 f"kind {self.kind!r} (only by {', '.join(users)}); set it "
                                 "to 0")
        if "maintenance_ratio" in used:
            if self.maintenance_ratio < 1.0:
                raise ValueError(f"rules: maintenance_ratio = {self.maintenance_ratio!r} "
                                 "must be >= 1.0 (below 1.0 the equity is already negative)")
            if self.target_ratio != 0 and self.target_ratio < self.maintenance_ratio:
                raise ValueError(f"rules: target_ratio = {self.target_ratio!r} must be 0 (use "
                                 f"maintenance_ratio) or >= maintenance_ratio "
                                 f"({self.maintenance_ratio!r})")
        if self.kind == "misu":
            _between("haircut", self.haircut, 0.0, 1.0, high_open=True)
        if self.kind == "cfd":
            _between("call_level", self.call_level, 0.0, 1.0, low_open=True)
            if not 0.0 <= self.liquidation_level < self.call_level:
                raise ValueError(f"rules: liquidation_level = {self.liquidation_level!r} "
                                 f"must be >= 0 and below call_level ({self.call_level!r})")

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


def field_types() -> dict[str, type]:
    """Each field's Python type (str, int or float), from the annotations."""
    words = {"str": str, "int": int, "float": float}
    return {f.name: words[f.type] if isinstance(f.type, str) else f.type
            for f in fields(Rules)}


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"rules: {name} = {value!r} must be one of {', '.join(allowed)}")


def _between(name: str, value: float, low: float, high: float, low_open: bool = False,
             high_open: bool = False, extra: str = "") -> None:
    ok = (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"rules: {name} = {value!r} must be in {interval}"
                         + (f" {extra}" if extra else ""))


def preset_names() -> list[str]:
    """Names of the shipped presets (the TOML files in brokers/presets)."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def list_presets() -> list[Rules]:
    """Every shipped preset, in the order of :data:`KINDS`."""
    rules = [load_rules(name) for name in preset_names()]
    return sorted(rules, key=lambda r: (KINDS.index(r.kind), r.name))


def read_toml(path: Path) -> dict:
    """A TOML file as a dict; invalid TOML is an error naming the file."""
    with path.open("rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from None


def load_rules(spec: str | Path, overrides: Sequence[str] = ()) -> Rules:
    """Rules from a preset name (``"krx-credit"``) or a TOML file, with ``key=value``
    overrides applied (``["maintenance_ratio=1.3", "grace_days=2"]``), each coerced to the
    field's type. Every error names the file or override, the key and what is allowed."""
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
    changes = parse_overrides(overrides)
    try:
        return replace(rules, **changes)
    except ValueError as exc:
        raise ValueError(f"{spec} with --set {' '.join(overrides)}: {exc}") from None


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["maintenance_ratio=1.3"]`` as ``{"maintenance_ratio": 1.3}``, typed by field."""
    known = field_types()
    out: dict[str, Any] = {}
    for text in overrides:
        key, sep, value = text.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"--set {text!r}: expected key=value, e.g. maintenance_ratio=1.3")
        if key not in known:
            raise ValueError(f"--set {text!r}: unknown key {key!r}; valid keys: "
                             f"{', '.join(known)}")
        want = known[key]
        try:
            out[key] = want(value)
        except ValueError:
            raise ValueError(f"--set {text!r}: {key} must be {_TYPE_WORDS[want]}, "
                             f"got {value!r}") from None
    return out


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
