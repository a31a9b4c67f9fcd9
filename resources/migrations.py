"""Versioned schema migrations from `sql/migrations/NNNN_name.sql`, applied idempotently.

Each file runs once, in version order, inside a transaction, and is recorded in
`schema_migrations` with its checksum. A recorded file whose text later changed is an
error, not a silent skip: editing an applied migration would leave databases that differ.

Most files serve both engines. Where they must differ (PostgreSQL partitioning has no
DuckDB equivalent), a version has one file per engine, `NNNN_name.postgres.sql` and
`NNNN_name.duckdb.sql`, so both engines still count the same versions.

Concurrent runs are safe: a whole run (creating the schema and `schema_migrations`, reading
the applied versions, applying and recording each pending file) happens in one
`backend.migration_session()`, which holds the engine's lock (a per-schema advisory lock on
PostgreSQL, the file's write lock on DuckDB). Racing migrators take turns; the first applies
the pending files, the others find them applied. Each file still commits with its record on
its own, so a failure in file N leaves files before N applied and recorded.

Two states are errors rather than "up to date": no migration files at all (a package
installed without its SQL would otherwise migrate nothing and then fail on the first
query), and a database recording a version no file provides (migrated by newer code).
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
    version `0001`): shared files plus the ones suffixed with this dialect.

    Raises RuntimeError when there are none: an empty set is a broken install, never a
    database that is up to date."""
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
    if not migrations:
        state = "" if directory.is_dir() else " (the directory does not exist)"
        raise RuntimeError(
            f"no migration files in {directory} for {dialect}{state}: the package is missing "
            "its SQL (see the migrations section of docs/data-model.md)"
        )
    versions = [migration.version for migration in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migration files share a version number: {versions}")
    return migrations


def apply_migrations(backend: WarehouseBackend, schema: str, *, up_to: str | None = None,
                     directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations (those up to version `up_to` if given, which tests use to
    build a database as an older release left it); return the versions applied now.

    The whole run holds the backend's migration lock (module docstring), so concurrent
    callers each return only what they applied themselves: one of them the pending
    versions, the others `[]`."""
    # Before touching the database: a run without files must not create an empty schema.
    migrations = discover_migrations(backend.dialect, directory)
    with backend.migration_session() as session:
        session.execute_script(f'CREATE SCHEMA IF NOT EXISTS "{schema}";' + BOOKKEEPING)
        applied: dict[str, str] = dict(
            session.rows("SELECT version, checksum FROM schema_migrations")  # type: ignore[arg-type]
        )
        unknown = sorted(set(applied) - {migration.version for migration in migrations})
        if unknown:
            raise RuntimeError(
                f"schema {schema!r} records migration versions {unknown} that no file in "
                f"{directory} provides: newer code migrated it; run that code (or newer)"
            )
        newly_applied = []
        for migration in migrations:
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
            # Version, name and checksum come from our own file names and a hex digest,
            # never from user input; the whole file and its record commit together.
            session.execute_script(migration.sql + "\n;" + record)
            newly_applied.append(migration.version)
    return newly_applied


def current_version(backend: WarehouseBackend) -> str | None:
    """The highest applied migration version, or None on an empty database."""
    frame = backend.read("SELECT max(version) AS version FROM schema_migrations")
    return frame["version"][0] if frame.height else None
