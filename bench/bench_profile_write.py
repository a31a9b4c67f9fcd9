"""Writing one 500k-row `behavioral_profiles` partition to the warehouse.

Times the shipped `Warehouse.replace_partition` on PostgreSQL (binary COPY FREEZE from two
sessions, each into its own leaf of a fresh day table, swapped in as the day's partition)
and on DuckDB, against baselines in the same run, on the same rows:

- the shipped path with one load session (what the second core buys);
- the previous implementation: DELETE the day and COPY it as CSV in one transaction, into
  an unpartitioned table with the same primary key;
- a bare CSV COPY into an empty, key-free table: the server's floor for CSV.

    python -m bench.bench_profile_write [--repeat 5]

It needs the cached window of `bench.bench_profiles` (run that once first) and a
PostgreSQL server (`MARKETING_TEST_DATABASE_URL` or 127.0.0.1:5432); it creates and drops
its own database. Every timed write replaces a day that already holds the same rows, as
the hourly refresh does, except the first, which is also reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import psycopg

from devkit.databases import throwaway_database
from resources.warehouse import Warehouse
from transforms.profiles import compute_profiles
from transforms.thresholds import PatternThresholds

CACHE = Path("data/bench/profiles-u500000-t10000000-s42")
SERVER = os.environ.get("MARKETING_TEST_DATABASE_URL",
                        "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_ROWS_PER_S = 300_000


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


def _csv(frame: pl.DataFrame) -> bytes:
    """The previous loader's encoding: Polars CSV, lists as array literals, `\\N` nulls."""
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    encoded = frame.with_columns(
        (pl.lit("{") + pl.col(name).list.eval(pl.lit('"') + pl.element() + pl.lit('"'))
         .list.join(",") + pl.lit("}")).alias(name) for name in lists)
    return encoded.write_csv(include_header=False, null_value=r"\N",
                             datetime_format="%Y-%m-%dT%H:%M:%S%.6f%:z").encode()


def _copy_csv(connection: psycopg.Connection, table: str, frame: pl.DataFrame) -> None:
    statement = f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv, NULL '\\N')"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for offset in range(0, frame.height, 50_000):
            copy.write(_csv(frame.slice(offset, 50_000)))


def _timed(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(first run, median of the runs after it)."""
    runs = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return runs[0], statistics.median(runs[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    profiles, day = _profiles()
    # Polars loads its Arrow bridge on the first to_arrow() of a process (~0.2 s); that is
    # start-up, not the write, so it happens here rather than inside the first timing.
    profiles.head(1).to_arrow()
    duck = Path(f"/tmp/bench_write_{uuid.uuid4().hex[:8]}.duckdb")
    results: dict[str, tuple[float, float]] = {}
    with throwaway_database(SERVER, "bench_write") as url:
        for label, warehouse in (
            ("postgres: shipped (swap, 2 sessions)", Warehouse(url=url, schema_name="swap2")),
            ("postgres: shipped, 1 session", Warehouse(url=url, schema_name="swap1",
                                                       load_sessions=1)),
            ("duckdb: shipped (delete + insert)", Warehouse(url=f"duckdb:///{duck}")),
        ):
            warehouse.migrate()
            results[label] = _timed(lambda w=warehouse: w.replace_partition(
                "behavioral_profiles", profiles, partition_value=day), args.repeat)

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE public.previous (LIKE swap2.behavioral_profiles "
                               "INCLUDING DEFAULTS INCLUDING CONSTRAINTS, "
                               "PRIMARY KEY (as_of_date, user_id))")
            connection.execute("CREATE INDEX ON public.previous (as_of_date)")

        def previous() -> None:
            with psycopg.connect(url) as connection:
                connection.execute("DELETE FROM public.previous WHERE as_of_date = %s", (day,))
                _copy_csv(connection, "public.previous", profiles)

        def bare_copy() -> None:
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("DROP TABLE IF EXISTS public.bare")
                connection.execute("CREATE TABLE public.bare (LIKE swap2.behavioral_profiles)")
                _copy_csv(connection, "public.bare", profiles)

        results["postgres: previous (DELETE + CSV COPY)"] = _timed(previous, args.repeat)
        results["postgres: bare CSV COPY (CSV floor)"] = _timed(bare_copy, args.repeat)
    duck.unlink(missing_ok=True)

    rows = profiles.height
    baseline = results["postgres: previous (DELETE + CSV COPY)"][1]
    print(f"{rows:,} profile rows of {day}, {profiles.estimated_size() / 1e6:.0f} MB in "
          f"memory; rewrite = median of {args.repeat} rewrites of the same day")
    print(f"  {'write':<40} {'first':>7} {'rewrite':>8} {'rows/s':>10} {'vs previous':>12}")
    for label, (first, median) in results.items():
        print(f"  {label:<40} {first:6.2f}s {median:7.2f}s {rows / median:>10,.0f} "
              f"{baseline / median:>11.2f}x")
    shipped = rows / results["postgres: shipped (swap, 2 sessions)"][1]
    verdict = "meets" if shipped >= TARGET_ROWS_PER_S else "MISSES"
    print(f"target {TARGET_ROWS_PER_S:,} rows/s on PostgreSQL: {verdict} ({shipped:,.0f})")


if __name__ == "__main__":
    main()
