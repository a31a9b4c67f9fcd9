"""Audience rules: consent, frequency cap, one new campaign a day, deterministic holdout."""

from __future__ import annotations

import datetime as dt
import hashlib

import polars as pl
import pytest

from tests.test_campaign_helpers import D, campaign, campaigns
from transforms.audience import (
    AUDIENCE_SCHEMA,
    bucket_expr,
    build_audience,
    campaign_key,
    splitmix64,
    splitmix64_expr,
)
from transforms.campaign_config import PREDICTED_VALUE_TARGETING, CampaignConfig, ValueTarget

CONFIG = CampaignConfig()
START = D + dt.timedelta(days=1)
END = START + dt.timedelta(days=13)


def _profiles(patterns: dict[int, list[str]]) -> pl.DataFrame:
    return pl.DataFrame({"as_of_date": [D] * len(patterns), "user_id": list(patterns),
                         "detected_patterns": list(patterns.values())})


def _users(opt_in: dict[int, bool | None]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": list(opt_in), "marketing_opt_in": list(opt_in.values())},
                        schema={"user_id": pl.Int64, "marketing_opt_in": pl.Boolean})


def _recent(rows: list[tuple[str, int, dt.date, bool]]) -> pl.DataFrame:
    return pl.DataFrame(
        [(c, u, d, "weekend_shopper", h, 1) for c, u, d, h in rows],
        schema=AUDIENCE_SCHEMA, orient="row")


NO_RECENT = pl.DataFrame(schema=AUDIENCE_SCHEMA)


def _plan(*patterns: str, size: int = 1_000_000) -> pl.DataFrame:
    return campaigns(*[campaign(f"c-{p}", p, START, END, as_of_date=D, audience_size=size)
                       for p in patterns])


def _treated(audience: pl.DataFrame) -> set[int]:
    return set(audience.filter(~pl.col("is_holdout"))["user_id"])


def test_splitmix64_matches_its_published_first_output() -> None:
    # SplitMix64 seeded with 0 (Steele, Lea & Flood 2014) first returns 0xE220A8397B1DCDAF.
    assert splitmix64(0) == 0xE220A8397B1DCDAF


