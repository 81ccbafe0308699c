"""Quality checks in the silver job, quarantine replay after a rule fix, and write-audit-publish, on the local
stack (real Spark and Delta): tiny hand-made batches so each scenario's cause is visible in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from northstar import ledger
from northstar.bronze.runner import run_bronze
from northstar.lake import delta, tables
from northstar.quality import evaluate, publish
from northstar.quality import results as qr
from northstar.quality.spec import TableChecks
from northstar.silver.replay import replay
from northstar.silver.runner import run_silver
from tests.helpers.envs import make_env

CHECKS = {
    "table": "silver.marketplace_orders",
    "checks": [
        {"name": "status_known", "type": "accepted_values", "column": "status",
         "values": ["placed", "paid", "shipped"], "severity": "quarantine"},
        {"name": "currency_iso", "type": "pattern", "column": "currency", "regex": "[A-Z]{3}",
         "severity": "quarantine"},
        {"name": "few_items", "type": "range", "column": "item_count", "max": 3, "severity": "warn"},
        {"name": "order_id_unique", "type": "unique", "columns": ["order_id"], "severity": "fail"},
        {"name": "volume", "type": "row_count_anomaly", "severity": "warn"},
    ],
}  # fmt: skip


def order(order_id, status="paid", currency="USD", items=1, updated="2026-11-23T10:00:00Z", **extra):
    return {
        "order_id": order_id,
        "status": status,
        "created_at": "2026-11-23T09:00:00Z",
        "updated_at": updated,
        "currency": currency,
        "item_count": items,
        "totals": {"total": 10.0 * items},
        "shipping_fee": 4.5,
        # bronze cannot yet type a declared struct/array column that no record of a first batch carries
        "customer": {"id": "C-1"},
        "line_items": [{"sku": "SKU-1", "qty": items}],
        **extra,
    }


def land(env, source, name: str, records: list[dict]) -> None:
    folder = Path(tables.landing_folder(env, source.tables["orders"]))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records))


def silver_rows(spark, env):
    return {
        r["order_id"]: r["status"]
        for r in spark.read.format("delta").load(tables.silver("marketplace", "orders").path(env)).collect()
    }


@pytest.fixture(scope="module")
def quarantined_run(spark, marketplace, tmp_path_factory):
    """One silver run with quarantine-severity checks: 6 records, 2 rejected by checks, 1 superseded."""
    env = make_env(tmp_path_factory.mktemp("quality"))
    land(
        env,
        marketplace,
        "part-0001.jsonl",
        [
            order("MO-1", "placed", updated="2026-11-23T08:00:00Z"),
            order("MO-1", "paid"),
            order("MO-2", items=5),
            order("MO-3", "shipped"),
            order("MO-4", "on_hold"),
            order("MO-5", currency="usd"),
        ],
    )
    run_bronze(spark, env, marketplace, "orders")
    entry = run_silver(spark, env, marketplace, "orders", checks=TableChecks.model_validate(CHECKS))
    return env, entry


def test_quarantine_check_rejects_failing_rows_while_valid_rows_continue(spark, quarantined_run):
    env, entry = quarantined_run
    assert silver_rows(spark, env) == {"MO-1": "paid", "MO-2": "paid", "MO-3": "shipped"}
    assert (
        entry.records_read,
        entry.records_written,
        entry.records_duplicate,
        entry.records_quarantined,
    ) == (6, 3, 1, 2)
    stored = ledger.read(spark, env).where(F.col("run_id") == entry.run_id).first()
    assert stored["status"] == ledger.SUCCESS
    assert stored["details"]["quarantined.failed_check"] == 2
    rejected = {
        r["check_name"]: r
        for r in spark.read.format("delta")
        .load(tables.quarantine("marketplace", "orders").path(env))
        .collect()
    }
    assert set(rejected) == {"status_known", "currency_iso"}
    on_hold = rejected["status_known"]
    assert (on_hold.reason, on_hold.run_id, on_hold.replayed_run_id) == ("failed_check", entry.run_id, None)
    assert on_hold.reason_detail == "status_known: status = 'on_hold' is not one of placed, paid, shipped"
    assert json.loads(on_hold.raw_record)["order_id"] == "MO-4"

    results = {
        r["check_name"]: r for r in qr.read(spark, env).where(F.col("run_id") == entry.run_id).collect()
    }
    assert set(results) == {"status_known", "currency_iso", "few_items", "order_id_unique", "volume"}
    assert (results["status_known"].status, results["status_known"].failing_keys) == ("quarantined", ["MO-4"])
    assert (results["few_items"].status, results["few_items"].failed_rows) == (
        "warn",
        1,
    )  # warn: MO-2 went on
    assert results["order_id_unique"].status == "pass"
    assert results["volume"].status == "skipped"
    assert "not judged" in results["volume"].explanation


def test_replay_after_fixing_the_rule_leaves_no_duplicates_and_is_recorded(
    spark, marketplace, quarantined_run
):
    env, first = quarantined_run
    fixed = {
        **CHECKS,
        "checks": [
            dict(CHECKS["checks"][0], values=["placed", "paid", "shipped", "on_hold"]),
            *CHECKS["checks"][1:],
        ],
    }
    fixed = TableChecks.model_validate(fixed)
    silver_path = tables.silver("marketplace", "orders").path(env)

    entry = replay(spark, env, marketplace, "orders", check="status_known", checks=fixed)
    assert (
        entry.records_read,
        entry.records_written,
        entry.records_duplicate,
        entry.records_quarantined,
    ) == (1, 1, 0, 0)
    rows = spark.read.format("delta").load(silver_path)
    assert rows.count() == rows.select("order_id").distinct().count() == 4
    assert silver_rows(spark, env)["MO-4"] == "on_hold"
    marks = {
        r["check_name"]: r["replayed_run_id"]
        for r in spark.read.format("delta")
        .load(tables.quarantine("marketplace", "orders").path(env))
        .collect()
    }
    assert marks == {"status_known": entry.run_id, "currency_iso": None}  # marked, not deleted
    recorded = ledger.read(spark, env).where(F.col("run_id") == entry.run_id).first()
    assert (recorded["job"], recorded["records_read"], recorded["records_written"]) == (
        "quarantine_replay",
        1,
        1,
    )

    version = delta.latest_version(spark, silver_path)
    again = replay(spark, env, marketplace, "orders", checks=fixed)  # MO-5 still fails currency_iso
    assert (again.records_read, again.records_written, again.records_quarantined) == (1, 0, 1)
    assert replay(spark, env, marketplace, "orders", check="status_known", checks=fixed).status == ledger.NOOP
    assert delta.latest_version(spark, silver_path) == version  # the second replay changed nothing

    log = (
        spark.read.format("delta").load(tables.QUARANTINE_REPLAYS.path(env)).orderBy("replayed_at").collect()
    )
    assert [(r.selected, r.written, r.still_quarantined, r.check_filter) for r in log] == [
        (1, 1, 0, "status_known"),
        (1, 0, 1, None),
        (0, 0, 0, "status_known"),
    ]
    assert ledger.last_input_version(spark, env, "silver", "marketplace", "orders") == first.input_version_end


def test_fail_severity_stops_the_run_before_anything_is_written(spark, marketplace, env):
    land(env, marketplace, "part-0001.jsonl", [order("MO-1"), order("MO-2", items=9)])
    run_bronze(spark, env, marketplace, "orders")
    strict = TableChecks.model_validate(
        {
            "table": "silver.marketplace_orders",
            "checks": [
                {"name": "few_items", "type": "range", "column": "item_count", "max": 3, "severity": "fail"}
            ],
        }
    )
    with pytest.raises(
        evaluate.QualityCheckFailed,
        match=r"few_items \[range\]: item_count must be within \[None, 3.0\]: 1 of 2 rows failed",
    ) as err:
        run_silver(spark, env, marketplace, "orders", checks=strict)
    assert "nothing was written to the table" in str(err.value)
    assert not delta.table_exists(spark, tables.silver("marketplace", "orders").path(env))
    assert not delta.table_exists(spark, tables.quarantine("marketplace", "orders").path(env))
    failed_run = ledger.read(spark, env).where("layer = 'silver'").first()
    assert failed_run["status"] == ledger.FAILED
    assert "QualityCheckFailed" in failed_run["error"]
    result = qr.read(spark, env).first()
    assert (result.check_name, result.status, result.failing_keys) == ("few_items", "fail", ["MO-2"])
    alert = spark.read.format("delta").load(tables.ALERTS.path(env)).first()
    assert (alert.kind, alert.table_name, alert.run_id) == (
        "quality_check_failed",
        "silver.marketplace_orders",
        failed_run["run_id"],
    )


def test_failed_audit_keeps_the_published_version_and_alerts(spark, env, tmp_path, use_conf):
    conf = tmp_path / "conf"
    (conf / "quality").mkdir(parents=True)
    (conf / "quality" / "gold.daily_revenue.yaml").write_text(
        "table: gold.daily_revenue\n"
        "checks:\n"
        "  - {name: revenue_not_negative, type: range, column: revenue, min: 0, severity: fail}\n"
        "  - {name: day_unique, type: unique, columns: [day], severity: fail}\n"
    )
    use_conf(conf)
    table = tables.gold("daily_revenue")
    path = table.path(env)

    def write_and_audit(run_id, rows):
        frame = spark.createDataFrame(rows, "day string, revenue double")
        frame.write.format("delta").mode("overwrite").save(path)
        found = evaluate.run_checks(spark, env, table.full_name, frame, run_id, key=["day"])
        return publish.audit_and_publish(spark, env, table, run_id, found)

    assert publish.published_version(spark, env, table) is None
    good = write_and_audit("gold-1", [("2026-11-23", 100.0), ("2026-11-24", 120.0)])
    assert (good.published, good.version, publish.published_version(spark, env, table)) == (True, 0, 0)

    bad = write_and_audit("gold-2", [("2026-11-23", 100.0), ("2026-11-24", -5.0), ("2026-11-24", 1.0)])
    assert (bad.published, bad.version, bad.published_version) == (False, 1, 0)
    assert bad.failed_checks == ["day_unique", "revenue_not_negative"]
    assert publish.published_version(spark, env, table) == 0
    assert sorted(r.revenue for r in publish.read_published(spark, env, table).collect()) == [
        100.0,
        120.0,
    ]
    alert = spark.read.format("delta").load(tables.ALERTS.path(env)).first()
    assert alert.kind == "audit_failed"
    assert "version 0 stays published" in alert.message

    stored = qr.read(spark, env).where("run_id = 'gold-2'")
    again = publish.audit_and_publish(spark, env, table, "gold-2", stored)  # a retry: same answer
    assert (again.published, again.published_version) == (False, 0)
    decisions = spark.read.format("delta").load(tables.PUBLISHED_VERSIONS.path(env))
    assert [
        (r.run_id, r.decision, r.version, r.published_version)
        for r in decisions.orderBy("decided_at").collect()
    ] == [
        ("gold-1", "published", 0, 0),
        ("gold-2", "refused", 1, 0),
    ]
