"""The package's layers: the core (the modules at the top of widget_store/) imports neither the
web layer nor the server, and the web layer never imports the server."""

from __future__ import annotations

import ast
from pathlib import Path

import widget_store

PACKAGE = Path(widget_store.__file__).resolve().parent
# The entry point of `python -m widget_store` is the command line, which is the server's.
ENTRY_POINTS = {"widget_store.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved to absolute names."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "widget_store":
        return "outside"
    return parts[1] if len(parts) > 1 and parts[1] in ("web", "server") else "core"


ALLOWED = {"core": {"core", "outside"}, "web": {"core", "web", "outside"}}


def test_imports_run_from_server_to_web_to_core() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name in ENTRY_POINTS or layer(name) == "server":
            continue
        wrong += [
            f"{name} imports {m}"
            for m in sorted(imports(path))
            if layer(m) not in ALLOWED[layer(name)]
        ]
    assert not wrong, "\n".join(wrong)
