"""Turning Polars frames into what each warehouse loads fastest.

PostgreSQL gets CSV produced by Polars' Rust writer and streamed through `COPY`, so no
Python code runs per row; list columns become array literals and nulls an explicit `\\N`
marker (an empty string stays an empty string). DuckDB reads the Arrow buffers directly.
"""

from __future__ import annotations

import polars as pl

NULL_MARKER = r"\N"


def _pg_array_literal(column: str) -> pl.Expr:
    """Encode a List(String) column as a PostgreSQL array literal: {"a","b"}."""
    quoted = (
        pl.col(column)
        .list.eval(
            pl.lit('"')
            + pl.element().cast(pl.String).str.replace_all("\\", "\\\\", literal=True)
            .str.replace_all('"', '\\"', literal=True)
            + pl.lit('"')
        )
        .list.join(",")
    )
    return (pl.lit("{") + quoted + pl.lit("}")).alias(column)


def encode_for_postgres_csv(frame: pl.DataFrame) -> bytes:
    """Return CSV bytes (no header) ready for `COPY ... (FORMAT csv, NULL '\\N')`."""
    expressions: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List):
            expressions.append(_pg_array_literal(name))
        elif isinstance(dtype, pl.Struct):
            expressions.append(pl.col(name).struct.json_encode().alias(name))
        else:
            expressions.append(pl.col(name))
    encoded = frame.select(expressions)
    return encoded.write_csv(
        include_header=False,
        null_value=NULL_MARKER,
        datetime_format="%Y-%m-%dT%H:%M:%S%.6f%:z",
        quote_style="necessary",
    ).encode()
