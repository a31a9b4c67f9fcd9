"""Throwaway PostgreSQL databases for tests and benchmarks: created with a unique name, always
dropped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg


def with_database(server_url: str, database: str) -> str:
    """The same server URL, pointing at another database."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{database}"))


@contextmanager
def throwaway_database(server_url: str, prefix: str = "dagster_test") -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, drop it at the end.

    `WITH (FORCE)` because pooled connections of an instance (or of a killed `dagster dev`)
    may still be open when the test ends; the database must go regardless.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
