"""Where the demo keeps its files, and the environment its last run recorded.

Below the pipeline and the API alike: `marketing demo` writes the manifest, and
`marketing ui` and `marketing api` read it to serve the demo's data when nothing else is
configured. A plain JSON file, so reading it needs neither Dagster nor the pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_DIR = Path("data/demo")
MANIFEST = DEMO_DIR / "demo.json"


def save_demo_environment(environment: dict[str, str]) -> None:
    """Record the environment that makes `dagster dev` load exactly the demo's settings."""
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(environment, indent=2))


def load_demo_environment() -> dict[str, str]:
    """The environment recorded by the last demo run, for `marketing ui` and `api`."""
    if not MANIFEST.is_file():
        raise SystemExit("no demo data yet: run `make demo` first")
    return json.loads(MANIFEST.read_text())
