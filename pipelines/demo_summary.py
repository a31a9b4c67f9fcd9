"""The short human summary printed at the end of `marketing demo`."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from resources.settings import PipelineSettings
from resources.warehouse import Warehouse
from transforms.value_tiers import CHURN_RISKS, VALUE_TIERS


def _ingest_section(warehouse: Warehouse) -> list[str]:
    totals = warehouse.read(
        "SELECT count(*) AS days, sum(rows_read) AS read, sum(rows_accepted) AS accepted, "
        "sum(rows_rejected) AS rejected, sum(refunds) AS refunds, "
        "sum(zero_amount) AS zero_amount FROM staged_partitions"
    ).row(0, named=True)
    reconciles = totals["read"] == totals["accepted"] + totals["rejected"]
    lines = [
        "Transactions",
        f"  days staged      {totals['days']}",
        f"  rows read        {totals['read']:,}",
        f"  accepted         {totals['accepted']:,}  (refunds {totals['refunds']:,}, "
        f"zero-amount {totals['zero_amount']:,})",
        f"  rejected         {totals['rejected']:,}",
        f"  reconciles       {'yes' if reconciles else 'NO'} (read = accepted + rejected)",
        "Rejected rows by reason",
    ]
    reasons = warehouse.read(
        "SELECT reason, count(*) AS n FROM rejected_transactions "
        "GROUP BY reason ORDER BY n DESC, reason"
    )
    lines += [f"  {row['n']:>5}  {row['reason']}" for row in reasons.iter_rows(named=True)]
    return lines


def _profile_section(warehouse: Warehouse) -> list[str]:
    day = warehouse.read("SELECT max(as_of_date) AS day FROM user_segments")["day"][0]
    if day is None:
        return ["Profiles: none materialized"]
    segments = warehouse.read_named("user_segments_for_day", {"day": day})
    users = warehouse.read("SELECT count(*) AS n FROM behavioral_profiles WHERE as_of_date = :day",
                           {"day": day})["n"][0]
    lines = [f"Behavioral profiles on {day}: {users:,} users",
             "  pattern               users   share   avg spend  median spend"]
    for row in segments.iter_rows(named=True):
        lines.append(f"  {row['behavior_pattern']:<20} {row['user_count']:>6,}  "
                     f"{row['share_of_users']:>6.1%}  {float(row['avg_spend'] or 0):>10,.2f}  "
                     f"{float(row['median_spend'] or 0):>12,.2f}")
    return lines


def _value_section(warehouse: Warehouse) -> list[str]:
    """Value tiers and churn risk of the last scored day, and that day's fitted models."""
    day = warehouse.read("SELECT max(as_of_date) AS day FROM customer_value_tiers")["day"][0]
    if day is None:
        return ["Customer value: no day scored (see the models_converged check)"]
    tiers = warehouse.read("SELECT * FROM customer_value_tiers WHERE as_of_date = :day",
                           {"day": day})
    models = warehouse.read("SELECT model, parameters, log_likelihood FROM "
                            "customer_value_models WHERE as_of_date = :day ORDER BY model",
                            {"day": day})
    lines = [f"Customer value on {day} (BG/NBD + Gamma-Gamma, CLV over 12 months):"]
    for row in models.iter_rows(named=True):
        parameters = ", ".join(f"{name} {value:.3g}"
                               for name, value in json.loads(row["parameters"]).items())
        lines.append(f"  {row['model']:<12} {parameters}; log-likelihood "
                     f"{row['log_likelihood']:,.1f}")
    lines.append("  value tier   users  avg CLV  churn risk high / medium / low")
    for tier in VALUE_TIERS:
        rows = tiers.filter(pl.col("value_tier") == tier)
        if not rows.height:
            continue
        users = int(rows["users"].sum())
        avg_clv = float((rows["avg_clv"] * rows["users"]).sum()) / users
        risk = {row["churn_risk"]: row["users"] for row in rows.iter_rows(named=True)}
        lines.append(f"  {tier:<10} {users:>7,} {avg_clv:>8,.2f}  "
                     + " / ".join(f"{risk.get(level, 0):,}" for level in CHURN_RISKS))
    return lines


