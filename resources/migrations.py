"""Versioned schema migrations from `sql/migrations/NNNN_name.sql`, applied idempotently.

Each file runs once, in version order, inside a transaction, and is recorded in
`schema_migrations` with its checksum. A recorded file whose text later changed is an
error, not a silent skip: editing an applied migration would leave databases that differ.

Most files serve both engines. Where they must differ (PostgreSQL partitioning has no
DuckDB equivalent), a version has one file per engine, `NNNN_name.postgres.sql` and
`NNNN_name.duckdb.sql`, so both engines still count the same versions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from resources.sql_files import MIGRATIONS_DIR
from resources.warehouse_backends import WarehouseBackend

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


DIALECTS = ("duckdb", "postgres")


def discover_migrations(dialect: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The engine's migration files sorted by their numeric prefix (`0001_core.sql` ->
    version `0001`): shared files plus the ones suffixed with this dialect."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, _, rest = path.stem.partition("_")
        if not version.isdigit():
            raise ValueError(f"migration file {path.name} must start with a number, e.g. 0001_")
        name, _, only_for = rest.partition(".")
        if only_for and only_for not in DIALECTS:
            raise ValueError(f"migration file {path.name}: unknown dialect suffix {only_for!r}")
        if only_for in ("", dialect):
            migrations.append(Migration(version=version, name=name, path=path))
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migration files share a version number: {versions}")
    return migrations


def apply_migrations(backend: WarehouseBackend, schema: str, *, up_to: str | None = None
                     ) -> list[str]:
    """Apply pending migrations (those up to version `up_to` if given, which tests use to
    build a database as an older release left it); return the versions applied now."""
    backend.execute_script(f'CREATE SCHEMA IF NOT EXISTS "{schema}";' + BOOKKEEPING)
    applied = {
        row["version"]: row["checksum"]
        for row in backend.read("SELECT version, checksum FROM schema_migrations").to_dicts()
    }
    newly_applied = []
    for migration in discover_migrations(backend.dialect):
        if up_to is not None and migration.version > up_to:
            break
        recorded = applied.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise RuntimeError(
                    f"migration {migration.path.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        record = (
            "INSERT INTO schema_migrations (version, name, checksum) "
            f"SELECT '{migration.version}', '{migration.name}', '{migration.checksum}' "
            f"WHERE NOT EXISTS (SELECT 1 FROM schema_migrations "
            f"WHERE version = '{migration.version}');"
        )
        # Version, name and checksum come from our own file names and a hex digest, never
        # from user input; the whole file and its record commit together.
        backend.execute_script(migration.sql + "\n;" + record)
        newly_applied.append(migration.version)
    return newly_applied


def current_version(backend: WarehouseBackend) -> str | None:
    """The highest applied migration version, or None on an empty database."""
    frame = backend.read("SELECT max(version) AS version FROM schema_migrations")
    return frame["version"][0] if frame.height else None
