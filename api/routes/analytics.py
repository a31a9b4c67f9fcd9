"""`/analytics/roi`, `/analytics/engagement`, `/analytics/conversion` over a date range.

Without dates the range is the 30 days ending at the latest day that has metrics, so the
portal's default view is never empty just because today's partition has not run yet.
Answers are cached for `MARKETING_API_CACHE_SECONDS` (see api/cache.py for why).
"""

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from starlette.responses import Response

from api.context import ApiContext, Context
from api.database import Snapshot, Work, one
from api.errors import invalid
from api.figures import as_int, money, ratio
from api.models import (
    ConversionDay,
    ConversionFigures,
    ConversionResponse,
    EngagementDay,
    EngagementFigures,
    EngagementResponse,
    IncrementalitySummary,
    RoiGroup,
    RoiResponse,
    RoiTotals,
    TopCampaign,
)
from api.params import Day
from api.responses import json_bytes_response
from api.settings import ApiSettings

DEFAULT_RANGE_DAYS = 30
TOP_CAMPAIGNS = 5
StartDate = Annotated[Day | None, Query(description="First day (inclusive; default: 29 "
                                                   "days before end_date)")]
EndDate = Annotated[Day | None, Query(description="Last day (inclusive; default: the latest "
                                                 "day with metrics)")]


async def _range(db: Snapshot, settings: ApiSettings, start: dt.date | None,
                 end: dt.date | None) -> tuple[dt.date, dt.date]:
    if end is None:
        latest = (await one(db, "api_metrics_latest_day") or {}).get("day")
        end = latest or dt.datetime.now(dt.UTC).date()
    if start is None:
        start = end - dt.timedelta(days=DEFAULT_RANGE_DAYS - 1)
    _check(settings, start, end)
    return start, end


def _check(settings: ApiSettings, start: dt.date | None, end: dt.date | None) -> None:
    if start is None or end is None:
        return
    if start > end:
        raise invalid("start_date", f"must be on or before end_date ({end})")
    if (end - start).days + 1 > settings.max_date_range_days:
        raise invalid("end_date", f"the range may span at most {settings.max_date_range_days} "
                                  f"days ({start} .. {end} spans {(end - start).days + 1})")


async def _cached(context: ApiContext, key: tuple, work: Work[BaseModel]) -> Response:
    """The answer as JSON bytes, from the cache or from one snapshot of the warehouse."""
    async def compute() -> bytes:
        model = await context.reader.read(work)
        return model.__pydantic_serializer__.to_json(model)

    return json_bytes_response(await context.cache.get_or_compute(key, compute))


