"""What the Dagster UI says about each asset: kinds, owner, tags, code version, freshness.

Kept in one table, applied to the built definitions (`annotate`), so the asset modules stay
about computing and this file is the one place a reader checks what the catalog shows.

- **kinds**: the engines an asset runs on: `polars` for the transforms, the warehouse's
  dialect (`duckdb` or `postgres`), `parquet` where a copy is staged, `together` for the
  LLM copy. Source assets get the source's kind.
- **owners**: `MARKETING_ASSET_OWNER` (default `team:marketing-data`).
- **tags**: `refresh: hourly` on every asset the hourly schedule materializes
  (`on-demand` for the LLM answer cache), and
  `contains: user-level` on the tables that hold one row per user (the PII a reviewer
  looks for first).
- **code version**: a digest of the files that compute the asset (its asset module and the
  transforms and resources it calls), so the UI marks an asset whose code changed since
  it was last materialized, without anyone remembering to bump a number.
- **freshness**: every hourly asset warns when its last materialization is older than
  75 minutes and fails at 135 (the schedule ticks at :05; a refresh takes under a
  minute), shown by the freshness daemon in the UI.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OWNER = "team:marketing-data"
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(minutes=135),
                                           warn_window=dt.timedelta(minutes=75))
USER_LEVEL = {"contains": "user-level"}

_INGEST = ("assets/ingest.py", "assets/ingest_chunks.py", "assets/ingest_report.py",
           "transforms/validation.py", "transforms/amounts.py", "transforms/timestamps.py",
           "transforms/user_keys.py", "transforms/ingest_policy.py",
           "transforms/ingest_checks.py", "resources/sources.py", "resources/source_files.py",
           "resources/staging.py")
_PROFILES = ("assets/profiles.py", "assets/profile_inputs.py", "transforms/profiles.py",
             "transforms/thresholds.py", "transforms/window_duplicates.py",
             "transforms/user_keys.py", "transforms/profile_checks.py",
             "resources/committed_snapshots.py")
_SEGMENTS = ("assets/segments.py", "transforms/segments.py", "transforms/profile_checks.py")
_VALUE = ("assets/customer_value.py", "transforms/customer_value.py",
          "transforms/purchase_history.py", "transforms/value_tiers.py")
_CYCLE = ("assets/campaigns.py", "assets/campaign_planning.py",
          "assets/campaign_measurement.py", "transforms/campaign_planning.py",
          "transforms/campaign_selection.py", "transforms/roi.py", "transforms/audience.py",
          "transforms/campaign_metrics.py", "transforms/campaign_checks.py",
          "transforms/campaign_config.py", "transforms/events.py", "transforms/user_keys.py")
_COPY = ("assets/copy.py", "resources/copywriter.py", "resources/copy_client.py",
         "transforms/copy_results.py", "transforms/copy_prompt.py",
         "transforms/copy_validation.py", "transforms/copy_templates.py", "resources/llm.py",
         "resources/copy_cache.py")


@dataclass(frozen=True)
class Entry:
    """One asset's catalog line: extra kinds, code files, tags."""

    kinds: frozenset[str]
    code: tuple[str, ...]
    tags: tuple[tuple[str, str], ...] = ()
    hourly: bool = True  # materialized by every hourly refresh (tag and freshness)


CATALOG: dict[str, Entry] = {
    "valid_transactions": Entry(frozenset({"polars", "parquet"}), _INGEST),
    "rejected_transactions": Entry(frozenset({"polars"}), _INGEST, tuple(USER_LEVEL.items())),
    "purchase_history": Entry(frozenset({"polars", "parquet"}),
                              ("assets/purchase_history.py", "transforms/profiles.py",
                               "transforms/purchase_history.py")),
    "behavioral_profiles": Entry(frozenset({"polars", "parquet"}), _PROFILES,
                                 tuple(USER_LEVEL.items())),
    "staged_partitions": Entry(frozenset({"polars"}), _INGEST),
    "rejected_files": Entry(frozenset({"polars"}), _INGEST),
    "user_segments": Entry(frozenset({"polars"}), _SEGMENTS),
    "segment_overlap": Entry(frozenset({"polars"}), _SEGMENTS),
    "customer_value": Entry(frozenset({"polars", "scipy"}), _VALUE, tuple(USER_LEVEL.items())),
    "customer_value_models": Entry(frozenset({"polars", "scipy"}), _VALUE),
    "segment_value": Entry(frozenset({"polars"}), _VALUE),
    "customer_value_tiers": Entry(frozenset({"polars", "scipy"}), _VALUE),
    "ai_campaigns": Entry(frozenset({"polars"}), _CYCLE),
    "campaign_audience": Entry(frozenset({"polars"}), _CYCLE, tuple(USER_LEVEL.items())),
    "campaign_status": Entry(frozenset({"polars"}), _CYCLE),
    "campaign_metrics": Entry(frozenset({"polars"}), _CYCLE),
    "campaign_delivery": Entry(frozenset({"polars"}), _CYCLE, tuple(USER_LEVEL.items())),
    "campaign_incrementality": Entry(frozenset({"polars"}), _CYCLE),
    "campaign_recommendations": Entry(frozenset({"polars"}),
                                      ("assets/campaign_recommendations.py",
                                       "assets/campaigns.py",
                                       "transforms/recommendations.py")),
    "campaign_copy": Entry(frozenset({"polars", "together"}), _COPY),
    # written only when the LLM answers something new: no hourly freshness to expect
    "llm_copy_cache": Entry(frozenset({"together"}), ("resources/copy_cache.py",
                                                     "transforms/copy_results.py"),
                            hourly=False),
}


@cache
def code_version(files: tuple[str, ...], root: Path = ROOT) -> str:
    """A digest of the files' text: changes exactly when one of them does."""
    digest = hashlib.blake2b(digest_size=6)
    for name in files:
        path = root / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


def _dialect_kind(url: str) -> str:
    if url.startswith("postgres"):
        return "postgres"
    if url.startswith("duckdb") or url.endswith(".duckdb"):
        return "duckdb"
    return "parquet" if not url.endswith(".csv") else "csv"


def annotate(assets: list, *, warehouse_url: str, source_url: str,
             owner: str = DEFAULT_OWNER) -> list:
    """`assets` with the catalog's kinds, owner, tags, code versions and freshness.
    An asset missing from the catalog is an error: every asset is described here."""
    warehouse, source = _dialect_kind(warehouse_url), _dialect_kind(source_url)

    def describe(spec: dg.AssetSpec) -> dg.AssetSpec:
        name = spec.key.to_user_string()
        if spec.group_name == "sources":
            # operators' overrides live in the warehouse (`marketing campaign pause`)
            kind = warehouse if name == "campaign_status_overrides" else source
            return spec.replace_attributes(kinds={kind}, owners=[owner],
                                           tags={**spec.tags, "refresh": "external"})
        if name not in CATALOG:
            raise KeyError(f"asset {name} has no entry in pipelines/asset_catalog.py")
        entry = CATALOG[name]
        return spec.replace_attributes(
            kinds=set(entry.kinds | {warehouse}), owners=[owner],
            tags={**spec.tags, "refresh": "hourly" if entry.hourly else "on-demand",
                  **dict(entry.tags)},
            code_version=code_version(entry.code),
            freshness_policy=FRESHNESS if entry.hourly else None)

    return list(dg.map_asset_specs(describe, assets))
