"""One settings model for the pipeline: every documented variable is read under its name,
and a `MARKETING_*` variable nothing reads is refused, naming it and the close known names."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from resources.settings import (
    READ_ELSEWHERE,
    PipelineSettings,
    UnknownSettingError,
    environment_variables,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Packages whose code may name a variable (the tests also spell deliberate typos).
CODE_PACKAGES = ("pipelines", "assets", "resources", "transforms", "datagen", "bench", "devkit")


def test_a_known_variable_of_each_group_is_read() -> None:
    settings = PipelineSettings.from_env({
        "MARKETING_WAREHOUSE_LOAD_SESSIONS": "3",          # top level
        "MARKETING_ALLOW_EMPTYING_DAYS": "1",
        "MARKETING_CURRENCY_RATES": "eur=1.08, GBP=1.27",  # ingest policy, flat names
        "MARKETING_UNKNOWN_USERS": "reject",
        "MARKETING_PATTERN_SEASONAL_RATIO": "2.5",         # pattern thresholds
    })
    assert settings.warehouse_load_sessions == 3 and settings.allow_emptying_days
    assert settings.ingest_policy.currency_rates == {"EUR": 1.08, "GBP": 1.27}
    assert settings.ingest_policy.unknown_users == "reject"
    assert settings.pattern_thresholds.seasonal_ratio == 2.5
    assert settings.pattern_thresholds.weekend_share == 0.7  # the others keep defaults


def test_an_empty_variable_counts_as_unset() -> None:
    settings = PipelineSettings.from_env({"MARKETING_WAREHOUSE_SCHEMA": "",
                                          "MARKETING_SOURCE_TIME_ZONE": "  ",
                                          "MARKETING_PATTERN_INACTIVE_DAYS": ""})
    assert settings == PipelineSettings()


def test_an_unknown_variable_is_refused_with_its_name_and_the_close_known_ones() -> None:
    with pytest.raises(UnknownSettingError) as refused:
        PipelineSettings.from_env({"MARKETING_WAREHOUSE_SCEMA": "x",
                                   "MARKETING_PATTERN_WEEKEND_SHAR": "0.6",
                                   "MARKETING_SOURCE_URL": "duckdb:///s.duckdb"})
    message = str(refused.value)
    assert "unknown setting MARKETING_WAREHOUSE_SCEMA: did you mean " \
           "MARKETING_WAREHOUSE_SCHEMA? (also close: " in message
    assert "unknown setting MARKETING_PATTERN_WEEKEND_SHAR: did you mean " \
           "MARKETING_PATTERN_WEEKEND_SHARE?" in message
    assert "MARKETING_SOURCE_URL:" not in message  # known ones are not listed as unknown
    with pytest.raises(UnknownSettingError, match="MARKETING_NONSENSE: no known variable is "
                                                  "close; known: MARKETING_ALERT_WEBHOOK_URL"):
        PipelineSettings.from_env({"MARKETING_NONSENSE": "1"})


def test_the_process_environment_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETING_FIRST_PARTITON_DATE", "2026-02-01")
    with pytest.raises(UnknownSettingError, match="MARKETING_FIRST_PARTITION_DATE"):
        PipelineSettings.from_env()


def test_the_apis_and_other_readers_variables_are_not_refused() -> None:
    settings = PipelineSettings.from_env({
        "MARKETING_API_JWT_SECRET": "s", "MARKETING_API_SOMETHING_NEW": "1",
        **{name: "1" for name in READ_ELSEWHERE},
    })
    assert settings == PipelineSettings()


def test_settings_round_trip_through_the_environment() -> None:
    settings = PipelineSettings.from_env({
        "MARKETING_SOURCE_SCHEMA": "app", "MARKETING_FIRST_PARTITION_DATE": "2025-12-01",
        "MARKETING_MAX_REJECTED_SHARE": "0.25", "MARKETING_ALLOW_EMPTYING_DAYS": "true",
        "MARKETING_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "MARKETING_CURRENCY_RATES": "EUR=1.08", "MARKETING_PATTERN_LOOKBACK_DAYS": "60",
    })
    assert settings.first_partition_date == dt.date(2025, 12, 1)
    exported = settings.to_env()
    assert set(exported) <= set(environment_variables())
    assert PipelineSettings.from_env(exported) == settings
    assert PipelineSettings.from_env(PipelineSettings().to_env()) == PipelineSettings()


def test_every_variable_is_documented() -> None:
    """docs/configuration.md names every top-level and ingest variable, and the prefix of
    the thresholds (each field is documented in docs/patterns.md)."""
    documented = (REPO_ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name, (group, _) in environment_variables().items()
               if group != "pattern_thresholds" and f"`{name}`" not in documented]
    assert missing == []
    assert "`MARKETING_PATTERN_<FIELD>`" in documented
    assert all(f"`{name}`" in documented for name in READ_ELSEWHERE)


def test_every_variable_the_code_or_docs_name_is_known() -> None:
    """A name spelt in code or docs but unknown to the model would be refused at start-up
    (the error message quoted in the docs is the one typo allowed)."""
    texts = [path for package in CODE_PACKAGES for path in (REPO_ROOT / package).rglob("*.py")]
    texts += [*(REPO_ROOT / "docs").glob("*.md"), REPO_ROOT / "README.md",
              REPO_ROOT / "Makefile", REPO_ROOT / ".ci" / "run"]
    known = {*environment_variables(), *READ_ELSEWHERE}
    unknown = {f"{path.relative_to(REPO_ROOT)}: {name}"
               for path in texts
               for name in re.findall(r"(?<!unknown setting )\bMARKETING_[A-Z0-9_]*[A-Z0-9]\b",
                                     path.read_text())
               if not name.startswith("MARKETING_API_") and name not in known
               and name != "MARKETING_OPT_IN_SHARE"}  # datagen's constant, not a variable
    assert unknown == set()


def test_the_other_readers_are_where_the_table_says() -> None:
    for name, where in READ_ELSEWHERE.items():
        path = REPO_ROOT / where.split()[0]
        assert name in path.read_text(), f"{name} is not read in {path}"
