"""The Dagster resource: key and URL resolution, and the key never leaking anywhere."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import dagster as dg
import pytest
from together import AsyncTogether

from devkit.fake_together import FakeTogether, Reply, malformed_json, server_error
from resources.copywriter import generate_copies_sync
from resources.llm import TogetherCopyResource
from transforms.copy_prompt import CampaignBrief, Offer
from transforms.copy_results import CopySettings, InMemoryCopyCache

SECRET = "sk-SECRET-do-not-log-4711"
ENV_VARS = ("TOGETHER_API_KEY", "TOGETHER_API_KEY_MARKETING", "TOGETHER_BASE_URL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeTogether]:
    with FakeTogether() as server:
        yield server


def brief(i: int) -> CampaignBrief:
    return CampaignBrief(
        campaign_id=f"c{i}",
        campaign_name=f"Cashback {i}",
        campaign_type="cashback",
        offer=Offer(kind="cashback_percent", value=5, label=f"5% cashback on category {i}"),
        target_patterns=["frequent_shopper"],
        audience_size=500,
    )


def test_key_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TogetherCopyResource().resolved_api_key() is None
    monkeypatch.setenv("TOGETHER_API_KEY_MARKETING", "legacy")
    assert TogetherCopyResource().resolved_api_key() == "legacy"
    monkeypatch.setenv("TOGETHER_API_KEY", "  ")
    assert TogetherCopyResource().resolved_api_key() == "legacy"  # blank counts as unset
    monkeypatch.setenv("TOGETHER_API_KEY", "primary")
    assert TogetherCopyResource().resolved_api_key() == "primary"
    assert TogetherCopyResource(api_key="explicit").resolved_api_key() == "explicit"


def test_settings_and_client_follow_the_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOGETHER_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("TOGETHER_API_KEY", "k")
    resource = TogetherCopyResource(model="m", max_concurrency=2, timeout_s=4)
    settings = resource.settings()
    assert (settings.model, settings.max_concurrency, settings.timeout_s) == ("m", 2, 4)
    assert settings.base_url == "http://127.0.0.1:9"
    assert (settings.price_per_million_input_tokens, settings.max_tokens) == (0.88, 700)
    client = resource.build_client()
    assert isinstance(client, AsyncTogether)
    assert str(client.base_url).startswith("http://127.0.0.1:9")
    assert client.max_retries == 0  # the copywriter does its own, counted, retries
    defaults = TogetherCopyResource()
    assert defaults.model == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert (defaults.max_retries, defaults.temperature) == (3, 0.7)


def test_no_key_means_no_client() -> None:
    with pytest.raises(ValueError, match="no API key"):
        TogetherCopyResource().build_client()


def test_key_is_not_in_repr_or_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = TogetherCopyResource(api_key=SECRET)
    for text in (repr(resource), str(resource), repr(resource.settings()),
                 str(resource.public_metadata())):  # fmt: skip
        assert SECRET not in text
    assert resource.public_metadata()["api_key_configured"] is True


def test_key_never_reaches_logs_results_or_stats(
    fake: FakeTogether, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = Reply(status=401, content=f"Invalid API key {SECRET}")  # a server echoing the key
    fake.enqueue(server_error(500), malformed_json(), echo, *[server_error(502)] * 3)
    settings = CopySettings(
        api_key=SECRET, base_url=fake.base_url, max_retries=1, backoff_base_s=0.01
    )
    run = generate_copies_sync([brief(i) for i in range(4)], settings, InMemoryCopyCache())

    assert fake.authorization[0] == f"Bearer {SECRET}"  # it was really sent...
    assert {r.copy_source for r in run.results} == {"llm", "template"}
    assert caplog.records  # ...and the SDK and we did log at DEBUG
    for text in (caplog.text, str(run.stats), str(run.results), repr(settings)):
        assert SECRET not in text
    assert "HTTP 401 (not retryable): Invalid API key ***" in run.stats["fallback_reasons"]


def test_key_stays_out_of_dagster_snapshots_and_event_logs(
    fake: FakeTogether, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOGETHER_API_KEY", SECRET)

    @dg.asset
    def copy_probe(llm: TogetherCopyResource) -> dg.MaterializeResult:
        run = generate_copies_sync([brief(1)], llm.settings())
        metadata = {**run.stats, **llm.public_metadata()}
        metadata["fallback_reasons"] = dg.MetadataValue.json(run.stats["fallback_reasons"])
        return dg.MaterializeResult(metadata=metadata)

    instance = dg.DagsterInstance.ephemeral()
    for resource in (
        TogetherCopyResource(base_url=fake.base_url),
        TogetherCopyResource(api_key=dg.EnvVar("TOGETHER_API_KEY"), base_url=fake.base_url),
    ):
        result = dg.materialize([copy_probe], resources={"llm": resource}, instance=instance)
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        snapshot = instance.get_job_snapshot(run.job_snapshot_id)
        events = instance.all_logs(result.run_id)
        for text in (str(run.run_config), str(snapshot), str(events)):
            assert SECRET not in text
        materialization = result.asset_materializations_for_node("copy_probe")[0]
        assert materialization.metadata["llm"].value == 1  # the key was really used
    assert fake.authorization == [f"Bearer {SECRET}"] * 2
