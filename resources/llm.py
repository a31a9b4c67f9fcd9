"""Dagster resource for the copy LLM: configuration and client construction, no logic.

The copywriting logic (`resources.copywriter`) takes a plain `CopySettings`; this resource
only resolves configuration into one, so the logic is testable without Dagster. The SDK
(`together`) is imported only when a client is built: the code location loads this
resource on every run worker and CLI call, and most of them never talk to the model.

The API key is resolved when the resource is used, never at import time: the field value,
else `TOGETHER_API_KEY`, else `TOGETHER_API_KEY_MARKETING` (the original system's name).
Leave the field unset or give it `dg.EnvVar("TOGETHER_API_KEY")`: a literal string would be
written into the job snapshot that Dagster stores and shows in its UI. The field is hidden
from repr, and nothing here logs or reports it. The base URL is reported only through
`redact_url` (a proxy URL may carry a password or a token).

Every setting documented in docs/llm-copy.md is a field here, so it can be set in code or
in run config (`resources: llm: config:`); the per-run knobs can also be set on the asset
(`ops: campaign_copy: config:`, assets/copy.py), which wins over the resource.
"""

from __future__ import annotations

import enum
import os
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from resources.connection_url import redact_url
from transforms.copy_results import DEFAULT_MODEL, CopySettings

if TYPE_CHECKING:
    from together import AsyncTogether

API_KEY_ENV_VARS = ("TOGETHER_API_KEY", "TOGETHER_API_KEY_MARKETING")
BASE_URL_ENV_VAR = "TOGETHER_BASE_URL"
# Resource fields that go into `CopySettings` unchanged.
COPIED_FIELDS = (
    "timeout_s", "max_retries", "max_concurrency", "temperature", "max_tokens",
    "price_per_million_input_tokens", "price_per_million_output_tokens", "backoff_base_s",
    "backoff_max_s", "retry_after_max_s", "response_format", "deadline_s", "deadline_base_s",
    "deadline_per_campaign_s", "circuit_breaker_failures",
)


class ResponseFormatChoice(enum.Enum):
    """What the request's `response_format` asks for; an enum so that Dagster refuses any
    other value when it checks the run config, before the step starts."""

    json_object = "json_object"
    json_schema = "json_schema"


class TogetherCopyResource(dg.ConfigurableResource):
    """Together AI (or any OpenAI-compatible server) settings for campaign copy."""

    api_key: str | None = Field(
        default=None,
        repr=False,
        description="Together API key; unset means TOGETHER_API_KEY, then "
        "TOGETHER_API_KEY_MARKETING. Without any, template copy is written and no call made.",
    )
    model: str = Field(default=DEFAULT_MODEL, description="Chat model name.")
    base_url: str | None = Field(
        default=None,
        description="Server root without /v1 (e.g. http://localhost:8000); unset means "
        "TOGETHER_BASE_URL, then https://api.together.ai.",
    )
    timeout_s: float = Field(default=30.0, description="Seconds allowed per HTTP request.")
    max_retries: int = Field(default=3, description="Retries on 408/409/429/5xx and timeouts.")
    max_concurrency: int = Field(default=5, description="Requests in flight at most.")
    temperature: float = 0.7
    max_tokens: int = 700
    price_per_million_input_tokens: float = Field(
        default=0.88, description="USD; Together's Llama 3.3 70B Turbo price."
    )
    price_per_million_output_tokens: float = Field(
        default=0.88, description="USD; Together's Llama 3.3 70B Turbo price."
    )
    backoff_base_s: float = Field(default=1.0, description="First retry delay, doubling.")
    backoff_max_s: float = Field(default=10.0, description="Longest retry delay.")
    retry_after_max_s: float = Field(
        default=60.0, description="Longest server-requested wait (retry-after) honoured."
    )
    response_format: ResponseFormatChoice = Field(
        default=ResponseFormatChoice.json_object,
        description="json_object, or json_schema to send the output's JSON Schema (servers "
        "with structured outputs). Part of the cache key.",
    )
    banned_claims: list[str] | None = Field(
        default=None,
        description="Phrases the copy may not use (case-insensitive, whole phrase); unset "
        "means the default list. Also in the prompt, so part of the cache key.",
    )
    deadline_s: float | None = Field(
        default=None,
        description="Seconds the whole step may spend on the model; unset means "
        "deadline_base_s + deadline_per_campaign_s x prompts / max_concurrency.",
    )
    deadline_base_s: float = Field(default=60.0, description="Fixed part of the deadline.")
    deadline_per_campaign_s: float = Field(
        default=10.0, description="Deadline seconds per prompt sent, divided by concurrency."
    )
    circuit_breaker_failures: int = Field(
        default=5,
        description="Failures of one kind in a row (timeouts, 5xx/connection errors, non-JSON "
        "200 answers, 401/403/404) after which no further request is sent; 0 turns it off.",
    )

    def resolved_api_key(self) -> str | None:
        """The key to use, from the field or the environment; None when there is none."""
        if self.api_key:
            return self.api_key
        for name in API_KEY_ENV_VARS:
            value = os.environ.get(name, "").strip()
            if value:
                return value
        return None

    def resolved_base_url(self) -> str | None:
        """The server root, from the field or `TOGETHER_BASE_URL`; None means Together's."""
        return self.base_url or os.environ.get(BASE_URL_ENV_VAR) or None

    def settings(self, **overrides: Any) -> CopySettings:
        """The plain settings object that `resources.copywriter` runs on; `overrides` (the
        asset's per-run config) replace fields, None meaning "keep the resource's"."""
        values: dict[str, Any] = {
            "api_key": self.resolved_api_key(),
            "model": self.model,
            "base_url": self.resolved_base_url(),
            **{name: getattr(self, name) for name in COPIED_FIELDS},
        }
        if self.banned_claims is not None:
            values["banned_claims"] = tuple(self.banned_claims)
        values.update({key: value for key, value in overrides.items() if value is not None})
        values = {key: value.value if isinstance(value, enum.Enum) else value
                  for key, value in values.items()}
        return CopySettings(**values)

    def build_client(self) -> AsyncTogether:
        """An `AsyncTogether` client (SDK retries off: the copywriter retries itself)."""
        from resources.copy_client import build_async_client

        return build_async_client(self.settings())

    def public_metadata(self) -> dict[str, str | float | int | bool]:
        """Configuration safe to show as asset metadata: says whether a key is set, not which,
        and shows the server's URL with any password or token in it replaced by ***."""
        return {
            "model": self.model,
            "base_url": redact_url(self.resolved_base_url() or "https://api.together.ai"),
            "api_key_configured": self.resolved_api_key() is not None,
            "max_concurrency": self.max_concurrency,
            "max_retries": self.max_retries,
            "timeout_s": self.timeout_s,
            "circuit_breaker_failures": self.circuit_breaker_failures,
        }
