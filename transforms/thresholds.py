"""Every behaviour-pattern threshold in one typed, frozen config object.

DESIGN.md says "changing a threshold is a config change, not code": the profile transform
reads nothing but this object, and an operator overrides any field with
``MARKETING_PATTERN_<FIELD>`` (``MARKETING_PATTERN_WEEKEND_SHARE=0.6``), read with every
other setting by ``resources/settings.py``, without touching code.

Each field carries the decision taken where DESIGN.md left room for two readings; the
same decisions are written out in ``docs/patterns.md``.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The eight behaviour patterns, in the stable order used everywhere: the order of
# ``detected_patterns`` lists, of keys in ``pattern_evidence`` and of segment rows.
PATTERNS: tuple[str, ...] = (
    "high_spender",
    "frequent_shopper",
    "weekend_shopper",
    "category_focused",
    "location_clustered",
    "new_shopper",
    "inactive",
    "seasonal_spender",
)

# Every float threshold is compared as the exact fraction of its decimal form (0.7 == 7/10,
# not the binary float 0.69999999999999996), in integers: at most 6 decimals keeps the
# products inside Int64 (percentile rank) and Int128 (cents and microseconds).
_MAX_DECIMALS = 6


def exact_fraction(value: float) -> Fraction:
    """The exact fraction of a threshold's decimal form: 0.7 -> 7/10, 2.0 -> 2/1."""
    return Fraction(repr(value))


class PatternThresholds(BaseModel):
    """Thresholds of the eight behaviour patterns (DESIGN.md defaults).

    Every comparison is inclusive (``>=``) unless the field's comment says otherwise,
    because DESIGN.md writes ``>=`` for every rule except ``inactive`` (strict ``<``).
    Every comparison is also exact: ratios are compared as integers
    (``weekend * 10 >= 7 * purchases``), never as floats, so a user exactly on a threshold
    passes on every engine and in every row order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Length of the window [as_of_end - lookback, as_of_end). Must be divisible by 3:
    # the seasonal rule splits the window into three buckets of EXACTLY lookback/3 days
    # each, so bucket edges are whole days from as_of_end (no rounding to document).
    lookback_days: int = Field(default=90, ge=3, le=3650)

    # high_spender: among users with window spend > 0 (n of them), the cut is the value at
    # ascending rank ceil(p * n) (nearest rank); a user qualifies with spend >= the cut, so
    # every user tied with the cut value qualifies. p is read as the exact decimal written
    # (0.8 == 4/5, not the binary float 0.8000000000000000444), at most 6 decimals.
    high_spender_percentile: float = Field(default=0.8, gt=0.0, le=1.0)

    # frequent_shopper: purchases / observed_weeks >= this. observed_weeks =
    # (as_of_end - max(first purchase ever, window start)) / 7 days, fractional (to the
    # microsecond), floored at 1.0. So a user whose first purchase is inside the window is
    # measured from that first purchase (a 10-day-old shopper has 10/7 weeks), and a user
    # whose first purchase is very recent counts as 1 week (5 purchases in 2 days = 5/week).
    # Decided as purchases * 1 week >= this * max(observed, 1 week) in microseconds.
    frequent_purchases_per_week: float = Field(default=2.0, gt=0.0, le=10_000.0)

    # weekend_shopper: transaction_count >= min_purchases AND weekend_share >= this.
    # Weekend = Saturday or Sunday of the UTC calendar date of occurred_at.
    weekend_share: float = Field(default=0.7, gt=0.0, le=1.0)

    # category_focused: transaction_count >= min_purchases AND top_category_share >= this,
    # the share being of the user's TOTAL window purchase spend (purchases without a
    # category stay in the denominator, they just cannot be the top category). Decided on
    # integer cents, so an exact 50/50 split passes whatever the order of the rows.
    category_share: float = Field(default=0.5, gt=0.0, le=1.0)

    # location_clustered: transaction_count >= min_purchases AND every window purchase has a
    # known location AND 1 <= distinct_locations <= this. A user with any window purchase
    # of unknown location (null location_id) is not clustered: we cannot say it was there.
    max_locations: int = Field(default=2, ge=1)

    # Minimum window purchases for weekend_shopper, category_focused and
    # location_clustered (>=). DESIGN.md uses 3 for all three rules; one knob keeps them
    # consistent. Not applied to high_spender, frequent_shopper or seasonal_spender.
    min_purchases: int = Field(default=3, ge=1)

    # new_shopper: first purchase ever >= as_of_end - this many days (inclusive: a first
    # purchase exactly 30 days before as_of_end is new). Evidence: days since first purchase.
    new_shopper_days: int = Field(default=30, ge=1)

    # inactive: last purchase ever < as_of_end - this many days (strict: a last purchase
    # exactly 30 days before as_of_end is still active). Evidence: days_since_last_purchase.
    inactive_days: int = Field(default=30, ge=1)

    # seasonal_spender: all three bucket spends > 0 AND max bucket / min bucket >= this.
    # Buckets are [end-90d, end-60d), [end-60d, end-30d), [end-30d, end): each edge
    # belongs to the later bucket. Decided on integer cents: an exact 3x ratio passes.
    seasonal_ratio: float = Field(default=3.0, ge=1.0, le=1_000_000.0)

    @field_validator("lookback_days")
    @classmethod
    def _lookback_splits_into_three(cls, value: int) -> int:
        """Reject lookbacks that would need rounded bucket edges (see the field comment)."""
        if value % 3:
            raise ValueError(
                f"lookback_days={value} must be divisible by 3: the seasonal rule uses three "
                "buckets of exactly lookback_days/3 days"
            )
        return value

    @field_validator(
        "high_spender_percentile",
        "frequent_purchases_per_week",
        "weekend_share",
        "category_share",
        "seasonal_ratio",
    )
    @classmethod
    def _short_decimal(cls, value: float) -> float:
        """Keep the exact-fraction comparisons inside integer range (see _MAX_DECIMALS)."""
        exponent = Decimal(repr(value)).as_tuple().exponent
        if isinstance(exponent, int) and -exponent > _MAX_DECIMALS:
            raise ValueError(f"{value!r} has more than {_MAX_DECIMALS} decimals")
        return value

    @property
    def bucket_days(self) -> int:
        """Length of one seasonal bucket in whole days (lookback / 3, exact)."""
        return self.lookback_days // 3

    def percentile_fraction(self) -> Fraction:
        """The percentile as the exact fraction of its decimal form (0.8 -> 4/5)."""
        return exact_fraction(self.high_spender_percentile)
