"""Writing one 500k-row `behavioral_profiles` partition to the warehouse.

Times `Warehouse.replace_partition` (delete the day, COPY the new rows, one transaction)
on PostgreSQL and DuckDB, against a baseline in the same run: a bare COPY of the same CSV
into an empty, index-free copy of the table, which is the server's floor for this data.

    python -m bench.bench_profile_write [--repeat 3]

It needs the cached window of `bench.bench_profiles` (run that once first) and a
PostgreSQL server (`MARKETING_TEST_DATABASE_URL` or 127.0.0.1:5432); it creates and drops
its own database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
import uuid
from pathlib import Path

import polars as pl
import psycopg

from resources.frame_encoding import encode_for_postgres_csv
from resources.warehouse import Warehouse
from tests.databases import throwaway_database
from transforms.profiles import compute_profiles
from transforms.thresholds import PatternThresholds

CACHE = Path("data/bench/profiles-u500000-t10000000-s42")
SERVER = os.environ.get("MARKETING_TEST_DATABASE_URL",
                        "postgresql://postgres@127.0.0.1:5432/postgres")


def _profiles() -> tuple[pl.DataFrame, dt.date]:
    files = sorted((CACHE / "window").glob("*.parquet"))
    if not files:
        raise SystemExit(f"no cached window under {CACHE}: run `python -m bench.bench_profiles`")
    last = dt.date.fromisoformat(files[-1].stem)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    frame = compute_profiles(pl.scan_parquet(files), as_of_end=end,
                             thresholds=PatternThresholds(),
                             history=pl.scan_parquet(CACHE / "history.parquet"), as_of_date=last)
    return frame, last


def _timed(action, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    profiles, day = _profiles()
    duck = Path(f"/tmp/bench_write_{uuid.uuid4().hex[:8]}.duckdb")
    with throwaway_database(SERVER, "bench_write") as url:
        results = {}
        for label, target in (("postgres", url), ("duckdb", f"duckdb:///{duck}")):
            warehouse = Warehouse(url=target)
            warehouse.migrate()
            results[label] = _timed(lambda w=warehouse: w.replace_partition(
                "behavioral_profiles", profiles, partition_value=day), args.repeat)
        csv = encode_for_postgres_csv(profiles)
        columns = ", ".join(profiles.columns)

        def bare_copy() -> None:
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("DROP TABLE IF EXISTS marketing.bare")
                connection.execute("CREATE TABLE marketing.bare "
                                   "(LIKE marketing.behavioral_profiles)")
                with connection.cursor() as cursor, cursor.copy(
                        f"COPY marketing.bare ({columns}) FROM STDIN "
                        "(FORMAT csv, NULL '\\N')") as copy:
                    copy.write(csv)

        results["postgres bare COPY (floor)"] = _timed(bare_copy, args.repeat)
    duck.unlink(missing_ok=True)
    rows = profiles.height
    print(f"{rows:,} profile rows, {len(csv) / 1e6:.0f} MB as CSV, median of {args.repeat}")
    floor = results["postgres bare COPY (floor)"]
    for label, seconds in results.items():
        print(f"  {label:<28} {seconds:6.2f} s  {rows / seconds:>9,.0f} rows/s  "
              f"{seconds / floor:4.2f}x floor")


if __name__ == "__main__":
    main()
