"""Every setting of the pipeline in one typed object, read from the environment once.

Nothing here runs at import time: `PipelineSettings.from_env()` is called by the code
location's entry point, and tests build settings directly.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from transforms.ingest_policy import IngestPolicy
from transforms.thresholds import PatternThresholds

DEMO_DIR = Path("data/demo")


class PipelineSettings(BaseModel):
    """Where data comes from, where results go, and the partition range.

    Environment variables (all optional; defaults give the embedded DuckDB demo):

    - `MARKETING_SOURCE_URL`: the app database (`postgresql://...`, `duckdb:///file`) or a
      directory/glob of CSV or Parquet exports.
    - `MARKETING_SOURCE_SCHEMA`: schema of the source tables (default `public` on
      PostgreSQL, `main` on DuckDB).
    - `MARKETING_WAREHOUSE_URL`: where results are written (`postgresql://...` or
      `duckdb:///file`).
    - `MARKETING_WAREHOUSE_SCHEMA`: the single results schema (default `marketing`).
    - `MARKETING_WAREHOUSE_LOAD_SESSIONS`: PostgreSQL connections that load one day of a
      partitioned table in parallel (default 2, one per core of these machines).
    - `MARKETING_STAGING_DIR`: where validated transactions are staged as daily Parquet
      (a local path or an object-store URI Polars can write).
    - `MARKETING_FIRST_PARTITION_DATE`: the first daily partition (YYYY-MM-DD).
    - `MARKETING_FUTURE_TOLERANCE_MINUTES`: clock skew allowed before a timestamp counts as
      "in the future" (default 5).
    - `MARKETING_MAX_REJECTED_SHARE`: a day whose rejected share is above this (default
      0.5), or that keeps no row of a non-empty day, fails ingest's blocking check.
    - `MARKETING_ALLOW_EMPTYING_DAYS`: `1` lets a re-ingest replace a staged day that held
      rows by an empty one (default: refused, as a header-only or truncated export would).
    - `MARKETING_SOURCE_TIME_ZONE`, `MARKETING_NAIVE_TIMESTAMPS`, `MARKETING_SUB_CENT_AMOUNTS`,
      `MARKETING_BASE_CURRENCY`, `MARKETING_CURRENCY_RATES`, `MARKETING_UNKNOWN_USERS`,
      `MARKETING_USER_IDS`: how ingest treats ambiguous values (transforms/ingest_policy.py).
    - `MARKETING_ASSET_OWNER`: the owner every asset shows in the Dagster UI (a
      `team:name` or an email; default `team:marketing-data`).
    - `MARKETING_ALERT_WEBHOOK_URL`: where the alerting sensors also POST each alert
      (a secret: never logged).
    - `MARKETING_PATTERN_<FIELD>`: pattern thresholds (transforms/thresholds.py); the
      lookback among them shapes the asset graph (the profiles' partition mapping).
    """

    model_config = ConfigDict(frozen=True)

    source_url: str = f"duckdb:///{DEMO_DIR}/source.duckdb"
    source_schema: str | None = None
    warehouse_url: str = f"duckdb:///{DEMO_DIR}/warehouse.duckdb"
    warehouse_schema: str = "marketing"
    warehouse_load_sessions: int = Field(default=2, ge=1, le=16)
    staging_dir: str = str(DEMO_DIR / "staged")
    first_partition_date: dt.date = dt.date(2026, 1, 1)
    future_tolerance_minutes: int = Field(default=5, ge=0)
    max_rejected_share: float = Field(default=0.5, ge=0, le=1)
    allow_emptying_days: bool = False
    asset_owner: str = "team:marketing-data"
    alert_webhook_url: SecretStr | None = None
    ingest_policy: IngestPolicy = Field(default_factory=IngestPolicy)
    pattern_thresholds: PatternThresholds = Field(default_factory=PatternThresholds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        """Build settings from `MARKETING_*` variables, keeping defaults for unset ones."""
        env = os.environ if environ is None else environ
        names = {
            "source_url": "MARKETING_SOURCE_URL",
            "source_schema": "MARKETING_SOURCE_SCHEMA",
            "warehouse_url": "MARKETING_WAREHOUSE_URL",
            "warehouse_schema": "MARKETING_WAREHOUSE_SCHEMA",
            "warehouse_load_sessions": "MARKETING_WAREHOUSE_LOAD_SESSIONS",
            "staging_dir": "MARKETING_STAGING_DIR",
            "first_partition_date": "MARKETING_FIRST_PARTITION_DATE",
            "future_tolerance_minutes": "MARKETING_FUTURE_TOLERANCE_MINUTES",
            "max_rejected_share": "MARKETING_MAX_REJECTED_SHARE",
            "allow_emptying_days": "MARKETING_ALLOW_EMPTYING_DAYS",
            "asset_owner": "MARKETING_ASSET_OWNER",
            "alert_webhook_url": "MARKETING_ALERT_WEBHOOK_URL",
        }
        policy_names = {
            "source_time_zone": "MARKETING_SOURCE_TIME_ZONE",
            "naive_timestamps": "MARKETING_NAIVE_TIMESTAMPS",
            "sub_cent_amounts": "MARKETING_SUB_CENT_AMOUNTS",
            "base_currency": "MARKETING_BASE_CURRENCY",
            "currency_rates": "MARKETING_CURRENCY_RATES",
            "unknown_users": "MARKETING_UNKNOWN_USERS",
            "user_ids": "MARKETING_USER_IDS",
        }
        values: dict[str, object] = {
            field: env[name] for field, name in names.items() if env.get(name)}
        values["pattern_thresholds"] = PatternThresholds.from_env(environ=env)
        values["ingest_policy"] = IngestPolicy.model_validate(
            {field: env[name] for field, name in policy_names.items() if env.get(name)})
        return cls.model_validate(values)
