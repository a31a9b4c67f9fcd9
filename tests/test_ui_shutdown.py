"""`marketing ui` stops everything it started when it is told to stop.

The command is started as a user (or a service manager) starts it: the `marketing` script,
from the repository root, in its own session. The environment points every path at a
temporary directory (DAGSTER_HOME, DuckDB files, staging), and setting
`MARKETING_WAREHOUSE_URL` keeps `marketing ui` off the repository's demo data.

Once the webserver serves and the code location has loaded, the test records the whole
tree (the `marketing ui` process group and every descendant: `dg dev`, the webserver,
the daemon, the code-server proxy and its `dagster api grpc`), sends one signal, and
checks that every recorded process is gone and that none outlived `marketing ui` itself.
It waits up to 60 s so a busy machine cannot fail it; the stop time is printed (`-s`), not
asserted. The supervisor's own SIGKILL fallback (pipelines/supervisor.py) must not have
been needed. These tests send no SIGKILL except in their `finally` cleanup; the last test
checks that fallback itself, on a child that ignores SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.demo_instance import demo_instance_yaml
from pipelines.supervisor import STOP_TIMEOUT_S, stop_timeout_from_env
from tests.dagster_instances import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)"),
]

STARTUP_TIMEOUT_S = 180
STOP_BOUND_S = 60
LOCATIONS_QUERY = ("query { workspaceOrError { ... on Workspace { "
                   "locationEntries { loadStatus } } } }")
# Each must be among the recorded processes, so the test really covers them.
EXPECTED_SERVICES = ("dg dev", "dagster_webserver", "dagster._daemon", "dagster api grpc")


@dataclass(frozen=True)
class Proc:
    """A process as /proc shows it; (pid, start time) identifies it even if pids recycle."""

    pid: int
    start_time: int
    ppid: int
    pgrp: int
    state: str
    cmdline: str

    @property
    def alive(self) -> bool:
        """Still running: the same process (same start time), and not a zombie."""
        now = _read_proc(self.pid)
        return now is not None and now.start_time == self.start_time and now.state not in "ZX"


def _read_proc(pid: int) -> Proc | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # fields 3.. of proc(5) stat
    return Proc(pid=pid, start_time=int(fields[19]), ppid=int(fields[1]),
                pgrp=int(fields[2]), state=fields[0], cmdline=cmdline.strip())


def _all_processes() -> list[Proc]:
    found = (_read_proc(int(entry.name)) for entry in Path("/proc").iterdir()
             if entry.name.isdigit())
    return [proc for proc in found if proc is not None]


def _tree(root: int) -> list[Proc]:
    """The group `root` leads plus every descendant of `root` (wherever its group)."""
    processes = _all_processes()
    members = {proc.pid: proc for proc in processes if proc.pgrp == root or proc.pid == root}
    grew = True
    while grew:
        grew = False
        for proc in processes:
            if proc.pid not in members and proc.ppid in members:
                members[proc.pid] = proc
                grew = True
    return [proc for proc in members.values() if proc.state not in "ZX"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _marketing_command() -> list[str]:
    script = Path(sys.executable).with_name("marketing")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pipelines.cli"]


def _isolated_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(demo_instance_yaml(home))
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("MARKETING_", "DAGSTER_"))}
    env.update({
        "DAGSTER_HOME": str(home),
        "MARKETING_SOURCE_URL": f"duckdb:///{tmp_path}/source.duckdb",
        "MARKETING_WAREHOUSE_URL": f"duckdb:///{tmp_path}/warehouse.duckdb",
        "MARKETING_STAGING_DIR": str(tmp_path / "staged"),
        "MARKETING_FIRST_PARTITION_DATE": "2024-01-01",
        # the orderly shutdown is what is tested, not its speed: on a busy machine it may
        # take longer than the default grace, which must not fail the test
        "MARKETING_UI_STOP_TIMEOUT_S": str(STOP_BOUND_S - 10),
    })
    return env


def _location_loaded(port: int) -> bool:
    body = json.dumps({"query": LOCATIONS_QUERY}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
    except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError):
        return False
    return bool(entries) and all(entry["loadStatus"] == "LOADED" for entry in entries)


@contextmanager
def marketing_ui(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[Proc], Path]]:
    """`marketing ui` serving, with its recorded process tree and its log file.

    Cleanup (only if the test left something running) is SIGKILL to what was recorded."""
    port = _free_port()
    log_path = tmp_path / "marketing_ui.log"
    recorded: list[Proc] = []
    with log_path.open("wb") as log:
        process = subprocess.Popen([*_marketing_command(), "ui", "--port", str(port)],
                                   cwd=REPO_ROOT, env=_isolated_env(tmp_path), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            recorded.extend(_wait_until_serving(process, port, log_path))
            yield process, recorded, log_path
        finally:
            for proc in [*recorded, _read_proc(process.pid)]:
                if proc is not None and proc.alive:
                    with suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_until_serving(process: subprocess.Popen[bytes], port: int,
                        log_path: Path) -> list[Proc]:
    """Until the code location has loaded and every expected service runs; the tree then."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    tree: list[Proc] = []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"marketing ui exited early ({process.returncode}):\n"
                                 f"{log_path.read_text()[-4000:]}")
        if _location_loaded(port):
            tree = _tree(process.pid)
            if all(any(service in proc.cmdline for proc in tree)
                   for service in EXPECTED_SERVICES):
                return tree
        time.sleep(1)
    raise AssertionError(f"not serving after {STARTUP_TIMEOUT_S}s; processes: "
                         f"{[proc.cmdline[:80] for proc in tree]}\n"
                         f"{log_path.read_text()[-4000:]}")