def analytics_router(settings: ApiSettings) -> APIRouter:
    router = APIRouter(prefix="/analytics", tags=["analytics"])

    @router.get("/roi", response_model=RoiResponse,
                summary="Realised vs expected ROI by campaign type or target pattern")
    async def analytics_roi(
        context: Context,
        start_date: StartDate = None,
        end_date: EndDate = None,
        group_by: Literal["campaign_type", "target_pattern"] = "campaign_type",
    ) -> Response:
        _check(settings, start_date, end_date)

        async def work(db: Snapshot) -> RoiResponse:
            start, end = await _range(db, settings, start_date, end_date)
            dates = {"start_date": start, "end_date": end}
            rows = await db.rows("api_analytics_roi", {**dates, "group_by": group_by})
            top = await db.rows("api_analytics_top_campaigns", {**dates, "top": TOP_CAMPAIGNS})
            sums = _sum(rows, ("revenue", "cost"))
            return RoiResponse(
                start_date=start, end_date=end, group_by=group_by,
                totals=RoiTotals(campaigns=sum(as_int(row["campaigns"]) for row in rows),
                                 revenue=money(sums["revenue"]), cost=money(sums["cost"]),
                                 roi=ratio(sums["revenue"], sums["cost"])),
                groups=[_roi_group(row) for row in rows],
                # ROI from the exact sums (the engines round a NUMERIC quotient differently).
                top_campaigns=[TopCampaign.model_validate(
                    {**row, "revenue": money(row["revenue"]), "cost": money(row["cost"]),
                     "roi": ratio(row["revenue"], row["cost"])}) for row in top],
            )

        return await _cached(context, ("roi", start_date, end_date, group_by), work)

    @router.get("/engagement", response_model=EngagementResponse,
                summary="Impressions, opens and clicks per day, with open rate and CTR")
    async def analytics_engagement(context: Context, start_date: StartDate = None,
                           end_date: EndDate = None) -> Response:
        _check(settings, start_date, end_date)

        async def work(db: Snapshot) -> EngagementResponse:
            start, end = await _range(db, settings, start_date, end_date)
            rows = await db.rows("api_analytics_daily", {"start_date": start, "end_date": end})
            daily = [EngagementDay(date=row["metric_date"], campaigns=as_int(row["campaigns"]),
                                   **_engagement(row).model_dump()) for row in rows]
            return EngagementResponse(start_date=start, end_date=end,
                                      totals=_engagement(_sum(rows)), daily=daily)

        return await _cached(context, ("engagement", start_date, end_date), work)

    @router.get("/conversion", response_model=ConversionResponse,
                summary="Conversions and revenue per day, plus treated-vs-holdout uplift")
    async def analytics_conversion(context: Context, start_date: StartDate = None,
                           end_date: EndDate = None) -> Response:
        _check(settings, start_date, end_date)

        async def work(db: Snapshot) -> ConversionResponse:
            start, end = await _range(db, settings, start_date, end_date)
            dates = {"start_date": start, "end_date": end}
            rows = await db.rows("api_analytics_daily", dates)
            lift = await one(db, "api_analytics_incrementality", dates)
            return ConversionResponse(
                start_date=start, end_date=end, totals=_conversion(_sum(rows)),
                daily=[ConversionDay(date=row["metric_date"], **_conversion(row).model_dump())
                       for row in rows],
                incrementality=_incrementality(lift) if lift else None,
            )

        return await _cached(context, ("conversion", start_date, end_date), work)

    return router


DAILY_COLUMNS = ("impressions", "opens", "clicks", "conversions", "revenue", "cost")


def _sum(rows: list[dict], columns: tuple[str, ...] = DAILY_COLUMNS) -> dict:
    """Column sums over rows (exact: Decimal money stays Decimal until the response)."""
    return {column: sum((row[column] for row in rows if row[column] is not None), start=0)
            for column in columns}


def _engagement(row: dict) -> EngagementFigures:
    impressions, opens, clicks = (as_int(row[c]) for c in ("impressions", "opens", "clicks"))
    return EngagementFigures(impressions=impressions, opens=opens, clicks=clicks,
                             open_rate=ratio(opens, impressions), ctr=ratio(clicks, impressions),
                             click_to_open_rate=ratio(clicks, opens))


def _conversion(row: dict) -> ConversionFigures:
    clicks, conversions = as_int(row["clicks"]), as_int(row["conversions"])
    return ConversionFigures(
        clicks=clicks, conversions=conversions, conversion_rate=ratio(conversions, clicks),
        revenue=money(row["revenue"]), cost=money(row["cost"]),
        revenue_per_conversion=ratio(row["revenue"], conversions),
        roi=ratio(row["revenue"], row["cost"]),
    )


def _roi_group(row: dict) -> RoiGroup:
    return RoiGroup(
        group=row["group_key"], campaigns=as_int(row["campaigns"]),
        impressions=as_int(row["impressions"]), clicks=as_int(row["clicks"]),
        conversions=as_int(row["conversions"]), revenue=money(row["revenue"]),
        cost=money(row["cost"]), roi=ratio(row["revenue"], row["cost"]),
        avg_expected_roi=row["avg_expected_roi"],
    )


def _incrementality(row: dict) -> IncrementalitySummary:
    treated = ratio(row["treated_conversions"], row["treated_users"])
    holdout = ratio(row["holdout_conversions"], row["holdout_users"])
    return IncrementalitySummary(
        as_of_date=row["as_of_date"], campaigns=as_int(row["campaigns"]),
        treated_users=as_int(row["treated_users"]), holdout_users=as_int(row["holdout_users"]),
        treated_conversions=as_int(row["treated_conversions"]),
        holdout_conversions=as_int(row["holdout_conversions"]),
        treated_conversion_rate=treated, holdout_conversion_rate=holdout,
        uplift=treated - holdout if treated is not None and holdout is not None else None,
    )
