"""compute_profiles against a deliberately simple reference written with plain Python loops.

The reference reads DESIGN.md's rules literally: datetime comparisons for the window and
buckets, ``datetime.weekday()`` for weekends, ``Fraction`` for the percentile rank, sorted
lists for ties. It shares no code with the transform, so agreement on random small data
(boundary-heavy timestamps, refunds, zeros, missing categories/locations, history summaries,
random thresholds, hourly as_of_end) is evidence that both say what the rules say.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.columns import STAGED_TRANSACTION_SCHEMA
from transforms.profiles import PURCHASE_HISTORY_SCHEMA, compute_profiles
from transforms.thresholds import PATTERNS, PatternThresholds

BASE_END = datetime(2024, 6, 3, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
US_PER_DAY = 86_400_000_000


# --------------------------------------------------------------------------- reference


@dataclass
class _User:
    first: datetime | None = None
    last: datetime | None = None
    count: int = 0
    weekend: int = 0
    buckets: list[int] = field(default_factory=lambda: [0, 0, 0])
    categories: dict[str, int] = field(default_factory=dict)
    locations: set[str] = field(default_factory=set)
    unknown_location: bool = False
    refunds: int = 0
    refund_cents: int = 0
    zeros: int = 0


def _exact(threshold: float) -> Fraction:
    """A threshold as the decimal the operator wrote (0.7 is 7/10)."""
    return Fraction(repr(threshold))


def _cents_money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _us(delta: timedelta) -> int:
    return delta // ONE_US


def _accumulate(
    rows: list[dict[str, Any]], history: list[dict[str, Any]], end: datetime, t: PatternThresholds
) -> dict[int, _User]:
    start = end - timedelta(days=t.lookback_days)
    third = timedelta(days=t.lookback_days) / 3
    edges = [start + third, start + 2 * third]
    users: dict[int, _User] = {}
    for row in rows:
        at, cents = row["occurred_at"], row["amount_cents"]
        if at >= end:
            continue
        user = users.setdefault(row["user_id"], _User())
        if cents > 0:
            user.first = at if user.first is None else min(user.first, at)
            user.last = at if user.last is None else max(user.last, at)
        if at < start:
            continue
        if cents < 0:
            user.refunds += 1
            user.refund_cents += cents
        elif cents == 0:
            user.zeros += 1
        else:
            user.count += 1
            user.weekend += at.weekday() >= 5
            bucket = 0 if at < edges[0] else 1 if at < edges[1] else 2
            user.buckets[bucket] += cents
            if row.get("category") is not None:
                category = row["category"]
                user.categories[category] = user.categories.get(category, 0) + cents
            if row.get("location_id") is None:
                user.unknown_location = True
            else:
                user.locations.add(row["location_id"])
    for summary in history:
        if summary["first_purchase_at"] >= end:
            continue
        user = users.setdefault(summary["user_id"], _User())
        first, last = summary["first_purchase_at"], summary["last_purchase_at"]
        user.first = first if user.first is None else min(user.first, first)
        user.last = last if user.last is None else max(user.last, last)
    return {uid: u for uid, u in users.items() if u.first is not None}


def _min_rank_score(values: list[Any], value: Any) -> int:
    rank = 1 + sum(1 for v in values if v < value)
    return 1 + (5 * (rank - 1)) // len(values)


def reference_profiles(
    rows: list[dict[str, Any]], history: list[dict[str, Any]], end: datetime, t: PatternThresholds
) -> dict[int, dict[str, Any]]:
    """Profiles keyed by user id, every column as a plain Python value."""
    users = _accumulate(rows, history, end, t)
    start = end - timedelta(days=t.lookback_days)
    positive = sorted(sum(u.buckets) for u in users.values() if sum(u.buckets) > 0)
    cut = None
    if positive:
        rank = math.ceil(Fraction(repr(t.high_spender_percentile)) * len(positive))
        cut = positive[rank - 1]
    lasts = [u.last for u in users.values()]
    counts = [u.count for u in users.values()]
    spends = [sum(u.buckets) for u in users.values()]
    out = {}
    for uid, u in users.items():
        out[uid] = _reference_row(u, end, start, t, cut)
        r = _min_rank_score(lasts, u.last)
        f = _min_rank_score(counts, u.count)
        m = _min_rank_score(spends, sum(u.buckets))
        out[uid].update(recency_score=r, frequency_score=f, monetary_score=m)
        out[uid]["rfm_segment"] = f"{r}{f}{m}"
    return out


def _reference_row(
    u: _User, end: datetime, start: datetime, t: PatternThresholds, cut: int | None
) -> dict[str, Any]:
    assert u.first is not None and u.last is not None
    spend = sum(u.buckets)
    weeks = max(_us(end - max(u.first, start)) / (7 * US_PER_DAY), 1.0)
    ppw = u.count / weeks
    weekend_share = u.weekend / u.count if u.count else None
    top = min(u.categories.items(), key=lambda kv: (-kv[1], kv[0])) if u.categories else None
    top_share = top[1] / spend if top else None
    ratio = max(u.buckets) / min(u.buckets) if min(u.buckets) > 0 else None
    days_last = _us(end - u.last) / US_PER_DAY
    days_first = _us(end - u.first) / US_PER_DAY
    enough = u.count >= t.min_purchases
    weeks_exact = Fraction(max(_us(end - max(u.first, start)), 7 * US_PER_DAY), 7 * US_PER_DAY)
    gate = {"purchases": u.count, "min_purchases": t.min_purchases}
    candidates: dict[str, tuple[bool, dict[str, Any]]] = {
        "high_spender": (
            cut is not None and spend > 0 and spend >= cut,
            {
                "metric": "total_spent",
                "value": float(_cents_money(spend)),
                "threshold": float(_cents_money(cut or 0)),
                "percentile": t.high_spender_percentile,
            },
        ),
        "frequent_shopper": (
            u.count / weeks_exact >= _exact(t.frequent_purchases_per_week),
            {"metric": "purchases_per_week", "value": ppw},
        ),
        "weekend_shopper": (
            enough and Fraction(u.weekend, u.count) >= _exact(t.weekend_share),
            {"metric": "weekend_share", "value": weekend_share, **gate},
        ),
        "category_focused": (
            enough and top is not None and Fraction(top[1], spend) >= _exact(t.category_share),
            {"metric": "top_category_share", "value": top_share, **gate},
        ),
        "location_clustered": (
            enough and not u.unknown_location and 1 <= len(u.locations) <= t.max_locations,
            {"metric": "distinct_locations", "value": len(u.locations), **gate},
        ),
        "new_shopper": (
            u.first >= end - timedelta(days=t.new_shopper_days),
            {"metric": "days_since_first_purchase", "value": days_first},
        ),
        "inactive": (
            u.last < end - timedelta(days=t.inactive_days),
            {"metric": "days_since_last_purchase", "value": days_last},
        ),
        "seasonal_spender": (
            min(u.buckets) > 0
            and Fraction(max(u.buckets), min(u.buckets)) >= _exact(t.seasonal_ratio),
            {"metric": "seasonal_ratio", "value": ratio},
        ),
    }
    thresholds = {
        "high_spender": None,
        "frequent_shopper": t.frequent_purchases_per_week,
        "weekend_shopper": t.weekend_share,
        "category_focused": t.category_share,
        "location_clustered": t.max_locations,
        "new_shopper": t.new_shopper_days,
        "inactive": t.inactive_days,
        "seasonal_spender": t.seasonal_ratio,
    }
    detected = [p for p in PATTERNS if candidates[p][0]]
    evidence = {}
    for p in detected:
        ev = dict(candidates[p][1])
        if thresholds[p] is not None:
            ev["threshold"] = thresholds[p]
        evidence[p] = ev
    return {
        "total_spent": _cents_money(spend),
        "transaction_count": u.count,
        "observed_weeks": weeks,
        "purchases_per_week": ppw,
        "weekend_share": weekend_share,
        "top_category": top[0] if top else None,
        "top_category_share": top_share,
        "distinct_locations": len(u.locations),
        "first_purchase_at": u.first,
        "last_purchase_at": u.last,
        "days_since_last_purchase": days_last,
        "spend_bucket_1": _cents_money(u.buckets[0]),
        "spend_bucket_2": _cents_money(u.buckets[1]),
        "spend_bucket_3": _cents_money(u.buckets[2]),
        "seasonal_ratio": ratio,
        "refund_count": u.refunds,
        "refund_amount": _cents_money(-u.refund_cents),
        "zero_amount_count": u.zeros,
        "net_spend": _cents_money(spend + u.refund_cents),
        "detected_patterns": detected,
        "evidence": evidence,
    }


# --------------------------------------------------------------------------- strategies


THRESHOLDS = st.builds(
    PatternThresholds,
    lookback_days=st.sampled_from([90, 30, 9]),
    high_spender_percentile=st.sampled_from([0.8, 0.5, 1.0, 0.7, 0.25]),
    frequent_purchases_per_week=st.sampled_from([2.0, 1.0, 0.5]),
    weekend_share=st.sampled_from([0.7, 0.5, 1.0]),
    category_share=st.sampled_from([0.5, 0.6, 1.0]),
    max_locations=st.sampled_from([2, 1, 3]),
    min_purchases=st.sampled_from([3, 1, 2]),
    new_shopper_days=st.sampled_from([30, 10]),
    inactive_days=st.sampled_from([30, 10]),
    seasonal_ratio=st.sampled_from([3.0, 1.0, 1.5]),
)


def _offsets(lookback_days: int) -> st.SearchStrategy[timedelta]:
    """How long before as_of_end a row happened: boundary-heavy, sometimes random."""
    day = timedelta(days=1)
    lookback = lookback_days * day
    marks = [lookback, lookback * 2 / 3, lookback / 3, 30 * day, 10 * day, 7 * day, 1 * day]
    exact = [m + d for m in marks for d in (-ONE_US, timedelta(0), ONE_US)]
    exact += [timedelta(0), ONE_US, -ONE_US, timedelta(seconds=1), lookback + 40 * day]
    anywhere = st.integers(-2 * US_PER_DAY, (lookback_days + 50) * US_PER_DAY).map(
        lambda us: timedelta(microseconds=us)
    )
    return st.one_of(st.sampled_from(exact), anywhere)


AMOUNTS = st.one_of(
    st.sampled_from([-300, -1, 0, 1, 50, 100, 150, 200, 300, 1000]),
    st.integers(-500, 5000),
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    t = draw(THRESHOLDS)
    end = BASE_END + timedelta(hours=draw(st.sampled_from([0, 5, 13])))
    # half of the scenarios use only -100/0/100 so that ties (top category, spends, ranks)
    # are common rather than rare
    amounts = draw(st.sampled_from([AMOUNTS, st.sampled_from([-100, 0, 100, 100, 100])]))
    row = st.fixed_dictionaries(
        {
            "user_id": st.integers(1, 6),
            "amount_cents": amounts,
            "before_end": _offsets(t.lookback_days),
            "category": st.sampled_from([None, "a", "b", "B", "c"]),
            "location_id": st.sampled_from([None, "x", "y", "z"]),
        }
    )
    rows = []
    for i, r in enumerate(draw(st.lists(row, max_size=40))):
        at = end - r.pop("before_end")
        rows.append({"transaction_id": f"t{i}", "occurred_at": at, **r})
    history = []
    for uid in draw(st.sets(st.integers(1, 8), max_size=4)):
        before = draw(st.integers(1, 200 * US_PER_DAY))
        span = draw(st.integers(0, before - 1))
        last = end - timedelta(microseconds=before - span)
        history.append(
            {
                "user_id": uid,
                "first_purchase_at": end - timedelta(microseconds=before),
                "last_purchase_at": last,
            }
        )
    drop = draw(st.sampled_from([(), ("category",), ("location_id",), ("category", "location_id")]))
    return {"t": t, "end": end, "rows": rows, "history": history, "drop": drop}


def _transform(scenario: dict[str, Any]) -> pl.DataFrame:
    frame = pl.DataFrame(
        [{**r, "currency": "USD", "merchant_id": None} for r in scenario["rows"]],
        schema=STAGED_TRANSACTION_SCHEMA,
        orient="row",
    ).drop(*scenario["drop"])
    history = pl.DataFrame(scenario["history"], schema=PURCHASE_HISTORY_SCHEMA, orient="row")
    return compute_profiles(
        frame.lazy(),
        as_of_end=scenario["end"],
        thresholds=scenario["t"],
        history=history.lazy() if scenario["history"] else None,
    )


def _expected(scenario: dict[str, Any]) -> dict[int, dict[str, Any]]:
    rows = [{**r, **{column: None for column in scenario["drop"]}} for r in scenario["rows"]]
    return reference_profiles(rows, scenario["history"], scenario["end"], scenario["t"])


# --------------------------------------------------------------------------- properties


def _same(got: Any, want: Any) -> bool:
    """Exact for everything but floats: Float64 figures are display values (a scalar
    division in Polars may land one ulp away from Python's); decisions are exact."""
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(got, want, rel_tol=1e-12, abs_tol=0.0)
    return bool(got == want)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_matches_reference(scenario: dict[str, Any]) -> None:
    actual = {row["user_id"]: row for row in _transform(scenario).iter_rows(named=True)}
    expected = _expected(scenario)
    assert set(actual) == set(expected)
    for uid, want in expected.items():
        got = actual[uid]
        want_evidence = want.pop("evidence")
        got_evidence = json.loads(got["pattern_evidence"])
        assert list(got_evidence) == list(want_evidence), uid
        for pattern, figures in want_evidence.items():
            assert set(got_evidence[pattern]) == set(figures), (uid, pattern)
            for key, value in figures.items():
                assert _same(got_evidence[pattern][key], value), (uid, pattern, key)
        for column, value in want.items():
            assert _same(got[column], value), (uid, column, got[column], value)
        assert got["as_of_end"] == scenario["end"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), st.randoms(use_true_random=False))
