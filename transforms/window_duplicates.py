"""One transaction id counts once in a profile window, whatever day its copies were staged.

Ingest keeps the first copy of an id *within* a day (`duplicate_transaction_id`). An id on
two different days (an export re-sent with a corrected timestamp, two overlapping files)
cannot be resolved there without depending on the order days were ingested in: whichever
day came second would see the other. The profile window is where both copies meet, and it
is the same set of staged days whichever path built them, so the rule lives here: of the
copies of an id in the window, the earliest (`occurred_at`, then user and amount) is
counted and the others are dropped and reported. Staged data is left as it is.

Usually the check reads no row: each staged file's footer records its smallest and largest
transaction id, and days whose ranges are disjoint (sequential or time-ordered ids) cannot
share one. Otherwise (random ids, overlapping ranges) it is one pass over the window's
ids, a 64-bit hash and a distinct count (about 0.4 s for 10M rows on 2 cores,
docs/benchmarks.md); only a window that has duplicates pays for finding them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import polars as pl

EXAMPLES = 10


@dataclass(frozen=True)
class WindowDuplicates:
    """Copies of ids that occur on more than one day of a window."""

    dropped: pl.DataFrame  # transaction_id, occurred_at of every copy not counted
    ids: int  # distinct ids with more than one copy

    @property
    def rows_dropped(self) -> int:
        return self.dropped.height

    def examples(self) -> str:
        """A few ids with the days of their dropped copies, for check evidence."""
        if not self.ids:
            return "none"
        sample = (self.dropped.group_by("transaction_id")
                  .agg(pl.col("occurred_at").dt.date().cast(pl.String).sort())
                  .sort("transaction_id").head(EXAMPLES))
        return "; ".join(f"{tid} (dropped copy on {', '.join(days)})"
                         for tid, days in sample.iter_rows())


def ranges_overlap(ranges: list[tuple[str, str]]) -> bool:
    """Whether any two days' (smallest, largest) transaction ids overlap. Each day's ids
    are distinct (ingest), so disjoint ranges mean no id is on two days."""
    ordered = sorted(ranges)
    return any(later[0] <= earlier[1] for earlier, later in pairwise(ordered))


def find_window_duplicates(window: pl.LazyFrame,
                           id_ranges: list[tuple[str, str]] | None = None) -> WindowDuplicates:
    """Which rows of `window` repeat an id seen earlier in it (usually none).

    `id_ranges`, the days' id ranges from the staged files' footers, settle the common
    case without reading a row: ids that grow with time (sequences, time-ordered ids)
    give disjoint ranges. Random ids (UUIDv4) overlap, and the window's ids are read."""
    empty = pl.DataFrame(schema={"transaction_id": pl.String,
                                 "occurred_at": window.collect_schema()["occurred_at"]})
    if id_ranges is not None and not ranges_overlap(id_ranges):
        return WindowDuplicates(empty, 0)
    hashes = window.select(pl.col("transaction_id").hash().alias("h")).collect()["h"]
    if hashes.n_unique() == hashes.len():
        return WindowDuplicates(empty, 0)
    copies = (window.filter(pl.col("transaction_id").is_duplicated())
              .select("transaction_id", "occurred_at", "user_id", "amount_cents")
              .sort("transaction_id", "occurred_at", "user_id", "amount_cents")
              .collect())
    if copies.is_empty():  # a hash collision, not a duplicate
        return WindowDuplicates(empty, 0)
    dropped = copies.filter(~pl.col("transaction_id").is_first_distinct()).select(
        "transaction_id", "occurred_at")
    return WindowDuplicates(dropped, copies["transaction_id"].n_unique())


def without_duplicates(window: pl.LazyFrame, duplicates: WindowDuplicates) -> pl.LazyFrame:
    """`window` without the dropped copies (the window itself when there are none). Copies
    of one id are on different days, so (id, occurred_at) names each of them."""
    if not duplicates.rows_dropped:
        return window
    return window.join(duplicates.dropped.lazy(), on=["transaction_id", "occurred_at"],
                       how="anti", maintain_order="left")
