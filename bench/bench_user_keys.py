"""Benchmark of text and UUID user ids (transforms/user_keys.py) against integer ids.

    python -m bench.bench_user_keys --users 500000 --transactions 10000000

Two costs, each against its integer baseline in the same process, repetitions interleaved
(medians reported), so the ratios hold on a noisy machine:

1. Keying at the door: `user_keys` over every transaction's id, for an Int64 column (a
   database or Parquet source), canonical integers as CSV text, and UUID text; the baseline
   is the bare `cast(Int64)` the first release did.
2. The profile step as the asset runs it: `compute_profiles` over the staged 90-day window,
   then `with_source_user_ids` (the id as the source wrote it, in every output). Integer
   ids against the transform alone (the issue's bound: at most 10% slower), UUID ids
   (hashed keys, the dictionary join) on the same purchases, and the whole asset step
   with the window's duplicate-id check (transforms/window_duplicates.py).

The data is `bench.bench_profiles`'s cached window (datagen, 90 days); the UUID copy maps
each user to a UUIDv5 and is cached beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl

from bench.bench_profiles import as_of_end, machine, prepare_data
from transforms.profiles import compute_profiles
from transforms.thresholds import PatternThresholds
from transforms.user_keys import text_key, user_keys, with_source_user_ids
from transforms.window_duplicates import find_window_duplicates, without_duplicates

THRESHOLDS = PatternThresholds()


def _uuid_copy(data: Path) -> tuple[Path, pl.DataFrame]:
    """The window and history with every user as a UUID's text key, and the dictionary."""
    target = data.parent / f"{data.name}-uuid"
    dictionary_path = target / "user_keys.parquet"
    if not dictionary_path.is_file():
        users = pl.concat([pl.scan_parquet(data / "window" / "*.parquet").select("user_id"),
                           pl.scan_parquet(data / "history.parquet").select("user_id")]
                          ).unique().collect()["user_id"].sort()
        texts = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"user/{user}")) for user in users]
        mapping = pl.DataFrame({"integer_id": users, "source_user_id": texts,
                                "user_id": [text_key(text) for text in texts]})
        (target / "window").mkdir(parents=True, exist_ok=True)
        rekey = mapping.select("integer_id", "user_id").lazy()
        for path in sorted((data / "window").glob("*.parquet")):
            frame = pl.scan_parquet(path)
            (frame.join(rekey, left_on="user_id", right_on="integer_id", maintain_order="left")
             .drop("user_id").rename({"user_id_right": "user_id"})
             .select(frame.collect_schema().names())
             .sink_parquet(target / "window" / path.name))
        history = pl.scan_parquet(data / "history.parquet")
        (history.join(rekey, left_on="user_id", right_on="integer_id", maintain_order="left")
         .drop("user_id").rename({"user_id_right": "user_id"})
         .select(history.collect_schema().names())
         .sink_parquet(target / "history.parquet"))
        mapping.select("user_id", "source_user_id").write_parquet(dictionary_path)
    return target, pl.read_parquet(dictionary_path)


def _profiles(data: Path) -> pl.DataFrame:
    return compute_profiles(pl.scan_parquet(data / "window" / "*.parquet"),
                            as_of_end=as_of_end(), thresholds=THRESHOLDS,
                            history=pl.scan_parquet(data / "history.parquet"))


def _timed(cases: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - started)
    return times


