"""Structure: no import circles in the package, and a cheap `--help` (cron and shells start the
program often; dlt, pyarrow and duckdb cost most of a second to import)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from .support.cli import REPO

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
                # `from . import settings` depends on the module settings; `from . import X` on the package's X.
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found |= {sub} if sub in modules else ({target} & modules.keys())
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


# What each layer may import of the package (the folders' docstrings say the same). A layer absent from a
# list may not be imported; `openai_batches` itself (the face: lazy names, settings, config) is open to all
# but client/ and tables/, which stand alone (tables/ reads client/redact.py: what may be stored of a server's text).
ALLOWED = {
    "client": {"client", "settings"},
    "tables": {"tables", "settings", "client.redact"},
    "sources": {"sources", "client", "tables", "settings"},
    "storage": {"storage", "client", "tables", "settings"},
    "analysis": {"analysis", "storage", "tables", "settings", "config", "client.errors"},
    "load": {"load", "sources", "storage", "client", "tables", "analysis", "settings", "config", ""},
    "simulator": {"simulator", "settings", "load.memory", "cli.argtypes"},
}
# Provider folders (issue 18) build on a layer's shared modules, never the reverse and never on each other: the
# shared project run (sources/batches) names no provider's folder, so a later provider is one folder more.
PROVIDER_FOLDERS = {"sources": {"anthropic"}}
# Third-party packages a layer must not import (at any level).
FORBIDDEN_THIRD_PARTY = {
    "client": {"dlt", "pyarrow", "duckdb"},
    "tables": {"dlt", "duckdb", "httpx"},
    "simulator": {"dlt", "duckdb", "httpx"},
    "analysis": {"httpx"},
}


def _layer(module: str) -> str:
    """`openai_batches.client.batches` -> `client`; a root module -> its own name; the root itself -> ''."""
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def _allowed(layer: str, target: str) -> bool:
    rules = ALLOWED[layer]
    inner = target.split(".", 1)[1] if "." in target else ""
    return any(inner == rule or inner.startswith(rule + ".") for rule in rules if rule) or ("" in rules and not inner)


def test_layers_import_only_what_their_folder_docstring_allows() -> None:
    graph = _imports()
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if (layer := _layer(name)) in ALLOWED and not name.endswith(".__init__")
        for target in targets
        if _layer(target) != layer and not _allowed(layer, target)
    )
    assert not wrong, "\n".join(wrong)


def test_layers_keep_off_the_libraries_they_must_not_need() -> None:
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        layer = _layer(_module_name(path))
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots = {node.module.split(".")[0]}
            elif isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            else:
                continue
            wrong += [f"{_module_name(path)} imports {r}" for r in roots & FORBIDDEN_THIRD_PARTY.get(layer, set())]
    assert not wrong, sorted(wrong)


def test_the_package_root_keeps_only_its_face() -> None:
    assert {p.name for p in PACKAGE.glob("*.py")} == {"__init__.py", "settings.py", "config.py"}
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__" and p.name != "sql"):
        docstring = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
        assert docstring, f"{folder.name}/__init__.py says nothing of what it owns"


def test_provider_folders_are_imported_by_no_shared_module_and_no_other_provider() -> None:
    graph = _imports()
    wrong = []
    for name, targets in graph.items():
        parts = name.split(".")[1:]
        if len(parts) < 2 or parts[0] not in PROVIDER_FOLDERS:
            continue
        for target in targets:
            tparts = target.split(".")[1:]
            folder = tparts[1] if len(tparts) >= 2 and tparts[0] == parts[0] else None
            if folder in PROVIDER_FOLDERS[parts[0]] and folder != parts[1]:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))