def test_row_order_never_matters(scenario: dict[str, Any], rnd: Any) -> None:
    expected = _transform(scenario)
    shuffled = dict(scenario, rows=list(scenario["rows"]))
    rnd.shuffle(shuffled["rows"])
    assert _transform(shuffled).equals(expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_summary_of_older_rows_equals_passing_them(scenario: dict[str, Any]) -> None:
    """Replacing rows before the window by their per-user summary changes nothing."""
    start = scenario["end"] - timedelta(days=scenario["t"].lookback_days)
    older = [r for r in scenario["rows"] if r["occurred_at"] < start]
    summary: dict[int, dict[str, Any]] = {}
    for r in older:
        if r["amount_cents"] <= 0:
            continue
        s = summary.setdefault(
            r["user_id"],
            {
                "user_id": r["user_id"],
                "first_purchase_at": r["occurred_at"],
                "last_purchase_at": r["occurred_at"],
            },
        )
        s["first_purchase_at"] = min(s["first_purchase_at"], r["occurred_at"])
        s["last_purchase_at"] = max(s["last_purchase_at"], r["occurred_at"])
    everything = dict(scenario, history=[])
    summarized = dict(
        scenario,
        rows=[r for r in scenario["rows"] if r["occurred_at"] >= start],
        history=list(summary.values()),
    )
    assert _transform(summarized).equals(_transform(everything))
