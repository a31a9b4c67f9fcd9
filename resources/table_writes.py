"""What one write to a warehouse table replaces, and which locks writers of it take.

A step that writes several tables hands all of them to `Warehouse.replace_together` (or
opens `Warehouse.transaction`), so they commit in one transaction: a reader, or a run
killed half-way, sees every table's old partition or every table's new one, never a mix
(docs/data-model.md, "All-or-nothing writes").

Concurrent writers of the same partition take turns. Each write names its *scope*, the
rows it deletes before it loads: a table's partition (one value of its partition column,
or a range of days), the whole table (a statement that updates every day), or nothing (an
append). On PostgreSQL a transaction takes transaction-scoped advisory locks derived from
its scopes before it touches a row (`lock_requests`), so two writers of one partition queue
instead of one failing on the other's primary key. Plain row locks cannot do this: a
partition that is empty, or that the other writer has not reached yet, has no rows to lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

# Class id (first key) of the two-key advisory locks writers take; 874512 is the migration
# lock (resources/warehouse_backends.py), and the partition swap uses one-key locks, a
# key space of its own.
WRITE_LOCK_CLASS = 874513
# A range write locks each day up to this many days; a longer range locks the whole table
# instead, so a 10-year backfill does not take thousands of locks.
MAX_LOCKED_DAYS = 62


def identifier(name: str) -> str:
    """Refuse anything but a plain column or table name: identifiers are never bound."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


@dataclass(frozen=True)
class WriteScope:
    """The rows of `table` a transaction may replace: the `column` partitions in `values`;
    every row (`whole_table`); or none at all (neither: an append)."""

    table: str
    column: str | None = None
    values: tuple[Any, ...] = ()
    whole_table: bool = False

    @classmethod
    def partition(cls, table: str, value: Any, column: str = "as_of_date") -> WriteScope:
        return cls(identifier(table), identifier(column), (value,))

    @classmethod
    def partition_range(cls, table: str, first: dt.date, last: dt.date,
                        column: str = "as_of_date") -> WriteScope:
        if not (isinstance(first, dt.date) and isinstance(last, dt.date)):
            return cls.table_wide(table)
        span = (last - first).days + 1
        if span > MAX_LOCKED_DAYS:
            return cls.table_wide(table)
        days = tuple(first + dt.timedelta(days=offset) for offset in range(max(span, 0)))
        return cls(identifier(table), identifier(column), days)

    @classmethod
    def table_wide(cls, table: str) -> WriteScope:
        """Any row of the table (an UPDATE across days, a range too long to lock per day)."""
        return cls(identifier(table), whole_table=True)

    @classmethod
    def append_only(cls, table: str) -> WriteScope:
        """Inserts that delete nothing: they conflict with no other writer's partition."""
        return cls(identifier(table))


@dataclass(frozen=True)
class LockRequest:
    """One advisory lock: (WRITE_LOCK_CLASS, key), exclusive or shared."""

    key: int
    exclusive: bool
    label: str


def lock_requests(schema: str, scopes: Sequence[WriteScope]) -> list[LockRequest]:
    """The locks a transaction over `scopes` takes, in the one global order every writer
    uses (by key), so two writers of overlapping table sets can never deadlock.

    Per table a *table key*: shared by partition writers and appenders, exclusive for a
    whole-table write, so an UPDATE across days waits for every partition writer of the
    table and they for it. Per partition a *partition key*, exclusive: writers of the
    same day queue, writers of different days do not wait for each other. Keys are 32-bit
    digests of the names; a collision only makes two unrelated writers take turns.
    """
    wanted: dict[int, LockRequest] = {}

    def add(label: str, exclusive: bool) -> None:
        key = _digest(label)
        if key not in wanted or (exclusive and not wanted[key].exclusive):
            wanted[key] = LockRequest(key, exclusive, label)

    for scope in scopes:
        add(f"{schema}.{scope.table}", scope.whole_table)
        for value in scope.values:
            add(f"{schema}.{scope.table}/{scope.column}={_text(value)}", True)
    return [wanted[key] for key in sorted(wanted)]


