"""Behavioral profiles and segments: read the staged window, call the transforms, write.

The transforms (`transforms/profiles.py`, `transforms/segments.py`) know nothing of
Dagster; this module reads exactly the Parquet days a window needs, writes the warehouse
partition plus a Parquet snapshot for downstream Polars steps, and reports the pattern mix.
"""

import datetime as dt
from typing import Optional

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext
from pydantic import create_model

from assets.purchase_history import purchase_history_before
from assets.reporting import markdown_table
from pipelines.partitions import as_of_end, partition_days, run_now
from resources.staging import StagingStore
from resources.warehouse import Warehouse
from transforms.profiles import compute_profiles
from transforms.segments import compute_segment_overlap, compute_segments
from transforms.thresholds import PATTERNS, PatternThresholds

PROFILE_GROUP = "profiles"

# Every PatternThresholds field as an optional launchpad setting: unset fields keep the
# value from MARKETING_PATTERN_* variables, or the documented default. One source of truth:
# adding a threshold to PatternThresholds adds it here.
PatternThresholdsConfig = create_model(  # type: ignore[call-overload]
    "PatternThresholdsConfig",
    __base__=dg.Config,
    **{name: (Optional[field.annotation], None)  # noqa: UP045 - pydantic needs the runtime type
       for name, field in PatternThresholds.model_fields.items()},
)


def resolve_thresholds(config: dg.Config) -> PatternThresholds:
    """Defaults, overridden by the environment, overridden by run config."""
    overrides = {key: value for key, value in config.model_dump().items() if value is not None}
    base = PatternThresholds.from_env().model_dump()
    return PatternThresholds.model_validate({**base, **overrides})


def _pattern_counts(profiles: pl.DataFrame) -> dict[str, int]:
    exploded = profiles.select(pl.col("detected_patterns").explode().alias("pattern"))
    counts = dict(exploded.drop_nulls().group_by("pattern").len().iter_rows())
    return {pattern: int(counts.get(pattern, 0)) for pattern in PATTERNS}


def _pattern_chart(counts: dict[str, int], users: int) -> dg.MetadataValue:
    """A text bar chart of the pattern mix (Markdown renders in the asset's metadata)."""
    widest = max(counts.values(), default=0) or 1
    lines = ["| pattern | users | share | |", "|---|---:|---:|---|"]
    for pattern, count in counts.items():
        bar = "█" * round(24 * count / widest)
        share = count / users if users else 0.0
        lines.append(f"| {pattern} | {count:,} | {share:.1%} | {bar} |")
    return dg.MetadataValue.md("\n".join(lines))


def build_profile_assets(first_partition_date: dt.date, partitions: dg.PartitionsDefinition,
                         ) -> list[dg.AssetsDefinition]:
    """`behavioral_profiles` and `user_segments` for the given daily partitions."""

    # Lineage: day D reads the staged days of its window (the default lookback).
    window_mapping = dg.TimeWindowPartitionMapping(
        start_offset=-PatternThresholds().lookback_days,
        allow_nonexistent_upstream_partitions=True,
    )
    lookback_dep = dg.AssetDep("valid_transactions", partition_mapping=window_mapping)

    @dg.asset(
        deps=[lookback_dep],
        group_name=PROFILE_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec("one_row_per_user", asset="behavioral_profiles", blocking=True,
                              description="No user appears twice in a partition."),
            dg.AssetCheckSpec("known_patterns_only", asset="behavioral_profiles",
                              blocking=True, description="Only the 8 pattern names occur."),
        ],
        description="One row per user with a purchase before the window's end: window spend, "
                    "frequency, weekend share, top category, locations, buckets, refunds, "
                    "RFM, the 8 patterns and the evidence for each.",
    )
    def behavioral_profiles(context: AssetExecutionContext, config: PatternThresholdsConfig,
                            staging: StagingStore, warehouse: Warehouse):
        thresholds = resolve_thresholds(config)
        unique_ok = known_ok = True
        profiles = pl.DataFrame()
        for day in partition_days(context):
            end = as_of_end(day, run_now(context))
            window_first_day = (end - dt.timedelta(days=thresholds.lookback_days)).date()
            history = purchase_history_before(staging, first_partition_date, window_first_day)
            window = staging.scan_days(window_first_day, day)
            profiles = compute_profiles(window, as_of_end=end, thresholds=thresholds,
                                        history=history, as_of_date=day)
            warehouse.replace_partition("behavioral_profiles", profiles, partition_value=day)
            staging.write_snapshot("behavioral_profiles", day, profiles)
            unique_ok &= profiles["user_id"].is_unique().all()
            seen = set(profiles["detected_patterns"].explode().drop_nulls())
            known_ok &= seen <= set(PATTERNS)
            context.log.info(f"{day}: {profiles.height:,} profiles")
        counts = _pattern_counts(profiles)
        yield dg.MaterializeResult(metadata={
            "users": profiles.height,
            **{f"pattern/{name}": count for name, count in counts.items()},
            "pattern_mix": _pattern_chart(counts, profiles.height),
            "thresholds": dg.MetadataValue.json(thresholds.model_dump()),
        })
        yield dg.AssetCheckResult(check_name="one_row_per_user", passed=bool(unique_ok))
        yield dg.AssetCheckResult(check_name="known_patterns_only", passed=bool(known_ok))

    @dg.asset(
        deps=["behavioral_profiles"],
        group_name=PROFILE_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec("consistent_with_profiles", asset="user_segments", blocking=True,
                              description="Counts match the profiles; shares within [0, 1]."),
        ],
        description="Per pattern: user count, share, total/average/median spend, purchases "
                    "per week; plus the overlap between patterns (segment_overlap).",
    )
    def user_segments(context: AssetExecutionContext, staging: StagingStore,
                      warehouse: Warehouse):
        consistent = True
        segments = pl.DataFrame()
        for day in partition_days(context):
            end = as_of_end(day, run_now(context))
            profiles = staging.read_snapshot("behavioral_profiles", day)
            segments = compute_segments(profiles, as_of_date=day, as_of_end=end)
            overlap = compute_segment_overlap(profiles)
            warehouse.replace_partition("user_segments", segments, partition_value=day)
            warehouse.replace_partition("segment_overlap", overlap, partition_value=day)
            expected = _pattern_counts(profiles)
            actual = dict(zip(segments["behavior_pattern"], segments["user_count"], strict=True))
            shares = segments["share_of_users"]
            consistent &= actual == expected and bool(((shares >= 0) & (shares <= 1)).all())
        yield dg.MaterializeResult(metadata={
            "segments": markdown_table(segments.select(
                "behavior_pattern", "user_count", "share_of_users", "avg_spend",
                "median_spend", "avg_purchases_per_week")),
        })
        yield dg.AssetCheckResult(check_name="consistent_with_profiles", passed=consistent)

    return [behavioral_profiles, user_segments]
