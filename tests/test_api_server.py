"""The documented command: `marketing api` (here `python -m api.cli serve`) serves real HTTP.

Started as a process on a free loopback port over the pipeline-produced DuckDB warehouse,
without a JWT secret, as a newcomer would on the demo: it must print a working token.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from tests.api_fixtures import Materialized

pytest_plugins = ["tests.api_fixtures"]
REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_prints_a_token_that_works_over_http(api_duckdb: Materialized) -> None:
    port = _free_port()
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("MARKETING_")}
    environment["MARKETING_WAREHOUSE_URL"] = api_duckdb.owner_url
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--log-level",
         "warning"], cwd=REPO, env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert server.stdout is not None
        printed = ""
        while "export TOKEN=" not in printed:
            line = server.stdout.readline()
            assert line, f"the server exited: {printed}"
            printed += line
        token = re.search(r"export TOKEN=(\S+)", printed).group(1)  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        while True:  # a busy machine may take long to start it; only an exit is a failure
            try:
                health = httpx.get(f"{base}/health", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, f"the server exited: {printed}"
                time.sleep(0.1)
        assert health.json() == {"status": "ok"}
        # No banner naming the server software; the same security headers as in-process.
        assert "server" not in health.headers
        assert health.headers["x-content-type-options"] == "nosniff"
        head = httpx.head(f"{base}/health", timeout=10)
        assert head.status_code == 200 and head.content == b""
        campaigns = httpx.get(f"{base}/api/marketing/campaigns?limit=2",
                              headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert campaigns.status_code == 200
        assert campaigns.json()["status"] == "success" and len(campaigns.json()["campaigns"]) == 2
        assert httpx.get(f"{base}/api/marketing/campaigns", timeout=10).status_code == 401
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
