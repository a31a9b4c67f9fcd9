"""What the profile and segment checks decide, as plain functions over the computed frames.

The assets (`assets/profiles.py`, `assets/segments.py`) record each result with its
evidence; the decisions are here, so they can be tested without Dagster. Each function
returns the offending ids or names: empty means the check passes.
"""

from __future__ import annotations

import polars as pl

from transforms.thresholds import PATTERNS


def pattern_counts(profiles: pl.DataFrame) -> dict[str, int]:
    """Users carrying each of the 8 patterns, in the stable pattern order (zeros included)."""
    exploded = profiles.select(pl.col("detected_patterns").explode().alias("pattern"))
    counts = dict(exploded.drop_nulls().group_by("pattern").len().iter_rows())
    return {pattern: int(counts.get(pattern, 0)) for pattern in PATTERNS}


def duplicated_users(profiles: pl.DataFrame) -> pl.Series:
    """Users with more than one profile row (`one_row_per_user`)."""
    return profiles.filter(pl.col("user_id").is_duplicated())["user_id"].unique()


def unknown_patterns(profiles: pl.DataFrame) -> list[str]:
    """Pattern names outside the 8 (`known_patterns_only`)."""
    seen = set(profiles["detected_patterns"].explode().drop_nulls())
    return sorted(seen - set(PATTERNS))


def segment_count_mismatches(profiles: pl.DataFrame, segments: pl.DataFrame) -> list[str]:
    """Patterns whose segment user count differs from the profiles' (`consistent_with_profiles`)."""
    expected = pattern_counts(profiles)
    actual = dict(zip(segments["behavior_pattern"], segments["user_count"], strict=True))
    return sorted(pattern for pattern in set(expected) | set(actual)
                  if expected.get(pattern, 0) != actual.get(pattern, 0))


def shares_out_of_range(segments: pl.DataFrame) -> int:
    """Segments whose share of users is outside [0, 1]."""
    shares = segments["share_of_users"]
    return int(((shares < 0) | (shares > 1)).sum())
