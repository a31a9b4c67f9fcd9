"""Copy validation: schema, lengths, the figures policy, banned claims and opt-out."""

from __future__ import annotations

import json

import pytest

from transforms.copy_prompt import Offer
from transforms.copy_validation import (
    CampaignCopy,
    check_answer,
    find_figures,
    parse_copy,
    validate_copy,
)

TWENTY_OFF = Offer(kind="percent_off", value=20, label="20% off premium merchants")

GOOD = {
    "headline": "Unlock exclusive 20% savings as a VIP",
    "email_body": "You have been selected for our VIP programme: 20% off premium merchants. "
    "Enjoy it in the app.\n\nTo unsubscribe, open your settings.",
    "ctas": ["Claim Your VIP Status", "Activate Premium Benefits", "Start Saving Today"],
    "subject_lines": ["You're invited to VIP", "Exclusive 20% offer, VIP only"],
    "social_copy": "VIPs get 20% off premium merchants this week.",
}


def problems(offer: Offer = TWENTY_OFF, **changes: object) -> list[str]:
    return validate_copy(CampaignCopy(**{**GOOD, **changes}), offer)


def test_good_copy_passes() -> None:
    assert problems() == []
    assert check_answer(json.dumps(GOOD), TWENTY_OFF) == (CampaignCopy(**GOOD), [])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the answer was empty"),
        ('{"headline": "x", ', "the answer is not valid JSON"),
        ("[1, 2]", "the answer is JSON but not an object (got list)"),
        ('{"headline": "x"}', "missing field 'email_body'"),
        (json.dumps({**GOOD, "ctas": "Shop now"}), "field 'ctas': Input should be a valid list"),
    ],
)
def test_schema_problems_are_explained(text: str, expected: str) -> None:
    copy, found = parse_copy(text)
    assert copy is None
    assert any(problem.startswith(expected) for problem in found), found


def test_code_fences_around_json_are_tolerated() -> None:
    copy, found = parse_copy("```json\n" + json.dumps(GOOD) + "\n```")
    assert found == [] and copy is not None


def test_length_and_count_limits() -> None:
    assert problems(headline=" ".join(["word"] * 13)) == ["headline has 13 words (max 12)"]
    long_email = " ".join(["word"] * 150) + " unsubscribe"
    assert problems(email_body=long_email) == ["email body has 151 words (max 150)"]
    assert problems(ctas=["One", "Two"]) == ["expected exactly 3 CTAs, got 2"]
    assert problems(subject_lines=["Only one"]) == ["expected at least 2 subject lines, got 1"]
    assert problems(subject_lines=["ok", "x" * 61]) == [
        "subject line 2 longer than 60 characters (has 61)"
    ]
    assert problems(subject_lines=["ok", "x" * 60]) == []
    assert problems(ctas=["a", "", "c"]) == ["CTA 2 is empty"]
    assert problems(social_copy=" ") == ["social copy is empty"]


def test_figures_must_match_the_offer() -> None:
    assert problems(headline="Take 30% off today") == [
        "headline: the figure '30%' does not match the offer '20% off premium merchants' "
        "(allowed figures: 20% (discount))"
    ]
    assert problems(social_copy="Save $20 now") != []  # 20 is a percentage here, not dollars
    assert problems(social_copy="Save 20 percent now") == []
    assert problems(social_copy="Our 2025 sale") != []  # years are not offer figures
    assert problems(social_copy="Join 1,234 shoppers") != []  # nor is the audience size
    assert problems(social_copy="Open 24/7") != []
    assert problems(social_copy="Our Q4 picks for the 4th time") == []  # glued digits: words


@pytest.mark.parametrize(
    ("offer", "ok", "wrong"),
    [
        (Offer(kind="amount_off", value=15, label="$15 off"), "Take $15.00 off", "Take 15% off"),
        (
            Offer(kind="cashback_percent", value=5, label="5% cashback", max_reward=25),
            "5% back, up to $25",
            "5% back, up to $30",
        ),
        (
            Offer(kind="cashback_amount", value=10, label="Spend $100, get $10 back",
                  min_spend=100),
            "Spend $100 and get $10",
            "Spend $150 and get $10",
        ),
        (Offer(kind="points_multiplier", value=2, label="Double points"), "Earn 2x points",
         "Earn 3x points"),
        (Offer(kind="points", value=500, label="500 bonus points", valid_days=7),
         "500 points for 7 days", "$500 in points"),
        (Offer(kind="perk", label="Early access to sales"), "Early access", "Early access, 1 day"),
        (Offer(kind="amount_off", value=1000, label="$1,000 off"), "Save $1,000", "Save $100"),
    ],
)  # fmt: skip
def test_figure_policy_per_offer_kind(offer: Offer, ok: str, wrong: str) -> None:
    no_figures = {
        "headline": "A treat for you",
        "email_body": "Enjoy it in the app. Unsubscribe in settings.",
        "subject_lines": ["For you", "Inside"],
    }
    assert problems(offer, **no_figures, social_copy=ok) == []
    assert len(problems(offer, **no_figures, social_copy=wrong)) == 1


def test_find_figures_units() -> None:
    found = [(f.text, f.unit) for f in find_figures("20% or $1,000.50, 2x and 7 days")]
    assert found == [("20%", "percent"), ("$1,000.50", "money"), ("2x", "multiplier"),
                     ("7", "plain")]  # fmt: skip


def test_banned_claims_are_case_insensitive() -> None:
    assert problems(headline="GUARANTEED 20% savings") == [
        "headline uses the banned claim 'guaranteed'"
    ]
    assert problems(social_copy="Risk-Free and no strings attached") == [
        "social copy uses the banned claim 'risk-free'",
        "social copy uses the banned claim 'no strings attached'",
    ]
    custom = validate_copy(CampaignCopy(**{**GOOD, "headline": "Best deal"}), TWENTY_OFF,
                           banned_claims=["best deal"])  # fmt: skip
    assert custom == ["headline uses the banned claim 'best deal'"]


def test_email_needs_an_opt_out_line() -> None:
    assert problems(email_body="Enjoy 20% off premium merchants.") == [
        "email body has no opt-out line (it must say how to unsubscribe)"
    ]
    assert problems(email_body="Enjoy it. Opt out any time in settings.") == []


@pytest.mark.parametrize(
    "wrapped",
    [
        "Here you go:\n```json\n{copy}\n```\nEnjoy!",
        "<think>Plan: {{\"headline\": \"draft\"}}</think>{copy}",
        "Opening tag stripped by the server. Draft: {draft}</thinking>\n{copy}",
        "{copy}\n<reflection>Checked the limits and the figures.</reflection>",
        "A first try {{\"headline\": \"x\"}} and the final answer: {copy} (done)",
        "[{copy}]",
    ],
)
def test_the_object_is_extracted_from_its_wrapping(wrapped: str) -> None:
    draft = json.dumps({**GOOD, "headline": "Take 30% off"})  # complete, but breaks a rule
    text = (wrapped.replace("{{", "{").replace("}}", "}").replace("{copy}", json.dumps(GOOD))
            .replace("{draft}", draft))
    assert check_answer(text, TWENTY_OFF) == (CampaignCopy(**GOOD), [])


def test_a_draft_inside_reasoning_never_counts() -> None:
    draft = json.dumps({**GOOD, "headline": "Take 30% off"})
    copy, found = parse_copy(f"<think>{draft}</think>\nNo answer, sorry.")
    assert copy is None
    assert found == ["the answer is not valid JSON (no JSON object in it)"]