def test_polars_hash_equals_the_reference_arithmetic() -> None:
    values = [0, 1, 2, 12345, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
    got = pl.DataFrame({"x": values}, schema={"x": pl.UInt64}).select(
        splitmix64_expr(pl.col("x")))["x"].to_list()
    assert got == [splitmix64(v) for v in values]
    key = int.from_bytes(hashlib.blake2b(b"campaign-1", digest_size=8).digest(), "big")
    assert campaign_key("campaign-1") == key
    buckets = pl.DataFrame({"u": [1, 2, 3]}).select(
        bucket_expr(pl.col("u"), pl.lit(key, dtype=pl.UInt64)))["u"].to_list()
    assert buckets == [splitmix64(u ^ key) % 10_000 for u in (1, 2, 3)]


def test_opted_out_and_unknown_consent_are_never_targeted() -> None:
    profiles = _profiles({u: ["weekend_shopper"] for u in range(1, 301)})
    users = _users({u: (True if u % 3 == 0 else False if u % 3 == 1 else None)
                    for u in range(1, 301)})
    out = build_audience(_plan("weekend_shopper"), profiles, users, NO_RECENT, as_of_date=D,
                         config=CONFIG)
    assert set(out["user_id"]) == {u for u in range(1, 301) if u % 3 == 0}


def test_frequency_cap_counts_treated_campaigns_in_the_last_seven_days() -> None:
    profiles = _profiles({u: ["weekend_shopper"] for u in (1, 2, 3, 4)})
    users = _users({u: True for u in (1, 2, 3, 4)})
    recent = _recent([
        ("a", 1, D - dt.timedelta(days=1), False), ("b", 1, D - dt.timedelta(days=6), False),
        ("a", 2, D - dt.timedelta(days=1), False), ("b", 2, D - dt.timedelta(days=7), False),
        ("a", 3, D - dt.timedelta(days=1), False), ("b", 3, D - dt.timedelta(days=2), True),
        ("a", 4, D - dt.timedelta(days=1), False),
    ])
    config = CONFIG.model_copy(update={"holdout_share": 0.0})
    out = build_audience(_plan("weekend_shopper"), profiles, users, recent, as_of_date=D,
                         config=config)
    # 1: two treated campaigns on D-1 and D-6, a third on D would make 3 in [D-6, D].
    # 2: D-7 is outside the window; 3: a holdout row is not a message; 4: only one.
    assert set(out["user_id"]) == {2, 3, 4}


def test_one_new_campaign_per_user_per_day_by_pattern_priority() -> None:
    profiles = _profiles({1: ["weekend_shopper", "inactive"], 2: ["weekend_shopper"],
                          3: ["high_spender", "weekend_shopper", "inactive"]})
    users = _users({1: True, 2: True, 3: True})
    config = CONFIG.model_copy(update={"holdout_share": 0.0})
    out = build_audience(_plan("weekend_shopper", "inactive", "high_spender"), profiles, users,
                         NO_RECENT, as_of_date=D, config=config)
    assert out["user_id"].is_unique().all()
    chosen = dict(out.select("user_id", "target_pattern").rows())
    assert chosen == {1: "inactive", 2: "weekend_shopper", 3: "inactive"}
    rank = dict(out.select("user_id", "priority_rank").rows())
    assert rank[1] == config.audience_priority.index("inactive") + 1


def test_holdout_is_deterministic_and_ten_percent_of_100k_users() -> None:
    n = 100_000
    profiles = _profiles({u: ["weekend_shopper"] for u in range(1, n + 1)})
    users = _users({u: True for u in range(1, n + 1)})
    plan = _plan("weekend_shopper")
    first = build_audience(plan, profiles, users, NO_RECENT, as_of_date=D, config=CONFIG)
    shuffled = build_audience(plan, profiles.sample(fraction=1.0, shuffle=True, seed=1),
                              users.reverse(), NO_RECENT, as_of_date=D, config=CONFIG)
    assert first.height == n
    assert shuffled.equals(first)
    share = first["is_holdout"].mean()
    assert abs(share - 0.10) <= 0.01
    # The rule itself, recomputed: bucket < 1000 of 10,000.
    key = campaign_key("c-weekend_shopper")
    some = first.head(500)
    assert some["is_holdout"].to_list() == [splitmix64(u ^ key) % 10_000 < 1000
                                           for u in some["user_id"]]


def test_audience_respects_the_planned_size() -> None:
    profiles = _profiles({u: ["weekend_shopper"] for u in range(1, 1001)})
    users = _users({u: True for u in range(1, 1001)})
    out = build_audience(_plan("weekend_shopper", size=90), profiles, users, NO_RECENT,
                         as_of_date=D, config=CONFIG)
    assert out.filter(~pl.col("is_holdout")).height == 90
    assert out.filter(pl.col("is_holdout")).height == round(90 * 0.1 / 0.9)  # 10


def test_only_campaigns_planned_on_d_get_an_audience() -> None:
    profiles = _profiles({1: ["weekend_shopper"]})
    users = _users({1: True})
    old = campaigns(campaign("old", "weekend_shopper", D - dt.timedelta(days=3), END,
                             as_of_date=D - dt.timedelta(days=4)))
    out = build_audience(old, profiles, users, NO_RECENT, as_of_date=D, config=CONFIG)
    assert out.is_empty()
    assert out.schema == pl.Schema(AUDIENCE_SCHEMA)


@pytest.mark.parametrize("share", [0.0, 0.25])
def test_holdout_share_is_configurable(share: float) -> None:
    profiles = _profiles({u: ["weekend_shopper"] for u in range(1, 20_001)})
    users = _users({u: True for u in range(1, 20_001)})
    config = CONFIG.model_copy(update={"holdout_share": share})
    out = build_audience(_plan("weekend_shopper"), profiles, users, NO_RECENT, as_of_date=D,
                         config=config)
    assert abs(out["is_holdout"].mean() - share) <= 0.01
    assert len(_treated(out)) + out["is_holdout"].sum() == 20_000


# --------------------------------------------------------------------------- value targeting


def _value(tiers: dict[int, tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": list(tiers),
                         "value_tier": [tier for tier, _ in tiers.values()],
                         "churn_risk": [risk for _, risk in tiers.values()]},
                        schema={"user_id": pl.Int64, "value_tier": pl.String,
                                "churn_risk": pl.String})


def test_targeting_by_predicted_value_keeps_only_the_asked_tiers() -> None:
    """VIP reaches the segment's top tier only, re-engagement valuable users at risk; a
    type without a value target still reaches the whole segment."""
    users = range(1, 401)
    tiers = ("top", "high", "medium", "low")
    risks = ("high", "medium", "low")
    value = _value({u: (tiers[u % 4], risks[u % 3]) for u in users})
    profiles = _profiles({u: ["high_spender" if u <= 200 else "inactive"] for u in users})
    plan = campaigns(
        campaign("c-vip", "high_spender", START, END, as_of_date=D, campaign_type="vip",
                 audience_size=1_000_000),
        campaign("c-back", "inactive", START, END, as_of_date=D,
                 campaign_type="re_engagement", audience_size=1_000_000))
    targeted = CampaignConfig(value_targeting=PREDICTED_VALUE_TARGETING, holdout_share=0.0)
    out = build_audience(plan, profiles, _users(dict.fromkeys(users, True)), NO_RECENT,
                         as_of_date=D, config=targeted, value=value)
    vip = set(out.filter(pl.col("campaign_id") == "c-vip")["user_id"])
    back = set(out.filter(pl.col("campaign_id") == "c-back")["user_id"])
    assert vip == {u for u in range(1, 201) if u % 4 == 0}  # "top"
    assert back == {u for u in range(201, 401)
                    if tiers[u % 4] in ("top", "high") and risks[u % 3] in ("high", "medium")}
    # the rules (no value targeting): the whole segments
    rules = build_audience(plan, profiles, _users(dict.fromkeys(users, True)), NO_RECENT,
                           as_of_date=D, config=CampaignConfig(holdout_share=0.0), value=value)
    assert set(rules["user_id"]) == set(users)
    # without scores for the day a targeted type reaches nobody, never the whole segment
    blind = build_audience(plan, profiles, _users(dict.fromkeys(users, True)), NO_RECENT,
                           as_of_date=D, config=targeted, value=None)
    assert blind.is_empty()


def test_value_targets_name_known_tiers_and_types() -> None:
    with pytest.raises(ValueError, match="unknown value tiers"):
        ValueTarget(value_tiers=("gold",))
    with pytest.raises(ValueError, match="unknown campaign types"):
        CampaignConfig(value_targeting={"lottery": ValueTarget()})
