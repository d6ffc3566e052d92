"""No import cycles inside the package, lazy (function-level) imports included.

Why: a cycle hides which module is the foundation and which builds on it, and lazy imports that exist
only to dodge a cycle make the order in which modules load matter. The graph is read from the source
with `ast` (nothing is imported), so an import inside a function counts like one at the top. A module
that imports by name (``importlib.import_module``) imports every package module it names in a string.
Imports under ``if TYPE_CHECKING:`` count too: they do not run, but they still tie the two modules'
designs together (and type checkers follow them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG_DIR = Path(__file__).resolve().parents[1] / "deltalora"

# Cycles that are known and owned by another piece of work. Each entry must still exist (the test
# fails when it is gone, so the list shrinks with the code).
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST):
    """Every import statement, at any depth (function bodies and ``if TYPE_CHECKING:`` included)."""
    return (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))


def _named_modules(tree: ast.AST, modules: set[str]) -> list[str]:
    """Package modules named in strings (docstrings aside) of a module that calls ``import_module``."""
    calls = any(
        isinstance(n, ast.Call)
        and getattr(n.func, "attr", getattr(n.func, "id", None)) in ("import_module", "__import__")
        for n in ast.walk(tree)
    )
    if not calls:
        return []
    docs = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and id(n) not in docs
        and n.value in modules
    ]


def _absolute_base(node: ast.ImportFrom, mod: str, is_pkg: bool) -> str:
    """The absolute module a ``from X import ...`` statement reads from (relative levels resolved)."""
    base = node.module or ""
    if node.level:
        anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return base


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a submodule named in ``from X import sub`` counts)."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(files)

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[mod].update(m for m in _named_modules(tree, modules) if m != mod)
        for node in _imports(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = _absolute_base(node, mod, is_pkg)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                r = resolve(t)
                if r is not None and r != mod and r.startswith(root.name):
                    graph[mod].add(r)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[frozenset[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.add(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    out.append(frozenset(comp))
    return out


def test_package_has_no_import_cycles():
    found = cycles(import_graph(PKG_DIR))
    unexpected = [sorted(c) for c in found if c not in ALLOWED_CYCLES]
    assert not unexpected, f"import cycles in deltalora/: {unexpected}"
    gone = [sorted(c) for c in ALLOWED_CYCLES if c not in found]
    assert not gone, f"allowed cycles no longer exist; remove them from ALLOWED_CYCLES: {gone}"


def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    for name, text in files.items():
        p = pkg / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return pkg


@pytest.mark.parametrize(
    "files, expected",
    [
        # a lazy import inside a function closes the cycle
        (
            {"__init__.py": "", "a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n"},
            [{"pkg.a", "pkg.b"}],
        ),
        # a cycle through a submodule named in `from package import submodule`, three modules long
        (
            {
                "__init__.py": "",
                "sub/__init__.py": "",
                "sub/c.py": "from pkg import a\n",
                "a.py": "import pkg.b\n",
                "b.py": "from pkg.sub import c\n",
            },
            [{"pkg.a", "pkg.b", "pkg.sub.c"}],
        ),
        # TYPE_CHECKING imports count
        (
            {
                "__init__.py": "",
                "a.py": "from . import b\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n",
            },
            [{"pkg.a", "pkg.b"}],
        ),
        # a re-export through importlib.import_module by name
        (
            {
                "__init__.py": "",
                "a.py": "from . import b\n",
                "b.py": (
                    "import importlib\n_LAZY = {'x': 'pkg.a'}\n"
                    "def f():\n    return importlib.import_module(_LAZY['x'])\n"
                ),
            },
            [{"pkg.a", "pkg.b"}],
        ),
        # a chain is not a cycle
        (
            {
                "__init__.py": "",
                "a.py": "from . import b\n",
                "b.py": "import os\nfrom .c import y\n",
                "c.py": "",
            },
            [],
        ),
    ],
)
def test_cycle_finder(tmp_path, files, expected):
    """The finder itself, on small packages whose cycles are known."""
    found = cycles(import_graph(_write(tmp_path, files)))
    assert sorted(map(sorted, found)) == sorted(map(sorted, expected))


def unresolved_imports(root: Path) -> list[str]:
    """Imports of the package's own modules (lazy ones included) that name no module or package of it.

    Lazy imports only fail when their function runs: a rename that misses one (as a merge once did in
    `deltalora.mirror`) breaks a command that no fast test calls. This finds it from the source.
    """
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(files)
    bad = []
    for mod, path in sorted(files.items()):
        is_pkg = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                names = [_absolute_base(node, mod, is_pkg)]
            for n in names:
                if (n == root.name or n.startswith(root.name + ".")) and n not in modules:
                    bad.append(f"{path.relative_to(root.parent)}:{node.lineno}: {n}")
    return bad


def test_every_internal_import_names_an_existing_module():
    assert not unresolved_imports(PKG_DIR)


def test_a_missing_internal_module_is_found(tmp_path):
    root = _write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "def f():\n    from .gone import x\n    return x\n",
            "b.py": "import pkg.a\nfrom pkg import a\n",
        },
    )
    assert unresolved_imports(root) == ["pkg/a.py:2: pkg.gone"]


# ------------------------------------------------------------------------------------ the two halves
# The method (deltalora.core) is a library of its own: users take it into their training code with
# only torch, transformers and peft installed. It must never reach into the suite built around it.
CORE = "deltalora.core"
CORE_THIRD_PARTY = {"torch", "transformers", "peft", "safetensors", "bitsandbytes", "accelerate"}

# The suite, bottom to top: a module may import from its own layer or any layer below, never above.
# Data flows the other way (a run writes records, collectors read them, the audit reads tables), so
# each layer can be understood, and tested, with only what is below it.
SUITE_LAYERS: list[tuple[str, set[str]]] = [
    ("the method", {"deltalora.core"}),
    (
        "foundations",
        {
            "deltalora.atomic",
            "deltalora.errors",
            "deltalora.records",
            "deltalora.smoke",
            "deltalora.heads",
            "deltalora.devices",
            "deltalora.init_state",
            "deltalora.metrics",
            "deltalora.startup",
        },
    ),
    (
        "tasks and methods",
        {
            "deltalora.methods",
            "deltalora.models",
            "deltalora.tasks",
            "deltalora.textgen",
            "deltalora.config",
            "deltalora.run_config",
            "deltalora.lm_loss",
            "deltalora.gradients",
            "deltalora.analysis",
            "deltalora.mirror",
        },
    ),
    ("run", {"deltalora.train", "deltalora.benchmark"}),
    ("collectors", {"deltalora.collect"}),
    ("audit", {"deltalora.audit"}),
    (
        "entry points",
        {
            "deltalora",
            "deltalora.__main__",
            "deltalora.cli",
            "deltalora.cli_pipeline",
            "deltalora.report_html",
            "deltalora.workflow_schema",
            "deltalora.docs_gen",
        },
    ),
]


def _layer_of(module: str) -> int:
    parts = module.split(".")
    key = ".".join(parts[:2]) if len(parts) > 1 else module
    for i, (_, members) in enumerate(SUITE_LAYERS):
        if key in members:
            return i
    raise AssertionError(
        f"{module} is in no layer of SUITE_LAYERS: place it there (tests/test_import_graph.py)"
    )


def test_core_imports_nothing_of_the_suite():
    graph = import_graph(PKG_DIR)
    core = {m for m in graph if m == CORE or m.startswith(CORE + ".")}
    assert len(core) >= 8, sorted(core)  # the method's modules really live in deltalora/core
    bad = {m: sorted(d for d in graph[m] if not (d == CORE or d.startswith(CORE + "."))) for m in core}
    bad = {m: d for m, d in bad.items() if d}
    assert not bad, f"deltalora.core imports the suite: {bad}"


def test_core_imports_no_heavy_dependency():
    import sys

    allowed = CORE_THIRD_PARTY | set(sys.stdlib_module_names) | {"deltalora"}
    found: dict[str, set[str]] = {}
    for path in (PKG_DIR / "core").rglob("*.py"):
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for n in names:
                if n.split(".")[0] not in allowed:
                    found.setdefault(path.name, set()).add(n)
    assert not found, f"deltalora.core imports packages outside the method's dependencies: {found}"


def test_suite_layers_only_import_downwards():
    graph = import_graph(PKG_DIR)
    upward = sorted(
        f"{m} ({SUITE_LAYERS[_layer_of(m)][0]}) -> {d} ({SUITE_LAYERS[_layer_of(d)][0]})"
        for m, deps in graph.items()
        for d in deps
        if _layer_of(d) > _layer_of(m)
    )
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)
