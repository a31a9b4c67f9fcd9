"""Behavioural profiles: one row per user per ``as_of`` day, with the eight patterns and RFM.

A pure Polars transform (no Dagster): the asset reads the staged Parquet partitions of the
window, calls :func:`compute_profiles` and writes the result. ``docs/patterns.md`` states
the exact semantics; the thresholds and their tie/edge decisions live in
:class:`transforms.thresholds.PatternThresholds`.

How first/last purchase *ever* stay exact without rescanning all history
-------------------------------------------------------------------------
``transactions`` only needs to hold the window ``[as_of_end - lookback, as_of_end)``.
Purchases before the window matter only through each user's first and last purchase
timestamps, so the caller passes them as ``history``: a tiny per-user summary
(:data:`PURCHASE_HISTORY_SCHEMA`, about 24 bytes a user) instead of every older partition.
Day D's summary is day D-1's merged with day D's partition
(:func:`merge_purchase_history` of :func:`summarize_purchase_history`), so the cost of
an hourly refresh stays "read the 90-day window" however long the history grows. A
summary may overlap the window (min/max are idempotent) but must hold nothing at or after
``as_of_end``. Rows of ``transactions`` before the window are also accepted and count only
toward first/last purchase, so passing *all* staged history with ``history=None`` is the
simple (slower) alternative.

Performance shape
-----------------
Everything is one lazy plan collected once on the streaming engine (measured in
``docs/benchmarks.md``). The window's rows are aggregated by three ``group_by`` passes whose
aggregations are plain sums/min/max/len/``n_unique`` on precomputed columns (the streaming
engine's fast path; a ``filter`` inside ``agg`` is much slower): purchases per user (counts,
buckets, weekend, first/last, distinct locations), (user, category) spend for the top
category, and refunds/zero rows (a 3 % slice). The two big hash tables are built one after
the other (:func:`_after`), which keeps peak memory near 600 MB for 10M rows instead of
~950 MB, for ~0.1 CPU-second. Everything after that works on one row per user.
Rules are decided on integers; the Float64 figures are for display (see
``_ratio_at_least``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import polars as pl

from transforms.columns import MONEY, UTC_DATETIME
from transforms.thresholds import PATTERNS, PatternThresholds, exact_fraction

_US_PER_DAY = 86_400_000_000
_US_PER_WEEK = 7 * _US_PER_DAY
# 1970-01-01 was a Thursday: (days since epoch + 3) mod 7 is 0 on Monday, 5-6 on weekends.
_EPOCH_WEEKDAY_SHIFT = 3
_ENGINE = "streaming"

# Per-user summary of purchases (amount > 0) carried from day to day, see module docstring.
PURCHASE_HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Int64(),
    "first_purchase_at": UTC_DATETIME,
    "last_purchase_at": UTC_DATETIME,
}

# The warehouse table contract of ``behavioral_profiles`` (names and order).
PROFILE_SCHEMA: dict[str, pl.DataType] = {
    "as_of_date": pl.Date(),
    "user_id": pl.Int64(),
    "total_spent": MONEY,
    "transaction_count": pl.Int32(),
    "observed_weeks": pl.Float64(),
    "purchases_per_week": pl.Float64(),
    "weekend_share": pl.Float64(),
    "top_category": pl.String(),
    "top_category_share": pl.Float64(),
    "distinct_locations": pl.Int32(),
    "first_purchase_at": UTC_DATETIME,
    "last_purchase_at": UTC_DATETIME,
    "days_since_last_purchase": pl.Float64(),
    "spend_bucket_1": MONEY,
    "spend_bucket_2": MONEY,
    "spend_bucket_3": MONEY,
    "seasonal_ratio": pl.Float64(),
    "refund_count": pl.Int32(),
    "refund_amount": MONEY,
    "zero_amount_count": pl.Int32(),
    "net_spend": MONEY,
    "recency_score": pl.Int8(),
    "frequency_score": pl.Int8(),
    "monetary_score": pl.Int8(),
    "rfm_segment": pl.String(),
    "detected_patterns": pl.List(pl.String()),
    "pattern_evidence": pl.String(),
    "as_of_end": UTC_DATETIME,
}

_INPUT_COLUMNS = ("user_id", "amount_cents", "occurred_at", "category", "location_id")


@dataclass(frozen=True)
class _Window:
    """The window's edges, all UTC: ``[start, end)``, three buckets of ``bucket_us``."""

    start: datetime
    end: datetime
    bucket_us: int


