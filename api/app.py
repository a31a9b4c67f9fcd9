"""`create_app(settings)`: the read-only HTTP API over the warehouse.

Everything under `/api/marketing` needs a bearer token with the admin role and counts
against that token's rate limit; `/health` needs nothing. Routes are coroutines, each
reading one snapshot of the warehouse through `api.database` (asyncio for PostgreSQL, a
worker thread per request for DuckDB).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.auth import TokenVerifier
from api.cache import TTLCache
from api.context import ApiContext, require_admin
from api.database import Reader, build_reader
from api.errors import ERROR_RESPONSES, install_error_handlers
from api.ratelimit import RateLimiter
from api.routes.analytics import analytics_router
from api.routes.campaigns import campaigns_router
from api.routes.health import health_router
from api.routes.segments import segments_router
from api.settings import ApiSettings
from resources.connection_url import parse_backend_url

PREFIX = "/api/marketing"
VERSION = "1.0.0"


def reader_for(settings: ApiSettings) -> Reader:
    parsed = parse_backend_url(settings.database_url)
    return build_reader(parsed.dialect, duckdb_path=parsed.duckdb_path,
                        conninfo=parsed.postgres_conninfo, schema=settings.schema_name,
                        timeout_s=settings.db_timeout_seconds,
                        statement_timeout_ms=settings.statement_timeout_ms,
                        pool_sizes=(settings.pool_min_size, settings.pool_max_size))


def create_app(settings: ApiSettings) -> FastAPI:
    """A new app (own reader, limiter and cache) for these settings."""
    reader = reader_for(settings)
    context = ApiContext(
        settings=settings,
        reader=reader,
        verifier=TokenVerifier(settings.jwt_secret, settings.required_role),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        cache=TTLCache(settings.cache_seconds),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await reader.open()
        try:
            yield
        finally:
            await reader.close()

    app = FastAPI(
        title="Marketing analytics read API",
        version=VERSION,
        description="Read-only access to campaigns, segments, metrics and analytics "
                    "produced by the pipeline. Bearer JWT (HS256) with the admin role.",
        lifespan=lifespan,
    )
    app.state.context = context
    install_error_handlers(app)
    if settings.cors_origins:
        # Only the configured portal origin(s); no credentials (the token is a header).
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET"], allow_headers=["Authorization"],
                           expose_headers=["Retry-After"], max_age=600)

    app.include_router(health_router())
    data = APIRouter(prefix=PREFIX, dependencies=[Depends(require_admin)],
                     responses=ERROR_RESPONSES)
    data.include_router(campaigns_router(settings))
    data.include_router(segments_router())
    data.include_router(analytics_router(settings))
    app.include_router(data)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory api.app:app_from_env` (each worker reads the env)."""
    return create_app(ApiSettings.from_env())
