"""Builders shared by the campaign tests (no tests here): small frames with hand-set numbers."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl

from transforms.campaign_metrics import METRICS_SCHEMA
from transforms.campaign_selection import AI_CAMPAIGN_SCHEMA

D = dt.date(2026, 11, 25)
# avg_purchases_per_week x (90 / 7) weeks = 1 purchase, so the segment order value = avg_spend.
ONE_PURCHASE_PER_WINDOW = 7 / 90


def segments(rows: dict[str, tuple[int, str]], day: dt.date = D) -> pl.DataFrame:
    """user_segments rows: pattern -> (user_count, avg_spend as text)."""
    return pl.DataFrame(
        {
            "segment_id": [f"s-{p}" for p in rows],
            "as_of_date": [day] * len(rows),
            "behavior_pattern": list(rows),
            "user_count": [n for n, _ in rows.values()],
            "share_of_users": [0.1] * len(rows),
            "avg_spend": [Decimal(s) for _, s in rows.values()],
            "avg_purchases_per_week": [ONE_PURCHASE_PER_WINDOW] * len(rows),
        },
        schema_overrides={"avg_spend": pl.Decimal(14, 2), "user_count": pl.Int64},
    )


def no_metrics() -> pl.DataFrame:
    return pl.DataFrame(schema=METRICS_SCHEMA)


def no_campaigns() -> pl.DataFrame:
    return pl.DataFrame(schema=AI_CAMPAIGN_SCHEMA)


def campaign(campaign_id: str, pattern: str, start: dt.date, end: dt.date, *,
             as_of_date: dt.date | None = None, campaign_type: str = "discount",
             audience_size: int = 1000, offer: dict | None = None) -> dict:
    """One ai_campaigns row with only the columns the tests need set meaningfully."""
    stamp = dt.datetime.combine(start, dt.time(), dt.UTC)
    offer = offer or {"delivery_cost": "0.50", "cost_share": 0.2, "fixed_cost": "0"}
    return {
        "campaign_id": campaign_id, "as_of_date": as_of_date or start - dt.timedelta(days=1),
        "campaign_name": campaign_id, "campaign_type": campaign_type, "status": "scheduled",
        "target_pattern": pattern, "audience_size": audience_size, "expected_roi": 2.0,
        "roi_ci_low": 1.0, "roi_ci_high": 3.0, "expected_conversion_rate": 0.03,
        "expected_order_value": Decimal("50.00"), "expected_revenue": Decimal("1.00"),
        "expected_cost": Decimal("1.00"), "budget": Decimal("100.00"), "offer_label": "x",
        "offer_json": json.dumps(offer), "start_date": start, "end_date": end,
        "history_deliveries": 0, "history_conversions": 0, "selection_reason": "test",
        "created_at": stamp, "updated_at": stamp,
    }


def campaigns(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=AI_CAMPAIGN_SCHEMA)


def metrics_row(campaign_id: str, day: dt.date, *, impressions: int = 0, opens: int = 0,
                clicks: int = 0, conversions: int = 0, revenue: str = "0",
                cost: str = "0") -> dict:
    return {
        "metric_id": f"m-{campaign_id}-{day}", "campaign_id": campaign_id, "metric_date": day,
        "impressions": impressions, "opens": opens, "clicks": clicks,
        "conversions": conversions, "revenue": Decimal(revenue), "cost": Decimal(cost),
        "ctr": None, "conversion_rate": None, "roi": None,
        "recorded_at": dt.datetime.combine(day, dt.time(), dt.UTC),
    }


def metrics(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=METRICS_SCHEMA)


def test_helper_segments_make_the_order_value_equal_avg_spend() -> None:
    """The selection tests rely on it: one purchase per 90-day window per user."""
    assert ONE_PURCHASE_PER_WINDOW * (90 / 7) == 1.0
    assert segments({"inactive": (10, "12.50")})["avg_spend"].to_list() == [Decimal("12.50")]
