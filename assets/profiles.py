"""Behavioral profiles and segments: read the staged window, call the transforms, write.

The transforms (`transforms/profiles.py`, `transforms/segments.py`) know nothing of
Dagster; this module reads exactly the Parquet days a window needs, writes the warehouse
partition plus a Parquet snapshot for downstream Polars steps, and reports the pattern mix.

The profile day and its snapshot become current together, at the warehouse commit
(resources/committed_snapshots.py), and downstream steps read the snapshot version the
warehouse committed. Segments and their overlap commit in one transaction per run.
"""

import datetime as dt
from collections.abc import Callable
from typing import Optional

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext
from pydantic import create_model

from assets.completeness import (
    AS_OF_END,
    HISTORY,
    Gap,
    history_chain_gap,
    staged_window_gaps,
)
from assets.partition_results import PartitionReporter
from assets.purchase_history import build_purchase_history_asset
from assets.reporting import markdown_table
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from pipelines.partitions import as_of_end, partition_days, run_now
from resources.committed_snapshots import publish, read_committed
from resources.staging import StagingStore
from resources.table_writes import TableWrite
from resources.warehouse import Warehouse
from transforms.profiles import compute_profiles
from transforms.segments import compute_segment_overlap, compute_segments
from transforms.thresholds import PATTERNS, PatternThresholds
from transforms.user_keys import with_source_user_ids
from transforms.window_duplicates import find_window_duplicates, without_duplicates

# Every PatternThresholds field as an optional launchpad setting: unset fields keep the
# value from MARKETING_PATTERN_* variables, or the documented default. One source of truth:
# adding a threshold to PatternThresholds adds it here.
PatternThresholdsConfig = create_model(  # type: ignore[call-overload]
    "PatternThresholdsConfig",
    __base__=dg.Config,
    **{name: (Optional[field.annotation], None)  # noqa: UP045 - pydantic needs the runtime type
       for name, field in PatternThresholds.model_fields.items()},
)

PROFILE_GROUP = "profiles"
PROFILES = "behavioral_profiles"


def resolve_thresholds(config: dg.Config, base: PatternThresholds) -> PatternThresholds:
    """The code location's thresholds (defaults overridden by `MARKETING_PATTERN_*`),
    overridden by run config.

    The lookback is refused in run config when it differs: it is part of the asset graph
    (the partition mapping that tells Dagster which staged days a profile reads), so a run
    may not read a different window than the one Dagster orders and checks.
    """
    overrides = {key: value for key, value in config.model_dump().items() if value is not None}
    resolved = PatternThresholds.model_validate({**base.model_dump(), **overrides})
    if resolved.lookback_days != base.lookback_days:
        raise dg.Failure(
            description=(
                f"lookback_days={resolved.lookback_days} in run config differs from the "
                f"code location's {base.lookback_days}: the lookback is declared to Dagster "
                "as the profiles' partition mapping. Set MARKETING_PATTERN_LOOKBACK_DAYS "
                "for the code location (and reload it) instead."
            ),
            allow_retries=False,
        )
    return resolved


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


def _text_ids(warehouse: Warehouse, day: dt.date) -> Callable[[], pl.DataFrame]:
    """The dictionary of text user ids staged up to `day`, read only if a profile needs
    it (an integer source has none, and pays nothing)."""
    return lambda: warehouse.read_named("user_keys_through", {"day": day})


def _window_first_day(day: dt.date, end: dt.datetime, lookback_days: int) -> dt.date:
    """The first staged day the window touches (a partial day when `end` is not midnight)."""
    return (end - dt.timedelta(days=lookback_days)).date()


def _incomplete_inputs(warehouse: Warehouse, staging: StagingStore, first_partition: dt.date,
                       day: dt.date, end: dt.datetime, lookback_days: int) -> list[Gap]:
    """What day D's profile would be missing: window days not staged, a history chain that
    is broken or was built for another `as_of_end`."""
    first = max(first_partition, _window_first_day(day, end, lookback_days))
    gaps = staged_window_gaps(warehouse, staging, first, day)
    chain_gap, _ = history_chain_gap(staging, first_partition, day)
    if chain_gap is not None:
        gaps.append(chain_gap)
    else:
        built_for = (staging.snapshot_lineage(HISTORY, day) or {}).get(AS_OF_END)
        if built_for != end.isoformat():
            gaps.append(Gap(day, f"purchase_history was built for as_of_end {built_for}, "
                                 f"this run needs {end.isoformat()}: materialize "
                                 "purchase_history in the same run"))
    return gaps


