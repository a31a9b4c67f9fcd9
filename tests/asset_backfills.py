"""Asset backfills exactly as the Dagster UI launches them, run in-process and fast.

The UI's "Materialize" / "Launch backfill" dialog, on an asset selection or an asset group
with a partition range, sends the GraphQL mutation `launchPartitionBackfill` with
`{assetSelection, partitionNames, tags: [..., dagster/from_ui=true], fromFailure: false}`
(dagster-webserver's `LaunchAssetChoosePartitionsDialog.tsx`: the common job of a group
selection is the hidden `__ASSET_JOB`, so the dialog launches a *pure asset backfill*, not a
job backfill). The webserver resolves it in
`dagster_graphql/implementation/execution/backfill.py::create_and_launch_partition_backfill`,
which builds `PartitionBackfill.from_asset_partitions(...)`, validates it
(`assert_valid_asset_partition_backfill`) and stores it with `instance.add_backfill`.

Here the very same mutation is executed against an in-process workspace of our code
location (module `pipelines.definitions`, attribute `defs`, location `marketing`, as
`workspace.yaml` loads it). Then the backfill daemon's own iteration,
`dagster._daemon.backfill.execute_backfill_iteration` (which calls
`dagster._core.execution.asset_backfill.execute_asset_backfill_iteration`), is called in a
loop until the backfill reaches a terminal status. The instance's run launcher is
`SyncInMemoryRunLauncher`, so every run the daemon submits executes to completion inside
the submitting call: each iteration plans runs per each asset's BackfillPolicy and
partition mappings (self-dependencies included), executes them, and the next iteration
sees their materializations and plans what became runnable.

Work is counted, not seconds: a cap on daemon iterations, never a timeout.

Usage::

    with backfill_deployment(pipeline.settings) as deployment:
        outcome = run_asset_backfill(deployment.instance, keys, first, last,
                                     tags={AS_OF_NOW_TAG: now.isoformat()},
                                     workspace=deployment.workspace)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.execution.backfill import BULK_ACTION_TERMINAL_STATUSES, BulkActionStatus
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
)
from dagster._core.test_utils import (
    InProcessTestWorkspaceLoadTarget,
    create_test_daemon_workspace_context,
    instance_for_test,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.client.query import LAUNCH_PARTITION_BACKFILL_MUTATION
from dagster_graphql.test.utils import execute_dagster_graphql

from assets.partitions import AS_OF_NOW_TAG
from resources.settings import PipelineSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
# As workspace.yaml loads the code location.
MODULE_NAME = "pipelines.definitions"
ATTRIBUTE = "defs"
LOCATION_NAME = "marketing"
# The tag the UI adds to everything it launches (ui-core/src/launchpad/uiExecutionTags.tsx).
FROM_UI_TAG = "dagster/from_ui"
ENV_PREFIX = "MARKETING_"

_LOGGER = logging.getLogger("tests.asset_backfills")
# How much of a failure an outcome's description shows (the outcome keeps all of it).
SHOWN_CHECKS = 3
CLIP_CHARS = 600


def _clip(text: str) -> str:
    return text if len(text) <= CLIP_CHARS else f"{text[:CLIP_CHARS]}... ({len(text)} chars)"


# --------------------------------------------------------------------------- environment


@contextmanager
def exported_settings(settings: PipelineSettings) -> Iterator[dict[str, str]]:
    """Replace every MARKETING_* variable by those of `settings`, restoring them after.

    Checks the round trip: the code location's entry point must rebuild exactly
    `settings` from the environment, or the backfill would test another deployment.
    """
    wanted = settings.to_env()
    saved = {key: value for key, value in os.environ.items() if key.startswith(ENV_PREFIX)}
    for key in saved:
        del os.environ[key]
    os.environ.update(wanted)
    try:
        rebuilt = PipelineSettings.from_env()
        assert rebuilt == settings, f"settings do not round-trip the environment: {rebuilt}"
        yield wanted
    finally:
        for key in [key for key in os.environ if key.startswith(ENV_PREFIX)]:
            del os.environ[key]
        os.environ.update(saved)


def _forget_reconstructed_jobs() -> None:
    """Runs reconstruct the job from the code pointer (pipelines.definitions:defs), and
    Dagster keeps the last reconstructed job in a process-wide `lru_cache` keyed by the
    pointer alone, so the next deployment's first run could reuse the previous one's
    resources (another tmp_path). Forget it at each deployment's boundaries."""
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()


