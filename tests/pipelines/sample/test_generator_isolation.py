"""The sample generator and its synthetic schemas stay out of the product's path."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("datasets_cards", "annotators", "pipelines", "trainer")
GENERATOR = "pipelines.sample.generator"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_no_product_module_imports_the_generator():
    offenders = []
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if (ROOT / "pipelines" / "sample" / "generator") in path.parents:
                continue
            if any(m == GENERATOR or m.startswith(f"{GENERATOR}.") for m in imported_modules(path)):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_generator_and_its_schemas_live_in_one_folder():
    names = {p.stem for p in (ROOT / "pipelines" / "sample" / "generator").glob("*.py")}
    assert {"rlds_schemas", "synthetic_rlds", "simulate", "scene", "tables"} <= names
    assert not (ROOT / "pipelines" / "rlds").exists()
