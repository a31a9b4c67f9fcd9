"""The code location loads, and every job and schedule resolves (a broken import fails CI)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from pipelines.definitions import build_definitions, defs
from resources.settings import PipelineSettings


def test_definitions_load_and_every_job_and_schedule_resolves() -> None:
    definitions = build_definitions(PipelineSettings(first_partition_date=dt.date(2026, 1, 1)))
    jobs = definitions.resolve_all_job_defs()
    assert {job.name for job in jobs} >= {"refresh_all", "ingest"}
    for job in jobs:
        assert job.graph is not None
    schedule = definitions.resolve_schedule_def("hourly_refresh")
    assert schedule.cron_schedule == "5 * * * *"
    assert definitions.resolve_asset_graph().get_all_asset_keys()


def test_entry_point_reads_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MARKETING_FIRST_PARTITION_DATE", "2025-06-01")
    loaded = dg.Definitions.merge(defs())  # the @definitions entry point, as Dagster loads it
    graph = loaded.resolve_asset_graph()
    partitions = graph.get(dg.AssetKey("valid_transactions")).partitions_def
    assert partitions.get_first_partition_key() == "2025-06-01"


def test_settings_from_env_parse_types() -> None:
    settings = PipelineSettings.from_env({
        "MARKETING_WAREHOUSE_URL": "postgresql://u@h/db",
        "MARKETING_FIRST_PARTITION_DATE": "2026-02-03",
        "MARKETING_FUTURE_TOLERANCE_MINUTES": "10",
    })
    assert settings.first_partition_date == dt.date(2026, 2, 3)
    assert settings.future_tolerance_minutes == 10
    assert settings.warehouse_url == "postgresql://u@h/db"


def test_hourly_schedule_targets_todays_partition_with_an_hourly_run_key() -> None:
    definitions = build_definitions(PipelineSettings(first_partition_date=dt.date(2026, 1, 1)))
    schedule = definitions.resolve_schedule_def("hourly_refresh")
    tick = dt.datetime(2026, 3, 4, 15, 5, tzinfo=dt.UTC)
    with dg.build_schedule_context(
        scheduled_execution_time=tick, repository_def=definitions.get_repository_def()
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert requests is not None and len(requests) == 1
    assert requests[0].partition_key == "2026-03-04"
    assert requests[0].run_key == "hourly-2026-03-04T15"
    assert requests[0].tags["marketing/as_of_now"] == tick.isoformat()