def code_location_target() -> InProcessTestWorkspaceLoadTarget:
    """Our code location, loaded in this process the way workspace.yaml names it."""
    return InProcessTestWorkspaceLoadTarget(InProcessCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name=MODULE_NAME,
                             attribute=ATTRIBUTE, working_directory=str(REPO_ROOT)),
        location_name=LOCATION_NAME,
    ))


@dataclass
class BackfillDeployment:
    """A test instance whose runs execute synchronously in-process, and the daemon's
    workspace of our code location loaded from the exported settings."""

    instance: dg.DagsterInstance
    workspace: WorkspaceProcessContext
    settings: PipelineSettings

    @property
    def asset_graph(self):
        """The remote asset graph the webserver and the daemon see."""
        return self.workspace.create_request_context().asset_graph


@contextmanager
def backfill_deployment(settings: PipelineSettings) -> Iterator[BackfillDeployment]:
    """Export `settings` as MARKETING_* variables, start a throwaway Dagster instance with
    `SyncInMemoryRunLauncher` (runs execute inside the daemon's submit call) and load the
    code location in-process, as the daemon and webserver would from workspace.yaml."""
    _forget_reconstructed_jobs()
    overrides = {
        # Submitted runs launch at once (no queue daemon to drain), and launching executes.
        "run_coordinator": {"module": "dagster._core.run_coordinator",
                            "class": "DefaultRunCoordinator"},
        "run_launcher": {"module": "dagster._core.launcher.sync_in_memory_run_launcher",
                         "class": "SyncInMemoryRunLauncher"},
    }
    try:
        with exported_settings(settings), instance_for_test(overrides=overrides) as instance, \
                create_test_daemon_workspace_context(code_location_target(),
                                                     instance) as workspace:
            entry = workspace.create_request_context().get_code_location_entries()[
                LOCATION_NAME]
            if entry.load_error is not None:
                raise AssertionError(f"code location failed to load: {entry.load_error}")
            yield BackfillDeployment(instance, workspace, settings)
    finally:
        _forget_reconstructed_jobs()


# --------------------------------------------------------------------------- outcome


@dataclass(frozen=True)
class BackfillRun:
    """One run the backfill launched, in launch order."""

    run_id: str
    status: dg.DagsterRunStatus
    iteration: int  # the daemon iteration that launched it (0-based)
    asset_keys: frozenset[dg.AssetKey]
    partition_key: str | None
    range_start: str | None
    range_end: str | None
    tags: Mapping[str, str]
    failures: tuple[str, ...]  # step / run failure messages, if it failed
    failed_checks: tuple[str, ...]  # asset check evaluations that did not pass
    materialized: Mapping[dg.AssetKey, frozenset[str]]

    @property
    def partitions(self) -> str:
        if self.range_start is not None:
            return f"{self.range_start}...{self.range_end}"
        return self.partition_key or "(unpartitioned)"

    def __str__(self) -> str:
        assets = ", ".join(sorted(key.to_user_string() for key in self.asset_keys))
        line = f"iteration {self.iteration}: {self.status.value} [{self.partitions}] {assets}"
        shown = [*self.failures, *self.failed_checks[:SHOWN_CHECKS]]
        if len(self.failed_checks) > SHOWN_CHECKS:
            shown.append(f"(+{len(self.failed_checks) - SHOWN_CHECKS} more failed checks)")
        return line + "".join(f"\n      ! {_clip(text)}" for text in shown)


def _by_asset(subset) -> dict[dg.AssetKey, frozenset[str]]:
    found: dict[dg.AssetKey, set[str]] = {}
    for asset_partition in subset.iterate_asset_partitions():
        found.setdefault(asset_partition.asset_key, set()).add(
            asset_partition.partition_key or "")
    return {key: frozenset(keys) for key, keys in found.items()}


