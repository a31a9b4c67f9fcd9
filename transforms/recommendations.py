"""Rules over a running campaign's cumulative metrics (``campaign_recommendations``).

Each rule fires only past a minimum sample, because a CTR of 0 after 20 messages says nothing;
every recommendation carries the figures and thresholds it was decided on (``evidence``), so a
reader can check it. Thresholds live in ``CampaignConfig.thresholds``.

| rule           | fires when                                                      | severity |
|----------------|-----------------------------------------------------------------|----------|
| low_ctr        | impressions >= min_impressions and ctr < low_ctr                 | warning  |
| low_conversion | clicks >= min_clicks and conversion_rate < low_conversion_rate   | warning  |
| no_uplift      | treated >= min_treated, holdout >= min_holdout and uplift <= 0   | critical |
| low_roi        | impressions >= min_impressions and roi < low_roi                 | critical |
| strong_roi     | impressions >= min_impressions and roi > strong_roi              | info     |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from transforms.campaign_config import RecommendationThresholds, stable_id
from transforms.campaign_metrics import with_ratios

RECOMMENDATION_SCHEMA: dict[str, pl.DataType] = {
    "recommendation_id": pl.String(), "campaign_id": pl.String(), "as_of_date": pl.Date(),
    "rule": pl.String(), "severity": pl.String(), "recommendation": pl.String(),
    "evidence": pl.String(), "created_at": pl.Datetime("us", "UTC"),
}
Row = dict[str, object]


def _rules(t: RecommendationThresholds) -> list[tuple[str, str, Callable[[Row], bool],
                                                       Callable[[Row], str], tuple[str, ...]]]:
    """(rule, severity, fires?, text, evidence fields) for every rule."""

    def ge(value: object, floor: float) -> bool:
        return value is not None and value >= floor  # type: ignore[operator]

    def lt(value: object, ceiling: float) -> bool:
        return value is not None and value < ceiling  # type: ignore[operator]

    return [
        ("low_ctr", "warning",
         lambda r: ge(r["impressions"], t.min_impressions) and lt(r["ctr"], t.low_ctr),
         lambda r: f"CTR {r['ctr']:.1%} is below {t.low_ctr:.0%} after {r['impressions']} "
                   "impressions: test new subject lines.",
         ("impressions", "clicks", "ctr")),
        ("low_conversion", "warning",
         lambda r: ge(r["clicks"], t.min_clicks)
         and lt(r["conversion_rate"], t.low_conversion_rate),
         lambda r: f"Only {r['conversion_rate']:.1%} of {r['clicks']} clicks convert (below "
                   f"{t.low_conversion_rate:.0%}): raise the offer.",
         ("clicks", "conversions", "conversion_rate")),
        ("no_uplift", "critical",
         lambda r: ge(r["treated_users"], t.min_treated_users)
         and ge(r["holdout_users"], t.min_holdout_users)
         and r["uplift"] is not None and r["uplift"] <= 0,  # type: ignore[operator]
         lambda r: f"Treated users convert at {r['treated_conversion_rate']:.2%} vs "
                   f"{r['holdout_conversion_rate']:.2%} without the campaign: no uplift, "
                   "stop the campaign.",
         ("treated_users", "holdout_users", "treated_conversion_rate",
          "holdout_conversion_rate", "uplift")),
        ("low_roi", "critical",
         lambda r: ge(r["impressions"], t.min_impressions) and lt(r["roi"], t.low_roi),
         lambda r: f"ROI {r['roi']:.2f} is below {t.low_roi:.2f}: the campaign costs more "
                   "than it brings in, pause it.",
         ("impressions", "revenue", "cost", "roi")),
        ("strong_roi", "info",
         lambda r: ge(r["impressions"], t.min_impressions) and r["roi"] is not None
         and r["roi"] > t.strong_roi,
         lambda r: f"ROI {r['roi']:.2f} is above {t.strong_roi:.2f}: scale up its budget.",
         ("impressions", "revenue", "cost", "roi")),
    ]


def cumulative_metrics(metrics: pl.DataFrame, *, as_of_date: date) -> pl.DataFrame:
    """Each campaign's totals over its daily metrics up to D, with the three ratios."""
    totals = metrics.filter(pl.col("metric_date") <= as_of_date).group_by("campaign_id").agg(
        pl.col("impressions", "opens", "clicks", "conversions", "revenue", "cost").sum())
    return with_ratios(totals)


def recommend(metrics: pl.DataFrame, incrementality: pl.DataFrame, campaigns: pl.DataFrame,
              *, as_of_date: date, thresholds: RecommendationThresholds,
              created_at: datetime | None = None) -> pl.DataFrame:
    """Recommendations for the campaigns running on D (start_date <= D <= end_date).

    Expired campaigns get none: advice to pause or scale something that has ended is noise.
    """
    running = campaigns.filter(pl.col("start_date") <= as_of_date,
                               pl.col("end_date") >= as_of_date).select("campaign_id")
    inc = incrementality.filter(pl.col("as_of_date") == as_of_date).select(
        "campaign_id", "treated_users", "holdout_users", "treated_conversion_rate",
        "holdout_conversion_rate", "uplift")
    rows = (running.join(cumulative_metrics(metrics, as_of_date=as_of_date), on="campaign_id")
            .join(inc, on="campaign_id", how="left").sort("campaign_id").to_dicts())
    stamp = created_at or datetime.combine(as_of_date + timedelta(days=1), time(), UTC)
    out = []
    for r in rows:
        for rule, severity, fires, text, fields in _rules(thresholds):
            if not fires(r):
                continue
            evidence = {f: (float(r[f]) if r[f] is not None and not isinstance(r[f], int)
                            else r[f]) for f in fields}
            evidence["thresholds"] = thresholds.model_dump()
            out.append({
                "recommendation_id": stable_id("recommendation", r["campaign_id"],
                                               as_of_date.isoformat(), rule),
                "campaign_id": r["campaign_id"], "as_of_date": as_of_date, "rule": rule,
                "severity": severity, "recommendation": text(r),
                "evidence": json.dumps(evidence, sort_keys=True), "created_at": stamp,
            })
    return pl.DataFrame(out, schema=RECOMMENDATION_SCHEMA)
