"""The profile day and its Parquet snapshot become current together, at the warehouse
commit (resources/committed_snapshots.py), on both engines. Kills at each point are in
tests/test_kill_between_tables.py; these are the failure and leftover cases."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from pathlib import Path

import polars as pl
import pytest

from resources.committed_snapshots import (
    committed_version,
    frame_version,
    pending_files,
    publish,
    read_committed,
)
from resources.staging import StagingStore
from resources.table_writes import TableWrite
from resources.warehouse import Warehouse
from tests.test_postgres_loads import _profiles

DAY = dt.date(2026, 3, 1)
NAME = "behavioral_profiles"


@pytest.fixture
def staging(tmp_path: Path) -> StagingStore:
    return StagingStore(base_dir=str(tmp_path / "staged"))


def _publish(staging: StagingStore, warehouse: Warehouse, frame: pl.DataFrame) -> str:
    return publish(staging, warehouse, NAME, DAY, frame,
                   [TableWrite.partition(NAME, frame, DAY)])


def _counts(frame: pl.DataFrame) -> list[int]:
    return sorted(set(frame["transaction_count"].to_list()))


def test_a_published_day_reads_back_whole_and_leaves_no_pending_file(
        warehouse: Warehouse, staging: StagingStore) -> None:
    version = _publish(staging, warehouse, _profiles(DAY, 50, 1))
    assert committed_version(warehouse, NAME, DAY) == version
    assert _counts(read_committed(staging, warehouse, NAME, DAY)) == [1]
    assert pending_files(staging, NAME, DAY) == []
    stored = warehouse.read("SELECT count(*) AS n FROM behavioral_profiles")["n"][0]
    assert stored == 50


def test_a_failed_warehouse_write_keeps_the_old_version_and_removes_its_file(
        warehouse: Warehouse, staging: StagingStore) -> None:
    old = _publish(staging, warehouse, _profiles(DAY, 50, 1))
    duplicated = pl.concat([_profiles(DAY, 50, 2), _profiles(DAY, 5, 2)])
    with pytest.raises(Exception):  # noqa: B017 - the primary key; each engine its own type
        _publish(staging, warehouse, duplicated)
    assert committed_version(warehouse, NAME, DAY) == old
    assert _counts(read_committed(staging, warehouse, NAME, DAY)) == [1]
    assert _counts(pl.read_parquet(staging.snapshot_path(NAME, DAY))) == [1]
    assert pending_files(staging, NAME, DAY) == []


def test_a_dead_writers_leftover_goes_and_a_live_writers_file_stays(
        warehouse: Warehouse, staging: StagingStore) -> None:
    """A pending file nobody holds an flock on is a killed writer's: the next write of the
    day deletes it. One whose flock is held belongs to a writer still at work."""
    _publish(staging, warehouse, _profiles(DAY, 10, 1))
    folder = staging.snapshot_path(NAME, DAY).parent
    dead = folder / f".part-{'0' * 32}-deadbeef.pending"
    live = folder / f".part-{'1' * 32}-11ff11ff.pending"
    dead.write_bytes(b"left by a killed writer")
    live.write_bytes(b"being written")
    holder = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        _publish(staging, warehouse, _profiles(DAY, 10, 2))
        assert pending_files(staging, NAME, DAY) == [live]
    finally:
        os.close(holder)
    assert _counts(read_committed(staging, warehouse, NAME, DAY)) == [2]


def test_the_version_is_the_rows_not_their_order() -> None:
    frame = _profiles(DAY, 20, 1)
    assert frame_version(frame) == frame_version(frame.reverse())
    assert frame_version(frame) != frame_version(_profiles(DAY, 20, 2))
    assert frame_version(frame.head(0)) != frame_version(frame)
