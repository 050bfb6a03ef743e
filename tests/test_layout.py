"""The package's rooms and the arrows between them: each room imports only the rooms below it
(the shop knows nothing of what makes it survive, nor of the web), and no modules import each
other in a circle."""

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


def room(module: str) -> str:
    """The room a module lives in: its subpackage, or "base" for the modules at the top of the
    package (settings, paths) and "outside" for everything not in it."""
    parts = module.split(".")
    if parts[0] != "widget_store":
        return "outside"
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "base"


# Each room and the rooms it may import, besides itself and what lies outside the package.
# testing/ drives a real server from the outside, as a test does: it imports no room at all.
MAY_IMPORT = {
    "base": {"database"},
    "database": {"base"},
    "shop": {"base", "database"},
    "durable": {"base", "database", "shop"},
    "demo": {"base", "database", "shop"},
    "web": {"base", "database", "shop", "durable", "demo"},
    "server": {"base", "database", "shop", "durable", "demo", "web"},
    "testing": set(),
}


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def test_each_room_imports_only_the_rooms_below_it() -> None:
    wrong = []
    for name, path in package_modules().items():
        if name in ENTRY_POINTS:
            continue
        home = room(name)
        allowed = MAY_IMPORT[home] | {home, "outside"}
        wrong += [f"{name} imports {m}" for m in sorted(imports(path)) if room(m) not in allowed]
    assert not wrong, "\n".join(wrong)


def test_no_modules_import_each_other_in_a_circle() -> None:
    modules = package_modules()
    # Every arrow to a module of the package (`from . import store` names the module).
    arrows = {
        name: {m for m in imports(path) if m in modules and m != name and m != "widget_store"}
        for name, path in modules.items()
    }
    circles = []
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            circles.append(" -> ".join([*trail[trail.index(name) :], name]))
            return
        if name in done:
            return
        for target in sorted(arrows[name]):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(modules):
        visit(name, [])
    assert not circles, "\n".join(circles)
