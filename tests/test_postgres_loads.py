"""PostgreSQL loads: binary COPY of every column type, and the partition swap that replaces
a day of `behavioral_profiles` (resources/postgres_copy.py, resources/partition_swap.py).

All against the real server: the catalog, the binary wire format, ATTACH/DETACH and the
readers' snapshots are exactly what could go wrong here.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import threading
import uuid

import polars as pl
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resources.partition_swap import SWAPPED_TABLES, partition_name
from resources.warehouse import Warehouse

DAY = dt.date(2024, 4, 29)
LOCK = "LOCK TABLE {}.behavioral_profiles IN ACCESS SHARE MODE"  # what api/database.py does
NEXT_DAY = DAY + dt.timedelta(days=1)


@pytest.fixture
def pg(postgres_url: str) -> Warehouse:
    warehouse = Warehouse(url=postgres_url, schema_name=f"t_{uuid.uuid4().hex[:10]}")
    warehouse.migrate()
    return warehouse


def _profiles(day: dt.date, users: int, version: int = 0, first_user: int = 1) -> pl.DataFrame:
    """`users` profile rows for `day`; `version` is carried in transaction_count, so a
    reader can tell which write it is looking at."""
    ids = pl.int_range(first_user, first_user + users, eager=True, dtype=pl.Int64)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    spend = (ids % 1000).cast(pl.Float64) + 0.25
    return pl.DataFrame({
        "as_of_date": [day] * users,
        "user_id": ids,
        "total_spent": spend,
        "transaction_count": pl.Series([version] * users, dtype=pl.Int64),
        "observed_weeks": [12.857142857142858] * users,
        "purchases_per_week": (ids % 7).cast(pl.Float64) / 3,
        "weekend_share": pl.Series([None, 0.5] * (users // 2) + [0.5] * (users % 2)),
        "top_category": ["électronique"] * users,
        "top_category_share": [0.25] * users,
        "distinct_locations": [3] * users,
        "first_purchase_at": [dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)] * users,
        "last_purchase_at": [end - dt.timedelta(seconds=1)] * users,
        "days_since_last_purchase": [0.0] * users,
        "spend_bucket_1": spend, "spend_bucket_2": [0.0] * users,
        "spend_bucket_3": [-1.5] * users,
        "seasonal_ratio": [float("inf")] * users,
        "refund_count": [0] * users, "refund_amount": [0.0] * users,
        "zero_amount_count": [0] * users, "net_spend": spend,
        "recency_score": [5] * users, "frequency_score": [1] * users,
        "monetary_score": [3] * users, "rfm_segment": ["513"] * users,
        "detected_patterns": [["high_spender", "weekend_shopper"], []] * (users // 2)
        + [[]] * (users % 2),
        "pattern_evidence": ['{"high_spender": {"value": 1}}'] * users,
        "as_of_end": [end] * users,
    })


def _day(warehouse: Warehouse, day: dt.date) -> pl.DataFrame:
    return warehouse.read("SELECT * FROM behavioral_profiles WHERE as_of_date = :d "
                          "ORDER BY user_id", {"d": day})


def _catalog(warehouse: Warehouse, sql: str) -> list[tuple]:
    with psycopg.connect(warehouse.url) as connection:
        return connection.execute(sql, {"schema": warehouse.schema_name}).fetchall()


def _partitions(warehouse: Warehouse) -> list[str]:
    return [row[0] for row in _catalog(warehouse, (
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE n.nspname = %(schema)s AND p.relname = 'behavioral_profiles' ORDER BY 1"))]


def _load_tables(warehouse: Warehouse) -> list[str]:
    return [row[0] for row in _catalog(warehouse, (
        "SELECT tablename FROM pg_tables WHERE schemaname = %(schema)s "
        "AND tablename LIKE '%%\\_load\\_%%' ORDER BY 1"))]


# --- binary COPY ---------------------------------------------------------------------------

ALL_TYPES_DDL = """
CREATE TABLE all_types (
    as_of_date DATE NOT NULL, small SMALLINT, regular INTEGER, big BIGINT, single REAL,
    double DOUBLE PRECISION, flag BOOLEAN, label TEXT, code VARCHAR(8), doc JSON,
    at TIMESTAMPTZ, naive TIMESTAMP, money NUMERIC(14,2), tags TEXT[], counts INTEGER[]
)
"""


def test_binary_copy_round_trips_every_column_type(postgres_url: str) -> None:
    warehouse = Warehouse(url=postgres_url, schema_name=f"t_{uuid.uuid4().hex[:10]}")
    warehouse.execute(ALL_TYPES_DDL)
    aware = dt.datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC)
    frame = pl.DataFrame({
        "as_of_date": [DAY, DAY, DAY],
        "small": [-32768, 32767, None],
        "regular": [-(2**31), 2**31 - 1, None],  # Int64 in the frame, INTEGER in the table
        "big": [-(2**63), 2**63 - 1, None],
        "single": [1.5, float("-inf"), None],
        "double": [0.1 + 0.2, float("nan"), None],
        "flag": [True, False, None],
        "label": ["", "quote \" and \\ and\nnewline, comma; ☃", None],
        "code": ["abc", "é", None],
        "doc": pl.Series([{"a": 1, "b": "x"}, {"a": None, "b": "ü"}, None]),
        "at": [aware, dt.datetime(2262, 1, 1, tzinfo=dt.UTC), None],
        "naive": [dt.datetime(1900, 2, 28, 12, 0), dt.datetime(2024, 2, 29, 23, 59, 59), None],
        "money": [-123456789012.34, 0.005, None],
        "tags": [["a", None, "c"], [], None],
        "counts": [[1, 2**31 - 1], [None], None],
    })
    assert warehouse.replace_partition("all_types", frame, partition_value=DAY) == 3
    with psycopg.connect(postgres_url) as connection:
        connection.execute(f"SET search_path TO {warehouse.schema_name}")
        rows = connection.execute(
            "SELECT small, regular, big, single, double, flag, label, code, doc::text, at, "
            "naive, money, tags, counts FROM all_types ORDER BY big NULLS LAST").fetchall()
    first, second, third = rows
    assert first[:3] == (-32768, -(2**31), -(2**63))
    assert second[:3] == (32767, 2**31 - 1, 2**63 - 1)
    assert first[3] == 1.5 and second[3] == float("-inf")
    assert first[4] == 0.1 + 0.2 and second[4] != second[4]  # NaN survives as NaN
    assert (first[5], second[5]) == (True, False)
    assert second[6] == "quote \" and \\ and\nnewline, comma; ☃" and first[6] == ""
    assert (first[7], second[7]) == ("abc", "é")
    assert json.loads(first[8]) == {"a": 1, "b": "x"} and json.loads(second[8])["b"] == "ü"
    assert first[9] == aware and second[9].year == 2262
    assert first[10] == dt.datetime(1900, 2, 28, 12, 0)
    assert first[11] == decimal.Decimal("-123456789012.34")
    assert second[11] == decimal.Decimal("0.01") or second[11] == decimal.Decimal("0.00")
    assert first[12] == ["a", None, "c"] and second[12] == []
    assert first[13] == [1, 2**31 - 1] and second[13] == [None]
    assert third == (None,) * 14


def test_a_value_that_does_not_fit_its_column_is_refused_and_nothing_changes(
        postgres_url: str) -> None:
    warehouse = Warehouse(url=postgres_url, schema_name=f"t_{uuid.uuid4().hex[:10]}")
    warehouse.execute("CREATE TABLE counts (as_of_date DATE NOT NULL, quantity INTEGER)")
    warehouse.replace_partition("counts", pl.DataFrame({"as_of_date": [DAY], "quantity": [7]}),
                                partition_value=DAY)
    for bad in (2**40, "seven"):
        with pytest.raises(ValueError, match="quantity"):
            warehouse.replace_partition(
                "counts", pl.DataFrame({"as_of_date": [DAY], "quantity": [bad]}),
                partition_value=DAY)
    assert warehouse.read("SELECT * FROM counts")["quantity"].to_list() == [7]


# --- partition swap ------------------------------------------------------------------------

def test_migration_partitions_exactly_the_swapped_tables(pg: Warehouse) -> None:
    partitioned = sorted(row[0] for row in _catalog(pg, (
        "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s")))
    assert partitioned == sorted(SWAPPED_TABLES)
    assert _partitions(pg) == ["behavioral_profiles_default"]


def test_replacing_a_day_twice_gives_the_same_table_and_one_partition_per_day(pg: Warehouse
                                                                             ) -> None:
    pg.replace_partition("behavioral_profiles", _profiles(DAY, 25_000, 1), partition_value=DAY)
    pg.replace_partition("behavioral_profiles", _profiles(NEXT_DAY, 10, 1),
                         partition_value=NEXT_DAY)
    first = pg.read("SELECT * FROM behavioral_profiles ORDER BY as_of_date, user_id")
    pg.replace_partition("behavioral_profiles", _profiles(DAY, 25_000, 1), partition_value=DAY)
    again = pg.read("SELECT * FROM behavioral_profiles ORDER BY as_of_date, user_id")
    assert again.equals(first)
    assert first.height == 25_010
    assert _partitions(pg) == sorted([partition_name("behavioral_profiles", DAY),
                                      partition_name("behavioral_profiles", NEXT_DAY),
                                      "behavioral_profiles_default"])
    assert _load_tables(pg) == []
    assert pg.read("SELECT count(*) AS n FROM behavioral_profiles_default")["n"][0] == 0


def test_the_loaded_day_holds_exactly_the_frame(pg: Warehouse) -> None:
    """Three sessions share the batches: every row arrives once, values unchanged."""
    pg_three = Warehouse(url=pg.url, schema_name=pg.schema_name, load_sessions=3)
    frame = _profiles(DAY, 50_001, 7)  # three 20k-row batches, one per session
    pg_three.replace_partition("behavioral_profiles", frame, partition_value=DAY)
    stored = _day(pg, DAY)
    assert stored["user_id"].to_list() == frame["user_id"].to_list()
    assert stored["total_spent"].cast(pl.Float64).to_list() == frame["total_spent"].to_list()
    assert stored["detected_patterns"].to_list() == frame["detected_patterns"].to_list()
    assert stored["weekend_share"].null_count() == frame["weekend_share"].null_count()
    assert stored["first_purchase_at"][0] == frame["first_purchase_at"][0]


def test_a_shrinking_or_empty_day_replaces_the_old_rows(pg: Warehouse) -> None:
    pg.replace_partition("behavioral_profiles", _profiles(DAY, 500, 1), partition_value=DAY)
    pg.replace_partition("behavioral_profiles", _profiles(DAY, 3, 2), partition_value=DAY)
    assert _day(pg, DAY)["transaction_count"].to_list() == [2, 2, 2]
    pg.replace_partition("behavioral_profiles", _profiles(DAY, 0), partition_value=DAY)
    assert _day(pg, DAY).height == 0


def test_rows_in_the_default_partition_for_that_day_are_replaced(pg: Warehouse) -> None:
    """Rows written by hand before the day had a partition land in DEFAULT; the swap must
    not duplicate them (nor refuse to attach), and other days stay where they are."""
    with psycopg.connect(pg.url) as connection:
        connection.execute(f"SET search_path TO {pg.schema_name}")
        for day, users in ((DAY, 4), (NEXT_DAY, 2)):
            frame = _profiles(day, users, 9).with_columns(
                pl.col("detected_patterns").list.join(","))
            for row in frame.iter_rows():
                connection.execute(
                    "INSERT INTO behavioral_profiles VALUES (" + ", ".join(["%s"] * len(row))
                    + ")", [("{" + v + "}") if name == "detected_patterns" else v
                            for name, v in zip(frame.columns, row, strict=True)])
    assert pg.read("SELECT count(*) AS n FROM behavioral_profiles_default")["n"][0] == 6
    pg.replace_partition("behavioral_profiles", _profiles(DAY, 3, 1), partition_value=DAY)
    assert _day(pg, DAY)["transaction_count"].to_list() == [1, 1, 1]
    assert _day(pg, NEXT_DAY)["transaction_count"].to_list() == [9, 9]


def test_a_failed_load_keeps_the_old_day_and_leaves_no_table_behind(pg: Warehouse) -> None:
    pg.replace_partition("behavioral_profiles", _profiles(DAY, 20_000, 1), partition_value=DAY)
    before = _day(pg, DAY)
    # Scores must be 1-5 (a CHECK constraint the load table inherits): the second slice
    # fails on the server, after the first slice was already committed into the load table.
    broken = _profiles(DAY, 20_000, 2).with_columns(
        pl.when(pl.col("user_id") > 15_000).then(9).otherwise(5).alias("recency_score"))
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.replace_partition("behavioral_profiles", broken, partition_value=DAY)
    assert _day(pg, DAY).equals(before)
    assert _load_tables(pg) == []


def test_an_orphaned_load_table_is_dropped_but_a_live_one_is_kept(pg: Warehouse) -> None:
    """A dead load (day table and a leaf) has a free advisory lock and goes; a load whose
    session is alive, here one holding its lock, stays."""
    schema = pg.schema_name
    dead = "behavioral_profiles_load_dead00000000"
    live = "behavioral_profiles_load_11ff00000000"
    with psycopg.connect(pg.url, autocommit=True) as session:
        for name in (dead, f"{dead}_s0", live, f"{live}_s1"):
            session.execute(f"CREATE TABLE {schema}.{name} (LIKE {schema}.behavioral_profiles)")
        session.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"{schema}.{live}",))
        pg.replace_partition("behavioral_profiles", _profiles(DAY, 5, 1), partition_value=DAY)
        assert _load_tables(pg) == [live, f"{live}_s1"]


def test_each_session_loads_its_own_leaf_of_the_day(pg: Warehouse) -> None:
    """Three sessions: the day is RANGE-partitioned by user_id into three leaves, their
    ranges cut between users, and a lookup of one user touches one leaf."""
    pg_three = Warehouse(url=pg.url, schema_name=pg.schema_name, load_sessions=3)
    frame = _profiles(DAY, 9_000, 4).sample(fraction=1.0, shuffle=True, seed=7)
    pg_three.replace_partition("behavioral_profiles", frame, partition_value=DAY)
    day = partition_name("behavioral_profiles", DAY)
    leaves = _catalog(pg, (
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), "
        "(SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
        "FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
        "JOIN pg_class p ON p.oid = h.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        f"WHERE n.nspname = %(schema)s AND p.relname = '{day}' ORDER BY 1"))
    assert [name for name, _, _ in leaves] == [f"{day}_s0", f"{day}_s1", f"{day}_s2"]
    assert all(primary_keys == 1 for _, _, primary_keys in leaves)
    counts = [pg.read(f"SELECT count(*) AS n FROM {name}")["n"][0] for name, _, _ in leaves]
    assert sum(counts) == 9_000 and min(counts) >= 2_500
    with psycopg.connect(pg.url) as connection:
        plan = "\n".join(row[0] for row in connection.execute(
            f"EXPLAIN SELECT * FROM {pg.schema_name}.behavioral_profiles "
            f"WHERE as_of_date = '{DAY}' AND user_id = 4500"))
    assert sum(f"{day}_s{index}" in plan for index in range(3)) == 1, plan


def test_migrating_a_populated_table_keeps_its_rows_and_grants(postgres_url: str) -> None:
    from resources.migrations import apply_migrations, discover_migrations

    schema = f"t_{uuid.uuid4().hex[:10]}"
    role = f"reader_{uuid.uuid4().hex[:8]}"
    old = Warehouse(url=postgres_url, schema_name=schema)
    apply_migrations(old.backend, schema, up_to="0004")
    old._migrated = True  # written as a release with migrations 0001-0004 would
    old.replace_partition("behavioral_profiles", _profiles(DAY, 300, 1), partition_value=DAY)
    old.replace_partition("behavioral_profiles", _profiles(NEXT_DAY, 200, 2),
                          partition_value=NEXT_DAY)
    before = old.read("SELECT * FROM behavioral_profiles ORDER BY as_of_date, user_id")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role}")
        admin.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        admin.execute(f"GRANT SELECT ON {schema}.behavioral_profiles TO {role}")
    try:
        new = Warehouse(url=postgres_url, schema_name=schema)
        assert new.migrate() == [migration.version for migration in
                                 discover_migrations("postgres") if migration.version > "0004"]
        after = new.read("SELECT * FROM behavioral_profiles ORDER BY as_of_date, user_id")
        assert after.drop("source_user_id").equals(before)
        # 0009: rows from before text ids existed carry their integer id as text
        assert after["source_user_id"].to_list() == after["user_id"].cast(pl.String).to_list()
        assert _partitions(new) == sorted([partition_name("behavioral_profiles", DAY),
                                           partition_name("behavioral_profiles", NEXT_DAY),
                                           "behavioral_profiles_default"])
        with psycopg.connect(postgres_url) as reader:
            reader.execute(f"SET ROLE {role}")
            count = reader.execute(f"SELECT count(*) FROM {schema}.behavioral_profiles")
            assert count.fetchone() == (500,)
        new.replace_partition("behavioral_profiles", _profiles(DAY, 7, 3), partition_value=DAY)
        assert _day(new, DAY).height == 7 and _day(new, NEXT_DAY).height == 200
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.execute(f"DROP ROLE {role}")


def test_readers_see_one_whole_version_while_days_are_swapped(pg: Warehouse) -> None:
    """A writer flips one day between version 1 (3,000 rows) and version 2 (2,000 rows).

    A READ COMMITTED statement, and a REPEATABLE READ transaction that locks the table
    first as the API does, must each see one whole version: never none, never a mix.
    """
    versions = {1: _profiles(DAY, 3_000, 1), 2: _profiles(DAY, 2_000, 2)}
    pg.replace_partition("behavioral_profiles", versions[1], partition_value=DAY)
    stop = threading.Event()
    swaps = []
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set():
                version = 2 if len(swaps) % 2 == 0 else 1
                pg.replace_partition("behavioral_profiles", versions[version],
                                     partition_value=DAY)
                swaps.append(version)
        except BaseException as error:
            errors.append(error)

    query = (f"SELECT count(*), min(transaction_count), max(transaction_count) "
             f"FROM {pg.schema_name}.behavioral_profiles WHERE as_of_date = '{DAY}'")
    seen = []
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with psycopg.connect(pg.url, autocommit=True) as reader:
            while len(swaps) < 8 and not errors:
                seen.append(reader.execute(query).fetchone())
                with reader.transaction():
                    reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    reader.execute(LOCK.format(pg.schema_name))
                    # The snapshot is taken here, before the table is read: without the
                    # lock, a swap committed during the sleep leaves the day empty to it.
                    reader.execute("SELECT pg_sleep(0.02)")
                    first = reader.execute(query).fetchone()
                    assert reader.execute(query).fetchone() == first
                    seen.append(first)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert set(seen) <= {(3_000, 1, 1), (2_000, 2, 2)}, set(seen) - {(3_000, 1, 1),
                                                                     (2_000, 2, 2)}
    assert len(swaps) >= 8


@given(values=st.lists(st.integers(min_value=-5, max_value=40), max_size=60),
       sessions=st.integers(min_value=1, max_value=5))
def test_leaves_cover_every_row_once_and_never_split_a_user(values: list[int], sessions: int
                                                            ) -> None:
    from resources.partition_swap import _leaves

    ordered = pl.Series(sorted(values), dtype=pl.Int64)
    leaves = _leaves("t_load_000000000000", ordered, sessions)
    assert 1 <= len(leaves) <= sessions
    assert leaves[0].start == 0 and leaves[-1].stop == len(values)
    assert all(a.stop == b.start and a.high == b.low for a, b in itertools.pairwise(leaves))
    for leaf in leaves:
        rows = ordered[leaf.start:leaf.stop].to_list()
        assert all((leaf.low is None or v >= leaf.low) and (leaf.high is None or v < leaf.high)
                   for v in rows)
        assert rows or len(values) == 0  # no empty leaf unless there are no rows at all


def test_two_writers_of_the_same_day_take_turns(pg: Warehouse) -> None:
    """An hourly run and a backfill can write the same day at once: both succeed, the day
    ends as one writer's whole version, and nothing is left behind."""
    versions = {version: _profiles(DAY, 4_000 + version, version) for version in (1, 2, 3)}
    errors: list[BaseException] = []

    def write(version: int) -> None:
        try:
            Warehouse(url=pg.url, schema_name=pg.schema_name).replace_partition(
                "behavioral_profiles", versions[version], partition_value=DAY)
        except BaseException as error:
            errors.append(error)

    writers = [threading.Thread(target=write, args=(version,)) for version in versions]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not errors, errors
    stored = _day(pg, DAY)
    (version,) = set(stored["transaction_count"].to_list())
    assert stored.height == 4_000 + version
    assert _partitions(pg) == sorted([partition_name("behavioral_profiles", DAY),
                                      "behavioral_profiles_default"])
    assert _load_tables(pg) == []
