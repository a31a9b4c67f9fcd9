"""The warehouse-backed LLM copy cache (`llm_copy_cache`): paid-for answers are never re-billed."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import polars as pl

from resources.table_writes import TableWrite
from resources.warehouse import Warehouse
from transforms.copy_results import CachedCopy


class WarehouseCopyCache:
    """`CopyCache` over the warehouse table, keyed by prompt hash."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def get_many(self, hashes: Sequence[str]) -> Mapping[str, CachedCopy]:
        wanted = set(hashes)
        if not wanted:
            return {}
        # The cache holds one small row per distinct prompt ever answered (a few per day),
        # so reading it whole is cheaper than binding a variable-length IN list portably.
        rows = self.warehouse.read_named("llm_copy_cache_all")
        found = rows.filter(pl.col("prompt_hash").is_in(list(wanted)))
        return {
            row["prompt_hash"]: CachedCopy(
                prompt_hash=row["prompt_hash"],
                model=row["model"],
                response_json=json.loads(row["response_json"]),
                tokens_in=int(row["tokens_in"] or 0),
                tokens_out=int(row["tokens_out"] or 0),
                created_at=row["created_at"],
            )
            for row in found.iter_rows(named=True)
        }

    def put_many(self, records: Sequence[CachedCopy]) -> None:
        """Store a batch of answers in one transaction (each replaces its prompt's row)."""
        writes = [
            TableWrite.rows("llm_copy_cache", pl.DataFrame([{
                "prompt_hash": record.prompt_hash,
                "model": record.model,
                "response_json": json.dumps(record.response_json, sort_keys=True),
                "tokens_in": record.tokens_in,
                "tokens_out": record.tokens_out,
                "created_at": record.created_at,
            }]), {"prompt_hash": record.prompt_hash})
            for record in records
        ]
        if writes:
            self.warehouse.replace_together(writes)
