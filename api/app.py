"""`create_app(settings)`: the read-only HTTP API over the warehouse.

Everything under `/api/marketing` needs a bearer token with the admin role and counts
against that token's rate limit; `/health` needs nothing. Routes are coroutines, each
reading one snapshot of the warehouse through `api.database` (asyncio for PostgreSQL, a
worker thread per request for DuckDB).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline

from api.auth import TokenVerifier
from api.cache import TTLCache
from api.context import ApiContext, require_admin
from api.database import Reader, build_reader
from api.errors import DATA_ERRORS, error_responses, install_error_handlers
from api.examples import SUCCESS_EXAMPLES
from api.middleware import JsonCORSMiddleware, SecurityHeadersMiddleware
from api.params import reject_unknown_parameters
from api.ratelimit import RateLimiter
from api.routes.analytics import analytics_router
from api.routes.campaigns import campaigns_router
from api.routes.health import health_router
from api.routes.segments import segments_router
from api.routes.value import value_router
from api.settings import ApiSettings
from resources.connection_url import parse_backend_url

PREFIX = "/api/marketing"
DOCS_STATIC = "/docs/static"
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
        verifier=TokenVerifier.from_settings(settings),
        limiter=RateLimiter.from_settings(settings),
        cache=TTLCache(settings.cache_seconds),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await reader.open()
        try:
            yield
        finally:
            await reader.close()

    # Swagger UI from files shipped in fastapi-offline (a CDN would leave /docs blank
    # offline); ReDoc off (one documentation page is enough).
    app = FastAPIOffline(
        docs_url="/docs", redoc_url=None, static_url=DOCS_STATIC,
        title="Marketing analytics read API",
        version=VERSION,
        description="Read-only access to campaigns, segments, metrics and analytics "
                    "produced by the pipeline. Bearer JWT (HS256, RS256 or ES256) with the admin "
                    "role; `/health` and `/ready` need none.",
        lifespan=lifespan,
        # Operation ids are the route functions' names (`list_campaigns`, `get_segment`):
        # what a client generated from the schema calls them.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.context = context
    install_error_handlers(app)
    if settings.cors_origins:
        # Only the configured portal origin(s); no credentials (the token is a header).
        app.add_middleware(JsonCORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET"], allow_headers=["Authorization"],
                           expose_headers=["Retry-After"], max_age=600)

    app.add_middleware(SecurityHeadersMiddleware, docs_paths=("/docs",))

    app.include_router(health_router())
    # Auth first: an unauthenticated caller learns nothing, not even the parameter names.
    data = APIRouter(prefix=PREFIX, responses=error_responses(*DATA_ERRORS),
                     dependencies=[Depends(require_admin), Depends(reject_unknown_parameters)])
    data.include_router(campaigns_router(settings))
    data.include_router(segments_router())
    data.include_router(value_router())
    data.include_router(analytics_router(settings))
    app.include_router(data)
    _document_examples(app)
    return app


def _document_examples(app: FastAPI) -> None:
    """Put each GET operation's example answer (api/examples.py) into its 200 response,
    by operation id, once the document is built (FastAPI's documented way to extend it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for operations in document["paths"].values():
                get = operations.get("get")
                example = SUCCESS_EXAMPLES.get(get["operationId"]) if get else None
                if example is not None:
                    get["responses"]["200"]["content"]["application/json"]["example"] = example
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory api.app:app_from_env` (each worker reads the env)."""
    return create_app(ApiSettings.from_env())
