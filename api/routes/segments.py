"""`/segments` (one day's segments) and `/segments/{pattern}` (one segment in depth)."""

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from api.context import Context
from api.database import Snapshot, one
from api.errors import error_responses, not_found
from api.figures import as_int
from api.models import (
    Segment,
    SegmentDetailResponse,
    SegmentHistoryPoint,
    SegmentList,
    SegmentOverlap,
)
from api.params import Day
from api.responses import json_response
from transforms.campaign_config import BEHAVIOR_PATTERNS

HISTORY_DAYS = 30
AsOf = Annotated[Day | None, Query(description="Segments of this day (default: latest)")]
# A path segment names a resource: an unknown pattern is a 404 like an unknown id, so the
# enum is documented for clients but not enforced as a 422.
PatternName = Annotated[str, Path(
    description="A behaviour pattern; any other name is a 404.",
    json_schema_extra={"enum": list(BEHAVIOR_PATTERNS)})]
NOT_FOUND = error_responses(404)


def require_known_pattern(pattern: str) -> None:
    """404 for a name that is no behaviour pattern (see PatternName)."""
    if pattern not in BEHAVIOR_PATTERNS:
        raise not_found(f"unknown pattern {pattern!r}; known: {', '.join(BEHAVIOR_PATTERNS)}")


async def _day(db: Snapshot, as_of: dt.date | None) -> dt.date:
    """The requested day, or the latest one; 404 when there are no segments at all."""
    if as_of is not None:
        return as_of
    latest = (await one(db, "api_segments_latest_day") or {}).get("day")
    if latest is None:
        raise not_found("no segments yet: the pipeline has not materialized user_segments")
    return latest


async def _missing_day(db: Snapshot, day: dt.date) -> Exception:
    latest = (await one(db, "api_segments_latest_day") or {}).get("day")
    return not_found(f"no segments for {day} (latest: {latest or 'none'})")


def segments_router() -> APIRouter:
    router = APIRouter(tags=["segments"])

    @router.get("/segments", response_model=SegmentList, responses=NOT_FOUND,
                summary="Every behaviour segment of a day, largest first")
    async def list_segments(context: Context, as_of: AsOf = None) -> Response:
        rows = await context.reader.query("api_segments", {"as_of": as_of})
        day = rows[0]["day"] if rows else None
        if day is None:
            raise not_found("no segments yet: the pipeline has not materialized user_segments")
        segments = [row for row in rows if row["segment_id"] is not None]
        if not segments:
            latest = await context.reader.query("api_segments_latest_day")
            raise not_found(f"no segments for {day} (latest: {latest[0]['day'] or 'none'})")
        return json_response(SegmentList(
            as_of_date=day, total=len(segments),
            segments=[Segment.model_validate(row) for row in segments]))

    @router.get("/segments/{pattern}", response_model=SegmentDetailResponse, responses=NOT_FOUND,
                summary="One segment: figures, overlap with other patterns, 30-day trend")
    async def get_segment(context: Context, pattern: PatternName, as_of: AsOf = None
                          ) -> Response:
        require_known_pattern(pattern)

        async def work(db: Snapshot) -> SegmentDetailResponse:
            day = await _day(db, as_of)
            row = await one(db, "api_segment", {"day": day, "pattern": pattern})
            if row is None:
                raise await _missing_day(db, day)
            overlap = await db.rows("api_segment_overlap", {"day": day, "pattern": pattern})
            history = await db.rows("api_segment_history", {
                "pattern": pattern, "day": day, "since": day - dt.timedelta(days=HISTORY_DAYS)})
            by_status = await db.rows("api_segment_campaigns", {"pattern": pattern})
            return SegmentDetailResponse(
                segment=Segment.model_validate(row),
                overlap=[SegmentOverlap.model_validate(item) for item in overlap],
                history=[SegmentHistoryPoint.model_validate(item) for item in history],
                campaigns_by_status={item["status"]: as_int(item["campaigns"])
                                     for item in by_status},
            )

        # Four statements (segment, overlap, history, campaigns): one snapshot.
        return json_response(await context.reader.read(work))

    return router
