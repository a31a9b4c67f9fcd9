"""The copywriter against a fake Together server over real HTTP, through the real SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from devkit.fake_together import (
    FakeTogether,
    Reply,
    contradicting_numbers,
    long_subject_line,
    malformed_json,
    rate_limited,
    server_error,
    slow,
)
from resources.copywriter import generate_copies_sync
from transforms.copy_prompt import CampaignBrief, Offer
from transforms.copy_results import CachedCopy, CopySettings, InMemoryCopyCache
from transforms.copy_templates import template_copy
from transforms.copy_validation import CampaignCopy, validate_copy


@pytest.fixture
def fake() -> Iterator[FakeTogether]:
    with FakeTogether() as server:
        yield server


def brief(i: int = 0, **changes: object) -> CampaignBrief:
    fields: dict[str, object] = {
        "campaign_id": f"camp-{i}",
        "campaign_name": f"High Spender VIP {i}",
        "campaign_type": "vip",
        "offer": Offer(kind="percent_off", value=20, label="20% off premium merchants"),
        "target_patterns": ["high_spender"],
        "audience_size": 1234,
        "segment_facts": {"avg_spend": 80.0 + i, "top_category": "dining"},
    }
    fields.update(changes)
    return CampaignBrief.model_validate(fields)


def settings_for(fake: FakeTogether, **changes: object) -> CopySettings:
    """Fast settings for tests: tiny backoffs, short timeout."""
    values: dict[str, object] = {
        "api_key": "test-key",
        "base_url": fake.base_url,
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    values.update(changes)
    return CopySettings(**values)  # type: ignore[arg-type]


def test_happy_path_calls_once_per_campaign_and_stores_provenance(fake: FakeTogether) -> None:
    briefs = [brief(i) for i in range(3)]
    run = generate_copies_sync(briefs, settings_for(fake), InMemoryCopyCache())

    assert fake.calls == 3
    assert [r.campaign_id for r in run.results] == ["camp-0", "camp-1", "camp-2"]
    for result in run.results:
        assert result.copy_source == "llm"
        assert result.fallback_reason is None
        assert result.model == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
        assert len(result.prompt_hash) == 64
        assert result.tokens_in > 0 and result.tokens_out > 0
        assert "20%" in result.headline
    assert run.stats["llm"] == 3 and run.stats["calls_made"] == 3
    assert run.stats["tokens_in"] == sum(r.tokens_in for r in run.results)
    request = fake.requests[0]
    assert request["response_format"] == {"type": "json_object"}
    assert request["model"] == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert request["temperature"] == 0.7 and request["max_tokens"] == 700
    assert fake.authorization[0] == "Bearer test-key"


def test_cost_is_tokens_times_configured_price(fake: FakeTogether) -> None:
    settings = settings_for(
        fake, price_per_million_input_tokens=1.0, price_per_million_output_tokens=2.0
    )
    run = generate_copies_sync([brief()], settings)
    expected = (run.stats["tokens_in"] * 1.0 + run.stats["tokens_out"] * 2.0) / 1e6
    assert run.stats["estimated_cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert run.stats["latency_p50_ms"] is not None and run.stats["latency_p95_ms"] is not None


def test_rate_limit_is_retried_after_the_servers_retry_after(fake: FakeTogether) -> None:
    fake.enqueue(rate_limited(retry_after=0.3))
    started = time.perf_counter()
    run = generate_copies_sync([brief()], settings_for(fake))

    assert time.perf_counter() - started >= 0.3
    assert fake.calls == 2
    assert run.results[0].copy_source == "llm"
    assert run.stats["retries"] == 1


def test_server_errors_until_retries_run_out_fall_back_to_template(fake: FakeTogether) -> None:
    fake.enqueue(*[server_error(500)] * 4)
    run = generate_copies_sync([brief()], settings_for(fake, max_retries=3))

    result = run.results[0]
    assert fake.calls == 4
    assert result.copy_source == "template"
    assert result.fallback_reason == "HTTP 500 after 3 retries"
    assert result.model is None
    assert run.stats["template"] == 1 and run.stats["fallback_reasons"] == {
        "HTTP 500 after 3 retries": 1
    }


def test_client_errors_are_not_retried(fake: FakeTogether) -> None:
    fake.enqueue(Reply(status=401))
    run = generate_copies_sync([brief()], settings_for(fake))

    assert fake.calls == 1
    assert run.results[0].copy_source == "template"
    assert run.results[0].fallback_reason.startswith("HTTP 401 (not retryable)")


def test_a_timeout_is_retried_and_then_succeeds(fake: FakeTogether) -> None:
    fake.enqueue(slow(1.5))
    run = generate_copies_sync([brief()], settings_for(fake, timeout_s=0.3))

    assert fake.calls == 2
    assert run.results[0].copy_source == "llm"
    assert run.stats["retries"] == 1


def test_timeouts_until_retries_run_out_fall_back_to_template(fake: FakeTogether) -> None:
    fake.enqueue(*[slow(1.5)] * 3)
    run = generate_copies_sync([brief()], settings_for(fake, timeout_s=0.3, max_retries=2))

    assert fake.calls == 3
    assert run.results[0].copy_source == "template"
    assert run.results[0].fallback_reason == "timeout (0.3 s per request) after 2 retries"


def test_malformed_json_is_repaired_once(fake: FakeTogether) -> None:
    fake.enqueue(malformed_json())
    cache = InMemoryCopyCache()
    run = generate_copies_sync([brief()], settings_for(fake), cache)

    assert fake.calls == 2
    assert run.results[0].copy_source == "llm"
    assert run.stats["repairs"] == 1 and run.stats["repaired"] == 1
    repair_request = fake.requests[1]["messages"]
    assert repair_request[-2]["role"] == "assistant"
    assert "not valid JSON" in repair_request[-1]["content"]
    assert len(cache.records) == 1  # repaired copy is valid copy: cached


def test_figures_contradicting_the_offer_are_repaired(fake: FakeTogether) -> None:
    fake.enqueue(contradicting_numbers())
    run = generate_copies_sync([brief()], settings_for(fake))

    assert fake.calls == 2
    assert run.results[0].copy_source == "llm"
    repair = fake.requests[1]["messages"][-1]["content"]
    assert "'30%'" in repair and "'2023'" in repair


def test_figures_contradicting_the_offer_twice_fall_back(fake: FakeTogether) -> None:
    fake.enqueue(contradicting_numbers(), contradicting_numbers())
    cache = InMemoryCopyCache()
    run = generate_copies_sync([brief()], settings_for(fake), cache)

    result = run.results[0]
    assert fake.calls == 2
    assert result.copy_source == "template"
    assert result.fallback_reason.startswith("invalid output after repair: headline: the figure")
    assert "'30%'" in result.fallback_reason
    assert not validate_copy(CampaignCopy(**_copy_fields(result)), brief().offer)
    assert cache.records == {}  # template copy is never cached
    assert result.tokens_in > 0  # both failed calls were billed and are reported


def test_overlong_subject_line_twice_falls_back_with_the_reason(fake: FakeTogether) -> None:
    fake.enqueue(long_subject_line(), long_subject_line())
    run = generate_copies_sync([brief()], settings_for(fake))

    reason = run.results[0].fallback_reason
    assert run.results[0].copy_source == "template"
    assert reason == (
        "invalid output after repair: subject line 2 longer than 60 characters (has 72)"
    )


def test_failed_repair_call_falls_back(fake: FakeTogether) -> None:
    fake.enqueue(malformed_json(), *[server_error(503)] * 2)
    run = generate_copies_sync([brief()], settings_for(fake, max_retries=1))

    reason = run.results[0].fallback_reason
    assert run.results[0].copy_source == "template"
    assert reason.startswith("repair call failed: HTTP 503 after 1 retries (first answer:")


def test_rerun_is_served_from_cache_without_calls(fake: FakeTogether) -> None:
    briefs = [brief(i) for i in range(4)]
    cache = InMemoryCopyCache()
    first = generate_copies_sync(briefs, settings_for(fake), cache)
    calls_after_first = fake.calls
    second = generate_copies_sync(briefs, settings_for(fake), cache)

    assert calls_after_first == 4
    assert fake.calls == calls_after_first
    assert second.stats["calls_made"] == 0
    assert second.stats["cache_hits"] == 4 and second.stats["cache"] == 4
    assert second.stats["tokens_in"] == 0 and second.stats["estimated_cost_usd"] == 0
    for old, new in zip(first.results, second.results, strict=True):
        assert new.copy_source == "cache"
        assert (new.headline, new.prompt_hash) == (old.headline, old.prompt_hash)
        assert new.tokens_in == old.tokens_in  # provenance: what the copy cost when made


def test_changing_the_model_misses_the_cache(fake: FakeTogether) -> None:
    cache = InMemoryCopyCache()
    generate_copies_sync([brief()], settings_for(fake), cache)
    run = generate_copies_sync([brief()], settings_for(fake, model="other/model"), cache)
    assert fake.calls == 2 and run.results[0].copy_source == "llm"


def test_cached_copy_that_now_fails_validation_is_regenerated(fake: FakeTogether) -> None:
    cache = InMemoryCopyCache()
    first = generate_copies_sync([brief()], settings_for(fake), cache)
    key = first.results[0].prompt_hash
    stale = cache.records[key]
    bad = dict(stale.response_json, headline="Now 50% off")
    cache.put_many([CachedCopy(key, stale.model, bad, 1, 1, stale.created_at)])

    run = generate_copies_sync([brief()], settings_for(fake), cache)
    assert fake.calls == 2 and run.results[0].copy_source == "llm"
    assert "50%" not in cache.records[key].response_json["headline"]


def test_identical_briefs_share_one_call(fake: FakeTogether) -> None:
    run = generate_copies_sync([brief(1), brief(1, campaign_id="other")], settings_for(fake))
    assert fake.calls == 1
    assert [r.campaign_id for r in run.results] == ["camp-1", "other"]
    assert run.results[0].headline == run.results[1].headline


def test_concurrency_never_exceeds_the_limit() -> None:
    with FakeTogether(latency_s=0.2) as fake:
        run = generate_copies_sync([brief(i) for i in range(20)], settings_for(fake))
    assert fake.calls == 20
    assert fake.max_in_flight <= 5
    assert fake.max_in_flight == 5  # and the limit is actually used
    assert run.stats["llm"] == 20


def test_no_api_key_writes_templates_without_calls(fake: FakeTogether) -> None:
    run = generate_copies_sync(
        [brief(i) for i in range(3)], settings_for(fake, api_key=None), InMemoryCopyCache()
    )
    assert fake.calls == 0
    assert {r.copy_source for r in run.results} == {"template"}
    assert {r.fallback_reason for r in run.results} == {"no API key"}
    assert run.stats["calls_made"] == 0 and run.stats["estimated_cost_usd"] == 0
    assert run.results[0].headline == template_copy(brief(0)).headline


def test_no_api_key_still_serves_cached_copy(fake: FakeTogether) -> None:
    cache = InMemoryCopyCache()
    generate_copies_sync([brief()], settings_for(fake), cache)
    run = generate_copies_sync([brief(), brief(9)], settings_for(fake, api_key=None), cache)
    assert fake.calls == 1
    assert [r.copy_source for r in run.results] == ["cache", "template"]


def test_json_schema_response_format(fake: FakeTogether) -> None:
    run = generate_copies_sync([brief()], settings_for(fake, response_format="json_schema"))
    response_format = fake.requests[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "campaign_copy"
    assert "subject_lines" in response_format["json_schema"]["schema"]["properties"]
    assert run.results[0].copy_source == "llm"


def test_unreachable_server_falls_back() -> None:
    with FakeTogether() as fake:
        base_url = fake.base_url
    settings = CopySettings(
        api_key="k", base_url=base_url, max_retries=1, backoff_base_s=0.01, timeout_s=1.0
    )
    run = generate_copies_sync([brief()], settings)
    assert run.results[0].copy_source == "template"
    assert run.results[0].fallback_reason.startswith("connection error")
    assert run.results[0].fallback_reason.endswith("after 1 retries")


def test_rows_match_the_campaign_copy_table(fake: FakeTogether) -> None:
    from datetime import date

    run = generate_copies_sync([brief()], settings_for(fake))
    row = run.rows(date(2025, 1, 31))[0]
    assert list(row) == [
        "as_of_date", "campaign_id", "headline", "email_body", "ctas", "subject_lines",
        "social_copy", "copy_source", "fallback_reason", "model", "prompt_hash",
        "prompt_template_version", "tokens_in", "tokens_out", "created_at",
    ]  # fmt: skip
    assert row["as_of_date"] == date(2025, 1, 31) and row["created_at"].tzinfo is not None


def _copy_fields(result: object) -> dict[str, object]:
    return {name: getattr(result, name) for name in CampaignCopy.model_fields}


@pytest.mark.parametrize("bad", [{"max_concurrency": 0}, {"max_retries": -1}, {"timeout_s": 0}])
def test_settings_that_would_hang_or_never_call_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CopySettings(**bad)  # type: ignore[arg-type]
