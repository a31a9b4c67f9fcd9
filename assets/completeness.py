"""Is a partition's input complete? Staged window days and the purchase-history chain.

A profile for day D is a function of every purchase before its `as_of_end`: the staged
days of its window, and (through `purchase_history`) every staged day since the first
partition. Computing it from a window with a hole, or from a history built before an
earlier day was re-ingested, gives plausible and wrong figures (everyone looks new, lapsed
users vanish). So nothing is assumed: before a profile is computed, these functions list
what is missing or out of date, and the asset refuses with that list.

The evidence is in the data itself: `staged_partitions` (one bookkeeping row per staged
day, written with the day's token) and the tokens in the Parquet footers
(resources/staging.py). Dagster's event log is not consulted, so a warehouse restored from
backup or a new Dagster instance over existing staging is judged by what is really there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from resources.staging import StagingStore
from resources.warehouse import Warehouse
from transforms.purchase_history import HISTORY_FORMAT

HISTORY = "purchase_history"
TOKEN = "marketing.token"
STAGED_TOKEN = "marketing.staged_token"
PREVIOUS_TOKEN = "marketing.previous_token"
AS_OF_END = "marketing.as_of_end"
FORMAT = "marketing.history_format"


@dataclass(frozen=True)
class Gap:
    """One missing or out-of-date input day, with the reason in words."""

    day: dt.date
    problem: str

    def __str__(self) -> str:
        return f"{self.day}: {self.problem}"


def history_token(staged_token: str, previous_token: str, as_of_end: dt.datetime) -> str:
    """The token of purchase_history(D): a digest of exactly what it was built from, so the
    same inputs give the same token and any changed input a different one."""
    text = f"{staged_token}|{previous_token}|{as_of_end.astimezone(dt.UTC).isoformat()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def history_lineage(staged_token: str, previous_token: str, as_of_end: dt.datetime
                    ) -> dict[str, str]:
    return {
        TOKEN: history_token(staged_token, previous_token, as_of_end),
        STAGED_TOKEN: staged_token,
        PREVIOUS_TOKEN: previous_token,
        AS_OF_END: as_of_end.astimezone(dt.UTC).isoformat(),
        FORMAT: HISTORY_FORMAT,
    }


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


def staged_window_gaps(warehouse: Warehouse, staging: StagingStore, first: dt.date,
                       last: dt.date) -> list[Gap]:
    """Days in [first, last] that are not fully staged: no bookkeeping row, no file, or a
    file whose token or row count is not the one the bookkeeping recorded (an ingest that
    died between the two, or a file changed behind the pipeline's back)."""
    if last < first:
        return []
    booked = warehouse.read_named("staged_days_between", {"first": first, "last": last})
    by_day = {row["as_of_date"]: row for row in booked.iter_rows(named=True)}
    gaps = []
    for day in _days(first, last):
        row = by_day.get(day)
        rows = staging.rows_of_day(day)
        if row is None:
            gaps.append(Gap(day, "not staged (no staged_partitions row): run ingest for it"))
        elif rows is None:
            gaps.append(Gap(day, f"staged file missing ({staging.path_for(day)})"))
        elif row["stage_token"] != staging.token_of_day(day) or rows != row["rows_accepted"]:
            gaps.append(Gap(day, f"staged file ({rows} rows) does not match its bookkeeping "
                                 f"({row['rows_accepted']} rows): re-run ingest for it"))
    return gaps


def history_chain_gap(staging: StagingStore, first_partition: dt.date, through: dt.date
                      ) -> tuple[Gap | None, str]:
    """Walk purchase_history from the first partition to `through`: the first day whose
    history is missing or was built from other inputs than those staged now, and the
    token of the last good day ("" if none). Two footer reads a day."""
    previous = ""
    for day in _days(first_partition, through):
        lineage = staging.snapshot_lineage(HISTORY, day)
        staged = staging.token_of_day(day)
        if staged is None:
            return Gap(day, "not staged: run ingest for it"), previous
        if lineage is None or TOKEN not in lineage:
            return Gap(day, "purchase_history not materialized"), previous
        if lineage.get(FORMAT, "1") != HISTORY_FORMAT:
            return Gap(day, f"purchase_history was written in format {lineage.get(FORMAT, '1')}"
                            f" (this version writes {HISTORY_FORMAT}, with the customer-value "
                            "columns); re-materialize purchase_history from the first "
                            "partition"), previous
        if lineage.get(STAGED_TOKEN) != staged:
            return Gap(day, "purchase_history was built before this day was re-staged; "
                            "re-materialize purchase_history from here on"), previous
        if lineage.get(PREVIOUS_TOKEN) != previous:
            return Gap(day, "purchase_history was built on an older history of the day "
                            "before; re-materialize purchase_history from here on"), previous
        end = dt.datetime.fromisoformat(lineage[AS_OF_END])
        if lineage[TOKEN] != history_token(staged, previous, end):
            return Gap(day, "purchase_history lineage is corrupt"), previous
        previous = lineage[TOKEN]
    return None, previous
