"""The method's public API is fully typed, and the package says so (PEP 561 `py.typed`).

Why: users call `deltalora.core` from their own training code, often under a type checker; an
unannotated public function silently becomes `Any` there. Read from the source with `ast`, so the
check needs no import and covers functions that only run on a GPU or under a Trainer.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "deltalora" / "core"


def _public_functions():
    for path in sorted(CORE.glob("*.py")):
        if path.name.startswith("_") and path.name != "__init__.py":
            continue  # private modules: their names are not the public API
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                yield path.name, node.name, node
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and (
                        not item.name.startswith("_") or item.name == "__init__"
                    ):
                        yield path.name, f"{node.name}.{item.name}", item


def _missing(fn: ast.FunctionDef) -> list[str]:
    args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    missing = [a.arg for a in args if a.annotation is None and a.arg not in ("self", "cls")]
    for extra in (fn.args.vararg, fn.args.kwarg):
        if extra is not None and extra.annotation is None:
            missing.append(extra.arg)
    if fn.returns is None:
        missing.append("return")
    return missing


def test_public_api_of_the_method_is_annotated():
    found = list(_public_functions())
    assert len(found) >= 10, [n for _, n, _ in found]  # DeltaLoRA's methods, the callback, the helpers
    bad = {f"{mod}:{name}": m for mod, name, fn in found if (m := _missing(fn))}
    assert not bad, f"public functions of deltalora.core without type hints: {bad}"


def test_package_is_marked_typed():
    assert (CORE.parent / "py.typed").is_file()
    pyproject = (CORE.parents[1] / "pyproject.toml").read_text()
    assert '"py.typed"' in pyproject  # shipped as package data
