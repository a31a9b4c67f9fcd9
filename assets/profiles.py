"""Behavioral profiles: read the staged window, call the transform, write, report.

The transform (`transforms/profiles.py`) knows nothing of Dagster; this module reads
exactly the Parquet days a window needs, writes the warehouse partition plus a Parquet
snapshot for downstream Polars steps, and reports the pattern mix. Whether the inputs are
complete is checked first (`assets/profile_inputs.py`); the purchase history it reads is
its own asset (`assets/purchase_history.py`), the segments over it are
`assets/segments.py`.

The profile day and its snapshot become current together, at the warehouse commit
(resources/committed_snapshots.py), and downstream steps read the snapshot version the
warehouse committed.
"""

import datetime as dt
from collections.abc import Callable
from typing import Optional

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext
from pydantic import create_model

from assets.completeness import HISTORY
from assets.partition_results import PartitionReporter
from assets.partitions import as_of_end, partition_days, run_now
from assets.profile_inputs import check_inputs, window_first_day
from assets.purchase_history import build_purchase_history_asset
from assets.reporting import pattern_chart
from assets.retries import TRANSIENT_RETRY, retry_transient_only
from resources.committed_snapshots import publish
from resources.staging import StagingStore
from resources.table_writes import TableWrite
from resources.warehouse import Warehouse
from transforms.profile_checks import duplicated_users, pattern_counts, unknown_patterns
from transforms.profiles import compute_profiles
from transforms.thresholds import PatternThresholds
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


def text_ids_through(warehouse: Warehouse, day: dt.date) -> Callable[[], pl.DataFrame]:
    """The dictionary of text user ids staged up to `day`, read only if a profile needs
    it (an integer source has none, and pays nothing)."""
    return lambda: warehouse.read_named("user_keys_through", {"day": day})


def _profile_checks(partitions: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    def spec(name: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(name, asset=PROFILES, blocking=blocking,
                                 partitions_def=partitions, description=description)

    return [
        spec("inputs_complete", "Every staged day of the window is complete and the purchase "
                                "history covers every day since the first partition; checked "
                                "before computing."),
        spec("one_row_per_user", "No user appears twice in a partition."),
        spec("known_patterns_only", "Only the 8 pattern names occur."),
        spec("transaction_ids_once_in_window",
             "No transaction id is staged on two days of the window; where one is, only its "
             "earliest copy is counted and the others are listed (warns).", blocking=False),
    ]


def build_profile_assets(first_partition_date: dt.date, partitions: dg.PartitionsDefinition,
                         thresholds: PatternThresholds) -> list[dg.AssetsDefinition]:
    """`purchase_history` and `behavioral_profiles` for the given daily partitions;
    `thresholds` are the code location's (their lookback is declared)."""

    # Lineage: day D reads the staged days of its window. For a closed day that is D-89..D
    # (lookback 90); today's window ends at the run's start, so it reaches into D-90.
    window_mapping = dg.TimeWindowPartitionMapping(
        start_offset=-thresholds.lookback_days,
        allow_nonexistent_upstream_partitions=True,
    )

    @dg.asset(
        # `inputs_complete` reads the window's bookkeeping rows as well as its files
        deps=[dg.AssetDep("valid_transactions", partition_mapping=window_mapping),
              dg.AssetDep("staged_partitions", partition_mapping=window_mapping), HISTORY],
        group_name=PROFILE_GROUP,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=_profile_checks(partitions),
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
        refusal = check_inputs(reporter, warehouse, staging, first_partition_date, days, now,
                               resolved.lookback_days)
        if refusal:
            # Refuse before computing anything: a profile from a partial window is wrong,
            # not approximate. The evaluations name every missing day.
            yield from reporter.finish()
            raise dg.Failure(description=refusal, allow_retries=False)
        for day in days:
            profiles = _profile_day(reporter, staging, warehouse, resolved, day,
                                    as_of_end(day, now))
            context.log.info(f"{day}: {profiles.height:,} profiles")
        yield dg.MaterializeResult(metadata={
            "thresholds": dg.MetadataValue.json(resolved.model_dump()),
        })
        yield from reporter.finish()

    return [build_purchase_history_asset(first_partition_date, partitions),
            behavioral_profiles]


def _profile_day(reporter: PartitionReporter, staging: StagingStore, warehouse: Warehouse,
                 thresholds: PatternThresholds, day: dt.date, end: dt.datetime
                 ) -> pl.DataFrame:
    """Compute, publish and check day D's profiles from its window and purchase history."""
    first_day = window_first_day(end, thresholds.lookback_days)
    window = staging.scan_days(first_day, day)
    duplicates = find_window_duplicates(window, staging.id_ranges(first_day, day))
    reporter.check(PROFILES, "transaction_ids_once_in_window", day,
                   passed=not duplicates.ids, severity=dg.AssetCheckSeverity.WARN,
                   evidence={"ids_on_several_days": duplicates.ids,
                             "copies_not_counted": duplicates.rows_dropped,
                             "examples": duplicates.examples()})
    history = pl.scan_parquet(staging.snapshot_path(HISTORY, day))
    profiles = with_source_user_ids(
        compute_profiles(without_duplicates(window, duplicates), as_of_end=end,
                         thresholds=thresholds, history=history, as_of_date=day),
        text_ids_through(warehouse, day))
    publish(staging, warehouse, PROFILES, day, profiles,
            [TableWrite.partition(PROFILES, profiles, day)])
    twice = duplicated_users(profiles)
    reporter.check(PROFILES, "one_row_per_user", day, passed=twice.is_empty(),
                   evidence={"users": profiles.height, "duplicated_users": twice.len(),
                             "examples": str(twice.head(10).to_list())})
    unknown = unknown_patterns(profiles)
    reporter.check(PROFILES, "known_patterns_only", day,
                   passed=not unknown, evidence={"unknown_patterns": str(unknown)})
    counts = pattern_counts(profiles)
    reporter.metadata(PROFILES, day, {
        "users": profiles.height,
        "as_of_end": end.isoformat(),
        **{f"pattern/{name}": count for name, count in counts.items()},
        "pattern_mix": pattern_chart(counts, profiles.height),
    })
    return profiles
