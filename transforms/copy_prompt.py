"""The campaign brief the copywriter sees, the prompt built from it, and the cache key.

The prompt is a pure function of the brief, so its hash identifies the copy: an unchanged
campaign hashes the same on every re-materialization and is served from the cache instead of
being billed again. Anything that changes the model's answer (template version, model,
sampling parameters, banned claims, the brief itself) is inside the hash; anything that does
not (the campaign id, the campaign name, which carries its start date, and the exact audience
count) is kept out of the prompt on purpose, so identical campaigns on different days share
one cached answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from transforms.campaign_config import CAMPAIGN_TYPES, CampaignType  # noqa: F401 - re-exported

# Bump whenever the wording or structure of the messages changes: it invalidates the cache.
PROMPT_TEMPLATE_VERSION = "copy-v1"


OfferKind = Literal[
    "percent_off",
    "amount_off",
    "cashback",  # a percentage, as in the campaign config ("5% cashback")
    "cashback_percent",
    "cashback_amount",
    "bonus",  # a currency amount, usually with a minimum purchase ("$10 bonus at $200")
    "points",
    "points_multiplier",
    "perk",
]
PERCENT_KINDS = frozenset({"percent_off", "cashback", "cashback_percent"})
MONEY_KINDS = frozenset({"amount_off", "cashback_amount", "bonus"})

DEFAULT_BANNED_CLAIMS: tuple[str, ...] = (
    "guaranteed",
    "guarantee",
    "risk-free",
    "risk free",
    "no risk",
    "free money",
    "no strings attached",
    "100% safe",
    "get rich",
    "instant approval",
    "once in a lifetime",
)

ChatMessage = dict[str, str]


class Offer(BaseModel):
    """What the customer is promised, and therefore the only figures the copy may state.

    `label` is the human wording ("20% off premium merchants"); the numeric fields are what
    validation accepts in the copy. Numbers written inside `label` are accepted too, since the
    label is curated by the campaign step, not generated. Parses `ai_campaigns.offer_json`
    directly (`Offer.model_validate_json`): its cost fields are ignored, `min_purchase` is read
    as `min_spend`.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: OfferKind
    value: float | None = Field(default=None, ge=0)
    label: str = Field(min_length=1)
    min_spend: float | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("min_spend", "min_purchase"),
        description="Spend threshold, money",
    )
    max_reward: float | None = Field(default=None, ge=0, description="Reward cap, money")
    valid_days: int | None = Field(default=None, ge=1, description="Days the offer runs")
    currency_symbol: str = "$"


class CampaignBrief(BaseModel):
    """One campaign as handed to the copywriter (built by the lead from `ai_campaigns`)."""

    campaign_id: str
    campaign_name: str
    campaign_type: CampaignType
    offer: Offer
    target_patterns: list[str] = Field(default_factory=list)
    audience_size: int = Field(ge=0)
    segment_facts: dict[str, str | float] = Field(default_factory=dict)

    @classmethod
    def from_ai_campaign(
        cls, row: Mapping[str, Any], segment_facts: Mapping[str, str | float] | None = None
    ) -> CampaignBrief:
        """A brief from an `ai_campaigns` row (its `offer_json` holds the offer)."""
        return cls(
            campaign_id=str(row["campaign_id"]),
            campaign_name=str(row["campaign_name"]),
            campaign_type=row["campaign_type"],
            offer=Offer.model_validate_json(row["offer_json"]),
            target_patterns=[str(row["target_pattern"])] if row.get("target_pattern") else [],
            audience_size=int(row["audience_size"]),
            segment_facts=dict(segment_facts or {}),
        )


SYSTEM_PROMPT = """\
You write marketing copy for a payments app's promotional campaigns.
Answer with ONE JSON object and nothing else, with exactly these keys:
  "headline": string, at most 12 words,
  "email_body": string, at most 150 words, ending with a line telling the reader how to \
unsubscribe (use the word "unsubscribe"),
  "ctas": array of exactly 3 short call-to-action button texts (at most 40 characters each),
  "subject_lines": array of 2 or 3 email subject lines, each at most 60 characters,
  "social_copy": string, one social media post, at most 280 characters.
Rules:
- The only figures you may write are the ones listed under "allowed_figures", in the form \
shown there. Do not write any other number, percentage, amount, year or date.
- "segment_background" is for relevance and tone: you may name a category, never quote its \
numbers. Do not mention the audience size.
- Never use these words or phrases: {banned}.
- Be specific to the audience and the offer; no invented terms or conditions."""

