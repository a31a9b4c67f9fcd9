"""Start-up cost: how long importing the pipeline takes above importing Dagster alone.

    python -m bench.bench_startup --repeat 7

Every run worker, every `marketing` command and `dagster dev`'s code server pays the import
of `pipelines.definitions` before any work. Each case runs in a fresh interpreter (`python
-c "import X"`, wall time of the whole process), repetitions interleaved so a noisy machine
hurts all cases alike; medians, and each case minus the `import dagster` baseline (the
part this project controls). Modules loaded are counted too: that figure does not depend on
the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CASES = {
    "python (interpreter alone)": "pass",
    "import dagster (baseline)": "import dagster",
    "import pipelines.definitions": "import pipelines.definitions",
    "build the definitions": "import pipelines.definitions as d; d.defs()",
    "import api.app": "import api.app",
}


def _once(statement: str) -> tuple[float, int]:
    script = f"import sys; {statement}; print(len(sys.modules))"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True)
    return time.perf_counter() - started, int(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    modules: dict[str, int] = {}
    for _ in range(args.repeat):
        for name, statement in CASES.items():
            seconds, loaded = _once(statement)
            times[name].append(seconds)
            modules[name] = loaded
    base = statistics.median(times["import dagster (baseline)"])
    print("| case | median | above `import dagster` | modules | runs |")
    print("|---|---|---|---|---|")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"| {name} | {median:.2f} s | {median - base:+.2f} s | {modules[name]:,} | "
              f"{', '.join(f'{run:.2f}' for run in runs)} |")
    print(json.dumps({name: statistics.median(runs) for name, runs in times.items()}))


if __name__ == "__main__":
    main()
