"""A run worker killed (SIGKILL, a real subprocess) in the middle of a multi-table step
leaves the previous version of every table intact and consistent, on both warehouses.

The worker is frozen at a named fault point (resources/fault_points.py: right after a
table's rows were written inside the step's transaction, or right after the commit) and
killed there, so where it dies is deterministic. Each test then checks the tables against
a snapshot taken before, checks the invariants that tie the tables together, and finally
lets the same step run to completion to show that it did have a different version to
write (a kill that interrupted nothing would prove nothing) and that nothing the killed
worker left behind gets in its way.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import polars as pl
import psycopg
import pytest

from resources.committed_snapshots import committed_version, pending_files, read_committed
from resources.staging import StagingStore
from tests.pipeline_helpers import PipelineUnderTest, generated_source, last_day
from tests.step_runs import CYCLE_ASSETS, kill_at, materialize_days

DAYS = 30
LAST = last_day(DAYS)
DAY = LAST - dt.timedelta(days=1)  # planned campaigns; LAST plans none and measures DAY's
NOW = dt.datetime.combine(LAST, dt.time(18), tzinfo=dt.UTC)
CYCLE_COLUMNS = {"ai_campaigns": "as_of_date", "campaign_audience": "as_of_date",
                 "campaign_status": "as_of_date", "campaign_metrics": "metric_date",
                 "campaign_delivery": "as_of_date", "campaign_incrementality": "as_of_date"}
PROFILES = "behavioral_profiles"


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> PipelineUnderTest:
    """The whole graph run for DAY and LAST over 30 days of generated history."""
    root = tmp_path_factory.mktemp(f"kill_{request.param}")
    warehouse_url, schema = None, "marketing"
    if request.param == "postgres":
        warehouse_url = request.getfixturevalue("postgres_url")
        schema = f"k_{uuid.uuid4().hex[:8]}"
    pipeline = generated_source(root, f"duckdb:///{root}/source.duckdb", users=300, days=DAYS,
                                warehouse_url=warehouse_url, warehouse_schema=schema)
    pipeline.run_graph_days(DAY, LAST, NOW)
    return pipeline


def _all_rows(pipeline: PipelineUnderTest, tables: list[str]) -> dict[str, pl.DataFrame]:
    frames = {}
    for table in tables:
        frame = pipeline.warehouse.read(f"SELECT * FROM {table}")
        frames[table] = frame.sort(frame.columns) if frame.height else frame
    return frames


def _differences(before: dict[str, pl.DataFrame], after: dict[str, pl.DataFrame]
                 ) -> list[str]:
    return [table for table in before if not before[table].equals(after[table])]


def _cycle_config(budget: float) -> dict:
    return {"ops": {"campaign_cycle": {"config": {"total_daily_budget": budget}}}}


def _profile_config(percentile: float) -> dict:
    return {"ops": {PROFILES: {"config": {"high_spender_percentile": percentile}}}}


def _cycle_inconsistencies(pipeline: PipelineUnderTest, day: dt.date) -> list[str]:
    """What ties the cycle tables of a day together, as a list of what is broken."""
    read = pipeline.warehouse.read
    planned = read("SELECT campaign_id, audience_size FROM ai_campaigns WHERE as_of_date = :d",
                   {"d": day})
    ever = set(read("SELECT campaign_id FROM ai_campaigns WHERE as_of_date <= :d",
                    {"d": day})["campaign_id"])
    audience = read("SELECT campaign_id, is_holdout FROM campaign_audience "
                    "WHERE as_of_date = :d", {"d": day})
    statuses = set(read("SELECT campaign_id FROM campaign_status WHERE as_of_date = :d",
                        {"d": day})["campaign_id"])
    measured = set(read("SELECT campaign_id FROM campaign_metrics WHERE metric_date = :d",
                        {"d": day})["campaign_id"])
    problems = []
    if not set(audience["campaign_id"]) <= set(planned["campaign_id"]):
        problems.append("campaign_audience targets campaigns ai_campaigns does not plan")
    treated = dict(audience.filter(~pl.col("is_holdout")).group_by("campaign_id").len()
                   .iter_rows())
    sizes = dict(planned.iter_rows())
    if any(size != treated.get(campaign, 0) for campaign, size in sizes.items()):
        problems.append("ai_campaigns.audience_size disagrees with campaign_audience")
    if not set(planned["campaign_id"]) <= statuses <= ever:
        problems.append("campaign_status does not cover exactly the campaigns planned")
    if not measured <= ever:
        problems.append("campaign_metrics measures campaigns that were never planned")
    return problems


@pytest.mark.parametrize(("point", "budget"), [("campaign_audience", 1.0),
                                               ("campaign_incrementality", 2.0)])
def test_a_worker_killed_between_the_campaign_tables_leaves_the_old_day(
        deployment: PipelineUnderTest, tmp_path: Path, point: str, budget: float) -> None:
    """Killed after the second of the six cycle tables, or after the last one but before
    the commit: every cycle table, every day, is exactly as before."""
    before = _all_rows(deployment, list(CYCLE_COLUMNS))
    assert _cycle_inconsistencies(deployment, DAY) == []
    kill_at(point, deployment.settings, CYCLE_ASSETS, DAY, now=NOW, scratch=tmp_path,
            run_config=_cycle_config(budget))
    after = _all_rows(deployment, list(CYCLE_COLUMNS))
    assert _differences(before, after) == []
    assert _cycle_inconsistencies(deployment, DAY) == []
    # The same step, not killed, had a new version to write, and nothing left in its way.
    materialize_days(deployment.settings, CYCLE_ASSETS, DAY, DAY, now=NOW,
                     instance=deployment.instance, run_config=_cycle_config(budget))
    assert _differences(before, _all_rows(deployment, list(CYCLE_COLUMNS)))
    assert _cycle_inconsistencies(deployment, DAY) == []


def test_a_worker_killed_between_segments_and_overlap_leaves_both(
        deployment: PipelineUnderTest, tmp_path: Path) -> None:
    tables = ["user_segments", "segment_overlap"]
    # New profiles first (committed), so the segments have a new version to write.
    materialize_days(deployment.settings, [PROFILES], LAST, LAST, now=NOW,
                     instance=deployment.instance, run_config=_profile_config(0.5))
    before = _all_rows(deployment, tables)
    # After the second table: with one transaction per table the first would be new.
    kill_at("segment_overlap", deployment.settings, ["user_segments"], LAST, now=NOW,
            scratch=tmp_path)
    assert _differences(before, _all_rows(deployment, tables)) == []
    materialize_days(deployment.settings, ["user_segments"], LAST, LAST, now=NOW,
                     instance=deployment.instance)
    assert _differences(before, _all_rows(deployment, tables)) == tables


def _profile_rows(pipeline: PipelineUnderTest) -> pl.DataFrame:
    return pipeline.warehouse.read(
        "SELECT user_id, detected_patterns FROM behavioral_profiles WHERE as_of_date = :d "
        "ORDER BY user_id", {"d": LAST})


def _snapshot_rows(pipeline: PipelineUnderTest) -> pl.DataFrame:
    """The profile rows the Polars steps read: the version the warehouse committed."""
    staging = StagingStore(base_dir=pipeline.settings.staging_dir)
    return read_committed(staging, pipeline.warehouse, PROFILES, LAST).select(
        "user_id", "detected_patterns").sort("user_id")


def _file_rows(pipeline: PipelineUnderTest) -> pl.DataFrame:
    path = StagingStore(base_dir=pipeline.settings.staging_dir).snapshot_path(PROFILES, LAST)
    return pl.read_parquet(path).select("user_id", "detected_patterns").sort("user_id")


def _load_tables(pipeline: PipelineUnderTest) -> list[str]:
    if pipeline.warehouse.dialect != "postgres":
        return []
    with psycopg.connect(pipeline.settings.warehouse_url) as connection:
        rows = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
            (pipeline.settings.warehouse_schema, "%\\_load\\_%")).fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize(("point", "percentile"), [(PROFILES, 0.6),
                                                   (f"{PROFILES}:committed", 0.7)])
def test_a_worker_killed_around_the_profile_commit_never_splits_table_and_snapshot(
        deployment: PipelineUnderTest, tmp_path: Path, point: str, percentile: float
        ) -> None:
    """Killed before the commit (the day written in its transaction, the new snapshot
    written under its pending name): the old day, the old version, the old file. Killed
    after the commit, before the rename: the new day, and readers get the new snapshot
    from the pending file. Either way the snapshot the Polars steps read is the day the
    warehouse holds, and the next write clears what the dead worker left."""
    staging = StagingStore(base_dir=deployment.settings.staging_dir)
    day_before, file_before = _profile_rows(deployment), _file_rows(deployment)
    version_before = committed_version(deployment.warehouse, PROFILES, LAST)
    kill_at(point, deployment.settings, [PROFILES], LAST, now=NOW, scratch=tmp_path,
            run_config=_profile_config(percentile))
    assert _snapshot_rows(deployment).equals(_profile_rows(deployment))
    assert _file_rows(deployment).equals(file_before)  # never overwritten before a commit
    assert len(pending_files(staging, PROFILES, LAST)) == 1  # what the killed worker left
    if point == PROFILES:
        assert _profile_rows(deployment).equals(day_before)
        assert committed_version(deployment.warehouse, PROFILES, LAST) == version_before
    else:
        assert not _profile_rows(deployment).equals(day_before)
        assert committed_version(deployment.warehouse, PROFILES, LAST) != version_before
    # Downstream steps read the committed version, whole.
    materialize_days(deployment.settings, ["user_segments"], LAST, LAST, now=NOW,
                     instance=deployment.instance)
    # The next write of the day settles the leftover (deleted, or renamed into place).
    materialize_days(deployment.settings, [PROFILES], LAST, LAST, now=NOW,
                     instance=deployment.instance, run_config=_profile_config(percentile))
    assert pending_files(staging, PROFILES, LAST) == []
    assert _load_tables(deployment) == []
    assert _file_rows(deployment).equals(_profile_rows(deployment))
    assert not _profile_rows(deployment).equals(day_before)