REPAIR_PROMPT = """\
Your previous answer was rejected for these reasons:
{violations}
Return a corrected JSON object with the same keys that fixes every problem. \
Keep to the allowed figures and the length limits. JSON only."""


def format_amount(value: float) -> str:
    """Render a number the way copy should write it: `20`, `12.5`, `1,000`."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def allowed_figures(offer: Offer) -> list[str]:
    """The offer's figures as the prompt presents them: `20% (discount)`, `$50 (minimum spend)`."""
    meaning = {
        "percent_off": "discount",
        "amount_off": "discount",
        "cashback": "cashback",
        "cashback_percent": "cashback",
        "cashback_amount": "cashback",
        "bonus": "bonus",
        "points": "points",
        "points_multiplier": "points multiplier",
        "perk": "offer",
    }[offer.kind]
    figures: list[str] = []
    if offer.value is not None:
        number = format_amount(offer.value)
        if offer.kind in PERCENT_KINDS:
            number = f"{number}%"
        elif offer.kind in MONEY_KINDS:
            number = f"{offer.currency_symbol}{number}"
        elif offer.kind == "points_multiplier":
            number = f"{number}x"
        figures.append(f"{number} ({meaning})")
    if offer.min_spend is not None:
        figures.append(f"{offer.currency_symbol}{format_amount(offer.min_spend)} (minimum spend)")
    if offer.max_reward is not None:
        figures.append(f"{offer.currency_symbol}{format_amount(offer.max_reward)} (reward cap)")
    if offer.valid_days is not None:
        figures.append(f"{offer.valid_days} (days the offer is valid)")
    return figures


def audience_scale(audience_size: int) -> str:
    """A size band instead of the count: stable across days and impossible to quote."""
    if audience_size < 1_000:
        return "a small, select group"
    if audience_size < 20_000:
        return "a mid-sized group"
    return "a broad audience"


def _fact(value: str | float) -> str | float:
    # Three significant digits: daily jitter in averages must not defeat the cache.
    if isinstance(value, float):
        return float(f"{value:.3g}")
    return value


def _brief_payload(campaign: CampaignBrief) -> dict[str, object]:
    offer = campaign.offer
    return {
        "campaign_type": campaign.campaign_type,
        "offer": {"kind": offer.kind, "label": offer.label},
        "allowed_figures": allowed_figures(offer),
        "audience": audience_scale(campaign.audience_size),
        "target_patterns": sorted(campaign.target_patterns),
        "segment_background": {k: _fact(v) for k, v in sorted(campaign.segment_facts.items())},
    }


def build_prompt(
    campaign: CampaignBrief, banned_claims: Sequence[str] = DEFAULT_BANNED_CLAIMS
) -> list[ChatMessage]:
    """System and user messages for one campaign; deterministic for a given brief."""
    banned = ", ".join(f'"{claim}"' for claim in banned_claims)
    brief = json.dumps(_brief_payload(campaign), indent=2, sort_keys=True, ensure_ascii=False)
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(banned=banned)},
        {"role": "user", "content": f"Write the copy for this campaign.\nBrief:\n{brief}"},
    ]


def build_repair_messages(
    messages: Sequence[ChatMessage], previous_answer: str, violations: Sequence[str]
) -> list[ChatMessage]:
    """The original conversation plus the rejected answer and what was wrong with it."""
    listed = "\n".join(f"- {violation}" for violation in violations)
    return [
        *messages,
        {"role": "assistant", "content": previous_answer},
        {"role": "user", "content": REPAIR_PROMPT.format(violations=listed)},
    ]


def prompt_hash(
    messages: Sequence[ChatMessage],
    *,
    model: str,
    temperature: float,
    max_tokens: int,
    response_format: str = "json_object",
    template_version: str = PROMPT_TEMPLATE_VERSION,
) -> str:
    """sha256 over everything that determines the answer: the copy cache key."""
    canonical = json.dumps(
        {
            "template_version": template_version,
            "model": model,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "response_format": response_format,
            "messages": list(messages),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
