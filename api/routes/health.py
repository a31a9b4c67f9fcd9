"""`/health` (is the process up: no auth, no database) and `/ready` (can it serve data).

Why two: a load balancer restarting the process on a database outage would only make
things worse, so liveness never touches the database; readiness does, and also says how
fresh the data is and whether the connection is really read-only.
"""

import datetime as dt

from fastapi import APIRouter, Depends
from starlette.responses import Response

from api.context import Context, require_admin
from api.database import DatabaseUnavailable, Snapshot, one
from api.errors import ERROR_RESPONSES
from api.models import HealthResponse, ReadyResponse
from api.responses import json_response

# The API reads tables up to migration 0004 (campaign_copy); an older warehouse would fail
# on some endpoints, so it is not ready.
REQUIRED_SCHEMA_VERSION = "0004"
FAMILIES = ("staged_partitions", "user_segments", "ai_campaigns", "campaign_metrics")


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", response_model=HealthResponse, summary="Liveness (no auth)")
    async def health() -> HealthResponse:
        return HealthResponse()

    @router.get("/ready", response_model=ReadyResponse, dependencies=[Depends(require_admin)],
                responses={k: v for k, v in ERROR_RESPONSES.items() if k != 422},
                summary="Readiness: database reachable, schema version, latest partitions")
    async def ready(context: Context) -> Response:
        dialect = context.reader.dialect

        async def work(db: Snapshot) -> ReadyResponse:
            row = await one(db, "api_ready") or {}
            can_write = False
            if dialect == "postgres":
                can_write = bool((await one(db, "api_role_can_write") or {}).get("can_write"))
            version = row.get("schema_version")
            if version is None or version < REQUIRED_SCHEMA_VERSION:
                raise DatabaseUnavailable(f"schema version {version} is older than the "
                                          f"{REQUIRED_SCHEMA_VERSION} the API reads")
            latest: dict[str, dt.date | None] = {name: row.get(name) for name in FAMILIES}
            reached = [day for day in latest.values() if day is not None]
            return ReadyResponse(database=dialect, schema_version=version,
                                 latest_partition=min(reached) if reached else None,
                                 latest_by_table=latest, read_only=not can_write)

        return json_response(await context.reader.read(work))

    return router
