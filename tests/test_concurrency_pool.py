"""One LLM concurrency budget across runs (issue 17, item 3): the copy step is in the
Dagster concurrency pool `llm_account` (limit 1 in dagster.yaml and the demo's instance),
so two runs in two processes never have more than one step's `max_concurrency` requests
in flight at the account.

The fake LLM server holds every request until the test has seen the second run blocked
by the pool (Dagster's own "Step blocked by limit for pool" event), so the two runs do
overlap, whatever the machine's speed; only then are the requests answered.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.copy import LLM_POOL
from devkit.fake_together import FakeTogether, Reply
from pipelines.demo_instance import demo_instance_yaml
from pipelines.jobs import ALL_ASSETS_JOB, INGEST_JOB
from tests.pipeline_helpers import START, generated_source

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 600  # not a performance target: the loops fail at once if a run exits early
MAX_CONCURRENCY = 5  # TogetherCopyResource's default requests in flight per step
NOW = dt.datetime.combine(START + dt.timedelta(days=2), dt.time(0, 5), tzinfo=dt.UTC)
COPY_RUN = """
import datetime as dt, sys
import dagster as dg
from assets.partitions import AS_OF_NOW_TAG
from pipelines.definitions import build_definitions
from pipelines.jobs import ALL_ASSETS_JOB
from resources.settings import PipelineSettings
day, now = sys.argv[1], sys.argv[2]
defs = build_definitions(PipelineSettings.from_env())
job = defs.resolve_job_def(ALL_ASSETS_JOB)
# Held requests must not trip the breaker or the deadline while the test waits for the
# second run to meet the pool: neither is what this test is about.
config = {"ops": {"campaign_copy": {"config": {"circuit_breaker_failures": 0,
                                               "deadline_s": 600.0}}}}
with dg.DagsterInstance.get() as instance:
    result = job.execute_in_process(instance=instance, partition_key=day, tags={AS_OF_NOW_TAG: now},
                                    asset_selection=[dg.AssetKey("campaign_copy")],
                                    run_config=config)
sys.exit(0 if result.success else 1)
"""


class GatedFake(FakeTogether):
    """The fake Together server, every request held until `gate` opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def _begin(self, body: dict[str, Any], authorization: str | None) -> Reply:
        reply = super()._begin(body, authorization)
        self.gate.wait(HANG_GUARD_S)
        return reply


def _blocked_by_pool(instance: dg.DagsterInstance) -> bool:
    for run in instance.get_runs():
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            if f"blocked by limit for pool {LLM_POOL}" in (entry.message or ""):
                return True
    return False


def test_two_runs_share_one_budget_of_requests(tmp_path: Path, postgres_url: str) -> None:
    schema = f"pool_{uuid.uuid4().hex[:8]}"
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb", users=300,
                                days=2, warehouse_url=postgres_url, warehouse_schema=schema)
    pipeline.run(INGEST_JOB, START, START + dt.timedelta(days=1), NOW)
    pipeline.run(ALL_ASSETS_JOB, START, START, NOW)  # plans day 1 (template copy: no key)
    campaigns = pipeline.warehouse.read(
        "SELECT count(*) AS n FROM ai_campaigns WHERE as_of_date = :day", {"day": START})
    planned = campaigns["n"][0]
    assert planned >= 1

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(demo_instance_yaml(home))
    with GatedFake() as fake:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("MARKETING_", "DAGSTER_", "TOGETHER_"))}
        env.update({
            "DAGSTER_HOME": str(home),
            "MARKETING_SOURCE_URL": pipeline.settings.source_url,
            "MARKETING_WAREHOUSE_URL": postgres_url,
            "MARKETING_WAREHOUSE_SCHEMA": schema,
            "MARKETING_STAGING_DIR": pipeline.settings.staging_dir,
            "MARKETING_FIRST_PARTITION_DATE": START.isoformat(),
            "TOGETHER_API_KEY": "fake-key",
            "TOGETHER_BASE_URL": fake.base_url,
        })
        runs = [subprocess.Popen([sys.executable, "-c", COPY_RUN, START.isoformat(),
                                  NOW.isoformat()], cwd=REPO_ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                for _ in range(2)]
        try:
            with dg.DagsterInstance.from_config(str(home)) as instance:
                deadline = time.monotonic() + HANG_GUARD_S
                while not (fake.in_flight > 0 and _blocked_by_pool(instance)):
                    assert fake.max_in_flight <= min(planned, MAX_CONCURRENCY), \
                        "both runs' requests were in flight at once"
                    exited = [run for run in runs if run.poll() is not None]
                    assert not exited, exited[0].stdout.read().decode()[-4000:]
                    assert time.monotonic() < deadline, "the second run never met the pool"
                    time.sleep(0.5)
                held = fake.in_flight
            fake.gate.set()
            outputs = [run.communicate(timeout=HANG_GUARD_S)[0].decode() for run in runs]
        finally:
            fake.gate.set()
            for run in runs:
                if run.poll() is None:
                    run.kill()
        assert [run.returncode for run in runs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    # While one step held the pool, the other waited: exactly the first step's requests
    # were in flight (without the pool the second run's would have joined them, and the
    # test would never see the block), and never more at any time.
    assert held == min(planned, MAX_CONCURRENCY)
    assert fake.max_in_flight == held
    assert fake.calls >= planned  # the first run asked for every campaign's copy
