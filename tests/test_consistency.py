"""One truth whatever the path (docs/consistency.md): every way of driving the graph leaves
the warehouse and the staged files exactly as a clean day-by-day replay does, or Dagster
refuses the path with a reason.

The reference is the replay: the whole graph one day at a time, in order, with the
notification service's events simulated after each day (as the demo does). Each other path
runs on its own fresh deployment (own source, staging directory and warehouse, the same
generated data and the reference's events), on DuckDB and on PostgreSQL, and its snapshot
(tests/warehouse_snapshots.py: every table, every staged file and its lineage footer) must
equal the reference's:

- the hourly schedule's ticks, against a source that grows as the day goes by, across
  every midnight (the 00:05 tick closes the day before);
- one run over the whole range (a single-run backfill of `refresh_all`);
- a re-run of a past day once later days exist (later days unchanged, no status regresses);
- runs per partition launched out of order: the early one is refused, naming the missing
  day, and leaves nothing that changes the result once the days run in order;
- a fresh deployment asked for a range after the first partition: refused, naming it.

- UI asset backfills launched as the asset dialog launches them (tests/asset_backfills.py),
  one group at a time: ingest, the profiles group alone from the first partition, the
  campaigns group alone.

More UI backfill probes (the whole graph, refusals) are in tests/test_asset_backfill_probe.py.
Nothing here measures time; each path counts its runs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from datagen.writers import write_source
from pipelines.demo import happened_by, simulate_day_events
from pipelines.jobs import ALL_ASSETS_JOB
from pipelines.runner import run_job_for_days
from pipelines.schedules import RANGE_END_TAG, RANGE_START_TAG, hourly_run_request
from resources import warehouse_backends
from resources.connection_url import parse_backend_url
from resources.duckdb_hold import hold_duckdb_files
from tests.asset_backfills import backfill_deployment, partition_names, run_asset_backfill
from tests.pipeline_helpers import START, PipelineUnderTest, generated_source, last_day
from tests.warehouse_snapshots import Snapshot, take_snapshot
from transforms.events import events_for_source

pytestmark = pytest.mark.slow

DAYS = 10
USERS = 300  # enough for a few campaigns to be planned, measured and change status
LAST = last_day(DAYS)
# The last tick of the harness: 00:05 after the last generated day closes it (and opens
# an empty day). Every path ends at this "now".
CLOSING_DAY = LAST + dt.timedelta(days=1)
FINAL_NOW = dt.datetime.combine(CLOSING_DAY, dt.time(0, 5), tzinfo=dt.UTC)
TICK_HOURS = (0, 12, 23)  # each at :05; 23:05 is the last tick before a midnight
EVENT_SEED = 3


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]


@dataclass
class Deployment:
    """A fresh deployment: its own generated source, staging directory and warehouse."""

    pipeline: PipelineUnderTest

    @property
    def definitions(self) -> dg.Definitions:
        return self.pipeline.definitions

    def run(self, first: dt.date, last: dt.date, now: dt.datetime = FINAL_NOW
            ) -> dg.ExecuteInProcessResult:
        return run_job_for_days(self.definitions, ALL_ASSETS_JOB, first, last,
                                instance=self.pipeline.instance, now=now)

    def write_events(self, events: pl.DataFrame) -> None:
        write_source(self.pipeline.settings.source_url,
                     {"campaign_events": events_for_source(events)})

    def snapshot(self) -> Snapshot:
        return take_snapshot(self.pipeline.settings)


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def deploy(engine: str, tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest):
    """`deploy(name)`: a fresh deployment on this module's warehouse engine."""

    def make(name: str) -> Deployment:
        root = tmp_path_factory.mktemp(f"{engine}_{name}")
        if engine == "postgres":
            warehouse_url = request.getfixturevalue("postgres_url")
            schema = f"{name}_{uuid.uuid4().hex[:8]}"
        else:
            warehouse_url, schema = f"duckdb:///{root}/warehouse.duckdb", "marketing"
        return Deployment(generated_source(
            root, f"duckdb:///{root}/source.duckdb", users=USERS, days=DAYS,
            warehouse_url=warehouse_url, warehouse_schema=schema))

    return make


