"""Jobs over the asset graph."""

from __future__ import annotations

import dagster as dg

ALL_ASSETS_JOB = "refresh_all"
INGEST_JOB = "ingest"


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    """`refresh_all` runs the whole graph for a day (or a range); `ingest_transactions`
    only validates and stages, which a long history backfill wants to do first."""
    return [
        dg.define_asset_job(
            ALL_ASSETS_JOB,
            selection=dg.AssetSelection.all(),
            description="Materialize the whole graph for a partition (or a backfill range).",
            executor_def=dg.in_process_executor,
        ),
        dg.define_asset_job(
            INGEST_JOB,
            selection=dg.AssetSelection.groups("ingest"),
            description="Validate and stage transactions, quarantining bad rows, and extend "
                        "the purchase history day by day.",
            executor_def=dg.in_process_executor,
        ),
    ]
