"""Day D's campaign plan: one campaign per eligible segment, the candidate with the best ROI.

Why each step (details and formulas in docs/campaigns.md):
- A segment with a campaign still running when the new one would start (scheduled, active or
  paused; only campaigns planned before D count, so a rerun of D replaces its own plan) gets
  nothing: two overlapping campaigns for one segment would share and blur the audience.
- Candidates come from ``config.candidates``; the best expected ROI wins, ties go to config order.
- The day's budget is split across the chosen campaigns in proportion to expected ROI (to the
  cent), no campaign getting more than its whole audience would cost (the excess goes to the
  others), and each audience is capped at budget / expected cost per message.
- Ids are uuid5(pattern, type, start) and timestamps come from the caller, so reruns are
  identical row for row.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

import polars as pl

from transforms.campaign_config import CampaignConfig, campaign_id_for
from transforms.columns import MONEY
from transforms.lifecycle import date_status
from transforms.roi import history_by_candidate, score_candidates

AI_CAMPAIGN_SCHEMA: dict[str, pl.DataType] = {
    "campaign_id": pl.String(), "as_of_date": pl.Date(), "campaign_name": pl.String(),
    "campaign_type": pl.String(), "status": pl.String(), "target_pattern": pl.String(),
    "audience_size": pl.Int64(), "expected_roi": pl.Float64(), "roi_ci_low": pl.Float64(),
    "roi_ci_high": pl.Float64(), "expected_conversion_rate": pl.Float64(),
    "expected_order_value": MONEY, "expected_revenue": MONEY, "expected_cost": MONEY,
    "budget": MONEY, "offer_label": pl.String(), "offer_json": pl.String(),
    "start_date": pl.Date(), "end_date": pl.Date(), "history_deliveries": pl.Int64(),
    "history_conversions": pl.Int64(), "selection_reason": pl.String(),
    "created_at": pl.Datetime("us", "UTC"), "updated_at": pl.Datetime("us", "UTC"),
}
_TITLES = {"vip": "VIP", "re_engagement": "Re-engagement"}
CENT = Decimal("0.01")


def _title(name: str) -> str:
    return _TITLES.get(name, name.replace("_", " ").title())


def segment_order_values(profiles: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Exact average order value and dominant top category of each pattern's users."""
    carriers = profiles.lazy().explode("detected_patterns").filter(
        pl.col("detected_patterns").is_not_null()
    ).rename({"detected_patterns": "behavior_pattern"})
    value = carriers.group_by("behavior_pattern").agg(
        spent=pl.col("total_spent").cast(pl.Float64).sum(), n=pl.col("transaction_count").sum()
    ).select("behavior_pattern", order_value=pl.when(pl.col("n") > 0)
             .then(pl.col("spent") / pl.col("n")))
    top = (
        carriers.filter(pl.col("top_category").is_not_null())
        .group_by("behavior_pattern", "top_category").agg(users=pl.len())
        .sort(["behavior_pattern", "users", "top_category"], descending=[False, True, False])
        .group_by("behavior_pattern", maintain_order=True).first().drop("users")
    )
    return value.join(top, on="behavior_pattern", how="full", coalesce=True).collect()


def _blocked_patterns(existing: pl.DataFrame, as_of_date: date, start: date) -> set[str]:
    if existing.is_empty():
        return set()
    earlier = existing.filter(pl.col("as_of_date") < as_of_date, pl.col("end_date") >= start)
    return set(earlier["target_pattern"].to_list())


