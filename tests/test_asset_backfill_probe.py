"""Asset backfills launched the way the UI launches them, on the embedded DuckDB warehouse.

Each test builds a deployment (tests/asset_backfills.py): the code location loaded from
MARKETING_* variables like `workspace.yaml` loads it, the `launchPartitionBackfill` mutation
with the asset dialog's parameters, and the backfill daemon's iterations until the backfill
is terminal, runs executing synchronously in-process. The question each test answers: does
the backfill materialize every chosen partition of every selected asset, and when it cannot,
does it fail loudly?

Reported in production: "A UI backfill of the campaign group over 2 days targets only 1
partition of ai_campaigns, campaign_audience and campaign_copy (the dialog says 2, the
backfill says Succeeded)".
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus
from dagster._core.storage.tags import BACKFILL_ID_TAG

from assets.partitions import AS_OF_NOW_TAG
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from pipelines.runner import run_job_for_days
from tests.asset_backfills import (
    FROM_UI_TAG,
    AssetBackfillOutcome,
    backfill_deployment,
    partition_names,
    run_asset_backfill,
)
from tests.pipeline_helpers import START, PipelineUnderTest, generated_source, last_day
from tests.warehouse_snapshots import take_snapshot

DAYS_TO_TODAY = 8
# Well after the generated history: every backfilled day is complete, none is the latest.
NOW = dt.datetime.combine(START + dt.timedelta(days=20), dt.time(12), tzinfo=dt.UTC)

Expected = Mapping[dg.AssetKey, frozenset[str]]


@pytest.fixture(autouse=True)
def _template_copy_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """campaign_copy falls back to template copy without a key: no network in these tests."""
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)


def _pipeline(tmp_path: Path) -> PipelineUnderTest:
    return generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb")


def _selection(graph, group: str | None = None) -> list[dg.AssetKey]:
    """Materializable assets (what the UI lets one select), of one group or all."""
    return sorted((key for key in graph.get_all_asset_keys()
                   if graph.get(key).is_materializable
                   and (group is None or graph.get(key).group_name == group)),
                  key=lambda key: key.to_user_string())


def _expected(graph, keys: Sequence[dg.AssetKey], first: dt.date, last: dt.date) -> Expected:
    days = frozenset(partition_names(first, last))
    return {key: days for key in keys if graph.get(key).is_partitioned}


def _assert_backfilled(outcome: AssetBackfillOutcome, expected: Expected,
                       now: dt.datetime = NOW) -> None:
    """Every chosen partition of every selected asset targeted, materialized by the
    backfill's runs, nothing failed, nothing targeted outside the choice, and every run
    carries the backfill's tags (the pinned clock above all)."""
    names = {key.to_user_string(): days for key, days in expected.items()}
    untargeted = {name: sorted(days - outcome.targeted.get(dg.AssetKey(name), frozenset()))
                  for name, days in names.items()}
    untargeted = {name: days for name, days in untargeted.items() if days}
    assert not untargeted, f"chosen partitions the backfill does not target: {untargeted}\n" \
                           f"{outcome}"
    assert outcome.succeeded, f"backfill did not succeed\n{outcome}"
    assert not outcome.missing(expected), \
        f"chosen partitions not materialized: {outcome.missing(expected)}\n{outcome}"
    assert outcome.runs and all(run.status == dg.DagsterRunStatus.SUCCESS
                                for run in outcome.runs), str(outcome)
    beyond = {key.to_user_string(): sorted(days - expected.get(key, frozenset()))
              for key, days in outcome.targeted.items()}
    beyond = {name: days for name, days in beyond.items() if days}
    assert not beyond, f"targets partitions outside the chosen range: {beyond}\n{outcome}"
    for run in outcome.runs:
        assert run.tags.get(AS_OF_NOW_TAG) == now.isoformat(), run.tags
        assert run.tags.get(FROM_UI_TAG) == "true", run.tags
        assert run.tags.get(BACKFILL_ID_TAG) == outcome.backfill_id, run.tags


# --------------------------------------------------------------------------- the helper


