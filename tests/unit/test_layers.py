"""Dependencies point one way: venues ← actors ← cluster, and only shells import Ray."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "venues": {"actors", "cluster", "ray"},
    "actors": {"cluster"},
}
# Modules of actors/ allowed to import ray: the thin actor shells.
RAY_SHELLS = {"actors/shells"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no Python files under {package}/"
    bad = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        forbidden = set(FORBIDDEN[package])
        if package == "actors" and not any(rel.startswith(s) for s in RAY_SHELLS):
            forbidden.add("ray")
        hits = _imports(path) & forbidden
        if hits:
            bad.append(f"{rel} imports {sorted(hits)}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "m.py"
    bad.write_text("from cluster import Engine\nimport ray.util\n")
    assert _imports(bad) == {"cluster", "ray"}
