"""Campaign performance from the notification service's events: daily metrics, deliveries, uplift.

Counting rule: events are deduplicated by event_id, then only the FIRST event of each type per
(campaign, user) counts, on the day it happened (a message is delivered, opened, clicked and
converted at most once; webhook retries and repeat opens are noise). Daily rows therefore add
up to distinct-user totals, and ctr and conversion_rate stay within [0, 1] cumulatively.

Holdout: users with ``is_holdout`` in ``campaign_audience`` were never messaged; the only events
they can have are ``converted`` ones, their organic purchases in the campaign window, logged
against the campaign they were held out of. Daily metrics count treated users only; the
incrementality table compares the two groups.

cost = impressions x delivery_cost + conversions x fixed_cost + cost_share x revenue, with the
cost basis frozen in the campaign's ``offer_json`` at planning time, in integer cents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import polars as pl

from transforms.campaign_config import stable_id
from transforms.columns import MONEY
from transforms.user_keys import with_source_user_ids

TS = pl.Datetime("us", "UTC")
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "metric_id": pl.String(), "campaign_id": pl.String(), "metric_date": pl.Date(),
    "impressions": pl.Int64(), "opens": pl.Int64(), "clicks": pl.Int64(),
    "conversions": pl.Int64(), "revenue": MONEY, "cost": MONEY, "ctr": pl.Float64(),
    "conversion_rate": pl.Float64(), "roi": pl.Float64(), "recorded_at": TS,
}
DELIVERY_SCHEMA: dict[str, pl.DataType] = {
    "delivery_id": pl.String(), "campaign_id": pl.String(), "user_id": pl.Int64(),
    "delivered_at": TS, "opened": pl.Boolean(), "clicked": pl.Boolean(),
    "converted": pl.Boolean(), "as_of_date": pl.Date(),
}
INCREMENTALITY_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(), "as_of_date": pl.Date(), "treated_users": pl.Int64(),
    "holdout_users": pl.Int64(), "treated_conversions": pl.Int64(),
    "holdout_conversions": pl.Int64(), "treated_conversion_rate": pl.Float64(),
    "holdout_conversion_rate": pl.Float64(), "uplift": pl.Float64(),
    "relative_uplift": pl.Float64(), "incremental_conversions": pl.Float64(),
    "uplift_z": pl.Float64(), "recorded_at": TS,
}
_COUNTS = {"delivered": "impressions", "opened": "opens", "clicked": "clicks",
           "converted": "conversions"}


def _end_of(as_of_date: date) -> datetime:
    return datetime.combine(as_of_date + timedelta(days=1), time(), UTC)


def ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    """num / den, null when the denominator is zero or null."""
    return pl.when(den > 0).then(num.cast(pl.Float64) / den.cast(pl.Float64))


def with_ratios(frame: pl.DataFrame) -> pl.DataFrame:
    """ctr = clicks/impressions, conversion_rate = conversions/clicks, roi = revenue/cost."""
    return frame.with_columns(
        ctr=ratio(pl.col("clicks"), pl.col("impressions")),
        conversion_rate=ratio(pl.col("conversions"), pl.col("clicks")),
        roi=ratio(pl.col("revenue"), pl.col("cost")),
    )


def first_events(events: pl.DataFrame | pl.LazyFrame, audience: pl.DataFrame,
                 as_of_end: datetime) -> pl.LazyFrame:
    """First event per (campaign, user, type) before ``as_of_end``, with the holdout flag."""
    flags = audience.lazy().select("campaign_id", "user_id", "is_holdout")
    return (
        events.lazy().filter(pl.col("occurred_at") < as_of_end)
        .sort("occurred_at", "event_id")
        .unique("event_id", keep="first", maintain_order=True)
        .group_by("campaign_id", "user_id", "event_type", maintain_order=True).first()
        .join(flags, on=["campaign_id", "user_id"], how="left")
        .with_columns(pl.col("is_holdout").fill_null(False))
    )


def _click_attributed(first: pl.LazyFrame) -> pl.LazyFrame:
    """Drop conversions not preceded by a click on the same campaign by the same user.

    A treated user who buys without ever clicking bought organically: counting that as a
    campaign conversion would credit the campaign with sales it did not cause and push
    conversions / clicks above 1. Organic purchases still count where they belong, in the
    treated-vs-holdout comparison (`compute_incrementality`), which uses every conversion.
    """
    clicked = first.filter(pl.col("event_type") == "clicked").select(
        "campaign_id", "user_id", clicked_at=pl.col("occurred_at"))
    return first.join(clicked, on=["campaign_id", "user_id"], how="left").filter(
        (pl.col("event_type") != "converted")
        | (pl.col("clicked_at").is_not_null() & (pl.col("clicked_at") <= pl.col("occurred_at")))
    ).drop("clicked_at")


def _cost_basis(campaigns: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for cid, raw in campaigns.select("campaign_id", "offer_json").iter_rows():
        offer = json.loads(raw)
        cents = [int(Decimal(str(offer.get(k, 0))) * 100) for k in ("delivery_cost", "fixed_cost")]
        rows.append((cid, cents[0], cents[1], float(offer.get("cost_share", 0.0))))
    return pl.DataFrame(rows, schema={"campaign_id": pl.String, "delivery_cents": pl.Int64,
                                      "fixed_cents": pl.Int64, "cost_share": pl.Float64},
                        orient="row")


def compute_campaign_metrics(events: pl.DataFrame | pl.LazyFrame, audience: pl.DataFrame,
                             campaigns: pl.DataFrame, *, as_of_date: date,
                             recorded_at: datetime | None = None) -> pl.DataFrame:
    """One ``campaign_metrics`` row per campaign for day D: campaigns running on D or with
    events on D (zeros where nothing happened, so the final day is always recorded).
    Events of campaign ids missing from ``campaigns`` are ignored: without a plan there is
    neither a cost basis nor a type and pattern to learn for."""
    end = _end_of(as_of_date)
    day = _click_attributed(first_events(events, audience, end)).filter(
        pl.col("occurred_at") >= end - timedelta(days=1), ~pl.col("is_holdout"))
    counts = day.group_by("campaign_id").agg(
        *[(pl.col("event_type") == t).sum().cast(pl.Int64).alias(c) for t, c in _COUNTS.items()],
        revenue_cents=pl.col("revenue_cents").filter(pl.col("event_type") == "converted")
        .sum().cast(pl.Int64),
    ).collect()
    running = campaigns.filter(pl.col("start_date") <= as_of_date,
                               pl.col("end_date") >= as_of_date).select("campaign_id")
    known = counts.join(campaigns.select("campaign_id"), on="campaign_id", how="semi")
    ids = pl.concat([running, known.select("campaign_id")]).unique()
    frame = (
        ids.join(counts, on="campaign_id", how="left").fill_null(0)
        .join(_cost_basis(campaigns), on="campaign_id", how="left")
        .with_columns(
            cost_cents=pl.col("impressions") * pl.col("delivery_cents").fill_null(0)
            + pl.col("conversions") * pl.col("fixed_cents").fill_null(0)
            + (pl.col("cost_share").fill_null(0) * pl.col("revenue_cents")).round(0)
            .cast(pl.Int64),
        )
    )
    money = [(pl.col(f"{c}_cents").cast(pl.Decimal(16, 0)) * pl.lit(Decimal("0.01")))
             .cast(MONEY).alias(c) for c in ("revenue", "cost")]
    frame = with_ratios(frame.with_columns(*money))
    return frame.with_columns(
        metric_id=pl.col("campaign_id").map_elements(
            lambda c: stable_id("metric", c, as_of_date.isoformat()), return_dtype=pl.String),
        metric_date=pl.lit(as_of_date),
        recorded_at=pl.lit(recorded_at or end, dtype=TS),
    ).select(list(METRICS_SCHEMA)).sort("campaign_id").cast(METRICS_SCHEMA)


def build_deliveries(events: pl.DataFrame | pl.LazyFrame, audience: pl.DataFrame, *,
                     as_of_date: date) -> pl.DataFrame:
    """``campaign_delivery`` rows for messages delivered on D, flags as of the end of D."""
    end = _end_of(as_of_date)
    first = first_events(events, audience, end)
    delivered = first.filter(pl.col("event_type") == "delivered",
                             pl.col("occurred_at") >= end - timedelta(days=1))
    flags = first.group_by("campaign_id", "user_id").agg(
        *[(pl.col("event_type") == t).any().alias(t) for t in ("opened", "clicked", "converted")])
    out = delivered.join(flags, on=["campaign_id", "user_id"], how="left").collect()
    ids = [stable_id("delivery", c, u) for c, u in out.select("campaign_id", "user_id").rows()]
    return out.select(
        delivery_id=pl.Series(ids, dtype=pl.String), campaign_id=pl.col("campaign_id"),
        user_id=pl.col("user_id"), delivered_at=pl.col("occurred_at"),
        opened=pl.col("opened"), clicked=pl.col("clicked"), converted=pl.col("converted"),
        as_of_date=pl.lit(as_of_date),
    ).sort("campaign_id", "user_id").cast(DELIVERY_SCHEMA)


def compute_incrementality(events: pl.DataFrame | pl.LazyFrame, audience: pl.DataFrame,
                           campaigns: pl.DataFrame, *, as_of_date: date,
                           recorded_at: datetime | None = None) -> pl.DataFrame:
    """Treated vs holdout conversion rate per started campaign, cumulative to the end of D.

    Intent to treat: the treated rate is converters among every treated audience member
    (delivered or not), so a failed delivery lowers the measured uplift instead of hiding.
    uplift_z is the pooled two-proportion z statistic.
    """
    end = _end_of(as_of_date)
    started = campaigns.filter(pl.col("start_date") <= as_of_date).select("campaign_id")
    converters = first_events(events, audience, end).filter(
        pl.col("event_type") == "converted").select("campaign_id", "user_id", converted=True)
    groups = (
        audience.lazy().join(started.lazy(), on="campaign_id", how="semi")
        .join(converters, on=["campaign_id", "user_id"], how="left")
        .group_by("campaign_id").agg(
            treated_users=(~pl.col("is_holdout")).sum().cast(pl.Int64),
            holdout_users=pl.col("is_holdout").sum().cast(pl.Int64),
            treated_conversions=(~pl.col("is_holdout") & pl.col("converted").fill_null(False))
            .sum().cast(pl.Int64),
            holdout_conversions=(pl.col("is_holdout") & pl.col("converted").fill_null(False))
            .sum().cast(pl.Int64),
        ).collect()
    )
    rt = ratio(pl.col("treated_conversions"), pl.col("treated_users"))
    rh = ratio(pl.col("holdout_conversions"), pl.col("holdout_users"))
    out = groups.with_columns(treated_conversion_rate=rt, holdout_conversion_rate=rh)
    pooled = ratio(pl.col("treated_conversions") + pl.col("holdout_conversions"),
                   pl.col("treated_users") + pl.col("holdout_users"))
    se = (pooled * (1 - pooled) * (1 / pl.col("treated_users") + 1 / pl.col("holdout_users"))
          ).sqrt()
    out = out.with_columns(uplift=pl.col("treated_conversion_rate")
                           - pl.col("holdout_conversion_rate")).with_columns(
        relative_uplift=ratio(pl.col("uplift"), pl.col("holdout_conversion_rate")),
        incremental_conversions=pl.col("uplift") * pl.col("treated_users"),
        uplift_z=pl.when(se > 0).then(pl.col("uplift") / se),
    )
    return out.with_columns(as_of_date=pl.lit(as_of_date),
                            recorded_at=pl.lit(recorded_at or end, dtype=TS)
                            ).select(list(INCREMENTALITY_SCHEMA)).sort("campaign_id").cast(
        INCREMENTALITY_SCHEMA)


@dataclass(frozen=True)
class MeasuredDay:
    """Day D's rows of `campaign_metrics`, `campaign_delivery` and `campaign_incrementality`."""

    metrics: pl.DataFrame
    deliveries: pl.DataFrame
    lift: pl.DataFrame


def measure_day(events: pl.DataFrame | pl.LazyFrame, audience: pl.DataFrame,
                campaigns: pl.DataFrame, *, as_of_date: date, recorded_at: datetime
                ) -> MeasuredDay:
    """Day D's three measurement tables from the events before its end and the audiences
    and campaigns planned up to D (D's own included)."""
    return MeasuredDay(
        metrics=compute_campaign_metrics(events, audience, campaigns, as_of_date=as_of_date,
                                         recorded_at=recorded_at),
        deliveries=with_source_user_ids(build_deliveries(events, audience,
                                                         as_of_date=as_of_date), audience),
        lift=compute_incrementality(events, audience, campaigns, as_of_date=as_of_date,
                                    recorded_at=recorded_at),
    )