@dataclass(frozen=True)
class TableWrite:
    """Delete the rows of `table` that match `equal` (column = value, all of them) and
    `between` (column BETWEEN first AND last), then load `frame`. Neither: an append."""

    table: str
    frame: pl.DataFrame
    equal: tuple[tuple[str, Any], ...] = ()
    between: tuple[str, dt.date, dt.date] | None = None

    @classmethod
    def partition(cls, table: str, frame: pl.DataFrame, value: Any,
                  column: str = "as_of_date") -> TableWrite:
        """Replace one partition (a day) of the table."""
        return cls(identifier(table), frame, equal=((identifier(column), value),))

    @classmethod
    def partition_range(cls, table: str, frame: pl.DataFrame, first: dt.date, last: dt.date,
                        column: str = "as_of_date") -> TableWrite:
        """Replace the partitions first..last (inclusive)."""
        return cls(identifier(table), frame, between=(identifier(column), first, last))

    @classmethod
    def rows(cls, table: str, frame: pl.DataFrame, where: Mapping[str, Any]) -> TableWrite:
        """Replace the rows matching every `column = value` of `where`."""
        if not where:
            raise ValueError("a partition write needs at least one key column to delete by")
        return cls(identifier(table), frame,
                   equal=tuple((identifier(column), value) for column, value in where.items()))

    @classmethod
    def append(cls, table: str, frame: pl.DataFrame) -> TableWrite:
        """Insert rows without deleting any (append-only audit tables)."""
        return cls(identifier(table), frame)

    @property
    def scope(self) -> WriteScope:
        """What this write replaces. A write keyed by several columns locks the partition
        of its first one (a superset of its rows: safe, and never used for big tables)."""
        if self.between is not None:
            column, first, last = self.between
            return WriteScope.partition_range(self.table, first, last, column)
        if self.equal:
            column, value = self.equal[0]
            return WriteScope.partition(self.table, value, column)
        return WriteScope.append_only(self.table)

    @property
    def single_partition(self) -> tuple[str, Any] | None:
        """(column, value) when the write replaces exactly one value of one column: the
        shape the PostgreSQL partition swap can take over."""
        return self.equal[0] if len(self.equal) == 1 and self.between is None else None

    def where_sql(self) -> tuple[str, dict[str, Any]]:
        """The DELETE condition with `:name` placeholders, and its parameters."""
        if self.between is not None:
            column, first, last = self.between
            return f"{column} BETWEEN :first AND :last", {"first": first, "last": last}
        if not self.equal:
            return "1 = 0", {}
        params = {f"key_{index}": value for index, (_, value) in enumerate(self.equal)}
        sql = " AND ".join(f"{column} = :key_{index}"
                           for index, (column, _) in enumerate(self.equal))
        return sql, params

    def refuse_rows_outside(self) -> None:
        """A frame row outside the deleted rows would survive every rerun once more, so
        such a frame is refused before anything is written."""
        if not self.frame.height:
            return
        outside: list[pl.Expr] = []
        if self.between is not None and self.between[0] in self.frame.columns:
            column, first, last = self.between
            outside.append((pl.col(column) < first) | (pl.col(column) > last))
        for column, value in self.equal:
            if column in self.frame.columns:
                outside.append(pl.col(column) != pl.lit(value))
        if not outside:
            return
        mismatched = self.frame.filter(pl.any_horizontal(outside)).height
        if mismatched:
            raise ValueError(
                f"{mismatched} rows for {self.table} fall outside the partition being "
                "replaced; a partition write may only contain that partition's rows")


def covers(scopes: Sequence[WriteScope], write: TableWrite) -> bool:
    """Whether a transaction that locked `scopes` may perform `write`."""
    wanted = write.scope
    for scope in scopes:
        if scope.table != write.table:
            continue
        if scope.whole_table or (not wanted.values and not wanted.whole_table):
            return True
        if scope.column == wanted.column and set(wanted.values) <= set(scope.values):
            return True
    return False


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _digest(label: str) -> int:
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=4).digest(), "big",
                          signed=True)
