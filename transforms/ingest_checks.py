"""What ingest's checks decide, as plain functions over a day's rows and its outcome.

The asset (`assets/ingest_report.py`) records each result with its evidence; the decisions
are here, testable without Dagster: does a day reconcile (stored rows = rows read), and is
its rejected share that of some bad rows or of a broken export.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import polars as pl

from transforms.timestamps import parse_timestamp_columns
from transforms.validation import ValidationOutcome

# Below this many rows of its own a day is too small for a share to mean anything: at 00:05
# one undated row among two would be "most of the day".
SHARE_MIN_ROWS = 20


def day_start(day: dt.date) -> dt.datetime:
    """Midnight UTC at the start of `day`: partitions are UTC days."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@dataclass(frozen=True)
class DayShare:
    """A day's rows as the rejection check judges them.

    `dated` rows carry a timestamp inside the day and before the run's now, `undated` ones
    none that could be read (they go to the first partition). Rows dated after the day, or
    after the run's now, are read only by the latest partition, to quarantine them as
    future; they say nothing about the day's export and are left out (`dated_later`), so a
    new day holding only far-future rows is quiet, not broken."""

    dated: int
    undated: int
    accepted: int
    rejected: int  # of the day's own (dated + undated) rows
    dated_later: int

    @property
    def own(self) -> int:
        return self.dated + self.undated

    @property
    def share(self) -> float:
        return self.rejected / self.own if self.own else 0.0

    def acceptable(self, max_rejected_share: float) -> bool:
        """Broken export (wrong id type, date format, ...) rather than some bad rows:
        nothing kept of a day that has rows dated in it, or more than the limit rejected
        of a day large enough to judge."""
        if self.dated > 0 and self.accepted == 0:
            return False
        return self.own < SHARE_MIN_ROWS or self.share <= max_rejected_share


def day_share(raw: pl.DataFrame, day: dt.date, outcome: ValidationOutcome,
              latest_allowed: dt.datetime, time_zone: str) -> DayShare:
    """Rows dated after the run's now (plus the tolerance) are left out as well: at the
    00:05 tick, or when a pinned tick is re-executed later, the rest of the day has not
    happened yet as of the run, and quarantining it as future says nothing about the
    export."""
    parsed = parse_timestamp_columns(raw.schema["occurred_at"], time_zone=time_zone)[0]
    cutoff = min(day_start(day + dt.timedelta(days=1)), latest_allowed)
    later, undated = raw.select((parsed >= cutoff).sum().alias("later"),
                                parsed.is_null().sum().alias("undated")).row(0) \
        if raw.height else (0, 0)
    return DayShare(dated=outcome.rows_read - later - undated, undated=undated,
                    accepted=outcome.accepted.height, rejected=outcome.rejected.height - later,
                    dated_later=later)


def reconciles(stored: dict[str, int | None]) -> bool:
    """Staged + quarantined rows, as counted in storage, equal the rows read."""
    read, staged, rejected = (stored["rows_read"], stored["rows_staged"],
                              stored["rows_rejected_stored"])
    return None not in (read, staged, rejected) and staged + rejected == read  # type: ignore[operator]


def top_reasons(outcome: ValidationOutcome, limit: int = 5) -> str:
    """The most frequent rejection reasons of a day, with their counts, in words."""
    reasons = Counter(outcome.reason_counts()).most_common(limit)
    return ", ".join(f"{code} ({count:,})" for code, count in reasons) or "none"
