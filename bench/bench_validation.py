"""Benchmark of ingest validation (`transforms.validation.validate_transactions`).

    python -m bench.bench_validation --rows 1000000

Validation is what every ingested row pays: exact amount parsing from decimal text,
timestamp parsing, policy flags, the pandera contract and the reason mapping. Measured on
the two shapes a source delivers: typed columns (a database or Parquet: Int64 ids, Float64
amounts, aware timestamps) and CSV text. Each is compared, in the same process and
interleaved, with a baseline that does only the bare minimum a pipeline without
validation would do (cast the columns, drop rows with nulls), so the ratio says what the
checks cost on this machine, whatever its speed. ~0.5% of rows are made bad of each kind
so the rejection path is exercised too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

import numpy as np
import polars as pl

from transforms.validation import validate_transactions

NOW = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def typed_rows(rows: int, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    amounts = np.round(rng.lognormal(3, 1, rows), 2)
    amounts[rng.random(rows) < 0.005] = np.nan
    return pl.DataFrame({
        "transaction_id": [f"t{index:09d}" for index in range(rows)],
        "user_id": rng.integers(1, 500_000, rows),
        "amount": amounts,
        "occurred_at": pl.datetime_range(start, start + dt.timedelta(days=1), "1s",
                                         eager=True).sample(rows, with_replacement=True,
                                                            seed=seed),
        "currency": "USD",
        "category": rng.choice(["dining", "travel", "groceries", " "], rows),
        "merchant_id": "m1",
        "location_id": "l1",
    })


def as_csv_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col("occurred_at").dt.to_string("%Y-%m-%dT%H:%M:%S%.6f%:z"),
        pl.col("user_id").cast(pl.String), pl.col("amount").cast(pl.String))


def bare_cast(frame: pl.DataFrame) -> pl.DataFrame:
    """What no validation costs: cast and drop nulls."""
    text = frame.schema["amount"] == pl.String
    return frame.with_columns(
        pl.col("user_id").cast(pl.Int64, strict=False),
        (pl.col("amount").cast(pl.Float64, strict=False) * 100).round(0)
        .cast(pl.Int64, strict=False).alias("amount"),
        (pl.col("occurred_at").str.to_datetime(time_zone="UTC", strict=False) if text
         else pl.col("occurred_at")),
    ).drop_nulls(["transaction_id", "user_id", "amount", "occurred_at"])


def _time(function, frame: pl.DataFrame) -> float:
    began = time.perf_counter()
    function(frame)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    typed = typed_rows(args.rows)
    shapes = {"typed": typed, "csv text": as_csv_text(typed)}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"polars {pl.__version__}, load {os.getloadavg()[0]:.2f}")
    validate = lambda frame: validate_transactions(frame, latest_allowed=NOW)  # noqa: E731
    for name, frame in shapes.items():
        outcome = validate(frame)
        timings: dict[str, list[float]] = {"validate": [], "bare cast": []}
        for _ in range(args.repeat):
            timings["validate"].append(_time(validate, frame))
            timings["bare cast"].append(_time(bare_cast, frame))
        full, bare = (statistics.median(timings[key]) for key in ("validate", "bare cast"))
        print(f"{name:8}  {args.rows:,} rows  validate {full:6.2f} s "
              f"({args.rows / full:,.0f} rows/s)  bare cast {bare:5.2f} s  "
              f"ratio {full / bare:5.1f}x  rejected {outcome.rejected.height:,}")


if __name__ == "__main__":
    main()
