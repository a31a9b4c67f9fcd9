"""The short human summary printed at the end of `marketing demo`."""

from __future__ import annotations

import datetime as dt

from resources.settings import PipelineSettings
from resources.warehouse import Warehouse


def _ingest_section(warehouse: Warehouse) -> list[str]:
    totals = warehouse.read(
        "SELECT count(*) AS days, sum(rows_read) AS read, sum(rows_accepted) AS accepted, "
        "sum(rows_rejected) AS rejected, sum(refunds) AS refunds, "
        "sum(zero_amount) AS zero_amount FROM staged_partitions"
    ).row(0, named=True)
    reconciles = totals["read"] == totals["accepted"] + totals["rejected"]
    lines = [
        "Transactions",
        f"  days staged      {totals['days']}",
        f"  rows read        {totals['read']:,}",
        f"  accepted         {totals['accepted']:,}  (refunds {totals['refunds']:,}, "
        f"zero-amount {totals['zero_amount']:,})",
        f"  rejected         {totals['rejected']:,}",
        f"  reconciles       {'yes' if reconciles else 'NO'} (read = accepted + rejected)",
        "Rejected rows by reason",
    ]
    reasons = warehouse.read(
        "SELECT reason, count(*) AS n FROM rejected_transactions "
        "GROUP BY reason ORDER BY n DESC, reason"
    )
    lines += [f"  {row['n']:>5}  {row['reason']}" for row in reasons.iter_rows(named=True)]
    return lines


SECTIONS = [_ingest_section]


def print_summary(settings: PipelineSettings, environment: dict[str, str],
                  last_day: dt.date) -> None:
    """Print every section, then where things are and what to do next."""
    warehouse = Warehouse(url=settings.warehouse_url, schema_name=settings.warehouse_schema)
    lines = ["", f"=== Demo summary (latest partition {last_day}) ==="]
    for section in SECTIONS:
        lines += section(warehouse)
    lines += [
        "Where things are",
        f"  source        {settings.source_url}",
        f"  warehouse     {settings.warehouse_url} (schema {settings.warehouse_schema})",
        f"  staged files  {settings.staging_dir}/transactions/as_of_date=*/part.parquet",
        f"  Dagster home  {environment['DAGSTER_HOME']}",
        "Next",
        "  make ui      open the Dagster UI on this demo (http://127.0.0.1:3000)",
        "  make test    run the test suite",
    ]
    print("\n".join(lines))
