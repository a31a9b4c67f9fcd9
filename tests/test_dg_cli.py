"""The project speaks Dagster 1.13's `dg`: definitions check, listing and a launched run."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.pipeline_helpers import deployment_env

REPO_ROOT = Path(__file__).resolve().parent.parent
DG = Path(sys.executable).parent / "dg"
DAY = dt.date(2026, 1, 3)
pytestmark = pytest.mark.slow


def _dg(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(DG), *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, f"dg {args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_dg_checks_lists_and_launches_a_day(tmp_path: Path) -> None:
    env = deployment_env(tmp_path, DAY)
    checked = _dg(["check", "defs"], env)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = json.loads(_dg(["list", "defs", "--json"], env).stdout)
    by_key = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert {"polars", "duckdb", "parquet"} <= set(by_key["behavioral_profiles"]["kinds"])

    subprocess.run([sys.executable, "-m", "pipelines.cli", "generate",
                    f"duckdb:///{tmp_path}/source.duckdb", "--users", "30", "--days", "3",
                    "--start-date", (DAY - dt.timedelta(days=2)).isoformat()],
                   cwd=REPO_ROOT, env=env, check=True, capture_output=True)
    _dg(["launch", "--job", "ingest", "--partition", DAY.isoformat()], env)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        row = connection.execute("SELECT rows_read, rows_accepted FROM "
                                 "marketing.staged_partitions WHERE as_of_date = ?",
                                 [DAY]).fetchone()
    assert row is not None and row[0] > 0 and row[1] > 0
