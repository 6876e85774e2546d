"""The import graph between the top-level packages points one way only (README, Layout):
``wire`` imports nothing of the project, ``recordings`` only ``wire``, ``matcher`` nothing,
``sessionserver`` the three of them, ``pen_gateway`` only ``wire``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("wire", "recordings", "matcher", "sessionserver", "pen_gateway")
ALLOWED = {
    "wire": set(),
    "recordings": {"wire"},
    "matcher": set(),
    "sessionserver": {"wire", "matcher", "recordings"},
    "pen_gateway": {"wire"},
}


def project_imports(package: str) -> dict[str, set[str]]:
    """For each module of ``package``, the other top-level project packages it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if "build" in path.relative_to(ROOT).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = (names & set(PACKAGES)) - {package}
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_downward(package: str) -> None:
    modules = project_imports(package)
    assert modules, f"{package} has no modules"
    wrong = {module: sorted(names - ALLOWED[package]) for module, names in modules.items()
             if names - ALLOWED[package]}
    assert wrong == {}