def _as_utc(moment: datetime, name: str) -> datetime:
    """Aware datetimes are converted to UTC; a naive one is refused, never guessed."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {moment!r}")
    return moment.astimezone(UTC)


def _window(as_of_end: datetime, thresholds: PatternThresholds) -> _Window:
    """Window edges for ``as_of_end``; bucket length is exactly lookback/3 whole days."""
    end = _as_utc(as_of_end, "as_of_end")
    return _Window(
        start=end - timedelta(days=thresholds.lookback_days),
        end=end,
        bucket_us=thresholds.bucket_days * _US_PER_DAY,
    )


def default_as_of_date(as_of_end: datetime) -> date:
    """The partition day a window ending at ``as_of_end`` belongs to.

    It is the UTC date of the window's last microsecond: 00:00 of D+1 (a closed day)
    gives D, and an hourly refresh of today at 14:00 gives today.
    """
    return (_as_utc(as_of_end, "as_of_end") - timedelta(microseconds=1)).date()


# --------------------------------------------------------------------------------------
# history summaries
# --------------------------------------------------------------------------------------


def summarize_purchase_history(transactions: pl.LazyFrame, *, before: datetime) -> pl.LazyFrame:
    """Per-user first/last purchase among ``transactions`` strictly before ``before``."""
    cutoff = _as_utc(before, "before")
    return (
        transactions.filter((pl.col("amount_cents") > 0) & (pl.col("occurred_at") < cutoff))
        .group_by("user_id")
        .agg(
            first_purchase_at=pl.col("occurred_at").min(),
            last_purchase_at=pl.col("occurred_at").max(),
        )
    )


def merge_purchase_history(*summaries: pl.LazyFrame) -> pl.LazyFrame:
    """Combine summaries (e.g. day D-1's and day D's) into one: earliest first, latest last."""
    if not summaries:
        return pl.LazyFrame(schema=PURCHASE_HISTORY_SCHEMA)
    columns = list(PURCHASE_HISTORY_SCHEMA)
    return (
        pl.concat(
            [s.select(columns).cast(PURCHASE_HISTORY_SCHEMA) for s in summaries],  # type: ignore[arg-type]
            how="vertical",
        )
        .group_by("user_id")
        .agg(pl.col("first_purchase_at").min(), pl.col("last_purchase_at").max())
    )


# --------------------------------------------------------------------------------------
# per-user aggregation passes over the transactions
# --------------------------------------------------------------------------------------


def _input_rows(transactions: pl.LazyFrame, window: _Window) -> pl.LazyFrame:
    """The five columns the profile needs, before ``as_of_end``.

    Exports without category or location still profile: a missing column is added as
    all-null, which simply leaves the patterns that need it unassigned.
    """
    present = transactions.collect_schema().names()
    missing = [
        pl.lit(None, dtype=pl.String()).alias(name)
        for name in ("category", "location_id")
        if name not in present
    ]
    rows = transactions.with_columns(missing) if missing else transactions
    return rows.select(_INPUT_COLUMNS).filter(pl.col("occurred_at") < window.end)


def _window_purchases(rows: pl.LazyFrame, window: _Window) -> pl.LazyFrame:
    """Purchases (amount > 0) inside ``[start, end)``: what every rule counts."""
    return rows.filter((pl.col("amount_cents") > 0) & (pl.col("occurred_at") >= window.start))


def _window_pass(rows: pl.LazyFrame, window: _Window) -> pl.LazyFrame:
    """One group_by over the window's purchases: first/last, count, weekend count, bucket
    spends and distinct locations.

    Window spend is not aggregated separately: every window purchase falls in exactly one
    bucket, so ``total = bucket_1 + bucket_2 + bucket_3``. The location is
    dictionary-encoded first: ``n_unique`` over UInt32 codes is several times cheaper than
    over strings, and doing it here instead of in a pass of its own saves a 10M-row hash
    pass. ``n_unique`` counts null (unknown location) as one value, hence the correction.
    """
    amount = pl.col("amount_cents")
    at_us = pl.col("occurred_at").dt.epoch("us")
    bucket = (at_us - _epoch_us(window.start)) // window.bucket_us  # 0, 1, 2
    weekday = (at_us // _US_PER_DAY + _EPOCH_WEEKDAY_SHIFT) % 7  # 0 = Monday, UTC
    location = pl.col("_location")
    return (
        _window_purchases(rows, window)
        .with_columns(
            _weekend=weekday >= 5,
            _b1=pl.when(bucket == 0).then(amount).otherwise(0),
            _b2=pl.when(bucket == 1).then(amount).otherwise(0),
            _b3=pl.when(bucket == 2).then(amount).otherwise(0),
            _location=pl.col("location_id").cast(pl.Categorical()).to_physical(),
        )
        .group_by("user_id")
        .agg(
            window_first_at=pl.col("occurred_at").min(),
            window_last_at=pl.col("occurred_at").max(),
            transaction_count=pl.len(),
            weekend_count=pl.col("_weekend").sum(),
            b1_cents=pl.col("_b1").sum(),
            b2_cents=pl.col("_b2").sum(),
            b3_cents=pl.col("_b3").sum(),
            _values=location.n_unique(),
            _unknown=location.null_count(),
        )
        .with_columns(
            distinct_locations=pl.col("_values") - (pl.col("_unknown") > 0).cast(pl.UInt32),
            unknown_location=pl.col("_unknown") > 0,
        )
        .drop("_values", "_unknown")
    )


def _earlier_purchases(rows: pl.LazyFrame, window: _Window) -> pl.LazyFrame:
    """First/last purchase among rows before the window (the ``history=None`` mode).

    When the caller passes only the window's partitions, the Parquet row-group statistics
    rule every file out and this costs nothing.
    """
    return summarize_purchase_history(
        rows.filter(pl.col("occurred_at") < window.start), before=window.start
    )


def _after(frame: pl.LazyFrame, barrier: pl.LazyFrame) -> pl.LazyFrame:
    """``frame``, streamed only once ``barrier`` is complete.

    A cross join with a one-row summary of ``barrier`` makes the engine finish ``barrier``
    first. The purchase and the (user, category) aggregations are the plan's two big hash
    tables: side by side they peaked at ~960 MB RSS on 10M rows, one after the other at
    ~620 MB, for about 0.1 CPU-second. ``barrier`` is computed once (the plan caches it).
    """
    gate = barrier.select(pl.len().alias("_barrier"))
    return frame.join(gate, how="cross").drop("_barrier")


def _top_category_pass(
    rows: pl.LazyFrame, window: _Window, after: pl.LazyFrame | None = None
) -> pl.LazyFrame:
    """Per user, the category with the highest window purchase spend.

    Ties: highest spend first, then the smallest category name (byte order), so the
    result does not depend on row order. Purchases without a category cannot be top.
    Selecting the winner with a filtered ``min`` inside one group_by measured cheaper than
    sorting the (user, category) rows or joining the per-user maximum back. The key is
    Categorical (UInt32 codes, ordered by name in Polars >= 1.32): the ~2M (user, category)
    groups then hold no strings, which cut this pass's peak memory by a quarter.
    """
    purchases = (
        _window_purchases(rows, window)
        .filter(pl.col("category").is_not_null())
        .select("user_id", "amount_cents", pl.col("category").cast(pl.Categorical()))
    )
    if after is not None:
        purchases = _after(purchases, after)
    cents = pl.col("category_cents")
    return (
        purchases.group_by("user_id", "category")
        .agg(category_cents=pl.col("amount_cents").sum())
        .group_by("user_id")
        .agg(
            top_category=pl.col("category").filter(cents == cents.max()).min(),
            top_category_cents=cents.max(),
        )
    )


def _refund_pass(rows: pl.LazyFrame, window: _Window) -> pl.LazyFrame:
    """Refunds (amount < 0) and zero-amount rows in the window, reported, never ruled on."""
    amount = pl.col("amount_cents")
    return (
        rows.filter((amount <= 0) & (pl.col("occurred_at") >= window.start))
        .with_columns(_refund=amount < 0, _zero=amount == 0)
        .group_by("user_id")
        .agg(
            refund_count=pl.col("_refund").sum(),
            refund_cents=amount.sum(),  # zero rows add 0
            zero_amount_count=pl.col("_zero").sum(),
        )
    )


def _profiled_users(
    window_purchases: pl.LazyFrame, earlier: list[pl.LazyFrame], window: _Window
) -> pl.LazyFrame:
    """Users with a purchase before ``as_of_end``, with exact first/last purchase ever:
    the window's own first/last combined with the summaries of earlier purchases."""
    summary = merge_purchase_history(*earlier).filter(pl.col("first_purchase_at") < window.end)
    return (
        window_purchases.join(summary, on="user_id", how="full", coalesce=True)
        .with_columns(
            first_purchase_at=pl.min_horizontal("first_purchase_at", "window_first_at"),
            last_purchase_at=pl.max_horizontal("last_purchase_at", "window_last_at"),
        )
        .drop("window_first_at", "window_last_at")
    )


