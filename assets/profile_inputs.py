"""Is every input of a profile there? The `inputs_complete` check of `behavioral_profiles`,
and the refusal a data engineer can act on when it fails.

A profile from a partial window is wrong, not approximate, so the step checks every day
first and refuses before computing anything (assets/completeness.py has the evidence:
bookkeeping rows and Parquet tokens).
"""

import datetime as dt

import dagster as dg

from assets.completeness import (
    AS_OF_END,
    HISTORY,
    Gap,
    history_chain_gap,
    staged_window_gaps,
)
from assets.partition_results import PartitionReporter
from assets.partitions import as_of_end
from resources.staging import StagingStore
from resources.warehouse import Warehouse


def window_first_day(end: dt.datetime, lookback_days: int) -> dt.date:
    """The first staged day the window touches (a partial day when `end` is not midnight)."""
    return (end - dt.timedelta(days=lookback_days)).date()


def check_inputs(reporter: PartitionReporter, warehouse: Warehouse, staging: StagingStore,
                 first_partition: dt.date, days: list[dt.date], now: dt.datetime,
                 lookback_days: int) -> str | None:
    """Record `inputs_complete` for every day; the refusal, in words, if any day failed
    (the step yields the evaluations, then raises it: each partition's check names its
    problems)."""
    gaps_by_day: dict[dt.date, list[Gap]] = {}
    for day in days:
        end = as_of_end(day, now)
        gaps = _incomplete_inputs(warehouse, staging, first_partition, day, end,
                                  lookback_days)
        first = max(first_partition, window_first_day(end, lookback_days))
        reporter.check("behavioral_profiles", "inputs_complete", day, passed=not gaps,
                       evidence=_completeness_evidence(gaps, first, day))
        gaps_by_day[day] = gaps
    failed = reporter.failed()
    return _refusal(failed, days, gaps_by_day) if failed else None


def _incomplete_inputs(warehouse: Warehouse, staging: StagingStore, first_partition: dt.date,
                       day: dt.date, end: dt.datetime, lookback_days: int) -> list[Gap]:
    """What day D's profile would be missing: window days not staged, a history chain that
    is broken or was built for another `as_of_end`."""
    first = max(first_partition, window_first_day(end, lookback_days))
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
