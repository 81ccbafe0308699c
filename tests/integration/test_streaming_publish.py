"""The stream's session facts and minute aggregates published to the warehouse (fakesnow) from inside the
streaming job: real Spark streaming + Delta + the bulk publish (docs/streaming.md, "Warehouse").

- Two deliveries, one micro-batch each (available-now, publisher after every batch): after the first the
  warehouse tables equal the lake tables (a full first load), after the second only the session and the minute
  the new events touched moved (incremental, from the tables' change feeds), and the tokens get masking
  statements (skipped by fakesnow, listed).
- The operational path (processing-time trigger, the conf's trigger and publish interval) with a producer
  writing a file every 2 s whose newest event is "now": seconds from event time until the warehouse minute table
  shows it, printed with the machine's load average (no timed assertion: a shared machine's figure).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import statistics
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from northstar.config import load_source
from northstar.config.env import SnowflakeSpec
from northstar.dev.simulate.events import make_batch, write_firehose_file
from northstar.lake import delta, tables
from northstar.streaming import run
from northstar.warehouse import publish as pub
from northstar.warehouse.connection import connect, execute
from northstar.warehouse.stream_publish import StreamPublisher
from northstar.warehouse.stream_tables import stream_tables
from tests.helpers.envs import make_env

KEY = "test-user-token-key-0123456789abcdef"
DAY = "2026-11-20"
WAREHOUSE_ONLY = "EXCLUDE (_LOADED_AT, _RUN_ID)"


def event(event_id, hhmm, kind="page_view", user=None, device=None, order=None) -> str:
    return json.dumps(
        {
            "event_id": event_id, "event_time": f"{DAY}T{hhmm}:00.000Z", "event_type": kind, "user_id": user,
            "device_id": device or f"phone-{user}", "platform": "web", "page": f"/p/{event_id}", "order_id": order,
        }
    )  # fmt: skip


FILES = [
    [  # sessions: A (10:00-10:05), anonymous B, C; minutes 10:00, 10:01, 10:05, 10:10
        event("a1", "10:00", user="user-A"),
        event("a2", "10:05", "product_view", "user-A"),
        event("b1", "10:01", device="dev-B"),
        event("c1", "10:10", user="user-C"),
    ],
    [  # A adds to cart and orders at 10:07 (inside the watermark): A's session and minute 10:07 only
        event("a3", "10:07", "add_to_cart", "user-A"),
        event("a4", "10:07", "order_placed", "user-A", order="ord-1"),
    ],
]


def env_with_warehouse(root, monkeypatch):
    monkeypatch.setenv("NORTHSTAR_USER_TOKEN_KEY", KEY)
    monkeypatch.setenv("NORTHSTAR_SNOWFLAKE_PASSWORD", "not-used-by-fakesnow")
    spec = SnowflakeSpec(
        mode="fakesnow", account="local", database="NORTHSTAR", warehouse="WH", role="PUBLISHER",
        user="env:USER", password="env:NORTHSTAR_SNOWFLAKE_PASSWORD", fakesnow_path=str(root / "snowflake"),
    )  # fmt: skip
    return make_env(root).model_copy(update={"snowflake": spec})


def lake_rows(spark, path) -> set:
    return {tuple(r) for r in spark.read.format("delta").load(path).collect()}


def warehouse_rows(conn, spec, name) -> set:
    return {
        tuple(v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v for v in r)
        for r in execute(conn, f"SELECT * {WAREHOUSE_ONLY} FROM {pub.qualified(spec, name)}")
    }


def moved(publisher: StreamPublisher) -> dict[str, list[tuple]]:
    """table -> (mode, upserted, deleted) of every publish that moved something."""
    out: dict[str, list[tuple]] = {}
    for results in publisher.published:
        for r in results:
            if r.mode != pub.NOOP:
                out.setdefault(r.table, []).append((r.mode, r.upserted, r.deleted))
    return out


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory):
    """Two deliveries, each streamed (available-now, one file per micro-batch) and published after its batch;
    the warehouse tables and what each publish moved, after each."""
    patch = pytest.MonkeyPatch()
    env = env_with_warehouse(tmp_path_factory.mktemp("stream-publish"), patch)
    source = load_source("clickstream")
    prefix = source.tables["events"].landing
    snapshots = []
    for index, lines in enumerate(FILES):
        write_firehose_file(env.landing, prefix, lines, datetime(2026, 11, 20, 11, index, tzinfo=UTC), index)
        publisher = StreamPublisher(spark, env, source, every_seconds=0)
        run.run_available_now(spark, env, source, max_files_per_trigger=1, after_batch=publisher)
        publisher.finish()
        assert publisher.failures == 0
        with connect(env.snowflake) as conn:
            snapshots.append(
                {
                    "publisher": publisher,
                    "moved": moved(publisher),
                    "lake": {t.name: lake_rows(spark, t.table.path(env)) for t in stream_tables(source.name)},
                    "warehouse": {
                        t.name: warehouse_rows(conn, env.snowflake, t.name)
                        for t in stream_tables(source.name)
                    },
                }
            )
    yield env, source, snapshots
    patch.undo()


def test_both_stream_tables_have_their_change_feed_on(spark, published):
    env, source, _ = published
    for table in (tables.stream_sessions(source.name), tables.stream_minutes(source.name)):
        detail = spark.sql(f"DESCRIBE DETAIL delta.`{table.path(env)}`").first()
        assert detail["properties"][delta.CHANGE_FEED] == "true", table


def test_the_warehouse_tables_equal_the_lake_tables_after_each_micro_batch(published):
    _, _, snapshots = published
    for snapshot in snapshots:
        for name, rows in snapshot["lake"].items():
            assert rows, name
            assert snapshot["warehouse"][name] == rows, name
    first, second = snapshots
    assert len(first["lake"]["clickstream_sessions"]) == 3
    assert len(first["lake"]["clickstream_minute"]) == 4
    assert len(second["lake"]["clickstream_minute"]) == 5


def test_the_first_publish_is_full_then_only_the_touched_session_and_minute_move(published):
    _, _, (first, second) = published
    assert first["moved"] == {
        "clickstream_sessions": [("full", 3, 0)],
        "clickstream_minute": [("full", 4, 0)],
    }
    # A's session (same start, so the same session id: one update) and the new minute 10:07
    assert second["moved"] == {
        "clickstream_sessions": [("incremental", 1, 0)],
        "clickstream_minute": [("incremental", 1, 0)],
    }
    for results in second["publisher"].published:
        assert all(r.reconciled for r in results)


def test_tokens_are_masked_and_no_raw_id_reaches_the_warehouse(published):
    env, _, (first, _) = published
    skipped = {s for results in first["publisher"].published for r in results for s in r.skipped_statements}
    policy = f"{env.snowflake.database}.{env.snowflake.analytics_schema}.PII_MASK"
    for column in ("VISITOR_KEY", "USER_TOKEN", "DEVICE_TOKEN"):
        assert (
            f"ALTER TABLE NORTHSTAR.ANALYTICS.CLICKSTREAM_SESSIONS MODIFY COLUMN {column} SET MASKING POLICY "
            f"{policy} FORCE"
        ) in skipped  # fakesnow rejects masking policies: generated, tried, listed (docs/snowflake.md)
    assert not any("CLICKSTREAM_MINUTE MODIFY" in s for s in skipped)
    with connect(env.snowflake) as conn:
        values = {
            v for row in execute(conn, "SELECT * FROM NORTHSTAR.ANALYTICS.CLICKSTREAM_SESSIONS") for v in row
        }
    assert not {"user-A", "user-C", "dev-B", "phone-user-A"} & {str(v) for v in values}


def test_each_publish_has_its_own_run_id_and_ledger_rows(spark, published):
    env, _, (first, second) = published
    ledger_rows = (
        spark.read.format("delta")
        .load(tables.RUN_LEDGER.path(env))
        .where(F.col("job") == "publish")
        .collect()
    )
    runs = {r["run_id"] for r in ledger_rows}
    assert all(r.startswith("stream-publish-clickstream-") for r in runs)
    assert {r["table_name"] for r in ledger_rows} == {"clickstream_sessions", "clickstream_minute"}
    assert {r["status"] for r in ledger_rows} <= {"success", "noop"}  # no publish failed


# --- latency: event time -> visible in the warehouse, on the operational path ---------------------------------


def test_event_time_to_warehouse_latency_on_the_operational_path(spark, tmp_path, monkeypatch, capsys):
    """Both queries with the conf's processingTime trigger and the publisher at the conf's publish_seconds;
    a file every 2 s whose newest event is 'now'. After each publish the same connection reads the newest
    MAX_EVENT_TIME of CLICKSTREAM_MINUTE: that is when a dashboard could see it. Printed, not asserted."""
    env = env_with_warehouse(tmp_path, monkeypatch)
    source = load_source("clickstream")
    stream = source.require_stream()
    seconds = int(os.environ.get("NORTHSTAR_LATENCY_SECONDS", "150"))
    prefix = source.tables["events"].landing
    visible: list[
        tuple[datetime, datetime | None]
    ] = []  # (when the publish finished, newest event time shown)

    @contextmanager
    def probing():
        with connect(env.snowflake) as conn:
            yield conn
            row = execute(conn, "SELECT MAX(MAX_EVENT_TIME) FROM NORTHSTAR.ANALYTICS.CLICKSTREAM_MINUTE")
            visible.append((datetime.now(UTC).replace(tzinfo=None), row[0][0] if row else None))

    publisher = StreamPublisher(spark, env, source, every_seconds=stream.publish_seconds, connector=probing)
    rng, produced, n = random.Random(7), [], 0

    def produce() -> None:
        nonlocal n
        now = datetime.now(UTC)
        batch = make_batch(rng, 100, now, late_rate=0.0, malformed_rate=0.0)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        probe = json.dumps(
            {"event_id": f"probe-{n}", "event_time": stamp, "event_type": "page_view", "device_id": "probe"}
        )
        # the generated visits run on from their start: keep only events up to now, so the newest event time
        # of the file is the probe's
        lines = [line for line in batch.lines if json.loads(line)["event_time"] <= stamp]
        write_firehose_file(env.landing, prefix, [*lines, probe], now, 1_000_000 + n)
        produced.append(now.replace(tzinfo=None, microsecond=now.microsecond // 1000 * 1000))
        n += 1

    produce()
    bronze = run.start_bronze(spark, env, source, run.PROCESSING_TIME)
    while not delta.table_exists(spark, tables.bronze(source.name, stream.table).path(env)):
        time.sleep(0.5)
    silver = run.start_silver(spark, env, source, run.PROCESSING_TIME, after_batch=publisher)
    started = time.monotonic()
    try:
        while time.monotonic() - started < seconds:
            time.sleep(2)
            produce()
            publisher.flush()  # what `northstar stream run`'s wait loop does
        # let the last files through one more publish
        end = time.monotonic() + stream.publish_seconds + 60
        while time.monotonic() < end and not (visible and visible[-1][1] and visible[-1][1] >= produced[-1]):
            time.sleep(2)
            publisher.flush()
    finally:
        for query in (bronze, silver):
            query.stop()
    publisher.finish()
    latencies = _report(spark, env, stream, seconds, produced, visible, capsys)
    assert latencies  # something was measured (the figure itself is not asserted)
    assert publisher.failures == 0


def _report(spark, env, stream, seconds, produced, visible, capsys) -> list[float]:
    """Per produced file, seconds from its newest event time to the first publish that showed it; printed
    with the publish durations and the load average."""
    latencies = []
    for at in produced:
        shown = next((when for when, newest in visible if newest is not None and newest >= at), None)
        if shown is not None:
            latencies.append((shown - at).total_seconds())
    load = os.getloadavg()
    durations = _publish_durations(spark, env)
    with capsys.disabled():
        print(
            f"\nstream -> warehouse latency (trigger {stream.trigger_interval}, publish every "
            f"{stream.publish_seconds} s, {seconds} s of events, {len(produced)} files, {len(visible)} publishes): "
            f"median {statistics.median(latencies or [0]):.1f} s, p90 {_p90(latencies or [0]):.1f} s, "
            f"max {max(latencies or [0]):.1f} s over {len(latencies)} files "
            f"({len(produced) - len(latencies)} not shown); publish duration median "
            f"{statistics.median(durations):.1f} s max {max(durations):.1f} s; "
            f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores"
        )
    return latencies


def _p90(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.9) - 1)]


def _publish_durations(spark, env) -> list[float]:
    """Seconds per publish run (first ledger start to last ledger end of its two tables)."""
    rows = (
        spark.read.format("delta").load(tables.RUN_LEDGER.path(env)).where(F.col("job") == "publish")
        .groupBy("run_id").agg(F.min("started_at").alias("s"), F.max("ended_at").alias("f")).collect()
    )  # fmt: skip
    return [(r["f"] - r["s"]).total_seconds() for r in rows if r["f"] and r["s"]] or [0.0]
