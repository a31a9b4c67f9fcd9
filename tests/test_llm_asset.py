"""The `campaign_copy` asset through a real Dagster instance, a real warehouse and the fake
Together server over real HTTP: run config that reaches the copywriter, and per-partition
accounting in range runs (each day reports its own calls, tokens and cost, and they add up).

The campaigns are written straight into `ai_campaigns` (no upstream pipeline), so each test
controls exactly which prompts each day asks.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from assets.copy import CampaignCopyConfig, build_copy_assets
from assets.partitions import daily_partitions
from devkit.fake_together import FakeTogether, hanging, server_error
from resources.llm import TogetherCopyResource
from resources.warehouse import Warehouse

FIRST = dt.date(2026, 1, 5)
SECOND = FIRST + dt.timedelta(days=1)
ENV_VARS = ("TOGETHER_API_KEY", "TOGETHER_API_KEY_MARKETING", "TOGETHER_BASE_URL")
SUMMED = ("campaigns", "calls_made", "retries", "repairs", "cache_hits", "llm", "cache",
          "template", "tokens_in", "tokens_out")
OFFERS = (
    {"kind": "percent_off", "value": 20, "label": "20% off premium merchants"},
    {"kind": "cashback_percent", "value": 5, "label": "5% cashback on groceries"},
    {"kind": "amount_off", "value": 15, "label": "$15 off your next purchase"},
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    resource = Warehouse(url=f"duckdb:///{tmp_path}/warehouse.duckdb")
    resource.migrate()
    return resource


@pytest.fixture
def fake() -> Iterator[FakeTogether]:
    with FakeTogether() as server:
        yield server


def campaign_row(day: dt.date, number: int, offer: Mapping[str, Any]) -> dict[str, Any]:
    """One `ai_campaigns` row; `offer` (and so the prompt) is what tells campaigns apart."""
    created = dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC)
    return {
        "campaign_id": f"{day.isoformat()}-{number}", "as_of_date": day,
        "campaign_name": f"Campaign {number} of {day.isoformat()}",
        "campaign_type": "discount", "status": "scheduled", "target_pattern": "high_spender",
        "audience_size": 1500 + number, "expected_roi": 1.5, "roi_ci_low": 1.0,
        "roi_ci_high": 2.0, "expected_conversion_rate": 0.05, "expected_order_value": 50.0,
        "expected_revenue": 1000.0, "expected_cost": 100.0, "budget": 500.0,
        "offer_label": offer["label"], "offer_json": json.dumps(dict(offer)),
        "start_date": day, "end_date": day + dt.timedelta(days=7), "history_deliveries": 0,
        "history_conversions": 0, "selection_reason": "test", "created_at": created,
        "updated_at": created,
    }  # fmt: skip


def seed_campaigns(warehouse: Warehouse, day: dt.date, offers: Sequence[Mapping[str, Any]]
                   ) -> None:
    """Replace `day`'s campaigns with one per offer."""
    rows = [campaign_row(day, number, offer) for number, offer in enumerate(offers)]
    warehouse.replace_partition("ai_campaigns", pl.DataFrame(rows), partition_value=day)