def evaluate_candidates(segments: pl.DataFrame, history_metrics: pl.DataFrame,
                        existing_campaigns: pl.DataFrame, *, as_of_date: date,
                        config: CampaignConfig, profiles: pl.DataFrame | None = None,
                        ) -> pl.DataFrame:
    """Every (segment, candidate type) scored, with ``eligible`` and ``chosen`` flags.

    The whole table is also what the asset reports as its ROI metadata.
    """
    start = as_of_date + timedelta(days=config.start_offset_days)
    seg = segments.lazy().filter(pl.col("as_of_date") == as_of_date).select(
        "behavior_pattern", "user_count", "avg_spend", "avg_purchases_per_week").collect()
    weeks = config.lookback_days / 7.0
    estimate = pl.col("avg_spend").cast(pl.Float64) / (pl.col("avg_purchases_per_week") * weeks)
    seg = seg.with_columns(order_value=pl.when(estimate > 0).then(estimate),
                           top_category=pl.lit(None, pl.String))
    if profiles is not None:  # exact figures first, the segment-level estimate second
        exact = segment_order_values(profiles).rename({"order_value": "exact"})
        seg = seg.drop("top_category").join(exact, on="behavior_pattern", how="left").select(
            pl.exclude("exact", "order_value"),
            order_value=pl.coalesce(pl.col("exact"), pl.col("order_value")))
    rows = [(p, t, i) for p, types in config.candidates.items() for i, t in enumerate(types)]
    cands = pl.DataFrame(rows, schema=["target_pattern", "campaign_type", "candidate_rank"],
                         orient="row", schema_overrides={"candidate_rank": pl.Int64})
    mult = pl.DataFrame({"campaign_type": list(config.priors),
                         "multiplier": [p.order_value_multiplier for p in config.priors.values()]})
    history = history_by_candidate(history_metrics, existing_campaigns, as_of_date=as_of_date)
    base = pl.col("order_value").fill_null(float(config.fallback_order_value))
    frame = (
        cands.join(seg.rename({"behavior_pattern": "target_pattern"}), on="target_pattern")
        .join(mult, on="campaign_type", how="left")
        .join(history, on=["campaign_type", "target_pattern"], how="left")
        .with_columns(pl.col("^history_.*$").fill_null(0),
                      order_value=base * pl.col("multiplier"),
                      planned_audience=(pl.col("user_count") * (1 - config.holdout_share))
                      .floor().cast(pl.Int64))
    )
    frame = score_candidates(frame, config)
    blocked = _blocked_patterns(existing_campaigns, as_of_date, start)
    key = "expected_roi" if config.selection_metric == "expected_roi" else "roi_ci_high"
    return (
        frame.with_columns(
            blocked=pl.col("target_pattern").is_in(list(blocked)),
            eligible=(pl.col("planned_audience") >= config.min_audience_size)
            & ~pl.col("target_pattern").is_in(list(blocked))
            & (pl.col("expected_roi").fill_null(0) >= config.min_expected_roi),
        )
        .sort(["target_pattern", key, "candidate_rank"], descending=[False, True, False],
              nulls_last=True)
        .with_columns(chosen=pl.col("eligible")  # the first eligible row of its segment
                      & (pl.col("eligible").cast(pl.Int64).cum_sum().over("target_pattern")
                         == 1))
    )


def allocate_budget(weights: list[float], total: Decimal,
                    caps: list[Decimal] | None = None) -> list[Decimal]:
    """Split ``total`` in proportion to ``weights`` to the cent, never above a part's cap.

    A part whose share exceeds its cap (what its whole audience would cost) gets the cap and
    the rest is re-split among the others (water-filling), so no money is parked where it
    cannot be spent. The parts sum to ``total`` unless every part is capped; leftover cents
    go by largest remainder, ties to the earlier part.
    """
    n = len(weights)
    cents = int((total / CENT).to_integral_value(ROUND_HALF_EVEN))
    cap = [int((c / CENT).to_integral_value(ROUND_CEILING)) for c in caps] if caps else [cents] * n
    w = [max(x, 0.0) for x in weights]
    fixed: dict[int, int] = {}
    while len(fixed) < n:
        free = [i for i in range(n) if i not in fixed]
        left = cents - sum(fixed.values())
        weight = sum(w[i] for i in free)
        exact = {i: left * (w[i] / weight if weight > 0 else 1 / len(free)) for i in free}
        over = [i for i in free if exact[i] >= cap[i]]
        if not over:
            parts = {i: int(exact[i]) for i in free}
            order = sorted(free, key=lambda i: (-(exact[i] - parts[i]), i))
            for i in order[: left - sum(parts.values())]:
                parts[i] += 1
            fixed.update(parts)
            break
        fixed.update({i: cap[i] for i in over})
    return [Decimal(fixed[i]) * CENT for i in range(n)]