def _refusal(failed: list, days: list[dt.date], gaps_by_day: dict[dt.date, list[Gap]]
             ) -> str:
    """One paragraph a data engineer can act on: which partitions, the first problem, and
    why Dagster may have asked for days nobody chose."""
    refused = sorted(dt.date.fromisoformat(str(evaluation.partition)) for evaluation in failed)
    first_gap = next(gap for day in refused for gap in gaps_by_day[day])
    unstaged = sorted({gap.day for day in refused for gap in gaps_by_day[day]
                       if "not staged" in gap.problem})
    text = (f"behavioral_profiles refused for {len(refused)} of {len(days)} partitions "
            f"({refused[0]}..{refused[-1]}): inputs incomplete, first {first_gap} (the "
            "inputs_complete check of each partition lists every problem).")
    if unstaged:
        text += (f" {len(unstaged)} days are not staged ({unstaged[0]}..{unstaged[-1]}): "
                 f"stage them first with `marketing ingest {unstaged[0]} {unstaged[-1]}`.")
        if refused[-1] > unstaged[0]:
            text += (" If you launched an asset backfill from the UI: Dagster also targets "
                     "every later day whose lookback window includes a backfilled day, up to "
                     "today, so those days need staging too; or backfill the `refresh_all` "
                     "job over just your range (docs/consistency.md).")
    return text


def _completeness_evidence(gaps: list[Gap], first: dt.date, day: dt.date) -> dict:
    return {
        "window_first_day": str(first), "window_last_day": str(day),
        "missing_or_stale": len(gaps),
        "problems": dg.MetadataValue.md(
            "\n".join(f"- {gap}" for gap in gaps[:40]) or "none"),
    }


