"""`/campaigns`, `/campaigns/{id}` and its metrics, recommendations and copy.

Each endpoint reads each table with one SQL statement (one round trip, one snapshot by
construction); see the comments of the `api_campaign*.sql` files for how a missing
campaign or missing data shows in their rows.
"""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from api.context import Context
from api.database import Row, Snapshot, one
from api.errors import error_responses, invalid, not_found
from api.figures import as_int, json_object, money, ratio
from api.models import (
    BehaviorPattern,
    CampaignDetail,
    CampaignList,
    CampaignMetricsResponse,
    CampaignResponse,
    CampaignStatus,
    CampaignSummary,
    CampaignType,
    CopyResponse,
    DailyMetrics,
    Incrementality,
    MetricTotals,
    Recommendation,
    RecommendationsResponse,
)
from api.params import Day
from api.responses import json_response
from api.settings import ApiSettings

# Deep offsets make the database skip rows one by one; nobody pages 100,000 rows deep in a
# portal, and a script wanting everything can filter instead.
MAX_OFFSET = 100_000
CampaignId = Annotated[UUID, Path(description="The campaign's id (a UUID).")]
NOT_FOUND = error_responses(404)


def campaigns_router(settings: ApiSettings) -> APIRouter:
    """Routes whose limits (page size) come from `settings`."""
    router = APIRouter(tags=["campaigns"])

    @router.get("/campaigns", response_model=CampaignList, summary="List campaigns")
    async def list_campaigns(
        context: Context,
        status: Annotated[CampaignStatus | None, Query(description="Lifecycle status")] = None,
        campaign_type: Annotated[CampaignType | None, Query(alias="type")] = None,
        pattern: Annotated[BehaviorPattern | None,
                           Query(description="Target behaviour pattern")] = None,
        limit: Annotated[int, Query(ge=1, le=settings.max_page_size)] = (
            settings.default_page_size),
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> Response:
        """Newest first. `total` counts every match, so `offset + limit < total` means
        there is another page."""
        filters = {
            "status": status.value if status else None,
            "campaign_type": campaign_type.value if campaign_type else None,
            "pattern": pattern.value if pattern else None,
        }
        page = {**filters, "limit": limit, "offset": offset}
        # Each row carries the total (a window count), so a page is one statement. Only a
        # page past the end has no row to carry it; then page and count share a snapshot.
        rows = await context.reader.query("api_campaigns_page", page)
        if rows:
            total = as_int(rows[0]["total"])
        else:
            async def past_the_end(db: Snapshot) -> tuple[list[Row], int]:
                again = await db.rows("api_campaigns_page", page)
                count = await one(db, "api_campaigns_count", filters)
                return again, as_int((count or {}).get("total"))

            rows, total = await context.reader.read(past_the_end)
        return json_response(CampaignList(
            total=total, limit=limit, offset=offset,
            campaigns=[CampaignSummary.model_validate(row) for row in rows]))

    @router.get("/campaigns/{campaign_id}", response_model=CampaignResponse, responses=NOT_FOUND,
                summary="One campaign with its plan and offer")
    async def get_campaign(context: Context, campaign_id: CampaignId) -> Response:
        key = str(campaign_id)
        rows = await context.reader.query("api_campaign", {"campaign_id": key})
        if not rows:
            raise not_found(f"campaign {key} not found")
        row = rows[0]
        row["offer"] = json_object(row.pop("offer_json"))
        return json_response(CampaignResponse(campaign=CampaignDetail.model_validate(row)))

    @router.get("/campaigns/{campaign_id}/metrics", response_model=CampaignMetricsResponse,
                responses=NOT_FOUND,
                summary="Performance totals and daily breakdown (the original Example 3)")
    async def get_campaign_metrics(
        context: Context,
        campaign_id: CampaignId,
        start_date: Annotated[Day | None, Query(description="First day (inclusive)")] = None,
        end_date: Annotated[Day | None, Query(description="Last day (inclusive)")] = None,
    ) -> Response:
        if start_date and end_date and start_date > end_date:
            raise invalid("start_date", f"must be on or before end_date ({end_date})")
        key = str(campaign_id)
        rows = await context.reader.query("api_campaign_metrics", {
            "campaign_id": key, "start_date": start_date, "end_date": end_date})
        if not rows:
            raise not_found(f"campaign {key} not found")
        lift = await context.reader.query("api_campaign_incrementality",
                                          {"campaign_id": key, "end_date": end_date})
        daily = [row for row in rows if row["date"] is not None]
        return json_response(CampaignMetricsResponse(
            campaign_id=key, start_date=start_date, end_date=end_date,
            metrics=_totals(daily),
            daily_breakdown=[DailyMetrics.model_validate(row) for row in daily],
            incrementality=Incrementality.model_validate(lift[0]) if lift else None,
        ))

    @router.get("/campaigns/{campaign_id}/recommendations",
                response_model=RecommendationsResponse, responses=NOT_FOUND,
                summary="Rule-based advice on the campaign, with the evidence for each")
    async def get_recommendations(
        context: Context,
        campaign_id: CampaignId,
        as_of: Annotated[Day | None, Query(
            description="Advice as of this day (default: the latest day with metrics)")] = None,
    ) -> Response:
        key = str(campaign_id)
        rows = await context.reader.query("api_campaign_recommendations",
                                          {"campaign_id": key, "as_of": as_of})
        if not rows:
            raise not_found(f"campaign {key} not found")
        advice = [{**row, "evidence": json_object(row["evidence"])} for row in rows
                  if row["recommendation_id"] is not None]
        return json_response(RecommendationsResponse(
            campaign_id=key, as_of_date=rows[0]["day"],
            recommendations=[Recommendation.model_validate(row) for row in advice]))

    @router.get("/campaigns/{campaign_id}/copy", response_model=CopyResponse, responses=NOT_FOUND,
                summary="The campaign's marketing copy (headline, email, CTAs, subjects)")
    async def get_copy(context: Context, campaign_id: CampaignId) -> Response:
        key = str(campaign_id)
        rows = await context.reader.query("api_campaign_copy", {"campaign_id": key})
        if not rows:
            raise not_found(f"campaign {key} not found")
        if rows[0]["headline"] is None:
            raise not_found(f"no copy written yet for campaign {key}")
        return json_response(CopyResponse.model_validate(rows[0]))

    return router


def _totals(daily: list[dict[str, Any]]) -> MetricTotals:
    """Sums of the daily rows; ratios from the sums (an average of daily ratios would
    weigh a 10-impression day like a 10,000-impression one). Money is summed exactly."""
    def total(column: str) -> int:
        return sum(as_int(row[column]) for row in daily)

    revenue = sum((row["revenue"] for row in daily if row["revenue"] is not None), start=0)
    cost = sum((row["cost"] for row in daily if row["cost"] is not None), start=0)
    impressions, clicks, conversions = total("impressions"), total("clicks"), total("conversions")
    return MetricTotals(
        impressions=impressions, clicks=clicks, conversions=conversions,
        ctr=ratio(clicks, impressions), conversion_rate=ratio(conversions, clicks),
        revenue=money(revenue), roi=ratio(revenue, cost), cost=money(cost),
        opens=total("opens"),
    )
