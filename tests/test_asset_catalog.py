"""The catalog the Dagster UI shows: kinds, owner, tags, code versions, freshness."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg

from pipelines.asset_catalog import CATALOG, FRESHNESS, code_version
from pipelines.definitions import build_definitions
from resources.settings import PipelineSettings

USER_LEVEL_TABLES = {"behavioral_profiles", "campaign_audience", "campaign_delivery",
                     "rejected_transactions", "customer_value"}


def _specs(settings: PipelineSettings) -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec
            for spec in build_definitions(settings).resolve_all_asset_specs()}


def test_every_computed_asset_is_described() -> None:
    specs = _specs(PipelineSettings(asset_owner="team:growth"))
    computed = {name for name, spec in specs.items() if spec.group_name != "sources"}
    assert computed == set(CATALOG)  # nothing undescribed, nothing stale in the table
    for name in computed:
        spec = specs[name]
        assert "duckdb" in spec.kinds and len(spec.kinds) >= 2, name
        assert spec.owners == ["team:growth"], name
        hourly = CATALOG[name].hourly
        assert spec.tags["refresh"] == ("hourly" if hourly else "on-demand"), name
        assert spec.code_version and len(spec.code_version) == 12, name
        assert spec.freshness_policy == (FRESHNESS if hourly else None), name
        assert (spec.tags.get("contains") == "user-level") == (name in USER_LEVEL_TABLES), name
    assert "together" in specs["campaign_copy"].kinds
    assert specs["transactions"].freshness_policy is None  # external: not ours to refresh


def test_every_code_file_of_the_catalog_exists() -> None:
    """A moved or renamed module must move in the catalog too: a missing file would only
    be digested as "<missing>", and its asset would never show its code as changed."""
    root = Path(__file__).resolve().parent.parent
    named = {name for entry in CATALOG.values() for name in entry.code}
    assert sorted(name for name in named if not (root / name).is_file()) == []


def test_kinds_follow_the_configured_engines() -> None:
    specs = _specs(PipelineSettings(warehouse_url="postgresql://u@h/db",
                                    source_url="/exports"))
    assert "postgres" in specs["behavioral_profiles"].kinds
    assert "duckdb" not in specs["behavioral_profiles"].kinds
    assert set(specs["transactions"].kinds) == {"parquet"}
    assert set(specs["campaign_status_overrides"].kinds) == {"postgres"}


def test_a_code_version_changes_exactly_when_its_code_does(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").write_text("y = 2\n")
    before = code_version(("a.py", "b.py"), tmp_path)
    assert code_version(("a.py", "b.py"), tmp_path) == before
    (tmp_path / "b.py").write_text("y = 3\n")
    code_version.cache_clear()
    assert code_version(("a.py", "b.py"), tmp_path) != before
    versions = {spec.code_version for spec in _specs(PipelineSettings()).values()
                if spec.code_version}
    assert len(versions) > 3  # assets computed by different code differ


def test_every_table_the_pipeline_writes_is_a_declared_asset() -> None:
    """Lineage in the UI is only true if every written table is in the graph: each table
    the migrations create is an asset (or source spec), or is named here as the private
    bookkeeping of one asset, with the reason."""
    bookkeeping = {
        "snapshot_versions": "behavioral_profiles' commit record (which Parquet version)",
        "user_keys": "valid_transactions' dictionary of text user ids",
    }
    migrations = (Path(__file__).resolve().parent.parent / "sql" / "migrations")
    created = set()
    for path in migrations.glob("*.sql"):
        created |= set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", path.read_text()))
    created = {table for table in created if not re.search(r"_v\d+$", table)}
    assets = set(_specs(PipelineSettings()))
    assert created - assets == set(bookkeeping)
    assert not set(bookkeeping) & assets
