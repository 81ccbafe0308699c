"""Product-event stream end to end on one small lake: crashes and restarts, micro-batch sessions, late events,
minute aggregates, replay of a range, and a deletion request that leaves no trace in any table or file.

Four Firehose files, one per micro-batch (maxFilesPerTrigger=1), times on 2026-11-20 (UTC):
  file 1: A 10:00, A 10:05 (delivered twice), anonymous device B 10:01, a truncated line of A, A without id
  file 2: A 10:20 (A's session spans batches), B checkout 10:10 + order 10:12, D 10:00, C 10:55 (watermark
          -> 10:45; Spark judges late events against the previous batch's watermark, so it applies to file 4)
  file 3: D 10:40 (40 min after D 10:00: a second session)
  file 4: A 10:47 (late but inside the watermark: extends A's session), D 10:20 (beyond the watermark: only
          bronze, until catch-up joins D's two sessions into one), another copy of A 10:05
The run crashes twice (bronze after its write of batch 1; silver after applying batch 1) and is restarted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.utils import StreamingQueryException

from northstar.catalog import all_tables
from northstar.config import load_source
from northstar.dev.simulate.events import write_firehose_file
from northstar.lake import delta, tables
from northstar.privacy import requests
from northstar.privacy.deletion import process_requests, token_of
from northstar.privacy.spec import load_privacy
from northstar.streaming import run
from northstar.streaming import transforms as tx
from tests.helpers.envs import make_env

KEY = "test-user-token-key-0123456789abcdef"
DAY = "2026-11-20"
VOLATILE = ["_updated_at"]  # when a row was written: the only column a re-run may change


def event(event_id, hhmm, kind="page_view", user=None, device=None, order=None) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "event_time": f"{DAY}T{hhmm}:00.000Z",
            "event_type": kind,
            "user_id": user,
            "device_id": device or f"phone-{user[5:]}",  # user-A -> phone-A
            "platform": "web",
            "page": f"/p/{event_id}",
            "order_id": order,
        }
    )


A2 = event("a2", "10:05", "product_view", "user-A")
FILES = [
    [
        event("a1", "10:00", user="user-A"),
        A2,
        A2,
        event("b1", "10:01", device="dev-B"),
        event("m1", "10:02", user="user-A")[:-30],  # truncated in transit: quarantined, still holds A's id
        event(None, "10:03", user="user-A"),  # no event id: quarantined
    ],
    [
        event("a3", "10:20", "add_to_cart", "user-A"),
        event("b2", "10:10", "checkout_started", device="dev-B"),
        event("b3", "10:12", "order_placed", device="dev-B", order="ord-1"),
        event("d1", "10:00", user="user-D"),
        event("c1", "10:55", user="user-C"),
    ],
    [event("d2", "10:40", user="user-D")],
    [event("a4", "10:47", user="user-A"), event("d3", "10:20", user="user-D"), A2],
]
LINES = sum(len(f) for f in FILES)


def deliver(env, source, index: int) -> None:
    at = datetime(2026, 11, 20, 11, index, tzinfo=UTC)
    write_firehose_file(env.landing, source.tables["events"].landing, FILES[index], at, index)


def crash_after(monkeypatch, factory_name: str, batch: int) -> None:
    """Make a foreachBatch writer fail right after it has done its work for `batch` (as a lost executor or a
    killed driver would, before the checkpoint records the batch)."""
    real = getattr(run, factory_name)

    def factory(*args, **kwargs):
        write = real(*args, **kwargs)

        def crashing(frame, batch_id):
            write(frame, batch_id)
            if batch_id == batch:
                raise RuntimeError(f"injected crash after batch {batch_id}")

        return crashing

    monkeypatch.setattr(run, factory_name, factory)


def rows(spark, path, drop=VOLATILE):
    return sorted(tuple(r) for r in spark.read.format("delta").load(path).drop(*drop).collect())


def one_batch_silver(spark, env, source):
    bronze = spark.read.format("delta").load(tables.bronze(source.name, source.stream.table).path(env))
    return tx.one_per_event(tx.to_silver(tx.valid_rows(bronze, source.stream), source.stream, KEY.encode()))


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("NORTHSTAR_USER_TOKEN_KEY", KEY)
    env = make_env(tmp_path_factory.mktemp("stream"))
    source = load_source("clickstream")
    ns = SimpleNamespace(env=env, source=source)
    stream_args = {"max_files_per_trigger": 1}

    deliver(env, source, 0)
    deliver(env, source, 1)
    with pytest.MonkeyPatch.context() as crash:
        crash_after(crash, "bronze_batch_writer", 1)
        with pytest.raises(StreamingQueryException, match="injected crash"):
            run.run_available_now(spark, env, source, **stream_args)
    deliver(env, source, 2)
    deliver(env, source, 3)
    with pytest.MonkeyPatch.context() as crash:
        crash_after(crash, "silver_batch_writer", 1)
        with pytest.raises(StreamingQueryException, match="injected crash"):
            run.run_available_now(spark, env, source, **stream_args)
    ns.result = run.run_available_now(spark, env, source, **stream_args)

    ns.silver_after_stream = rows(spark, tables.silver(source.name, source.stream.table).path(env))
    ns.sessions_after_stream = rows(spark, tables.stream_sessions(source.name).path(env))
    ns.sessions_one_batch_of_stream = sorted(
        tuple(r)
        for r in tx.sessionize(
            spark.read.format("delta").load(tables.silver(source.name, source.stream.table).path(env)),
            source.stream.session_gap,
        ).collect()
    )
    ns.catch_up = run.catch_up(spark, env, source)
    ns.catch_up_again = run.catch_up(spark, env, source)
    yield ns
    patch.undo()


def test_stream_restarted_after_crashes_loses_and_duplicates_nothing(spark, lake):
    env, source = lake.env, lake.source
    bronze = spark.read.format("delta").load(tables.bronze(source.name, source.stream.table).path(env))
    assert bronze.count() == LINES  # every line that landed, once, though batch 1 was written before a crash
    assert bronze.groupBy("_run_id").count().orderBy("_run_id").select("count").collect() == [
        (len(f),) for f in FILES
    ]
    ledger_rows = (
        spark.read.format("delta").load(tables.RUN_LEDGER.path(env)).where(F.col("job").startswith("stream_"))
    )
    per_batch = {(r["job"], r["run_id"]): r for r in ledger_rows.collect()}
    assert len(per_batch) == ledger_rows.count()  # one row per micro-batch, the replayed ones included
    bronze_rows = [r for (job, _), r in per_batch.items() if job == "stream_bronze"]
    assert len(bronze_rows) == 4
    assert sum(r["records_read"] for r in bronze_rows) == LINES
    assert sum(r["records_quarantined"] for r in bronze_rows) == 2
    assert all(r["records_read"] == r["records_written"] + r["records_quarantined"] for r in bronze_rows)
    assert len([1 for (job, _) in per_batch if job == "stream_silver"]) == 4
    quarantined = spark.read.format("delta").load(
        tables.quarantine(source.name, source.stream.table).path(env)
    )
    assert sorted(r["reason"] for r in quarantined.collect()) == ["malformed_record", "null_primary_key"]
    # silver: every valid event id once, except d3 (behind the watermark, still in bronze)
    assert sorted(r[0] for r in lake.silver_after_stream) == sorted(
        ["a1", "a2", "b1", "a3", "b2", "b3", "d1", "c1", "d2", "a4"]
    )


def test_sessions_across_micro_batches_equal_one_batch(lake):
    assert lake.sessions_after_stream == lake.sessions_one_batch_of_stream


def test_late_event_inside_watermark_updates_its_session(spark, lake):
    env, source = lake.env, lake.source
    path = tables.stream_sessions(source.name).path(env)
    user_a = "u:" + token_of(spark, "user-A", KEY.encode())

    def a_session(version):
        frame = spark.read.format("delta").option("versionAsOf", version).load(path)
        return [
            (r["session_end"].strftime("%H:%M"), r["events"])
            for r in frame.where(F.col("visitor_key") == user_a).collect()
        ]

    history = [a_session(v) for v in range(delta.latest_version(spark, path) + 1)]
    assert [("10:20", 3)] in history  # before the late event arrived
    assert a_session(delta.latest_version(spark, path)) == [("10:47", 4)]  # the late event joined the session


def test_event_beyond_watermark_reaches_bronze_and_the_batch_path_corrects_sessions(spark, lake):
    env, source = lake.env, lake.source
    assert "d3" not in [r[0] for r in lake.silver_after_stream]
    bronze = spark.read.format("delta").load(tables.bronze(source.name, source.stream.table).path(env))
    assert bronze.where("event_id = 'd3'").count() == 1
    assert lake.result.dropped_late >= 1
    assert (lake.catch_up.records_read, lake.catch_up.records_written) == (
        1,
        1,
    )  # d3; a2's late copy was held
    assert lake.catch_up_again.status == "noop"
    silver = spark.read.format("delta").load(tables.silver(source.name, source.stream.table).path(env))
    assert silver.where("event_id = 'd3'").count() == 1
    one_batch = tx.sessionize(one_batch_silver(spark, env, source), source.stream.session_gap)
    sessions_table = spark.read.format("delta").load(tables.stream_sessions(source.name).path(env))
    assert_df_equality(sessions_table.drop(*VOLATILE), one_batch, ignore_row_order=True, ignore_nullable=True)
    user_d = "u:" + token_of(spark, "user-D", KEY.encode())
    sessions = spark.read.format("delta").load(tables.stream_sessions(source.name).path(env))
    d = [
        (r["session_start"].strftime("%H:%M"), r["session_end"].strftime("%H:%M"), r["events"])
        for r in sessions.where(F.col("visitor_key") == user_d).collect()
    ]
    assert d == [("10:00", "10:40", 3)]  # the two sessions D 10:00 and D 10:40 joined by the late 10:20


def test_minute_aggregates_and_conversion(spark, lake):
    env, source = lake.env, lake.source
    expected = tx.minute_aggregates(
        spark.read.format("delta").load(tables.silver(source.name, source.stream.table).path(env))
    )
    minutes_table = spark.read.format("delta").load(tables.stream_minutes(source.name).path(env))
    assert_df_equality(minutes_table.drop(*VOLATILE), expected, ignore_row_order=True, ignore_nullable=True)
    minute = spark.read.format("delta").load(tables.stream_minutes(source.name).path(env))
    assert minute.where(f"minute = '{DAY} 10:12:00'").select("orders", "events").first() == (1, 1)
    sessions = spark.read.format("delta").load(tables.stream_sessions(source.name).path(env))
    converted = sessions.where("converted").select("order_id", "events").collect()
    assert converted == [("ord-1", 3)]  # B: page view, checkout, order placed


def test_replay_rebuilds_a_range_only_and_twice_equals_once(spark, lake):
    env, source = lake.env, lake.source
    events_path, minute_path = (
        tables.silver(source.name, source.stream.table).path(env),
        tables.stream_minutes(source.name).path(env),
    )
    healthy = {p: rows(spark, p) for p in (events_path, tables.stream_sessions(source.name).path(env))}
    spark.sql(f"DELETE FROM delta.`{events_path}` WHERE event_id = 'a1'")  # damage inside the range
    spark.sql(f"UPDATE delta.`{minute_path}` SET events = 999 WHERE minute = '{DAY} 10:55:00'")  # outside it
    start, end = datetime(2026, 11, 20, 10, 0, tzinfo=UTC), datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    entry = run.replay(spark, env, source, start, end)
    assert entry.records_read == entry.records_written + entry.records_duplicate
    after_once = {
        p: rows(spark, p) for p in (events_path, tables.stream_sessions(source.name).path(env), minute_path)
    }
    assert {
        p: after_once[p] for p in healthy
    } == healthy  # a1 back, sessions as before: nothing counted twice
    outside = spark.read.format("delta").load(minute_path).where(f"minute = '{DAY} 10:55:00'").first()
    assert outside["events"] == 999  # a minute outside the range is not touched
    run.replay(spark, env, source, start, end)
    assert {p: rows(spark, p) for p in after_once} == after_once


def parquet_files(root: Path) -> list[str]:
    return [
        str(p) for p in root.rglob("*.parquet") if "deletion_" not in str(p) and "_delta_log" not in p.parts
    ]


def test_deletion_request_leaves_no_trace_and_records_proof(spark, lake):
    env = lake.env
    privacy = load_privacy().model_copy(update={"vacuum_retain_hours": 0})
    token = token_of(spark, "user-A", KEY.encode())
    request_id = requests.record_request(spark, env, token, privacy.deadline_hours)
    assert (
        requests.record_request(spark, env, token, privacy.deadline_hours) == request_id
    )  # once per subject
    proofs = process_requests(spark, env, privacy)

    deleted = {}
    for p in proofs:
        deleted[p["table_name"]] = deleted.get(p["table_name"], 0) + p["rows_deleted"]
    # bronze: a1, a2 x3, a3, a4, the id-less one, and the truncated line (found in _corrupt_record)
    assert deleted["bronze.clickstream_events"] == 8
    assert deleted["quarantine.clickstream_events"] == 2
    assert deleted["silver.clickstream_events"] == 4
    assert deleted["silver.clickstream_sessions"] == 1
    assert not any(p["table_exists"] for p in proofs if p["table_name"] == "silver.shop_db_customers")
    assert all(p["vacuum_done"] and p["files_removed"] > 0 for p in proofs if p["rows_deleted"])
    stored = (
        spark.read.format("delta")
        .load(tables.DELETION_PROOFS.path(env))
        .where(F.col("request_id") == request_id)
    )
    assert stored.count() == len(privacy.tables)
    assert requests.read_requests(spark, env).first()["status"] == requests.DONE

    needles = ("user-A", token)
    # every table of the lake, at its current version
    for table in all_tables():
        name, path = table.full_name, table.path(env)
        if delta.table_exists(spark, path) and "deletion_" not in name:
            text = spark.read.format("delta").load(path).select(F.to_json(F.struct("*")).alias("j"))
            assert (
                text.where(F.col("j").contains(needles[0]) | F.col("j").contains(needles[1])).count() == 0
            ), name
    # every data file left on disk under the lake and quarantine, referenced or not
    files = parquet_files(Path(env.lake)) + parquet_files(Path(env.quarantine))
    by_table: dict[Path, list[str]] = {}
    for file in files:
        root = next(p for p in Path(file).parents if (p / "_delta_log").is_dir())
        by_table.setdefault(root, []).append(file)
    assert len(by_table) >= 5
    for root, table_files in by_table.items():
        frame = spark.read.option("mergeSchema", "true").parquet(*table_files)
        text = frame.select(F.to_json(F.struct("*")).alias("j"))
        assert text.where(F.col("j").contains(needles[0]) | F.col("j").contains(needles[1])).count() == 0, (
            root
        )
    # the transaction logs (column statistics) never held the id or the token
    for log in list(Path(env.lake).rglob("_delta_log/*.json")) + list(
        Path(env.quarantine).rglob("_delta_log/*.json")
    ):
        if "deletion_" not in str(log):
            assert not any(n in log.read_text() for n in needles), log
