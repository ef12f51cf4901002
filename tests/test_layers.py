"""The house holds: every import between product packages runs down the layers, and none runs in a circle.

Layers, from the ground: the runtime (``sovtel/``: records, component contract, config, routing,
pipeline, queue) ← components (``collectors/``, ``processors/``, ``storage/``) ← jobs
(``retention/``, ``quality/``, ``dashboards/``) ← ``app/`` (the CLI, demo, query). Test data
(``evaluation/``) is used by tests and benchmarks only. Every import counts, at module level or
inside a function, so a lazy import cannot hide an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sovtel", "collectors", "processors", "storage", "retention", "quality", "dashboards", "app", "evaluation")

# (importing package, imported package): why the arrow must never exist.
NEVER: dict[tuple[str, str], str] = {
    **{("sovtel", job): "the runtime knows nothing of jobs" for job in ("retention", "quality", "dashboards")},
    ("sovtel", "app"): "the runtime is the ground floor",
    **{("processors", p): "processors transform and return; only sinks write"
       for p in ("storage", "retention", "quality", "dashboards")},
    **{("collectors", p): "receivers hand batches to the runtime; the runtime chains components"
       for p in ("processors", "storage", "retention", "quality", "dashboards")},
    ("storage", "processors"): "a sink never re-processes",
    **{("storage", p): "storage knows nothing of jobs" for p in ("retention", "quality", "dashboards")},
    **{(p, "app"): "only the app calls the app" for p in PACKAGES if p != "app"},
    **{(p, "evaluation"): "test data never ships in the product" for p in PACKAGES if p != "evaluation"},
}
# Up to this many lines a module needs no reason; above it, its docstring says why it is one module.
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_modules() -> dict[str, Path]:
    """Every product module by dotted name."""
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The product modules ``name`` imports (absolute and relative, at any depth of the file)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` names the module; ``from mod import name`` names ``mod``.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for target in targets:
            module = target
            while module and module not in known:
                module = module.rpartition(".")[0]
            if module and module != name:
                found.add(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = product_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def broken_rules(graph: dict[str, set[str]]) -> list[str]:
    """Each import that runs against a layer rule, with the rule's reason."""
    out = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            rule = NEVER.get((src.split(".")[0], dst.split(".")[0]))
            if rule:
                out.append(f"{src} -> {dst}: {rule}")
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_runs_against_the_layers() -> None:
    """No product module imports a package its layer must not know."""
    assert broken_rules(import_graph()) == []


def test_no_import_circles() -> None:
    """No group of product modules imports itself round in a circle."""
    assert circles(import_graph()) == []


def test_long_modules_say_why() -> None:
    """A module over 600 lines says at its top why it stays one module."""
    long = {name: p for name, p in product_modules().items()
            if len(p.read_text(encoding="utf-8").splitlines()) > MAX_LINES}
    unexplained = [name for name, p in long.items()
                   if "one module" not in (ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or "")]
    assert unexplained == []


def test_a_broken_rule_is_named() -> None:
    """An import from the runtime into a job package is reported with its reason."""
    graph = {"sovtel.demo": {"quality.report", "sovtel.records"}, "quality.report": set(), "sovtel.records": set()}
    assert broken_rules(graph) == ["sovtel.demo -> quality.report: the runtime knows nothing of jobs"]


@pytest.mark.parametrize(("graph", "expected"), [
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
])
def test_circles_are_found(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    """A circle of two or three modules is found and a chain is not."""
    assert circles(graph) == expected


def test_relative_and_lazy_imports_count(tmp_path: Path) -> None:
    """An import inside a function counts as much as one at the top."""
    source = tmp_path / "lazy.py"
    source.write_text("from . import records\n\ndef f():\n    from storage.backend import Store\n    return Store\n")
    known = {"storage", "storage.backend", "sovtel", "sovtel.records"}
    assert imports_of("sovtel.lazy", source, known) == {"storage.backend", "sovtel.records"}
