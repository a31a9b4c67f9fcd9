"""The code location loads, and every job and schedule resolves (a broken import fails CI)."""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.definitions import build_definitions, defs
from pipelines.jobs import ALL_ASSETS_JOB
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


def test_thresholds_come_from_defaults_then_environment_then_run_config() -> None:
    from assets.profiles import PatternThresholdsConfig, resolve_thresholds
    from transforms.thresholds import PatternThresholds

    settings = PipelineSettings.from_env({"MARKETING_PATTERN_INACTIVE_DAYS": "45",
                                          "MARKETING_PATTERN_WEEKEND_SHARE": "0.6"})
    resolved = resolve_thresholds(PatternThresholdsConfig(weekend_share=0.9),
                                  settings.pattern_thresholds)
    assert resolved.inactive_days == 45  # environment
    assert resolved.weekend_share == 0.9  # run config wins over the environment
    assert resolved.seasonal_ratio == PatternThresholds().seasonal_ratio  # default


def test_the_declared_lookback_follows_the_environment_and_run_config_cannot_change_it(
) -> None:
    """The profiles' partition mapping is the configured lookback, not a frozen 90, and a
    run may not read another window than the one declared to Dagster."""
    from assets.profiles import PatternThresholdsConfig, resolve_thresholds

    settings = PipelineSettings.from_env({"MARKETING_PATTERN_LOOKBACK_DAYS": "30",
                                          "MARKETING_FIRST_PARTITION_DATE": "2026-01-01"})
    graph = build_definitions(settings).resolve_asset_graph()
    mapping = graph.get_partition_mapping(dg.AssetKey("behavioral_profiles"),
                                          dg.AssetKey("valid_transactions"))
    assert isinstance(mapping, dg.TimeWindowPartitionMapping)
    assert mapping.start_offset == -30
    upstream = mapping.get_upstream_mapped_partitions_result_for_partitions(
        graph.get(dg.AssetKey("behavioral_profiles")).partitions_def.get_partition_subset_in_time_window(
            dg.TimeWindow(dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
                          dt.datetime(2026, 3, 2, tzinfo=dt.UTC))),
        graph.get(dg.AssetKey("valid_transactions")).partitions_def,
        graph.get(dg.AssetKey("valid_transactions")).partitions_def,
    ).partitions_subset.get_partition_keys()
    assert upstream[0] == "2026-01-30" and upstream[-1] == "2026-03-01"
    with pytest.raises(dg.Failure, match="lookback_days=60"):
        resolve_thresholds(PatternThresholdsConfig(lookback_days=60),
                           settings.pattern_thresholds)


def test_every_threshold_is_a_launchpad_setting_of_the_profile_asset() -> None:
    from transforms.thresholds import PatternThresholds

    definitions = build_definitions(PipelineSettings(first_partition_date=dt.date(2026, 1, 1)))
    job = definitions.resolve_job_def("refresh_all")
    op_config = job.run_config_schema.config_type.fields["ops"].config_type.fields[
        "behavioral_profiles"].config_type.fields["config"].config_type.fields
    assert set(op_config) == set(PatternThresholds.model_fields)


def _documented_run_configs() -> list[tuple[str, str]]:
    """Every YAML block starting with `ops:` in the docs, with the file it is in."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    blocks = []
    for page in ("operations.md", "configuration.md"):
        text = (docs / page).read_text()
        for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
            if textwrap.dedent(block).startswith("ops:"):
                blocks.append((page, textwrap.dedent(block)))
    return blocks


def test_the_documented_run_config_is_valid() -> None:
    """The launchpad examples in the docs name real steps and fields of `refresh_all`."""
    blocks = _documented_run_configs()
    assert len(blocks) >= 2
    job = build_definitions(PipelineSettings()).resolve_job_def(ALL_ASSETS_JOB)
    for page, block in blocks:
        config = yaml.safe_load(block)
        result = dg.validate_run_config(job, config)
        assert result, f"{page}: {block}"
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"ops": {"plan_and_target_campaigns": {"config": {}}}})
