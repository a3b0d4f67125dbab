"""Issue 9, structure: no import circles in the package, and a cheap `--help` (cron and shells start the
program often; dlt, pyarrow and duckdb cost most of a second to import)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .support_reliability import REPO

PACKAGE = REPO / "pipelines" / "openai_batches"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for annotations only, never executed)."""
    nodes: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for inner in node.orelse:
                visit(inner)
            return
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return nodes


def _imports() -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports (at any level, lazily included:
    a function-level import is still a dependency of the module's design)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(0, node.level - 1)):
                    base = base.rsplit(".", 1)[0]
                target = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
                candidates = [target, *(f"{target}.{a.name}" for a in node.names)]
                found |= {c for c in candidates if c in modules}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in modules}
        graph[name] = found - {name}
    return graph


def test_no_import_cycles_in_the_package() -> None:
    graph = _imports()
    # A package's __init__ re-exporting its modules is not a cycle of design.
    inits = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}

    def cycle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[path[-1]] - inits):
            if nxt == start:
                return [*path, nxt]
            if nxt not in path:
                found = cycle_from(start, [*path, nxt])
                if found:
                    return found
        return None

    cycles = {tuple(c) for name in sorted(graph) if name not in inits and (c := cycle_from(name, [name]))}
    assert not cycles, sorted(cycles)
    assert "openai_batches.cli.main" not in graph["openai_batches.cli.demo"]


def test_help_imports_neither_dlt_nor_pyarrow_nor_duckdb() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from openai_batches.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'dlt', 'pyarrow', 'duckdb', 'numpy', 'httpx'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"`--help` imported {result.stdout.strip()}"
