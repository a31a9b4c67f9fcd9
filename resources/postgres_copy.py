"""Polars frames into PostgreSQL through binary `COPY`.

Why binary: with CSV the server parses every timestamp, numeric and float from text, and
that parsing was most of a load's cost (a 485k-row profile partition: 3.5 s as CSV, 1.5 s
as binary, same server, same rows). pgpq encodes Arrow batches in Rust, so no Python code
runs per row either.

Binary `COPY` has no coercion: every field must already be exactly its column's type (an
Int64 sent to an INTEGER column is "incorrect binary data format"). So a frame is first
cast to the table's column types, read from the catalog; a value that does not fit (an
integer overflow, a string where a number belongs) fails the cast with the column named,
before anything reaches the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pgpq
import polars as pl
import psycopg
from psycopg import sql as pgsql

# Rows per Arrow batch handed to the encoder: big enough that per-batch overhead vanishes,
# small enough that one encoded batch (~10 MB for profile rows) is all that is in flight.
ENCODE_BATCH_ROWS = 20_000

_SCALAR_TYPES: dict[str, pl.DataType] = {
    "smallint": pl.Int16(),
    "integer": pl.Int32(),
    "bigint": pl.Int64(),
    "real": pl.Float32(),
    "double precision": pl.Float64(),
    "boolean": pl.Boolean(),
    "text": pl.String(),
    "character varying": pl.String(),
    # json's binary form is its text; jsonb's is not (it starts with a version byte).
    "json": pl.String(),
    "date": pl.Date(),
    "timestamp with time zone": pl.Datetime("us", "UTC"),
    "timestamp without time zone": pl.Datetime("us"),
}
# Array columns by element type (information_schema reports them as udt_name "_int4" ...).
_ARRAY_ELEMENTS = {"_text": "text", "_varchar": "character varying", "_int2": "smallint",
                   "_int4": "integer", "_int8": "bigint", "_float8": "double precision",
                   "_bool": "boolean", "_date": "date"}


@dataclass(frozen=True)
class ColumnType:
    """One table column as the catalog describes it."""

    name: str
    data_type: str
    udt_name: str
    numeric_scale: int | None

    def polars_type(self) -> pl.DataType:
        """The exact Polars type whose Arrow form pgpq encodes as this column's type."""
        if self.data_type == "numeric":
            # Unconstrained NUMERIC has no scale: 9 decimals keep any money or ratio exact.
            return pl.Decimal(38, self.numeric_scale if self.numeric_scale is not None else 9)
        if self.data_type == "ARRAY" and self.udt_name in _ARRAY_ELEMENTS:
            return pl.List(_SCALAR_TYPES[_ARRAY_ELEMENTS[self.udt_name]])
        if self.data_type in _SCALAR_TYPES:
            return _SCALAR_TYPES[self.data_type]
        raise TypeError(
            f"column {self.name} has type {self.data_type} ({self.udt_name}), which the "
            "binary loader does not encode; add it to resources/postgres_copy.py"
        )


def column_types(connection: psycopg.Connection, schema: str, table: str
                 ) -> dict[str, ColumnType]:
    """The table's columns, in table order."""
    rows = connection.execute(
        "SELECT column_name, data_type, udt_name, numeric_scale "
        "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    return {row[0]: ColumnType(*row) for row in rows}


def cast_to_columns(frame: pl.DataFrame, types: Mapping[str, ColumnType]) -> pl.DataFrame:
    """Cast every frame column to its table column's exact type (strictly: no silent nulls).

    Struct values become JSON text for json columns; naive datetimes are taken as UTC for
    TIMESTAMPTZ columns and aware ones converted, matching what the readers assume.
    """
    expressions = []
    for name, dtype in frame.schema.items():
        if name not in types:
            raise ValueError(f"column {name} is not in the target table")
        target = types[name].polars_type()
        column = pl.col(name)
        if isinstance(dtype, pl.Struct):
            # A null struct is SQL NULL, not the JSON text "null".
            column = pl.when(column.is_not_null()).then(column.struct.json_encode())
        elif isinstance(dtype, pl.Datetime) and isinstance(target, pl.Datetime):
            if target.time_zone is not None:
                column = (column.dt.replace_time_zone("UTC") if dtype.time_zone is None
                          else column.dt.convert_time_zone("UTC"))
            elif dtype.time_zone is not None:
                column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        expressions.append(column.cast(target, strict=True).alias(name))
    try:
        return frame.select(expressions)
    except pl.exceptions.PolarsError as error:
        raise ValueError(f"cannot load the frame into the table's column types: {error}"
                         ) from error


def encode(batches: Iterable[pl.DataFrame]) -> Iterator[bytes]:
    """Frames (same schema) as one binary COPY stream: header, a chunk per Arrow batch,
    trailer. Batches are encoded as they are pulled, so only one is in memory at a time."""
    encoder: pgpq.ArrowToPostgresBinaryEncoder | None = None
    for frame in batches:
        # Newest compat level: strings leave Polars as Arrow string views, zero-copy; the
        # default (large strings) copied 0.03-0.3 s per 485k-row partition.
        table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
        if encoder is None:
            encoder = pgpq.ArrowToPostgresBinaryEncoder(table.schema)
            yield encoder.write_header()
        for batch in table.to_batches(max_chunksize=ENCODE_BATCH_ROWS):
            yield encoder.write_batch(batch)
    if encoder is not None:
        yield encoder.finish()


def batches_of(frame: pl.DataFrame, rows: int = ENCODE_BATCH_ROWS) -> Iterator[pl.DataFrame]:
    """Zero-copy row slices of a frame."""
    for offset in range(0, frame.height, rows):
        yield frame.slice(offset, rows)


def copy_into(cursor: psycopg.Cursor, table: pgsql.Composable, columns: Sequence[str],
              batches: Iterable[pl.DataFrame], *, freeze: bool = False) -> None:
    """Stream already-cast frames into `table` with one binary COPY, encoding each batch
    just before it is sent. (Encoding ahead in a helper thread was measured: slower, as
    the extra thread only fought the server processes for the two cores.)

    `freeze` writes the rows already frozen; PostgreSQL allows it only into a table
    created or truncated in the same transaction."""
    statement = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary{})").format(
        table, pgsql.SQL(", ").join(pgsql.Identifier(name) for name in columns),
        pgsql.SQL(", FREEZE") if freeze else pgsql.SQL(""))
    with cursor.copy(statement) as loader:
        for chunk in encode(batches):
            loader.write(memoryview(chunk))  # psycopg slices it; views avoid copies
