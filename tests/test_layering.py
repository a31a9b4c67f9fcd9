"""Imports point one way: transforms <- resources <- assets <- pipelines (DESIGN/STYLE).

Read statically with `ast` (nothing is imported), every import of every module, lazy ones
inside functions and `TYPE_CHECKING` ones included: a layer that imports a higher one
makes the lower layer impossible to read, test or ship without the higher (the first
release's assets imported `pipelines.partitions`, its benchmarks the test suite). `api/`
reads the warehouse through its own readers and may use `resources/` and `transforms/`,
never Dagster. `devkit/` holds what tests and benchmarks share; it is not in the wheel, so
nothing shipped may import it.

Also here, because it is the same kind of rule about the house's shape: an asset module's
functions fit on one screen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_ONLY = {"tests", "bench", "devkit"}
IO_CLIENTS = {"together", "httpx", "psycopg", "psycopg_pool", "duckdb", "sqlalchemy", "pgpq",
              "fastapi", "uvicorn"}
# What each top-level package may not import (project packages or third-party roots).
FORBIDDEN: dict[str, set[str]] = {
    "transforms": {"resources", "assets", "pipelines", "api", "datagen", "dagster",
                   *IO_CLIENTS, *DEV_ONLY},
    "resources": {"assets", "pipelines", "api", "datagen", *DEV_ONLY},
    "datagen": {"assets", "pipelines", "api", *DEV_ONLY},
    "assets": {"pipelines", "api", "datagen", *DEV_ONLY},
    "pipelines": DEV_ONLY,
    "api": {"dagster", "assets", "pipelines", "datagen", *DEV_ONLY},
    "devkit": {"tests", "bench"},
    "bench": {"tests"},
}
# Known exceptions, each with the reason it is still there.
ALLOWED: dict[tuple[str, str], str] = {}
MAX_FUNCTION_LINES = 60


def _modules() -> Iterator[tuple[str, Path]]:
    for package in FORBIDDEN:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            yield package, path


def _imports(path: Path, root: Path = REPO_ROOT) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this file's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield node.lineno, module


def upward_imports() -> list[str]:
    """Every import of a layer it may not use, as `file:line imports module`."""
    found = []
    for package, path in _modules():
        name = str(path.relative_to(REPO_ROOT))
        for line, module in _imports(path):
            root = module.split(".")[0]
            if root in FORBIDDEN[package] and (name, module) not in ALLOWED:
                found.append(f"{name}:{line} imports {module} ({package} may not import "
                             f"{root})")
    return found


def test_no_import_runs_back_up_the_layers() -> None:
    found = upward_imports()
    assert not found, "imports that run back up the layers:\n" + "\n".join(found)


def test_every_allowed_exception_is_still_needed() -> None:
    """An exception that no longer matches an import is stale: remove it."""
    present = {(str(path.relative_to(REPO_ROOT)), module)
               for _, path in _modules() for _, module in _imports(path)}
    assert sorted(set(ALLOWED) - present) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The parser finds lazy imports inside functions and relative ones."""
    module = tmp_path / "assets" / "sample.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from pipelines.jobs import X\n\nfrom . import y\n")
    assert sorted(_imports(module, tmp_path)) == [(2, "pipelines.jobs"), (4, "assets")]


def test_asset_functions_fit_on_one_screen() -> None:
    """No function in `assets/` (a builder counts its nested asset body) is longer than
    MAX_FUNCTION_LINES lines: longer ones hide what the asset declares."""
    long = []
    for path in sorted((REPO_ROOT / "assets").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.body[0].lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"assets/{path.name}:{node.lineno} {node.name} "
                                f"({lines} lines)")
    assert not long, f"longer than {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
