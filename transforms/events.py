"""Campaign events as the source delivers them -> the typed frame the metrics step uses.

The source column `revenue` is in currency units (as the notification service logs it);
inside the pipeline it becomes integer cents, like every other amount.
"""

from __future__ import annotations

import polars as pl

from transforms.columns import CAMPAIGN_EVENT_SCHEMA, CAMPAIGN_EVENT_TYPES
from transforms.user_keys import user_keys


def normalize_events(raw: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Typed events plus the number of rows dropped for an unknown type or missing key.

    Dropped rows are counted (and reported as metadata) rather than quarantined: events are
    the notification service's log, not our input contract, and a malformed one cannot
    change a campaign's figures either way.
    """
    if raw.is_empty() or "event_id" not in raw.columns:
        return pl.DataFrame(schema=CAMPAIGN_EVENT_SCHEMA), raw.height
    revenue = (
        (pl.col("revenue").cast(pl.Float64) * 100).round(0).cast(pl.Int64)
        if "revenue" in raw.columns else pl.lit(None, dtype=pl.Int64)
    )
    typed = raw.select(
        pl.col("event_id").cast(pl.String),
        pl.col("campaign_id").cast(pl.String),
        user_keys(raw["user_id"]).alias("user_id"),
        pl.col("event_type").cast(pl.String).str.to_lowercase(),
        pl.col("occurred_at").cast(pl.Datetime("us", "UTC")),
        revenue.alias("revenue_cents"),
    )
    valid = typed.filter(
        pl.col("event_type").is_in(CAMPAIGN_EVENT_TYPES)
        & pl.all_horizontal(pl.col("event_id", "campaign_id", "user_id", "occurred_at")
                            .is_not_null())
    )
    return valid, raw.height - valid.height


def events_for_source(events: pl.DataFrame) -> pl.DataFrame:
    """The inverse, for the demo's simulated notification service: cents -> `revenue`."""
    return events.select(
        "event_id", "campaign_id", "user_id", "event_type", "occurred_at",
        (pl.col("revenue_cents").cast(pl.Float64) / 100).alias("revenue"),
    )
