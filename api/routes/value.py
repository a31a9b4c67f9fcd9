"""`/customer-value` (the population's predicted value) and `/segments/{pattern}/value`.

Distributions only: value tier x churn risk with counts and sums, never a row per user
(the per-user `customer_value` table is not granted to the API's role). See
docs/customer-value.md for the models and the tiers.
"""

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from api.context import Context
from api.database import Snapshot, one
from api.errors import error_responses, not_found
from api.figures import as_int, json_object
from api.models import CustomerValueResponse, SegmentValueResponse, ValueModel, ValueTierFigures
from api.params import Day
from api.responses import json_response
from api.routes.segments import PatternName, require_known_pattern

AsOf = Annotated[Day | None, Query(description="Predicted value as of this day (default: "
                                               "the latest scored day)")]
NOT_FOUND = error_responses(404)


async def _scored_day(db: Snapshot, as_of: dt.date | None) -> dt.date:
    latest = (await one(db, "api_customer_value_latest_day") or {}).get("day")
    if latest is None:
        raise not_found("no predicted customer value yet: the pipeline has not "
                        "materialized customer_value (or every fit failed its check)")
    return as_of if as_of is not None else latest


def _tiers(rows: list) -> list[ValueTierFigures]:
    return [ValueTierFigures.model_validate(row) for row in rows]


def value_router() -> APIRouter:
    router = APIRouter(tags=["customer value"])

    @router.get("/customer-value", response_model=CustomerValueResponse, responses=NOT_FOUND,
                summary="The day's predicted value: value tiers x churn risk and the models")
    async def customer_value(context: Context, as_of: AsOf = None) -> Response:
        async def work(db: Snapshot) -> CustomerValueResponse:
            day = await _scored_day(db, as_of)
            tiers = await db.rows("api_customer_value_tiers", {"day": day})
            if not tiers:
                raise not_found(f"no predicted customer value for {day}")
            models = await db.rows("api_customer_value_models", {"day": day})
            return CustomerValueResponse(
                as_of_date=day,
                users=sum(as_int(row["users"]) for row in tiers),
                total_clv=sum(float(row["total_clv"]) for row in tiers),
                models=[ValueModel(model=row["model"],
                                   parameters=json_object(row["parameters"]),
                                   log_likelihood=row["log_likelihood"],
                                   customers=as_int(row["customers"]),
                                   converged=bool(row["converged"])) for row in models],
                tiers=_tiers(tiers))

        return json_response(await context.reader.read(work))

    @router.get("/segments/{pattern}/value", response_model=SegmentValueResponse,
                responses=NOT_FOUND,
                summary="One segment's predicted value: value tiers x churn risk")
    async def segment_value(context: Context, pattern: PatternName, as_of: AsOf = None
                            ) -> Response:
        require_known_pattern(pattern)

        async def work(db: Snapshot) -> SegmentValueResponse:
            day = await _scored_day(db, as_of)
            tiers = await db.rows("api_segment_value", {"day": day, "pattern": pattern})
            if not tiers:
                raise not_found(f"no predicted value for segment {pattern} on {day}")
            return SegmentValueResponse(
                as_of_date=day, behavior_pattern=pattern,
                users=sum(as_int(row["users"]) for row in tiers),
                total_clv=sum(float(row["total_clv"]) for row in tiers),
                tiers=_tiers(tiers))

        return json_response(await context.reader.read(work))

    return router
