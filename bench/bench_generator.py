"""Benchmark of the demo data generator (and optionally the source writers).

    python -m bench.bench_generator --users 500000 --days 120
    python -m bench.bench_generator --users 500000 --days 120 --write duckdb:///tmp/b.duckdb

The rate per user-day is derived from ``--transactions`` (10M by default) so that the figure is
about a known row count whatever the user count. Generation is timed separately from writing,
since the pipeline's own benchmarks read what is written here.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

from datagen.config import GeneratorConfig
from datagen.generator import generate_tables
from datagen.writers import parse_target, write_source


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--transactions", type=int, default=10_000_000, help="expected rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--start-date", type=date.fromisoformat, default=None, help="default: ends today"
    )
    parser.add_argument(
        "--write", action="append", default=[], help="target for write_source (repeatable)"
    )
    parser.add_argument("--format", default="parquet", choices=("parquet", "csv"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate once, print time and throughput, then time each requested write."""
    args = _parse_args(argv)
    cfg = GeneratorConfig(
        seed=args.seed,
        users=args.users,
        days=args.days,
        start_date=args.start_date,
        transactions_per_user_per_day=args.transactions / (args.users * args.days),
    )
    started = time.perf_counter()
    tables = generate_tables(cfg)
    elapsed = time.perf_counter() - started
    rows = tables["transactions"].height
    print(
        f"generate: {rows:,} transactions, {tables['users'].height:,} users "
        f"in {elapsed:.2f} s ({rows / elapsed:,.0f} rows/s)"
    )
    for target in args.write:
        started = time.perf_counter()
        counts = write_source(target, tables, file_format=args.format)
        elapsed = time.perf_counter() - started
        kind = parse_target(target).kind
        label = f"{kind}, {args.format}" if kind == "directory" else kind
        print(
            f"write {target} ({label}): {counts} in {elapsed:.2f} s "
            f"({counts['transactions'] / elapsed:,.0f} transaction rows/s)"
        )


if __name__ == "__main__":
    main()
