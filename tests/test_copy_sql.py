"""Migration 0004 on both engines: copy rows and cache rows round-trip unchanged."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import duckdb
import polars as pl

from resources.copy_cache import WarehouseCopyCache
from resources.copywriter import generate_copies_sync
from resources.warehouse import Warehouse
from transforms.copy_prompt import CampaignBrief, Offer
from transforms.copy_results import CachedCopy, CopySettings
from transforms.copy_validation import CampaignCopy

MIGRATION = Path(__file__).resolve().parent.parent / "sql" / "migrations" / "0004_copy.sql"
DAY = dt.date(2026, 3, 1)

COPY_COLUMNS = [
    "as_of_date", "campaign_id", "headline", "email_body", "ctas", "subject_lines",
    "social_copy", "copy_source", "fallback_reason", "model", "prompt_hash",
    "prompt_template_version", "tokens_in", "tokens_out", "created_at",
]  # fmt: skip

def _template_rows() -> list[dict[str, object]]:
    brief = CampaignBrief(
        campaign_id="c-1",
        campaign_name="Loyal",
        campaign_type="loyalty",
        offer=Offer(kind="points_multiplier", value=2, label="double points"),
        audience_size=10,
    )
    return generate_copies_sync([brief], CopySettings(api_key=None)).rows(DAY)


def test_migration_is_plain_sql_and_idempotent_on_duckdb() -> None:
    connection = duckdb.connect()
    connection.execute(MIGRATION.read_text())
    connection.execute(MIGRATION.read_text())
    found = connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    tables = {row[0] for row in found}
    assert {"campaign_copy", "llm_copy_cache"} <= tables


def test_campaign_copy_partition_round_trips(warehouse: Warehouse) -> None:
    assert warehouse.backend.table_columns("campaign_copy") == COPY_COLUMNS
    rows = _template_rows()
    frame = pl.DataFrame(rows)
    for _ in range(2):  # a rerun replaces the partition instead of duplicating it
        warehouse.replace_partition("campaign_copy", frame, partition_value=DAY)

    stored = warehouse.read("SELECT * FROM campaign_copy").to_dicts()
    assert len(stored) == 1
    row = stored[0]
    assert list(row["ctas"]) == rows[0]["ctas"]
    assert list(row["subject_lines"]) == rows[0]["subject_lines"]
    assert (row["copy_source"], row["fallback_reason"], row["model"]) == (
        "template", "no API key", None,
    )  # fmt: skip


def test_llm_copy_cache_stores_replaces_and_reads_back_json(warehouse: Warehouse) -> None:
    """Through the cache the copy step uses (resources/copy_cache.py), not SQL of its own:
    a stored answer reads back equal, a second answer for the same prompt replaces it,
    and an unknown prompt is a miss."""
    copy = CampaignCopy(
        headline="Double points", email_body="Earn double points. Unsubscribe any time.",
        ctas=["a", "b", "c"], subject_lines=["x", "y"], social_copy="Double points!",
    )  # fmt: skip
    record = CachedCopy(prompt_hash="ab" * 32, model="m",
                        response_json=json.loads(copy.model_dump_json()), tokens_in=10,
                        tokens_out=20, created_at=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC))
    cache = WarehouseCopyCache(warehouse)
    cache.put_many([record])
    cache.put_many([replace(record, tokens_out=25)])

    stored = warehouse.read("SELECT * FROM llm_copy_cache").to_dicts()
    assert len(stored) == 1 and stored[0]["tokens_out"] == 25
    found = cache.get_many([record.prompt_hash, "cd" * 32])
    assert set(found) == {record.prompt_hash}
    assert found[record.prompt_hash].tokens_out == 25
    assert CampaignCopy.model_validate(found[record.prompt_hash].response_json) == copy
