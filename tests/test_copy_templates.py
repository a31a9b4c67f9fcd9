"""Template copy is deterministic and passes the same validation as LLM copy."""

from __future__ import annotations

import pytest

from transforms.copy_prompt import CAMPAIGN_TYPES, CampaignBrief, CampaignType, Offer
from transforms.copy_templates import template_copy
from transforms.copy_validation import validate_copy

OFFERS = [
    Offer(kind="percent_off", value=20, label="20% off premium merchants"),
    Offer(kind="amount_off", value=15, label="$15 off your next order", valid_days=7),
    Offer(kind="cashback_percent", value=5, label="5% cashback up to $25", max_reward=25),
    Offer(kind="cashback_amount", value=10, label="Spend $100, get $10 back", min_spend=100),
    Offer(kind="points", value=500, label="500 bonus points"),
    Offer(kind="points_multiplier", value=2, label="2x points on every purchase"),
    Offer(kind="perk", label="early access to members-only sales"),
    Offer(
        kind="percent_off",
        value=12.5,
        label="12.5% off at every one of our partner restaurants, cafes and bakeries in town",
    ),
]


def brief(campaign_type: CampaignType, offer: Offer, **facts: str | float) -> CampaignBrief:
    return CampaignBrief(
        campaign_id="c",
        campaign_name="Name 2025",
        campaign_type=campaign_type,
        offer=offer,
        target_patterns=["weekend_shopper"],
        audience_size=4321,
        segment_facts=facts or {"top_category": "dining", "avg_spend": 84.2},
    )


@pytest.mark.parametrize("offer", OFFERS, ids=lambda offer: offer.kind)
@pytest.mark.parametrize("campaign_type", CAMPAIGN_TYPES)
def test_every_type_and_offer_passes_validation(campaign_type: CampaignType, offer: Offer) -> None:
    copy = template_copy(brief(campaign_type, offer))
    assert validate_copy(copy, offer) == []


def test_templates_are_deterministic_and_differ_by_type() -> None:
    offer = OFFERS[0]
    assert template_copy(brief("vip", offer)) == template_copy(brief("vip", offer))
    headlines = {template_copy(brief(t, offer)).headline for t in CAMPAIGN_TYPES}
    assert len(headlines) == len(CAMPAIGN_TYPES)


def test_category_promotion_names_the_category_only_when_safe() -> None:
    offer = OFFERS[0]
    assert "dining" in template_copy(brief("category_promotion", offer)).headline
    numbered = template_copy(brief("category_promotion", offer, top_category="cat_7"))
    assert "cat_7" not in numbered.headline and "cat 7" not in numbered.headline
    assert validate_copy(numbered, offer) == []


def test_the_campaign_stages_default_offers_pass_as_templates() -> None:
    """The offers `ai_campaigns` really carries (its `offer_json`) parse and validate."""
    import json

    from transforms.campaign_config import CampaignConfig

    for campaign_type, config_offer in CampaignConfig().offers.items():
        payload = config_offer.model_dump(mode="json")
        payload["label"] = payload["label"].format(top_category="groceries")
        offer = Offer.model_validate_json(json.dumps(payload))
        copy = template_copy(brief(campaign_type, offer))  # type: ignore[arg-type]
        assert validate_copy(copy, offer) == [], campaign_type
