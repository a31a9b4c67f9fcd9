"""Replacing one day of a LIST-partitioned PostgreSQL table by loading a new partition
in parallel and swapping it in.

Why: a DELETE + COPY of a 485k-row day runs in one session, so on one core, and leaves
the old rows behind as dead tuples for VACUUM (the hourly refresh rewrites today 24 times
a day). Instead the new day is built beside the table and swapped in:

1. The day becomes its own table, RANGE-partitioned by the second primary-key column
   (`user_id`), with one leaf per load session. Each session owns its leaf: it creates
   it, `COPY ... FREEZE`s its contiguous slice of the (sorted) frame into it, builds the
   leaf's primary key, and commits. One shared table instead was measured 13% slower:
   the sessions queued on its extension lock, and the key had to be built afterwards in
   one pass. FREEZE is allowed because the table is new in that transaction, and it
   spares the first reader from rewriting every page to set hint bits.
2. Every table carries CHECK constraints stating its bounds (the day; the leaf's
   `user_id` range), so each ATTACH below is a catalog update, not a scan.
3. The leaves are attached to the day table; then one short transaction detaches and
   drops the day's old partition, deletes the day's rows from the DEFAULT partition if
   any strayed there, renames, and attaches the day.

Readers see the old day or the new day, never a mix and never nothing: a READ COMMITTED
statement takes its snapshot after it has locked the parent, and DETACH waits for those
locks. A REPEATABLE READ transaction must lock the parent before its first query (the API
does, see `api/database.py`), like any reader of a table that gets swapped or truncated.

Load tables are named `<table>_load_<hex>` (leaves `..._s<n>`) and guarded by a session
advisory lock on that name; one whose lock is free belongs to a dead process and is
dropped by the next swap.

Other tables written together with the day (`Warehouse.replace_together`, e.g. the
`snapshot_versions` row that says which Parquet snapshot the day is) are written by
`in_transaction` inside the swap's transaction, before the swap: they commit with the
day or not at all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl
import psycopg
from psycopg import sql as pgsql

from resources import fault_points
from resources.postgres_copy import batches_of, copy_into

# The tables sql/migrations/0005_*.postgres.sql partitions by day. A REPEATABLE READ reader
# locks these before its first query (see the module docstring); a test keeps this list
# equal to the catalog's.
SWAPPED_TABLES = ("behavioral_profiles",)
_LOAD_NAME = re.compile(r"^(?P<load>.+_load_[0-9a-f]{12})(_s\d+)?$")


def list_partition_key(connection: psycopg.Connection, schema: str, table: str
                       ) -> str | None:
    """The column a table is LIST-partitioned by, or None for any other table."""
    row = connection.execute(
        "SELECT a.attname FROM pg_partitioned_table p "
        "JOIN pg_class c ON c.oid = p.partrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = p.partattrs[0] "
        "WHERE n.nspname = %s AND c.relname = %s AND p.partstrat = 'l' AND p.partnatts = 1",
        (schema, table),
    ).fetchone()
    return row[0] if row else None


def partition_name(table: str, value: object) -> str:
    """`behavioral_profiles_p20240429`: one stable name per day, so psql users find it."""
    suffix = value.strftime("%Y%m%d") if isinstance(value, dt.date) else str(value)
    name = f"{table}_p{''.join(ch if ch.isalnum() else '_' for ch in suffix)}"
    if len(name) > 60:  # leaves add "_s<n>" within PostgreSQL's 63 characters
        raise ValueError(f"partition name {name} is too long for PostgreSQL identifiers")
    return name


@dataclass(frozen=True)
class _Leaf:
    """One session's share of the day: rows [start, stop) of the sorted frame, holding
    shard values in [low, high) (None = unbounded)."""

    name: str
    start: int
    stop: int
    low: object | None
    high: object | None


def swap_partition(conninfo: str, schema: str, table: str, column: str, value: object,
                   frame: pl.DataFrame, *, sessions: int,
                   in_transaction: Callable[[psycopg.Connection], None] | None = None) -> int:
    """Make `frame` (already cast to the table's types) the whole `column = value`
    partition of `schema.table`; `in_transaction(connection)` runs in the swap's
    transaction just before the swap (writer locks, the other tables of the write)."""
    load = f"{table}_load_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(conninfo, autocommit=True) as coordinator:
        keys = _key_constraints(coordinator, schema, table)
        shard = _shard_column(coordinator, schema, table, column)
        frame = frame.sort(shard) if not frame[shard].is_sorted() else frame
        leaves = _leaves(load, frame[shard], sessions)
        _drop_orphaned_loads(coordinator, schema, table)
        coordinator.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"{schema}.{load}",))
        try:
            bound = pgsql.SQL("CONSTRAINT day_bound CHECK ({column} IS NOT NULL AND "
                              "{column} = {value})").format(
                column=pgsql.Identifier(column), value=pgsql.Literal(value))
            coordinator.execute(pgsql.SQL(
                "CREATE TABLE {day} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
                "{bound}{keys}) PARTITION BY RANGE ({shard})").format(
                day=pgsql.Identifier(schema, load), parent=pgsql.Identifier(schema, table),
                bound=bound, keys=pgsql.SQL("").join(pgsql.SQL(", " + key) for key in keys),
                shard=pgsql.Identifier(shard)))
            _load_leaves(conninfo, schema, table, leaves, frame, bound, shard, keys)
            for leaf in leaves:
                coordinator.execute(pgsql.SQL(
                    "ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
                    pgsql.Identifier(schema, load), pgsql.Identifier(schema, leaf.name),
                    _range_bound(leaf.low, "MINVALUE"), _range_bound(leaf.high, "MAXVALUE")))
            coordinator.autocommit = False
            if in_transaction is not None:
                in_transaction(coordinator)
            _swap_in(coordinator, schema, table, load, len(leaves), column, value)
            fault_points.reached(table)
            coordinator.commit()
        finally:
            # After a success the load tables are the day's partition and these are
            # no-ops. After a failure a broken connection must not mask the original
            # error: the next swap drops what is left once this session's lock is gone.
            with contextlib.suppress(psycopg.Error):
                coordinator.rollback()
                coordinator.autocommit = True
                for name in [load] + [leaf.name for leaf in leaves]:
                    coordinator.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(
                        pgsql.Identifier(schema, name)))
                coordinator.execute("SELECT pg_advisory_unlock(hashtext(%s))",
                                    (f"{schema}.{load}",))
    return frame.height


def _leaves(load: str, shard_values: pl.Series, sessions: int) -> list[_Leaf]:
    """Split the sorted shard column into up to `sessions` contiguous, non-empty ranges
    that never cut through one value (a value's rows must all land in one leaf)."""
    rows = shard_values.len()
    if rows == 0:
        return [_Leaf(name=f"{load}_s0", start=0, stop=0, low=None, high=None)]
    cuts: list[int] = []
    for index in range(1, max(1, sessions)):
        cut = int(shard_values.search_sorted(shard_values[index * rows // sessions], "left"))
        if 0 < cut < rows and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    edges = [0, *cuts, rows]
    return [
        _Leaf(name=f"{load}_s{index}", start=start, stop=stop,
              low=shard_values[start] if index > 0 else None,
              high=shard_values[stop] if stop < rows else None)
        for index, (start, stop) in enumerate(itertools.pairwise(edges))
    ]


def _range_bound(value: object | None, unbounded: str) -> pgsql.Composable:
    return pgsql.SQL(unbounded) if value is None else pgsql.Literal(value)


def _load_leaves(conninfo: str, schema: str, table: str, leaves: list[_Leaf],
                 frame: pl.DataFrame, bound: pgsql.Composable, shard: str,
                 keys: list[str]) -> None:
    """Each leaf in its own session and transaction, all at once; the first error wins."""
    errors: list[BaseException] = []

    def load(leaf: _Leaf) -> None:
        try:
            with psycopg.connect(conninfo) as connection:
                _load_leaf(connection, schema, table, leaf, frame, bound, shard, keys)
                connection.commit()
        except BaseException as error:  # re-raised in the calling thread below
            errors.append(error)

    if len(leaves) == 1:
        load(leaves[0])
    else:
        workers = [threading.Thread(target=load, args=(leaf,), name=f"load-{leaf.name[-3:]}")
                   for leaf in leaves]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    if errors:
        raise errors[0]


def _load_leaf(connection: psycopg.Connection, schema: str, table: str, leaf: _Leaf,
               frame: pl.DataFrame, bound: pgsql.Composable, shard: str,
               keys: list[str]) -> None:
    conditions = [pgsql.SQL("{} IS NOT NULL").format(pgsql.Identifier(shard))]
    if leaf.low is not None:
        conditions.append(pgsql.SQL("{} >= {}").format(pgsql.Identifier(shard),
                                                       pgsql.Literal(leaf.low)))
    if leaf.high is not None:
        conditions.append(pgsql.SQL("{} < {}").format(pgsql.Identifier(shard),
                                                      pgsql.Literal(leaf.high)))
    target = pgsql.Identifier(schema, leaf.name)
    connection.execute(pgsql.SQL(
        "CREATE TABLE {leaf} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
        "{bound}, CONSTRAINT shard_bound CHECK ({range}))").format(
        leaf=target, parent=pgsql.Identifier(schema, table), bound=bound,
        range=pgsql.SQL(" AND ").join(conditions)))
    with connection.cursor() as cursor:
        rows = frame.slice(leaf.start, leaf.stop - leaf.start)
        copy_into(cursor, target, frame.columns, batches_of(rows), freeze=True)
    for key in keys:
        connection.execute(pgsql.SQL("ALTER TABLE {} ADD {}").format(target, pgsql.SQL(key)))  # type: ignore[arg-type]


def _key_constraints(connection: psycopg.Connection, schema: str, table: str) -> list[str]:
    """The parent's PRIMARY KEY / UNIQUE definitions, rebuilt on every leaf (ATTACH then
    adopts them instead of building them while it holds its lock)."""
    rows = connection.execute(
        "SELECT pg_get_constraintdef(con.oid) FROM pg_constraint con "
        "JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND con.contype IN ('p', 'u') "
        "ORDER BY con.contype, con.conname",
        (schema, table),
    ).fetchall()
    return [row[0] for row in rows]


def _shard_column(connection: psycopg.Connection, schema: str, table: str, day_column: str
                  ) -> str:
    """The primary-key column after the day: a partitioned table's unique keys must
    contain its partition columns, so only a key column can split the day into leaves."""
    rows = connection.execute(
        "SELECT a.attname FROM pg_constraint con "
        "JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, position) "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
        "WHERE n.nspname = %s AND c.relname = %s AND con.contype = 'p' ORDER BY k.position",
        (schema, table),
    ).fetchall()
    columns = [row[0] for row in rows if row[0] != day_column]
    if not columns:
        raise ValueError(f"{schema}.{table} needs a primary key ({day_column}, <column>) to "
                         "be loaded in parallel by partition swap")
    return columns[0]


def _swap_in(connection: psycopg.Connection, schema: str, table: str, load: str,
             leaves: int, column: str, value: object) -> None:
    """The swap itself, in the caller's transaction: old partition out, new one in."""
    parent = pgsql.Identifier(schema, table)
    name = partition_name(table, value)
    # Two writers of the same table (an hourly run and a backfill) take turns here.
    connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"swap:{schema}.{table}",))
    for old in _partitions_holding(connection, schema, table, value):
        connection.execute(pgsql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
            parent, pgsql.Identifier(schema, old)))
        connection.execute(pgsql.SQL("DROP TABLE {}").format(pgsql.Identifier(schema, old)))
    # With the day's partition gone, this reaches only the DEFAULT partition, where rows
    # inserted by hand before the day had a partition would otherwise block the ATTACH.
    connection.execute(pgsql.SQL("DELETE FROM {} WHERE {} = {}").format(
        parent, pgsql.Identifier(column), pgsql.Literal(value)))
    for index in range(leaves):
        connection.execute(pgsql.SQL("ALTER TABLE {} RENAME TO {}").format(
            pgsql.Identifier(schema, f"{load}_s{index}"), pgsql.Identifier(f"{name}_s{index}")))
    connection.execute(pgsql.SQL("ALTER TABLE {} RENAME TO {}").format(
        pgsql.Identifier(schema, load), pgsql.Identifier(name)))
    connection.execute(pgsql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
        parent, pgsql.Identifier(schema, name), pgsql.Literal(value)))


def _partitions_holding(connection: psycopg.Connection, schema: str, table: str,
                        value: object) -> list[str]:
    """Attached partitions whose bound is exactly this one value."""
    bound = connection.execute(
        pgsql.SQL("SELECT format('FOR VALUES IN (%L)', {}::text)").format(pgsql.Literal(value))
    ).fetchone()[0]  # type: ignore[index]
    rows = connection.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass AND pg_get_expr(c.relpartbound, c.oid) = %s",
        (f'"{schema}"."{table}"', bound),
    ).fetchall()
    return [row[0] for row in rows]


def _drop_orphaned_loads(connection: psycopg.Connection, schema: str, table: str) -> None:
    """Drop load tables left by a process that died mid-load (their advisory lock is free).

    Leaves go before their day table would take them along, which is fine: both are
    orphans of the same dead load."""
    rows = connection.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s "
        "ORDER BY tablename DESC",
        (schema, f"{table}_load_".replace("_", "\\_") + "%"),
    ).fetchall()
    for (name,) in rows:
        match = _LOAD_NAME.match(name)
        if match is None:
            continue
        key = f"{schema}.{match['load']}"
        if connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone()[0]:  # type: ignore[index]
            connection.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(
                pgsql.Identifier(schema, name)))
            connection.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
