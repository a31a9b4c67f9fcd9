"""A history longer than the window: the purchase-history cache is what the profiles use.

Every other fixture holds fewer days than the 90-day lookback, so the cached summary of
purchases before the window (`purchase_history`) is always empty there and a wrong cache
would pass unnoticed. Here the lookback is 9 days over 20 generated days: the hourly path
(window + cached history, built day by day) must give exactly the profiles of one pass over
the whole staged history.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from assets.partitions import as_of_end
from pipelines.jobs import ALL_ASSETS_JOB
from resources.staging import StagingStore
from tests.pipeline_helpers import START, generated_source
from transforms.profiles import compute_profiles
from transforms.thresholds import PatternThresholds
from transforms.user_keys import with_source_user_ids

DAYS = 20
LAST = START + dt.timedelta(days=DAYS - 1)
NOW = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
THRESHOLDS = PatternThresholds(lookback_days=9)


def test_profiles_from_window_and_cached_history_equal_one_pass_over_everything(
        tmp_path: Path) -> None:
    pipeline = generated_source(tmp_path, f"duckdb:///{tmp_path}/source.duckdb", days=DAYS)
    pipeline.settings = pipeline.settings.model_copy(update={"pattern_thresholds": THRESHOLDS})
    assert pipeline.run(ALL_ASSETS_JOB, START, LAST, NOW).success
    staging = StagingStore(base_dir=pipeline.settings.staging_dir)
    history = pl.read_parquet(staging.snapshot_path("purchase_history", LAST))
    window_start = LAST - dt.timedelta(days=THRESHOLDS.lookback_days - 1)
    before_window = staging.scan_days(START, window_start - dt.timedelta(days=1)).collect()
    assert history.height > 0 and before_window.height > 0  # the cache is really used
    only_before = set(before_window["user_id"]) - set(
        staging.scan_days(window_start, LAST).collect()["user_id"])
    assert only_before  # users the window alone would not even know

    stored = pipeline.warehouse.read(
        "SELECT * FROM behavioral_profiles WHERE as_of_date = :day ORDER BY user_id",
        {"day": LAST})
    one_pass = with_source_user_ids(compute_profiles(
        staging.scan_days(START, LAST), as_of_end=as_of_end(LAST, NOW), thresholds=THRESHOLDS,
        as_of_date=LAST), pl.DataFrame())
    assert set(only_before) <= set(stored["user_id"])
    assert_frame_equal(stored.select(one_pass.columns), one_pass, check_dtypes=False)
