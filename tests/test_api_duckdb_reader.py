"""The API's DuckDB reader holds one read-only connection and hands it over to writers.

Real DuckDB files; the writer runs in a process of its own wherever the lock matters,
since DuckDB's file lock is per process (a writer thread in this process would share the
reader's database instance instead). The files are tiny: one table, `campaign_metrics`,
read by the API's own `api_metrics_latest_day` query, so each answer says which version
of the file it came from.

Everything is counted (opens, hand-offs, answers), never timed: on a busy machine a test
runs longer, it does not fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import duckdb
import pytest

import resources.warehouse_backends as backends
from api.database import DatabaseUnavailable, DuckDBReader
from resources.warehouse_backends import WRITER_MARKER_FRESH_S, waiting_writers, writer_markers_dir

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "marketing"
OLD, NEW = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
T = TypeVar("T")

# The pipeline's own write path (DuckDBBackend.execute -> _open_duckdb_waiting_for_lock),
# in a process of its own: waits for "go" on stdin, then inserts NEW and says so.
WRITER = """
import sys
from pathlib import Path
import resources.warehouse_backends as backends
backends.DUCKDB_LOCK_WAIT_S = float(sys.argv[3])
backend = backends.DuckDBBackend(Path(sys.argv[1]), "marketing")
print("ready", flush=True)
sys.stdin.readline()
backend.execute("INSERT INTO campaign_metrics VALUES (CAST(:day AS DATE))", {"day": sys.argv[2]})
print("committed", flush=True)
"""
# Generous: the writer normally gets the file within a few of its retries. Past it the
# writer fails, and so does the test (what it does with the hand-off disabled).
WRITER_BUDGET_S = 60.0

HOLD_WRITE_LOCK = """
import pathlib, sys, time, duckdb
connection = duckdb.connect(sys.argv[1])  # read-write: the exclusive file lock
print("locked", flush=True)
while not pathlib.Path(sys.argv[2]).exists():
    time.sleep(0.02)
