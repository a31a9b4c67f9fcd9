"""Response models: the OpenAPI schema of every endpoint, and the shapes the portal reads.

Field names and envelopes follow the original system's examples (`{"status": "success",
"total", "campaigns"}`, Example 3's `metrics` + `daily_breakdown`, Example 2's copy
fields); extra fields are additions, never renames. Money is a JSON number (the warehouse
keeps it exact as NUMERIC(14,2); two decimals survive a float). Ratios are null where
their denominator is zero, never a made-up 0.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from transforms.campaign_config import (
    BEHAVIOR_PATTERNS,
    CAMPAIGN_STATUSES,
    CAMPAIGN_TYPES,
    RECOMMENDATION_RULES,
)
from transforms.value_tiers import CHURN_RISKS, VALUE_TIERS

# Enums built from the pipeline's own vocabularies, so a new pattern or type reaches the
# API's validation and OpenAPI schema without a second list to keep in step.
CampaignStatus = StrEnum("CampaignStatus", {value: value for value in CAMPAIGN_STATUSES})
CampaignType = StrEnum("CampaignType", {value: value for value in CAMPAIGN_TYPES})
BehaviorPattern = StrEnum("BehaviorPattern", {value: value for value in BEHAVIOR_PATTERNS})
RecommendationRule = StrEnum("RecommendationRule",
                             {value: value for value in RECOMMENDATION_RULES})
ValueTier = StrEnum("ValueTier", {value: value for value in VALUE_TIERS})
ChurnRisk = StrEnum("ChurnRisk", {value: value for value in CHURN_RISKS})
Success = Literal["success"]


class CampaignSummary(BaseModel):
    """One row of the campaign list (Example 1's fields first)."""

    campaign_id: str = Field(description="A UUID, stable across re-runs of the same plan.")
    campaign_name: str
    campaign_type: CampaignType
    status: CampaignStatus
    target_pattern: BehaviorPattern
    audience_size: int
    expected_roi: float | None
    created_at: dt.datetime
    updated_at: dt.datetime
    as_of_date: dt.date = Field(description="The day the campaign was planned.")
    start_date: dt.date
    end_date: dt.date
    budget: float
    offer_label: str


class CampaignList(BaseModel):
    status: Success = "success"
    total: int = Field(description="Campaigns matching the filters, over all pages.")
    limit: int
    offset: int
    campaigns: list[CampaignSummary]


class CampaignDetail(CampaignSummary):
    roi_ci_low: float | None
    roi_ci_high: float | None
    expected_conversion_rate: float | None
    expected_order_value: float | None
    expected_revenue: float | None
    expected_cost: float | None
    offer: dict[str, Any]
    history_deliveries: int
    history_conversions: int
    selection_reason: str
    status_reason: str | None


class CampaignResponse(BaseModel):
    status: Success = "success"
    campaign: CampaignDetail


class MetricTotals(BaseModel):
    """Example 3's `metrics`: sums over the days, ratios recomputed from the sums."""

    impressions: int
    clicks: int
    conversions: int
    ctr: float | None = Field(description="clicks / impressions")
    conversion_rate: float | None = Field(description="conversions / clicks")
    revenue: float
    roi: float | None = Field(description="revenue / cost")
    cost: float
    opens: int


class DailyMetrics(BaseModel):
    date: dt.date
    impressions: int
    opens: int
    clicks: int
    conversions: int
    ctr: float | None
    conversion_rate: float | None
    revenue: float
    cost: float
    roi: float | None


class Incrementality(BaseModel):
    """Treated vs holdout, cumulative to `as_of_date` (intent to treat)."""

    as_of_date: dt.date
    treated_users: int
    holdout_users: int
    treated_conversions: int
    holdout_conversions: int
    treated_conversion_rate: float | None
    holdout_conversion_rate: float | None
    uplift: float | None
    relative_uplift: float | None
    incremental_conversions: float | None
    uplift_z: float | None


class CampaignMetricsResponse(BaseModel):
    status: Success = "success"
    campaign_id: str
    start_date: dt.date | None
    end_date: dt.date | None
    metrics: MetricTotals
    daily_breakdown: list[DailyMetrics]
    incrementality: Incrementality | None


class Recommendation(BaseModel):
    recommendation_id: str
    rule: RecommendationRule
    severity: Literal["info", "warning", "critical"]
    recommendation: str
    evidence: dict[str, Any] = Field(description="The figures the rule was decided on.")
    created_at: dt.datetime


class RecommendationsResponse(BaseModel):
    status: Success = "success"
    campaign_id: str
    as_of_date: dt.date | None = Field(
        description="The day the advice is for (the latest day with metrics); an empty "
                    "list means no rule fired that day. Null before any metrics exist.")
    recommendations: list[Recommendation]


class CopyResponse(BaseModel):
    """Example 2's fields, plus where the copy came from (LLM, cache or template)."""

    status: Success = "success"
    campaign_id: str
    as_of_date: dt.date
    headline: str
    email_body: str
    ctas: list[str]
    subject_lines: list[str]
    social_copy: str
    copy_source: Literal["llm", "cache", "template"]
    fallback_reason: str | None
    model: str | None
    prompt_template_version: str
    created_at: dt.datetime


class Segment(BaseModel):
    segment_id: str
    behavior_pattern: BehaviorPattern
    as_of_date: dt.date
    user_count: int
    share_of_users: float | None
    total_spend: float | None
    avg_spend: float | None
    median_spend: float | None
    avg_purchases_per_week: float | None
    created_at: dt.datetime


class SegmentList(BaseModel):
    status: Success = "success"
    as_of_date: dt.date
    total: int
    segments: list[Segment]


class SegmentOverlap(BaseModel):
    pattern: BehaviorPattern
    user_count: int


class SegmentHistoryPoint(BaseModel):
    as_of_date: dt.date
    user_count: int
    share_of_users: float | None
    avg_spend: float | None


class SegmentDetailResponse(BaseModel):
    status: Success = "success"
    segment: Segment
    overlap: list[SegmentOverlap] = Field(
        description="Users of this segment who also carry each other pattern.")
    history: list[SegmentHistoryPoint] = Field(description="The last 30 days up to as_of.")
    campaigns_by_status: dict[CampaignStatus, int] = Field(
        description="Campaigns ever planned for this pattern, by current status.")


class ValueTierFigures(BaseModel):
    """Users of one value tier and churn risk, and their predicted value
    (docs/customer-value.md)."""

    value_tier: ValueTier = Field(description="Rank by predicted CLV on the day: top 20 %, "
                                              "then 30 %, 30 %, 20 % (configurable).")
    churn_risk: ChurnRisk = Field(description="By P(alive): high below 0.3, medium below "
                                              "0.7, low otherwise (configurable).")
    users: int
    total_clv: float = Field(description="Sum of the users' predicted CLV (12 months).")
    avg_clv: float
    avg_p_alive: float = Field(description="Mean probability that the users are still "
                                           "customers (BG/NBD).")
    expected_purchases_90d: float = Field(description="Purchases (purchase days) the users "
                                                      "are expected to make in 90 days.")


class ValueModel(BaseModel):
    model: Literal["bg_nbd", "gamma_gamma"]
    parameters: dict[str, float]
    log_likelihood: float | None
    customers: int = Field(description="Users the model was fitted on (Gamma-Gamma: repeat "
                                       "buyers).")
    converged: bool


class CustomerValueResponse(BaseModel):
    status: Success = "success"
    as_of_date: dt.date
    users: int = Field(description="Users scored: everyone with a purchase before the day.")
    total_clv: float
    models: list[ValueModel] = Field(description="The day's fitted models.")
    tiers: list[ValueTierFigures]


class SegmentValueResponse(BaseModel):
    status: Success = "success"
    as_of_date: dt.date
    behavior_pattern: BehaviorPattern
    users: int = Field(description="Users of the segment with a predicted value.")
    total_clv: float
    tiers: list[ValueTierFigures]


class RoiGroup(BaseModel):
    group: CampaignType | BehaviorPattern = Field(
        description="A campaign type or a behaviour pattern, as `group_by` asks.")
    campaigns: int
    impressions: int
    clicks: int
    conversions: int
    revenue: float
    cost: float
    roi: float | None
    avg_expected_roi: float | None


class TopCampaign(BaseModel):
    campaign_id: str
    campaign_name: str
    campaign_type: CampaignType
    target_pattern: BehaviorPattern
    expected_roi: float | None
    revenue: float
    cost: float
    roi: float


class RoiTotals(BaseModel):
    campaigns: int
    revenue: float
    cost: float
    roi: float | None


class RoiResponse(BaseModel):
    status: Success = "success"
    start_date: dt.date
    end_date: dt.date
    group_by: Literal["campaign_type", "target_pattern"]
    totals: RoiTotals
    groups: list[RoiGroup]
    top_campaigns: list[TopCampaign]


class EngagementFigures(BaseModel):
    impressions: int
    opens: int
    clicks: int
    open_rate: float | None = Field(description="opens / impressions")
    ctr: float | None = Field(description="clicks / impressions")
    click_to_open_rate: float | None = Field(description="clicks / opens")


class EngagementDay(EngagementFigures):
    date: dt.date
    campaigns: int


class EngagementResponse(BaseModel):
    status: Success = "success"
    start_date: dt.date
    end_date: dt.date
    totals: EngagementFigures
    daily: list[EngagementDay]


class ConversionFigures(BaseModel):
    clicks: int
    conversions: int
    conversion_rate: float | None = Field(description="conversions / clicks")
    revenue: float
    cost: float
    revenue_per_conversion: float | None
    roi: float | None


class ConversionDay(ConversionFigures):
    date: dt.date


class IncrementalitySummary(BaseModel):
    """Treated vs holdout summed over every started campaign, as of `as_of_date`."""

    as_of_date: dt.date
    campaigns: int
    treated_users: int
    holdout_users: int
    treated_conversions: int
    holdout_conversions: int
    treated_conversion_rate: float | None
    holdout_conversion_rate: float | None
    uplift: float | None


class ConversionResponse(BaseModel):
    status: Success = "success"
    start_date: dt.date
    end_date: dt.date
    totals: ConversionFigures
    daily: list[ConversionDay]
    incrementality: IncrementalitySummary | None


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"
    database: Literal["postgres", "duckdb"]
    schema_version: str | None
    latest_partition: dt.date | None = Field(
        description="The newest day every daily step has closed (the oldest of "
                    "`latest_by_step`).")
    latest_by_step: dict[Literal["staged_partitions", "user_segments", "campaign_cycle"],
                         dt.date | None] = Field(
        description="The latest day each daily step closed: ingest (`staged_partitions`), "
                    "segments, and the campaign cycle (plan, audience, status, measurement; "
                    "dated by `campaign_status`, written every day once a campaign exists).")
    latest_plan: dt.date | None = Field(
        description="The latest day a campaign was planned. Plans happen only when a "
                    "pattern has no live campaign, so this lags the cycle by design.")
    latest_metrics: dt.date | None = Field(
        description="The latest day with campaign activity (metrics exist only for days "
                    "with deliveries or conversions).")
    read_only: bool = Field(description="False means the API's role could write: fix it.")
