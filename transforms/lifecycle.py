"""Campaign status on day D: dates decide, an operator's pause overrides, metrics archive.

- scheduled: start_date > D;  active: start_date <= D <= end_date;  expired: end_date < D.
- archived: expired and the final day's metrics are recorded (a ``campaign_metrics`` row with
  metric_date >= end_date), so nothing about the campaign can still change.
- paused: the latest operator override set before the end of D says ``paused`` and the dates
  say scheduled or active. An override of ``active`` (a resume) returns to the date status.
  Overrides never revive an expired or archived campaign: the dates win.

Overrides are read point-in-time (``set_at < as_of_end``), so a backfill of an old day shows
the status that day had. The CLI that writes overrides validates with ``validate_transition``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import polars as pl

OVERRIDE_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "status": pl.String(),
    "set_at": pl.Datetime("us", "UTC"),
    "set_by": pl.String(),
    "reason": pl.String(),
}
STATUS_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "as_of_date": pl.Date(),
    "status": pl.String(),
    "status_reason": pl.String(),
}
OVERRIDE_STATUSES = ("paused", "active")
# current status -> statuses an operator may request from it.
ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "scheduled": ("paused",),
    "active": ("paused",),
    "paused": ("active",),
    "expired": (),
    "archived": (),
}


class InvalidTransition(ValueError):
    """An operator asked for a status change the lifecycle does not allow."""


def date_status(start_date: date, end_date: date, as_of_date: date) -> str:
    """The status the dates alone give (scalar form, used when a campaign is planned)."""
    if start_date > as_of_date:
        return "scheduled"
    return "expired" if end_date < as_of_date else "active"


def validate_transition(current: str, requested: str) -> None:
    """Raise ``InvalidTransition`` unless an operator may move ``current`` to ``requested``.

    Why: pausing an expired campaign or resuming one that is not paused would record an
    override that changes nothing, and would mislead whoever reads the audit trail.
    """
    if requested not in OVERRIDE_STATUSES:
        raise InvalidTransition(f"operators can only set {OVERRIDE_STATUSES}, not {requested!r}")
    if current not in ALLOWED_TRANSITIONS:
        raise InvalidTransition(f"unknown current status {current!r}")
    if requested not in ALLOWED_TRANSITIONS[current]:
        allowed = ", ".join(ALLOWED_TRANSITIONS[current]) or "nothing"
        raise InvalidTransition(
            f"cannot set a {current} campaign to {requested} (allowed from {current}: {allowed})"
        )


def resolve_status(campaigns: pl.DataFrame, overrides: pl.DataFrame | None,
                   metrics: pl.DataFrame | None, *, as_of_date: date,
                   as_of_end: datetime | None = None) -> pl.DataFrame:
    """Status of every campaign on day D, with a short reason (``STATUS_SCHEMA`` rows)."""
    end = as_of_end or datetime.combine(as_of_date + timedelta(days=1), time(), UTC)
    base = campaigns.lazy().select("campaign_id", "start_date", "end_date")
    ov = overrides if overrides is not None else pl.DataFrame(schema=OVERRIDE_SCHEMA)
    latest = (
        ov.lazy().filter(pl.col("set_at") < end)
        .sort(["campaign_id", "set_at"])
        .group_by("campaign_id").agg(override=pl.col("status").last(),
                                     override_by=pl.col("set_by").last())
    )
    met = metrics if metrics is not None else pl.DataFrame(
        schema={"campaign_id": pl.String(), "metric_date": pl.Date()})
    last_metric = met.lazy().filter(pl.col("metric_date") <= as_of_date).group_by(
        "campaign_id").agg(last_metric=pl.col("metric_date").max())
    frame = base.join(latest, on="campaign_id", how="left").join(
        last_metric, on="campaign_id", how="left")
    d = pl.lit(as_of_date)
    expired = pl.col("end_date") < d
    archived = expired & (pl.col("last_metric") >= pl.col("end_date")).fill_null(False)
    by_dates = (pl.when(pl.col("start_date") > d).then(pl.lit("scheduled"))
                .when(expired).then(pl.lit("expired")).otherwise(pl.lit("active")))
    paused = ~expired & (pl.col("override") == "paused").fill_null(False)
    status = (pl.when(archived).then(pl.lit("archived")).when(paused).then(pl.lit("paused"))
              .otherwise(by_dates))
    reason = (
        pl.when(archived).then(pl.lit("ended ") + pl.col("end_date").cast(pl.String)
                               + pl.lit(", final metrics recorded"))
        .when(paused).then(pl.lit("paused by ") + pl.col("override_by").fill_null("operator"))
        .when(pl.col("start_date") > d).then(pl.lit("starts ")
                                             + pl.col("start_date").cast(pl.String))
        .when(expired).then(pl.lit("ended ") + pl.col("end_date").cast(pl.String)
                            + pl.lit(", awaiting final metrics"))
        .otherwise(pl.lit("running until ") + pl.col("end_date").cast(pl.String))
    )
    return frame.select("campaign_id", as_of_date=d, status=status, status_reason=reason
                        ).collect().cast(STATUS_SCHEMA)
