"""Settings of the read API, from `MARKETING_API_*` environment variables.

Read once by the `marketing api` command (or a test), never at import time, so one process
can build several apps (tests do: one per backend). Every limit lives here, so changing
one is a configuration change; docs/api.md lists the variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from resources.connection_url import DEFAULT_WAREHOUSE_URL, parse_backend_url, redact_url

# HS256 with a short key is brute-forceable offline from any token; RFC 7518 asks for a
# key at least as long as the hash output (32 bytes).
MIN_SECRET_LENGTH = 32


class ApiSettings(BaseModel):
    """Everything `create_app` needs; the defaults serve the demo's DuckDB warehouse."""

    model_config = ConfigDict(frozen=True)

    database_url: str = DEFAULT_WAREHOUSE_URL
    schema_name: str = "marketing"
    jwt_secret: str = Field(min_length=MIN_SECRET_LENGTH, repr=False)
    required_role: str = "admin"
    cors_origins: tuple[str, ...] = ()
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=200, ge=1, le=10_000)
    rate_limit_per_minute: float = Field(default=600, ge=0)  # 0 disables
    rate_limit_burst: int = Field(default=60, ge=1)
    cache_seconds: float = Field(default=15, ge=0)  # analytics responses; 0 disables
    db_timeout_seconds: float = Field(default=2.0, gt=0)
    statement_timeout_ms: int = Field(default=5_000, ge=100)
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)
    max_date_range_days: int = Field(default=366, ge=1)

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        parse_backend_url(url)  # raises a clear error for anything but duckdb/postgresql
        return url

    @field_validator("schema_name")
    @classmethod
    def _plain_identifier(cls, name: str) -> str:
        # Identifiers cannot be bound parameters; only plain names reach SQL text.
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"schema name must be a plain identifier, got {name!r}")
        return name

    @model_validator(mode="after")
    def _page_sizes(self) -> ApiSettings:
        if self.default_page_size > self.max_page_size:
            raise ValueError(f"default page size {self.default_page_size} exceeds the maximum "
                             f"{self.max_page_size}")
        return self

    @property
    def dialect(self) -> str:
        return parse_backend_url(self.database_url).dialect

    @property
    def display_url(self) -> str:
        return redact_url(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Settings from the environment; unset variables keep their defaults.

        The database defaults to the pipeline's own warehouse (`MARKETING_WAREHOUSE_URL`),
        so the demo needs no extra variable; production points `MARKETING_API_DATABASE_URL`
        at the same database with the read-only role.
        """
        env = os.environ if environ is None else environ
        if not env.get("MARKETING_API_JWT_SECRET"):
            raise ValueError(
                "MARKETING_API_JWT_SECRET is not set: the API verifies HS256 tokens with it "
                f"(at least {MIN_SECRET_LENGTH} characters; `marketing api` on the demo "
                "generates one and prints a token)"
            )
        names = {
            "jwt_secret": "MARKETING_API_JWT_SECRET",
            "required_role": "MARKETING_API_REQUIRED_ROLE",
            "default_page_size": "MARKETING_API_DEFAULT_PAGE_SIZE",
            "max_page_size": "MARKETING_API_MAX_PAGE_SIZE",
            "rate_limit_per_minute": "MARKETING_API_RATE_LIMIT_PER_MINUTE",
            "rate_limit_burst": "MARKETING_API_RATE_LIMIT_BURST",
            "cache_seconds": "MARKETING_API_CACHE_SECONDS",
            "db_timeout_seconds": "MARKETING_API_DB_TIMEOUT_SECONDS",
            "statement_timeout_ms": "MARKETING_API_STATEMENT_TIMEOUT_MS",
            "pool_min_size": "MARKETING_API_POOL_MIN_SIZE",
            "pool_max_size": "MARKETING_API_POOL_MAX_SIZE",
            "max_date_range_days": "MARKETING_API_MAX_DATE_RANGE_DAYS",
            "schema_name": "MARKETING_WAREHOUSE_SCHEMA",
        }
        values: dict[str, object] = {
            field: env[name] for field, name in names.items() if env.get(name)
        }
        url = env.get("MARKETING_API_DATABASE_URL") or env.get("MARKETING_WAREHOUSE_URL")
        if url:
            values["database_url"] = url
        origins = env.get("MARKETING_API_CORS_ORIGIN", "")
        values["cors_origins"] = tuple(o.strip() for o in origins.split(",") if o.strip())
        return cls.model_validate(values)
