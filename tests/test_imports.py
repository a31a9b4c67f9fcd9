"""What importing a module costs is a property of the code: counted in modules, not seconds.

`import api.app` serves HTTP from SQL and has no use for Dagster (the first release loaded
all of it, 1,378 modules, for one constant); the pipeline's definitions must not pull in
pandera/pandas, which only validation needs, nor the LLM SDK, which only a copy step with
prompts to send needs (resources/copy_client.py), on every run worker and CLI call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@cache  # one fresh interpreter per statement is enough: its modules do not change
def _loaded_after(statement: str) -> list[str]:
    script = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_api_does_not_import_dagster() -> None:
    loaded = _loaded_after("import api.app")
    assert not [name for name in loaded if name.split(".")[0] == "dagster"]


def test_the_definitions_do_not_import_pandera_or_pandas() -> None:
    loaded = {name.split(".")[0] for name in _loaded_after("import pipelines.definitions")}
    assert "dagster" in loaded  # the probe works
    assert not loaded & {"pandera", "pandas"}


def test_the_definitions_do_not_import_the_llm_sdk() -> None:
    loaded = {name.split(".")[0] for name in _loaded_after("import pipelines.definitions")}
    assert "dagster" in loaded  # the probe works
    assert "together" not in loaded