# --------------------------------------------------------------------------------------
# figures, rules, scores, evidence
# --------------------------------------------------------------------------------------


def _epoch_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime, exactly (no float)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _us_before_end(column: str, window: _Window) -> pl.Expr:
    """Exact microseconds between ``column`` and ``as_of_end`` (Int64)."""
    return _epoch_us(window.end) - pl.col(column).dt.epoch("us")


def _figures(window: _Window) -> list[pl.Expr]:
    """Per-user figures shown next to the rules (the rules themselves use exact integers)."""
    count = pl.col("transaction_count")
    total = pl.col("b1_cents") + pl.col("b2_cents") + pl.col("b3_cents")
    buckets = ["b1_cents", "b2_cents", "b3_cents"]
    observed_from = pl.max_horizontal(pl.col("first_purchase_at"), pl.lit(window.start))
    observed_us = _epoch_us(window.end) - observed_from.dt.epoch("us")
    return [
        total.alias("total_cents"),
        observed_us.alias("_observed_us"),
        pl.max_horizontal(observed_us / _US_PER_WEEK, pl.lit(1.0)).alias("observed_weeks"),
        pl.when(count > 0).then(pl.col("weekend_count") / count).alias("weekend_share"),
        (_us_before_end("last_purchase_at", window) / _US_PER_DAY).alias(
            "days_since_last_purchase"
        ),
        (_us_before_end("first_purchase_at", window) / _US_PER_DAY).alias(
            "days_since_first_purchase"
        ),
        pl.when(pl.min_horizontal(buckets) > 0)
        .then(pl.max_horizontal(buckets) / pl.min_horizontal(buckets))
        .alias("seasonal_ratio"),
    ]


