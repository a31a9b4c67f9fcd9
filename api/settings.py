"""Settings of the read API, from `MARKETING_API_*` environment variables.

Read once by the `marketing api` command (or a test), never at import time, so one process
can build several apps (tests do: one per backend). Every limit lives here, so changing
one is a configuration change; docs/api.md lists the variables.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from api import auth
from resources.connection_url import DEFAULT_WAREHOUSE_URL, parse_backend_url, redact_url

# HS256 with a short key is brute-forceable offline from any token; RFC 7518 asks for a
# key at least as long as the hash output (32 bytes).
MIN_SECRET_LENGTH = 32
ENV_PREFIX = "MARKETING_API_"
# Exactly one of these says how tokens are verified.
KEY_VARIABLES = ("MARKETING_API_JWT_SECRET", "MARKETING_API_JWT_PUBLIC_KEY_FILE",
                 "MARKETING_API_JWT_JWKS_FILE")
RATE_LIMITS_SYNTAX = "SUBJECT=PER_MINUTE/BURST[,SUBJECT=PER_MINUTE/BURST...]"
_RATES_EXAMPLE = f"expected {RATE_LIMITS_SYNTAX}, e.g. portal-backend=6000/100"


class SubjectRateLimit(BaseModel):
    """The rate limit of one token subject, overriding the default one."""

    model_config = ConfigDict(frozen=True)

    subject: str = Field(min_length=1)
    per_minute: float = Field(gt=0, allow_inf_nan=False)
    burst: int = Field(ge=1)


def parse_rate_limits(text: str) -> tuple[SubjectRateLimit, ...]:
    """`portal-backend=6000/100,reports=60/10`: per subject, requests per minute / burst.

    The subject is everything before the last `=` (so it may contain `=`, not `,`).
    """
    limits: list[SubjectRateLimit] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        subject, equals, rate = item.rpartition("=")
        per_minute, slash, burst = rate.partition("/")
        subject = subject.strip()
        if not equals or not subject or not slash:
            raise ValueError(f"rate limit {item!r}: {_RATES_EXAMPLE}")
        try:
            per_minute_value, burst_value = float(per_minute), int(burst)
        except ValueError:
            raise ValueError(f"rate limit {item!r}: PER_MINUTE must be a number and BURST a "
                             f"whole number, {_RATES_EXAMPLE}") from None
        if not math.isfinite(per_minute_value) or per_minute_value <= 0 or burst_value < 1:
            raise ValueError(f"rate limit {item!r}: PER_MINUTE must be above 0 and BURST at "
                             f"least 1, {_RATES_EXAMPLE}")
        limits.append(SubjectRateLimit(subject=subject, per_minute=per_minute_value,
                                       burst=burst_value))
    return tuple(limits)


class ApiSettings(BaseModel):
    """Everything `create_app` needs; the defaults serve the demo's DuckDB warehouse."""

    # hide_input_in_errors: a validation error must not print the secret.
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    database_url: str = DEFAULT_WAREHOUSE_URL
    schema_name: str = "marketing"
    # Exactly one of secret (HS256) / public key file / JWKS file (RS256, ES256); api/auth.py.
    jwt_secret: str | None = Field(default=None, min_length=MIN_SECRET_LENGTH, repr=False)
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    jwt_audience: str = Field(default=auth.DEFAULT_AUDIENCE, min_length=1)
    jwt_issuer: str = Field(default=auth.DEFAULT_ISSUER, min_length=1)
    jwt_leeway_seconds: float = Field(default=auth.DEFAULT_LEEWAY_S, ge=0, le=300)
    required_role: str = "admin"
    cors_origins: tuple[str, ...] = ()
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=200, ge=1, le=10_000)
    rate_limit_per_minute: float = Field(default=600, ge=0)  # 0 disables
    rate_limit_burst: int = Field(default=60, ge=1)
    rate_limits: tuple[SubjectRateLimit, ...] = ()  # per-subject overrides of the two above
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

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _parse_rate_limits(cls, value: Any) -> Any:
        return parse_rate_limits(value) if isinstance(value, str) else value

    @field_validator("rate_limits")
    @classmethod
    def _one_limit_per_subject(cls, limits: tuple[SubjectRateLimit, ...],
                               ) -> tuple[SubjectRateLimit, ...]:
        subjects = [limit.subject for limit in limits]
        twice = sorted({subject for subject in subjects if subjects.count(subject) > 1})
        if twice:
            raise ValueError(f"rate limit given more than once for {', '.join(twice)}")
        return limits

    @model_validator(mode="after")
    def _one_verification_key(self) -> ApiSettings:
        given = [name for name, value in zip(KEY_VARIABLES, (
            self.jwt_secret, self.jwt_public_key_file, self.jwt_jwks_file), strict=True)
            if value is not None]
        if len(given) != 1:
            problem = ("no token verification key is configured" if not given else
                       f"{' and '.join(given)} are {'both' if len(given) == 2 else 'all'} set")
            raise ValueError(
                f"{problem}: set exactly one of MARKETING_API_JWT_SECRET (HS256, at least "
                f"{MIN_SECRET_LENGTH} characters), MARKETING_API_JWT_PUBLIC_KEY_FILE (an RSA "
                "or EC P-256 public key, PEM: RS256 / ES256) or MARKETING_API_JWT_JWKS_FILE "
                "(`marketing api` on the demo generates a secret and prints a token)")
        try:
            self.verification_keys()  # a bad key file fails at startup, not per request
        except ValueError as error:
            raise ValueError(f"{given[0]}: {error}") from error
        return self

    def verification_keys(self) -> auth.VerificationKeys:
        """The configured key, loaded (files are read on each call)."""
        if self.jwt_secret is not None:
            return auth.secret_keys(self.jwt_secret)
        if self.jwt_public_key_file is not None:
            return auth.public_key_file_keys(self.jwt_public_key_file)
        if self.jwt_jwks_file is not None:
            return auth.jwks_file_keys(self.jwt_jwks_file)
        return auth.VerificationKeys()

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

        Every `MARKETING_API_*` variable must be one of the known names: a typo (say
        `MARKETING_API_JWT_AUDIENCES`) fails the start instead of silently leaving the
        default in force.
        """
        env = os.environ if environ is None else environ
        names = {
            "jwt_secret": "MARKETING_API_JWT_SECRET",
            "jwt_public_key_file": "MARKETING_API_JWT_PUBLIC_KEY_FILE",
            "jwt_jwks_file": "MARKETING_API_JWT_JWKS_FILE",
            "jwt_audience": "MARKETING_API_JWT_AUDIENCE",
            "jwt_issuer": "MARKETING_API_JWT_ISSUER",
            "jwt_leeway_seconds": "MARKETING_API_JWT_LEEWAY_SECONDS",
            "rate_limits": "MARKETING_API_RATE_LIMITS",
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
        names |= {"database_url": "MARKETING_API_DATABASE_URL",
                  "cors_origins": "MARKETING_API_CORS_ORIGIN"}
        _refuse_unknown_variables(env, set(names.values()))
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            # Name the variable, not the field; never echo a value (it may be the secret).
            problems = []
            for problem in error.errors():
                message = problem["msg"].removeprefix("Value error, ")
                field = str(problem["loc"][0]) if problem["loc"] else ""
                problems.append(f"{names[field]}: {message}" if field in names else message)
            raise ValueError("; ".join(problems)) from None


def _refuse_unknown_variables(env: Mapping[str, str], known: set[str]) -> None:
    unknown = sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)
    if not unknown:
        return
    ours = sorted(name for name in known if name.startswith(ENV_PREFIX))
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name, ours, n=3, cutoff=0.6)
        hint = (f"did you mean {' or '.join(close)}?" if close
                else f"known: {', '.join(ours)}")
        problems.append(f"unknown variable {name} ({hint})")
    raise ValueError("; ".join(problems))
