"""Named points in the write path where a test can freeze the process, to kill it there.

Fault tests need to stop a run worker at an exact place (after the first tables of a step
were written, before its transaction commits) and SIGKILL it. Sleeping and hoping is
timing-based; this is not: the test sets `MARKETING_TEST_PAUSE_AFTER=<point>` and
`MARKETING_TEST_PAUSE_FILE=<path>` for the worker, the worker writes the file when it
reaches the point and then waits, and the test waits for the file, then kills (or creates
`<path>.resume` to let it go on). Unset, which is always the case outside tests, a point
costs one environment lookup.

Points: `<table>` is reached right after that table's rows were written inside their
transaction (before it commits); `<table>:committed` right after the transaction that
wrote the table committed, where a step has more to do (the profile snapshot's rename).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_AFTER_ENV = "MARKETING_TEST_PAUSE_AFTER"
PAUSE_FILE_ENV = "MARKETING_TEST_PAUSE_FILE"
POLL_S = 0.02


def reached(point: str) -> None:
    """Pause here if a test asked for this point; otherwise return at once."""
    if os.environ.get(PAUSE_AFTER_ENV) != point:
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if not marker:
        raise RuntimeError(f"{PAUSE_AFTER_ENV} is set but {PAUSE_FILE_ENV} is not")
    paused = Path(marker)
    resume = paused.with_name(paused.name + ".resume")
    paused.write_text(f"{os.getpid()} {point}\n")
    while not resume.exists():
        time.sleep(POLL_S)
