"""Conformed models end to end: generated feed -> bronze -> silver -> silver.orders / silver.refunds, checked
against the generator's ground truth computed here in plain Python."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pyspark.sql import functions as F

from northstar import ledger
from northstar.dev.generate.marketplace import generate_feed
from northstar.lake import tables
from northstar.models.runner import run_models
from northstar.silver.pipeline import run_source
from tests.helpers import snapshots
from tests.helpers.envs import CONF

TOKEN_KEY = "integration-test-token-key"
UTC_MS = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    root = tmp_path_factory.mktemp("model-feed")
    return root, generate_feed(root, orders=90, files=3, seed=23)


@pytest.fixture(autouse=True)
def token_key(monkeypatch):
    monkeypatch.setenv("NORTHSTAR_CUSTOMER_TOKEN_KEY", TOKEN_KEY)
    monkeypatch.delenv("NORTHSTAR_CUSTOMER_TOKEN_KEY_REF", raising=False)


def deliver(feed_root: Path, env, parts, names=("orders", "refunds")) -> None:
    for table in names:
        target = Path(env.landing) / "marketplace" / table
        target.mkdir(parents=True, exist_ok=True)
        for number in parts:
            shutil.copy(feed_root / "marketplace" / table / f"part-{number:04d}.jsonl", target)


def money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def status_map(model: str) -> dict[str, str]:
    return yaml.safe_load((CONF / "models" / f"{model}.yaml").read_text())["inputs"][0]["status_map"]


def expected_order(record: dict, statuses: dict[str, str]) -> tuple:
    """What silver.orders must hold for one generator record, worked out without Spark."""
    fee = record["shipping_fee"]
    shipping = fee["amount"] if isinstance(fee, dict) else fee  # API v2 turned it into an object
    items = tuple(
        (
            i["sku"],
            i["quantity"],
            money(i["unit_price"]),
            sum((money(d["amount"]) for d in i["discounts"]), Decimal("0.00")),
        )
        for i in record["line_items"]
    )
    token = hmac.new(
        TOKEN_KEY.encode(), f"marketplace:{record['customer']['customer_id']}".encode(), hashlib.sha256
    )
    return (
        statuses[record["status"]],
        record["currency"],
        money(record["totals"]["subtotal"]),
        money(record["totals"]["tax"]),
        money(shipping),
        Decimal("0.00"),
        money(record["totals"]["total"]),
        items,
        (record.get("fulfillment") or {}).get("channel"),
        record["created_at"],
        record["updated_at"],
        token.hexdigest(),
    )


def conformed_orders(spark, env) -> dict[str, tuple]:
    rows = (
        spark.read.format("delta")
        .load(tables.model("orders").path(env))
        .withColumn("created", F.date_format("created_at", UTC_MS))
        .withColumn("updated", F.date_format("updated_at", UTC_MS))
        .collect()
    )
    return {
        r.order_id: (
            r.status,
            r.currency,
            r.subtotal_amount,
            r.tax_amount,
            r.shipping_amount,
            r.discount_amount,
            r.total_amount,
            tuple((i.sku, i.quantity, i.unit_price, i.discount_amount) for i in r.line_items),
            r.fulfillment_channel,
            r.created,
            r.updated,
            r.customer_token,
        )
        for r in rows
    }


def marketplace_models(spark, env, **options):
    """The marketplace inputs' runs of the models it feeds (the shop's input of orders has no silver table
    here: its run is a noop, left out; payments and shipments have no input here either)."""
    return [
        e
        for m in ("orders", "refunds")
        for e in run_models(spark, env, m, **options)
        if e.source == "marketplace"
    ]


def test_models_equal_ground_truth_rerun_is_a_noop_and_full_refresh_is_identical(
    spark, env, marketplace, feed
):
    root, truth = feed
    deliver(root, env, [0, 1])
    run_source(spark, env, marketplace)
    first = marketplace_models(spark, env)
    deliver(root, env, [2])  # later versions, the schema change, late updates: read from silver's change feed
    run_source(spark, env, marketplace)
    second = marketplace_models(spark, env)
    assert [e.status for e in first + second] == ["success"] * 4
    assert second[0].records_read > 0
    assert second[0].details["full_refresh"] == 0

    statuses = status_map("orders")
    expected = {k: expected_order(v, statuses) for k, v in truth.orders.items()}
    assert any(isinstance(v["shipping_fee"], dict) for v in truth.orders.values())  # the drift is in the feed
    assert conformed_orders(spark, env) == expected

    orders = spark.read.format("delta").load(tables.model("orders").path(env))
    totals = {
        r.currency: r.total
        for r in orders.groupBy("currency").agg(F.sum("total_amount").alias("total")).collect()
    }
    truth_totals: Counter = Counter()
    for record in truth.orders.values():
        truth_totals[record["currency"]] += money(record["totals"]["total"])
    assert totals == dict(truth_totals)
    assert not {"customer", "email", "phone"} & set(orders.columns)

    refund_statuses = status_map("refunds")
    refunds = {
        r.refund_id: (r.order_id, r.status, r.currency, r.refund_amount, r.updated)
        for r in spark.read.format("delta")
        .load(tables.model("refunds").path(env))
        .withColumn("updated", F.date_format("updated_at", UTC_MS))
        .collect()
    }
    assert refunds == {
        k: (v["order_id"], refund_statuses[v["status"]], v["currency"], money(v["amount"]), v["updated_at"])
        for k, v in truth.refunds.items()
    }

    model_runs = ledger.read(spark, env).where("layer = 'model' AND source = 'marketplace'").collect()
    assert len(model_runs) == 4
    for run in model_runs:
        assert run.records_read == run.records_written + run.records_duplicate + run.records_quarantined
    paths = {m: tables.model(m).path(env) for m in ("orders", "refunds")}
    versions = snapshots.versions(spark, paths)

    again = marketplace_models(spark, env)
    assert [e.status for e in again] == ["noop", "noop"]
    assert snapshots.versions(spark, paths) == versions

    replay = marketplace_models(spark, env, full_refresh=True)
    assert all(e.status == "success" and e.details["full_refresh"] == 1 for e in replay)
    assert all(snapshots.versions(spark, paths)[m] > versions[m] for m in paths)  # rewritten ...
    snapshots.assert_rows_unchanged(spark, paths, versions)  # ... with the same rows


def test_late_update_changes_only_that_order_and_bad_rows_go_to_quarantine(spark, env, marketplace, feed):
    root, truth = feed
    deliver(root, env, [0, 1, 2], names=("orders",))
    run_source(spark, env, marketplace, tables=["orders"])
    run_models(spark, env, "orders")
    before = conformed_orders(spark, env)

    old_id, stale_id = sorted(truth.orders)[:2]
    old = truth.orders[old_id]
    later = datetime.fromisoformat(old["updated_at"].replace("Z", "+00:00")) + timedelta(days=3)
    late = {
        **old,
        "status": "cancelled",
        "updated_at": later.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "sequence": 99,
    }
    stale = {**truth.orders[stale_id], "status": "placed", "updated_at": "2020-01-01T00:00:00.000Z"}
    unknown_currency = {**old, "order_id": "MO-9999999", "currency": "ZZZ"}
    landing = Path(env.landing) / "marketplace" / "orders" / "part-late.jsonl"
    landing.write_text("\n".join(json.dumps(r) for r in (late, stale, unknown_currency)) + "\n")
    run_source(spark, env, marketplace, tables=["orders"])
    [entry] = [e for e in run_models(spark, env, "orders") if e.source == "marketplace"]

    after = conformed_orders(spark, env)
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == {old_id}  # the stale version never reached silver; ZZZ is quarantined
    assert after[old_id][0] == "cancelled"
    assert after[old_id][10] == late["updated_at"]
    assert (entry.records_read, entry.records_written, entry.records_quarantined) == (2, 1, 1)
    assert entry.details["updated"] == 1
    assert entry.details["quarantined.unknown_currency"] == 1

    quarantined = spark.read.format("delta").load(tables.model_quarantine("orders").path(env)).collect()
    assert [(q.reason, q.layer, q.table_name) for q in quarantined] == [
        ("unknown_currency", "model", "orders")
    ]
    assert "'ZZZ'" in quarantined[0].reason_detail
    assert "MO-9999999" in quarantined[0].raw_record
    assert old["customer"]["email"] not in quarantined[0].raw_record  # no PII in quarantine rows either
