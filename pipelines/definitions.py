"""The Dagster code location: assets, checks, jobs, schedules, sensors and resources.

`build_definitions(settings)` is pure (tests call it with their own settings); the
`defs` entry point reads the environment only when Dagster loads the code location.
"""

from __future__ import annotations

import datetime as dt
import warnings

import dagster as dg

from assets.campaign_recommendations import build_recommendations_asset
from assets.campaigns import build_campaign_assets, campaign_status_overrides_source
from assets.copy import build_copy_assets
from assets.customer_value import build_customer_value_assets, build_segment_value_asset
from assets.ingest import (
    build_ingest_assets,
    campaign_events_source,
    transactions_source,
    users_source,
)
from assets.partitions import daily_partitions
from assets.profiles import build_profile_assets
from assets.segments import build_segment_assets
from pipelines.asset_catalog import annotate
from pipelines.jobs import build_jobs
from pipelines.schedules import build_schedules
from pipelines.sensors import build_sensors
from resources.llm import TogetherCopyResource
from resources.settings import PipelineSettings
from resources.sources import TransactionSource
from resources.staging import StagingStore
from resources.warehouse import Warehouse

# Backfill policies and lagged partition mappings are "beta" in Dagster 1.13; we rely on
# them deliberately (docs/operations.md), so their warnings would only bury real ones.
warnings.filterwarnings("ignore", message=".*is currently in beta.*")
# Partitioned asset checks (per-day check results in range runs) are "preview" in 1.13.
warnings.filterwarnings("ignore", message=".*AssetCheckSpec is currently in preview.*")


def build_resources(settings: PipelineSettings) -> dict[str, dg.ConfigurableResource]:
    """Resources from settings; secrets stay in the environment, never in metadata."""
    return {
        "warehouse": Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema,
                               load_sessions=settings.warehouse_load_sessions),
        "source": TransactionSource(url=settings.source_url, schema_name=settings.source_schema),
        "staging": StagingStore(base_dir=settings.staging_dir),
        # No api_key here: the resource reads TOGETHER_API_KEY at run time, so the key never
        # lands in Dagster's run config or job snapshot.
        "llm": TogetherCopyResource(),
    }


def build_assets(settings: PipelineSettings) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """Every asset of the graph, partitioned from the configured first date."""
    partitions = daily_partitions(settings.first_partition_date)
    tolerance = dt.timedelta(minutes=settings.future_tolerance_minutes)
    return annotate([
        transactions_source,
        users_source,
        campaign_events_source,
        campaign_status_overrides_source,
        build_ingest_assets(settings.first_partition_date, partitions, tolerance,
                            settings.max_rejected_share, policy=settings.ingest_policy,
                            allow_emptying_days=settings.allow_emptying_days),
        *build_profile_assets(settings.first_partition_date, partitions,
                              settings.pattern_thresholds),
        build_segment_assets(partitions),
        build_customer_value_assets(settings.first_partition_date, partitions),
        build_segment_value_asset(partitions),
        build_campaign_assets(partitions),
        build_recommendations_asset(partitions),
        *build_copy_assets(partitions),
    ], warehouse_url=settings.warehouse_url, source_url=settings.source_url,
        owner=settings.asset_owner)


def build_definitions(settings: PipelineSettings) -> dg.Definitions:
    """The whole code location for one set of settings."""
    assets = build_assets(settings)
    jobs = build_jobs()
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=build_schedules(jobs, settings.first_partition_date),
        sensors=build_sensors(settings.alert_webhook_url.get_secret_value()
                              if settings.alert_webhook_url else None),
        resources=build_resources(settings),
        # In-process: a step's work is 0.2-1.3 s, while the multiprocess executor spends
        # 5-18 s per step starting Python and loading the code location (docs/benchmarks.md),
        # and the DuckDB warehouse admits one writer process at a time anyway.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Entry point for `dagster dev` / `workspace.yaml`: settings from the environment."""
    return build_definitions(PipelineSettings.from_env())
