"""One URL setting chooses the backend: `duckdb:///path` or `postgresql://...`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

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


# Parameter names whose value is a credential, in a URL query (`?api_key=...`) or a libpq
# key=value DSN (`host=db password=...`). Broad on purpose: hiding a harmless value costs a
# debugging hint, showing a secret costs a rotation.
_SECRET_NAME = r"[\w.-]*(?:pass|pwd|key|token|secret|auth|sig|credential|session)[\w.-]*"
# `scheme://user:password@`: the password runs to the last `@` before the path's query,
# fragment or whitespace, as `urlsplit` reads it (a raw `@` or `/` in it stays hidden).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/?#@]*:)[^\s?#]*@")
_SECRET_PARAM = re.compile(
    rf"(?i)(^|[\s?&;,(])({_SECRET_NAME})(\s*=\s*)"
    r"('(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"|[^\s&#;,)]*)"
)


def redact_url(url: str) -> str:
    """`url` with its secrets replaced by `***`, so it can be logged, stored or shown.

    Three shapes, also when they appear inside a longer message (an error text that quotes
    the URL): the password of `scheme://user:password@host`, the value of a secret-like query
    parameter (`?api_key=...&token=...`, any name containing pass, pwd, key, token, secret,
    auth, sig, credential or session) and the same names in a libpq key=value DSN
    (`host=db password='a b'`). User names, hosts, ports and paths stay readable.
    """
    text = _USERINFO.sub(lambda m: f"{m.group(1)}***@", url)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}***", text)


def url_secrets(url: str) -> list[str]:
    """The values `redact_url` hides in `url` (as written and percent-decoded), so that the
    same secrets can be removed from text that quotes them outside a URL (an error message
    echoing a token)."""
    found = [match.group(0)[len(match.group(1)):-1] for match in _USERINFO.finditer(url)]
    found += [match.group(4).strip("'\"") for match in _SECRET_PARAM.finditer(url)]
    values = {value for value in found if value}
    values |= {unquote(value) for value in values}
    return sorted(values, key=len, reverse=True)
