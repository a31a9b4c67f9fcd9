"""The demo's Dagster instance: SQLite files under data/demo/dagster_home, cheaper to write.

Dagster's `SqliteEventLogStorage` builds a new SQLAlchemy engine for every statement batch
it writes (`_connect`: `create_engine(...)`, one connection, `dispose()`), so each event
pays for a fresh dialect, an empty compiled-statement cache and a new SQLite connection.
A demo day is ~1,300 events (the 120-day ingest run ~2,000); under cProfile the event log
was half of the demo's time, and engine creation plus statement compilation two thirds of
that. `ReusedEngineSqliteEventLogStorage` keeps one engine per database file (the index
and each run's shard, the most recent `MAX_ENGINES`), so statements compile once and
connections are reused; the files, their schema and what is stored are Dagster's own, so
`make ui` (which loads the same dagster.yaml) and a plain Dagster instance read them alike.

Dagster is pinned (pyproject.toml), and tests/test_demo_instance.py checks that this class
stores and reads events exactly as its parent does, so a Dagster upgrade that changes
`_connect` fails there, not silently.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import SingletonThreadPool

# Engines kept open: the index and the shards of the runs being written or watched.
MAX_ENGINES = 16


class ReusedEngineSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one engine (and one connection per thread) per file."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, db.engine.Engine] = OrderedDict()
        self._engines_lock = threading.Lock()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(  # type: ignore[override]  # the parent's signature, own class
        cls, inst_data: ConfigurableClassData | None, config_value: dict[str, Any]
    ) -> ReusedEngineSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> db.engine.Engine:
        with self._engines_lock:
            engine = self._engines.pop(shard, None)
            if engine is None:
                # One connection per thread, kept: the parent serializes all use of a
                # storage's connections with its `_db_lock`, and SQLite's own file locks
                # keep other processes (the webserver, the daemon) consistent with us.
                engine = db.create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=SingletonThreadPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
            self._engines[shard] = engine
            while len(self._engines) > MAX_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[db.engine.Connection]:  # type: ignore[override]
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as connection, connection.begin():
                yield connection

    def dispose(self) -> None:
        super().dispose()
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()


def demo_instance_yaml(home: Path) -> str:
    """dagster.yaml of the demo's instance: Dagster's default SQLite layout under `home`
    (history/runs.db, history/runs/<run>.db, schedules/), no telemetry, the event log
    storage above, and the production instance's pool limit (dagster.yaml: one copy step
    at a time across runs, so UI backfills share one LLM budget)."""
    home = home.resolve()
    return f"""telemetry:
  enabled: false
run_storage:
  module: dagster._core.storage.runs
  class: SqliteRunStorage
  config:
    base_dir: {home / "history"}
event_log_storage:
  module: {__name__}
  class: {ReusedEngineSqliteEventLogStorage.__name__}
  config:
    base_dir: {home / "history" / "runs"}
schedule_storage:
  module: dagster._core.storage.schedules
  class: SqliteScheduleStorage
  config:
    base_dir: {home / "schedules"}
concurrency:
  pools:
    default_limit: 1
"""
