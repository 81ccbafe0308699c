"""The incremental publish against real Delta change data feeds and fakesnow: only what changed moves, deletes
propagate, a noop reads no gold data, a crash at any step converges on retry, columns are only ever added, and
the bulk path loads Parquet from an S3 stage (moto's S3 server) with COPY INTO.

The gold table here is written by hand with the shape of gold.fact_orders (its key, day partition, currency and
amount), so every change and its expected warehouse result is known without our gold transforms. The feed and
its rows come from Delta itself (replaceWhere, MERGE, DELETE), not from anything this project wrote.

Stand-in, said plainly: Snowflake's external stage reads S3 through a storage integration. fakesnow's DuckDB
has no httpfs extension for its version on PyPI (duckdb 2.0.1; duckdb-extension-httpfs stops at 1.5.5) and no
internet to fetch one, so the S3 test gives fakesnow's DuckDB connection pyarrow's S3 file system (pointed at
moto) through DuckDB's documented `register_filesystem`: the storage integration's job, done locally.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal as D
from pathlib import Path

import boto3
import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from fsspec.implementations.arrow import ArrowFSWrapper
from moto.server import ThreadedMotoServer
from pyarrow import fs as pafs
from pyspark.sql import functions as F

from northstar.config.env import SnowflakeSpec
from northstar.gold.tables import GOLD
from northstar.lake import delta
from northstar.warehouse import changes, loaders, published
from northstar.warehouse import publish as pub
from northstar.warehouse.connection import connect, execute
from tests.helpers.envs import make_env
from tests.helpers.moto_aws import REGION, free_port, point_s3a_at

FACT = GOLD["fact_orders"]
SCHEMA = (
    "source_system string, order_id string, order_date date, currency string, total_amount decimal(18,2), "
    "status string, created_at timestamp"
)
DAY1, DAY2, DAY3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def row(order_id, day, amount, status="paid", currency="EUR"):
    return ("shop", order_id, day, currency, D(amount), status, dt.datetime.combine(day, dt.time(9, 30)))


START = [
    row("o1", DAY1, "10.00"),
    row("o2", DAY1, "20.00"),
    row("o3", DAY1, "30.00", currency="USD"),
    row("o4", DAY2, "40.00"),
    row("o5", DAY2, "50.00"),
    row("o6", DAY2, "60.00"),
]


def spec_for(root: Path, **extra) -> SnowflakeSpec:
    return SnowflakeSpec(
        mode="fakesnow", account="local", database="NORTHSTAR", warehouse="WH", role="PUBLISHER",
        user="env:USER", password="env:NORTHSTAR_SNOWFLAKE_PASSWORD", fakesnow_path=str(root / "snowflake"),
        **extra,
    )  # fmt: skip


@pytest.fixture
def world(spark, tmp_path, monkeypatch):
    """A gold.fact_orders of six rows at version 0 (change feed on) and an env publishing to fakesnow."""
    monkeypatch.setenv("NORTHSTAR_SNOWFLAKE_PASSWORD", "not-used-by-fakesnow")
    env = make_env(tmp_path).model_copy(update={"snowflake": spec_for(tmp_path)})
    path = FACT.table.path(env)
    frame = spark.createDataFrame(START, SCHEMA)
    frame.write.format("delta").partitionBy("order_date").option(delta.CHANGE_FEED, "true").save(path)
    return env, path


def replace_day(spark, path, day, rows):
    """What the gold runner does: the day's partition replaced in one commit."""
    (
        spark.createDataFrame(rows, SCHEMA).write.format("delta").mode("overwrite")
        .option("replaceWhere", f"order_date = DATE'{day.isoformat()}'").save(path)
    )  # fmt: skip
    return delta.current_version(spark, path)


