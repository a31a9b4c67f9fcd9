"""It installs as users install it: a built wheel in a clean virtual environment.

The first release's `pip install .` carried no SQL (`marketing migrate` applied nothing
and said "up to date") and no numpy (`marketing generate` failed). This test builds the
wheel, installs it into a new venv with nothing else, and runs the commands a deployment
runs, from a folder outside the checkout so nothing can be imported from it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from tests.pipeline_helpers import deployment_env

REPO_ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 1, 5)
# What the wheel ships: the code packages and the SQL, never the dev-only tests/, bench/ or
# devkit/ (which nothing shipped imports: tests/test_layering.py).
SHIPPED = {"api", "assets", "datagen", "marketing_sql", "pipelines", "resources", "transforms"}
pytestmark = pytest.mark.slow


def _uv() -> str:
    found = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed (make venv installs it)")
    return found


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_the_wheel_migrates_generates_and_materializes_a_day(tmp_path: Path) -> None:
    uv = _uv()
    wheels = tmp_path / "dist"
    # sdist first, then the wheel from it, as a package index user gets it (and without
    # a stale build/ folder of the checkout leaking into the wheel)
    _run([uv, "build", "--out-dir", str(wheels), str(REPO_ROOT)], REPO_ROOT,
         dict(os.environ))
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == SHIPPED
    venv = tmp_path / "venv"
    _run([uv, "venv", "--python", sys.executable, str(venv)], tmp_path, dict(os.environ))
    python = venv / "bin" / "python"
    _run([uv, "pip", "install", "--python", str(python), str(wheel)], tmp_path,
         dict(os.environ))

    work = tmp_path / "deployment"
    work.mkdir()
    env = deployment_env(work, DAY, drop=("MARKETING_", "PYTHON", "VIRTUAL_ENV", "DAGSTER_"))
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    where = _run([str(python), "-c", "import resources.sql_files as s, pipelines; "
                  "print(s.SQL_DIR); print(pipelines.__file__)"], work, env)
    assert str(REPO_ROOT) not in where and "site-packages" in where  # not the checkout

    migrated = _run([str(venv / "bin" / "marketing"), "migrate"], work, env)
    versions = sorted({path.name[:4] for path in (REPO_ROOT / "sql" / "migrations").glob("*.sql")})
    assert f"applied {versions}; schema version {versions[-1]}" in migrated, migrated

    _run([str(venv / "bin" / "marketing"), "generate", f"duckdb:///{work}/source.duckdb",
          "--users", "40", "--days", "5", "--start-date",
          (DAY - dt.timedelta(days=4)).isoformat()], work, env)
    _run([str(venv / "bin" / "dagster"), "asset", "materialize", "-m",
          "pipelines.definitions", "--select", "*", "--partition", DAY.isoformat()],
         work, env)
    with duckdb.connect(str(work / "warehouse.duckdb"), read_only=True) as connection:
        staged = connection.execute(
            "SELECT rows_read, rows_accepted + rows_rejected FROM marketing.staged_partitions "
            "WHERE as_of_date = ?", [DAY]).fetchone()
        profiles = connection.execute(
            "SELECT count(*) FROM marketing.behavioral_profiles WHERE as_of_date = ?",
            [DAY]).fetchone()
    assert staged is not None and staged[0] > 0 and staged[0] == staged[1]
    assert profiles is not None and profiles[0] > 0
