"""The one typed configuration of the campaign stage, and the deterministic ids it hands out.

Every number a marketer may want to change (which campaign types a pattern may get, what each
offer costs, the priors, budget, caps, thresholds) lives here, so a change is a config change,
not a code change. The defaults are documented in ``docs/campaigns.md``.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from transforms.thresholds import PATTERNS
from transforms.value_tiers import CHURN_RISKS, VALUE_TIERS

# One list of pattern names for the whole project (transforms/thresholds.py).
BEHAVIOR_PATTERNS = PATTERNS
CampaignType = Literal[
    "discount",
    "cashback",
    "loyalty",
    "location_based",
    "category_promotion",
    "spending_milestone",
    "re_engagement",
    "vip",
]
CAMPAIGN_TYPES: tuple[str, ...] = get_args(CampaignType)
CAMPAIGN_STATUSES = ("scheduled", "active", "paused", "expired", "archived")
# The rules of transforms/recommendations.py, by name (the API's enum; a test keeps the two
# in step without the API importing Polars).
RECOMMENDATION_RULES = ("low_ctr", "low_conversion", "no_uplift", "low_roi", "strong_roi")

# Fixed namespace: changing it would change every campaign, metric and audience id.
ID_NAMESPACE = uuid.UUID("5b0f3c7e-9a51-4a8e-8d3e-6f2b1c0a7d42")


def stable_id(*parts: object) -> str:
    """A UUID5 of the parts joined by '|': the same inputs give the same id on every rerun."""
    return str(uuid.uuid5(ID_NAMESPACE, "|".join(str(p) for p in parts)))


def campaign_id_for(target_pattern: str, campaign_type: str, start_date: date) -> str:
    """Campaign identity is (segment, type, start): a rerun updates instead of duplicating."""
    return stable_id("campaign", target_pattern, campaign_type, start_date.isoformat())


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Offer(_Frozen):
    """What the customer is offered, and what one conversion costs the business.

    Cost of one conversion = ``cost_share`` x order value + ``fixed_cost``.
    """

    label: str
    kind: Literal["percent_off", "cashback", "points_multiplier", "bonus", "amount_off"]
    value: Decimal = Field(description="percent, multiplier or currency amount, per kind")
    min_purchase: Decimal | None = None
    cost_share: float = Field(ge=0, lt=1, description="fraction of the order value we pay")
    fixed_cost: Decimal = Field(default=Decimal("0"), ge=0, description="currency per conversion")


class Prior(_Frozen):
    """Beta(alpha, beta) prior on conversions per delivered message, and order-value uplift."""

    alpha: float = Field(gt=0)
    beta: float = Field(gt=0)
    order_value_multiplier: float = Field(default=1.0, gt=0)

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)


class RecommendationThresholds(_Frozen):
    """Rule thresholds and the minimum samples below which a rule stays silent."""

    low_ctr: float = 0.05
    low_conversion_rate: float = 0.05
    low_roi: float = 1.0
    strong_roi: float = 3.0
    min_impressions: int = 500
    min_clicks: int = 100
    min_treated_users: int = 500
    min_holdout_users: int = 100


def _default_offers() -> dict[str, Offer]:
    d = Decimal
    return {
        "discount": Offer(label="20% off", kind="percent_off", value=d(20), cost_share=0.20),
        "cashback": Offer(label="5% cashback", kind="cashback", value=d(5), cost_share=0.05),
        # A point is worth 1% of the purchase; doubling costs one more percent.
        "loyalty": Offer(
            label="double points", kind="points_multiplier", value=d(2), cost_share=0.01
        ),
        # Premium merchants co-fund half of the 20%.
        "vip": Offer(
            label="20% off premium merchants", kind="percent_off", value=d(20), cost_share=0.10
        ),
        "spending_milestone": Offer(
            label="$10 bonus at $200", kind="bonus", value=d(10), min_purchase=d(200),
            cost_share=0.0, fixed_cost=d(10),
        ),
        "re_engagement": Offer(
            label="$15 off your next purchase", kind="amount_off", value=d(15),
            cost_share=0.0, fixed_cost=d(15),
        ),
        "category_promotion": Offer(
            label="15% off {top_category}", kind="percent_off", value=d(15), cost_share=0.15
        ),
        "location_based": Offer(
            label="10% off at your favourite store", kind="percent_off", value=d(10),
            cost_share=0.10,
        ),
    }


def _default_priors() -> dict[str, Prior]:
    # 100 pseudo-deliveries each: a few hundred real deliveries already move the estimate.
    return {
        "discount": Prior(alpha=3.0, beta=97.0, order_value_multiplier=1.10),
        "cashback": Prior(alpha=2.5, beta=97.5, order_value_multiplier=1.05),
        "loyalty": Prior(alpha=2.5, beta=97.5, order_value_multiplier=1.00),
        "vip": Prior(alpha=4.0, beta=96.0, order_value_multiplier=1.30),
        "spending_milestone": Prior(alpha=2.0, beta=98.0, order_value_multiplier=1.60),
        "re_engagement": Prior(alpha=5.0, beta=95.0, order_value_multiplier=1.20),
        "category_promotion": Prior(alpha=3.5, beta=96.5, order_value_multiplier=1.10),
        "location_based": Prior(alpha=3.0, beta=97.0, order_value_multiplier=1.00),
    }


class ValueTarget(_Frozen):
    """Who of a segment a campaign type reaches, by predicted value (transforms/
    value_tiers.py): users in one of `value_tiers` and one of `churn_risks` (None: any)."""

    value_tiers: tuple[str, ...] | None = None
    churn_risks: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _known(self) -> ValueTarget:
        if self.value_tiers is not None and not set(self.value_tiers) <= set(VALUE_TIERS):
            raise ValueError(f"unknown value tiers {self.value_tiers}; known: {VALUE_TIERS}")
        if self.churn_risks is not None and not set(self.churn_risks) <= set(CHURN_RISKS):
            raise ValueError(f"unknown churn risks {self.churn_risks}; known: {CHURN_RISKS}")
        return self


# `targeting="predicted_value"`: the VIP offer goes to the top fifth by predicted CLV of
# its segment, re-engagement to valuable users (top and high tiers) the model thinks are
# slipping away (high or medium churn risk). Every other type keeps the segment rule.
PREDICTED_VALUE_TARGETING: dict[str, ValueTarget] = {
    "vip": ValueTarget(value_tiers=("top",)),
    "re_engagement": ValueTarget(value_tiers=("top", "high"), churn_risks=("high", "medium")),
}


class CampaignConfig(_Frozen):
    """Everything the campaign stage decides with; see docs/campaigns.md for the rationale."""

    candidates: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: {
            "high_spender": ("vip", "loyalty", "cashback"),
            "inactive": ("re_engagement", "discount"),
            "category_focused": ("category_promotion",),
            "location_clustered": ("location_based",),
            "frequent_shopper": ("loyalty", "spending_milestone"),
            "weekend_shopper": ("cashback", "discount"),
            "new_shopper": ("discount", "spending_milestone"),
            "seasonal_spender": ("discount", "cashback"),
        }
    )
    offers: dict[str, Offer] = Field(default_factory=_default_offers)
    priors: dict[str, Prior] = Field(default_factory=_default_priors)
    delivery_cost: Decimal = Field(default=Decimal("0.50"), gt=0)
    fallback_order_value: Decimal = Field(default=Decimal("40.00"), gt=0)
    lookback_days: int = Field(default=90, gt=0)
    start_offset_days: int = Field(default=1, ge=0)
    duration_days: int = Field(default=14, gt=0)
    total_daily_budget: Decimal = Field(default=Decimal("5000.00"), gt=0)
    min_audience_size: int = Field(default=50, ge=1)
    min_expected_roi: float = Field(default=0.0, ge=0)
    selection_metric: Literal["expected_roi", "roi_ci_high"] = "expected_roi"
    holdout_share: float = Field(default=0.10, ge=0, lt=1)
    frequency_cap: int = Field(default=2, ge=1)
    frequency_window_days: int = Field(default=7, ge=1)
    audience_priority: tuple[str, ...] = (
        "inactive",
        "high_spender",
        "new_shopper",
        "category_focused",
        "location_clustered",
        "seasonal_spender",
        "frequent_shopper",
        "weekend_shopper",
    )
    credible_level: float = Field(default=0.8, gt=0, lt=1)
    thresholds: RecommendationThresholds = Field(default_factory=RecommendationThresholds)
    # Campaign type -> the predicted-value filter on its segment's users; empty: every user
    # with the pattern (the rules), as before customer value existed.
    value_targeting: dict[str, ValueTarget] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> CampaignConfig:
        used = {t for types in self.candidates.values() for t in types}
        unknown = (set(self.candidates) | set(self.audience_priority)) - set(BEHAVIOR_PATTERNS)
        if unknown:
            raise ValueError(f"unknown behavior patterns: {sorted(unknown)}")
        if set(self.value_targeting) - set(CAMPAIGN_TYPES):
            raise ValueError("value_targeting names unknown campaign types: "
                             f"{sorted(set(self.value_targeting) - set(CAMPAIGN_TYPES))}")
        if used - set(CAMPAIGN_TYPES):
            raise ValueError(f"unknown campaign types: {sorted(used - set(CAMPAIGN_TYPES))}")
        for what, table in (("offer", self.offers), ("prior", self.priors)):
            if used - set(table):
                raise ValueError(f"missing {what} for: {sorted(used - set(table))}")
        if set(self.audience_priority) != set(BEHAVIOR_PATTERNS):
            raise ValueError("audience_priority must rank every behavior pattern exactly once")
        if len(self.audience_priority) != len(BEHAVIOR_PATTERNS):
            raise ValueError("audience_priority lists a pattern twice")
        return self