def warehouse_rows(conn, env) -> set:
    target = pub.qualified(env.snowflake, "fact_orders")
    return {
        tuple(v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for v in r)
        for r in execute(conn, f"SELECT * EXCLUDE (_LOADED_AT, _RUN_ID) FROM {target} ORDER BY ORDER_ID")
    }


def gold_rows(spark, path, version) -> set:
    frame = spark.read.format("delta").option("versionAsOf", version).load(path)
    return {tuple(r) for r in frame.select(*[c for c in frame.columns]).collect()}


def publish(spark, env, conn, version, run_id):
    return pub.publish_table(spark, env, conn, FACT, run_id=run_id, version=version)


def test_net_changes_of_a_real_feed_are_only_the_rows_that_differ(spark, world):
    env, path = world
    # day 1 rewritten: o1 identical, o2 changed, o3 gone, o7 new; then a MERGE update and a DELETE on day 2,
    # and a row added and removed again inside the range
    replace_day(
        spark, path, DAY1, [row("o1", DAY1, "10.00"), row("o2", DAY1, "22.00"), row("o7", DAY1, "70.00")]
    )
    table = DeltaTable.forPath(spark, path)
    table.update("order_id = 'o4'", {"status": "'refunded'"})
    table.delete("order_id = 'o5'")
    spark.createDataFrame([row("o8", DAY3, "80.00")], SCHEMA).write.format("delta").mode("append").save(path)
    table.delete("order_id = 'o8'")
    end = delta.current_version(spark, path)

    feed = delta.change_feed(spark, path, 1, end)
    assert feed is not None
    got = changes.net_changes(feed, FACT.key).orderBy("order_id")
    expected = spark.createDataFrame(
        [
            (*row("o2", DAY1, "22.00"), False),
            (*row("o3", DAY1, "30.00", currency="USD"), True),  # deleted: its image before the range
            (*row("o4", DAY2, "40.00", status="refunded"), False),
            (*row("o5", DAY2, "50.00"), True),
            (*row("o7", DAY1, "70.00"), False),
        ],
        SCHEMA + ", _deleted boolean",
    )
    assert_df_equality(got, expected, ignore_nullable=True)
    touched = {tuple(r) for r in changes.touched_partitions(feed, ["order_date", "currency"]).collect()}
    assert touched == {(DAY1, "EUR"), (DAY1, "USD"), (DAY2, "EUR"), (DAY3, "EUR")}


def test_change_feed_off_for_part_of_the_range_is_reported_not_guessed(spark, tmp_path):
    path = str(tmp_path / "plain")
    spark.createDataFrame(START, SCHEMA).write.format("delta").save(path)
    spark.createDataFrame([row("o9", DAY3, "9.00")], SCHEMA).write.format("delta").mode("append").save(path)
    assert delta.change_feed(spark, path, 1, 1) is None  # written before the feed was on: Delta refuses it
    delta.enable_change_feed(spark, path)
    spark.createDataFrame([row("o10", DAY3, "9.00")], SCHEMA).write.format("delta").mode("append").save(path)
    assert delta.change_feed(spark, path, 3, 3).count() == 1


