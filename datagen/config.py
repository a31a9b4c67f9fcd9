"""Configuration of the seeded demo data generator: one frozen object, every knob in one place.

The generated history covers the half-open day range ``[start_date, start_date + days)``. With no
``start_date`` the history ends with today (UTC), so a newcomer's demo has data for today's
partition; pass a fixed ``start_date`` whenever the output must be identical on another day
(tests, benchmarks, reproducing a bug).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "groceries",
    "dining",
    "fashion",
    "health_beauty",
    "home_garden",
    "entertainment",
    "electronics",
    "travel",
)


def default_start_date(days: int, today: date | None = None) -> date:
    """First day of a ``days``-long history whose last day is ``today`` (UTC by default)."""
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=days - 1)


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that decides the generated data; equal configs give identical frames.

    Shares are fractions of users. They are tuned so that, on the default demo (5,000 users,
    120 days), every behaviour pattern of DESIGN.md is carried by at least a few percent of the
    users on the last day, while the bulk of users stays unremarkable.
    """

    seed: int = 42
    users: int = 5_000
    days: int = 120
    # None means "end today": resolved in __post_init__, so the object always holds a real date.
    start_date: date | None = None
    # Mean purchases per user per calendar day of the history, all users included (new users
    # before signup and lapsed users after churn count as zero days). The expected number of
    # transactions is users * days * this: 0.33 gives ~200k rows for the default demo; the
    # 10M benchmark (500k users, 120 days) uses 1/6.
    transactions_per_user_per_day: float = 0.33
    # Deliberately broken rows appended to transactions, spread evenly over BROKEN_ROW_KINDS.
    broken_rows: int = 25
    categories: tuple[str, ...] = field(default=DEFAULT_CATEGORIES)
    locations: int = 40
    merchants: int = 400
    # Users who sign up during the history (the rest signed up in the two years before it).
    new_user_share: float = 0.20
    # Users who stop buying more than 30 days before the end of the history.
    lapsed_share: float = 0.12
    # Users who buy mostly on Saturdays and Sundays.
    weekend_share: float = 0.10
    # Users who put most purchases into one favourite category.
    category_focus_share: float = 0.35
    # Users who only ever shop at one or two home locations.
    location_cluster_share: float = 0.40
    # Users with one 30-day peak (more purchases, bigger baskets) inside the last 90 days.
    seasonal_share: float = 0.10
    refund_share: float = 0.02
    zero_amount_share: float = 0.0005

    def __post_init__(self) -> None:
        if self.start_date is None:
            object.__setattr__(self, "start_date", default_start_date(self.days))
        self._validate()

    def _validate(self) -> None:
        """Fail at construction, not deep inside numpy, when a knob is out of range."""
        if self.seed < 0:
            raise ValueError("seed must be >= 0 (numpy seed sequences take no negatives)")
        if self.users < 1 or self.days < 1:
            raise ValueError("users and days must be at least 1")
        if self.transactions_per_user_per_day < 0:
            raise ValueError("transactions_per_user_per_day must be >= 0")
        if self.broken_rows < 0:
            raise ValueError("broken_rows must be >= 0")
        if len(self.categories) < 2 or len(set(self.categories)) != len(self.categories):
            raise ValueError("categories must hold at least two distinct names")
        if self.locations < 2 or self.merchants < len(self.categories):
            raise ValueError("need >= 2 locations and >= one merchant per category")
        shares = (
            self.new_user_share,
            self.lapsed_share,
            self.weekend_share,
            self.category_focus_share,
            self.location_cluster_share,
            self.seasonal_share,
            self.refund_share,
            self.zero_amount_share,
        )
        if any(not 0.0 <= share <= 1.0 for share in shares):
            raise ValueError("every *_share must lie in [0, 1]")

    @property
    def first_day(self) -> date:
        """The resolved ``start_date`` (typed as a plain date for callers)."""
        assert self.start_date is not None  # resolved in __post_init__
        return self.start_date

    @property
    def end_date(self) -> date:
        """The first day after the history (exclusive end)."""
        return self.first_day + timedelta(days=self.days)

    @property
    def start_at(self) -> datetime:
        """Midnight UTC at the start of the history."""
        return datetime.combine(self.first_day, datetime.min.time(), tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        """Midnight UTC after the last day of the history (exclusive)."""
        return self.start_at + timedelta(days=self.days)

    @property
    def expected_transactions(self) -> int:
        """Expected number of clean transactions (the generated count is within a few %)."""
        return round(self.users * self.days * self.transactions_per_user_per_day)
