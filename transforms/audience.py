"""Who receives which of day D's new campaigns (``campaign_audience``).

Rules, in this order (each is why the next one can be simple):
1. Eligible: users whose profile on D carries the campaign's target pattern and who opted in
   (a missing ``marketing_opt_in`` means no).
2. Frequency cap: a user already treated by ``frequency_cap`` campaigns planned in the previous
   ``frequency_window_days - 1`` days gets none today, so no 7-day window holds more than N.
3. One new campaign per user per day: among the user's eligible campaigns, the one whose
   target pattern comes first in ``config.audience_priority`` (``priority_rank`` is that
   position, 1-based).
4. Holdout: of the users assigned a campaign, those with ``bucket(user, campaign) < share *
   10000`` are held out and receive nothing. Assigning before the holdout split keeps the two
   groups comparable, so treated minus holdout is the campaign's effect.
5. Budget cap: at most ``audience_size`` treated users per campaign (and the matching share of
   holdout users), taken in the order of a second, independently salted hash.

The bucket is splitmix64(user_id XOR key(campaign_id)) mod 10000, where key is the first 8 bytes
of blake2b(campaign_id). Both are fixed algorithms computed with wrapping UInt64 arithmetic,
unlike ``pl.Expr.hash``, whose output may change between Polars versions; a test pins values.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta

import polars as pl

from transforms.campaign_config import CampaignConfig, ValueTarget
from transforms.value_tiers import CHURN_RISKS, VALUE_TIERS

AUDIENCE_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(),
    "user_id": pl.Int64(),
    "as_of_date": pl.Date(),
    "target_pattern": pl.String(),
    "is_holdout": pl.Boolean(),
    "priority_rank": pl.Int32(),
}
BUCKETS = 10_000
_MASK = (1 << 64) - 1


def campaign_key(campaign_id: str, salt: str = "") -> int:
    """A stable 64-bit key for a campaign id (blake2b, first 8 bytes, big-endian)."""
    digest = hashlib.blake2b(f"{campaign_id}{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def splitmix64(x: int) -> int:
    """Reference splitmix64 finalizer (Steele et al.); the Polars version must agree with it."""
    z = (x + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def splitmix64_expr(x: pl.Expr) -> pl.Expr:
    """splitmix64 over a UInt64 column: wrapping multiply, shifts as floor division."""

    def u64(v: int) -> pl.Expr:
        return pl.lit(v, dtype=pl.UInt64)

    z = x + u64(0x9E3779B97F4A7C15)
    z = (z ^ (z // u64(1 << 30))) * u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z // u64(1 << 27))) * u64(0x94D049BB133111EB)
    return z ^ (z // u64(1 << 31))


def bucket_expr(user_id: pl.Expr, key: pl.Expr) -> pl.Expr:
    """Bucket 0..9999 of (user, campaign key): uniform, stable across runs and versions."""
    return (splitmix64_expr(_key_bits(user_id) ^ key) % BUCKETS).cast(pl.Int64)


def _key_bits(user_id: pl.Expr) -> pl.Expr:
    """The user key's 64 bits as UInt64: the value itself for integer ids, two's complement
    for text ids' negative keys (a cast would fail on them)."""
    return user_id.cast(pl.Int64).reinterpret(signed=False)


