"""Sensors that make failures loud: a failed run or a failed asset check becomes an ERROR
(or WARNING) line in the daemon's log and on the sensor's tick in the UI, and a POST to
`MARKETING_ALERT_WEBHOOK_URL` when one is set (pipelines/alert_delivery.py).

Why run-status sensors and not a sensor polling check results: run-status sensors keep a
cursor on run-status events, so each evaluation reads only the runs that finished since the
last one, then that run's own check and failure events (indexed by run id). Nothing scans
the asset graph or the event log at large, so they stay cheap however large the graph grows.

Both are on by default: an alert that someone must first switch on is an alert nobody gets.
They cover every job of the code location, including the implicit job behind "Materialize"
in the UI, so assets added later are covered without listing them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg
from dagster import DagsterEventType, EventLogEntry

from pipelines.alert_delivery import Alert, deliver

if TYPE_CHECKING:
    from dagster_shared.error import SerializableErrorInfo

RUN_FAILURE_SENSOR = "alert_on_run_failure"
CHECK_FAILURE_SENSOR = "alert_on_failed_checks"
MAX_METADATA_CHARS = 300
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"
BACKFILL_TAG = "dagster/backfill"
RETRY_TAG = "dagster/retry_number"


@dataclass(frozen=True)
class FailedCheck:
    """One failed asset check evaluation, with what a reader needs to act on it."""

    asset: str
    check: str
    partition: str
    severity: str
    description: str | None
    metadata: dict[str, str]

    def message(self, run: dg.DagsterRun) -> str:
        details = ", ".join(f"{key}={value}" for key, value in self.metadata.items())
        return (
            f"ASSET CHECK FAILED: {self.asset} / {self.check} (severity {self.severity}) "
            f"partition {self.partition}; run {run.run_id} of job {run.job_name}"
            f"{_run_context(run)}"
            + (f"; {self.description}" if self.description else "")
            + (f"; metadata: {details}" if details else "")
        )


@dataclass(frozen=True)
class FailedStep:
    """One failed step: which assets it was producing and the error it raised."""

    step: str
    assets: tuple[str, ...]
    error: str

    def message(self, run: dg.DagsterRun) -> str:
        assets = ", ".join(self.assets) if self.assets else "(no asset)"
        return (
            f"RUN FAILED: run {run.run_id} of job {run.job_name}, partition "
            f"{run_partition(run)}{_run_context(run)}: step {self.step} (assets {assets}) "
            f"failed: {self.error}"
        )


def run_partition(run: dg.DagsterRun) -> str:
    """The partition a run covered: one key, a `first..last` range, or `(unpartitioned)`."""
    tags = run.tags
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    if RANGE_START_TAG in tags:
        return f"{tags[RANGE_START_TAG]}..{tags.get(RANGE_END_TAG, '?')}"
    return "(unpartitioned)"


def _run_context(run: dg.DagsterRun) -> str:
    extra = []
    if BACKFILL_TAG in run.tags:
        extra.append(f"backfill {run.tags[BACKFILL_TAG]}")
    if RETRY_TAG in run.tags:
        extra.append(f"retry {run.tags[RETRY_TAG]}")
    return f" ({', '.join(extra)})" if extra else ""


def _short(value: object) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= MAX_METADATA_CHARS else text[:MAX_METADATA_CHARS] + "..."


def failed_checks(run: dg.DagsterRun, entries: Iterable[EventLogEntry]) -> list[FailedCheck]:
    """The failed check evaluations among a run's events.

    A check evaluated over a whole single-run backfill range carries no partition of its
    own; the run's range is reported instead, so the reader knows which days to look at.
    """
    failures = []
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.event_type != DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.asset_check_evaluation_data
        if evaluation.passed:
            continue
        failures.append(FailedCheck(
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            partition=evaluation.partition or run_partition(run),
            severity=evaluation.severity.value,
            description=evaluation.description,
            metadata={key: _short(value.value) for key, value in evaluation.metadata.items()},
        ))
    return failures


def failed_steps(entries: Sequence[EventLogEntry]) -> list[FailedStep]:
    """The failed steps among a run's events, each with the assets it had planned."""
    planned: dict[str, list[str]] = {}
    for entry in entries:
        event = entry.dagster_event
        if event and event.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED:
            asset = event.asset_key.to_user_string() if event.asset_key else None
            step_assets = planned.setdefault(event.step_key or "", [])
            if asset and asset not in step_assets:
                step_assets.append(asset)
    failures = []
    for entry in entries:
        event = entry.dagster_event
        if event is None or event.event_type != DagsterEventType.STEP_FAILURE:
            continue
        data = event.step_failure_data
        error = _root_cause(data.error) if data.error else "(no error recorded)"
        step = event.step_key or "(unknown step)"
        failures.append(FailedStep(step, tuple(planned.get(step, [])), _short(error)))
    return failures


