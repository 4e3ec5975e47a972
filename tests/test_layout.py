"""The house rules of DESIGN.md, checked on the source: one-way layering, no private reach-ins.

* ``dataset`` <- ``drum_env`` <- ``agents`` <- ``benchmarks``: a package never imports one to
  its right.
* No module imports another module's ``_private`` name (relative imports included: the modules
  of a subpackage such as ``dataset.metrics`` share public kernels, not private ones), and no
  module reads a ``_private`` attribute of an object unless its own module defines that name
  (its own classes' state).
  Allowed: NamedTuple's public ``_fields`` / ``_asdict`` / ``_replace`` / ``_make``, the seed's
  metric method names (``_hit_density`` ... ``_aggregate``: the seed document's API).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dataset", "drum_env", "agents", "benchmarks")
ORDER = {name: i for i, name in enumerate(PACKAGES)}
ALLOWED = {
    "_fields", "_asdict", "_replace", "_make",
    # the seed's method names (DESIGN.md: CompleteHierarchicalDrumDataset, kept whole)
    "_hit_density", "_fraction_dense_bars", "_ioi_stats", "_co_occurrence", "_n_grams",
    "_fast_patterns", "_transitions", "_syncopation", "_phrase_structure", "_section_metrics",
    "_song_metrics", "_aggregate",
}  # fmt: skip


def _modules() -> list[Path]:
    return [f for pkg in PACKAGES for f in sorted((ROOT / pkg).rglob("*.py"))]


def _defined_private(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, assigned names and attributes."""
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            names.add(n.attr)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
            names.add(n.value)  # names built by getattr / __slots__ / STATE_BUFFERS tables
    return {name for name in names if name.startswith("_")}


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_reach_ins_and_one_way_layering(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _defined_private(tree)
    pkg = path.relative_to(ROOT).parts[0]
    problems = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and (n.module or n.level):
            # a relative import (``from .kernels import x``) stays inside its own package
            top = pkg if n.level else n.module.split(".")[0]
            module = "." * n.level + (n.module or "")
            if top in ORDER and ORDER[top] > ORDER[pkg]:
                problems.append(f"line {n.lineno}: {pkg} imports {module} (layering)")
            if top in ORDER:
                for alias in n.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        problems.append(f"line {n.lineno}: imports {module}.{alias.name}")
        elif isinstance(n, ast.Import):
            for alias in n.names:
                top = alias.name.split(".")[0]
                if top in ORDER and ORDER[top] > ORDER[pkg]:
                    problems.append(f"line {n.lineno}: {pkg} imports {alias.name} (layering)")
        elif isinstance(n, ast.Attribute) and n.attr.startswith("_") and n.attr[:2] != "__":
            if isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"):
                continue
            if n.attr not in own and n.attr not in ALLOWED:
                problems.append(f"line {n.lineno}: reads another module's private .{n.attr}")
    assert not problems, "\n".join(problems)


def test_no_code_of_the_repository_imports_a_0_3_path():
    """The aliases of ``agents.aliases`` are for users; the repository imports the new homes."""
    from agents.aliases import MOVED

    old = {name.split(".")[1] for name in MOVED}
    files = _modules() + sorted((ROOT / "tests").rglob("*.py")) + sorted(
        (ROOT / "examples").rglob("*.py"))  # fmt: skip
    problems = []
    for path in files:
        if path.name in ("aliases.py", "test_aliases.py"):
            continue
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(n, ast.ImportFrom) and n.module in MOVED:
                problems.append(f"{path.relative_to(ROOT)}:{n.lineno} from {n.module}")
            elif isinstance(n, ast.ImportFrom) and n.module == "agents":
                problems += [f"{path.relative_to(ROOT)}:{n.lineno} from agents import {a.name}"
                             for a in n.names if a.name in old]  # fmt: skip
            elif isinstance(n, ast.Import):
                problems += [f"{path.relative_to(ROOT)}:{n.lineno} import {a.name}"
                             for a in n.names if a.name in MOVED]  # fmt: skip
    assert not problems, "\n".join(problems)