@dataclass(repr=False)
class AssetBackfillOutcome:
    """What the backfill did, from the backfill record and the instance's event log."""

    backfill_id: str
    status: BulkActionStatus
    iterations: int
    runs: list[BackfillRun]
    # Per asset: partitions materialized by the backfill's runs (event log).
    materialized: dict[dg.AssetKey, frozenset[str]]
    # The backfill's own bookkeeping (AssetBackfillData).
    targeted: dict[dg.AssetKey, frozenset[str]]
    backfill_materialized: dict[dg.AssetKey, frozenset[str]]
    failed_and_downstream: dict[dg.AssetKey, frozenset[str]]
    error: str | None  # the backfill's own error (a daemon exception), if any
    daemon_errors: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == BulkActionStatus.COMPLETED_SUCCESS

    @property
    def failures(self) -> list[str]:
        return [failure for run in self.runs for failure in run.failures]

    @property
    def failed_checks(self) -> list[str]:
        return [check for run in self.runs for check in run.failed_checks]

    @property
    def targeted_count(self) -> int:
        return sum(len(keys) for keys in self.targeted.values())

    @property
    def failed_count(self) -> int:
        return sum(len(keys) for keys in self.failed_and_downstream.values())

    def missing(self, expected: Mapping[dg.AssetKey, set[str] | frozenset[str]]
                ) -> dict[str, list[str]]:
        """Expected partitions that no run of the backfill materialized, by asset."""
        gaps = {key.to_user_string(): sorted(set(days) - self.materialized.get(key, set()))
                for key, days in expected.items()}
        return {key: days for key, days in gaps.items() if days}

    def describe(self) -> str:
        def table(title: str, by_asset: Mapping[dg.AssetKey, frozenset[str]]) -> list[str]:
            rows = [f"  {title}:"]
            for key in sorted(by_asset, key=lambda k: k.to_user_string()):
                keys = sorted(by_asset[key])
                span = f"{keys[0]}..{keys[-1]}" if len(keys) > 1 else ",".join(keys)
                rows.append(f"    {key.to_user_string()}: {len(keys)} [{span}]")
            return rows

        lines = [f"backfill {self.backfill_id}: {self.status.value} after {self.iterations} "
                 f"daemon iterations, {len(self.runs)} runs, {self.targeted_count} targeted, "
                 f"{self.failed_count} failed/downstream"]
        if self.error:
            lines.append(f"  backfill error: {self.error}")
        lines += [f"  daemon error: {error}" for error in self.daemon_errors[:3]]
        lines.append("  runs:")
        lines += [f"    {run}" for run in self.runs]
        lines += table("targeted", self.targeted)
        lines += table("materialized by its runs", self.materialized)
        if self.failed_and_downstream:
            lines += table("failed and downstream", self.failed_and_downstream)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"<backfill {self.backfill_id}: {self.status.value}, {len(self.runs)} runs>"


def _failure_messages(instance: dg.DagsterInstance, run_id: str) -> tuple[str, ...]:
    messages = []
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_FAILURE,
                                                   dg.DagsterEventType.RUN_FAILURE}):
        event = entry.dagster_event
        if event is None:
            continue
        data = event.event_specific_data
        error = getattr(data, "error", None)
        user = getattr(data, "user_failure_data", None)
        text = (user.description if user is not None and user.description else None) or (
            f"{error.cls_name}: {error.message.strip()}" if error is not None else None
        ) or event.message or ""
        messages.append(f"{event.step_key or 'run'}: {text.strip()}")
    return tuple(messages)


def _failed_checks(instance: dg.DagsterInstance, run_id: str) -> tuple[str, ...]:
    found = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event and entry.dagster_event.event_specific_data
        if evaluation is None or evaluation.passed:
            continue
        evidence = {key: getattr(value, "value", value)
                    for key, value in (evaluation.metadata or {}).items()}
        problems = evidence.pop("problems", None)
        text = (f"check {evaluation.asset_key.to_user_string()}/{evaluation.check_name} "
                f"[{evaluation.partition}] failed: {evaluation.description or ''} {evidence}")
        if problems:
            text += " " + " ".join(str(problems).split())
        found.append(text)
    return tuple(found)


