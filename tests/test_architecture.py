"""The shape of the package: no import cycles, imports only go down the layers, no module prints.

Every `import infuse...` counts, also inside functions (a lazy import is still a dependency);
imports under `if TYPE_CHECKING:` do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "infuse"

# Lower number = lower layer; a module may import its own layer or lower ones (ARCHITECTURE.md).
LAYERS = {
    "infuse": 0, "infuse.errors": 0, "infuse.files": 0, "infuse.exports": 0, "infuse.models": 0, "infuse.answer": 0,
    "infuse.conversation": 0,
    "infuse.samples": 0,
    "infuse.data": 1, "infuse.knowledge": 1, "infuse.llm": 1,
    "infuse.train": 2, "infuse.rag": 2, "infuse.cag": 2, "infuse.scrape": 2,
    "infuse.research": 3, "infuse.methods": 3,
    "infuse.eval": 4,
    "infuse.quickstart": 5, "infuse.serve": 5,
    "infuse.cli": 6, "infuse.__main__": 6,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """infuse modules that `path` imports (resolved to the longest existing module name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("infuse"):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: imported_modules(path, modules) - {name} for name, path in files.items()}


def _parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_cycles():
    graph = import_graph()
    # A package's __init__ re-exporting its own modules is not a cycle of ideas.
    edges = {
        name: {target for target in targets if target not in _parents(name)}
        for name, targets in graph.items()
    }
    cycles = _strongly_connected(edges)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def layer_of(name: str) -> int:
    while name not in LAYERS:
        name = name.rpartition(".")[0]
    return LAYERS[name]


def package_of(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2])


def test_imports_only_go_down():
    wrong = []
    for name, targets in import_graph().items():
        for target in targets:
            if package_of(target) != package_of(name) and layer_of(target) > layer_of(name):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports that go up a layer: " + ", ".join(sorted(wrong))


def test_library_modules_never_print():
    """Only the CLI writes to the terminal: stdout must stay clean for MCP over stdio."""
    printing = []
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if name.startswith("infuse.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _callee(node) in TERMINAL_WRITERS:
                printing.append(f"{name}:{node.lineno} {_callee(node)}()")
    assert not printing, "library modules that print: " + ", ".join(printing)


TERMINAL_WRITERS = {"print", "Console", "Progress", "tqdm"}


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in (
        "rich", "tqdm", "sys"
    ):
        return func.attr
    return ""


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.add(item)
                if item == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


@pytest.mark.parametrize("package", sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()))
def test_package_imports_light(package):
    """`import infuse.<package>` loads no torch/transformers/lancedb (the CLI's --help stays instant)."""
    import subprocess
    import sys

    code = (
        f"import sys, infuse.{package}; heavy = [m for m in ('torch', 'transformers', 'lancedb', "
        "'sentence_transformers') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