@dataclass(frozen=True)
class Reference:
    snapshot: Snapshot
    events: pl.DataFrame


@pytest.fixture(scope="module")
def reference(deploy) -> Reference:
    """The clean day-by-day replay every path is compared with."""
    replay = deploy("replay")
    events = pl.DataFrame()
    for day in _days(START, CLOSING_DAY):
        replay.run(day, day)
        events = simulate_day_events(replay.pipeline.settings, day, events, FINAL_NOW,
                                     EVENT_SEED)
    snapshot = replay.snapshot()
    # The comparison means something only if the replay did something on every level.
    for table in ("behavioral_profiles", "user_segments", "ai_campaigns", "campaign_audience",
                  "campaign_status", "campaign_metrics", "campaign_copy", "staged_partitions"):
        assert snapshot.rows(table) > 0, f"the replay wrote no {table}"
    assert events.height > 0
    return Reference(snapshot, events)


def _assert_same(path: str, snapshot: Snapshot, reference: Reference) -> None:
    differences = snapshot.differences(reference.snapshot)
    assert not differences, f"{path} differs from the day-by-day replay:\n" + "\n".join(
        differences[:20])


def _statuses(snapshot: Snapshot) -> dict[str, str]:
    frame = snapshot.frames["ai_campaigns"]
    return dict(zip(frame["campaign_id"], frame["status"], strict=True))


# --------------------------------------------------------------------------- paths


def test_hourly_ticks_across_midnights_equal_the_replay(deploy, reference: Reference) -> None:
    """The schedule's own run requests, tick by tick, with the source holding only what
    had happened by each tick. The last hour of every day (after 23:05) is staged only by
    the 00:05 tick that closes the day: without it this comparison fails on every day."""
    hourly = deploy("hourly")
    hourly.write_events(reference.events)
    transactions = hourly.pipeline.transactions
    ticks = [dt.datetime.combine(day, dt.time(hour, 5), tzinfo=dt.UTC)
             for day in _days(START, LAST) for hour in TICK_HOURS] + [FINAL_NOW]
    closing_runs = 0
    for tick in ticks:
        write_source(hourly.pipeline.settings.source_url,
                     {"transactions": happened_by(transactions, tick)})
        request = hourly_run_request(tick, START)
        if request.partition_key is not None:
            first = last = dt.date.fromisoformat(request.partition_key)
        else:
            first = dt.date.fromisoformat(request.tags[RANGE_START_TAG])
            last = dt.date.fromisoformat(request.tags[RANGE_END_TAG])
            assert (first, last) == (tick.date() - dt.timedelta(days=1), tick.date())
            closing_runs += 1
        hourly.run(first, last, now=tick)
    assert closing_runs == DAYS  # every generated day was closed by a 00:05 tick
    _assert_same("hourly ticks", hourly.snapshot(), reference)


