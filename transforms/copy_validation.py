"""Rules every piece of campaign copy must pass before it is stored or cached.

An LLM answer is untrusted text: it may break the JSON contract, run long, promise a bigger
discount than the campaign gives, or make a claim legal would not sign. Each rule returns a
plain-English violation so the same messages serve three readers: the model (in the repair
request), the data team (as `fallback_reason`) and the tests.

Wrapping is not a violation: models put the object in a ```json fence, between sentences or
after a `<think>` block, and a repair call to unwrap it would be paid twice for the same
copy. `extract_json` finds the object first; only an answer with no usable object is one.

Figures policy (decided here, documented in docs/llm-copy.md): every number written in the
copy must be one of the offer's figures, in a compatible form. A percentage must equal a
percentage of the offer ("20%" for 20% off, never "30%"); a currency amount must equal one of
the offer's amounts (value, minimum spend, reward cap); "2x" must equal a multiplier; a bare
number may equal any offer figure or the validity in days. Numbers written in the offer's
label count as offer figures. Everything else is rejected, including years (the model cannot
know the send date, so a year is a stale-date risk) and the audience size (internal data,
never quoted to customers). Only digits are checked: "three" is not a figure, and digits
glued to letters ("Q4", "4th") are not quantities.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, ValidationError

from transforms.copy_prompt import (
    DEFAULT_BANNED_CLAIMS,
    MONEY_KINDS,
    PERCENT_KINDS,
    Offer,
    allowed_figures,
)

MAX_HEADLINE_WORDS = 12
MAX_EMAIL_WORDS = 150
CTA_COUNT = 3
MAX_CTA_CHARS = 40
MIN_SUBJECT_LINES = 2
MAX_SUBJECT_CHARS = 60
MAX_SOCIAL_CHARS = 280

_OPT_OUT = re.compile(r"unsubscribe|opt[- ]?out", re.IGNORECASE)
# Reasoning a model writes before its answer (`<think>...</think>` and its cousins). A
# closing tag without an opening one counts too: some servers strip the opening tag.
_REASONING = re.compile(r"<(think|thinking|reasoning|reflection)\b[^>]*>.*?</\1\s*>",
                        re.DOTALL | re.IGNORECASE)
_REASONING_TAIL = re.compile(r"^.*</(?:think|thinking|reasoning|reflection)\s*>",
                             re.DOTALL | re.IGNORECASE)
_WS = re.compile(r"\s+")
_FIGURE = re.compile(
    r"(?<!\w)"
    r"(?P<currency>[$€£¥])?\s?"
    r"(?P<number>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.(?P<decimals>\d+))?"
    r"(?:(?P<unit>\s?%|\s?percent\b|[xX×](?!\w))|(?!\w))"
)


class CampaignCopy(BaseModel):
    """The JSON object the model must return (extra keys are ignored, not stored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    headline: str
    email_body: str
    ctas: list[str]
    subject_lines: list[str]
    social_copy: str


_REQUIRED_FIELDS = frozenset(CampaignCopy.model_fields)


@dataclass(frozen=True)
class Figure:
    """A number found in text, with the unit that decides what it may match."""

    text: str
    value: Decimal
    unit: str  # "percent", "money", "multiplier" or "plain"


def word_count(text: str) -> int:
    """Whitespace-separated words: the unit of the headline and email limits."""
    stripped = text.strip()
    return len(_WS.split(stripped)) if stripped else 0


def find_figures(text: str) -> list[Figure]:
    """Every number written in `text`, classified by unit."""
    figures = []
    for match in _FIGURE.finditer(text):
        digits = match["number"].replace(",", "")
        if match["decimals"]:
            digits += "." + match["decimals"]
        unit_text = (match["unit"] or "").strip().lower()
        if unit_text in ("%", "percent"):
            unit = "percent"
        elif match["currency"]:
            unit = "money"
        elif unit_text in ("x", "×"):
            unit = "multiplier"
        else:
            unit = "plain"
        figures.append(Figure(match.group(0).strip(), Decimal(digits).normalize(), unit))
    return figures


def offer_figures(offer: Offer) -> dict[str, set[Decimal]]:
    """Allowed values per unit; a bare number may be any of them ("plain")."""

    def dec(value: float) -> Decimal:
        return Decimal(str(value)).normalize()

    allowed: dict[str, set[Decimal]] = {"percent": set(), "money": set(), "multiplier": set()}
    plain: set[Decimal] = set()
    if offer.value is not None:
        if offer.kind in PERCENT_KINDS:
            allowed["percent"].add(dec(offer.value))
        elif offer.kind in MONEY_KINDS:
            allowed["money"].add(dec(offer.value))
        elif offer.kind == "points_multiplier":
            allowed["multiplier"].add(dec(offer.value))
        else:
            plain.add(dec(offer.value))
    for money in (offer.min_spend, offer.max_reward):
        if money is not None:
            allowed["money"].add(dec(money))
    if offer.valid_days is not None:
        plain.add(dec(offer.valid_days))
    for figure in find_figures(offer.label):
        (plain if figure.unit == "plain" else allowed[figure.unit]).add(figure.value)
    allowed["plain"] = plain.union(*allowed.values())
    return allowed


def _fields(copy: CampaignCopy) -> Iterator[tuple[str, str]]:
    yield "headline", copy.headline
    yield "email body", copy.email_body
    for i, cta in enumerate(copy.ctas, start=1):
        yield f"CTA {i}", cta
    for i, subject in enumerate(copy.subject_lines, start=1):
        yield f"subject line {i}", subject
    yield "social copy", copy.social_copy


def _shape_violations(copy: CampaignCopy) -> list[str]:
    problems = []
    headline_words = word_count(copy.headline)
    if headline_words == 0:
        problems.append("headline is empty")
    elif headline_words > MAX_HEADLINE_WORDS:
        problems.append(f"headline has {headline_words} words (max {MAX_HEADLINE_WORDS})")
    email_words = word_count(copy.email_body)
    if email_words == 0:
        problems.append("email body is empty")
    elif email_words > MAX_EMAIL_WORDS:
        problems.append(f"email body has {email_words} words (max {MAX_EMAIL_WORDS})")
    if len(copy.ctas) != CTA_COUNT:
        problems.append(f"expected exactly {CTA_COUNT} CTAs, got {len(copy.ctas)}")
    for i, cta in enumerate(copy.ctas, start=1):
        if not cta.strip():
            problems.append(f"CTA {i} is empty")
        elif len(cta) > MAX_CTA_CHARS:
            problems.append(f"CTA {i} longer than {MAX_CTA_CHARS} characters (has {len(cta)})")
    if len(copy.subject_lines) < MIN_SUBJECT_LINES:
        problems.append(
            f"expected at least {MIN_SUBJECT_LINES} subject lines, got {len(copy.subject_lines)}"
        )
    for i, subject in enumerate(copy.subject_lines, start=1):
        if not subject.strip():
            problems.append(f"subject line {i} is empty")
        elif len(subject) > MAX_SUBJECT_CHARS:
            problems.append(
                f"subject line {i} longer than {MAX_SUBJECT_CHARS} characters (has {len(subject)})"
            )
    if not copy.social_copy.strip():
        problems.append("social copy is empty")
    elif len(copy.social_copy) > MAX_SOCIAL_CHARS:
        problems.append(
            f"social copy longer than {MAX_SOCIAL_CHARS} characters (has {len(copy.social_copy)})"
        )
    return problems


def _figure_violations(copy: CampaignCopy, offer: Offer) -> list[str]:
    allowed = offer_figures(offer)
    shown = ", ".join(allowed_figures(offer)) or "none: write no numbers"
    problems = []
    for where, text in _fields(copy):
        for figure in find_figures(text):
            if figure.value not in allowed[figure.unit]:
                problems.append(
                    f"{where}: the figure '{figure.text}' does not match the offer "
                    f"'{offer.label}' (allowed figures: {shown})"
                )
    return problems


def _claim_violations(copy: CampaignCopy, banned_claims: Sequence[str]) -> list[str]:
    patterns = [
        (claim, re.compile(rf"(?<!\w){re.escape(claim)}(?!\w)", re.IGNORECASE))
        for claim in banned_claims
    ]
    return [
        f"{where} uses the banned claim '{claim}'"
        for where, text in _fields(copy)
        for claim, pattern in patterns
        if pattern.search(text)
    ]


def validate_copy(
    copy: CampaignCopy, offer: Offer, banned_claims: Sequence[str] = DEFAULT_BANNED_CLAIMS
) -> list[str]:
    """All rule violations of well-formed copy; an empty list means it may be published."""
    problems = _shape_violations(copy)
    problems += _figure_violations(copy, offer)
    problems += _claim_violations(copy, banned_claims)
    if copy.email_body.strip() and not _OPT_OUT.search(copy.email_body):
        problems.append("email body has no opt-out line (it must say how to unsubscribe)")
    return problems


def strip_reasoning(text: str) -> str:
    """`text` without the reasoning blocks a model may write before its answer."""
    return _REASONING_TAIL.sub("", _REASONING.sub("", text))


def _embedded_objects(text: str) -> tuple[list[dict[str, object]], json.JSONDecodeError | None]:
    """Every JSON object found in `text` (outermost first), and the first decode error."""
    decoder = json.JSONDecoder()
    found: list[dict[str, object]] = []
    first_error: json.JSONDecodeError | None = None
    start = text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as err:
            first_error = first_error or err
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        start = text.find("{", end)
    return found, first_error


def extract_json(text: str) -> tuple[object | None, list[str]]:
    """The answer's JSON value, found where models put it: alone, in a ```json fence, after a
    `<think>` block or inside prose. Extracting costs nothing; a repair round costs a paid call,
    so only an answer with no usable object in it is reported as a problem.

    A complete object with all the copy's fields wins over any other object (a draft in the
    prose, a nested value); a reasoning block is dropped first, so its drafts never count.
    """
    body = strip_reasoning(text).strip()
    try:
        whole: object = json.loads(body)
        parsed = True
    except json.JSONDecodeError:
        whole, parsed = None, False
    if isinstance(whole, dict):
        return whole, []
    objects, error = _embedded_objects(body)
    complete = [obj for obj in objects if obj.keys() >= _REQUIRED_FIELDS]
    if complete:
        return complete[0], []
    if parsed:
        return None, [f"the answer is JSON but not an object (got {type(whole).__name__})"]
    if error is not None:
        return None, [f"the answer is not valid JSON ({error.msg} at line {error.lineno} "
                      f"column {error.colno})"]
    if objects:
        return objects[0], []
    return None, ["the answer is not valid JSON (no JSON object in it)"]


def parse_copy(text: str | None) -> tuple[CampaignCopy | None, list[str]]:
    """A model's answer to `CampaignCopy`, or the reasons it is not one (`extract_json`)."""
    if text is None or not text.strip():
        return None, ["the answer was empty"]
    data, problems = extract_json(text)
    if data is None:
        return None, problems
    try:
        return CampaignCopy.model_validate(data), []
    except ValidationError as err:
        return None, [_schema_message(error) for error in err.errors()]


def _schema_message(error: object) -> str:
    details = error if isinstance(error, dict) else {}
    location = ".".join(str(part) for part in details.get("loc", ()))
    if details.get("type") == "missing":
        return f"missing field '{location}'"
    return f"field '{location}': {details.get('msg', 'invalid')}"


def check_answer(
    text: str | None, offer: Offer, banned_claims: Sequence[str] = DEFAULT_BANNED_CLAIMS
) -> tuple[CampaignCopy | None, list[str]]:
    """Parse and validate a raw model answer: (copy, []) when publishable."""
    copy, problems = parse_copy(text)
    if copy is None:
        return None, problems
    problems = validate_copy(copy, offer, banned_claims)
    return (copy if not problems else None), problems
