"""The stream tables as the warehouse publish sees them (warehouse/stream_tables.py: key, PII, descriptions of
the columns the stream really writes) and the stream publisher's timing and failure rules
(warehouse/stream_publish.py), without a warehouse: the publish itself is replaced by a recorder."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

import northstar.cli  # assembling the commands registers the stream publisher
from northstar.config import load_source
from northstar.config.env import SnowflakeSpec
from northstar.gold.tables import GOLD
from northstar.streaming import commands as streaming_commands
from northstar.streaming import transforms as tx
from northstar.streaming.apply import UPDATED_AT
from northstar.warehouse import commands as warehouse_commands
from northstar.warehouse import stream_publish
from northstar.warehouse.stream_tables import Publishable, stream_tables
from tests.helpers.envs import make_env


def _silver_events(spark):
    schema = T.StructType(
        [T.StructField("event_id", T.StringType()), T.StructField("event_time", T.TimestampType())]
        + [
            T.StructField(c, T.StringType())
            for c in ("event_type", "user_token", "device_token", "visitor_key")
        ]
        + [T.StructField(c, T.StringType()) for c in ("platform", "page", "order_id", "error_code")]
    )
    at = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    return spark.createDataFrame(
        [("e1", at, "page_view", "tok-u", "tok-d", "u:tok-u", "web", "/p/1", None, None)], schema
    )


def test_stream_tables_describe_exactly_the_columns_the_stream_writes(spark):
    events = _silver_events(spark)
    sessions, minutes = stream_tables("clickstream")
    built = {
        sessions.name: tx.sessionize(events, "30 minutes").withColumn(UPDATED_AT, F.current_timestamp()),
        minutes.name: tx.minute_aggregates(events).withColumn(UPDATED_AT, F.current_timestamp()),
    }
    for table in (sessions, minutes):
        assert [c for c, _ in table.columns] == built[table.name].columns, table.name
        assert table.description
        assert "'" not in table.description  # fakesnow 0.12.1 fails on a quoted table comment
        assert all(text.strip() for _, text in table.columns)
        assert set(table.key) <= set(built[table.name].columns)
        assert set(table.amounts) <= set(built[table.name].columns)
        assert list(table.column_descriptions(warehouse=True))[-2:] == ["_loaded_at", "_run_id"]
    assert (sessions.name, sessions.key, sessions.partition) == (
        "clickstream_sessions",
        ("session_id",),
        None,
    )
    assert (minutes.name, minutes.key, minutes.partition) == ("clickstream_minute", ("minute",), None)
    assert str(sessions.table) == "silver.clickstream_sessions"
    assert str(minutes.table) == "gold.clickstream_minute"


def test_tokens_of_people_are_pii_and_the_minute_table_has_none():
    sessions, minutes = stream_tables("clickstream")
    assert sessions.pii_columns([c for c, _ in sessions.columns]) == [
        "visitor_key",
        "user_token",
        "device_token",
    ]
    assert minutes.pii_columns([c for c, _ in minutes.columns]) == []
    # the source declares the user id PII; its token (and the device token a visitor key falls back to) is
    # what reaches the sessions
    assert load_source("clickstream").tables["events"].pii == ["user_id"]


def test_gold_and_stream_tables_are_both_publishable():
    def publishable(table: Publishable) -> tuple:
        return (table.name, table.key, table.partition, table.amounts)

    assert publishable(GOLD["fact_orders"])[0] == "fact_orders"
    assert [publishable(t)[0] for t in stream_tables("clickstream")] == [
        "clickstream_sessions",
        "clickstream_minute",
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def publisher(tmp_path, monkeypatch):
    """A StreamPublisher every 60 s on a fake clock, whose publish is recorded (or fails while `down`)."""
    env = make_env(tmp_path).model_copy(
        update={
            "snowflake": SnowflakeSpec(
                mode="fakesnow",
                account="local",
                database="NORTHSTAR",
                warehouse="WH",
                role="PUBLISHER",
                user="env:USER",
                password="env:PW",
                fakesnow_path=str(tmp_path / "sf"),
            )  # fmt: skip
        }
    )
    calls: list[str] = []
    state = {"down": False}

    def fake_publish(spark, env, conn, source, *, run_id):
        if state["down"]:
            raise ConnectionError("warehouse unreachable")
        calls.append(run_id)
        return []

    monkeypatch.setattr(stream_publish, "publish_stream", fake_publish)
    sent = []
    monkeypatch.setattr(stream_publish.alerts, "send", lambda env, alert: sent.append(alert))
    clock = Clock()
    p = stream_publish.StreamPublisher(
        None, env, load_source("clickstream"), every_seconds=60, max_failures=3,
        connector=lambda: nullcontext(None), clock=clock,
    )  # fmt: skip
    return p, calls, clock, state, sent


def test_publishes_after_the_first_batch_then_at_most_every_interval(publisher):
    p, calls, clock, _, _ = publisher
    p(0)
    assert len(calls) == 1
    assert not p.pending
    clock.now += 10
    p(1)  # within the interval: pending
    assert len(calls) == 1
    assert p.pending
    p.flush()  # still within the interval
    assert len(calls) == 1
    clock.now += 50
    p.flush()  # a quiet stream: the pending batch is published by the wait loop's flush
    assert len(calls) == 2
    assert not p.pending
    p.flush()  # nothing pending: no publish
    clock.now += 10
    p(2)
    p.finish()  # the stream stopped: what is pending goes now
    assert len(calls) == 3
    assert len(set(calls)) == 3
    assert all(r.startswith("stream-publish-clickstream-") for r in calls)


def test_a_failed_publish_is_surfaced_the_stream_goes_on_and_too_many_in_a_row_stop_it(publisher):
    p, calls, clock, state, sent = publisher
    state["down"] = True
    p(0)  # fails: alert, no raise
    assert p.failures == 1
    assert p.pending
    assert [a.kind for a in sent] == ["stream_publish_failed"]
    assert "warehouse unreachable" in sent[0].message
    clock.now += 60
    p(1)
    assert p.failures == 2
    state["down"] = False
    clock.now += 60
    p(2)  # back: everything pending goes in one publish, the failure count resets
    assert p.failures == 0
    assert not p.pending
    assert len(calls) == 1
    state["down"] = True
    for batch in range(3, 5):
        clock.now += 60
        p(batch)
    clock.now += 60
    with pytest.raises(ConnectionError):  # the third in a row stops the query (restart + paging take over)
        p(5)


def test_stream_run_gets_the_warehouse_publisher_from_the_command_assembly():
    """The streaming layer cannot import the warehouse: cli hands `stream run` the publisher factory."""
    assert streaming_commands._PUBLISHER["factory"] is warehouse_commands.stream_publisher
    args = northstar.cli.build_parser().parse_args(["stream", "run", "--no-publish"])
    assert args.no_publish
    assert (
        northstar.cli.build_parser().parse_args(["publish", "--stream", "clickstream"]).stream
        == "clickstream"
    )
