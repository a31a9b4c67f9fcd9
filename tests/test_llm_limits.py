"""Bounded time for a whole copy step: the circuit breaker and the step deadline, against the
fake Together server over real HTTP through the real SDK.

The assertions count requests the server received and read outcomes and reasons; none
measures seconds. Where a request must fail by timing out, the fake hangs (it never answers),
so the client's timeout fires however busy the machine is.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devkit.fake_together import (
    FakeTogether,
    Reply,
    contradicting_numbers,
    hanging,
    html_page,
    rate_limited,
    server_error,
)
from resources.copywriter import generate_copies_sync
from transforms.copy_prompt import CampaignBrief, Offer
from transforms.copy_results import CopySettings, InMemoryCopyCache

HANG_GUARD_S = 300  # only a broken deadline or breaker comes anywhere near this


def brief(i: int) -> CampaignBrief:
    return CampaignBrief(
        campaign_id=f"camp-{i}",
        campaign_name=f"Discount {i}",
        campaign_type="discount",
        offer=Offer(kind="percent_off", value=10 + i, label=f"{10 + i}% off everything"),
        target_patterns=["frequent_shopper"],
        audience_size=800,
    )


def settings_for(fake: FakeTogether, **changes: object) -> CopySettings:
    values: dict[str, object] = {
        "api_key": "test-key-0000", "base_url": fake.base_url, "timeout_s": 5.0,
        "max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.02,
    }
    values.update(changes)
    return CopySettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def failing() -> Iterator[FakeTogether]:
    with FakeTogether(default=server_error(503)) as server:
        yield server


def test_breaker_opens_after_n_failures_in_a_row_and_sends_nothing_more(
    failing: FakeTogether,
) -> None:
    settings = settings_for(failing, max_concurrency=1, circuit_breaker_failures=3)
    run = generate_copies_sync([brief(i) for i in range(10)], settings)

    assert failing.calls == settings.circuit_breaker_failures
    assert run.stats["calls_made"] == failing.calls
    assert run.stats["stopped_by"] == "circuit_open"
    assert {r.copy_source for r in run.results} == {"template"}
    # The first campaign's 4th attempt was the one refused: every campaign has the reason.
    assert {r.fallback_reason for r in run.results} == {
        "circuit_open: 3 consecutive HTTP 5xx/408/409 or connection errors, no further "
        "requests (last: HTTP 503)"
    }


def test_with_requests_in_flight_none_is_sent_after_the_breaker_opens(
    failing: FakeTogether,
) -> None:
    settings = settings_for(failing, max_concurrency=5, circuit_breaker_failures=5)
    run = generate_copies_sync([brief(i) for i in range(200)], settings)

    # When the 5th failure arrives at most 4 other requests are in flight; after it none.
    assert failing.calls <= settings.circuit_breaker_failures + settings.max_concurrency - 1
    # Requests started: those in flight when it opened are abandoned, and one abandoned
    # while being written may not have reached the server.
    assert failing.calls <= run.stats["calls_made"] <= failing.calls + settings.max_concurrency
    assert run.stats["template"] == 200
    reasons = run.stats["fallback_reasons"]
    circuit = sum(count for reason, count in reasons.items() if reason.startswith("circuit_open"))
    assert circuit >= 200 - failing.calls


@pytest.mark.timeout(HANG_GUARD_S)
def test_opening_the_breaker_abandons_the_requests_in_flight() -> None:
    with FakeTogether(default=server_error(503)) as fake:
        fake.enqueue(*[hanging()] * 4)  # four requests hang; the fifth campaign gets 503s
        # No client timeout that could end the hanging requests: only the breaker can
        # (if it did not, the hang guard would fail the test).
        settings = settings_for(fake, timeout_s=10 * HANG_GUARD_S, max_concurrency=5,
                                circuit_breaker_failures=2)
        run = generate_copies_sync([brief(i) for i in range(5)], settings)
        assert fake.calls == 6  # the four hanging, a 503 and its retry's 503
    assert run.stats["retries"] == 1  # the failing campaign's; none after the breaker opened
    assert all(r.fallback_reason.startswith("circuit_open: 2 consecutive HTTP 5xx")
               for r in run.results)


@pytest.mark.timeout(HANG_GUARD_S)
def test_timeouts_open_the_breaker_too() -> None:
    with FakeTogether(default=hanging()) as fake:
        settings = settings_for(fake, timeout_s=0.2, max_concurrency=1,
                                circuit_breaker_failures=2)
        run = generate_copies_sync([brief(i) for i in range(6)], settings)
        assert fake.calls == 2
    assert {r.fallback_reason for r in run.results} == {
        "circuit_open: 2 consecutive timeouts, no further requests "
        "(last: timeout (0.2 s per request))"
    }


def test_systemic_client_errors_open_the_breaker() -> None:
    with FakeTogether(default=Reply(status=401, content="Invalid API key")) as fake:
        settings = settings_for(fake, max_concurrency=1, circuit_breaker_failures=3)
        run = generate_copies_sync([brief(i) for i in range(8)], settings)
        assert fake.calls == 3  # one request each for three campaigns, then none
    reasons = [r.fallback_reason for r in run.results]
    assert reasons[:3] == ["HTTP 401 (not retryable): Invalid API key"] * 3
    assert all(reason.startswith("circuit_open: 3 consecutive HTTP 401/403/404")
               for reason in reasons[3:])


def test_non_json_answers_open_the_breaker() -> None:
    with FakeTogether(default=html_page()) as fake:
        settings = settings_for(fake, max_concurrency=1, circuit_breaker_failures=4)
        run = generate_copies_sync([brief(i) for i in range(5)], settings)
        assert fake.calls == 4
    assert all(r.fallback_reason.startswith("circuit_open: 4 consecutive HTTP 200 answers "
                                            "without a chat completion") for r in run.results)


def test_a_success_resets_the_count() -> None:
    with FakeTogether() as fake:
        # Two failures, an answer (invalid: it gets a repair request), two more failures,
        # then valid copy: four failures of one kind, never three in a row.
        fake.enqueue(server_error(500), server_error(502), contradicting_numbers(),
                     server_error(500), server_error(502))
        settings = settings_for(fake, max_concurrency=1, circuit_breaker_failures=3)
        run = generate_copies_sync([brief(0)], settings)
        assert fake.calls == 6
    assert run.results[0].copy_source == "llm"
    assert run.stats["stopped_by"] is None
    assert (run.stats["repairs"], run.stats["retries"]) == (1, 4)


def test_rate_limits_do_not_open_the_breaker() -> None:
    with FakeTogether() as fake:
        fake.enqueue(*[rate_limited(retry_after=0.01)] * 4)
        settings = settings_for(fake, max_concurrency=1, circuit_breaker_failures=2,
                                max_retries=4)
        run = generate_copies_sync([brief(0)], settings)
        assert fake.calls == 5
    assert run.results[0].copy_source == "llm"


def test_breaker_off_keeps_every_retry(failing: FakeTogether) -> None:
    settings = settings_for(failing, max_concurrency=1, circuit_breaker_failures=0,
                            max_retries=1)
    run = generate_copies_sync([brief(i) for i in range(3)], settings)
    assert failing.calls == 3 * (settings.max_retries + 1)
    assert run.stats["stopped_by"] is None


@pytest.mark.timeout(HANG_GUARD_S)
def test_deadline_gives_every_remaining_campaign_template_copy_with_the_reason() -> None:
    with FakeTogether(default=hanging()) as fake:
        settings = settings_for(fake, timeout_s=120.0, max_retries=0, deadline_s=0.5,
                                circuit_breaker_failures=0)
        run = generate_copies_sync([brief(i) for i in range(12)], settings)
        assert fake.calls <= settings.max_concurrency  # the rest never left the queue
    assert len(run.results) == 12
    assert {r.copy_source for r in run.results} == {"template"}
    assert {r.fallback_reason for r in run.results} == {
        "deadline: 0.5 s for this step's 12 prompts ran out"
    }
    assert run.stats["stopped_by"] == "deadline"
    assert run.stats["deadline_s"] == 0.5
    assert fake.calls <= run.stats["calls_made"]  # one cancelled mid-write may not arrive


@pytest.mark.timeout(HANG_GUARD_S)
def test_deadline_leaves_cached_copy_alone() -> None:
    cache = InMemoryCopyCache()
    with FakeTogether() as fake:
        generate_copies_sync([brief(0), brief(1)], settings_for(fake), cache)
    with FakeTogether(default=hanging()) as fake:
        settings = settings_for(fake, timeout_s=120.0, deadline_s=0.5,
                                circuit_breaker_failures=0)
        run = generate_copies_sync([brief(i) for i in range(4)], settings, cache)
    assert [r.copy_source for r in run.results] == ["cache", "cache", "template", "template"]
    assert run.stats["cache_hits"] == 2
    assert run.results[2].fallback_reason == "deadline: 0.5 s for this step's 2 prompts ran out"


def test_default_deadline_scales_with_prompts_over_concurrency() -> None:
    settings = CopySettings()
    assert settings.step_deadline_s(0) == settings.deadline_base_s
    grown = settings.step_deadline_s(200) - settings.step_deadline_s(100)
    assert grown == pytest.approx(100 * settings.deadline_per_campaign_s
                                  / settings.max_concurrency)
    wider = CopySettings(max_concurrency=10)
    assert wider.step_deadline_s(200) < settings.step_deadline_s(200)
    assert CopySettings(deadline_s=7).step_deadline_s(10_000) == 7


@pytest.mark.parametrize("bad", [{"deadline_s": 0}, {"deadline_base_s": -1},
                                 {"circuit_breaker_failures": -1},
                                 {"response_format": "yaml"}])
def test_limits_that_make_no_sense_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CopySettings(**bad)  # type: ignore[arg-type]