def _money(x: float) -> Decimal:
    return Decimal(str(x)).quantize(CENT, ROUND_HALF_EVEN)


def _reason(row: dict, others: list[dict], level: float) -> str:
    what = (f"{row['campaign_type']} chosen for {row['target_pattern']}: expected ROI "
            f"{row['expected_roi']:.2f} ({level:.0%} CI {row['roi_ci_low']:.2f}-"
            f"{row['roi_ci_high']:.2f}) at conversion rate {row['conversion_rate']:.2%}")
    hist = (f"from prior + {row['history_deliveries']} deliveries / "
            f"{row['history_conversions']} conversions of earlier campaigns"
            if row["history_deliveries"] else "from the prior alone (no history)")
    rivals = ("; beats " + ", ".join(f"{o['campaign_type']} ({o['expected_roi']:.2f})"
                                      for o in others) if others else "; only candidate")
    return f"{what} {hist}{rivals}"


def plan_campaigns(segments: pl.DataFrame, history_metrics: pl.DataFrame,
                   existing_campaigns: pl.DataFrame, *, as_of_date: date,
                   config: CampaignConfig, created_at: datetime | None = None,
                   profiles: pl.DataFrame | None = None) -> pl.DataFrame:
    """The ``ai_campaigns`` rows planned on day D (see module docstring for the rules)."""
    stamp = created_at or datetime.combine(as_of_date + timedelta(days=1), time(), UTC)
    table = evaluate_candidates(segments, history_metrics, existing_campaigns,
                                as_of_date=as_of_date, config=config, profiles=profiles)
    chosen = table.filter(pl.col("chosen")).sort("target_pattern").to_dicts()
    needs = [Decimal(str(r["planned_audience"] * r["cost_per_message"])) for r in chosen]
    budgets = allocate_budget([r["expected_roi"] for r in chosen], config.total_daily_budget,
                              caps=needs)
    start = as_of_date + timedelta(days=config.start_offset_days)
    end = start + timedelta(days=config.duration_days - 1)
    out = []
    for row, budget in zip(chosen, budgets, strict=True):
        others = table.filter(pl.col("target_pattern") == row["target_pattern"],
                              ~pl.col("chosen")).to_dicts()
        offer = config.offers[row["campaign_type"]]
        label = offer.label.format(top_category=row.get("top_category") or "your top category")
        cap = int(budget / Decimal(str(row["cost_per_message"])))
        audience = min(row["planned_audience"], cap)
        offer_json = json.dumps({**offer.model_dump(mode="json"), "label": label,
                                 "delivery_cost": str(config.delivery_cost)}, sort_keys=True)
        out.append({
            "campaign_id": campaign_id_for(row["target_pattern"], row["campaign_type"], start),
            "as_of_date": as_of_date,
            "campaign_name": f"{_title(row['target_pattern'])} {_title(row['campaign_type'])} "
                             f"{start.isoformat()}",
            "campaign_type": row["campaign_type"], "status": date_status(start, end, as_of_date),
            "target_pattern": row["target_pattern"], "audience_size": audience,
            "expected_roi": row["expected_roi"], "roi_ci_low": row["roi_ci_low"],
            "roi_ci_high": row["roi_ci_high"], "expected_conversion_rate": row["conversion_rate"],
            "expected_order_value": _money(row["order_value"]),
            "expected_revenue": _money(audience * row["revenue_per_message"]),
            "expected_cost": _money(audience * row["cost_per_message"]), "budget": budget,
            "offer_label": label, "offer_json": offer_json, "start_date": start, "end_date": end,
            "history_deliveries": row["history_deliveries"],
            "history_conversions": row["history_conversions"],
            "selection_reason": _reason(row, others, config.credible_level),
            "created_at": stamp, "updated_at": stamp,
        })
    return pl.DataFrame(out, schema=AI_CAMPAIGN_SCHEMA)
