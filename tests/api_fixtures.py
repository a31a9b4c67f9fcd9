"""Fixtures of the API tests: warehouses filled by the pipeline itself, and apps over them.

Registered as a plugin by each `tests/test_api*.py` (`pytest_plugins = [...]`), so the
session-scoped materialization runs once for the whole API suite. Plugin fixtures are
visible to every test module, hence the `api_` prefix on all of them. Test modules take
everything from fixtures (and import this module only under TYPE_CHECKING), because a
module imported before pytest registers it as a plugin cannot have its asserts rewritten.

The data is what the demo produces, at a smaller scale: a generated source, `ingest` over
the whole range, then `refresh_all` day by day for the last days with the notification
service's events simulated in between (`pipelines.demo.simulate_day_events`), so campaigns
get deliveries, metrics, incrementality, recommendations and copy. Once on a DuckDB
warehouse, once on a PostgreSQL one (own schema in the session database).

On PostgreSQL the API connects with the read-only role (`api.role`), as in production.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import DEFAULT_AUDIENCE, DEFAULT_ISSUER, PrivateKey, mint_token
from api.role import apply_readonly_role
from api.settings import ApiSettings
from pipelines.demo import simulate_day_events
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from resources.warehouse import Warehouse
from tests.pipeline_helpers import START, generated_source, last_day

SECRET = "api-tests-secret-0123456789-abcdefghijklmnop"
USERS = 2_000  # enough opted-in users for a campaign to pass the recommendation minimums
DAYS = 10
ANALYZED_DAYS = 3  # plan on the first, measure on the next two
LAST = last_day(DAYS)
FIRST_ANALYZED = LAST - dt.timedelta(days=ANALYZED_DAYS - 1)
# "Now" is 20:00 of the last day, as in the ingest tests: the latest partition is today,
# and the generated rows after 20:00 (future, so rejected) stay well under the
# `rejections_below_limit` share.
NOW = dt.datetime.combine(LAST, dt.time(20), tzinfo=dt.UTC)
SEED = 7


@dataclass(frozen=True)
class Materialized:
    """A warehouse the pipeline filled, and how to reach it."""

    backend: str
    owner_url: str  # full rights: for the tests' own reads and writes
    api_url: str  # what the API connects with (the read-only role on PostgreSQL)
    schema: str

    def warehouse(self) -> Warehouse:
        return Warehouse(url=self.owner_url, schema_name=self.schema)

    def read(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        return self.warehouse().read(sql, params)


def materialize(tmp: Path, *, warehouse_url: str | None = None,
                warehouse_schema: str = "marketing") -> str:
    """Run the demo's sequence on a small generated source; return the warehouse URL."""
    pipeline = generated_source(tmp, f"duckdb:///{tmp}/source.duckdb", users=USERS, days=DAYS,
                                warehouse_url=warehouse_url, warehouse_schema=warehouse_schema)
    pipeline.run(INGEST_JOB, START, LAST, NOW)
    events = pl.DataFrame()
    for offset in range(ANALYZED_DAYS):
        day = FIRST_ANALYZED + dt.timedelta(days=offset)
        pipeline.run(ALL_ASSETS_JOB, day, day, NOW)
        if day < LAST:  # events after the last run would never be measured
            events = simulate_day_events(pipeline.settings, day, events, NOW, SEED)
    return pipeline.settings.warehouse_url


def with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(
        netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture(scope="session")
def api_duckdb(tmp_path_factory: pytest.TempPathFactory) -> Materialized:
    url = materialize(tmp_path_factory.mktemp("api_duckdb"))
    return Materialized("duckdb", url, url, "marketing")


@pytest.fixture(scope="session")
def api_postgres(tmp_path_factory: pytest.TempPathFactory, postgres_url: str,
                 ) -> Iterator[Materialized]:
    schema = f"api_{uuid.uuid4().hex[:8]}"
    materialize(tmp_path_factory.mktemp("api_postgres"), warehouse_url=postgres_url,
                warehouse_schema=schema)
    role, password = f"api_ro_{uuid.uuid4().hex[:8]}", "read-only-password"
    apply_readonly_role(postgres_url, schema, role, password)
    try:
        yield Materialized("postgres", postgres_url, with_user(postgres_url, role, password),
                           schema)
    finally:
        drop_role(postgres_url, role)


def drop_role(owner_url: str, role: str) -> None:
    """Roles outlive the test database: revoke what it holds there, then drop it."""
    with psycopg.connect(owner_url, autocommit=True) as admin:
        admin.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="session", params=["duckdb", "postgres"])
def api_data(request: pytest.FixtureRequest) -> Materialized:
    """Each backend in turn (tests using this run twice)."""
    return request.getfixturevalue(f"api_{request.param}")


def settings_for(data: Materialized, **overrides: Any) -> ApiSettings:
    """Test settings: rate limit off unless a test turns it on; fast 503s."""
    values: dict[str, Any] = {
        "database_url": data.api_url, "schema_name": data.schema, "jwt_secret": SECRET,
        "rate_limit_per_minute": 0, "db_timeout_seconds": 2.0,
    }
    return ApiSettings(**{**values, **overrides})


@pytest.fixture(scope="session")
def api_client(api_data: Materialized) -> Iterator[TestClient]:
    """The real app over each backend, through its lifespan (pool opened and closed)."""
    with TestClient(create_app(settings_for(api_data))) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def api_jwt_secret() -> str:
    return SECRET


@pytest.fixture(scope="session")
def api_auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, 'tests')}"}


@dataclass(frozen=True)
class FixtureDays:
    """The days the fixture analysed: campaigns are planned on `first`, measured after."""

    first: dt.date
    last: dt.date


@pytest.fixture(scope="session")
def api_days() -> FixtureDays:
    return FixtureDays(FIRST_ANALYZED, LAST)


MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_api_client() -> Iterator[MakeClient]:
    """`make_api_client(data, **settings overrides)`: a started app with its own settings
    (its own limiter, cache and pool), closed at the end of the test."""
    with ExitStack() as stack:
        def build(data: Materialized, **overrides: Any) -> TestClient:
            return stack.enter_context(TestClient(create_app(settings_for(data, **overrides))))

        yield build


Mint = Callable[..., str]


@pytest.fixture(scope="session")
def api_token() -> Mint:
    """`api_token(subject, role="admin", ttl=..., secret=SECRET, now=None, audience=...,
    issuer=..., private_key=None, kid=None)`: a signed token (HS256 with `secret`, or RS256
    / ES256 with `private_key`), with the default aud/iss unless given (None: no claim)."""
    def sign(subject: str = "tests", *, role: str | None = "admin",
             ttl: dt.timedelta = dt.timedelta(hours=1), secret: str = SECRET,
             now: dt.datetime | None = None, audience: str | None = DEFAULT_AUDIENCE,
             issuer: str | None = DEFAULT_ISSUER, private_key: PrivateKey | None = None,
             kid: str | None = None) -> str:
        return mint_token(secret if private_key is None else private_key, subject, role=role,
                          ttl=ttl, now=now, audience=audience, issuer=issuer, kid=kid)

    return sign
