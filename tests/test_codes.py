"""Every code is defined once, beside its names (venues/codes.py, brokers/margin.py): each
constant names its own entry, and no other module defines a code of the same family."""

from __future__ import annotations

import ast
from pathlib import Path

import brokers.margin as margin
import venues.codes as codes

ROOT = Path(__file__).resolve().parents[1]


def constants(module, prefix: str) -> dict[str, int]:
    return {k: v for k, v in vars(module).items() if k.startswith(prefix) and isinstance(v, int)}


def test_each_status_reason_and_source_names_its_own_entry():
    for name, code in constants(codes, "ST_").items():
        assert codes.STATUS_NAMES[code] == name[3:].lower(), name
    for name, code in constants(codes, "RJ_").items():
        assert codes.REJECTION_CODES[code] == name[3:].lower(), name
    assert len(codes.REASON_NAMES) == len(codes.REJECTION_CODES)
    sources = {"SRC_HISTORY": "history", "SRC_INJECTED": "injected",
               "SRC_REAPPLIED": "reapplied", "SRC_HIST_CROSS": "history_cross",
               "SRC_AUCTION": "auction"}
    assert {k: codes.SOURCES[v] for k, v in constants(codes, "SRC_").items()} == sources
    for name in ("MARKET", "LIMIT", "IOC", "FOK"):
        assert codes.ORDER_TYPE_NAMES[getattr(codes, name)] == name.lower()
    assert codes.ORDER_TYPE_NAMES[codes.CANCEL_ORDER] == "cancel"


def test_the_tape_codes_are_their_letters():
    assert {chr(v): v for v in codes.ACTIONS.values()} == codes.ACTIONS
    assert (codes.BID, codes.ASK, codes.NONE) == tuple(map(ord, "BAN"))
    flags = constants(codes, "F_")
    assert len(set(flags.values())) == len(flags)  # one bit each
    assert all(v & (v - 1) == 0 for v in flags.values())


def test_each_account_state_names_its_own_entry():
    for name in ("OK", "CALLED", "SELLING", "FROZEN"):
        assert margin.STATE_NAMES[getattr(margin, name)] == name.lower()


def test_no_other_module_defines_a_code_of_these_families():
    """A module-level assignment to a name of a code family (ST_, RJ_, SRC_, the sides, the
    order types, the state names) anywhere but where the family lives is a second
    definition."""
    families = ("ST_", "RJ_", "SRC_")
    single = {"BID", "ASK", "SIDE_BID", "SIDE_ASK", "MARKET", "LIMIT", "IOC", "FOK",
              "STATUS_NAMES", "REASON_NAMES", "SOURCE_NAMES", "STATE_NAMES", "REASONS"}
    homes = {ROOT / "venues" / "codes.py", ROOT / "brokers" / "margin.py"}
    bad = []
    for package in ("venues", "brokers", "strategies", "replay"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path in homes:
                continue
            for node in ast.parse(path.read_text()).body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                for t in targets:
                    names = [t] if isinstance(t, ast.Name) else \
                        [e for e in getattr(t, "elts", []) if isinstance(e, ast.Name)]
                    for n in names:
                        if n.id.startswith(families) or n.id in single:
                            bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {n.id}")
    assert not bad, "codes defined outside their home:\n" + "\n".join(bad)
