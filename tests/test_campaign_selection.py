"""Campaign planning: best ROI wins, budget split, blocking, stable ids, identical reruns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from tests.test_campaign_helpers import (
    D,
    campaign,
    campaigns,
    metrics,
    metrics_row,
    no_campaigns,
    no_metrics,
    segments,
)
from transforms.campaign_config import CampaignConfig, Offer, Prior, campaign_id_for
from transforms.campaign_selection import allocate_budget, plan_campaigns

START = D + dt.timedelta(days=1)


def _config(**overrides: object) -> CampaignConfig:
    """Simple numbers: multipliers 1, so per message revenue = p * avg_spend."""
    base = CampaignConfig()
    priors = {
        "cashback": Prior(alpha=2, beta=98),  # p = 0.02, cost share 0.05
        "discount": Prior(alpha=4, beta=96),  # p = 0.04, cost share 0.20
        "vip": Prior(alpha=4, beta=96),
        "loyalty": Prior(alpha=2, beta=98),
        "re_engagement": Prior(alpha=5, beta=95),
    }
    update = {"priors": {**base.priors, **priors}, "total_daily_budget": Decimal("100000.00")}
    return base.model_copy(update={**update, **overrides})


def _plan(segs: pl.DataFrame, config: CampaignConfig, existing: pl.DataFrame | None = None,
          history: pl.DataFrame | None = None) -> pl.DataFrame:
    return plan_campaigns(segs, history if history is not None else no_metrics(),
                          existing if existing is not None else no_campaigns(),
                          as_of_date=D, config=config)


def test_best_expected_roi_wins_and_reason_names_the_rival() -> None:
    out = _plan(segments({"weekend_shopper": (1000, "50.00")}), _config())
    cashback = (0.02 * 50) / (0.50 + 0.02 * 0.05 * 50)  # 1.0 / 0.55 = 1.82
    discount = (0.04 * 50) / (0.50 + 0.04 * 0.20 * 50)  # 2.0 / 0.90 = 2.22
    assert discount > cashback
    row = out.row(0, named=True)
    assert (row["campaign_type"], row["target_pattern"]) == ("discount", "weekend_shopper")
    assert row["expected_roi"] == pytest.approx(discount)
    assert f"cashback ({cashback:.2f})" in row["selection_reason"]
    assert row["campaign_name"] == f"Weekend Shopper Discount {START.isoformat()}"
    assert (row["start_date"], row["end_date"]) == (START, START + dt.timedelta(days=13))
    assert row["status"] == "scheduled"
    assert row["offer_label"] == "20% off"


def test_ties_go_to_config_order() -> None:
    same_offer = Offer(label="same", kind="percent_off", value=Decimal(10), cost_share=0.1)
    base = _config()
    offers = {**base.offers, "cashback": same_offer, "discount": same_offer}
    priors = {**base.priors, "cashback": Prior(alpha=3, beta=97),
              "discount": Prior(alpha=3, beta=97)}
    segs = segments({"weekend_shopper": (1000, "50.00")})
    for order in (("cashback", "discount"), ("discount", "cashback")):
        candidates = {**base.candidates, "weekend_shopper": order}
        config = base.model_copy(update={"offers": offers, "priors": priors,
                                         "candidates": candidates})
        assert _plan(segs, config)["campaign_type"].to_list() == [order[0]]


def test_budget_is_split_by_expected_roi_and_sums_to_the_total() -> None:
    config = _config(total_daily_budget=Decimal("1000.00"))
    segs = segments({"weekend_shopper": (100_000, "50.00"), "high_spender": (100_000, "200.00"),
                     "inactive": (100_000, "30.00")})
    out = _plan(segs, config).sort("target_pattern")
    assert sum(out["budget"].to_list()) == Decimal("1000.00")
    rois = out["expected_roi"].to_list()
    for budget, roi in zip(out["budget"].to_list(), rois, strict=True):
        assert float(budget) == pytest.approx(1000 * roi / sum(rois), abs=0.01)


def test_audience_is_capped_by_budget_over_cost_per_message() -> None:
    segs = segments({"weekend_shopper": (100_000, "50.00")})
    small = _plan(segs, _config(total_daily_budget=Decimal("90.00"))).row(0, named=True)
    cost_per_message = 0.50 + 0.04 * 0.20 * 50  # discount wins: 0.90
    assert small["audience_size"] == int(90.00 / cost_per_message)  # 100
    assert float(small["expected_cost"]) == pytest.approx(100 * cost_per_message, abs=0.01)
    assert float(small["expected_revenue"]) == pytest.approx(100 * 0.04 * 50, abs=0.01)
    big = _plan(segs, _config()).row(0, named=True)
    assert big["audience_size"] == int(100_000 * (1 - 0.10))  # holdout withheld


def test_allocate_budget_gives_leftover_cents_by_largest_remainder() -> None:
    assert allocate_budget([1.0, 1.0, 1.0], Decimal("100.00")) == [
        Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert allocate_budget([3.0, 1.0], Decimal("10.00")) == [Decimal("7.50"), Decimal("2.50")]
    assert allocate_budget([], Decimal("10.00")) == []


def test_small_segments_get_no_campaign() -> None:
    config = _config(min_audience_size=50)
    # floor(55 * 0.9) = 49 treated users < 50; floor(56 * 0.9) = 50 is enough.
    assert _plan(segments({"weekend_shopper": (55, "50.00")}), config).is_empty()
    assert _plan(segments({"weekend_shopper": (56, "50.00")}), config).height == 1


def test_reruns_give_the_same_ids_and_rows() -> None:
    segs = segments({"weekend_shopper": (1000, "50.00"), "high_spender": (500, "200.00")})
    first = _plan(segs, _config())
    again = _plan(segs, _config(), existing=first)  # the day's own earlier plan is no blocker
    assert again.equals(first)
    assert first["campaign_id"].n_unique() == first.height == 2
    expected = {campaign_id_for(p, t, START) for p, t in
                first.select("target_pattern", "campaign_type").rows()}
    assert set(first["campaign_id"]) == expected


def test_a_running_campaign_blocks_its_segment_only() -> None:
    segs = segments({"weekend_shopper": (1000, "50.00"), "high_spender": (500, "200.00")})
    running = campaigns(campaign("old", "weekend_shopper", D - dt.timedelta(days=5),
                                 D + dt.timedelta(days=8)))
    out = _plan(segs, _config(), existing=running)
    assert out["target_pattern"].to_list() == ["high_spender"]
    ended = campaigns(campaign("old", "weekend_shopper", D - dt.timedelta(days=13), D))
    out = _plan(segs, _config(), existing=ended)  # ends on D, the new one starts on D+1
    assert sorted(out["target_pattern"]) == ["high_spender", "weekend_shopper"]


def test_history_moves_the_choice() -> None:
    segs = segments({"weekend_shopper": (1000, "50.00")})
    start = D - dt.timedelta(days=20)
    existing = campaigns(campaign("old", "weekend_shopper", start, start + dt.timedelta(days=13),
                                  campaign_type="discount"))
    # Discount converted 0.1% over 20,000 deliveries: cashback's prior now beats it.
    history = metrics(metrics_row("old", start, impressions=20_000, conversions=20))
    row = _plan(segs, _config(), existing=existing, history=history).row(0, named=True)
    assert row["campaign_type"] == "cashback"
    assert "discount (" in row["selection_reason"]


def test_category_offer_names_the_segments_top_category() -> None:
    segs = segments({"category_focused": (1000, "50.00")})
    profiles = pl.DataFrame({
        "as_of_date": [D] * 3, "user_id": [1, 2, 3],
        "total_spent": [Decimal("30"), Decimal("60"), Decimal("90")],
        "transaction_count": [1, 1, 1], "top_category": ["travel", "dining", "dining"],
        "detected_patterns": [["category_focused"]] * 3,
    }, schema_overrides={"total_spent": pl.Decimal(14, 2)})
    out = plan_campaigns(segs, no_metrics(), no_campaigns(), as_of_date=D, config=_config(),
                         profiles=profiles)
    assert out["offer_label"].to_list() == ["15% off dining"]
    # Exact order value from the profiles: 180 / 3 purchases = 60, x1.10 for the type.
    assert out["expected_order_value"].to_list() == [Decimal("66.00")]


def test_segments_without_spend_use_the_fallback_order_value() -> None:
    # Inactive users spent nothing in the window: 40.00 from config, x the type's multiplier.
    config = _config()
    row = _plan(segments({"inactive": (1000, "0.00")}), config).row(0, named=True)
    multiplier = config.priors[row["campaign_type"]].order_value_multiplier
    assert row["expected_order_value"] == Decimal("40.00") * Decimal(str(multiplier))


def test_minimum_expected_roi_can_hold_back_every_campaign() -> None:
    segs = segments({"weekend_shopper": (1000, "50.00")})
    assert _plan(segs, _config(min_expected_roi=10.0)).is_empty()


def test_optimistic_selection_explores_uncertain_candidates() -> None:
    segs = segments({"weekend_shopper": (1000, "50.00")})
    start = D - dt.timedelta(days=20)
    existing = campaigns(campaign("old", "weekend_shopper", start, start + dt.timedelta(days=13),
                                  campaign_type="discount"))
    # Discount is known precisely at p = 0.04 (ROI 2.22); cashback is only its prior (mean
    # ROI 1.82, but its upper 90% rate, about 0.035, would give ROI near 3).
    history = metrics(metrics_row("old", start, impressions=100_000, conversions=4_000))
    by_mean = _plan(segs, _config(), existing=existing, history=history)
    by_upper = _plan(segs, _config(selection_metric="roi_ci_high"), existing=existing,
                     history=history)
    assert by_mean["campaign_type"].to_list() == ["discount"]
    assert by_upper["campaign_type"].to_list() == ["cashback"]
    # The floor on expected ROI still applies: cashback (1.82) is held back, discount runs.
    floored = _plan(segs, _config(selection_metric="roi_ci_high", min_expected_roi=2.0),
                    existing=existing, history=history)
    assert floored["campaign_type"].to_list() == ["discount"]


def test_budget_beyond_what_a_small_segment_can_spend_goes_to_the_others() -> None:
    parts = allocate_budget([3.0, 1.0, 1.0], Decimal("100.00"),
                            caps=[Decimal("10.00"), Decimal("1000"), Decimal("1000")])
    # 60.00 would go to the first; it can use 10.00, the other 90.00 splits 1:1.
    assert parts == [Decimal("10.00"), Decimal("45.00"), Decimal("45.00")]
    everyone_capped = allocate_budget([1.0, 1.0], Decimal("100.00"),
                                      caps=[Decimal("10.00"), Decimal("20.004")])
    assert everyone_capped == [Decimal("10.00"), Decimal("20.01")]  # caps round up


def test_a_small_segment_gets_only_what_its_audience_costs() -> None:
    config = _config(total_daily_budget=Decimal("1000.00"))
    segs = segments({"weekend_shopper": (100, "50.00"), "high_spender": (100_000, "50.00")})
    out = _plan(segs, config).sort("target_pattern")
    weekend = out.filter(pl.col("target_pattern") == "weekend_shopper").row(0, named=True)
    need = 90 * (0.50 + 0.04 * 0.20 * 50)  # 90 treated users x 0.90 (discount wins)
    assert float(weekend["budget"]) == pytest.approx(need, abs=0.01)
    assert weekend["audience_size"] == 90
    assert sum(out["budget"].to_list()) == Decimal("1000.00")