def build_profile_assets(first_partition_date: dt.date, partitions: dg.PartitionsDefinition,
                         thresholds: PatternThresholds) -> list[dg.AssetsDefinition]:
    """`purchase_history`, `behavioral_profiles` and `user_segments` for the given daily
    partitions; `thresholds` are the code location's (their lookback is declared)."""

    # Lineage: day D reads the staged days of its window. For a closed day that is D-89..D
    # (lookback 90); today's window ends at the run's start, so it reaches into D-90.
    window_mapping = dg.TimeWindowPartitionMapping(
        start_offset=-thresholds.lookback_days,
        allow_nonexistent_upstream_partitions=True,
    )
    lookback_dep = dg.AssetDep("valid_transactions", partition_mapping=window_mapping)
    # `inputs_complete` reads the window's bookkeeping rows as well as its files
    bookkeeping_dep = dg.AssetDep("staged_partitions", partition_mapping=window_mapping)

    @dg.asset(
        deps=[lookback_dep, bookkeeping_dep, HISTORY],
        group_name=PROFILE_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec("inputs_complete", asset="behavioral_profiles", blocking=True,
                              partitions_def=partitions,
                              description="Every staged day of the window is complete and "
                                          "the purchase history covers every day since the "
                                          "first partition; checked before computing."),
            dg.AssetCheckSpec("one_row_per_user", asset="behavioral_profiles", blocking=True,
                              partitions_def=partitions,
                              description="No user appears twice in a partition."),
            dg.AssetCheckSpec("known_patterns_only", asset="behavioral_profiles",
                              blocking=True, partitions_def=partitions,
                              description="Only the 8 pattern names occur."),
            dg.AssetCheckSpec("transaction_ids_once_in_window", asset="behavioral_profiles",
                              partitions_def=partitions,
                              description="No transaction id is staged on two days of the "
                                          "window; where one is, only its earliest copy is "
                                          "counted and the others are listed (warns)."),
        ],
        description="One row per user with a purchase before the window's end: window spend, "
                    "frequency, weekend share, top category, locations, buckets, refunds, "
                    "RFM, the 8 patterns and the evidence for each.",
        retry_policy=TRANSIENT_RETRY,
    )
    @retry_transient_only
    def behavioral_profiles(context: AssetExecutionContext, config: PatternThresholdsConfig,
                            staging: StagingStore, warehouse: Warehouse):
        resolved = resolve_thresholds(config, thresholds)
        now = run_now(context)
        days = partition_days(context)
        reporter = PartitionReporter(context)
        gaps_by_day: dict[dt.date, list[Gap]] = {}
        for day in days:
            end = as_of_end(day, now)
            gaps = _incomplete_inputs(warehouse, staging, first_partition_date, day, end,
                                      resolved.lookback_days)
            first = max(first_partition_date,
                        _window_first_day(day, end, resolved.lookback_days))
            reporter.check("behavioral_profiles", "inputs_complete", day, passed=not gaps,
                           evidence=_completeness_evidence(gaps, first, day))
            gaps_by_day[day] = gaps
        if reporter.failed():
            # Refuse before computing anything: a profile from a partial window is wrong,
            # not approximate. The evaluations above name every missing day.
            yield from reporter.finish()
            raise dg.Failure(description=_refusal(reporter.failed(), days, gaps_by_day),
                             allow_retries=False)
        for day in days:
            end = as_of_end(day, now)
            first_day = _window_first_day(day, end, resolved.lookback_days)
            window = staging.scan_days(first_day, day)
            duplicates = find_window_duplicates(window, staging.id_ranges(first_day, day))
            reporter.check("behavioral_profiles", "transaction_ids_once_in_window", day,
                           passed=not duplicates.ids, severity=dg.AssetCheckSeverity.WARN,
                           evidence={"ids_on_several_days": duplicates.ids,
                                     "copies_not_counted": duplicates.rows_dropped,
                                     "examples": duplicates.examples()})
            history = pl.scan_parquet(staging.snapshot_path(HISTORY, day))
            profiles = with_source_user_ids(
                compute_profiles(without_duplicates(window, duplicates), as_of_end=end,
                                 thresholds=resolved, history=history, as_of_date=day),
                _text_ids(warehouse, day))
            publish(staging, warehouse, PROFILES, day, profiles,
                    [TableWrite.partition(PROFILES, profiles, day)])
            duplicates = profiles.filter(pl.col("user_id").is_duplicated())["user_id"]
            reporter.check("behavioral_profiles", "one_row_per_user", day,
                           passed=duplicates.is_empty(),
                           evidence={"users": profiles.height,
                                     "duplicated_users": duplicates.unique().len(),
                                     "examples": str(duplicates.unique().head(10).to_list())})
            seen = set(profiles["detected_patterns"].explode().drop_nulls())
            unknown = sorted(seen - set(PATTERNS))
            reporter.check("behavioral_profiles", "known_patterns_only", day,
                           passed=not unknown, evidence={"unknown_patterns": str(unknown)})
            counts = _pattern_counts(profiles)
            reporter.metadata("behavioral_profiles", day, {
                "users": profiles.height,
                "as_of_end": end.isoformat(),
                **{f"pattern/{name}": count for name, count in counts.items()},
                "pattern_mix": _pattern_chart(counts, profiles.height),
            })
            context.log.info(f"{day}: {profiles.height:,} profiles")
        yield dg.MaterializeResult(metadata={
            "thresholds": dg.MetadataValue.json(resolved.model_dump()),
        })
        yield from reporter.finish()

    @dg.multi_asset(
        specs=[
            dg.AssetSpec("user_segments", deps=["behavioral_profiles"], group_name=PROFILE_GROUP,
                         description="Per pattern: user count, share, total/average/median "
                                     "spend, purchases per week."),
            dg.AssetSpec("segment_overlap", deps=["behavioral_profiles"],
                         group_name=PROFILE_GROUP,
                         description="Users carrying both of two patterns, per pair; "
                                     "committed with user_segments."),
        ],
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            dg.AssetCheckSpec("consistent_with_profiles", asset="user_segments", blocking=True,
                              partitions_def=partitions,
                              description="Counts match the profiles; shares within [0, 1]."),
        ],
        retry_policy=TRANSIENT_RETRY,
    )
    @retry_transient_only
    def user_segments(context: AssetExecutionContext, staging: StagingStore,
                      warehouse: Warehouse):
        reporter = PartitionReporter(context)
        now = run_now(context)
        days = partition_days(context)
        all_segments, all_overlaps = [], []
        for day in days:
            end = as_of_end(day, now)
            profiles = read_committed(staging, warehouse, PROFILES, day)
            segments = compute_segments(profiles, as_of_date=day, as_of_end=end)
            all_segments.append(segments)
            all_overlaps.append(compute_segment_overlap(profiles))
            expected = _pattern_counts(profiles)
            actual = dict(zip(segments["behavior_pattern"], segments["user_count"], strict=True))
            mismatched = sorted(pattern for pattern in set(expected) | set(actual)
                                if expected.get(pattern, 0) != actual.get(pattern, 0))
            shares = segments["share_of_users"]
            out_of_range = int(((shares < 0) | (shares > 1)).sum())
            reporter.check("user_segments", "consistent_with_profiles", day,
                           passed=not mismatched and out_of_range == 0,
                           evidence={"profiles": profiles.height,
                                     "patterns_with_wrong_count": str(mismatched),
                                     "shares_out_of_range": out_of_range})
            reporter.metadata("user_segments", day, {
                "segments": markdown_table(segments.select(
                    "behavior_pattern", "user_count", "share_of_users", "avg_spend",
                    "median_spend", "avg_purchases_per_week")),
            })
        # Both tables, every day of the run, in one transaction: a failure or a kill
        # leaves the previous segments and overlaps of every day, never one without the
        # other.
        warehouse.replace_together([
            TableWrite.partition_range("user_segments", pl.concat(all_segments),
                                       days[0], days[-1]),
            TableWrite.partition_range("segment_overlap", pl.concat(all_overlaps),
                                       days[0], days[-1]),
        ])
        yield dg.MaterializeResult(asset_key="user_segments")
        yield dg.MaterializeResult(asset_key="segment_overlap")
        yield from reporter.finish()

    return [build_purchase_history_asset(first_partition_date, partitions),
            behavioral_profiles, user_segments]