def _root_cause(error: SerializableErrorInfo) -> str:
    """The innermost cause's message: Dagster wraps the user's exception in a generic
    "Error occurred while executing op" error, which says nothing about what went wrong."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


ALERT_EVENT_TYPES = {
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
}


def _run_events(context: dg.RunStatusSensorContext) -> list[EventLogEntry]:
    """Only the event types the alerts need, for this one run."""
    return list(context.instance.all_logs(context.dagster_run.run_id, of_type=ALERT_EVENT_TYPES))


def _alert(context: dg.RunStatusSensorContext, webhook_url: str | None, text: str, *,
           kind: str, severity: str = "ERROR") -> None:
    """Log the alert on the sensor's tick and, when configured, deliver it to the webhook."""
    log = context.log.warning if severity == "WARN" else context.log.error
    log(text)
    if webhook_url:
        run = context.dagster_run
        problem = deliver(webhook_url, Alert(text, kind, severity, run.run_id, run.job_name))
        if problem:
            context.log.error(f"alert webhook delivery failed ({problem}); the alert is in "
                              "this log only")


def _alert_failed_checks(context: dg.RunStatusSensorContext,
                         entries: Iterable[EventLogEntry], webhook_url: str | None) -> int:
    checks = failed_checks(context.dagster_run, entries)
    for check in checks:
        _alert(context, webhook_url, check.message(context.dagster_run), kind="check_failure",
               severity="WARN" if check.severity == "WARN" else "ERROR")
    return len(checks)


def build_sensors(webhook_url: str | None = None) -> list[dg.SensorDefinition]:
    """The alerting sensors: failed runs (with the failed steps' errors) and failed checks;
    each alert also goes to `webhook_url` when one is configured (pipelines/alert_delivery)."""

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Logs an ERROR for every failed run: job, partition, failed steps and "
                    "their assets and errors, and any failed asset check.",
    )
    def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
        run = context.dagster_run
        entries = _run_events(context)
        steps = failed_steps(entries)
        for step in steps:
            _alert(context, webhook_url, step.message(run), kind="run_failure")
        if not steps:  # the run failed outside any step (e.g. it could not start)
            reason = context.failure_event.message or "(no message)"
            _alert(context, webhook_url,
                   f"RUN FAILED: run {run.run_id} of job {run.job_name}, partition "
                   f"{run_partition(run)}{_run_context(run)}: {_short(reason)}",
                   kind="run_failure")
        _alert_failed_checks(context, entries, webhook_url)

    @dg.run_status_sensor(
        name=CHECK_FAILURE_SENSOR,
        run_status=dg.DagsterRunStatus.SUCCESS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Logs an ERROR (WARNING for WARN severity) for every failed asset check "
                    "in a run that otherwise succeeded (non-blocking checks).",
    )
    def alert_on_failed_checks(context: dg.RunStatusSensorContext) -> None:
        entries = context.instance.all_logs(
            context.dagster_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        _alert_failed_checks(context, entries, webhook_url)

    return [alert_on_run_failure, alert_on_failed_checks]
