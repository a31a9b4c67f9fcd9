"""Reading transaction exports file by file, so one bad file cannot sink a folder.

Each file is scanned on its own. A file that cannot be read (not UTF-8, truncated Parquet,
zero bytes, no `occurred_at` column, ...) is *rejected as a file*: listed with its reason
(`RejectedFile`), while the folder's other files are ingested. Every row read keeps where
it came from (`_source_file`, and `_source_row`, its 1-based row in that file, header not
counted), so a quarantined row can be found in the export.

The rows of a day come back in one total order, (timestamp, transaction id, file, row), so
"the first copy of a duplicated id" is the same row on every run and every range split.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from transforms.columns import TRANSACTION_REQUIRED_COLUMNS
from transforms.timestamps import parse_timestamp_columns
from transforms.validation import SOURCE_FILE_COLUMN, SOURCE_ROW_COLUMN

FILE_REASONS: dict[str, str] = {
    "empty_file": "the file has zero bytes (an export that wrote nothing, not even a header)",
    "missing_columns": "required columns are missing",
    "not_utf8": "the file is not UTF-8 text",
    "unreadable_file": "the file cannot be parsed",
}


@dataclass(frozen=True)
class RejectedFile:
    """One export file that was not ingested, and why."""

    path: str
    reason_code: str
    reason: str


@dataclass(frozen=True)
class FileRows:
    """The rows read from a folder of exports for one day range, and the files refused."""

    frame: pl.DataFrame
    files_read: int
    rejected_files: list[RejectedFile]


def export_files(root: str, table: str) -> list[Path]:
    """`<root>/<table>.{parquet,csv}` and `<root>/<table>/*.{parquet,csv}`, Parquet first
    (a folder holds one format; if both exist, Parquet wins, as before)."""
    base = Path(root)
    for suffix in ("parquet", "csv"):
        files = sorted(base.glob(f"{table}.{suffix}")) + sorted(base.glob(f"{table}/*.{suffix}"))
        if files:
            return files
    raise FileNotFoundError(f"no {table}.parquet/.csv or {table}/*.parquet|csv under {root}")


def _scan(path: Path) -> pl.LazyFrame:
    if path.suffix == ".parquet":
        return pl.scan_parquet(path)
    # CSV is text throughout: validation decides what a value means
    return pl.scan_csv(path, infer_schema=False)


def _explain(error: Exception) -> tuple[str, str]:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "utf-8" in message.lower() or "utf8" in message.lower():
        return "not_utf8", f"{FILE_REASONS['not_utf8']}: {message}"
    return "unreadable_file", f"{FILE_REASONS['unreadable_file']}: {message}"


def _read_one(path: Path, name: str, read_filter: pl.Expr, time_zone: str
              ) -> pl.DataFrame | RejectedFile:
    if path.stat().st_size == 0:
        return RejectedFile(name, "empty_file", FILE_REASONS["empty_file"])
    try:
        frame = _scan(path)
        schema = frame.collect_schema()
        missing = [column for column in TRANSACTION_REQUIRED_COLUMNS if column not in schema]
        if missing:
            return RejectedFile(name, "missing_columns",
                                f"{FILE_REASONS['missing_columns']}: {missing} "
                                f"(the file has {list(schema)})")
        dated = parse_timestamp_columns(schema["occurred_at"], time_zone=time_zone)[0]
        return (frame.with_row_index(SOURCE_ROW_COLUMN, offset=1)
                .with_columns(dated.alias("_dated_at"))
                .filter(read_filter)
                .with_columns(pl.col(SOURCE_ROW_COLUMN).cast(pl.Int64),
                              pl.lit(name).alias(SOURCE_FILE_COLUMN))
                .collect())
    except (pl.exceptions.PolarsError, OSError, ValueError) as error:
        code, reason = _explain(error)
        return RejectedFile(name, code, reason)


def _as_text(frame: pl.DataFrame, column: str) -> pl.Expr:
    """A column as text for files that disagree on its type; timestamps keep their zone."""
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Datetime):
        zone = "%z" if dtype.time_zone else ""
        return pl.col(column).dt.to_string(f"%Y-%m-%dT%H:%M:%S%.f{zone}").alias(column)
    return pl.col(column).cast(pl.String).alias(column)


def _combine(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """One frame from files whose column types may differ (an int `user_id` in one Parquet
    file, text in the next): columns that disagree become text, which validation parses
    the same way, instead of the whole folder failing on a schema mismatch."""
    disagreeing = {column for column in {c for f in frames for c in f.columns}
                   if len({f.schema[column] for f in frames if column in f.columns}) > 1}
    aligned = [frame.with_columns(_as_text(frame, column) for column in disagreeing
                                  if column in frame.columns) for frame in frames]
    return pl.concat(aligned, how="diagonal")


def read_transaction_files(root: str, day_start: dt.datetime, day_end: dt.datetime, *,
                           include_later: bool, include_undated: bool,
                           time_zone: str = "UTC") -> FileRows:
    """The rows of [day_start, day_end) (plus later/undated rows when asked) from every
    readable export file, in the total order, with the unreadable files listed."""
    base = Path(root)
    in_scope = (pl.col("_dated_at") >= day_start) & (pl.col("_dated_at") < day_end)
    if include_later:
        in_scope |= pl.col("_dated_at") >= day_end
    if include_undated:
        in_scope |= pl.col("_dated_at").is_null()
    frames, rejected = [], []
    files = export_files(root, "transactions")
    for path in files:
        name = str(path.relative_to(base)) if path.is_relative_to(base) else str(path)
        result = _read_one(path, name, in_scope, time_zone)
        if isinstance(result, RejectedFile):
            rejected.append(result)
        else:
            frames.append(result)
    if not frames:
        return FileRows(pl.DataFrame(schema={column: pl.String for column in
                                             TRANSACTION_REQUIRED_COLUMNS}),
                        0, rejected)
    ordered = _combine(frames).sort("_dated_at", "transaction_id", SOURCE_FILE_COLUMN,
                                    SOURCE_ROW_COLUMN, nulls_last=True,
                                    maintain_order=True)
    return FileRows(ordered.drop("_dated_at"), len(frames), rejected)