def _stop_and_check(process: subprocess.Popen[bytes], recorded: list[Proc], log_path: Path,
                    send: str, signum: signal.Signals) -> None:
    started = time.monotonic()
    if send == "group":
        os.killpg(process.pid, signum)
    else:
        os.kill(process.pid, signum)
    returncode = None
    with suppress(subprocess.TimeoutExpired):
        returncode = process.wait(timeout=STOP_BOUND_S)
    exited = time.monotonic()
    # `marketing ui` waits for its whole group: nothing may still run once it has exited.
    outlived = [proc for proc in recorded if proc.pid != process.pid and proc.alive]
    remaining = outlived
    while remaining and time.monotonic() - started < STOP_BOUND_S:
        time.sleep(0.2)
        remaining = [proc for proc in remaining if proc.alive]
    stopped = time.monotonic()
    log = log_path.read_text(errors="replace")
    print(f"\n{signum.name} to the {send}: marketing ui exited after {exited - started:.1f}s "
          f"(code {returncode}); all {len(recorded)} processes gone after "
          f"{stopped - started:.1f}s")

    assert returncode is not None, f"marketing ui still running {STOP_BOUND_S}s later"
    assert not remaining, (f"still running {STOP_BOUND_S}s after {signum.name}: "
                           f"{[(proc.pid, proc.cmdline[:100]) for proc in remaining]}")
    assert not outlived, ("still running when marketing ui exited: "
                          f"{[(proc.pid, proc.cmdline[:100]) for proc in outlived]}")
    # Dagster's orderly shutdown ran, and the supervisor's SIGKILL fallback was not needed
    # (it logs "sending SIGKILL"; `dagster dev` killed by it would make the exit code 137).
    assert "Dagster services shut down." in log, log[-4000:]
    assert "sending SIGKILL" not in log, log[-4000:]
    assert returncode == 0, log[-4000:]


def test_sigterm_to_the_process_group_stops_everything(tmp_path: Path) -> None:
    with marketing_ui(tmp_path) as (process, recorded, log_path):
        _stop_and_check(process, recorded, log_path, "group", signal.SIGTERM)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_marketing_ui_alone_leaves_no_orphans(tmp_path: Path,
                                                          signum: signal.Signals) -> None:
    with marketing_ui(tmp_path) as (process, recorded, log_path):
        _stop_and_check(process, recorded, log_path, "process", signum)


STUBBORN_CHILD = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "print('ready', flush=True); time.sleep(120)")
SUPERVISE_STUBBORN = ("import sys; from pipelines.supervisor import run_process_group; "
                      "raise SystemExit(run_process_group([sys.executable, '-c', sys.argv[1]], "
                      "name='stubborn', stop_timeout=1.0))")


def test_the_supervisor_kills_a_group_that_ignores_sigterm() -> None:
    """The last resort the tests above check was not needed: a child ignoring SIGTERM is
    SIGKILLed with its group after the stop timeout, and the exit code says so."""
    process = subprocess.Popen([sys.executable, "-c", SUPERVISE_STUBBORN, STUBBORN_CHILD],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        recorded = _tree(process.pid)
        assert len(recorded) == 2, recorded
        os.kill(process.pid, signal.SIGTERM)
        returncode = process.wait(timeout=STOP_BOUND_S)
        output = process.stdout.read().decode()
        assert returncode == 128 + signal.SIGKILL, output
        assert "still running 1 s after SIGTERM; sending SIGKILL" in output
        assert not [proc for proc in recorded if proc.alive]
    finally:
        for proc in _tree(process.pid):
            with suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        with suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_the_stop_timeout_comes_from_the_environment() -> None:
    assert stop_timeout_from_env({}) == STOP_TIMEOUT_S
    assert stop_timeout_from_env({"MARKETING_UI_STOP_TIMEOUT_S": "30"}) == 30.0
    with pytest.raises(ValueError, match="positive"):
        stop_timeout_from_env({"MARKETING_UI_STOP_TIMEOUT_S": "0"})


# A leader that, like `dagster dev` restarting a code server while it shuts down, starts a
# new process of its group *after* it got SIGTERM, then exits. The late child sleeps until
# it is signalled.
LATE_BORN_LEADER = r"""
import signal, subprocess, sys, time
child = "import time; time.sleep(600)"
def on_term(signum, frame):
    subprocess.Popen([sys.executable, "-c", child])
    time.sleep(0.5)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(600)
"""


def test_a_process_born_after_sigterm_is_stopped_without_sigkill() -> None:
    """Seen in CI: SIGTERM arrived as the UI started serving, `dagster dev` restarted its
    code server during shutdown, and the new one (never signalled) outlived it until the
    SIGKILL fallback. The supervisor signals what is left of the group once the leader
    has exited."""
    from pipelines.supervisor import stop_group
    process = subprocess.Popen([sys.executable, "-c", LATE_BORN_LEADER],
                               stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == b"ready"
        killed = stop_group(process, stop_timeout=STOP_BOUND_S, name="leader",
                            log=sys.stderr)
        assert killed is False  # no SIGKILL was needed
        assert process.returncode == 0
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
