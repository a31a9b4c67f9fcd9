"""Simulated notification-service events for the demo's campaigns, seeded and reproducible.

What the simulator assumes (its "ground truth", deliberately different from the priors so the
ROI model has something to learn):
- Treated users: 98% of messages are delivered on the start day between 09:00 and 11:00 UTC;
  a delivered message is opened, then clicked, then converted with per-type probabilities
  (``FUNNEL``), conversion scaled per pattern (``PATTERN_LIFT``). Opens come hours after the
  delivery, clicks minutes after the open, conversions days after the click, and nothing after
  the campaign's end date.
- Every audience user, treated or holdout, may also buy organically during the campaign
  (``ORGANIC``). For holdout users that organic purchase is the only event: a ``converted``
  event against the campaign they were held out of. The metrics step recognises them through
  ``campaign_audience.is_holdout``; a treated user converts at most once (campaign or organic).
  Hence uplift > 0 on average, and every metric and incrementality figure is filled.
- Revenue is lognormal (sigma 0.6) with mean = the campaign's ``expected_order_value``.

Each campaign draws from its own generator seeded by (seed, campaign key), so adding a campaign
never changes another campaign's events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import numpy as np
import polars as pl

from transforms.audience import campaign_key
from transforms.campaign_config import stable_id
from transforms.columns import CAMPAIGN_EVENT_SCHEMA

# campaign type -> (P(open | delivered), P(click | open), P(convert | click))
FUNNEL: dict[str, tuple[float, float, float]] = {
    "discount": (0.35, 0.35, 0.30),
    "cashback": (0.35, 0.30, 0.25),
    "loyalty": (0.30, 0.25, 0.25),
    "vip": (0.45, 0.35, 0.30),
    "spending_milestone": (0.30, 0.25, 0.30),
    "re_engagement": (0.20, 0.25, 0.25),
    "category_promotion": (0.40, 0.35, 0.30),
    "location_based": (0.35, 0.30, 0.25),
}
PATTERN_LIFT = {"high_spender": 1.2, "new_shopper": 1.1, "inactive": 0.6}
ORGANIC = {"high_spender": 0.04, "inactive": 0.01}
DEFAULT_ORGANIC = 0.02
DELIVERY_RATE = 0.98
_US_PER_HOUR = 3_600_000_000
_RAW_SCHEMA = {"event_id": pl.String, "campaign_id": pl.String, "user_id": pl.Int64,
               "event_type": pl.String, "occurred_us": pl.Int64, "revenue_cents": pl.Int64}


def _epoch_us(day: date, hour: int) -> int:
    return int(datetime.combine(day, time(hour), UTC).timestamp()) * 1_000_000


def _campaign_events(campaign: dict, users: np.ndarray, holdout: np.ndarray,
                     seed: int) -> pl.DataFrame:
    """All events of one campaign (occurred_at still as epoch microseconds)."""
    cid, pattern = campaign["campaign_id"], campaign["target_pattern"]
    rng = np.random.default_rng([seed, campaign_key(cid) & 0xFFFFFFFF])
    start_us = _epoch_us(campaign["start_date"], 9)
    end_us = _epoch_us(campaign["end_date"], 0) + 24 * _US_PER_HOUR  # end of the last day
    p_open, p_click, p_conv = FUNNEL.get(campaign["campaign_type"], (0.3, 0.3, 0.25))
    p_conv = min(p_conv * PATTERN_LIFT.get(pattern, 1.0), 1.0)
    mean_value = float(campaign["expected_order_value"] or 40)
    n = len(users)
    treated = ~holdout
    delivered = treated & (rng.random(n) < DELIVERY_RATE)
    t_del = start_us + (rng.random(n) * 2 * _US_PER_HOUR).astype(np.int64)
    t_open = t_del + (rng.exponential(3.0, n) * _US_PER_HOUR).astype(np.int64)
    t_click = t_open + (rng.exponential(0.3, n) * _US_PER_HOUR).astype(np.int64)
    t_conv = t_click + (rng.exponential(48.0, n) * _US_PER_HOUR).astype(np.int64)
    opened = delivered & (rng.random(n) < p_open) & (t_open < end_us)
    clicked = opened & (rng.random(n) < p_click) & (t_click < end_us)
    converted = clicked & (rng.random(n) < p_conv) & (t_conv < end_us)
    organic = rng.random(n) < ORGANIC.get(pattern, DEFAULT_ORGANIC)
    t_organic = start_us + (rng.random(n) * (end_us - start_us)).astype(np.int64)
    organic &= ~converted
    sigma = 0.6
    revenue = rng.lognormal(np.log(mean_value) - sigma**2 / 2, sigma, n)
    revenue_cents = np.maximum(np.round(revenue * 100), 1).astype(np.int64)
    conv_time = np.where(converted, t_conv, t_organic)
    bought = converted | organic
    parts = [(kind, mask, when, None) for kind, mask, when in (
        ("delivered", delivered, t_del), ("opened", opened, t_open),
        ("clicked", clicked, t_click))]
    parts.append(("converted", bought, conv_time, revenue_cents))
    frames = []
    for kind, mask, when, money in parts:
        ids = [stable_id("event", cid, u, kind) for u in users[mask].tolist()]
        frames.append(pl.DataFrame({
            "event_id": ids, "campaign_id": [cid] * len(ids), "user_id": users[mask],
            "event_type": [kind] * len(ids), "occurred_us": when[mask],
            "revenue_cents": money[mask] if money is not None else [None] * len(ids),
        }, schema=_RAW_SCHEMA))
    return pl.concat(frames)


def simulate_campaign_events(campaigns: pl.DataFrame, audience: pl.DataFrame, *,
                             seed: int = 7, until: datetime | None = None) -> pl.DataFrame:
    """``campaign_events`` rows (``CAMPAIGN_EVENT_SCHEMA``) for every campaign's audience.

    ``until`` drops events at or after it, so a demo "today" never sees the future.
    """
    frames = [pl.DataFrame(schema=_RAW_SCHEMA)]
    for campaign in campaigns.sort("campaign_id").to_dicts():
        members = audience.filter(pl.col("campaign_id") == campaign["campaign_id"]).sort("user_id")
        if not members.is_empty():
            frames.append(_campaign_events(campaign, members["user_id"].to_numpy(),
                                           members["is_holdout"].to_numpy(), seed))
    frame = pl.concat(frames).with_columns(
        occurred_at=pl.from_epoch("occurred_us", time_unit="us").dt.replace_time_zone("UTC"))
    if until is not None:
        frame = frame.filter(pl.col("occurred_at") < until)
    return (frame.select(list(CAMPAIGN_EVENT_SCHEMA)).cast(CAMPAIGN_EVENT_SCHEMA)
            .sort("occurred_at", "event_id"))