def _campaign_section(warehouse: Warehouse) -> list[str]:
    plan = warehouse.read(
        "SELECT campaign_name, status, audience_size, expected_roi, roi_ci_low, roi_ci_high, "
        "budget FROM ai_campaigns WHERE status IN ('scheduled', 'active', 'paused') "
        "ORDER BY expected_roi DESC")
    lines = ["Campaigns scheduled or running (expected ROI with its 80% credible interval)"]
    for row in plan.iter_rows(named=True):
        lines.append(f"  {row['campaign_name']:<44} {row['status']:<9} "
                     f"audience {row['audience_size']:>5,}  ROI {row['expected_roi']:.2f} "
                     f"[{row['roi_ci_low']:.2f}, {row['roi_ci_high']:.2f}]  "
                     f"budget {float(row['budget']):>9,.2f}")
    if plan.is_empty():
        lines.append("  (none: every segment already has a running campaign)")
    return lines


def _metrics_section(warehouse: Warehouse) -> list[str]:
    totals = warehouse.read(
        "SELECT c.campaign_name, c.status, sum(m.impressions) AS impressions, "
        "sum(m.clicks) AS clicks, sum(m.conversions) AS conversions, "
        "sum(m.revenue) AS revenue, sum(m.cost) AS cost "
        "FROM campaign_metrics m JOIN ai_campaigns c ON c.campaign_id = m.campaign_id "
        "GROUP BY c.campaign_name, c.status HAVING sum(m.impressions) > 0 "
        "ORDER BY sum(m.revenue) DESC LIMIT 12")
    if totals.is_empty():
        return ["Earlier campaigns: no metrics yet"]
    lines = ["Earlier campaigns (to date): impressions, ctr, conversion rate, ROI, uplift"]
    uplift = dict(warehouse.read(
        "SELECT c.campaign_name, i.uplift FROM campaign_incrementality i "
        "JOIN ai_campaigns c ON c.campaign_id = i.campaign_id "
        "WHERE i.as_of_date = (SELECT max(as_of_date) FROM campaign_incrementality)").iter_rows())
    for row in totals.iter_rows(named=True):
        ctr = row["clicks"] / row["impressions"] if row["impressions"] else 0.0
        conversion = row["conversions"] / row["clicks"] if row["clicks"] else 0.0
        roi = float(row["revenue"]) / float(row["cost"]) if row["cost"] else 0.0
        lift = uplift.get(row["campaign_name"])
        lift_text = f"{lift:+.3f}" if lift is not None else "  n/a"
        lines.append(f"  {row['campaign_name']:<44} {row['status']:<9} "
                     f"{row['impressions']:>6,}  ctr {ctr:.2f}  conv {conversion:.2f}  "
                     f"ROI {roi:.2f}  uplift {lift_text}")
    recommendations = warehouse.read(
        "SELECT rule, count(*) AS n FROM campaign_recommendations WHERE as_of_date = "
        "(SELECT max(as_of_date) FROM campaign_recommendations) GROUP BY rule ORDER BY rule")
    if recommendations.height:
        lines.append("Recommendations today: " + ", ".join(
            f"{row['rule']} {row['n']}" for row in recommendations.iter_rows(named=True)))
    return lines


SECTIONS = [_ingest_section, _profile_section, _value_section, _campaign_section,
            _metrics_section]


def _checks_section(checks: dict[str, list[str]]) -> list[str]:
    failed = sorted(set(checks["failed"]))
    lines = [f"Asset checks: {len(checks['passed'])} passed, {len(checks['failed'])} failed"]
    lines += [f"  FAILED {name}" for name in failed]
    return lines


def print_summary(settings: PipelineSettings, environment: dict[str, str],
                  last_day: dt.date, checks: dict[str, list[str]]) -> None:
    """Print every section, then where things are and what to do next."""
    warehouse = Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema)
    lines = ["", f"=== Demo summary (latest partition {last_day}) ==="]
    for section in SECTIONS:
        lines += section(warehouse)
    lines += _checks_section(checks)
    lines += [
        "Where things are",
        f"  source        {settings.source_url}",
        f"  warehouse     {settings.warehouse_url} (schema {settings.warehouse_schema})",
        f"  staged files  {settings.staging_dir}/transactions/as_of_date=*/part.parquet",
        f"  Dagster home  {environment['DAGSTER_HOME']}",
        "Next",
        "  make ui      open the Dagster UI on this demo (http://127.0.0.1:3000)",
        "  make test    run the test suite",
    ]
    print("\n".join(lines))