def test_helper_plans_like_the_daemon_and_catches_what_is_missing(tmp_path: Path) -> None:
    """The ingest group over 3 days: the multi-asset and the self-dependent
    purchase_history each get one run over the range (single_run policies), in dependency
    order, with the backfill's tags. The checks used by the probes below do fail on a
    missing partition and on a backfill that does not finish, and MARKETING_* variables
    come back as they were."""
    pipeline = _pipeline(tmp_path)
    before = {key: value for key, value in os.environ.items() if key.startswith("MARKETING_")}
    first, last = START, START + dt.timedelta(days=2)
    with backfill_deployment(pipeline.settings) as deployment:
        assert os.environ["MARKETING_STAGING_DIR"] == pipeline.settings.staging_dir
        graph = deployment.asset_graph
        keys = _selection(graph, "ingest")
        outcome = run_asset_backfill(deployment.instance, keys, first, last, now=NOW,
                                     workspace=deployment.workspace)
        expected = _expected(graph, keys, first, last)
        _assert_backfilled(outcome, expected)
        plan = [(sorted(key.to_user_string() for key in run.asset_keys), run.partitions,
                 run.iteration) for run in outcome.runs]
        assert plan == [
            (["rejected_files", "rejected_transactions", "staged_partitions",
              "valid_transactions"], "2026-02-01...2026-02-03", 0),
            (["purchase_history"], "2026-02-01...2026-02-03", 1),
        ], plan

        # One partition more than was backfilled: the probes' checks notice.
        extra = (START + dt.timedelta(days=3)).isoformat()
        larger = {key: days | {extra} for key, days in expected.items()}
        assert outcome.missing(larger) == {key.to_user_string(): [extra] for key in expected}
        with pytest.raises(AssertionError, match="does not target"):
            _assert_backfilled(outcome, larger)

        # The iteration cap: a backfill that needs two iterations, allowed one (and without
        # a workspace: the helper loads the code location from the exported settings).
        with pytest.raises(AssertionError, match="not terminal after 1 daemon iterations"):
            run_asset_backfill(deployment.instance, keys, first, last, now=NOW,
                               max_iterations=1)
    after = {key: value for key, value in os.environ.items() if key.startswith("MARKETING_")}
    assert after == before


# --------------------------------------------------------------------------- the probes


def test_ui_backfill_of_the_whole_graph_over_past_days_of_a_fresh_deployment_is_refused(
        tmp_path: Path) -> None:
    """Every materializable asset, START..last_day(), nothing staged before, today far later.

    Dagster applies the chosen days to the selection's roots and targets, downstream, every
    partition their partition mappings reach from those days; the profiles' 90-day lookback
    reaches 90 days forward, and those days are not staged. Nothing may be computed from
    them: the backfill fails, the profiles materialize nothing, and the refusal says why
    the extra days are there and what to run."""
    pipeline = _pipeline(tmp_path)
    with backfill_deployment(pipeline.settings) as deployment:
        keys = _selection(deployment.asset_graph)
        outcome = run_asset_backfill(deployment.instance, keys, START, last_day(), now=NOW,
                                     workspace=deployment.workspace)
    assert outcome.status == BulkActionStatus.COMPLETED_FAILED, str(outcome)
    profiles = dg.AssetKey("behavioral_profiles")
    assert max(outcome.targeted[profiles]) > last_day().isoformat(), str(outcome)
    assert not outcome.materialized.get(profiles), str(outcome)
    refusals = [failure for failure in outcome.failures
                if failure.startswith("behavioral_profiles:")]
    assert refusals, str(outcome)
    first_unstaged = (last_day() + dt.timedelta(days=1)).isoformat()
    assert f"marketing ingest {first_unstaged}" in refusals[0], refusals[0]
    assert "lookback window" in refusals[0] and "refresh_all" in refusals[0], refusals[0]


