"""Bronze + silver end to end on the local stack: real Spark, real Delta tables on the local file system."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from northstar import ledger
from northstar.bronze.runner import run_bronze
from northstar.catalog import register_tables
from northstar.dev.generate.marketplace import generate_feed
from northstar.lake import tables
from northstar.silver.pipeline import run_source
from northstar.silver.runner import run_silver
from tests.helpers import snapshots
from tests.helpers.envs import make_env

RUN_SPECIFIC = ["_run_id", "_ingest_time", "_ingest_date", "_landing_file"]


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    """A small marketplace feed with every fault switched on, and its ground truth."""
    root = tmp_path_factory.mktemp("feed")
    return root, generate_feed(root, orders=160, files=4, seed=11)


def deliver(feed_root: Path, env, source, parts, names=("orders", "refunds")) -> None:
    for table in names:
        target = Path(tables.landing_folder(env, source.tables[table]))
        target.mkdir(parents=True, exist_ok=True)
        for number in parts:
            shutil.copy(feed_root / "marketplace" / table / f"part-{number:04d}.jsonl", target)


def load(spark, path, drop=()):
    return spark.read.format("delta").load(path).drop(*drop)


def silver_state(spark, env, table, key):
    return {
        r[key]: (r["updated_at"].isoformat(timespec="milliseconds"), r["status"])
        for r in load(spark, tables.silver("marketplace", table).path(env)).collect()
    }


def truth_state(records):
    return {k: (v["updated_at"].replace("Z", ""), v["status"]) for k, v in records.items()}


def all_tables(env):
    return {
        "bronze": tables.bronze("marketplace", "orders").path(env),
        "silver": tables.silver("marketplace", "orders").path(env),
        "quarantine": tables.quarantine("marketplace", "orders").path(env),
        "landing_log": tables.LANDING_FILES.path(env),
    }


def assert_pii_is_tokenized(spark, env, root):
    """Silver keeps the `pii:` columns only as keyed tokens (HMAC-SHA256 under the env's key); the country stays."""
    landed = "".join(p.read_text() for p in (root / "marketplace" / "orders").glob("*.jsonl"))
    raw_emails = set(re.findall(r"user\d+@example\.com", landed))
    assert raw_emails
    silver = load(spark, tables.silver("marketplace", "orders").path(env)).where("customer IS NOT NULL")
    customers = silver.select("customer.*").collect()
    text = " ".join(str(r.asDict()) for r in customers)
    assert not any(email in text for email in raw_emails)
    assert not re.search(r"\+1-555-\d{7}", text)  # no raw phone number
    key = os.environ["NORTHSTAR_PII_TOKEN_KEY"].encode()
    tokens = {hmac.new(key, e.encode(), hashlib.sha256).hexdigest() for e in raw_emails}
    for r in customers:
        assert r.email is None or r.email in tokens  # the same e-mail always gives the same token
        assert r.phone is None or re.fullmatch(r"[0-9a-f]{64}", r.phone)
        assert r.shipping_address.line1 is None or re.fullmatch(r"[0-9a-f]{64}", r.shipping_address.line1)
    assert {r.shipping_address.country for r in customers} <= {"US", "GB", "FR", "CA", None}


def test_silver_equals_ground_truth_and_every_line_is_accounted_for(spark, env, marketplace, feed):
    root, truth = feed
    deliver(root, env, marketplace, range(4))
    entries = run_source(spark, env, marketplace)

    assert silver_state(spark, env, "orders", "order_id") == truth_state(truth.orders)
    assert silver_state(spark, env, "refunds", "refund_id") == truth_state(truth.refunds)
    assert_pii_is_tokenized(spark, env, root)

    by_layer = {(e.layer, e.table_name): e for e in entries}
    bronze_orders, silver_orders = by_layer["bronze", "orders"], by_layer["silver", "orders"]
    assert bronze_orders.records_read == truth.lines["orders"]
    assert bronze_orders.records_quarantined == truth.malformed["orders"] > 0
    assert silver_orders.records_read == bronze_orders.records_written
    assert silver_orders.details["quarantined.null_primary_key"] == truth.null_keys["orders"] > 0
    assert silver_orders.records_written == len(truth.orders)
    assert silver_orders.details["exact_duplicates"] > 0
    assert silver_orders.details["superseded_in_batch"] > 0
    assert bronze_orders.details["rescued"] > 0  # shipping_fee turned into an object part-way

    rows = ledger.read(spark, env).collect()
    assert len(rows) == 4
    assert all(r.status == "success" for r in rows)
    for r in rows:
        assert r.records_read == r.records_written + r.records_duplicate + r.records_quarantined, r.run_id

    bronze = load(spark, tables.bronze("marketplace", "orders").path(env))
    assert "fulfillment" in bronze.columns  # the new field was added to the schema
    rescued = bronze.where(F.col("_rescued_data").isNotNull()).select("_rescued_data").first()[0]
    assert '"shipping_fee":"{\\"amount\\":' in rescued  # the object was kept, not lost
    quarantine = load(spark, tables.quarantine("marketplace", "orders").path(env))
    assert {r.reason for r in quarantine.select("reason").distinct().collect()} == {
        "malformed_record",
        "null_primary_key",
    }
    assert quarantine.where(F.col("raw_record").isNull() | F.col("landing_file").isNull()).count() == 0


def test_running_twice_leaves_every_table_identical(spark, env, marketplace, feed):
    root, _ = feed
    deliver(root, env, marketplace, range(4), names=("orders",))
    run_source(spark, env, marketplace, tables=["orders"])
    versions = snapshots.versions(spark, all_tables(env))

    again = run_source(spark, env, marketplace, tables=["orders"])

    assert [e.status for e in again] == ["noop", "noop"]
    assert all(e.records_read == 0 for e in again)
    assert snapshots.versions(spark, all_tables(env)) == versions  # no table got a new version
    snapshots.assert_rows_unchanged(spark, all_tables(env), versions)


def test_delivery_order_does_not_change_silver(spark, tmp_path, marketplace, feed):
    root, truth = feed
    forward, backward = make_env(tmp_path / "forward"), make_env(tmp_path / "backward")
    deliver(root, forward, marketplace, [0, 1, 2, 3], names=("orders",))  # all files in one run
    run_source(spark, forward, marketplace, tables=["orders"])
    for numbers in ([3, 2], [1, 0]):  # newest files first: the second run sees older versions arrive late
        deliver(root, backward, marketplace, numbers, names=("orders",))
        run_source(spark, backward, marketplace, tables=["orders"])
    first = load(spark, tables.silver("marketplace", "orders").path(forward), RUN_SPECIFIC)
    second = load(spark, tables.silver("marketplace", "orders").path(backward), RUN_SPECIFIC)
    assert_df_equality(first, second, ignore_row_order=True, ignore_column_order=True, ignore_nullable=True)
    assert silver_state(spark, backward, "orders", "order_id") == truth_state(truth.orders)


def test_crash_between_bronze_write_and_landing_log_is_repaired(spark, env, marketplace, feed, monkeypatch):
    root, truth = feed
    deliver(root, env, marketplace, range(4), names=("orders",))

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash after the bronze commit")

    monkeypatch.setattr("northstar.landing.files.record_ingested", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_bronze(spark, env, marketplace, "orders")
    monkeypatch.undo()
    failed = ledger.read(spark, env).collect()
    assert [(r.status, r.error.startswith("RuntimeError: simulated crash")) for r in failed] == [
        ("failed", True)
    ]

    entry = run_bronze(spark, env, marketplace, "orders")  # picks the same files up again
    assert entry.records_read == truth.lines["orders"]
    bronze = load(spark, tables.bronze("marketplace", "orders").path(env))
    assert bronze.count() == truth.lines["orders"]  # every line once; unparseable ones as raw text only
    assert bronze.where("_corrupt_record IS NOT NULL").count() == truth.malformed["orders"]
    quarantine = load(spark, tables.quarantine("marketplace", "orders").path(env))
    assert quarantine.count() == truth.malformed["orders"]

    run_silver(spark, env, marketplace, "orders")
    assert silver_state(spark, env, "orders", "order_id") == truth_state(truth.orders)


def test_crash_in_silver_before_merge_then_retry_writes_quarantine_once(
    spark, env, marketplace, feed, monkeypatch
):
    root, truth = feed
    deliver(root, env, marketplace, range(4), names=("orders",))
    run_bronze(spark, env, marketplace, "orders")

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash before the MERGE")

    monkeypatch.setattr("northstar.silver.runner.merge_latest", crash)
    with pytest.raises(RuntimeError):
        run_silver(spark, env, marketplace, "orders")
    monkeypatch.undo()
    retry = run_silver(spark, env, marketplace, "orders")

    assert retry.status == "success"
    assert retry.records_quarantined == truth.null_keys["orders"]
    assert retry.details["quarantine_written_by_earlier_attempt"] == 1
    quarantine = load(spark, tables.quarantine("marketplace", "orders").path(env)).where("layer = 'silver'")
    assert quarantine.count() == truth.null_keys["orders"]
    assert quarantine.select("record_hash").distinct().count() == quarantine.count()
    assert silver_state(spark, env, "orders", "order_id") == truth_state(truth.orders)


def test_full_refresh_rebuilds_the_same_silver(spark, env, marketplace, feed):
    root, _ = feed
    for number in range(4):
        deliver(root, env, marketplace, [number], names=("orders",))
        run_source(spark, env, marketplace, tables=["orders"])
    path = tables.silver("marketplace", "orders").path(env)
    incremental = snapshots.versions(spark, {"silver": path})
    quarantined = (
        load(spark, tables.quarantine("marketplace", "orders").path(env)).where("layer = 'silver'").count()
    )

    replay = run_silver(spark, env, marketplace, "orders", full_refresh=True)

    assert replay.balanced
    assert replay.details["full_refresh"] == 1
    snapshots.assert_rows_unchanged(spark, {"silver": path}, incremental)
    assert (
        load(spark, tables.quarantine("marketplace", "orders").path(env)).where("layer = 'silver'").count()
        == quarantined
    )


def test_notebook_one_liner_registers_tables_by_name(spark, env, marketplace, feed, tmp_path):
    root, truth = feed
    deliver(root, env, marketplace, range(2), names=("refunds",))
    run_source(spark, env, marketplace, tables=["refunds"])
    names = register_tables(spark, env)
    assert {"silver.marketplace_refunds", "bronze.marketplace_refunds", "ops.run_ledger"} <= set(names)
    assert (
        spark.table("silver.marketplace_refunds").count()
        == load(spark, tables.silver("marketplace", "refunds").path(env)).count()
    )
