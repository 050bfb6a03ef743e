"""The docs name every setting the store reads, and no variable that nothing reads.

Settings to docs: each environment variable `Settings` reads (a field's `validation_alias`
choices, else the env prefix and the field's name upper-cased) is in exactly one of two places:
the first column of README.md's Configuration table, for what an operator sets, or the list
under "Internal settings" in docs/operations.md, for what the supervisor sets for its workers
or a test sets, which an operator must not. A field's aliases share one table row with its main
name, and no name is in two rows. The table and that list name nothing but `Settings` variables.

Docs to readers: each `WIDGET_STORE_*` name in README.md, docs/*.md, dbos-config.yaml, deploy/
and the Dockerfile is read by something:
- a `Settings` variable;
- a Python string in the repository that is the name whole (`os.environ.get("WIDGET_STORE_X")`,
  `X_ENV = "WIDGET_STORE_X"`); a comment or a sentence that mentions it does not count. A
  literal that only sets the variable would count too: the check is for names that no code
  knows, such as one left in the docs after its setting was renamed;
- or, in a line of dbos-config.yaml or deploy/ that is not a comment, `$NAME` or `${NAME}`
  (haproxy, DBOS's config loader, systemd and the shell expand them) or `printenv NAME` (the
  shell that `dbos start` runs its command in).
A name written as a pattern ends in `_` where the pattern begins (`WIDGET_STORE_NODE_<n>`,
`WIDGET_STORE_*`): it stands for the names it begins, and is read when one of them is.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import AliasChoices

from widget_store.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INTERNAL_PAGE = ROOT / "docs" / "operations.md"
CONFIGURATION = "## Configuration"
INTERNAL = "## Internal settings"
PYTHON_FOLDERS = ("widget_store", "tests", "bench", "migrations")

# A name in the docs; ending in "_" it is a pattern's prefix (WIDGET_STORE_NODE_<n>).
NAMED = re.compile(r"(?<![A-Za-z0-9_])WIDGET_STORE_[A-Z0-9_]*")
WHOLE_NAME = re.compile(r"WIDGET_STORE_[A-Z0-9_]*[A-Z0-9]")
# Any environment variable in backquotes, in the table's first column or the internal list.
QUOTED = re.compile(r"`([A-Z][A-Z0-9_]*)`")
# Expanded by haproxy, DBOS's config loader, systemd and the shell; read by printenv.
CONFIG_READ = re.compile(r"\$\{?(WIDGET_STORE_[A-Z0-9_]+)|\bprintenv\s+(WIDGET_STORE_[A-Z0-9_]+)")


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def settings_variables() -> dict[str, tuple[str, ...]]:
    """Each field of Settings and the environment variables that set it, the main name first."""
    prefix = str(Settings.model_config["env_prefix"])
    found = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names = tuple(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names = (alias,)
        else:
            names = (f"{prefix}{field}".upper(),)
        found[field] = names
    return found


def section(path: Path, heading: str) -> list[tuple[int, str]]:
    """The numbered lines of a page from `heading` to the next heading of its level."""
    lines = path.read_text(encoding="utf-8").splitlines()
    level = heading.split(" ", 1)[0] + " "
    starts = [n for n, line in enumerate(lines) if line.strip() == heading]
    assert len(starts) == 1, f"{path.relative_to(ROOT)} needs one {heading!r} heading"
    found = []
    for n in range(starts[0] + 1, len(lines)):
        if lines[n].startswith(level):
            break
        found.append((n + 1, lines[n]))
    return found


def configuration_rows() -> list[tuple[int, set[str]]]:
    """README.md's Configuration table: each row's line and the names in its first column."""
    table: list[tuple[int, str]] = []
    for number, line in section(README, CONFIGURATION):
        if line.startswith("|"):
            table.append((number, line))
        elif table:
            break
    assert len(table) > 2, f"README.md has no table under {CONFIGURATION!r}"
    return [(number, set(QUOTED.findall(line.split("|")[1]))) for number, line in table[2:]]


def internal_settings() -> dict[str, int]:
    """The names listed under "Internal settings" in docs/operations.md, with their lines."""
    items = {}
    for number, line in section(INTERNAL_PAGE, INTERNAL):
        if line.startswith("- `"):
            items.update(dict.fromkeys(QUOTED.findall(line.split(":", 1)[0]), number))
    assert items, f"{INTERNAL_PAGE.relative_to(ROOT)} lists nothing under {INTERNAL!r}"
    return items


def test_every_setting_is_documented_once() -> None:
    rows = configuration_rows()
    internal = internal_settings()
    wrong = []
    for field, names in settings_variables().items():
        own = " (" + ", ".join(names) + f"; Settings.{field})"
        in_rows = [(number, found) for number, found in rows if found & set(names)]
        listed = [name for name in names if name in internal]
        lines = ", ".join(f"README.md:{number}" for number, _ in in_rows)
        if not in_rows and not listed:
            wrong.append(
                f"{names[0]}{own} is documented nowhere: add it to README.md's Configuration "
                f"table, or under {INTERNAL!r} in docs/operations.md if operators must not set it"
            )
        elif in_rows and listed:
            wrong.append(
                f"{names[0]}{own} is both in README.md's Configuration table ({lines}) and "
                f"internal (docs/operations.md:{internal[listed[0]]}): keep one"
            )
        elif len(in_rows) > 1:
            wrong.append(
                f"{names[0]}{own} is in {len(in_rows)} rows of README.md's Configuration table "
                f"({lines}): one row a setting, its aliases in that row"
            )
        elif in_rows:
            number, found = in_rows[0]
            wrong += [
                f"{name}{own} is missing from its setting's row, README.md:{number}"
                for name in names
                if name not in found
            ]
        else:
            wrong += [
                f"{name}{own} is missing from {INTERNAL!r} in docs/operations.md, which lists "
                f"{listed[0]} (line {internal[listed[0]]})"
                for name in names
                if name not in internal
            ]
    assert not wrong, "\n".join(wrong)


def test_the_settings_docs_name_only_settings() -> None:
    """The Configuration table and the internal list say "Settings reads this"; a name there
    that it does not read is a setting that does nothing."""
    read = {name for names in settings_variables().values() for name in names}
    documented = [
        (name, f"README.md:{number}")
        for number, found in configuration_rows()
        for name in sorted(found)
    ]
    documented += [(name, f"docs/operations.md:{n}") for name, n in internal_settings().items()]
    wrong = [
        f"{name} ({place}) is documented as a setting, but Settings reads no such variable"
        for name, place in documented
        if name not in read
    ]
    assert not wrong, "\n".join(wrong)


def documents() -> Iterator[Path]:
    """Every file that may name a variable for people to set."""
    yield README
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield from config_files()
    yield ROOT / "Dockerfile"


def config_files() -> Iterator[Path]:
    """The files other programs read, where `${NAME}` or `printenv NAME` reads a variable."""
    yield ROOT / "dbos-config.yaml"
    yield from sorted(path for path in (ROOT / "deploy").rglob("*") if path.is_file())


def numbered(path: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)


def python_strings(source: str) -> set[str]:
    """`WIDGET_STORE_*` names written whole as a string in Python source."""
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and WHOLE_NAME.fullmatch(node.value)
    }


def config_reads(line: str) -> set[str]:
    """`WIDGET_STORE_*` names a line of a configuration file expands or printenvs."""
    if line.lstrip().startswith("#"):
        return set()
    return {match.group(1) or match.group(2) for match in CONFIG_READ.finditer(line)}


def readers() -> set[str]:
    """Every `WIDGET_STORE_*` name something reads."""
    this = Path(__file__).resolve()
    read = {name for names in settings_variables().values() for name in names}
    for folder in PYTHON_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.resolve() != this:
                read |= python_strings(path.read_text(encoding="utf-8"))
    for path in config_files():
        for _, line in numbered(path):
            read |= config_reads(line)
    return read


def test_every_named_variable_is_read() -> None:
    read = readers()
    wrong = []
    for path in documents():
        for number, line in numbered(path):
            for name in NAMED.findall(line):
                if name.endswith("_"):
                    if not any(other.startswith(name) for other in read):
                        wrong.append(
                            f"{name}<...> ({where(path, number)}): nothing reads a variable "
                            "of that pattern"
                        )
                elif name not in read:
                    wrong.append(
                        f"{name} ({where(path, number)}): nothing reads it (not a Settings "
                        "variable, no Python string, no ${...} or printenv in dbos-config.yaml "
                        "or deploy/)"
                    )
    assert not wrong, "\n".join(wrong)


def test_the_readers_are_found() -> None:
    """The reader search itself: a name in a comment or a sentence is no reader, a string that
    is the name is; so is "${NAME}" or printenv outside a comment."""
    source = '# WIDGET_STORE_A\n"""WIDGET_STORE_B, in a sentence."""\nC = "WIDGET_STORE_C"\n'
    assert python_strings(source) == {"WIDGET_STORE_C"}
    assert config_reads('    bind "${WIDGET_STORE_D}"') == {"WIDGET_STORE_D"}
    assert config_reads('- exec x --port "$(printenv WIDGET_STORE_E || echo 1)"') == {
        "WIDGET_STORE_E"
    }
    assert config_reads("#   Environment=WIDGET_STORE_F=:80 ${WIDGET_STORE_F}") == set()
    assert config_reads("Environment=WIDGET_STORE_G=:80") == set()
    # The repository's own readers of each kind: tests' switches, haproxy's, `dbos start`'s.
    assert {
        "WIDGET_STORE_TEST_POSTGRES_URL",
        "WIDGET_STORE_TEST_REQUIRE_POSTGRES",
        "WIDGET_STORE_TEST_REQUIRE_BROWSER",
        "WIDGET_STORE_LB_BIND",
        "WIDGET_STORE_NODE_3",
        "WIDGET_STORE_HOST",
        "WIDGET_STORE_PORT",
    } <= readers()
