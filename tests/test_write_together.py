"""Several tables in one transaction (`Warehouse.replace_together`, `Warehouse.transaction`)
and writers of the same partition taking turns, on both engines."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

import polars as pl
import psycopg
import pytest

from resources import fault_points
from resources.table_writes import MAX_LOCKED_DAYS, TableWrite, WriteScope, lock_requests
from resources.warehouse import Warehouse

DAY = dt.date(2026, 3, 1)
PATTERNS = ("high_spender", "new_shopper", "weekend_shopper")


def _segments(day: dt.date, version: int) -> pl.DataFrame:
    return pl.DataFrame({
        "segment_id": [f"{day}-{pattern}" for pattern in PATTERNS],
        "as_of_date": [day] * len(PATTERNS),
        "behavior_pattern": list(PATTERNS),
        "user_count": [version] * len(PATTERNS),
        "share_of_users": [0.5] * len(PATTERNS),
        "total_spend": [100.0 * version] * len(PATTERNS),
        "created_at": [dt.datetime(2026, 3, 2, tzinfo=dt.UTC)] * len(PATTERNS),
    })


def _overlap(day: dt.date, version: int) -> pl.DataFrame:
    return pl.DataFrame({
        "as_of_date": [day] * 2, "pattern_a": ["high_spender", "new_shopper"],
        "pattern_b": ["new_shopper", "weekend_shopper"], "user_count": [version] * 2,
    })


def _writes(day: dt.date, version: int) -> list[TableWrite]:
    return [TableWrite.partition("user_segments", _segments(day, version), day),
            TableWrite.partition("segment_overlap", _overlap(day, version), day)]


def _versions(warehouse: Warehouse, day: dt.date = DAY) -> dict[str, list[int]]:
    """The user_count values of each table's day: one write's version, or a mix."""
    return {table: sorted(warehouse.read(f"SELECT user_count FROM {table} "
                                         "WHERE as_of_date = :day", {"day": day})["user_count"])
            for table in ("user_segments", "segment_overlap")}


def test_every_table_gets_its_new_partition(warehouse: Warehouse) -> None:
    warehouse.replace_together(_writes(DAY, 1))
    loaded = warehouse.replace_together(_writes(DAY, 2))
    assert loaded == {"user_segments": 3, "segment_overlap": 2}
    assert _versions(warehouse) == {"user_segments": [2, 2, 2], "segment_overlap": [2, 2]}


def test_a_failing_later_table_leaves_every_table_as_it_was(warehouse: Warehouse) -> None:
    """The second table's rows break its primary key on the server, after the first
    table's rows were written in the same transaction: neither changes."""
    warehouse.replace_together(_writes(DAY, 1))
    broken = [TableWrite.partition("user_segments", _segments(DAY, 2), DAY),
              TableWrite.partition("segment_overlap",
                                   pl.concat([_overlap(DAY, 2), _overlap(DAY, 2)]), DAY)]
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own error type
        warehouse.replace_together(broken)
    assert _versions(warehouse) == {"user_segments": [1, 1, 1], "segment_overlap": [1, 1]}


def test_a_frame_that_does_not_fit_is_refused_before_anything_is_written(
        warehouse: Warehouse) -> None:
    warehouse.replace_together(_writes(DAY, 1))
    other_day = _overlap(DAY + dt.timedelta(days=1), 2)
    with pytest.raises(ValueError, match="outside the partition"):
        warehouse.replace_together([TableWrite.partition("user_segments", _segments(DAY, 2),
                                                         DAY),
                                    TableWrite.partition("segment_overlap", other_day, DAY)])
    assert _versions(warehouse)["user_segments"] == [1, 1, 1]


def test_a_range_write_replaces_exactly_its_days(warehouse: Warehouse) -> None:
    days = [DAY + dt.timedelta(days=offset) for offset in range(3)]
    for day in days:
        warehouse.replace_together(_writes(day, 1))
    warehouse.replace_together([
        TableWrite.partition_range("user_segments",
                                   pl.concat([_segments(day, 2) for day in days[:2]]),
                                   days[0], days[1]),
        TableWrite.partition_range("segment_overlap",
                                   pl.concat([_overlap(day, 2) for day in days[:2]]),
                                   days[0], days[1])])
    assert [_versions(warehouse, day)["segment_overlap"] for day in days] == [
        [2, 2], [2, 2], [1, 1]]


def test_a_transaction_reads_its_own_writes_and_commits_them_together(
        warehouse: Warehouse) -> None:
    scopes = [WriteScope.partition("user_segments", DAY),
              WriteScope.partition("segment_overlap", DAY)]
    with warehouse.transaction(scopes) as transaction:
        transaction.replace(TableWrite.partition("user_segments", _segments(DAY, 3), DAY))
        seen = transaction.read("SELECT sum(user_count) AS n FROM user_segments")["n"][0]
        transaction.replace(TableWrite.partition("segment_overlap", _overlap(DAY, int(seen)),
                                                 DAY))
    assert _versions(warehouse) == {"user_segments": [3, 3, 3], "segment_overlap": [9, 9]}


def test_an_exception_in_a_transaction_rolls_every_write_back(warehouse: Warehouse) -> None:
    warehouse.replace_together(_writes(DAY, 1))
    scopes = [WriteScope.partition("user_segments", DAY)]
    with pytest.raises(RuntimeError, match="step failed"), \
            warehouse.transaction(scopes) as transaction:
        transaction.replace(TableWrite.partition("user_segments", _segments(DAY, 2), DAY))
        raise RuntimeError("step failed after its first write")
    assert _versions(warehouse)["user_segments"] == [1, 1, 1]