def _second_figures() -> list[pl.Expr]:
    """Figures that depend on the first ones (Polars cannot reuse a sibling alias)."""
    total = pl.col("total_cents")
    return [
        (pl.col("transaction_count") / pl.col("observed_weeks")).alias("purchases_per_week"),
        pl.when(pl.col("top_category").is_not_null() & (total > 0))
        .then(pl.col("top_category_cents") / total)
        .alias("top_category_share"),
    ]


def _high_spender_rule(thresholds: PatternThresholds) -> pl.Expr:
    """Nearest rank: spend >= the value at ascending rank ceil(p*n) among spend > 0.

    Rank-free form: ``s >= s_(k)`` iff at least k positive spends are ``<= s``, i.e.
    ``rank_max(s) among positives >= ceil(p*n)``, and for an integer rank that is
    ``rank * den >= num * n`` with ``p = num/den`` exactly. No float, no sort gather.
    """
    p = thresholds.percentile_fraction()
    total = pl.col("total_cents")
    positive = total > 0
    n_positive = positive.cast(pl.Int64).sum()
    rank_among_positive = total.rank("max").cast(pl.Int64) - (~positive).cast(pl.Int64).sum()
    return positive & (rank_among_positive * p.denominator >= n_positive * p.numerator)


def _ratio_at_least(numerator: pl.Expr, denominator: pl.Expr, threshold: float) -> pl.Expr:
    """``numerator / denominator >= threshold`` decided exactly, in Int128 integers.

    Polars divides by a scalar through its reciprocal, so a Float64 figure can sit one ulp
    off the true ratio (20 / 10 weeks may print as 1.9999999999999998): comparing floats
    could flip a user exactly on a threshold. The threshold is the exact fraction of its
    decimal form (at most 6 decimals, see PatternThresholds), the denominator is positive.
    """
    exact = exact_fraction(threshold)
    return numerator.cast(pl.Int128) * exact.denominator >= (
        denominator.cast(pl.Int128) * exact.numerator
    )