def _materializations(instance: dg.DagsterInstance, run_id: str
                      ) -> dict[dg.AssetKey, frozenset[str]]:
    found: dict[dg.AssetKey, set[str]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is not None:
            found.setdefault(materialization.asset_key, set()).add(
                materialization.partition or "")
    return {key: frozenset(keys) for key, keys in found.items()}


# --------------------------------------------------------------------------- the backfill


def partition_names(first: dt.date, last: dt.date) -> list[str]:
    """The daily keys [first, last], as the dialog's range picker lists them."""
    return [(first + dt.timedelta(days=offset)).isoformat()
            for offset in range((last - first).days + 1)]


def launch_backfill_as_ui(workspace: WorkspaceProcessContext,
                          asset_selection: Sequence[dg.AssetKey], keys: Sequence[str],
                          tags: Mapping[str, str]) -> str:
    """`launchPartitionBackfill` with the parameters the asset dialog sends; the backfill id."""
    params = {
        "assetSelection": [{"path": list(key.path)} for key in asset_selection],
        "partitionNames": list(keys),
        "fromFailure": False,
        "tags": [{"key": key, "value": value}
                 for key, value in {**tags, FROM_UI_TAG: "true"}.items()],
    }
    result = execute_dagster_graphql(workspace.create_request_context(),
                                     LAUNCH_PARTITION_BACKFILL_MUTATION,
                                     {"backfillParams": params})
    answer = result.data["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise AssertionError(f"launchPartitionBackfill refused: {answer}")
    return answer["backfillId"]


def run_asset_backfill(
    instance: dg.DagsterInstance,
    asset_selection: Sequence[dg.AssetKey],
    first: dt.date,
    last: dt.date,
    *,
    tags: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    max_iterations: int = 200,
    workspace: WorkspaceProcessContext | None = None,
) -> AssetBackfillOutcome:
    """Launch a UI asset backfill of `asset_selection` over [first, last] and run the
    backfill daemon's iterations until it is terminal; raise AssertionError at the cap.

    `now` (or an explicit `marketing/as_of_now` tag) pins every run's clock: backfill
    tags are copied onto each run the daemon launches. `workspace` defaults to a fresh
    in-process load of the code location from the current MARKETING_* environment.
    """
    if not isinstance(instance.run_launcher, SyncInMemoryRunLauncher):
        raise TypeError("run_asset_backfill needs an instance with SyncInMemoryRunLauncher "
                        "(use backfill_deployment): iterations are counted, not waited for")
    run_tags = dict(tags or {})
    if now is not None:
        run_tags[AS_OF_NOW_TAG] = now.isoformat()
    if workspace is None:
        with create_test_daemon_workspace_context(code_location_target(), instance) as fresh:
            return run_asset_backfill(instance, asset_selection, first, last, tags=run_tags,
                                      max_iterations=max_iterations, workspace=fresh)

    backfill_id = launch_backfill_as_ui(workspace, asset_selection,
                                        partition_names(first, last), run_tags)
    launched_in: dict[str, int] = {}
    daemon_errors: list[str] = []
    iterations = 0
    while True:
        backfill = instance.get_backfill(backfill_id)
        assert backfill is not None
        if backfill.status in BULK_ACTION_TERMINAL_STATUSES:
            break
        if iterations >= max_iterations:
            raise AssertionError(
                f"backfill not terminal after {max_iterations} daemon iterations:\n"
                + _outcome(instance, workspace, backfill_id, iterations, launched_in,
                           daemon_errors).describe())
        for error in execute_backfill_iteration(workspace, _LOGGER):
            if error is not None:
                daemon_errors.append(error.to_string())
        for run_id in _run_ids(instance, backfill_id):
            launched_in.setdefault(run_id, iterations)
        iterations += 1
    return _outcome(instance, workspace, backfill_id, iterations, launched_in, daemon_errors)


def _run_ids(instance: dg.DagsterInstance, backfill_id: str) -> list[str]:
    runs = instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}),
                                    ascending=True)
    return [record.dagster_run.run_id for record in runs]


def _outcome(instance: dg.DagsterInstance, workspace: WorkspaceProcessContext,
             backfill_id: str, iterations: int, launched_in: Mapping[str, int],
             daemon_errors: list[str]) -> AssetBackfillOutcome:
    backfill = instance.get_backfill(backfill_id)
    assert backfill is not None
    data = backfill.get_asset_backfill_data(workspace.create_request_context().asset_graph)
    runs: list[BackfillRun] = []
    materialized: dict[dg.AssetKey, set[str]] = {}
    for record in instance.get_run_records(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}),
                                           ascending=True):
        run = record.dagster_run
        produced = _materializations(instance, run.run_id)
        for key, keys in produced.items():
            materialized.setdefault(key, set()).update(keys)
        runs.append(BackfillRun(
            run_id=run.run_id,
            status=run.status,
            iteration=launched_in.get(run.run_id, iterations),
            asset_keys=frozenset(run.asset_selection or ()),
            partition_key=run.tags.get(PARTITION_NAME_TAG),
            range_start=run.tags.get(ASSET_PARTITION_RANGE_START_TAG),
            range_end=run.tags.get(ASSET_PARTITION_RANGE_END_TAG),
            tags=dict(run.tags),
            failures=_failure_messages(instance, run.run_id)
            if run.status == dg.DagsterRunStatus.FAILURE else (),
            failed_checks=_failed_checks(instance, run.run_id),
            materialized=produced,
        ))
    return AssetBackfillOutcome(
        backfill_id=backfill_id,
        status=backfill.status,
        iterations=iterations,
        runs=runs,
        materialized={key: frozenset(keys) for key, keys in materialized.items()},
        targeted=_by_asset(data.target_subset),
        backfill_materialized=_by_asset(data.materialized_subset),
        failed_and_downstream=_by_asset(data.failed_and_downstream_subset),
        error=backfill.error.to_string() if backfill.error else None,
        daemon_errors=daemon_errors,
    )