def test_a_write_outside_the_declared_scopes_is_refused(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="declared scopes"), \
            warehouse.transaction([WriteScope.partition("user_segments", DAY)]) as transaction:
        transaction.replace(TableWrite.partition("segment_overlap", _overlap(DAY, 1), DAY))


def test_locks_come_in_one_global_order_with_table_keys_shared_unless_table_wide() -> None:
    day_scopes = [WriteScope.partition("ai_campaigns", DAY),
                  WriteScope.partition("campaign_audience", DAY)]
    locks = lock_requests("s", day_scopes)
    assert [lock.key for lock in locks] == sorted(lock.key for lock in locks)
    by_label = {lock.label: lock.exclusive for lock in locks}
    assert by_label == {"s.ai_campaigns": False, "s.campaign_audience": False,
                        f"s.ai_campaigns/as_of_date={DAY}": True,
                        f"s.campaign_audience/as_of_date={DAY}": True}
    with_update = lock_requests("s", [*day_scopes, WriteScope.table_wide("ai_campaigns")])
    assert {lock.label: lock.exclusive for lock in with_update}["s.ai_campaigns"] is True
    # A range locks each of its days (so it conflicts with a one-day writer of any of
    # them), and a very long range the whole table.
    week = WriteScope.partition_range("user_segments", DAY, DAY + dt.timedelta(days=6))
    assert len(week.values) == 7
    long = WriteScope.partition_range("user_segments", DAY,
                                      DAY + dt.timedelta(days=MAX_LOCKED_DAYS))
    assert long.whole_table


# --- concurrent writers ------------------------------------------------------------------

def _pause_first_writer(monkeypatch: pytest.MonkeyPatch, table: str
                        ) -> tuple[threading.Event, threading.Event, list[str]]:
    """Make the thread named "A" stop right after writing `table` in its transaction,
    until released; record which threads reached that point."""
    paused, release, reached = threading.Event(), threading.Event(), []

    def hook(point: str) -> None:
        if point != table:
            return
        reached.append(threading.current_thread().name)
        if threading.current_thread().name == "A":
            paused.set()
            assert release.wait(60), "the test never released writer A"

    monkeypatch.setattr(fault_points, "reached", hook)
    return paused, release, reached


def _start(name: str, target: Callable[[], object], errors: list[BaseException]
           ) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread


def _warmed(warehouse: Warehouse) -> Warehouse:
    """Another resource on the same warehouse, migrated and with the tables' columns
    looked up. In one process DuckDB refuses a read-only connection while a write
    connection is open (a different configuration of the same file), and those lookups
    read; a run does them before its first write, these threads must too."""
    other = Warehouse(url=warehouse.url, schema_name=warehouse.schema_name)
    other.ensure_schema()
    for table in ("user_segments", "segment_overlap"):
        other._columns_of(table)
    return other


def _waiting_on_a_lock(url: str) -> bool:
    """Whether some other session of this database waits for a lock (B, behind A)."""
    with psycopg.connect(url, autocommit=True) as connection:
        return bool(connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()").fetchone()[0])  # type: ignore[index]


def test_two_concurrent_writers_of_the_same_day_take_turns(
        warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer A has written user_segments of the day inside its transaction when writer B
    starts the same day. B waits for A (PostgreSQL: the advisory lock; DuckDB: the per-file
    write lock), then replaces A's rows: both succeed and the day is B's whole version.
    Without the locks B fails on the primary key (PostgreSQL: when A commits; DuckDB: at
    whichever commit comes second)."""
    first, second = (_warmed(warehouse) for _ in range(2))
    first.replace_together(_writes(DAY, 1))
    paused, release, reached = _pause_first_writer(monkeypatch, "user_segments")
    errors: list[BaseException] = []
    writer_a = _start("A", lambda: first.replace_together(_writes(DAY, 2)), errors)
    assert paused.wait(60), errors
    writer_b = _start("B", lambda: second.replace_together(_writes(DAY, 3)), errors)
    if warehouse.dialect == "postgres":
        deadline = time.monotonic() + 30
        while not _waiting_on_a_lock(warehouse.url):
            assert time.monotonic() < deadline, "writer B never queued behind writer A"
            time.sleep(0.05)
    else:
        # DuckDB shows no lock waits; B must simply not get past its first write while A
        # holds the file (B reaching it would mean both transactions are open at once).
        writer_b.join(timeout=1.0)
    assert reached == ["A"], "writer B wrote the day while writer A's transaction was open"
    release.set()
    writer_a.join(60)
    writer_b.join(60)
    assert not errors, errors
    assert _versions(warehouse) == {"user_segments": [3, 3, 3], "segment_overlap": [3, 3]}


def test_writers_of_different_days_do_not_wait_for_each_other(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL locks per partition: while A holds day D, B writes day D+1 and commits."""
    import uuid

    warehouse = Warehouse(url=postgres_url, schema_name=f"t_{uuid.uuid4().hex[:10]}")
    warehouse.migrate()
    paused, release, _ = _pause_first_writer(monkeypatch, "user_segments")
    errors: list[BaseException] = []
    writer_a = _start("A", lambda: warehouse.replace_together(_writes(DAY, 2)), errors)
    assert paused.wait(60), errors
    next_day = DAY + dt.timedelta(days=1)
    other = Warehouse(url=postgres_url, schema_name=warehouse.schema_name)
    other.replace_together(_writes(next_day, 5))  # returns while A is still paused
    assert _versions(warehouse, next_day)["user_segments"] == [5, 5, 5]
    release.set()
    writer_a.join(60)
    assert not errors, errors