def test_first_publish_is_full_then_only_changes_move_and_deletes_propagate(spark, world):
    env, path = world
    with connect(env.snowflake) as conn:
        first = publish(spark, env, conn, 0, "publish-1")
        assert (first.mode, first.upserted, first.deleted, first.rows) == (pub.FULL, 6, 0, 6)
        assert warehouse_rows(conn, env) == gold_rows(spark, path, 0)
        assert first.reconciled
        assert first.differences

        replace_day(
            spark, path, DAY1, [row("o1", DAY1, "10.00"), row("o2", DAY1, "22.00"), row("o7", DAY1, "7.00")]
        )
        DeltaTable.forPath(spark, path).delete("order_id = 'o6'")
        version = delta.current_version(spark, path)
        second = publish(spark, env, conn, version, "publish-2")
        # o2 changed, o7 new; o3 and o6 deleted; o1 rewritten unchanged and not moved
        assert (second.mode, second.from_version, second.upserted, second.deleted) == (
            pub.INCREMENTAL,
            0,
            2,
            2,
        )
        assert warehouse_rows(conn, env) == gold_rows(spark, path, version)
        assert second.reconciled
        # only the touched partitions were compared: day 1 (EUR, and USD where o3 was: empty on both sides
        # now, so compared as 0 rows each) and day 2
        assert {d.partition for d in second.differences} == {
            (str(DAY1), "EUR"), (str(DAY1), "USD"), (str(DAY2), "EUR")
        }  # fmt: skip
        emptied = [d for d in second.differences if d.partition == (str(DAY1), "USD")]
        assert [(d.metric, d.lake, d.warehouse) for d in emptied] == [("rows", 0, 0)]
        held = execute(conn, f"SELECT GOLD_VERSION, MODE, RUN_ID FROM {published.qualified(env.snowflake)}")
        assert held == [(version, pub.INCREMENTAL, "publish-2")]
        stamps = dict(execute(conn, "SELECT ORDER_ID, _RUN_ID FROM NORTHSTAR.ANALYTICS.FACT_ORDERS"))
        assert stamps == {
            "o1": "publish-1",
            "o2": "publish-2",
            "o4": "publish-1",
            "o5": "publish-1",
            "o7": "publish-2",
        }


def test_a_noop_publish_reads_no_gold_data(spark, world):
    env, path = world
    with connect(env.snowflake) as conn:
        publish(spark, env, conn, 0, "publish-1")
        before = warehouse_rows(conn, env)
        # take every data file away (the Delta log stays): any read of gold rows would now fail
        for part in Path(path).glob("order_date=*"):
            shutil.rmtree(part)
        again = publish(spark, env, conn, 0, "publish-2")
        assert (again.mode, again.upserted, again.deleted, again.differences) == (pub.NOOP, 0, 0, [])
        assert warehouse_rows(conn, env) == before


def _crash_after_stage_write(monkeypatch):
    def crash(*args, **kwargs):
        raise ConnectionError("simulated crash: Parquet staged, COPY INTO never ran")

    monkeypatch.setattr(loaders, "copy_statements", crash)


def _crash_after_copy(monkeypatch):
    def crash(conn, statements, **kwargs):
        raise ConnectionError("simulated crash: staging table loaded, the MERGE never ran")

    monkeypatch.setattr(pub, "apply_staging", crash)


def _crash_after_merge(monkeypatch):
    real = pub.apply_staging

    def crash(conn, statements, **kwargs):
        real(conn, statements[:-2], **kwargs)  # the MERGE ran; the version record (its last two) did not
        raise ConnectionError("simulated crash: MERGE applied, version not recorded")

    monkeypatch.setattr(pub, "apply_staging", crash)


def _crash_before_reconcile(monkeypatch):
    def crash(*args, **kwargs):
        raise ConnectionError("simulated crash: version recorded, reconciliation never ran")

    monkeypatch.setattr(pub, "check_table", crash)


