"""End to end, the way the data team works: `dagster dev` (webserver + daemon) on the
production `dagster.yaml` with PostgreSQL storage, a partition backfill of the whole graph
over three days launched through the GraphQL API (`launchPartitionBackfill`, what the UI
sends), and the results checked in the warehouse.

By default the backfill targets the `refresh_all` job (one run over the range); set
`MARKETING_E2E_BACKFILL=assets` to launch it as the asset graph's "Materialize" does
(every materializable asset; slower, see `_backfill_params`).

`dagster dev` runs in its own process group and the whole group is stopped in `finally`:
started as a plain child it ignores SIGTERM, while SIGTERM to its group stops it (and the
code server, daemon and run workers it started) in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from devkit.databases import throwaway_database
from pipelines.jobs import ALL_ASSETS_JOB
from resources.warehouse import Warehouse
from tests.dagster_instances import (
    REPO_ROOT,
    dagster_pg_url,
    write_dagster_home,
)
from tests.pipeline_helpers import START, generated_source

# `job` (default, ~1.5 min) or `assets` (the asset graph's Materialize; several minutes).
BACKFILL_KIND = os.environ.get("MARKETING_E2E_BACKFILL", "job")
# From the first partition: a fresh deployment's backfill must start where the history
# starts (a later start is refused, tests/test_consistency.py).
BACKFILL_DAYS = [START + dt.timedelta(days=offset) for offset in (0, 1, 2)]
# Hang guards, not performance targets: the loops fail at once if dagster dev exits, and
# otherwise wait long enough for a machine whose other core is busy (start-up took 25-30 s
# there). Timings belong in bench/.
STARTUP_TIMEOUT_S = 480
BACKFILL_TIMEOUT_S = 900 if BACKFILL_KIND == "job" else 1500
STOP_TIMEOUT_S = 30
DONE_STATUSES = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
RUN_DONE_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

# Shapes as declared in dagster_graphql (schema/roots/query.py, schema/roots/mutation.py,
# schema/backfill.py, client/query.py LAUNCH_PARTITION_BACKFILL_MUTATION).
LOCATIONS_QUERY = """
query { workspaceOrError { __typename ... on Workspace {
  locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""
ASSET_NODES_QUERY = """
query { assetNodes { assetKey { path } isMaterializable isPartitioned } }
"""
LAUNCH_BACKFILL_MUTATION = """
mutation($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId launchedRunIds }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""
BACKFILL_QUERY = """
query($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill {
      status
      error { message }
      runs { runId status tags { key value } }
    }
    ... on PythonError { message }
  }
}
"""


# The jobs and the code location default to the in-process executor (pipelines/jobs.py,
# pipelines/definitions.py), so a backfill needs no executor run config.
NO_RUN_CONFIG: dict[str, Any] = {}


def _backfill_params(port: int, kind: str) -> dict[str, Any]:
    """`job`: the `refresh_all` job's partition set over the days, which its single-run
    backfill policy turns into ONE run over the range. `assets`: every materializable
    asset, as the asset graph's "Materialize" sends it; Dagster then plans one run per
    dependency wave (the profiles' 90-day lookback and the campaigns' D-1 dependency are not
    identity mappings), and the backfill daemon plans a wave every 30 s.

    Runs use the in-process executor (the code location's default): with Dagster's
    multiprocess executor every step starts its own Python process (5-18 s each here,
    before any work), which on a 2-core machine costs more than the steps themselves."""
    days = [day.isoformat() for day in BACKFILL_DAYS]
    if kind == "job":
        return {"partitionNames": days, "title": "e2e job backfill",
                "runConfigData": NO_RUN_CONFIG, "selector": {
            "partitionSetName": f"{ALL_ASSETS_JOB}_partition_set",
            "repositorySelector": {"repositoryLocationName": "marketing",
                                   "repositoryName": "__repository__"}}}
    nodes = _graphql(port, ASSET_NODES_QUERY)["assetNodes"]
    selection = [{"path": node["assetKey"]["path"]} for node in nodes
                 if node["isMaterializable"]]
    assert {"path": ["valid_transactions"]} in selection
    return {"partitionNames": days, "assetSelection": selection, "title": "e2e asset backfill",
            "runConfigData": NO_RUN_CONFIG}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise AssertionError(f"GraphQL errors: {payload['errors']}")
    return payload["data"]


@contextmanager
def dagster_dev(env: dict[str, str], port: int, log_path: Path) -> Iterator[subprocess.Popen]:
    """`dagster dev` in its own session; SIGTERM to the group on exit, SIGKILL if it lingers."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(REPO_ROOT / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            _stop_group(process)


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_TIMEOUT_S)
    with suppress(ProcessLookupError):  # the group may outlive its leader (run workers)
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait_until_loaded(port: int, process: subprocess.Popen, log_path: Path) -> None:
    """Until the webserver answers and the code location has loaded without error."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"dagster dev exited early:\n{log_path.read_text()[-4000:]}")
        try:
            workspace = _graphql(port, LOCATIONS_QUERY)["workspaceOrError"]
            entries = workspace.get("locationEntries", [])
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                errors = [entry for entry in entries
                          if entry["locationOrLoadError"]["__typename"] == "PythonError"]
                assert not errors, f"code location failed to load: {errors}"
                return
            last = str(workspace)
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last = str(error)
        time.sleep(1)
    raise AssertionError(f"dagster dev not ready after {STARTUP_TIMEOUT_S}s ({last}):\n"
                         f"{log_path.read_text()[-4000:]}")


def _wait_for_backfill(port: int, backfill_id: str, log_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    backfill: dict[str, Any] = {}
    while time.monotonic() < deadline:
        backfill = _graphql(port, BACKFILL_QUERY, {"backfillId": backfill_id})[
            "partitionBackfillOrError"]
        runs_done = all(run["status"] in RUN_DONE_STATUSES for run in backfill.get("runs", []))
        if backfill.get("status") in DONE_STATUSES and runs_done:
            return backfill
        time.sleep(2)
    raise AssertionError(f"backfill not done after {BACKFILL_TIMEOUT_S}s: {backfill}\n"
                         f"{log_path.read_text()[-4000:]}")


@pytest.mark.slow
def test_backfill_launched_through_graphql_on_dagster_dev_lands_in_the_warehouse(
        tmp_path: Path, postgres_server_url: str, postgres_url: str) -> None:
    schema = f"e2e_{uuid.uuid4().hex[:8]}"
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb",
                                warehouse_url=postgres_url, warehouse_schema=schema)
    settings = pipeline.settings
    home = write_dagster_home(tmp_path / "dagster_home")
    port = _free_port()
    log_path = tmp_path / "dagster_dev.log"

    with throwaway_database(postgres_server_url, "dagster_e2e") as dagster_db:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": dagster_pg_url(dagster_db),
            "MARKETING_SOURCE_URL": settings.source_url,
            "MARKETING_WAREHOUSE_URL": settings.warehouse_url,
            "MARKETING_WAREHOUSE_SCHEMA": schema,
            "MARKETING_STAGING_DIR": settings.staging_dir,
            "MARKETING_FIRST_PARTITION_DATE": settings.first_partition_date.isoformat(),
        }
        env.pop("MARKETING_SOURCE_SCHEMA", None)
        started = time.monotonic()
        with dagster_dev(env, port, log_path) as process:
            _wait_until_loaded(port, process, log_path)
            loaded = time.monotonic()
            launched = _graphql(port, LAUNCH_BACKFILL_MUTATION, {
                "backfillParams": _backfill_params(port, BACKFILL_KIND)})[
                "launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill = _wait_for_backfill(port, launched["backfillId"], log_path)
            done = time.monotonic()
        stopped = time.monotonic()
        print(f"dagster dev: loaded in {loaded - started:.1f}s, backfill done "
              f"{done - loaded:.1f}s later in {len(backfill['runs'])} run(s), group stopped "
              f"in {stopped - done:.1f}s")

        # dagster dev is stopped: nothing holds a connection or a file any more.
        assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, backfill
        assert backfill["runs"], backfill
        assert all(run["status"] == "SUCCESS" for run in backfill["runs"]), backfill
        # A single-run backfill policy: the whole range went through one run.
        range_tags = [{tag["key"]: tag["value"] for tag in run["tags"]}
                      for run in backfill["runs"]]
        if BACKFILL_KIND == "job":
            assert len(backfill["runs"]) == 1, range_tags
        assert any(tags.get("dagster/asset_partition_range_start") == BACKFILL_DAYS[0].isoformat()
                   and tags.get("dagster/asset_partition_range_end")
                   == BACKFILL_DAYS[-1].isoformat() for tags in range_tags), range_tags

    warehouse = Warehouse(url=postgres_url, schema_name=schema)
    staged = warehouse.read("SELECT as_of_date, rows_read, rows_accepted, rows_rejected "
                            "FROM staged_partitions ORDER BY as_of_date")
    assert staged["as_of_date"].to_list() == BACKFILL_DAYS
    for row in staged.iter_rows(named=True):
        start = dt.datetime.combine(row["as_of_date"], dt.time(), tzinfo=dt.UTC)
        # The first partition also takes the undated rows and whatever precedes it.
        in_day = pl.col("occurred_at") < start + dt.timedelta(days=1)
        in_day = in_day & (pl.col("occurred_at") >= start) if row["as_of_date"] != START \
            else in_day | pl.col("occurred_at").is_null()
        generated = pipeline.transactions.filter(in_day).height
        assert row["rows_read"] == generated > 0
        assert row["rows_accepted"] + row["rows_rejected"] == generated
