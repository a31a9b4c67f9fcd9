"""Write `api/examples.py`: one real answer per read endpoint, for the OpenAPI examples.

Run after `make demo`, whenever a response model changes:

    .venv/bin/python -m tests.write_api_examples data/demo/warehouse.duckdb

It asks the real app over the demo warehouse, keeps at most three items of each list (the
counts stay the real ones), and writes the answers as a Python literal, so the wheel ships
them without package data. tests/test_api_contract.py checks every example against its
response schema, so an example that no longer fits its model fails there.
"""

from __future__ import annotations

import pprint
import subprocess
import sys
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import mint_token
from api.settings import ApiSettings

API = "/api/marketing"
TARGET = Path(__file__).resolve().parent.parent / "api" / "examples.py"
MAX_ITEMS = 3
HEADER = '''"""Example answers of the read API, shown in its OpenAPI document (one per operation).

Generated from the demo warehouse by `python -m tests.write_api_examples` (see there);
do not edit by hand. tests/test_api_contract.py validates each against its schema.
"""

from typing import Any

SUCCESS_EXAMPLES: dict[str, Any] = '''


def _trim(value: Any) -> Any:
    if isinstance(value, list):
        return [_trim(item) for item in value[:MAX_ITEMS]]
    if isinstance(value, dict):
        return {key: _trim(item) for key, item in value.items()}
    return value


def collect(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    """operation id -> a real 200 body (ids picked so that each answer has content)."""
    def get(path: str, **params: Any) -> Any:
        answer = client.get(path, headers=headers, params=params)
        answer.raise_for_status()
        return answer.json()

    campaigns = get(f"{API}/campaigns", limit=200)["campaigns"]
    if not campaigns:
        raise SystemExit("the warehouse has no campaigns: run `make demo` first")

    def with_content(suffix: str, field: str) -> str:
        for campaign in campaigns:
            body = get(f"{API}/campaigns/{campaign['campaign_id']}{suffix}")
            if body.get(field):
                return campaign["campaign_id"]
        return campaigns[0]["campaign_id"]

    measured = with_content("/metrics", "daily_breakdown")
    advised = with_content("/recommendations", "recommendations")
    segments = get(f"{API}/segments")
    examples = {
        "health": get("/health"),
        "ready": get("/ready"),
        "list_campaigns": get(f"{API}/campaigns", limit=2),
        "get_campaign": get(f"{API}/campaigns/{measured}"),
        "get_campaign_metrics": get(f"{API}/campaigns/{measured}/metrics"),
        "get_recommendations": get(f"{API}/campaigns/{advised}/recommendations"),
        "get_copy": get(f"{API}/campaigns/{measured}/copy"),
        "get_segment": get(f"{API}/segments/{segments['segments'][0]['behavior_pattern']}"),
        "analytics_roi": get(f"{API}/analytics/roi"),
        "analytics_engagement": get(f"{API}/analytics/engagement"),
        "analytics_conversion": get(f"{API}/analytics/conversion"),
        "customer_value": get(f"{API}/customer-value"),
        "segment_value": get(f"{API}/segments/{segments['segments'][0]['behavior_pattern']}"
                             "/value"),
    }
    trimmed = {name: _trim(body) for name, body in examples.items()}
    trimmed["list_segments"] = segments  # all eight: `total` must match the list
    return dict(sorted(trimmed.items()))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    secret = "examples-" + "x" * 40
    settings = ApiSettings(database_url=f"duckdb:///{Path(argv[0]).resolve()}",
                           jwt_secret=secret, rate_limit_per_minute=0, cache_seconds=0)
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {mint_token(secret, 'examples')}"}
        examples = collect(client, headers)
    TARGET.write_text(HEADER + pprint.pformat(examples, sort_dicts=False) + "\n")
    # One layout whatever pprint does: the formatter's.
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(TARGET)], check=True)
    print(f"wrote {len(examples)} examples to {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
