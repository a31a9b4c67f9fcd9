"""What a pipeline run leaves behind, in a form two runs can be compared by: every warehouse
table and every staged file, as sorted frames without the few columns that record *when*
something was computed rather than *what*.

Used by tests/test_consistency.py: each path (hourly ticks, range runs, UI backfills, a
re-run) must leave a snapshot equal to that of a clean day-by-day replay.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from resources.settings import PipelineSettings
from resources.warehouse import Warehouse

# Wall-clock stamps: when the LLM answered, not what it wrote (docs/consistency.md lists
# them). Every other column, tokens and window ends included, must match exactly.
VOLATILE_COLUMNS: dict[str, frozenset[str]] = {
    "campaign_copy": frozenset({"created_at"}),
    "llm_copy_cache": frozenset({"created_at"}),
}
BOOKKEEPING_TABLES = frozenset({"schema_migrations"})


@dataclass(frozen=True)
class Snapshot:
    """Name (a table, or `files:<relative path>`) -> canonical frame."""

    frames: dict[str, pl.DataFrame]

    def digests(self) -> dict[str, str]:
        return {name: _digest(frame) for name, frame in self.frames.items()}

    def differences(self, other: Snapshot) -> list[str]:
        """Human-readable differences, empty when the snapshots are equal."""
        problems = []
        for name in sorted(set(self.frames) | set(other.frames)):
            mine, theirs = self.frames.get(name), other.frames.get(name)
            if mine is None or theirs is None:
                problems.append(f"{name}: only in {'this' if theirs is None else 'the other'}")
            elif not mine.equals(theirs):
                problems.append(_describe(name, mine, theirs))
        return problems

    def rows(self, name: str) -> int:
        return self.frames[name].height


def _digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()[:16]


def _describe(name: str, mine: pl.DataFrame, theirs: pl.DataFrame) -> str:
    if mine.columns != theirs.columns:
        return f"{name}: columns {mine.columns} != {theirs.columns}"
    only_mine = mine.join(theirs, on=mine.columns, how="anti", nulls_equal=True)
    only_theirs = theirs.join(mine, on=mine.columns, how="anti", nulls_equal=True)
    return (f"{name}: {mine.height} vs {theirs.height} rows; {only_mine.height} only here, "
            f"{only_theirs.height} only there; e.g. here {only_mine.head(3).to_dicts()} "
            f"there {only_theirs.head(3).to_dicts()}")


def _canonical(frame: pl.DataFrame, drop: frozenset[str] = frozenset(),
               staging_dir: str | None = None) -> pl.DataFrame:
    frame = frame.drop([column for column in frame.columns if column in drop])
    if staging_dir:  # paths into the deployment's own staging directory compare relative
        frame = frame.with_columns(
            pl.col(pl.String).str.replace_all(staging_dir, "<staging>", literal=True))
    return frame.sort(frame.columns, nulls_last=True) if frame.height else frame


def _tables(warehouse: Warehouse, schema: str) -> list[str]:
    if warehouse.dialect == "postgres":
        # Partition children (behavioral_profiles_YYYY_MM_DD) are read through their parent.
        sql = ("SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n "
               "ON n.oid = c.relnamespace WHERE n.nspname = :schema "
               "AND c.relkind IN ('r', 'p') AND NOT c.relispartition")
    else:
        sql = ("SELECT table_name AS name FROM information_schema.tables "
               "WHERE table_schema = :schema AND table_type = 'BASE TABLE'")
    names = warehouse.read(sql, {"schema": schema})["name"].to_list()
    return sorted(name for name in names if name not in BOOKKEEPING_TABLES)


def take_snapshot(settings: PipelineSettings) -> Snapshot:
    """Every table of the warehouse and every Parquet file under the staging directory."""
    warehouse = Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema)
    frames = {
        table: _canonical(warehouse.read(f'SELECT * FROM "{table}"'),
                          VOLATILE_COLUMNS.get(table, frozenset()), settings.staging_dir)
        for table in _tables(warehouse, settings.warehouse_schema)
    }
    base = Path(settings.staging_dir)
    for path in sorted(base.rglob("*.parquet")):
        frames[f"files:{path.relative_to(base)}"] = _canonical(pl.read_parquet(path))
        lineage = pl.read_parquet_metadata(path)
        frames[f"footer:{path.relative_to(base)}"] = pl.DataFrame(
            sorted((key, value) for key, value in lineage.items()
                   if key.startswith("marketing.")),
            schema=["key", "value"], orient="row")
    return Snapshot(frames)