"""


def _warehouse_file(path: Path, day: dt.date) -> Path:
    with duckdb.connect(str(path)) as connection:
        connection.execute(f"CREATE SCHEMA {SCHEMA}")
        connection.execute(f"CREATE TABLE {SCHEMA}.campaign_metrics (metric_date DATE)")
        connection.execute(f"INSERT INTO {SCHEMA}.campaign_metrics VALUES (?)", [day])
    return path


def _run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine

    return asyncio.run(main())


async def _latest(reader: DuckDBReader) -> dt.date:
    rows = await reader.query("api_metrics_latest_day")
    return rows[0]["day"]


def _reader(path: Path, **options: Any) -> DuckDBReader:
    return DuckDBReader(path, SCHEMA, timeout_s=options.pop("timeout_s", 10.0), **options)


def _start_writer(path: Path, day: dt.date) -> subprocess.Popen[str]:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), day.isoformat(), str(WRITER_BUDGET_S)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    return writer


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def test_the_file_is_opened_once_for_many_requests(tmp_path: Path) -> None:
    path = _warehouse_file(tmp_path / "w.duckdb", OLD)

    async def scenario(reader: DuckDBReader, batches: int) -> list[dt.date]:
        await reader.open()
        try:
            answers = [await _latest(reader) for _ in range(20)]
            for _ in range(batches):  # concurrent requests: one cursor per worker thread
                answers += await asyncio.gather(*(_latest(reader) for _ in range(20)))
            return answers
        finally:
            await reader.close()

    held = _reader(path)
    assert _run(scenario(held, 3)) == [OLD] * 80
    assert (held.opens, held.handoffs, held.reopens) == (1, 0, 0)
    per_request = _reader(path, mode="per-request")  # the previous behaviour, for contrast
    assert _run(scenario(per_request, 1)) == [OLD] * 40
    assert per_request.opens == 40


def test_a_replaced_file_is_reopened_and_its_new_data_served(tmp_path: Path) -> None:
    path = _warehouse_file(tmp_path / "w.duckdb", OLD)
    reader = _reader(path)

    async def scenario() -> None:
        await reader.open()
        try:
            assert [await _latest(reader) for _ in range(5)] == [OLD] * 5
            # What `make demo` does: a new file under the same name.
            os.replace(_warehouse_file(tmp_path / "next.duckdb", NEW), path)
            assert [await _latest(reader) for _ in range(5)] == [NEW] * 5
            assert (reader.opens, reader.reopens) == (2, 1)
            path.unlink()
            with pytest.raises(DatabaseUnavailable, match="does not exist"):
                await _latest(reader)
            assert reader._connection is None  # the deleted file is let go, not kept open
            _warehouse_file(path, OLD)
            assert await _latest(reader) == OLD
        finally:
            await reader.close()

    _run(scenario())
    assert reader.opens == 3


def test_a_writer_process_gets_the_file_while_requests_keep_coming(tmp_path: Path) -> None:
    """Three request loops keep the reader busy; a pipeline writer in another process
    asks for the file. The writer commits within its wait budget; each request during the
    hand-off either waits the writer out and answers, or (past the reader's timeout)
    raises DatabaseUnavailable; the answers go from the old version to the new, never
    back; the reader then holds the file again."""
    path = _warehouse_file(tmp_path / "w.duckdb", OLD)
    reader = _reader(path, timeout_s=30.0)
    after_commit = 20  # answers each loop gives once the writer is done
    outcomes: list[list[object]] = [[], [], []]

    async def loop(answers: list[object], writer_done: anyio.Event) -> None:
        remaining = after_commit
        while remaining:
            try:
                answers.append(await _latest(reader))
            except DatabaseUnavailable as error:
                answers.append(error)
            if writer_done.is_set():
                remaining -= 1
            await asyncio.sleep(0)

    async def scenario() -> tuple[int | None, str]:
        await reader.open()
        try:
            assert await _latest(reader) == OLD  # held from here on
            writer = _start_writer(path, NEW)
            writer_done = anyio.Event()
            async with anyio.create_task_group() as group:
                for answers in outcomes:
                    group.start_soon(loop, answers, writer_done)
                assert writer.stdin is not None and writer.stdout is not None
                writer.stdin.write("go\n")
                writer.stdin.flush()
                said = await anyio.to_thread.run_sync(writer.stdout.read)
                await anyio.to_thread.run_sync(writer.wait)
                writer_done.set()
            return writer.returncode, said.strip()
        finally:
            await reader.close()

    returncode, said = _run(scenario())
    assert (returncode, said) == (0, "committed")
    for answers in outcomes:
        dates = [answer for answer in answers if isinstance(answer, dt.date)]
        others = [answer for answer in answers if not isinstance(answer, dt.date)]
        assert all(isinstance(error, DatabaseUnavailable)
                   and "locked by a writer" in str(error) for error in others), others
        assert set(dates) <= {OLD, NEW}
        assert dates == sorted(dates)  # never the old version once the new one was seen
        assert dates[-1] == NEW
    # One hand-off, then held again (plus a reopen if the file had changed after).
    assert reader.handoffs == 1 and reader.opens - reader.reopens == 2
    assert not writer_markers_dir(path).exists()  # the writer removed its marker


def test_an_idle_reader_lets_go_for_a_writer(tmp_path: Path) -> None:
    """No request comes while the writer waits: the reader's watcher lets go anyway."""
    path = _warehouse_file(tmp_path / "w.duckdb", OLD)
    reader = _reader(path)

    async def scenario() -> tuple[int | None, str]:
        await reader.open()
        try:
            assert await _latest(reader) == OLD
            writer = _start_writer(path, NEW)
            assert writer.stdin is not None and writer.stdout is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
            said = await anyio.to_thread.run_sync(writer.stdout.read)
            await anyio.to_thread.run_sync(writer.wait)
            assert reader.opens == 1  # no request in between: the same, idle, reader
            assert await _latest(reader) == NEW
            return writer.returncode, said.strip()
        finally:
            await reader.close()

    assert _run(scenario()) == (0, "committed")
    assert (reader.opens, reader.handoffs) == (2, 1)


def test_a_writer_in_the_same_process_gets_the_file_too(tmp_path: Path) -> None:
    """In one process DuckDB refuses a write connection while a read-only one is open
    ("different configuration"): the writer announces itself the same way, and the
    reader lets go (the API tests read and migrate the warehouse beside a held reader)."""
    path = _warehouse_file(tmp_path / "w.duckdb", OLD)
    reader = _reader(path)

    async def scenario() -> list[dt.date]:
        await reader.open()
        try:
            before = await _latest(reader)
            backend = backends.DuckDBBackend(path, SCHEMA)
            await anyio.to_thread.run_sync(
                backend.execute, "INSERT INTO campaign_metrics VALUES (CAST(:day AS DATE))",
                {"day": NEW.isoformat()})
            return [before, await _latest(reader)]
        finally:
            await reader.close()

    assert _run(scenario()) == [OLD, NEW]
    assert (reader.opens, reader.handoffs) == (2, 1)


@pytest.mark.parametrize("kind", ["dead pid", "stale heartbeat", "not a pid"])
def test_a_stale_marker_does_not_stop_holding(tmp_path: Path, kind: str) -> None:
    path = _warehouse_file(tmp_path / "w.duckdb", OLD)
    markers = writer_markers_dir(path)
    markers.mkdir()
    if kind == "dead pid":
        (markers / str(_dead_pid())).touch()
    elif kind == "stale heartbeat":  # a live process (this one) that stopped refreshing it
        marker = markers / str(os.getpid())
        marker.touch()
        old = marker.stat().st_mtime - 2 * WRITER_MARKER_FRESH_S
        os.utime(marker, (old, old))
    else:
        (markers / "notes.txt").touch()
    assert waiting_writers(path) == []
    reader = _reader(path)

    async def scenario() -> list[dt.date]:
        await reader.open()
        try:
            return [await _latest(reader) for _ in range(20)]
        finally:
            await reader.close()

    assert _run(scenario()) == [OLD] * 20
    assert (reader.opens, reader.handoffs) == (1, 0)


def test_a_live_marker_makes_the_reader_let_go_and_wait(tmp_path: Path) -> None:
    """A waiting writer's marker (this process's pid: alive) without the writer: the
    reader closes its connection, requests wait for the marker to go and, past the
    timeout, answer 503; once it is gone the reader opens and holds again."""
    path = _warehouse_file(tmp_path / "w.duckdb", OLD)
    reader = _reader(path, timeout_s=0.3)

    async def scenario() -> None:
        await reader.open()
        try:
            assert await _latest(reader) == OLD
            marker = backends.announce_waiting_writer(path)
            assert marker is not None and waiting_writers(path) == [os.getpid()]
            with pytest.raises(DatabaseUnavailable, match="locked by a writer"):
                await _latest(reader)
            # Let go: this process can open the file for writing (it could not while a
            # read-only connection to it was open here: "different configuration").
            duckdb.connect(str(path)).close()
            backends.withdraw_waiting_writer(marker)
            assert not writer_markers_dir(path).exists()
            assert await _latest(reader) == OLD
        finally:
            await reader.close()

    _run(scenario())
    assert (reader.opens, reader.handoffs) == (2, 1)


def test_a_writer_that_gives_up_removes_its_marker(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = _warehouse_file(tmp_path / "w.duckdb", OLD)
    release = tmp_path / "release"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(path), str(release)],
                              stdout=subprocess.PIPE, text=True)
    announced: list[bool] = []
    real_announce = backends.announce_waiting_writer

    def announce(file: Path) -> Path | None:
        marker = real_announce(file)
        announced.append(marker is not None and waiting_writers(file) == [os.getpid()])
        return marker

    monkeypatch.setattr(backends, "DUCKDB_LOCK_WAIT_S", 0.3)
    monkeypatch.setattr(backends, "announce_waiting_writer", announce)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(duckdb.IOException, match="Could not set lock"):
            backends._open_duckdb_waiting_for_lock(path, read_only=False)
    finally:
        release.touch()
        holder.wait(timeout=30)
    assert announced and all(announced)  # it was announced while waiting ...
    assert not writer_markers_dir(path).exists()  # ... and withdrawn when it gave up
    backends._open_duckdb_waiting_for_lock(path, read_only=False).close()  # free again


def test_a_missing_file_is_unavailable_until_it_exists(tmp_path: Path) -> None:
    path = tmp_path / "later.duckdb"
    reader = _reader(path)

    async def scenario() -> dt.date:
        await reader.open()
        try:
            with pytest.raises(DatabaseUnavailable, match="does not exist"):
                await _latest(reader)
            _warehouse_file(path, OLD)
            return await _latest(reader)
        finally:
            await reader.close()

    assert _run(scenario()) == OLD
    assert reader.opens == 1