@pytest.mark.parametrize(
    "crash", [_crash_after_stage_write, _crash_after_copy, _crash_after_merge, _crash_before_reconcile]
)
def test_a_crash_at_any_step_then_retry_equals_gold_with_no_double_apply_or_gap(spark, world, crash):
    env, path = world
    with connect(env.snowflake) as conn:
        publish(spark, env, conn, 0, "publish-1")
        replace_day(spark, path, DAY2, [row("o4", DAY2, "44.00"), row("o9", DAY2, "90.00")])
        DeltaTable.forPath(spark, path).update("order_id = 'o1'", {"total_amount": "11.00"})
        version = delta.current_version(spark, path)
        with pytest.MonkeyPatch.context() as patch:
            crash(patch)
            with pytest.raises(ConnectionError):
                publish(spark, env, conn, version, "publish-2-crashed")
        retry = publish(spark, env, conn, version, "publish-3-retry")
        assert warehouse_rows(conn, env) == gold_rows(spark, path, version)
        assert published.held_version(conn, env.snowflake, "fact_orders") == version
        counts = execute(conn, "SELECT ORDER_ID, COUNT(*) FROM NORTHSTAR.ANALYTICS.FACT_ORDERS GROUP BY 1")
        assert max(n for _, n in counts) == 1
        assert not execute(
            conn,
            "SELECT table_name FROM NORTHSTAR.information_schema.tables WHERE table_name LIKE '%__STG_%'",
        )
        if crash is _crash_before_reconcile:
            assert retry.mode == pub.NOOP  # the version was recorded with the data: nothing left to move
        else:
            assert (retry.mode, retry.upserted, retry.deleted) == (pub.INCREMENTAL, 3, 2)
            assert retry.reconciled


def test_a_new_gold_column_is_added_to_the_warehouse_and_filled_by_the_changes(spark, world):
    env, path = world
    with connect(env.snowflake) as conn:
        publish(spark, env, conn, 0, "publish-1")
        wider = spark.createDataFrame(
            [row("o4", DAY2, "40.00"), row("o5", DAY2, "50.00")], SCHEMA
        ).withColumn("sales_channel", F.lit("shop"))
        (
            wider.write.format("delta").mode("overwrite").option("mergeSchema", "true")
            .option("replaceWhere", f"order_date = DATE'{DAY2.isoformat()}'").save(path)
        )  # fmt: skip
        version = delta.current_version(spark, path)
        result = publish(spark, env, conn, version, "publish-2")
        assert result.added_columns == ["SALES_CHANNEL"]
        assert (result.mode, result.upserted, result.deleted) == (pub.INCREMENTAL, 2, 1)  # o6 left day 2
        assert warehouse_rows(conn, env) == gold_rows(spark, path, version)


@pytest.fixture
def s3_stage(spark):
    """moto's S3 server, Spark's s3a:// pointed at it, and a bucket for the warehouse stage."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    point_s3a_at(spark, endpoint)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="ns-warehouse-stage")
    yield endpoint, client
    server.stop()


class _S3(ArrowFSWrapper):
    """pyarrow's S3 file system under the s3:// protocol DuckDB asks for."""

    protocol = ("s3",)


def test_bulk_load_copies_parquet_from_an_s3_stage(spark, world, s3_stage, tmp_path):
    env, path = world
    endpoint, client = s3_stage
    env = env.model_copy(
        update={"snowflake": spec_for(tmp_path, stage_location="s3a://ns-warehouse-stage/gold")}
    )
    with connect(env.snowflake) as conn:
        s3 = pafs.S3FileSystem(
            endpoint_override=endpoint,
            scheme="http",
            access_key="testing",
            secret_key="testing",
            region=REGION,
        )
        conn._duck_conn.register_filesystem(_S3(s3))  # the storage integration's part (module docstring)
        first = publish(spark, env, conn, 0, "publish-s3-1")
        replace_day(spark, path, DAY1, [row("o1", DAY1, "15.00")])
        version = delta.current_version(spark, path)
        second = publish(spark, env, conn, version, "publish-s3-2")
        stage = execute(conn, "SHOW STAGES IN SCHEMA NORTHSTAR.NORTHSTAR_OPS")
        assert warehouse_rows(conn, env) == gold_rows(spark, path, version)
    assert (first.mode, first.upserted) == (pub.FULL, 6)
    assert (second.mode, second.upserted, second.deleted) == (pub.INCREMENTAL, 1, 2)
    assert any("s3://ns-warehouse-stage/gold/" in str(v) for r in stage for v in r)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="ns-warehouse-stage").get("Contents", [])]
    assert [
        k for k in keys if not k.endswith("/")
    ] == []  # staged files removed once loaded (s3a keeps "gold/")
