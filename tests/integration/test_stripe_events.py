"""Stripe webhook events: one row per event id, latest state per object, replays and re-deliveries harmless."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality

from northstar import ledger
from northstar.config import load_source
from northstar.dev.generate.stripe_events import generate_stripe_events
from northstar.lake import tables
from northstar.silver.pipeline import run_source
from tests.helpers import snapshots
from tests.helpers.envs import make_env

SOURCE = "stripe_events"
RUN_SPECIFIC = ["_run_id", "_ingest_time", "_ingest_date", "_landing_file"]


@pytest.fixture(scope="module")
def stripe():
    return load_source(SOURCE)


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    return generate_stripe_events(tmp_path_factory.mktemp("stripe") / "events", payments=60, files=4, seed=5)


def deliver(env, files: list[Path], subfolder: str = "") -> None:
    target = Path(env.landing) / "stripe" / "events" / subfolder
    target.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, target)


def load(spark, path, drop=()):
    return spark.read.format("delta").load(path).drop(*drop)


def every_table(env, stripe) -> dict[str, str]:
    paths = {"landing_log": tables.LANDING_FILES.path(env)}
    for table in stripe.tables:
        for layer, path in (
            ("bronze", tables.bronze(SOURCE, table).path(env)),
            ("silver", tables.silver(SOURCE, table).path(env)),
            ("quarantine", tables.quarantine(SOURCE, table).path(env)),
        ):
            paths[f"{layer}.{table}"] = path
    return paths


def assert_balanced_ledger(spark, env) -> list:
    rows = ledger.read(spark, env).collect()
    assert rows
    assert all(r.status in ("success", "noop") for r in rows)
    for r in rows:
        assert r.records_read == r.records_written + r.records_duplicate + r.records_quarantined, r.run_id
    return rows


def events_state(spark, env):
    return {
        r.id: {"type": r.type, "created": r.created, "object_id": r.data.object.id}
        for r in load(spark, tables.silver(SOURCE, "events").path(env)).collect()
    }


def objects_state(spark, env):
    return {
        r.object_id: {
            "event_id": r.id,
            "created": r.created,
            "type": r.type,
            "object_type": r.object_type,
            "status": r.data.object.status,
            "amount_refunded": r.data.object.amount_refunded,
        }
        for r in load(spark, tables.silver(SOURCE, "objects").path(env)).collect()
    }


def test_silver_equals_ground_truth_and_every_record_is_accounted_for(spark, env, stripe, feed):
    deliver(env, feed.files)
    entries = {(e.layer, e.table_name): e for e in run_source(spark, env, stripe)}

    assert events_state(spark, env) == feed.events
    assert objects_state(spark, env) == feed.objects
    assert feed.equal_created > 0  # some objects had two events in the same second: the event id decided

    for table in ("events", "objects"):
        bronze = entries["bronze", table]
        assert bronze.records_read == feed.lines
        assert bronze.records_quarantined == bronze.details["quarantined.malformed_record"] == feed.malformed
        assert bronze.details["pan_redacted"] > 0
    events = entries["silver", "events"]
    assert events.records_written == len(feed.events)
    assert events.records_duplicate == feed.exact_copies + feed.resent  # replays: counted, stored once
    objects = entries["silver", "objects"]
    assert objects.records_written == len(feed.objects)
    assert objects.details["quarantined.null_primary_key"] == feed.objectless  # balance events: no object id
    assert_balanced_ledger(spark, env)


def test_delivery_order_and_batching_do_not_change_silver(spark, tmp_path, stripe, feed):
    at_once, in_two_runs = make_env(tmp_path / "at_once"), make_env(tmp_path / "in_two_runs")
    deliver(at_once, feed.files)
    run_source(spark, at_once, stripe)
    shuffled = list(feed.files)
    random.Random(2).shuffle(shuffled)
    for batch in (shuffled[:2], shuffled[2:]):  # two runs: the second sees older events arrive late
        deliver(in_two_runs, batch)
        for entry in run_source(spark, in_two_runs, stripe):
            assert entry.balanced, entry

    for table in ("events", "objects"):
        first = load(spark, tables.silver(SOURCE, table).path(at_once), RUN_SPECIFIC)
        second = load(spark, tables.silver(SOURCE, table).path(in_two_runs), RUN_SPECIFIC)
        assert_df_equality(
            first, second, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True
        )
    assert objects_state(spark, in_two_runs) == feed.objects
    assert_balanced_ledger(spark, in_two_runs)


def test_replayed_webhooks_and_redelivered_files_change_nothing(spark, env, stripe, feed, tmp_path):
    deliver(env, feed.files)
    run_source(spark, env, stripe)
    paths = every_table(env, stripe)
    data_tables = {k: v for k, v in paths.items() if k != "landing_log"}
    versions = snapshots.versions(spark, data_tables)

    # 1. the same run again: nothing to do, no table gets a version
    again = run_source(spark, env, stripe)
    assert [e.status for e in again] == ["noop"] * 4
    assert snapshots.versions(spark, data_tables) == versions

    # 2. the same file delivered again under another name and folder: logged as a re-delivery, not ingested
    resend = tmp_path / "events-0001-resend.jsonl"
    shutil.copy(feed.files[1], resend)
    deliver(env, [resend], subfolder="retry")
    redelivered = {(e.layer, e.table_name): e for e in run_source(spark, env, stripe)}
    lines_in_file = sum(1 for line in feed.files[1].read_text().splitlines() if line.strip())
    for table in ("events", "objects"):
        bronze = redelivered["bronze", table]
        assert bronze.status == "success"
        assert bronze.details["files_redelivered"] == 1
        assert bronze.records_read == bronze.records_duplicate == lines_in_file
        assert bronze.records_written == 0
        assert bronze.details["files"] == 0
        assert redelivered["silver", table].status == "noop"
    log = load(spark, tables.LANDING_FILES.path(env)).where("duplicate_of IS NOT NULL").collect()
    assert {(r.table_name, r.file_uri.rsplit("/", 1)[1], r.duplicate_of.rsplit("/", 1)[1]) for r in log} == {
        ("events", "events-0001-resend.jsonl", "events-0001.jsonl"),
        ("objects", "events-0001-resend.jsonl", "events-0001.jsonl"),
    }
    assert snapshots.versions(spark, data_tables) == versions

    # 3. Stripe replays events already delivered, in a new file (other bytes): bronze keeps them, silver
    # counts them as duplicates and does not change
    replayed = []
    for path in feed.files:
        for line in path.read_text().splitlines():
            try:
                json.loads(line)
            except ValueError:
                continue  # a truncated line is not an event Stripe would replay
            replayed.append(line)
    replay = tmp_path / "events-replay.jsonl"
    replay.write_text("\n".join(replayed[::3]) + "\n")
    deliver(env, [replay])
    replay_entries = {(e.layer, e.table_name): e for e in run_source(spark, env, stripe)}
    assert replay_entries["bronze", "events"].records_written == len(replayed[::3])
    silver = replay_entries["silver", "events"]
    assert silver.records_written == 0
    assert silver.records_duplicate == len(replayed[::3])
    silver_tables = {name: path for name, path in data_tables.items() if name.startswith("silver.")}
    snapshots.assert_rows_unchanged(spark, silver_tables, {name: versions[name] for name in silver_tables})
    assert events_state(spark, env) == feed.events
    assert objects_state(spark, env) == feed.objects
    assert_balanced_ledger(spark, env)
