"""Secrets in a URL never reach metadata, logs, the run database or the warehouse.

`redact_url` (resources/connection_url.py) hides three shapes: the password of
`scheme://user:password@host`, secret-like query parameters (`?api_key=...`) and the same
names in libpq key=value DSNs. The end-to-end test plants a password and a token in
`TOGETHER_BASE_URL` (pointing at the fake server, so they are really used), materializes the
copy asset through a Dagster instance on a temporary directory with the SDK's and httpx's
loggers captured into the event log at DEBUG, and then searches every event, the run
config, the job snapshot and every warehouse table for the planted strings.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from devkit.fake_together import FakeTogether, Reply
from resources.connection_url import redact_url, url_secrets
from resources.llm import TogetherCopyResource
from resources.warehouse import Warehouse
from tests.test_llm_asset import OFFERS, materialize_copy, seed_campaigns

PASSWORD = "PW-planted-5e1d"
TOKEN = "TOKEN-planted-9b7c"
API_KEY = "sk-planted-key-3141"
PLANTED = (PASSWORD, TOKEN, API_KEY)
DAY = dt.date(2026, 1, 5)
LOGGERS = ("httpx", "together", "resources.copy_client", "resources.copywriter")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/marketing", "postgresql://app:***@db:5432/marketing"),
        ("postgresql://app@db/marketing", "postgresql://app@db/marketing"),
        ("https://proxy.example/v1?api_key=abc123&model=m&access_token=t0k#x",
         "https://proxy.example/v1?api_key=***&model=m&access_token=***#x"),
        ("host=db port=5432 user=app password=s3cret dbname=marketing",
         "host=db port=5432 user=app password=*** dbname=marketing"),
        ("host=db password='with space' sslmode=require",
         "host=db password=*** sslmode=require"),
        ("http://u:p@ss/w@host:1/x?secret=y", "http://u:***@host:1/x?secret=***"),
        ("duckdb:///data/demo/warehouse.duckdb", "duckdb:///data/demo/warehouse.duckdb"),
        ("connection failed (https://u:pw1234@h:9/?token=zz9) after 3 retries",
         "connection failed (https://u:***@h:9/?token=***) after 3 retries"),
    ],
)  # fmt: skip
def test_redact_url_hides_all_three_shapes(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_url_secrets_are_the_hidden_values() -> None:
    found = url_secrets(f"http://me:{PASSWORD}@h/?api_key={TOKEN}&model=m")
    assert set(found) == {PASSWORD, TOKEN}
    assert url_secrets("https://api.together.ai") == []


@pytest.fixture
def debug_loggers() -> Iterator[None]:
    """The SDK and httpx log request URLs at DEBUG and INFO: let them, for the test."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def _planted_url(fake: FakeTogether) -> str:
    host = fake.base_url.removeprefix("http://")
    return f"http://copyuser:{PASSWORD}@{host}/?api_key={TOKEN}&region=eu"


def _warehouse_text(warehouse: Warehouse) -> str:
    """Every row of every table of the warehouse, as text."""
    tables = warehouse.read(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = :schema",
        {"schema": warehouse.schema_name})["table_name"].to_list()
    assert "campaign_copy" in tables and "llm_copy_cache" in tables
    return "\n".join(str(warehouse.read(f"SELECT * FROM {table}").rows()) for table in tables)


def test_planted_url_secrets_appear_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, debug_loggers: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    warehouse = Warehouse(url=f"duckdb:///{tmp_path}/warehouse.duckdb")
    warehouse.migrate()
    seed_campaigns(warehouse, DAY, OFFERS)
    overrides = {"python_logs": {"managed_python_loggers": list(LOGGERS),
                                 "python_log_level": "DEBUG"}}
    (tmp_path / "dagster_home").mkdir()
    with FakeTogether() as fake, dg.DagsterInstance.local_temp(
        str(tmp_path / "dagster_home"), overrides=overrides
    ) as instance:
        url = _planted_url(fake)
        # A server that echoes the request's credentials in an error (they reach the reason).
        fake.enqueue(Reply(status=403, content=f"token {TOKEN} not valid for {url}"))
        monkeypatch.setenv("TOGETHER_BASE_URL", url)
        monkeypatch.setenv("TOGETHER_API_KEY", API_KEY)
        result = materialize_copy(warehouse, TogetherCopyResource(), DAY, DAY,
                                  instance=instance)
        assert result.success
        # The secrets were really used: the token as a query parameter, the user and
        # password as HTTP basic auth.
        assert all(path.endswith(f"?api_key={TOKEN}&region=eu") for path in fake.paths)
        basic = base64.b64encode(f"copyuser:{PASSWORD}".encode()).decode()
        assert set(fake.authorization) == {f"Basic {basic}"}

        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        events = [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
        stored = {
            "event log": "\n".join(events),
            "run config": serialize_value(run.run_config),
            "run tags": serialize_value(run.tags),
            "job snapshot": serialize_value(instance.get_job_snapshot(run.job_snapshot_id)),
            "warehouse": _warehouse_text(warehouse),
            "python logs": caplog.text,
        }
    assert "Sending HTTP Request" in stored["event log"]  # the SDK's DEBUG log was captured
    assert "copyuser:***@" in stored["event log"]  # with the URL, redacted
    copy = warehouse.read("SELECT copy_source, fallback_reason FROM campaign_copy")
    assert sorted(copy["copy_source"]) == ["llm", "llm", "template"]
    assert "***" in "".join(copy["fallback_reason"].drop_nulls())
    for where, text in stored.items():
        for secret in PLANTED:
            assert secret not in text, f"{secret} found in the {where}"
    materialization = result.asset_materializations_for_node("campaign_copy")[-1]
    assert materialization.metadata["base_url"].value == redact_url(url)
