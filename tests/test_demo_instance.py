"""The demo's event log storage (pipelines/demo_instance.py) stores what Dagster's own does.

Runs go through an instance configured by `demo_instance_yaml`; a second instance on the
same files with Dagster's default storage (no dagster.yaml: `SqliteEventLogStorage`, as a
plain `dagster dev` on that home would use) must read back every event and the asset and
check records, so the files stay Dagster's own format.
"""

from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext
from dagster._core.storage.event_log import SqliteEventLogStorage

from pipelines.demo_instance import (
    MAX_ENGINES,
    ReusedEngineSqliteEventLogStorage,
    demo_instance_yaml,
)

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01")


@dg.asset(partitions_def=DAYS)
def numbers(context: AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"day": context.partition_key})


@dg.asset_check(asset=numbers)
def numbers_present() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"rows": 3})


JOB = dg.define_asset_job("numbers_job", selection=[numbers])
DEFS = dg.Definitions(assets=[numbers], asset_checks=[numbers_present], jobs=[JOB])


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(demo_instance_yaml(home))
    return home


def test_the_demo_instance_writes_what_dagster_reads(tmp_path: Path) -> None:
    home = _home(tmp_path)
    days = [f"2026-01-{day:02d}" for day in range(1, MAX_ENGINES + 5)]  # past the cap
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, ReusedEngineSqliteEventLogStorage)
        results = [DEFS.resolve_job_def("numbers_job").execute_in_process(
            instance=instance, partition_key=day) for day in days]
        assert all(result.success for result in results)
        written = {result.run_id: [event.dagster_event_type for event in
                                   instance.all_logs(result.run_id)] for result in results}
        engines = len(instance.event_log_storage._engines)
    assert engines <= MAX_ENGINES

    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # Dagster's default
    with dg.DagsterInstance.from_config(str(home)) as plain:
        assert type(plain.event_log_storage) is SqliteEventLogStorage
        for run_id, types in written.items():
            assert [event.dagster_event_type for event in plain.all_logs(run_id)] == types
            assert dg.DagsterEventType.ASSET_MATERIALIZATION in types
        materialized = plain.get_materialized_partitions(dg.AssetKey("numbers"))
        assert materialized == set(days)
        check = plain.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("numbers"), "numbers_present")])
        assert len(check) == 1


def test_a_second_instance_in_another_process_sees_the_runs(tmp_path: Path) -> None:
    """`make ui` reads the demo's home while nothing holds it: a fresh instance (as the
    webserver creates) lists the runs the demo instance wrote."""
    home = _home(tmp_path)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_id = DEFS.resolve_job_def("numbers_job").execute_in_process(
            instance=instance, partition_key="2026-01-02").run_id
    with dg.DagsterInstance.from_config(str(home)) as again:
        assert again.get_run_by_id(run_id) is not None
        assert any(event.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS
                   for event in again.all_logs(run_id))
