"""Loading SQL from `sql/` and binding named parameters for either backend.

SQL lives in files with `:name` placeholders so one text serves DuckDB (`$name`) and
psycopg (`%(name)s`). Only placeholders are rewritten; values are always bound by the
driver, never formatted into the text.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path


def _sql_dir() -> Path:
    """`sql/` of an installed wheel (the package `marketing_sql`, setup.py), else of the
    checkout this module sits in. Migrations found nowhere are an error later
    (resources/migrations.py), never an empty schema."""
    spec = importlib.util.find_spec("marketing_sql")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "sql"


SQL_DIR = _sql_dir()
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"

# `:name` but not the `::` cast operator, not inside a quoted string literal, and not in a
# `--` comment (an apostrophe there must not open a "string" that hides later placeholders).
_PLACEHOLDER = re.compile(r"--[^\n]*|'(?:[^']|'')*'|(?<![:\w]):([A-Za-z_]\w*)")


@cache
def load_query(name: str) -> str:
    """Return the text of `sql/queries/<name>.sql` (cached: files do not change at run time)."""
    path = QUERIES_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"no SQL query named {name!r} (looked for {path})")
    return path.read_text()


def to_dialect(sql: str, dialect: str) -> str:
    """Rewrite `:name` placeholders for `duckdb` (`$name`) or `postgres` (`%(name)s`)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:  # a string literal or a comment: keep it verbatim
            return match.group(0)
        return f"${name}" if dialect == "duckdb" else f"%({name})s"

    text = _PLACEHOLDER.sub(replace, sql)
    if dialect == "postgres":
        # psycopg treats a bare % as a placeholder start; literal percent signs must be doubled.
        text = re.sub(r"%(?!\()", "%%", text)
    return text