def build_audience(campaigns: pl.DataFrame, profiles: pl.DataFrame | pl.LazyFrame,
                   users: pl.DataFrame | pl.LazyFrame, recent_deliveries: pl.DataFrame,
                   *, as_of_date: date, config: CampaignConfig,
                   value: pl.DataFrame | None = None) -> pl.DataFrame:
    """``campaign_audience`` rows for the campaigns planned on D (not paused).

    With ``config.value_targeting``, a targeted campaign type reaches only the users of its
    segment whose value tier and churn risk on D (``value``: customer_value rows) it asks
    for; without scores for D (``value`` None or empty) a targeted type reaches nobody
    rather than falling back to the whole segment."""
    new = campaigns.filter(pl.col("as_of_date") == as_of_date, pl.col("status") != "paused")
    if new.is_empty():
        return pl.DataFrame(schema=AUDIENCE_SCHEMA)
    rank = {p: i + 1 for i, p in enumerate(config.audience_priority)}
    keys = new.select(
        "campaign_id", "target_pattern", "audience_size", "campaign_type",
        key=pl.col("campaign_id").map_elements(campaign_key, return_dtype=pl.UInt64),
        order_key=pl.col("campaign_id").map_elements(
            lambda c: campaign_key(c, "|order"), return_dtype=pl.UInt64),
        priority_rank=pl.col("target_pattern").replace_strict(rank, return_dtype=pl.Int32),
    ).lazy()
    opted_in = users.lazy().filter(pl.col("marketing_opt_in").fill_null(False)).select("user_id")
    since = as_of_date - timedelta(days=config.frequency_window_days - 1)
    capped = (
        recent_deliveries.lazy()
        .filter(~pl.col("is_holdout"), pl.col("as_of_date") >= since,
                pl.col("as_of_date") < as_of_date)
        .group_by("user_id").agg(recent=pl.col("campaign_id").n_unique())
        .filter(pl.col("recent") >= config.frequency_cap).select("user_id")
    )
    eligible = (
        profiles.lazy().filter(pl.col("as_of_date") == as_of_date)
        .select("user_id", target_pattern=pl.col("detected_patterns")).explode("target_pattern")
        .join(opted_in, on="user_id", how="semi")
        .join(capped, on="user_id", how="anti")
        .join(keys, on="target_pattern")
        .unique(["campaign_id", "user_id"])
    )
    if config.value_targeting:
        eligible = _value_targeted(eligible, value, config.value_targeting)
    holdout_cut = round(config.holdout_share * BUCKETS)
    assigned = (
        eligible.sort(["user_id", "priority_rank", "campaign_id"])
        .group_by("user_id", maintain_order=True).first()
        .with_columns(is_holdout=bucket_expr(pl.col("user_id"), pl.col("key")) < holdout_cut,
                      order=splitmix64_expr(_key_bits(pl.col("user_id"))
                                            ^ pl.col("order_key")))
    )
    share = config.holdout_share
    holdout_limit = (pl.col("audience_size") * share / (1 - share)).round(0).cast(pl.Int64)
    kept = assigned.filter(
        pl.col("order").rank("ordinal").over("campaign_id", "is_holdout")
        <= pl.when(pl.col("is_holdout")).then(holdout_limit).otherwise(pl.col("audience_size"))
    )
    return (
        kept.select("campaign_id", "user_id", pl.lit(as_of_date).alias("as_of_date"),
                    "target_pattern", "is_holdout", "priority_rank")
        .sort("campaign_id", "user_id").collect().cast(AUDIENCE_SCHEMA)
    )


def _value_targeted(eligible: pl.LazyFrame, value: pl.DataFrame | None,
                    targeting: dict[str, ValueTarget]) -> pl.LazyFrame:
    """Keep a targeted type's (campaign, user) rows only for users in an allowed
    (value tier, churn risk); other types' rows pass unchanged."""
    allowed = pl.LazyFrame(
        [{"campaign_type": kind, "value_tier": tier, "churn_risk": risk}
         for kind, target in targeting.items()
         for tier in (target.value_tiers or VALUE_TIERS)
         for risk in (target.churn_risks or CHURN_RISKS)],
        schema={"campaign_type": pl.String, "value_tier": pl.String, "churn_risk": pl.String})
    targeted = pl.col("campaign_type").is_in(list(targeting))
    scores = (value if value is not None else pl.DataFrame(
        schema={"user_id": pl.Int64, "value_tier": pl.String, "churn_risk": pl.String}))
    kept = (eligible.filter(targeted)
            .join(scores.lazy().select("user_id", "value_tier", "churn_risk"), on="user_id")
            .join(allowed, on=["campaign_type", "value_tier", "churn_risk"], how="semi")
            .drop("value_tier", "churn_risk"))
    return pl.concat([eligible.filter(~targeted), kept])