def _pattern_rules(window: _Window, thresholds: PatternThresholds) -> dict[str, pl.Expr]:
    """Boolean rule per pattern, in PATTERNS order (null-safe: null means not assigned).

    Every rule is decided on exact integers (cents, counts, microseconds); the Float64
    figures written next to them are for people and may differ in the last ulp.
    """
    t = thresholds
    count = pl.col("transaction_count")
    enough = count >= t.min_purchases
    buckets = ["b1_cents", "b2_cents", "b3_cents"]
    smallest_bucket = pl.min_horizontal(buckets)
    new_since = _epoch_us(window.end - timedelta(days=t.new_shopper_days))
    inactive_before = _epoch_us(window.end - timedelta(days=t.inactive_days))
    rules = {
        "high_spender": _high_spender_rule(t),
        # purchases / (max(observed_us, 1 week) / 1 week) >= threshold
        "frequent_shopper": _ratio_at_least(
            count.cast(pl.Int128) * _US_PER_WEEK,
            pl.max_horizontal(pl.col("_observed_us"), pl.lit(_US_PER_WEEK)),
            t.frequent_purchases_per_week,
        ),
        "weekend_shopper": enough
        & _ratio_at_least(pl.col("weekend_count"), count, t.weekend_share),
        "category_focused": enough
        & pl.col("top_category").is_not_null()
        & _ratio_at_least(pl.col("top_category_cents"), pl.col("total_cents"), t.category_share),
        "location_clustered": enough
        & ~pl.col("unknown_location")
        & pl.col("distinct_locations").is_between(1, t.max_locations),
        "new_shopper": pl.col("first_purchase_at").dt.epoch("us") >= new_since,
        "inactive": pl.col("last_purchase_at").dt.epoch("us") < inactive_before,
        "seasonal_spender": (smallest_bucket > 0)
        & _ratio_at_least(pl.max_horizontal(buckets), smallest_bucket, t.seasonal_ratio),
    }
    assert tuple(rules) == PATTERNS
    return {name: rule.fill_null(False).alias(f"_is_{name}") for name, rule in rules.items()}