def materialize_copy(
    warehouse: Warehouse,
    llm: TogetherCopyResource,
    first: dt.date,
    last: dt.date,
    *,
    instance: dg.DagsterInstance | None = None,
    run_config: Mapping[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    """One run of `campaign_copy` over first..last (range tags, as a single-run backfill)."""
    assets = build_copy_assets(daily_partitions(FIRST - dt.timedelta(days=30)))
    tags = {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}
    return dg.materialize(
        assets, selection=["campaign_copy"], resources={"llm": llm, "warehouse": warehouse},
        instance=instance or dg.DagsterInstance.ephemeral(), tags=tags,
        run_config=dict(run_config or {}),
    )


def per_partition(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Each partition's campaign_copy metadata, as plain values."""
    return {
        m.partition: {key: value.value for key, value in m.metadata.items()}
        for m in result.asset_materializations_for_node("campaign_copy")
        if m.partition is not None and "calls_made" in m.metadata
    }


def llm_for(fake: FakeTogether, **fields: Any) -> TogetherCopyResource:
    values = {"api_key": "test-key-0000", "base_url": fake.base_url, "backoff_base_s": 0.01,
              "backoff_max_s": 0.05, "timeout_s": 5.0, **fields}
    return TogetherCopyResource(**values)


def test_range_run_reports_each_days_own_calls_tokens_and_cost(
    warehouse: Warehouse, fake: FakeTogether
) -> None:
    seed_campaigns(warehouse, FIRST, OFFERS[:1])
    # The second day asks the first day's prompt again (billed once, to the first day) and
    # two of its own.
    seed_campaigns(warehouse, SECOND, OFFERS)
    result = materialize_copy(warehouse, llm_for(fake), FIRST, SECOND)

    days = per_partition(result)
    assert set(days) == {FIRST.isoformat(), SECOND.isoformat()}
    first, second = days[FIRST.isoformat()], days[SECOND.isoformat()]
    assert (first["campaigns"], second["campaigns"]) == (1, len(OFFERS))
    for key in SUMMED:  # the days add up to the run...
        assert first[key] + second[key] == sum(day[key] for day in days.values())
    assert first["calls_made"] + second["calls_made"] == fake.calls  # ...and to the server
    billed = sum(request_tokens(fake, i) for i in range(fake.calls))
    assert first["tokens_in"] + second["tokens_in"] == billed
    assert first["calls_made"] != second["calls_made"]  # different campaigns, own figures
    assert first["tokens_in"] != second["tokens_in"]
    assert first["estimated_cost_usd"] != second["estimated_cost_usd"]
    total_cost = first["estimated_cost_usd"] + second["estimated_cost_usd"]
    expected = (first["tokens_in"] + second["tokens_in"]
                + first["tokens_out"] + second["tokens_out"]) * 0.88 / 1e6
    assert total_cost == pytest.approx(expected, abs=2e-6)
    copy = warehouse.read("SELECT as_of_date, copy_source FROM campaign_copy")
    assert copy.height == 1 + len(OFFERS)
    assert set(copy["copy_source"]) == {"llm"}


def request_tokens(fake: FakeTogether, index: int) -> int:
    """The prompt tokens the fake billed request `index` (its own count: chars // 4)."""
    messages = fake.requests[index]["messages"]
    return sum(len(str(m.get("content", ""))) for m in messages) // 4


def test_per_run_config_on_the_asset_is_accepted_and_takes_effect(
    warehouse: Warehouse, fake: FakeTogether
) -> None:
    seed_campaigns(warehouse, FIRST, OFFERS[:2])
    # The fake's copy always has a "Claim offer" CTA: banning the phrase must reject it
    # (one repair each, still banned, then template copy naming the claim).
    config = {"ops": {"campaign_copy": {"config": {
        "response_format": "json_schema", "banned_claims": ["claim offer"],
        "circuit_breaker_failures": 0, "deadline_s": 120.0,
    }}}}  # fmt: skip
    result = materialize_copy(warehouse, llm_for(fake), FIRST, FIRST, run_config=config)

    assert result.success
    assert {r["response_format"]["type"] for r in fake.requests} == {"json_schema"}
    assert '"claim offer"' in fake.requests[0]["messages"][0]["content"]
    day = per_partition(result)[FIRST.isoformat()]
    assert (day["template"], day["repairs"], fake.calls) == (2, 2, 4)
    reasons = day["fallback_reasons"]
    assert all("banned claim 'claim offer'" in reason for reason in reasons), reasons
    step = result.asset_materializations_for_node("campaign_copy")[-1].metadata
    assert step["step_deadline_s"].value == 120.0


def test_breaker_from_run_config_stops_requests(warehouse: Warehouse) -> None:
    seed_campaigns(warehouse, FIRST, OFFERS)
    config = {"ops": {"campaign_copy": {"config": {"circuit_breaker_failures": 2}}}}
    with FakeTogether(default=server_error(503)) as fake:
        llm = llm_for(fake, max_concurrency=1, max_retries=3)
        result = materialize_copy(warehouse, llm, FIRST, FIRST, run_config=config)
        assert fake.calls == 2  # two failures in a row, then nothing more
    day = per_partition(result)[FIRST.isoformat()]
    assert day["template"] == len(OFFERS)
    assert all(reason.startswith("circuit_open: 2 consecutive")
               for reason in day["fallback_reasons"])


def test_resource_run_config_sets_deadline_and_response_format(warehouse: Warehouse) -> None:
    seed_campaigns(warehouse, FIRST, OFFERS)
    with FakeTogether(default=hanging()) as fake:
        # Run config for a resource replaces the values it was built with (Dagster's rule),
        # so the server's URL is given here too.
        config = {"resources": {"llm": {"config": {
            "api_key": "test-key-0000", "base_url": fake.base_url, "timeout_s": 30.0,
            "max_retries": 0, "circuit_breaker_failures": 0, "deadline_s": 0.5,
            "response_format": "json_schema", "banned_claims": ["never say this"],
        }}}}  # fmt: skip
        result = materialize_copy(warehouse, TogetherCopyResource(), FIRST, FIRST,
                                  run_config=config)
        requests = list(fake.requests)
    day = per_partition(result)[FIRST.isoformat()]
    assert day["template"] == len(OFFERS)
    assert list(day["fallback_reasons"]) == ["deadline: 0.5 s for this step's 3 prompts ran out"]
    assert {r["response_format"]["type"] for r in requests} <= {"json_schema"}
    assert all('"never say this"' in r["messages"][0]["content"] for r in requests)


def test_invalid_run_config_is_refused_before_any_call(warehouse: Warehouse,
                                                       fake: FakeTogether) -> None:
    seed_campaigns(warehouse, FIRST, OFFERS[:1])
    config = {"ops": {"campaign_copy": {"config": {"response_format": "yaml"}}}}
    with pytest.raises(dg.DagsterInvalidConfigError, match="response_format"):
        materialize_copy(warehouse, llm_for(fake), FIRST, FIRST, run_config=config)
    assert fake.calls == 0


def _configuration_table() -> list[list[str]]:
    """The rows of the configuration table in docs/llm-copy.md, as cells."""
    header = "| resource field | asset run config | environment | default |"
    lines = (Path(__file__).resolve().parent.parent / "docs" / "llm-copy.md").read_text()
    rows = lines.split(header, 1)[1].splitlines()[2:]
    table = []
    for line in rows:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return table


def test_every_documented_setting_is_settable_where_the_docs_say() -> None:
    table = _configuration_table()
    documented = {name for row in table for name in re.findall(r"`(\w+)`", row[0])}
    per_run = {name for row in table for name in re.findall(r"`(\w+)`", row[1])}
    assert documented == set(TogetherCopyResource.model_fields)  # all fields, no others
    assert per_run == set(CampaignCopyConfig.model_fields)
    assert per_run <= documented
