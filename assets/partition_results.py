"""Per-partition metadata and check results, in single-day runs and range runs alike.

A single-run backfill executes one step over many days. Returning one `MaterializeResult`
with metadata would stamp the *last* day's figures on every partition, and an
`AssetCheckResult` in a range run is recorded without a partition: one boolean for the
whole range. So every asset reports through `PartitionReporter`: metadata goes to the
day's own materialization (`add_asset_metadata(..., partition_key=day)`), and each check
is recorded per day as an `AssetCheckEvaluation` carrying that day's partition key and its
evidence. A failed blocking evaluation still fails the step (Dagster raises after the
step's events), so downstream steps do not run on bad data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluation
from dagster._core.definitions.metadata import normalize_metadata


def partition_key(day: dt.date) -> str:
    """The daily partition key of `day` (Dagster's daily format)."""
    return day.isoformat()


class PartitionReporter:
    """Collects what one step says about each of its partitions, then yields it.

    Use `metadata(asset, day, {...})` and `check(asset, name, day, passed, evidence)` while
    processing days, and `yield from reporter.finish()` at the end of the step (after the
    step's `MaterializeResult`s): it yields the per-day evaluations and the one output
    Dagster expects for each declared check.
    """

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self._context = context
        self._evaluations: list[AssetCheckEvaluation] = []
        self._specs = {
            spec.key: (output_name, spec)
            for output_name, spec in context.assets_def.check_specs_by_output_name.items()
        }

    def metadata(self, asset: str, day: dt.date, values: Mapping[str, Any]) -> None:
        """Attach `values` to `asset`'s materialization of `day` only."""
        self._context.add_asset_metadata(dict(values), asset_key=dg.AssetKey(asset),
                                         partition_key=partition_key(day))

    def check(self, asset: str, name: str, day: dt.date, *, passed: bool,
              evidence: Mapping[str, Any] | None = None, description: str | None = None,
              severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> bool:
        """Record check `name` of `asset` for `day`; returns `passed` for chaining. A WARN
        failure is reported but never counts as `failed()`."""
        key = dg.AssetCheckKey(dg.AssetKey(asset), name)
        if key not in self._specs:
            raise KeyError(f"{asset} declares no check named {name!r}")
        _, spec = self._specs[key]
        self._evaluations.append(AssetCheckEvaluation(
            asset_key=key.asset_key, check_name=name, passed=bool(passed),
            metadata=normalize_metadata(dict(evidence or {})),
            partition=partition_key(day), blocking=spec.blocking, description=description,
            severity=severity,
        ))
        return bool(passed)

    def failed(self) -> list[AssetCheckEvaluation]:
        return [evaluation for evaluation in self._evaluations
                if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR]

    def finish(self) -> Iterator[AssetCheckEvaluation | dg.Output]:
        """The recorded evaluations, then one (empty) output per declared check.

        Dagster requires an output for every check a step declares; the evaluations above
        carry the results, so the outputs carry nothing.
        """
        yield from self._evaluations
        selected = self._context.selected_asset_check_keys
        for key, (output_name, _) in self._specs.items():
            if key in selected:
                yield dg.Output(None, output_name=output_name)
