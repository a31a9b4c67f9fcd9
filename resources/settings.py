"""Every setting of the pipeline in one typed object, read from the environment once.

Nothing here runs at import time: `PipelineSettings.from_env()` is called by the code
location's entry point (and the `marketing` commands), and tests build settings directly.

One loader for the whole model, derived from its fields, rather than pydantic-settings:
the variable names are the operators' contract (the ingest policy's fields are top-level
`MARKETING_*` names, the thresholds are `MARKETING_PATTERN_*`, not pydantic-settings'
nested `MARKETING_PATTERN_THRESHOLDS__*`), an unknown `MARKETING_*` variable must be an
error (pydantic-settings ignores environment variables it does not know), and building
`PipelineSettings(...)` in a test or the demo must not read the process environment (a
`BaseSettings` would, on every construction).
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from resources.demo_files import DEMO_DIR
from transforms.ingest_policy import IngestPolicy
from transforms.thresholds import PatternThresholds

ENV_PREFIX = "MARKETING_"
# The read API owns and validates its `MARKETING_API_*` variables (api/settings.py).
OWN_PREFIX_OF_THE_API = "MARKETING_API_"
# `MARKETING_*` variables that are not settings of the code location, with who reads them:
# known, so that setting them never stops the pipeline from loading.
READ_ELSEWHERE: dict[str, str] = {
    "MARKETING_UI_STOP_TIMEOUT_S": "pipelines/supervisor.py (`marketing ui`)",
    "MARKETING_TEST_PAUSE_AFTER": "resources/fault_points.py (fault tests)",
    "MARKETING_TEST_PAUSE_FILE": "resources/fault_points.py (fault tests)",
    "MARKETING_TEST_DATABASE_URL": "tests/conftest.py and bench/ (the test server)",
    "MARKETING_E2E_BACKFILL": "tests/test_e2e_dagster_dev.py (which backfill route)",
}


class UnknownSettingError(ValueError):
    """A `MARKETING_*` variable that nothing reads: most likely a misspelt setting, which
    would otherwise silently keep its default."""


class PipelineSettings(BaseModel):
    """Where data comes from, where results go, and the partition range.

    Environment variables (all optional; defaults give the embedded DuckDB demo). A
    variable that is empty (or only blanks) counts as unset. Any other `MARKETING_*`
    variable is refused with the closest known names (`MARKETING_API_*` belong to the read
    API, and the few in `READ_ELSEWHERE` to the UI supervisor and the tests):

    - `MARKETING_SOURCE_URL`: the app database (`postgresql://...`, `duckdb:///file`) or a
      directory/glob of CSV or Parquet exports.
    - `MARKETING_SOURCE_SCHEMA`: schema of the source tables (default `public` on
      PostgreSQL, `main` on DuckDB).
    - `MARKETING_WAREHOUSE_URL`: where results are written (`postgresql://...` or
      `duckdb:///file`).
    - `MARKETING_WAREHOUSE_SCHEMA`: the single results schema (default `marketing`).
    - `MARKETING_WAREHOUSE_LOAD_SESSIONS`: PostgreSQL connections that load one day of a
      partitioned table in parallel (default 2, one per core of these machines).
    - `MARKETING_STAGING_DIR`: where validated transactions are staged as daily Parquet
      (a local path or an object-store URI Polars can write).
    - `MARKETING_FIRST_PARTITION_DATE`: the first daily partition (YYYY-MM-DD).
    - `MARKETING_FUTURE_TOLERANCE_MINUTES`: clock skew allowed before a timestamp counts as
      "in the future" (default 5).
    - `MARKETING_MAX_REJECTED_SHARE`: a day whose rejected share is above this (default
      0.5), or that keeps no row of a non-empty day, fails ingest's blocking check.
    - `MARKETING_ALLOW_EMPTYING_DAYS`: `1` lets a re-ingest replace a staged day that held
      rows by an empty one (default: refused, as a header-only or truncated export would).
    - `MARKETING_ASSET_OWNER`: the owner every asset shows in the Dagster UI (a
      `team:name` or an email; default `team:marketing-data`).
    - `MARKETING_ALERT_WEBHOOK_URL`: where the alerting sensors also POST each alert
      (a secret: never logged).
    - `MARKETING_<FIELD>` of `IngestPolicy` (`MARKETING_SOURCE_TIME_ZONE`,
      `MARKETING_NAIVE_TIMESTAMPS`, `MARKETING_SUB_CENT_AMOUNTS`, `MARKETING_BASE_CURRENCY`,
      `MARKETING_CURRENCY_RATES`, `MARKETING_UNKNOWN_USERS`, `MARKETING_USER_IDS`): how
      ingest treats ambiguous values (transforms/ingest_policy.py).
    - `MARKETING_PATTERN_<FIELD>` of `PatternThresholds`: pattern thresholds
      (transforms/thresholds.py); the lookback among them shapes the asset graph (the
      profiles' partition mapping).
    """

    model_config = ConfigDict(frozen=True)

    # Nested models whose fields are variables of their own, under these prefixes.
    ENV_GROUPS: ClassVar[dict[str, str]] = {
        "ingest_policy": ENV_PREFIX,
        "pattern_thresholds": "MARKETING_PATTERN_",
    }

    source_url: str = f"duckdb:///{DEMO_DIR}/source.duckdb"
    source_schema: str | None = None
    warehouse_url: str = f"duckdb:///{DEMO_DIR}/warehouse.duckdb"
    warehouse_schema: str = "marketing"
    warehouse_load_sessions: int = Field(default=2, ge=1, le=16)
    staging_dir: str = str(DEMO_DIR / "staged")
    first_partition_date: dt.date = dt.date(2026, 1, 1)
    future_tolerance_minutes: int = Field(default=5, ge=0)
    max_rejected_share: float = Field(default=0.5, ge=0, le=1)
    allow_emptying_days: bool = False
    asset_owner: str = "team:marketing-data"
    alert_webhook_url: SecretStr | None = None
    ingest_policy: IngestPolicy = Field(default_factory=IngestPolicy)
    pattern_thresholds: PatternThresholds = Field(default_factory=PatternThresholds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        """Settings from `MARKETING_*` variables, keeping defaults for unset ones; raises
        `UnknownSettingError` for a `MARKETING_*` variable nothing reads."""
        env = os.environ if environ is None else environ
        variables = environment_variables()
        unknown = sorted(name for name in env if _unknown(name, variables))
        if unknown:
            raise UnknownSettingError(_unknown_message(unknown, variables))
        values: dict[str, Any] = {group: {} for group in cls.ENV_GROUPS}
        for name, (group, field) in variables.items():
            raw = (env.get(name) or "").strip()
            if raw:
                (values[group] if group else values)[field] = raw
        return cls.model_validate(values)

    def to_env(self) -> dict[str, str]:
        """The variables from which `from_env` rebuilds exactly these settings (unset
        optional fields left out), for a subprocess or a test that exports a deployment.
        Holds the webhook URL in clear: a secret, like the environment it recreates."""
        env = {}
        for name, (group, field) in environment_variables().items():
            value = getattr(getattr(self, group) if group else self, field)
            text = _as_text(value)
            if text:
                env[name] = text
        return env


@cache
def environment_variables() -> dict[str, tuple[str | None, str]]:
    """Every variable the settings read: name -> (nested model or None, field)."""
    variables: dict[str, tuple[str | None, str]] = {}
    groups = PipelineSettings.ENV_GROUPS
    for field in PipelineSettings.model_fields:
        if field not in groups:
            variables[ENV_PREFIX + field.upper()] = (None, field)
    for group, prefix in groups.items():
        model = PipelineSettings.model_fields[group].annotation
        assert model is not None and issubclass(model, BaseModel)
        for field in model.model_fields:
            name = prefix + field.upper()
            if name in variables:  # two fields may never share a variable
                raise TypeError(f"{name} would set both {variables[name]} and {group}.{field}")
            variables[name] = (group, field)
    return variables


def _unknown(name: str, variables: Mapping[str, object]) -> bool:
    return (name.startswith(ENV_PREFIX) and not name.startswith(OWN_PREFIX_OF_THE_API)
            and name not in variables and name not in READ_ELSEWHERE)


def _unknown_message(unknown: list[str], variables: Mapping[str, object]) -> str:
    known = sorted([*variables, *READ_ELSEWHERE])
    # Compared without the common prefix, which would make every name look close.
    by_suffix = {name.removeprefix(ENV_PREFIX): name for name in known}
    lines = []
    for name in unknown:
        close = [by_suffix[suffix] for suffix in difflib.get_close_matches(
            name.removeprefix(ENV_PREFIX), list(by_suffix), n=3, cutoff=0.6)]
        if close:
            hint = f"did you mean {close[0]}?" + (
                f" (also close: {', '.join(close[1:])})" if close[1:] else "")
        else:
            hint = f"no known variable is close; known: {', '.join(known)}"
        lines.append(f"unknown setting {name}: {hint}")
    return ("\n".join(lines) + "\nEvery MARKETING_* variable must be one the pipeline reads "
            "(docs/configuration.md), so that a misspelt one cannot silently keep a default; "
            "unset it or correct its name.")


def _as_text(value: object) -> str:
    """A field's value as `from_env` reads it back."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):  # currency rates: CODE=RATE,...
        return ",".join(f"{code}={rate!r}" for code, rate in sorted(value.items()))
    return str(value)