def test_one_run_over_the_whole_range_then_a_rerun_of_a_past_day(
        deploy, reference: Reference) -> None:
    """A single-run backfill of `refresh_all` (the route docs/operations.md gives for long
    ranges) equals the replay; so does re-running a past day once later days exist."""
    backfill = deploy("single_run")
    backfill.write_events(reference.events)
    backfill.run(START, CLOSING_DAY)
    snapshot = backfill.snapshot()
    _assert_same("a single-run backfill", snapshot, reference)

    statuses = _statuses(snapshot)
    assert set(statuses.values()) - {"scheduled"}, \
        f"no campaign ever left 'scheduled' ({statuses}): a regression could not be seen"
    past_day = START + dt.timedelta(days=DAYS // 2)
    backfill.run(past_day, past_day)
    rerun = backfill.snapshot()
    assert _statuses(rerun) == statuses
    _assert_same(f"a re-run of {past_day}", rerun, reference)


def test_runs_out_of_order_are_refused_and_leave_nothing_behind(
        deploy, reference: Reference) -> None:
    """One run per partition, the third day first: refused (its purchase history needs the
    days before), then every day in order gives exactly the replay."""
    per_day = deploy("per_partition")
    per_day.write_events(reference.events)
    early = START + dt.timedelta(days=2)
    with pytest.raises(dg.Failure) as refused:
        per_day.run(early, early)
    assert str(START) in str(refused.value.description)
    assert "purchase_history" in str(refused.value.description)
    for day in _days(START, CLOSING_DAY):
        per_day.run(day, day)
    _assert_same("runs per partition after a refused one", per_day.snapshot(), reference)


def test_ui_backfills_of_one_group_at_a_time_equal_the_replay(
        deploy, reference: Reference) -> None:
    """The data team's UI route, group by group as the asset dialog launches them: the
    ingest group, then the profiles group alone over a range that starts at the first
    partition, then the campaigns group alone. Each backfill succeeds, and the result is
    the replay's."""
    grouped = deploy("ui_groups")
    grouped.write_events(reference.events)
    with backfill_deployment(grouped.pipeline.settings) as deployment:
        graph = deployment.asset_graph
        for group in ("ingest", "profiles", "campaigns"):
            keys = [key for key in graph.get_all_asset_keys()
                    if graph.get(key).is_materializable and graph.get(key).group_name == group]
            outcome = run_asset_backfill(deployment.instance, keys, START, CLOSING_DAY,
                                         now=FINAL_NOW, workspace=deployment.workspace)
            assert outcome.succeeded, str(outcome)
            assert not outcome.missing({key: frozenset(partition_names(START, CLOSING_DAY))
                                        for key in keys}), str(outcome)
    _assert_same("UI backfills group by group", grouped.snapshot(), reference)


def test_the_demo_holding_its_files_replays_the_same_tables(
        engine: str, deploy, reference: Reference, monkeypatch: pytest.MonkeyPatch) -> None:
    """`marketing demo` holds its DuckDB files open for all its runs (resources/
    duckdb_hold.py): the same replay inside the hold leaves the same tables, and opens each
    file once, for the hold, instead of for every read and write."""
    if engine != "duckdb":
        pytest.skip("holding files open is for DuckDB files")
    held = deploy("held")
    settings = held.pipeline.settings
    paths = [parse_backend_url(url).duckdb_path
             for url in (settings.source_url, settings.warehouse_url)]
    opened: list[Path] = []
    real_open = warehouse_backends._open_duckdb_waiting_for_lock

    def counting_open(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
        opened.append(path)
        return real_open(path, read_only)

    monkeypatch.setattr(warehouse_backends, "_open_duckdb_waiting_for_lock", counting_open)
    events = pl.DataFrame()
    with hold_duckdb_files(*paths):
        for day in _days(START, CLOSING_DAY):
            held.run(day, day)
            events = simulate_day_events(settings, day, events, FINAL_NOW, EVENT_SEED)
    assert opened == paths
    assert events.equals(reference.events)
    _assert_same("the replay holding its files", held.snapshot(), reference)
    assert len(opened) > len(paths)  # the snapshot, outside the hold, opened the file again


def test_a_fresh_deployment_asked_for_later_days_is_refused(deploy) -> None:
    """Nothing staged yet and a backfill that starts after the first partition: no profile
    is computed from an empty history; the refusal names the first missing day."""
    fresh = deploy("fresh")
    first = START + dt.timedelta(days=4)
    with pytest.raises(dg.Failure) as refused:
        fresh.run(first, first + dt.timedelta(days=2))
    assert str(START) in str(refused.value.description)
    assert fresh.snapshot().rows("behavioral_profiles") == 0


def test_snapshots_see_a_single_changed_value(deploy, reference: Reference) -> None:
    """The comparison itself can fail: one changed status in a copy of the replay's
    tables is reported, naming the table."""
    frames = dict(reference.snapshot.frames)
    campaigns = frames["ai_campaigns"]
    frames["ai_campaigns"] = campaigns.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("paused"))
        .otherwise(pl.col("status")).alias("status"))
    if frames["ai_campaigns"].equals(campaigns):  # it was already "paused"
        frames["ai_campaigns"] = campaigns.with_columns(pl.lit("completed").alias("status"))
    differences = Snapshot(frames).differences(reference.snapshot)
    assert len(differences) == 1 and differences[0].startswith("ai_campaigns:")
    assert Snapshot({**frames, "extra": pl.DataFrame({"a": [1]})}).differences(
        reference.snapshot)[-1].startswith("extra:")