def _quintile(expr: pl.Expr) -> pl.Expr:
    """1-5 score from the ascending min-rank r among all n profiled users.

    ``score = 1 + floor(5 * (r - 1) / n)``: ties share the lowest rank of their group, so
    equal values always get the same score whatever the row order (a large tie, e.g. all
    users with no window purchase, can make a score value unused).
    """
    rank = expr.rank("min").cast(pl.Int64)
    return (1 + (5 * (rank - 1)) // pl.len()).cast(pl.Int8)


def _scores() -> list[pl.Expr]:
    """RFM: recency by last purchase (latest = 5), frequency by window purchase count,
    monetary by window purchase spend."""
    recency = _quintile(pl.col("last_purchase_at")).alias("recency_score")
    frequency = _quintile(pl.col("transaction_count")).alias("frequency_score")
    monetary = _quintile(pl.col("total_cents")).alias("monetary_score")
    return [recency, frequency, monetary]


def _json_number(value: float | int) -> str:
    """A Python number as JSON text (repr of a finite float is valid JSON)."""
    return repr(value)


def _money_text(cents: pl.Expr) -> pl.Expr:
    """Non-negative integer cents as an exact decimal JSON number, e.g. 1234.05."""
    return pl.concat_str(
        (cents // 100).cast(pl.String),
        pl.lit("."),
        (cents % 100).cast(pl.String).str.zfill(2),
    )


def _evidence_parts(thresholds: PatternThresholds) -> dict[str, list[pl.Expr | str]]:
    """Per pattern, the JSON members: the figure decided on and its threshold.

    Each figure is masked to the users carrying the pattern *before* it is formatted:
    ``when(flag).then(x).cast(String)`` formats only those rows (formatting floats is the
    expensive part), and a null piece makes the whole member null, i.e. left out.
    """
    t = thresholds
    min_purchases = _json_number(t.min_purchases)
    cut = pl.col("total_cents").filter(pl.col("_is_high_spender")).min()

    def shown(pattern: str, value: pl.Expr) -> pl.Expr:
        return pl.when(pl.col(f"_is_{pattern}")).then(value)

    def gated(pattern: str, metric: str, threshold: float | int) -> list[pl.Expr | str]:
        return [
            f'"metric":"{metric}","value":',
            shown(pattern, pl.col(metric)).cast(pl.String),
            f',"threshold":{_json_number(threshold)},"purchases":',
            shown(pattern, pl.col("transaction_count")).cast(pl.String),
            f',"min_purchases":{min_purchases}',
        ]

    def simple(pattern: str, metric: str, threshold: float | int) -> list[pl.Expr | str]:
        return [
            f'"metric":"{metric}","value":',
            shown(pattern, pl.col(metric)).cast(pl.String),
            f',"threshold":{_json_number(threshold)}',
        ]

    return {
        "high_spender": [
            '"metric":"total_spent","value":',
            _money_text(shown("high_spender", pl.col("total_cents"))),
            ',"threshold":',
            _money_text(cut),
            f',"percentile":{_json_number(t.high_spender_percentile)}',
        ],
        "frequent_shopper": simple(
            "frequent_shopper", "purchases_per_week", t.frequent_purchases_per_week
        ),
        "weekend_shopper": gated("weekend_shopper", "weekend_share", t.weekend_share),
        "category_focused": gated("category_focused", "top_category_share", t.category_share),
        "location_clustered": gated("location_clustered", "distinct_locations", t.max_locations),
        "new_shopper": simple("new_shopper", "days_since_first_purchase", t.new_shopper_days),
        "inactive": simple("inactive", "days_since_last_purchase", t.inactive_days),
        "seasonal_spender": simple("seasonal_spender", "seasonal_ratio", t.seasonal_ratio),
    }


def _merged_literals(parts: list[pl.Expr | str]) -> list[pl.Expr]:
    """Adjacent literal strings joined into one ``lit``: fewer pieces for concat_str."""
    merged: list[pl.Expr | str] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return [pl.lit(p) if isinstance(p, str) else p for p in merged]


def _detected_lists() -> pl.Series:
    """The 256 possible ``detected_patterns`` lists, indexed by the bit mask of flags."""
    lists = [
        [name for bit, name in enumerate(PATTERNS) if mask >> bit & 1]
        for mask in range(1 << len(PATTERNS))
    ]
    return pl.Series("detected_patterns", lists, dtype=pl.List(pl.String()))


def _pattern_outputs(thresholds: PatternThresholds) -> list[pl.Expr]:
    """``detected_patterns`` (PATTERNS order) and ``pattern_evidence`` (a JSON object).

    The list is gathered from the 256 precomputed lists by the flags' bit mask: building it
    with ``concat_list`` + ``drop_nulls`` cost 60x more (about 1 CPU-second per 500k users).
    """
    flags = {name: pl.col(f"_is_{name}") for name in PATTERNS}
    mask = pl.sum_horizontal(
        [flag.cast(pl.UInt16) * (1 << bit) for bit, flag in enumerate(flags.values())]
    )
    detected = pl.lit(_detected_lists()).gather(mask)
    members = []
    for name, parts in _evidence_parts(thresholds).items():
        members.append(pl.concat_str(_merged_literals([f'"{name}":{{', *parts, "}"])))
    evidence = pl.concat_str(
        [pl.lit("{"), pl.concat_str(members, separator=",", ignore_nulls=True), pl.lit("}")]
    )
    return [detected.alias("detected_patterns"), evidence.alias("pattern_evidence")]


def _cents_to_money(cents: pl.Expr) -> pl.Expr:
    """Exact integer cents -> Decimal(20,2) (multiplying by 0.01 in Decimal, never float)."""
    return (cents.cast(pl.Decimal(38, 2)) * pl.lit(Decimal("0.01"))).cast(MONEY)


def _output_columns(window: _Window, as_of_date: date) -> list[pl.Expr]:
    """The warehouse contract, in PROFILE_SCHEMA order and types."""
    c = pl.col
    int32 = pl.Int32()
    exprs = {
        "as_of_date": pl.lit(as_of_date, dtype=pl.Date()),
        "user_id": c("user_id"),
        "total_spent": _cents_to_money(c("total_cents")),
        "transaction_count": c("transaction_count").cast(int32),
        "observed_weeks": c("observed_weeks"),
        "purchases_per_week": c("purchases_per_week"),
        "weekend_share": c("weekend_share"),
        "top_category": c("top_category"),
        "top_category_share": c("top_category_share"),
        "distinct_locations": c("distinct_locations").cast(int32),
        "first_purchase_at": c("first_purchase_at"),
        "last_purchase_at": c("last_purchase_at"),
        "days_since_last_purchase": c("days_since_last_purchase"),
        "spend_bucket_1": _cents_to_money(c("b1_cents")),
        "spend_bucket_2": _cents_to_money(c("b2_cents")),
        "spend_bucket_3": _cents_to_money(c("b3_cents")),
        "seasonal_ratio": c("seasonal_ratio"),
        "refund_count": c("refund_count").cast(int32),
        "refund_amount": _cents_to_money(-c("refund_cents")),
        "zero_amount_count": c("zero_amount_count").cast(int32),
        "net_spend": _cents_to_money(c("total_cents") + c("refund_cents")),
        "recency_score": c("recency_score"),
        "frequency_score": c("frequency_score"),
        "monetary_score": c("monetary_score"),
        "rfm_segment": pl.concat_str("recency_score", "frequency_score", "monetary_score"),
        "detected_patterns": c("detected_patterns"),
        "pattern_evidence": c("pattern_evidence"),
        "as_of_end": pl.lit(window.end, dtype=UTC_DATETIME),
    }
    assert tuple(exprs) == tuple(PROFILE_SCHEMA)
    return [expr.cast(PROFILE_SCHEMA[name]).alias(name) for name, expr in exprs.items()]


_ZERO_FILLS = {
    "transaction_count": 0,
    "weekend_count": 0,
    "b1_cents": 0,
    "b2_cents": 0,
    "b3_cents": 0,
    "distinct_locations": 0,
    "unknown_location": False,
    "refund_count": 0,
    "refund_cents": 0,
    "zero_amount_count": 0,
}


def profile_plan(
    transactions: pl.LazyFrame,
    *,
    as_of_end: datetime,
    thresholds: PatternThresholds,
    history: pl.LazyFrame | None = None,
    as_of_date: date | None = None,
) -> pl.LazyFrame:
    """The lazy plan behind :func:`compute_profiles` (for ``explain()`` and embedding)."""
    window = _window(as_of_end, thresholds)
    day = as_of_date if as_of_date is not None else default_as_of_date(window.end)
    rows = _input_rows(transactions, window)
    purchases = _window_pass(rows, window)
    earlier = [_earlier_purchases(rows, window)]
    if history is not None:
        earlier.append(history)
    users = _profiled_users(purchases, earlier, window)
    return (
        users.join(_top_category_pass(rows, window, after=purchases), on="user_id", how="left")
        .join(_refund_pass(rows, window), on="user_id", how="left")
        # sorted while the rows are still narrow numbers: later steps keep the order
        .sort("user_id")
        .with_columns(pl.col(name).fill_null(value) for name, value in _ZERO_FILLS.items())
        .with_columns(_figures(window))
        .with_columns(_second_figures())
        .with_columns(_scores())
        .with_columns(list(_pattern_rules(window, thresholds).values()))
        .with_columns(_pattern_outputs(thresholds))
        .select(_output_columns(window, day))
    )


def compute_profiles(
    transactions: pl.LazyFrame,
    *,
    as_of_end: datetime,
    thresholds: PatternThresholds,
    history: pl.LazyFrame | None = None,
    as_of_date: date | None = None,
) -> pl.DataFrame:
    """Behavioural profiles for the window ending at ``as_of_end``, one row per user.

    ``transactions``: staged rows (``STAGED_TRANSACTION_SCHEMA``) covering at least the
    window ``[as_of_end - lookback, as_of_end)``; rows at/after ``as_of_end`` are ignored,
    rows before the window count only toward first/last purchase. ``category`` and
    ``location_id`` may be all-null or absent.

    ``history``: optional per-user purchase summary (``PURCHASE_HISTORY_SCHEMA``) of
    purchases before the window, so first/last purchase ever are exact without passing
    older partitions. With ``None``, ``transactions`` is taken as the whole history.

    ``as_of_date``: the partition day written in ``as_of_date``; defaults to
    :func:`default_as_of_date`.

    Returns a DataFrame with exactly ``PROFILE_SCHEMA``, sorted by ``user_id``: every user
    with a purchase (amount > 0) before ``as_of_end``. One ``collect`` (streaming engine).
    """
    plan = profile_plan(
        transactions,
        as_of_end=as_of_end,
        thresholds=thresholds,
        history=history,
        as_of_date=as_of_date,
    )
    return plan.collect(engine=_ENGINE)
