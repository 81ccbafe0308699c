"""Change feeds (Debezium, AWS DMS) applied to silver: shuffled files, duplicates, equal timestamps, deletes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from northstar.config import load_source
from northstar.dev.generate.cdc import change_events, write_debezium, write_dms_csv
from northstar.lake import tables
from northstar.silver.pipeline import run_source
from tests.helpers.conf import load_from
from tests.helpers.envs import make_env

SOURCES = {
    "pg_debezium": """
tables:
  customers:
    format: jsonl
    landing: debezium/customers
    primary_key: [id]
    ordering: [_cdc_ts_ms, _cdc_lsn]   # equal commit times are ordered by the log position
    cdc: {{format: debezium, deletes: {deletes}}}
""",
    "pg_dms": """
tables:
  customers:
    format: csv
    landing: dms/customers
    primary_key: [id]
    ordering: [commit_ts, change_seq]
    cdc: {{format: dms, deletes: {deletes}}}
    columns:
      - {{name: id, type: bigint}}
      - {{name: commit_ts, type: timestamp}}
      - {{name: change_seq, type: bigint}}
      - {{name: name, type: string}}
      - {{name: tier, type: string}}
      - {{name: version, type: int}}
""",
}


def source(tmp_path: Path, name: str, deletes: str):
    (tmp_path / "conf" / "sources").mkdir(parents=True, exist_ok=True)
    (tmp_path / "conf" / "sources" / f"{name}.yaml").write_text(SOURCES[name].format(deletes=deletes))
    return load_from(tmp_path / "conf", load_source, name)


def silver_rows(spark, env, name):
    return {
        r.id: r for r in spark.read.format("delta").load(tables.silver(name, "customers").path(env)).collect()
    }


def expected(feed):
    return {k: (v["tier"], v["version"]) for k, v in feed.final.items()}


@pytest.mark.parametrize("deletes", ["soft", "hard"])
def test_debezium_feed_in_any_order_gives_the_source_table(spark, env, tmp_path, deletes):
    feed = change_events(keys=40, updates=160, seed=3)
    files = write_debezium(feed, tmp_path / "feed", files=4, seed=1)
    spec = source(tmp_path, "pg_debezium", deletes)
    landing = Path(env.landing) / "debezium" / "customers"
    landing.mkdir(parents=True)
    for path in reversed(files):  # newest-first delivery, one file per run
        shutil.copy(path, landing)
        for entry in run_source(spark, env, spec):
            assert entry.balanced, entry

    rows = silver_rows(spark, env, "pg_debezium")
    live = {k: (r.tier, r.version) for k, r in rows.items() if not r._deleted}
    assert live == expected(feed)
    deleted = {k for k, r in rows.items() if r._deleted}
    if deletes == "soft":
        assert deleted
        assert deleted.isdisjoint(feed.final)  # kept, flagged, with their last values
        assert all(rows[k].name for k in deleted)
    else:
        assert not deleted
        assert set(rows) == set(feed.final)


def test_late_older_event_does_not_bring_back_a_hard_deleted_row(spark, env, tmp_path):
    spec = source(tmp_path, "pg_debezium", "hard")
    landing = Path(env.landing) / "debezium" / "customers"
    landing.mkdir(parents=True)
    row = {"id": 7, "name": "customer 7", "tier": "gold", "version": 1}
    envelope = {"source": {"lsn": 10}}

    def deliver(name, **event):
        (landing / name).write_text(
            json.dumps({**envelope, **event, "source": {"lsn": event.pop("lsn", 10)}}) + "\n"
        )

    deliver("a.jsonl", before=None, after=row, op="c", ts_ms=1, lsn=10)
    run_source(spark, env, spec)
    deliver("b.jsonl", before=row, after=None, op="d", ts_ms=3, lsn=30)
    run_source(spark, env, spec)
    deliver("c.jsonl", before=row, after={**row, "version": 2}, op="u", ts_ms=2, lsn=20)  # late and older
    bronze, silver = run_source(spark, env, spec)

    assert silver.records_written == 0
    assert silver.details["not_applied"] == 1
    assert silver_rows(spark, env, "pg_debezium") == {}


def test_dms_csv_with_equal_commit_times_and_bad_events(spark, env, tmp_path):
    feed = change_events(keys=30, updates=120, seed=8)
    files = write_dms_csv(feed, tmp_path / "feed", files=3, seed=2)
    bad = tmp_path / "feed" / "LOAD99999999.csv"
    bad.write_text(
        "Op,commit_ts,change_seq,id,name,tier,version\n"
        "X,2026-11-18 00:00:01.000000,5,1,n,gold,9\n"  # an operation DMS never writes
        "U,2026-11-18 00:00:01.000000,,2,n,gold,9\n"
    )  # no change sequence: cannot be ordered
    spec = source(tmp_path, "pg_dms", "hard")
    landing = Path(env.landing) / "dms" / "customers"
    landing.mkdir(parents=True)
    for path in [files[1], bad, files[2], files[0]]:
        shutil.copy(path, landing)
    bronze, silver = run_source(spark, env, spec)

    assert bronze.balanced
    assert silver.balanced
    assert silver.details["quarantined.invalid_change_event"] == 1
    assert silver.details["quarantined.null_ordering_value"] == 1
    rows = silver_rows(spark, env, "pg_dms")
    assert {k: (r.tier, r.version) for k, r in rows.items()} == expected(feed)

    again = run_source(spark, env, spec)
    assert [e.status for e in again] == ["noop", "noop"]

    # re-applying the whole window (a replay from bronze) leaves silver exactly as the incremental runs did
    before = sorted(map(repr, rows.values()))
    (replay,) = run_source(spark, env, spec, layers=("silver",), full_refresh=True)
    assert replay.balanced
    assert sorted(map(repr, silver_rows(spark, env, "pg_dms").values())) == before


def history_of(spark, env, name):
    rows = spark.read.format("delta").load(tables.silver(name, "customers").path(env)).collect()
    by_key = {}
    for r in sorted(rows, key=lambda r: (r.id, r._cdc_ts_ms, r._cdc_lsn)):
        by_key.setdefault(r.id, []).append(r)
    return by_key


def test_scd2_history_is_right_after_out_of_order_delivery(spark, tmp_path):
    feed = change_events(keys=25, updates=100, seed=12)
    files = write_debezium(feed, tmp_path / "feed", files=4, seed=4)
    (tmp_path / "conf" / "sources").mkdir(parents=True)
    (tmp_path / "conf" / "sources" / "pg_debezium.yaml").write_text(
        SOURCES["pg_debezium"].format(deletes="soft") + "    history: true\n"
    )
    spec = load_from(tmp_path / "conf", load_source, "pg_debezium")
    one_by_one, all_at_once = make_env(tmp_path / "one"), make_env(tmp_path / "all")
    for env, batches in ((one_by_one, [[f] for f in reversed(files)]), (all_at_once, [files])):
        landing = Path(env.landing) / "debezium" / "customers"
        landing.mkdir(parents=True)
        for batch in batches:
            for path in batch:
                shutil.copy(path, landing)
            for entry in run_source(spark, env, spec):
                assert entry.balanced, entry

    history = history_of(spark, one_by_one, "pg_debezium")
    events_per_key = {}
    for event in feed.events:
        key = (event["after"] or event["before"])["id"]
        events_per_key.setdefault(key, []).append(event)
    for key, events in events_per_key.items():
        versions = history[key]
        assert [v._cdc_lsn for v in versions] == [e["lsn"] for e in events], key  # every version, in order
        for earlier, later in zip(versions, versions[1:], strict=False):
            assert earlier._valid_to == later._valid_from
            assert not earlier._is_current
        current = [v for v in versions if v._is_current]
        if key in feed.final:
            assert len(current) == 1
            assert (current[0].tier, current[0].version) == (
                feed.final[key]["tier"],
                feed.final[key]["version"],
            )
        else:
            assert current == []
            assert versions[-1]._deleted

    def comparable(env):
        return {
            (k, v._cdc_lsn, v._valid_from, v._valid_to, v._is_current)
            for k, vs in history_of(spark, env, "pg_debezium").items()
            for v in vs
        }

    assert comparable(one_by_one) == comparable(all_at_once)
