"""The prompt is deterministic and its hash is a faithful cache key."""

from __future__ import annotations

from transforms.copy_prompt import (
    PROMPT_TEMPLATE_VERSION,
    CampaignBrief,
    Offer,
    allowed_figures,
    build_prompt,
    build_repair_messages,
    prompt_hash,
)

BRIEF = CampaignBrief(
    campaign_id="c-1",
    campaign_name="High Spender VIP",
    campaign_type="vip",
    offer=Offer(kind="percent_off", value=20, label="20% off premium merchants"),
    target_patterns=["high_spender", "frequent_shopper"],
    audience_size=1234,
    segment_facts={"avg_spend": 84.2371, "top_category": "dining"},
)


def key(brief: CampaignBrief = BRIEF, **params: object) -> str:
    values: dict[str, object] = {"model": "m", "temperature": 0.7, "max_tokens": 700}
    values.update(params)
    return prompt_hash(build_prompt(brief), **values)  # type: ignore[arg-type]


def test_prompt_has_system_and_user_messages_with_the_brief() -> None:
    messages = build_prompt(BRIEF)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "20% off premium merchants" in user and '"20% (discount)"' in user
    assert "high_spender" in user and "dining" in user
    assert "unsubscribe" in messages[0]["content"]
    assert '"guaranteed"' in messages[0]["content"]


def test_prompt_keeps_the_audience_count_and_campaign_id_out() -> None:
    text = str(build_prompt(BRIEF))
    assert "1234" not in text and "1,234" not in text
    assert "c-1" not in text and "High Spender VIP" not in text  # names carry dates
    assert "84.2" in text and "84.2371" not in text  # facts rounded to 3 significant digits


def test_hash_is_stable_and_ignores_what_the_model_never_sees() -> None:
    assert key() == key()
    assert len(key()) == 64
    same_copy = BRIEF.model_copy(update={"campaign_id": "c-2", "audience_size": 1300})
    assert key(same_copy) == key()
    reordered = BRIEF.model_copy(update={"target_patterns": ["frequent_shopper", "high_spender"]})
    assert key(reordered) == key()


def test_hash_changes_with_everything_that_changes_the_answer() -> None:
    base = key()
    other_offer = BRIEF.model_copy(
        update={"offer": Offer(kind="percent_off", value=25, label="25% off premium merchants")}
    )
    assert key(other_offer) != base
    assert key(model="other") != base
    assert key(temperature=0.2) != base
    assert key(max_tokens=500) != base
    assert key(response_format="json_schema") != base
    assert key(template_version=PROMPT_TEMPLATE_VERSION + "-next") != base
    assert prompt_hash(build_prompt(BRIEF, ["only this"]), model="m", temperature=0.7,
                       max_tokens=700) != base  # fmt: skip


def test_allowed_figures_describe_every_offer_number() -> None:
    offer = Offer(
        kind="cashback_amount", value=10, label="$10 back", min_spend=50, max_reward=25,
        valid_days=7,
    )  # fmt: skip
    assert allowed_figures(offer) == [
        "$10 (cashback)", "$50 (minimum spend)", "$25 (reward cap)", "7 (days the offer is valid)",
    ]  # fmt: skip
    assert allowed_figures(Offer(kind="points_multiplier", value=2, label="double")) == [
        "2x (points multiplier)"
    ]
    assert allowed_figures(Offer(kind="perk", label="early access")) == []


def test_repair_messages_append_the_answer_and_the_violations() -> None:
    messages = build_prompt(BRIEF)
    repair = build_repair_messages(messages, '{"headline": 1}', ["missing field 'ctas'"])
    assert repair[:2] == messages
    assert repair[2] == {"role": "assistant", "content": '{"headline": 1}'}
    assert "- missing field 'ctas'" in repair[3]["content"]


def test_brief_from_an_ai_campaigns_row() -> None:
    row = {
        "campaign_id": "uuid-1",
        "campaign_name": "High Spender Spending Milestone 2026-03-02",
        "campaign_type": "spending_milestone",
        "target_pattern": "high_spender",
        "audience_size": 812,
        "offer_json": '{"cost_share": 0.0, "delivery_cost": "0.50", "fixed_cost": "10", '
        '"kind": "bonus", "label": "$10 bonus at $200", "min_purchase": "200", "value": "10"}',
    }
    brief = CampaignBrief.from_ai_campaign(row, {"avg_spend": 310.5})
    assert brief.offer == Offer(kind="bonus", value=10, label="$10 bonus at $200", min_spend=200)
    assert brief.target_patterns == ["high_spender"] and brief.audience_size == 812
    assert allowed_figures(brief.offer) == ["$10 (bonus)", "$200 (minimum spend)"]
