"""The layers' import graph (docs/architecture.md): nothing above venues/ reads the arena's
layout, venues/ imports nothing above it, brokers/ neither strategies/ nor replay/.

The layout constants are read from the modules that own the arena's blocks (every integer
named with one of the arena's prefixes, and the addressing kernels), so the check follows
the code; every module of brokers/, strategies/ and replay/ is parsed and each of its
imports resolved, whatever name or alias it uses."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The modules that own a block of the arena, and the prefixes of its layout constants.
OWNERS = ("venues.book", "venues.rules", "venues.loop")
PREFIXES = ("H_", "I_", "L_", "O_", "R_", "C_", "FS_")  # header, columns, counters, floats
ADDRESSING = ("ii", "li_", "oi", "ri")


def layout() -> dict[str, set[str]]:
    """Per owning module, the names of its layout constants (and addressing kernels)."""
    out = {}
    for name in OWNERS:
        module = importlib.import_module(name)
        names = {k for k, v in vars(module).items()
                 if k.startswith(PREFIXES) and isinstance(v, int) and not isinstance(v, bool)}
        names |= {k for k in ADDRESSING if hasattr(module, k)}
        names |= {k for k in ("BOOK_COLS", "BOOK_HEADER", "I_COLS", "HEADER") if hasattr(module, k)}
        out[name] = names
    return out


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path):
    """(module imported from, names, line) of every import outside ``if TYPE_CHECKING``;
    ``import a.b as c`` gives the attribute names read off ``c``."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if _type_checking(node) for n in ast.walk(node)}
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [a.name for a in node.names]
            yield node.module, names, node.lineno
            for a in node.names:  # from venues import book -> book.I_LAST
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, [], node.lineno
                aliases[a.asname or a.name.split(".")[0]] = a.asname and a.name or \
                    a.name.split(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases:
            yield aliases[node.value.id], [node.attr], node.lineno


def test_nothing_above_venues_reads_the_arenas_layout():
    owned = layout()
    assert all(owned.values()) and "I_LAST" in owned["venues.book"]
    bad = []
    for package in ("brokers", "strategies", "replay"):
        for path in modules(package):
            for module, names, line in imports(path):
                if module in owned:
                    bad += [f"{path.relative_to(ROOT)}:{line}: {module}.{n}"
                            for n in names if n in owned[module]]
    assert not bad, "layout constants read above venues/:\n" + "\n".join(bad)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("venues", ("brokers", "strategies", "replay")),
    ("brokers", ("strategies", "replay")),
])
def test_dependencies_point_one_way(package, forbidden):
    bad = [f"{path.relative_to(ROOT)}:{line}: {module}"
           for path in modules(package) for module, _, line in imports(path)
           if module.split(".")[0] in forbidden]
    assert not bad, f"{package}/ imports above it:\n" + "\n".join(bad)


def test_the_check_sees_a_layout_constant(tmp_path):
    """The parser finds each way of naming one (so the tests above can fail)."""
    probe = tmp_path / "probe.py"
    probe.write_text("from venues.book import I_LAST\nimport venues.loop as vl\n"
                     "from venues import rules\nx = vl.I_WAKE_BELOW + rules.H_RULES\n")
    found = {(m, n) for m, names, _ in imports(probe) for n in names}
    owned = layout()
    hits = {(m, n) for m, n in found if m in owned and n in owned[m]}
    assert hits == {("venues.book", "I_LAST"), ("venues.loop", "I_WAKE_BELOW"),
                    ("venues.rules", "H_RULES")}
