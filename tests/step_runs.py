"""Materializing a selection of assets over a range of days, in this process or in a
worker subprocess that a test can freeze at a fault point and SIGKILL.

`python -m tests.step_runs '<json spec>'` is the worker: it runs the materialization
with an ephemeral Dagster instance and exits 0 on success, 1 on failure.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from assets.partitions import AS_OF_NOW_TAG
from pipelines.definitions import build_assets, build_resources
from pipelines.runner import QUIET_LOGS
from resources import fault_points
from resources.settings import PipelineSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
CYCLE_ASSETS = ["ai_campaigns", "campaign_audience", "campaign_status", "campaign_metrics",
                "campaign_delivery", "campaign_incrementality"]
WORKER_START_TIMEOUT_S = 180


def whole_steps(selection: list[str]) -> dg.AssetSelection:
    """`selection` plus the other assets of the same step (a multi-asset such as
    user_segments + segment_overlap commits its tables together and cannot be split)."""
    return dg.AssetSelection.assets(*selection).required_multi_asset_neighbors()


def materialize_days(settings: PipelineSettings, selection: list[str], first: dt.date,
                     last: dt.date, *, now: dt.datetime, instance: dg.DagsterInstance,
                     run_config: dict[str, Any] | None = None, raise_on_error: bool = True,
                     ) -> dg.ExecuteInProcessResult:
    """One run of the selected assets over [first, last] (range tags, as a backfill)."""
    tags = {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
            AS_OF_NOW_TAG: now.isoformat()}
    config = {**QUIET_LOGS, **(run_config or {})}
    return dg.materialize(build_assets(settings), selection=whole_steps(selection),
                          resources=build_resources(settings), instance=instance, tags=tags,
                          run_config=config, raise_on_error=raise_on_error)


def attempts_of(result: dg.ExecuteInProcessResult, step: str) -> int:
    """How many times the step ran: once, plus once per retry Dagster granted."""
    retries = [event for event in result.all_events
               if event.event_type_value == "STEP_UP_FOR_RETRY" and event.step_key == step]
    return 1 + len(retries)


def kill_at(point: str, settings: PipelineSettings, selection: list[str], day: dt.date, *,
            now: dt.datetime, scratch: Path, run_config: dict[str, Any] | None = None) -> str:
    """Run the materialization in a worker process, wait until it reaches `point`
    (resources/fault_points.py), SIGKILL it there; return what it printed."""
    marker = scratch / f"paused-{uuid.uuid4().hex[:8]}"
    spec = {"settings": settings.model_dump(mode="json"), "selection": selection,
            "day": day.isoformat(), "now": now.isoformat(), "run_config": run_config}
    env = {**os.environ, fault_points.PAUSE_AFTER_ENV: point,
           fault_points.PAUSE_FILE_ENV: str(marker),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    worker = subprocess.Popen([sys.executable, "-m", "tests.step_runs", json.dumps(spec)],
                              cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    try:
        while not marker.exists():
            if worker.poll() is not None:
                raise AssertionError(f"the worker ended (exit {worker.returncode}) before "
                                     f"reaching {point}:\n{worker.stdout.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker did not reach {point} in time")
            time.sleep(0.05)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        if worker.poll() is None:
            worker.kill()
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == -signal.SIGKILL, (worker.returncode, output)
    return output


def _worker(raw_spec: str) -> int:
    warnings.filterwarnings("ignore")
    spec = json.loads(raw_spec)
    day = dt.date.fromisoformat(spec["day"])
    result = materialize_days(PipelineSettings.model_validate(spec["settings"]),
                              spec["selection"], day, day,
                              now=dt.datetime.fromisoformat(spec["now"]),
                              instance=dg.DagsterInstance.ephemeral(),
                              run_config=spec["run_config"], raise_on_error=False)
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))
