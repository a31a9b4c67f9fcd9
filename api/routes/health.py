"""`/health` (is the process up) and `/ready` (can it serve data): both without a token.

Why two: a load balancer restarting the process on a database outage would only make
things worse, so liveness never touches the database; readiness does, and also says how
fresh each daily step's results are and whether the connection is really read-only.
Probes send no token (the original system's did not), so both are open, and both say
nothing about the data itself: no counts, no names, only days and versions. `HEAD` answers
like `GET` without a body, for probes that use it.
"""

from fastapi import APIRouter, Depends
from starlette.responses import Response

from api.context import Context
from api.database import DatabaseUnavailable, Snapshot, one
from api.errors import error_responses
from api.models import HealthResponse, ReadyResponse
from api.params import reject_unknown_parameters
from api.responses import json_response

# The API reads tables up to migration 0004 (campaign_copy); an older warehouse would fail
# on some endpoints, so it is not ready.
REQUIRED_SCHEMA_VERSION = "0004"
# The steps that close a partition every day; `latest_partition` is the oldest of them.
DAILY_STEPS = ("staged_partitions", "user_segments", "campaign_cycle")


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"], dependencies=[Depends(reject_unknown_parameters)])

    @router.get("/health", response_model=HealthResponse, responses=error_responses(422),
                summary="Liveness (no token)")
    @router.head("/health", operation_id="health_head", response_model=HealthResponse,
                 responses=error_responses(422), summary="Liveness (no token, no body)")
    async def health() -> Response:
        """Answers as long as the process runs; never touches the database."""
        return json_response(HealthResponse())

    @router.get("/ready", response_model=ReadyResponse, responses=error_responses(422, 503),
                summary="Readiness (no token): database, schema, freshness per step")
    @router.head("/ready", operation_id="ready_head", response_model=ReadyResponse,
                 responses=error_responses(422, 503),
                 summary="Readiness (no token, no body)")
    async def ready(context: Context) -> Response:
        """503 while the warehouse is unreachable or older than the schema the API reads."""
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
            daily = {step: row.get(step) for step in DAILY_STEPS}
            reached = [day for day in daily.values() if day is not None]
            return ReadyResponse(
                database=dialect, schema_version=version,
                latest_partition=min(reached) if reached else None, latest_by_step=daily,
                latest_plan=row.get("latest_plan"), latest_metrics=row.get("latest_metrics"),
                read_only=not can_write)

        return json_response(await context.reader.read(work))

    return router
