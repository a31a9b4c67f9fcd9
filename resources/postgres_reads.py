"""Query results from PostgreSQL as Polars frames, typed from the result's column OIDs.

Shared by plain reads (their own connection) and reads inside a write transaction (which
must see that transaction's own writes), so both give identical frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl
import psycopg

from resources.sql_files import to_dialect

READ_BATCH_ROWS = 50_000

# PostgreSQL type OIDs -> Polars dtypes, so an empty or all-null result keeps its types.
_POSTGRES_TYPES: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    20: pl.Int64(),
    21: pl.Int16(),
    23: pl.Int32(),
    25: pl.String(),
    114: pl.String(),  # json, kept as text (see warehouse_backends._text_json)
    1043: pl.String(),
    700: pl.Float32(),
    701: pl.Float64(),
    1700: pl.Decimal(38, 2),
    1082: pl.Date(),
    1184: pl.Datetime("us", "UTC"),
    1114: pl.Datetime("us"),
    1009: pl.List(pl.String()),
    2950: pl.String(),  # uuid
    3802: pl.String(),  # jsonb
}


def read_frame(connection: psycopg.Connection, sql: str, params: Mapping[str, Any] | None
               ) -> pl.DataFrame:
    """Run one `:name`-parameterised query on `connection` and return its rows."""
    with connection.cursor() as cursor:
        cursor.execute(to_dialect(sql, "postgres"), dict(params or {}))  # type: ignore[arg-type]
        names = [column.name for column in cursor.description or []]
        schema = {
            column.name: _POSTGRES_TYPES.get(column.type_code, pl.Object())
            for column in cursor.description or []
        }
        if not names:
            return pl.DataFrame()
        # Batches: a 500k-row result as Python tuples costs hundreds of MB at once;
        # converted 50k rows at a time, only one batch of objects is alive.
        frames = [pl.DataFrame(schema=schema)]
        while rows := cursor.fetchmany(READ_BATCH_ROWS):
            frames.append(pl.DataFrame(rows, schema=schema, orient="row"))
    return pl.concat(frames, rechunk=True)
