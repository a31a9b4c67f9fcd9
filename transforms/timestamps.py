"""Parsing transaction timestamps from whatever a source gives: typed or text, aware or naive.

Text timestamps must carry an offset (`Z`, `+00:00`, `+0000`). A timestamp without one is
still parsed, as if UTC, so the row can be attributed to a day and then rejected with the
reason "no time zone" instead of vanishing.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from transforms.columns import UTC_DATETIME

_AWARE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z")
_NAIVE_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d")


def parse_timestamp_columns(dtype: pl.DataType, column: str = "occurred_at") -> list[pl.Expr]:
    """Expressions giving `occurred_at` (UTC) and `occurred_at_is_naive` for a raw column."""
    raw = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            parsed = raw.dt.cast_time_unit("us").dt.replace_time_zone("UTC")
            naive = raw.is_not_null()
        else:
            parsed = raw.dt.cast_time_unit("us").dt.convert_time_zone("UTC")
            naive = pl.lit(False)
    elif dtype == pl.Date:
        parsed = raw.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        naive = raw.is_not_null()
    elif dtype in (pl.String, pl.Null):
        text = raw.cast(pl.String).str.strip_chars().str.replace(r"[zZ]$", "+00:00")
        aware = pl.coalesce(
            [text.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us")
             for fmt in _AWARE_FORMATS]
        )
        naive_parse = pl.coalesce(
            [text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in _NAIVE_FORMATS]
        ).dt.replace_time_zone("UTC")
        parsed = pl.coalesce([aware, naive_parse])
        naive = aware.is_null() & naive_parse.is_not_null()
    else:
        parsed = pl.lit(None, dtype=UTC_DATETIME)
        naive = pl.lit(False)
    return [parsed.cast(UTC_DATETIME).alias("occurred_at"), naive.alias("occurred_at_is_naive")]


def split_by_day(raw: pl.DataFrame, first: dt.date, last: dt.date) -> dict[dt.date, pl.DataFrame]:
    """Attribute every raw row to one day in [first, last], keeping source order.

    Rows dated inside the range go to their UTC day; rows dated after it go to `last`
    (they are read only for the latest partition, which quarantines them as future);
    undated rows go to `first` (read only for the first partition). Every day in the
    range gets a frame, possibly empty, so "no transactions" is recorded, not skipped.
    """
    parsed = parse_timestamp_columns(raw.schema["occurred_at"])[0]
    day = (
        pl.when(parsed.is_null()).then(pl.lit(first))
        .when(parsed.dt.date() > last).then(pl.lit(last))
        .otherwise(parsed.dt.date())
    )
    with_day = raw.with_columns(day.alias("_partition_day"))
    groups = {key[0]: frame.drop("_partition_day")
              for key, frame in with_day.partition_by("_partition_day", as_dict=True).items()}
    days = [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]
    return {day: groups.get(day, raw.clear()) for day in days}
