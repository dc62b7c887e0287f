"""Size and shape figures of the ``bridge`` package, and its import graph.

``python scripts/code_metrics.py`` prints the largest files, the longest
functions, the functions with the most parameters, the ``Any`` count and any
import cycle between ``plugins/bridge`` modules.  The same import graph is
checked by ``tests/project/test_project_layers.py``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "plugins" / "bridge"
#: Alembic revisions are generated shapes, not code a person reads at once.
SKIPPED = ("hub/migrations/",)


@dataclass(frozen=True)
class Function:
    where: str
    name: str
    lines: int
    params: int


def package_files(package: Path = PACKAGE) -> list[Path]:
    files = sorted(package.rglob("*.py"))
    return [f for f in files if not any(s in f.relative_to(package).as_posix() for s in SKIPPED)]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def functions(path: Path) -> Iterator[Function]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    rel = path.relative_to(ROOT).as_posix()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            count = len([n for n in names if n not in ("self", "cls")])
            count += (args.vararg is not None) + (args.kwarg is not None)
            end = node.end_lineno or node.lineno
            yield Function(f"{rel}:{node.lineno}", node.name, end - node.lineno + 1, count)


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    drop = node.level - 1 if is_package else node.level
    base = base[: len(base) - drop] if drop else base
    return ".".join([*base, node.module] if node.module else base)


def import_graph(package: Path = PACKAGE, *, runtime_only: bool = True) -> dict[str, set[str]]:
    """Module → the ``bridge`` modules it imports.

    Imports under ``if TYPE_CHECKING:`` are left out when ``runtime_only``:
    they never run, so they cannot form a cycle at import time.  Imports
    inside functions count: a deferred import that closes a loop is a cycle
    hidden, not removed.
    """
    files = sorted(package.rglob("*.py"))
    modules = {module_name(f, package): f for f in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip: set[int] = set()
        if runtime_only:
            for node in ast.walk(tree):
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    skip.update(id(n) for child in node.body for n in ast.walk(child))
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node, path.name == "__init__.py")
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {_owning_module(t, modules) for t in targets if _owning_module(t, modules)} - {name}
    return graph


def _owning_module(target: str, modules: dict[str, Path]) -> str:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target


def _packages_of(module: str) -> set[str]:
    """A module's enclosing packages: importing it runs their ``__init__``."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan).

    A package's ``__init__`` importing its own submodules is not a cycle:
    Python runs the package first by construction, so edges from a module
    to its own enclosing packages are left out.
    """
    edges = {m: {t for t in ts if t not in _packages_of(m)} for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for module in sorted(edges):
        if module not in index:
            visit(module)
    return found


def any_count(files: list[Path]) -> int:
    count = 0
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
            count += name == "Any"
    return count


def report(top: int) -> str:
    files = package_files()
    sizes = sorted(((len(f.read_text(encoding="utf-8").splitlines()), f) for f in files), reverse=True)
    funcs = [fn for f in files for fn in functions(f)]
    longest = sorted(funcs, key=lambda fn: -fn.lines)[:top]
    widest = sorted(funcs, key=lambda fn: -fn.params)
    out = [f"files: {len(files)}, lines: {sum(n for n, _ in sizes)}", "", "largest files:"]
    out += [f"  {n:5d}  {f.relative_to(ROOT).as_posix()}" for n, f in sizes[:top]]
    out += ["", "longest functions:"]
    out += [f"  {fn.lines:4d}  {fn.name}  ({fn.where})" for fn in longest]
    out += [
        "",
        f"functions over 60 lines: {sum(fn.lines > 60 for fn in funcs)}",
        f"functions with more than 7 parameters: {sum(fn.params > 7 for fn in widest)}",
    ]
    out += [f"  {fn.params:3d}  {fn.name}  ({fn.where})" for fn in widest[:top] if fn.params > 7]
    out += ["", f"Any: {any_count(files)}"]
    cycles = import_cycles(import_graph())
    out += ["", f"import cycles: {len(cycles)}"]
    out += [f"  {' ⇄ '.join(c)}" for c in cycles]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    args = parser.parse_args(argv)
    print(report(args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
