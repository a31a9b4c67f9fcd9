"""Parsing transaction timestamps from whatever a source gives: typed or text, aware or naive.

Text timestamps with an offset (`Z`, `+00:00`, `+0000`) are exact. Without one (`2026-03-01
10:00:00`), or date-only (`2026-03-01`, the day's start), they are read in the source's time
zone (`MARKETING_SOURCE_TIME_ZONE`, default UTC) and flagged, so ingest can count them, or
quarantine them when the policy says so. Either way the row is attributed to a day.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from transforms.columns import UTC_DATETIME

# Text is normalized first (`T` separator to a space, `Z` to `+00:00`), so one aware and
# two naive formats cover ISO 8601 as exports write it; every format is tried on every row.
_AWARE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%z",)
_NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M")
DATE_ONLY_LENGTH = len("2026-03-01")


def _localize(naive: pl.Expr, time_zone: str) -> pl.Expr:
    """A naive wall-clock time in `time_zone`, as UTC. In a DST fold the earlier instant
    is taken; a time that does not exist (spring-forward gap) shifts forward, as most
    systems that wrote it would have."""
    if time_zone == "UTC":  # no folds, no gaps: the cheap path the default takes
        return naive.dt.replace_time_zone("UTC")
    return (naive.dt.replace_time_zone(time_zone, ambiguous="earliest",
                                       non_existent="null")
            .fill_null(naive.dt.offset_by("1h").dt.replace_time_zone(
                time_zone, ambiguous="earliest", non_existent="null"))
            .dt.convert_time_zone("UTC"))


def parse_timestamp_columns(dtype: pl.DataType, column: str = "occurred_at",
                            time_zone: str = "UTC") -> list[pl.Expr]:
    """Expressions giving `<column>` (UTC), `<column>_is_naive` and
    `<column>_is_date_only` for a raw column of type `dtype`."""
    raw = pl.col(column)
    date_only: pl.Expr = pl.lit(False)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            parsed = _localize(raw.dt.cast_time_unit("us"), time_zone)
            naive = raw.is_not_null()
        else:
            parsed = raw.dt.cast_time_unit("us").dt.convert_time_zone("UTC")
            naive = pl.lit(False)
    elif dtype == pl.Date:
        parsed = _localize(raw.cast(pl.Datetime("us")), time_zone)
        naive = date_only = raw.is_not_null()
    elif dtype in (pl.String, pl.Null):
        text = (raw.cast(pl.String).str.strip_chars().str.replace(r"[zZ]$", "+00:00")
                .str.replace("T", " ", literal=True, n=1))
        aware = pl.coalesce(
            [text.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us")
             for fmt in _AWARE_FORMATS]
        )
        is_date = (text.str.len_chars() == DATE_ONLY_LENGTH).fill_null(False)
        wall_clock = pl.coalesce(
            [text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in _NAIVE_FORMATS]
            + [pl.when(is_date).then(text.str.to_date("%Y-%m-%d", strict=False)
                                     .cast(pl.Datetime("us")))]
        )
        parsed = pl.coalesce([aware, _localize(wall_clock, time_zone)])
        naive = aware.is_null() & wall_clock.is_not_null()
        date_only = naive & is_date
    else:
        parsed = pl.lit(None, dtype=UTC_DATETIME)
        naive = pl.lit(False)
    return [parsed.cast(UTC_DATETIME).alias(column), naive.alias(f"{column}_is_naive"),
            date_only.alias(f"{column}_is_date_only")]


def split_by_day(raw: pl.DataFrame, first: dt.date, last: dt.date,
                 time_zone: str = "UTC") -> dict[dt.date, pl.DataFrame]:
    """Attribute every raw row to one day in [first, last], keeping source order.

    Rows dated inside the range go to their UTC day; rows dated after it go to `last`
    (they are read only for the latest partition, which quarantines them as future);
    undated rows go to `first` (read only for the first partition). A row dated before
    the range can only come from a source that ignored the day filter: it is refused
    loudly rather than dropped. Every day in the range gets a frame, possibly empty, so
    "no transactions" is recorded, not skipped.
    """
    parsed = parse_timestamp_columns(raw.schema["occurred_at"], time_zone=time_zone)[0]
    day = (
        pl.when(parsed.is_null()).then(pl.lit(first))
        .when(parsed.dt.date() > last).then(pl.lit(last))
        .otherwise(parsed.dt.date())
    )
    with_day = raw.with_columns(day.alias("_partition_day"))
    early = with_day.filter(pl.col("_partition_day") < first).height if raw.height else 0
    if early:
        raise ValueError(f"{early} source rows are dated before {first}, the first day "
                         "read; the source returned rows outside the requested range")
    groups = {key[0]: frame.drop("_partition_day")
              for key, frame in with_day.partition_by("_partition_day", as_dict=True,
                                                      maintain_order=True).items()}
    days = [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]
    return {day: groups.get(day, raw.clear()) for day in days}
