"""Streaming pieces on tiny inputs: the stream and privacy config, the Firehose producer, parsing and rejects,
session windows (the 30-minute gap, conversion) and minute aggregates."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from northstar.bronze.transforms import LANDING_FILE, RAW
from northstar.config import ConfigError, load_source
from northstar.dev.simulate.events import firehose_key, make_batch, write_firehose_file
from northstar.privacy.spec import load_privacy
from northstar.streaming import transforms as tx
from tests.helpers.conf import load_from
from tests.helpers.envs import CONF

STREAM_SOURCE = """
tables:
  events:
    format: jsonl
    landing: clickstream/events
    primary_key: [event_id]
    ordering: [event_time]
stream:
  table: {table}
  watermark: {watermark}
  user_token_key: {key}
"""


def write_source(tmp_path: Path, **values) -> Path:
    (tmp_path / "sources").mkdir(exist_ok=True)
    text = STREAM_SOURCE.format(**{"table": "events", "watermark": "10 minutes", "key": "env:K", **values})
    (tmp_path / "sources" / "clicks.yaml").write_text(text)
    return tmp_path


def test_repo_clickstream_and_privacy_conf_load():
    stream = load_source("clickstream").stream
    assert (stream.table, stream.session_gap, stream.watermark) == ("events", "30 minutes", "10 minutes")
    assert load_privacy().deadline_hours == 72


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"table": "clicks"}, "stream.table is 'clicks', which is not a table: events"),
        ({"watermark": "ten minutes"}, "stream.watermark: write a duration as '<n> seconds|minutes|hours'"),
        ({"key": "hunter2"}, "stream.user_token_key: a secret must be given as a reference"),
    ],
)
def test_stream_section_errors_name_the_field(tmp_path, values, message):
    with pytest.raises(ConfigError) as err:
        load_from(write_source(tmp_path, **values), load_source, "clicks")
    assert "clicks.yaml" in str(err.value)
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)


def test_privacy_conf_refuses_a_retention_that_misses_the_deadline(tmp_path):
    text = (CONF / "privacy.yaml").read_text().replace("vacuum_retain_hours: 24", "vacuum_retain_hours: 60")
    (tmp_path / "privacy.yaml").write_text(text)
    with pytest.raises(ConfigError, match="vacuum_retain_hours 60 \\+ 24 h between daily runs exceeds"):
        load_from(tmp_path, load_privacy)


def test_firehose_files_use_hourly_prefixes_and_appear_whole(tmp_path):
    at = datetime(2026, 11, 20, 9, 5, 7, tzinfo=UTC)
    assert re.fullmatch(
        r"clicks/2026/11/20/09/shoppulse-events-1-2026-11-20-09-05-07-000003-[0-9a-f]{12}\.json",
        firehose_key("clicks/", at, 3),
    )
    path = write_firehose_file(tmp_path, "clicks", ['{"a":1}', '{"a":2}'], at, 3)
    assert path.read_text() == '{"a":1}\n{"a":2}\n'
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_producer_batch_accounts_for_every_line():
    batch = make_batch(random.Random(3), 2000, datetime(2026, 11, 20, 10, tzinfo=UTC), late_rate=0.05)
    assert len(batch.lines) == len(batch.events) + batch.malformed
    assert batch.duplicates > 0
    assert batch.malformed > 0
    assert batch.missing_id > 0
    parsed = [json.loads(line) for line in batch.lines if line.endswith("}")]
    times = sorted(e["event_time"] for e in parsed)
    assert times[0] < "2026-11-20T08:10"  # late events, about two hours behind the delivery
    assert len(parsed) == len(batch.events)


def test_parse_and_reject_reasons(spark):
    spec = load_source("clickstream")
    lines = [
        '{"event_id":"e1","event_time":"2026-11-20T10:00:00.000Z","event_type":"page_view","referrer":"ad"}',
        '{"event_id":"e2","event_time":"2026-11-20T10:0',
        '{"event_id":null,"event_time":"2026-11-20T10:00:00Z","event_type":"page_view"}',
        '{"event_id":"e4","event_time":"yesterday","event_type":"page_view"}',
    ]
    frame = spark.createDataFrame([(line, "f") for line in lines], f"{RAW} string, {LANDING_FILE} string")
    parsed = tx.with_reject_reason(tx.parse_lines(frame, spec.tables["events"]), spec.stream).collect()
    assert [r[tx.REJECT_REASON] for r in parsed] == [
        None,
        "malformed_record",
        "null_primary_key",
        "malformed_record",
    ]
    assert json.loads(parsed[0]["_rescued_data"]) == {
        "referrer": "ad"
    }  # a field outside the contract is kept
    assert parsed[0]["event_time"] == datetime(2026, 11, 20, 10, 0)


def test_sessions_close_after_thirty_minutes_of_inactivity(spark):
    events = spark.createDataFrame(
        [
            ("v1", "10:00", "page_view", None, "/a"),
            ("v1", "10:29", "page_view", None, "/b"),  # 29 min: same session
            ("v1", "10:58", "order_placed", "o1", "/c"),  # 29 min after the last: same session, converted
            ("v1", "11:29", "page_view", None, "/a"),  # 31 min: a new session
            ("v2", "10:10", "checkout_started", None, "/cart"),  # checkout alone is not a conversion
        ],
        "visitor_key string, hhmm string, event_type string, order_id string, page string",
    ).select(
        "visitor_key",
        F.to_timestamp(F.concat(F.lit("2026-11-20 "), "hhmm")).alias("event_time"),
        "event_type",
        "order_id",
        "page",
        F.lit(None).cast("string").alias("user_token"),
        F.lit("d").alias("device_token"),
        F.lit("web").alias("platform"),
    )
    sessions = tx.sessionize(events, "30 minutes").orderBy("visitor_key", "session_start").collect()
    got = [
        (
            s["visitor_key"],
            s["session_start"].strftime("%H:%M"),
            s["duration_seconds"],
            s["events"],
            s["pages"],
            s["converted"],
        )
        for s in sessions
    ]
    assert got == [
        ("v1", "10:00", 3480.0, 3, 2, True),
        ("v1", "11:29", 0.0, 1, 1, False),
        ("v2", "10:10", 0.0, 1, 0, False),
    ]
    minutes = {r["minute"].strftime("%H:%M"): r for r in tx.minute_aggregates(events).collect()}
    assert (minutes["10:58"]["orders"], minutes["10:10"]["checkouts"], minutes["10:00"]["error_rate"]) == (
        1,
        1,
        0.0,
    )
