"""One URL setting chooses the backend: `duckdb:///path` or `postgresql://...`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# The demo's warehouse; shared by the pipeline and the API (which must not import Dagster
# to learn it).
DEFAULT_WAREHOUSE_URL = "duckdb:///data/demo/warehouse.duckdb"


@dataclass(frozen=True)
class ParsedUrl:
    """A backend URL split into what the drivers need."""

    dialect: str  # "duckdb" or "postgres"
    duckdb_path: Path | None = None
    postgres_conninfo: str | None = None


def parse_backend_url(url: str) -> ParsedUrl:
    """Parse a warehouse or source URL.

    `duckdb:///rel/path.duckdb` is relative to the working directory and
    `duckdb:////abs/path.duckdb` absolute (the SQLAlchemy convention); a bare path ending in
    `.duckdb` is accepted too. `postgresql+psycopg://` style driver suffixes are stripped
    because psycopg takes the plain URL.
    """
    if url.startswith("duckdb://"):
        rest = url[len("duckdb://") :]
        if not rest.startswith("/"):
            raise ValueError(f"DuckDB URL must look like duckdb:///path/file.duckdb, got {url!r}")
        return ParsedUrl("duckdb", duckdb_path=Path(rest[1:]))
    if url.endswith(".duckdb") and "://" not in url:
        return ParsedUrl("duckdb", duckdb_path=Path(url))
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return ParsedUrl("postgres", postgres_conninfo=urlunsplit(parts._replace(scheme=scheme)))
    raise ValueError(
        f"unsupported backend URL {redact_url(url)!r}: expected duckdb:///path.duckdb "
        "or postgresql://user@host:port/database"
    )


def redact_url(url: str) -> str:
    """Hide the password so a URL can be logged or shown as metadata."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