@pytest.mark.slow
def test_ui_backfill_of_the_whole_graph_up_to_today_equals_the_day_by_day_replay(
        tmp_path: Path) -> None:
    """A deployment whose history ends today (the usual case): the UI backfill of every
    asset over the whole history targets exactly the chosen days and leaves the same tables
    and files as running `refresh_all` one day at a time."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    first = now.date() - dt.timedelta(days=DAYS_TO_TODAY - 1)

    def deployment_at(name: str) -> PipelineUnderTest:
        (tmp_path / name).mkdir()
        return generated_source(tmp_path / name, f"duckdb:///{tmp_path / name}/source.duckdb",
                                days=DAYS_TO_TODAY, start=first, until=now)

    replay = deployment_at("replay")
    for day in partition_names(first, now.date()):
        run_job_for_days(replay.definitions, ALL_ASSETS_JOB, dt.date.fromisoformat(day),
                         dt.date.fromisoformat(day), instance=replay.instance, now=now)
    ui = deployment_at("ui")
    with backfill_deployment(ui.settings) as deployment:
        graph = deployment.asset_graph
        keys = _selection(graph)
        outcome = run_asset_backfill(deployment.instance, keys, first, now.date(), now=now,
                                     workspace=deployment.workspace)
    _assert_backfilled(outcome, _expected(graph, keys, first, now.date()), now)
    reference = take_snapshot(replay.settings)
    assert reference.rows("ai_campaigns") > 0 and reference.rows("behavioral_profiles") > 0
    differences = take_snapshot(ui.settings).differences(reference)
    assert not differences, "\n".join(differences[:20])


def test_ui_backfill_of_the_campaigns_group_over_two_days_materializes_both_days(
        tmp_path: Path) -> None:
    """History first (ingest of every day, the whole graph day by day up to the day before
    the range, the profiles of the range), then the `campaigns` group alone over the last
    two days: every asset of the group gets both partitions."""
    pipeline = _pipeline(tmp_path)
    definitions = pipeline.definitions
    first, last = last_day() - dt.timedelta(days=1), last_day()
    with backfill_deployment(pipeline.settings) as deployment:
        instance = deployment.instance
        run_job_for_days(definitions, INGEST_JOB, START, last, instance=instance, now=NOW)
        day = START
        while day < first:
            run_job_for_days(definitions, ALL_ASSETS_JOB, day, day, instance=instance, now=NOW)
            day += dt.timedelta(days=1)
        graph = deployment.asset_graph
        profile_keys = _selection(graph, "profiles")
        profiles = run_asset_backfill(instance, profile_keys, first, last, now=NOW,
                                      workspace=deployment.workspace)
        _assert_backfilled(profiles, _expected(graph, profile_keys, first, last))

        keys = _selection(graph, "campaigns")
        # The assets of the report are in the group (the list itself comes from the graph).
        assert {"ai_campaigns", "campaign_audience", "campaign_copy"} <= {
            key.to_user_string() for key in keys}
        outcome = run_asset_backfill(instance, keys, first, last, now=NOW,
                                     workspace=deployment.workspace)
    _assert_backfilled(outcome, _expected(graph, keys, first, last))


def test_ui_backfill_of_the_profiles_group_from_the_first_day_after_ingest(
        tmp_path: Path) -> None:
    """After ingest of every day, the `profiles` group alone over START..START+3 (the first
    partition has no day before it for the lookback or the history): every partition is
    materialized."""
    pipeline = _pipeline(tmp_path)
    first, last = START, START + dt.timedelta(days=3)
    with backfill_deployment(pipeline.settings) as deployment:
        run_job_for_days(pipeline.definitions, INGEST_JOB, START, last_day(),
                         instance=deployment.instance, now=NOW)
        graph = deployment.asset_graph
        keys = _selection(graph, "profiles")
        assert {"behavioral_profiles", "user_segments"} <= {key.to_user_string()
                                                           for key in keys}
        outcome = run_asset_backfill(deployment.instance, keys, first, last, now=NOW,
                                     workspace=deployment.workspace)
    _assert_backfilled(outcome, _expected(graph, keys, first, last))


def test_ui_backfill_of_the_profiles_group_before_any_ingest_fails_naming_the_days(
        tmp_path: Path) -> None:
    """A fresh deployment, the `profiles` group alone: nothing is staged, so the backfill
    fails, names every refused day and says why (not staged), and materializes nothing."""
    pipeline = _pipeline(tmp_path)
    first, last = START, START + dt.timedelta(days=3)
    with backfill_deployment(pipeline.settings) as deployment:
        graph = deployment.asset_graph
        keys = _selection(graph, "profiles")
        outcome = run_asset_backfill(deployment.instance, keys, first, last, now=NOW,
                                     workspace=deployment.workspace)
    days = partition_names(first, last)
    assert outcome.status == BulkActionStatus.COMPLETED_FAILED, str(outcome)
    assert not outcome.materialized, str(outcome)
    assert outcome.failed_and_downstream == outcome.targeted == _expected(graph, keys, first,
                                                                          last), str(outcome)
    refusals = [failure for failure in outcome.failures
                if failure.startswith("behavioral_profiles:") and "refused" in failure]
    assert refusals and f"{days[0]}..{days[-1]}" in refusals[0], str(outcome)
    for day in days:
        reasons = [check for check in outcome.failed_checks
                   if "behavioral_profiles/inputs_complete" in check and f"[{day}]" in check]
        assert reasons and "not staged" in reasons[0], str(outcome)