def _report(title: str, times: dict[str, list[float]], baseline: str) -> dict[str, float]:
    base = statistics.median(times[baseline])
    print(f"\n{title}")
    print("| case | median | ratio | runs |")
    print("|---|---|---|---|")
    medians = {}
    for name, runs in times.items():
        median = statistics.median(runs)
        medians[name] = median
        print(f"| {name} | {median:.3f} s | {median / base:.2f} | "
              f"{', '.join(f'{run:.2f}' for run in runs)} |")
    return medians


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500_000)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path("data/bench"))
    args = parser.parse_args(argv)
    print(json.dumps(machine()))
    data = prepare_data(args.users, args.transactions, args.seed, args.data_dir)
    uuid_data, dictionary = _uuid_copy(data)

    ids = pl.scan_parquet(data / "window" / "*.parquet").select("user_id").collect()["user_id"]
    to_text = dict(zip(dictionary["user_id"], dictionary["source_user_id"], strict=True))
    uuid_ids = (pl.scan_parquet(uuid_data / "window" / "*.parquet").select("user_id")
                .collect()["user_id"].replace_strict(to_text, return_dtype=pl.String))
    integer_text = ids.cast(pl.String)
    print(f"\n{ids.len():,} transactions, {ids.n_unique():,} users in the window")
    def first_release(text: pl.Series) -> pl.Series:
        """What the first release did with a text id: canonical integers only."""
        stripped = text.str.strip_chars()
        return pl.select(pl.when(pl.lit(stripped).str.contains(r"^(0|-?[1-9][0-9]{0,18})$"))
                         .then(pl.lit(stripped)).cast(pl.Int64, strict=False)).to_series()

    keyed = _report("1. keying every transaction's user id", _timed({
        "baseline: integer text, first release (canonical integers only)":
            lambda: first_release(integer_text),
        "Int64 column, user_keys": lambda: user_keys(ids),
        "integer text (CSV), user_keys": lambda: user_keys(integer_text),
        "UUID text, user_keys": lambda: user_keys(uuid_ids),
    }, args.repeat), "baseline: integer text, first release (canonical integers only)")

    def integer_step() -> pl.DataFrame:
        return with_source_user_ids(_profiles(data), dictionary.clear())

    def uuid_step() -> pl.DataFrame:
        return with_source_user_ids(_profiles(uuid_data), dictionary)

    # what the staged files' footers hold (StagingStore.id_ranges), computed untimed here
    ranges = [tuple(pl.scan_parquet(path).select(pl.col("transaction_id").min().alias("a"),
                                                 pl.col("transaction_id").max().alias("b"))
                    .collect().row(0)) for path in sorted((data / "window").glob("*.parquet"))]

    def checked_step(id_ranges: list | None = None) -> pl.DataFrame:
        """The whole asset step: the window's duplicate-id check, the profiles, the ids."""
        window = pl.scan_parquet(data / "window" / "*.parquet")
        duplicates = find_window_duplicates(window, id_ranges)
        profiles = compute_profiles(without_duplicates(window, duplicates),
                                    as_of_end=as_of_end(), thresholds=THRESHOLDS,
                                    history=pl.scan_parquet(data / "history.parquet"))
        return with_source_user_ids(profiles, dictionary.clear())

    integer_out, uuid_out = integer_step(), uuid_step()
    as_uuid = integer_out.with_columns(pl.col("source_user_id").map_elements(
        lambda user: str(uuid.uuid5(uuid.NAMESPACE_URL, f"user/{user}")),
        return_dtype=pl.String))
    same = (as_uuid.drop("user_id").sort("source_user_id")
            .equals(uuid_out.drop("user_id").sort("source_user_id")))
    print(f"\nprofiles: {integer_out.height:,} rows; the UUID run gives the same profiles, "
          f"user by user: {same}")
    if not same:
        raise SystemExit("the UUID-keyed profiles differ from the integer ones")
    profiled = _report("2. the profile step (compute_profiles, then source_user_id)", _timed({
        "baseline: compute_profiles, integer ids": lambda: _profiles(data),
        "integer ids + source_user_id": integer_step,
        "UUID ids (text keys) + source_user_id": uuid_step,
        "asset step, ids in disjoint daily ranges (footer check)":
            lambda: checked_step(ranges),
        "asset step, random ids (reads every id)": checked_step,
    }, args.repeat), "baseline: compute_profiles, integer ids")
    print(json.dumps({"keying": keyed, "profiles": profiled}))


if __name__ == "__main__":
    main()
