"""Run a child in its own process group and stop the whole group when we are signalled.

`marketing ui` uses this for `dg dev` (formerly `dagster dev`), which starts a webserver, a
daemon, a code-server proxy with its `dagster api grpc`, and a run worker per launched run:
one process group of several Python processes. With a plain `subprocess.call` (measured on
Dagster 1.13.27 with polars 2.1 on Linux, see docs/operations.md "Stopping the UI"):

- SIGTERM to `marketing ui` alone ended only that process; everything `dagster dev` started
  kept running, orphaned, until killed by hand.
- SIGINT to `marketing ui` alone did nothing: importing polars replaces the C-level SIGINT
  handler with one installed with SA_RESTART, so the blocking `waitpid()` inside
  `subprocess.call` is restarted after the signal and Python's KeyboardInterrupt only runs
  once the child has exited on its own, i.e. never.
- SIGTERM or SIGINT to the whole group did stop everything (each process handles it), but
  `marketing ui` itself died first, and on SIGINT `subprocess.call` SIGKILLed `dagster dev`
  in the middle of its own orderly shutdown.

What this module does instead:

- The child starts in a new session, so it is its own process group and has no controlling
  terminal: a terminal's Ctrl-C or hang-up reaches only us, and we decide what the group gets.
- Python-level handlers for SIGTERM, SIGINT and SIGHUP are installed *before* the child
  starts. Python installs them without SA_RESTART and we wait with a timeout, so a signal
  is acted on within a poll interval. Caught signals are reset to their default in the
  child at exec, so the child never inherits an ignored SIGINT (a shell starting us with
  `&` ignores it; `dagster dev` maps SIGTERM to its SIGINT handler, and would then ignore
  SIGTERM too). An ignored SIGHUP (`nohup`) is left ignored.
- On the first signal, SIGTERM goes to the child's whole group (`dagster dev` and each of
  its services shut down in parallel), and we wait until no live process is left in the
  group, not merely until the leader exits. If some are still there after `stop_timeout`
  seconds, or a second signal arrives (Ctrl-C twice), the group gets SIGKILL.
- When the child exits on its own, whatever is left of its group is stopped the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

# SIGTERM to `dagster dev`'s group stopped it in about 3 s on 2 cores; 8 s leaves room
# for a busy machine and still keeps the total (SIGKILL and reaping included) under 10 s.
STOP_TIMEOUT_S = 8.0
POLL_INTERVAL_S = 0.2
STOP_TIMEOUT_ENV = "MARKETING_UI_STOP_TIMEOUT_S"


def stop_timeout_from_env(environ: Mapping[str, str]) -> float:
    """The SIGKILL grace period: `MARKETING_UI_STOP_TIMEOUT_S` seconds, else 8. A busy
    machine may need more (dagster dev restarts a code server that exits mid-shutdown)."""
    value = environ.get(STOP_TIMEOUT_ENV)
    if not value:
        return STOP_TIMEOUT_S
    timeout = float(value)
    if not timeout > 0:
        raise ValueError(f"{STOP_TIMEOUT_ENV} must be a positive number of seconds: {value!r}")
    return timeout
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PROC = Path("/proc")


class _StopRequests:
    """What the signal handlers saw; the handlers only record, the main loop acts."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        self.signals.append(signum)


def run_process_group(command: Sequence[str], *, env: Mapping[str, str] | None = None,
                      cwd: str | os.PathLike[str] | None = None, name: str | None = None,
                      stop_timeout: float = STOP_TIMEOUT_S, log: TextIO | None = None) -> int:
    """Run `command` as its own process group until it exits or we get SIGTERM/SIGINT/SIGHUP.

    Returns the child's exit code (128 + N when signal N ended it, as a shell reports it).
    Messages (signal received, SIGKILL needed) go to `log`, by default stderr, prefixed
    with `name`.
    """
    name = name or os.path.basename(command[0])
    out = log or sys.stderr
    requests = _StopRequests()
    previous = _install_handlers(requests.handler)
    try:
        process = subprocess.Popen(list(command), env=None if env is None else dict(env),
                                   cwd=cwd, start_new_session=True)
        try:
            while process.poll() is None and not requests.signals:
                with suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=POLL_INTERVAL_S)
            if requests.signals:
                print(f"{name}: got {signal.Signals(requests.signals[0]).name}, stopping "
                      f"(SIGTERM to process group {process.pid})", file=out, flush=True)
        finally:
            stop_group(process, requests, stop_timeout=stop_timeout, name=name, log=out)
    finally:
        _restore_handlers(previous)
    code = process.returncode
    return 128 - code if code < 0 else code


def stop_group(process: subprocess.Popen[Any], requests: _StopRequests | None = None, *,
               stop_timeout: float = STOP_TIMEOUT_S, name: str = "child",
               log: TextIO | None = None) -> bool:
    """SIGTERM the group led by `process` and wait until none of it is left; SIGKILL the
    group after `stop_timeout` s or on a further signal. Returns whether SIGKILL was needed.

    The group outlives its leader whenever the leader exits first (a code server still
    closing, a run worker): waiting on the leader alone would leave those behind.
    """
    pgid = process.pid
    if process.poll() is not None and not group_alive(pgid):
        return False
    seen = len(requests.signals) if requests else 0
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + stop_timeout
    stragglers_signalled = False
    while True:
        if process.poll() is not None and not group_alive(pgid):
            return False
        if process.returncode is not None and not stragglers_signalled:
            # The leader is gone and its group is not. Some of it may have been born after
            # our SIGTERM and never got it: `dagster dev` restarts a code server that exits
            # while it shuts down (seen when the signal came as the UI started serving).
            stragglers_signalled = True
            with suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
        if requests is not None and len(requests.signals) > seen:
            reason = "a second signal"
            break
        if time.monotonic() >= deadline:
            reason = f"still running {stop_timeout:g} s after SIGTERM"
            break
        if process.returncode is None:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=POLL_INTERVAL_S)
        else:  # the leader is gone, stragglers of its group are not
            time.sleep(POLL_INTERVAL_S / 2)
    print(f"{name}: {reason}; sending SIGKILL to process group {pgid}",
          file=log or sys.stderr, flush=True)
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait()
    return True


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` is still running (zombies do not count).

    On Linux this reads /proc: `killpg(pgid, 0)` also succeeds for zombies, and orphans
    stay zombies until init reaps them, which some container inits never do.
    """
    if not PROC.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited while we looked
            continue
        state, _ppid, pgrp = text[text.rindex(")") + 2:].split()[:3]
        if int(pgrp) == pgid and state not in {"Z", "X"}:
            return True
    return False


Handler = Callable[[int, FrameType | None], Any] | int | None


def _install_handlers(handler: Callable[[int, FrameType | None], None]) -> dict[int, Handler]:
    """Our handler for the stop signals; an ignored SIGHUP (`nohup`) stays ignored."""
    previous: dict[int, Handler] = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if signum == signal.SIGHUP and current == signal.SIG_IGN:
            continue
        previous[signum] = current
        signal.signal(signum, handler)
    return previous


def _restore_handlers(previous: dict[int, Handler]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, signal.SIG_DFL if handler is None else handler)
