"""Expected ROI: the beta quantile, the ROI arithmetic, and shrinkage toward the priors."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from tests.test_campaign_helpers import D, campaign, campaigns, metrics, metrics_row
from transforms.campaign_config import CampaignConfig, Prior
from transforms.roi import beta_cdf, beta_ppf, history_by_candidate, score_candidates


@pytest.mark.parametrize("q", [0.01, 0.1, 0.5, 0.9, 0.99])
@pytest.mark.parametrize(
    ("a", "b", "closed_form"),
    [
        (1.0, 1.0, lambda q: q),  # uniform
        (2.0, 1.0, lambda q: math.sqrt(q)),  # cdf x^2
        (1.0, 2.0, lambda q: 1 - math.sqrt(1 - q)),  # cdf 1 - (1 - x)^2
        (3.5, 1.0, lambda q: q ** (1 / 3.5)),  # cdf x^a
        (0.5, 0.5, lambda q: math.sin(math.pi * q / 2) ** 2),  # arcsine law
    ],
)
def test_beta_quantile_matches_closed_forms(a: float, b: float, closed_form, q: float) -> None:
    assert beta_ppf(q, a, b) == pytest.approx(closed_form(q), abs=1e-10)


@pytest.mark.parametrize(("a", "b"), [(3.0, 97.0), (53.0, 147.0), (8003.0, 92097.0)])
def test_beta_quantile_matches_sampling(a: float, b: float) -> None:
    draws = np.random.default_rng(0).beta(a, b, 400_000)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    for q in (0.1, 0.9):
        assert beta_ppf(q, a, b) == pytest.approx(np.quantile(draws, q), abs=0.01 * sd)
        assert beta_cdf(beta_ppf(q, a, b), a, b) == pytest.approx(q, abs=1e-12)


def _config(**priors: Prior) -> CampaignConfig:
    base = CampaignConfig()
    return base.model_copy(update={"priors": {**base.priors, **priors}})


def _candidate(campaign_type: str, order_value: float, deliveries: int = 0,
               conversions: int = 0) -> pl.DataFrame:
    return pl.DataFrame({"campaign_type": [campaign_type], "order_value": [order_value],
                         "history_deliveries": [deliveries],
                         "history_conversions": [conversions]})


def test_roi_arithmetic_percent_offer() -> None:
    # discount: prior Beta(3, 97) -> p = 0.03; order value 50; 20% of it; delivery 0.50.
    config = _config(discount=Prior(alpha=3, beta=97))
    row = score_candidates(_candidate("discount", 50.0), config).row(0, named=True)
    revenue = 0.03 * 50.0  # 1.50 per message
    cost = 0.50 + 0.03 * (0.20 * 50.0)  # 0.80 per message
    assert row["conversion_rate"] == pytest.approx(0.03)
    assert row["revenue_per_message"] == pytest.approx(revenue)
    assert row["cost_per_message"] == pytest.approx(cost)
    assert row["expected_roi"] == pytest.approx(revenue / cost)  # 1.875


def test_roi_arithmetic_fixed_offer_and_interval() -> None:
    # re_engagement: Beta(5, 95) -> p = 0.05; order value 40; $15 per conversion, no share.
    config = _config(re_engagement=Prior(alpha=5, beta=95))
    row = score_candidates(_candidate("re_engagement", 40.0), config).row(0, named=True)
    assert row["expected_roi"] == pytest.approx((0.05 * 40) / (0.50 + 0.05 * 15))  # 1.6
    low_rate, high_rate = beta_ppf(0.1, 5, 95), beta_ppf(0.9, 5, 95)
    assert row["roi_ci_low"] == pytest.approx(low_rate * 40 / (0.50 + low_rate * 15))
    assert row["roi_ci_high"] == pytest.approx(high_rate * 40 / (0.50 + high_rate * 15))
    assert row["roi_ci_low"] < row["expected_roi"] < row["roi_ci_high"]


def test_thin_history_stays_near_the_prior() -> None:
    # 20 deliveries, 10 conversions: the data say 50%, the prior says 3%.
    config = _config(discount=Prior(alpha=3, beta=97))
    row = score_candidates(_candidate("discount", 50.0, 20, 10), config).row(0, named=True)
    assert row["conversion_rate"] == pytest.approx((3 + 10) / (3 + 97 + 20))
    assert abs(row["conversion_rate"] - 0.03) < abs(row["conversion_rate"] - 0.5)


def test_rich_history_follows_the_data() -> None:
    config = _config(discount=Prior(alpha=3, beta=97))
    prior_only = score_candidates(_candidate("discount", 50.0), config).row(0, named=True)
    row = score_candidates(_candidate("discount", 50.0, 100_000, 8_000), config).row(
        0, named=True)
    assert row["conversion_rate"] == pytest.approx(0.08, abs=0.001)
    width = row["conversion_rate_high"] - row["conversion_rate_low"]
    assert width < (prior_only["conversion_rate_high"] - prior_only["conversion_rate_low"]) / 10


def test_history_counts_earlier_campaigns_of_the_same_type_and_pattern_up_to_d_minus_1() -> None:
    start = D - dt.timedelta(days=10)
    end = start + dt.timedelta(days=13)
    existing = campaigns(
        campaign("a", "weekend_shopper", start, end, campaign_type="discount"),
        campaign("b", "weekend_shopper", start, end, campaign_type="cashback"),
    )
    history = metrics(
        metrics_row("a", D - dt.timedelta(days=2), impressions=100, conversions=4),
        metrics_row("a", D - dt.timedelta(days=1), impressions=50, conversions=1),
        metrics_row("a", D, impressions=999, conversions=999),  # day D itself: not yet history
        metrics_row("b", D - dt.timedelta(days=1), impressions=10, conversions=2),
    )
    out = history_by_candidate(history, existing, as_of_date=D).sort("campaign_type")
    assert out.select("campaign_type", "history_deliveries", "history_conversions").rows() == [
        ("cashback", 10, 2), ("discount", 150, 5)]
