"""Deterministic copy for every campaign type: what ships when the LLM cannot.

The pipeline must never block on the model (no key, outage, output that fails validation), so
each campaign type has a plain template. Templates only ever write the offer's own label and
validity, which keeps them inside the figures policy of `copy_validation`; length limits are
enforced by trimming whole words, so a figure is never cut in half.
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms.copy_prompt import CampaignBrief, CampaignType, format_amount
from transforms.copy_validation import (
    MAX_CTA_CHARS,
    MAX_HEADLINE_WORDS,
    MAX_SOCIAL_CHARS,
    MAX_SUBJECT_CHARS,
    CampaignCopy,
)

OPT_OUT_LINE = "Don't want these emails? You can unsubscribe at any time in the app settings."

PATTERN_PHRASES = {
    "high_spender": "As one of our most valued customers",
    "frequent_shopper": "Because you shop with us so often",
    "weekend_shopper": "For your weekend shopping",
    "category_focused": "For the things you love to buy",
    "location_clustered": "At the places you visit most",
    "new_shopper": "Welcome aboard",
    "inactive": "It has been a while",
    "seasonal_spender": "Just in time for the season",
}


@dataclass(frozen=True)
class _Voice:
    headline: str  # `{offer}` is the capitalised label, `{category}` the top category
    pitch: str
    ctas: tuple[str, str, str]
    subject: str
    social: str


VOICES: dict[CampaignType, _Voice] = {
    "discount": _Voice(
        "{offer}, just for you",
        "Your discount applies automatically at checkout, no code needed.",
        ("Claim my discount", "Shop now", "See offer details"),
        "{offer}: your discount is ready",
        "{offer} for our members. Open the app to claim it.",
    ),
    "cashback": _Voice(
        "Earn {offer_lower} on your purchases",
        "Pay with your card as usual and the cashback lands in your account.",
        ("Activate cashback", "Start earning", "See how it works"),
        "Cashback unlocked: {offer_lower}",
        "Cashback is on: {offer_lower}. Activate it in the app.",
    ),
    "loyalty": _Voice(
        "Your loyalty pays off: {offer_lower}",
        "It is our way of saying thank you for sticking with us.",
        ("Claim my reward", "View my rewards", "Shop now"),
        "A thank-you for you: {offer_lower}",
        "Loyal members get {offer_lower}. Check your rewards in the app.",
    ),
    "location_based": _Voice(
        "{offer} at your favourite spots nearby",
        "Use it at participating stores near the places you shop most.",
        ("Find nearby stores", "Claim offer", "See participating stores"),
        "Nearby and just for you: {offer_lower}",
        "{offer} at stores near you. Find them in the app.",
    ),
    "category_promotion": _Voice(
        "{offer} on {category}",
        "Stock up on {category} while the promotion runs.",
        ("Shop {category}", "Claim offer", "Browse the deals"),
        "{offer} on {category}",
        "{offer} on {category}. Details in the app.",
    ),
    "spending_milestone": _Voice(
        "Reach your next milestone: {offer_lower}",
        "Track your progress in the app and the reward is added when you get there.",
        ("Track my progress", "Shop now", "See the reward"),
        "Your next reward: {offer_lower}",
        "Milestone reward: {offer_lower}. Track your progress in the app.",
    ),
    "re_engagement": _Voice(
        "We miss you: {offer_lower} to welcome you back",
        "Come back and see what is new, your offer is waiting.",
        ("Come back and save", "Claim my offer", "See what's new"),
        "We saved something for you: {offer_lower}",
        "Welcome back: {offer_lower}. Open the app to claim it.",
    ),
    "vip": _Voice(
        "VIP access: {offer_lower}",
        "You have been selected for our VIP programme and this offer is reserved for you.",
        ("Claim my VIP offer", "Activate VIP benefits", "Explore VIP perks"),
        "Exclusive for VIPs: {offer_lower}",
        "VIP members: {offer_lower}. Reserved for you in the app.",
    ),
}


def _category(brief: CampaignBrief) -> str:
    value = brief.segment_facts.get("top_category")
    if isinstance(value, str) and value.strip() and not any(ch.isdigit() for ch in value):
        return value.strip().replace("_", " ")
    return "your favourite categories"


def _fit_words(text: str, max_words: int) -> str:
    return " ".join(text.split()[:max_words])


def _fit_chars(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    words: list[str] = []
    for word in text.split():
        if len(" ".join([*words, word])) > max_chars:
            break
        words.append(word)
    return " ".join(words).rstrip(":,;-") or text[:max_chars]


def template_copy(brief: CampaignBrief) -> CampaignCopy:
    """Template copy for `brief`; deterministic and valid for any sane offer label."""
    voice = VOICES[brief.campaign_type]
    label = brief.offer.label.strip()
    values = {
        "offer": label[:1].upper() + label[1:],
        "offer_lower": label,
        "category": _category(brief),
    }
    opener = next(
        (PATTERN_PHRASES[p] for p in brief.target_patterns if p in PATTERN_PHRASES), "Hello"
    )
    validity = (
        f" The offer is valid for {format_amount(brief.offer.valid_days)} days."
        if brief.offer.valid_days
        else ""
    )
    email = (
        f"{opener}, we have something for you: {label}. "
        f"{voice.pitch.format(**values)}{validity} "
        f"Open the app to see the full terms.\n\n{OPT_OUT_LINE}"
    )
    subject = voice.subject.format(**values)
    return CampaignCopy(
        headline=_fit_words(voice.headline.format(**values), MAX_HEADLINE_WORDS),
        email_body=email,
        ctas=[_fit_chars(cta.format(**values), MAX_CTA_CHARS) for cta in voice.ctas],
        subject_lines=[
            _fit_chars(subject, MAX_SUBJECT_CHARS),
            "Your offer is waiting in the app",
        ],
        social_copy=_fit_chars(voice.social.format(**values), MAX_SOCIAL_CHARS),
    )
