"""The dependency rule of ``docs/architecture.md``, checked on the package's own imports.

Layers, innermost first: ``domain`` and ``settings`` < ``adapters`` and ``plugins`` <
``bootstrap`` and ``testing`` < ``entrypoints``. An import may point inward or sideways, never
outward, and no two modules may import each other, however indirectly. Imports under
``if TYPE_CHECKING:`` and inside functions count: a reader must follow them all the same.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "changarrito"
LAYERS = {
    "domain": 0,
    "settings": 0,
    "adapters": 1,
    "plugins": 1,
    "plugin": 1,
    "bootstrap": 2,
    "testing": 2,
    "entrypoints": 3,
}
#: What a provider plugin (built-in or not) and the plugin-author API may import of ours.
PLUGIN_SIDE = ("changarrito.plugin", "changarrito.plugins.llm", "changarrito.plugins.payments")
#: Third-party packages the pure domain may use.
DOMAIN_ALLOWED = {"msgspec"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names, relative imports resolved)."""
    name = module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base if path.name == "__init__.py" else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def own_imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports."""
    targets = set()
    for imported in imports_of(path):
        while imported and imported not in MODULES:
            imported = imported.rpartition(".")[0]
        if imported and imported != "changarrito" and imported != module_name(path):
            targets.add(imported)
    return targets


GRAPH = {name: own_imports(path) for name, path in MODULES.items()}


def layer(name: str) -> int | None:
    parts = name.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_top_level_part_of_the_package_has_a_layer() -> None:
    tops = {name.split(".")[1] for name in MODULES if name.count(".") >= 1}
    assert tops <= set(LAYERS), f"give these a layer in docs/architecture.md: {tops - set(LAYERS)}"


def test_no_import_points_outward() -> None:
    outward = [
        f"{source} -> {target}"
        for source, targets in GRAPH.items()
        for target in sorted(targets)
        if (a := layer(source)) is not None and (b := layer(target)) is not None and b > a
    ]
    assert not outward, "imports that point outward:\n" + "\n".join(outward)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components with more than one module (each one is an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_there_are_no_import_cycles() -> None:
    cycles = strongly_connected(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle_it_is_shown() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) == 0))
def test_the_domain_and_the_settings_import_only_the_standard_library_and_msgspec(
    name: str,
) -> None:
    stdlib = set(sys.stdlib_module_names)
    foreign = {
        imported.split(".")[0]
        for imported in imports_of(MODULES[name])
        if imported and not imported.startswith("changarrito")
    }
    assert foreign <= stdlib | DOMAIN_ALLOWED | {"__future__"}, foreign - stdlib


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(PLUGIN_SIDE)))
def test_providers_and_the_plugin_api_never_import_adapters(name: str) -> None:
    adapters = sorted(t for t in GRAPH[name] if t.startswith("changarrito.adapters"))
    assert not adapters, f"{name} imports {adapters}: plugins use changarrito.plugin only"


def test_nothing_below_the_settings_reads_the_environment() -> None:
    readers = []
    for name, path in MODULES.items():
        if name == "changarrito.settings":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("environ", "getenv")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                readers.append(f"{name}:{node.lineno}")
    # ``serve --workers N`` hands the settled settings to its worker processes through the
    # environment: that is writing it, and it is the one place allowed to.
    assert all(r.startswith("changarrito.entrypoints.server:") for r in readers), readers
