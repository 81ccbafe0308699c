"""Gold and the Snowflake publish on a crafted set computed by hand: facts and the daily revenue mart, a late
refund recomputing only its own day, publishing twice, a publish that dies between the staging load and the
MERGE and its retry, no raw PII in gold or the warehouse, warehouse totals equal to gold.

Everything runs for real: Spark + Delta for silver and gold, fakesnow (DuckDB behind the Snowflake Python
connector) for the warehouse. One module-scoped set-up is shared by the scenarios to keep the suite fast.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from northstar import ledger
from northstar.config.env import SnowflakeSpec
from northstar.gold import transforms as gold_transforms
from northstar.gold.runner import run_gold
from northstar.gold.tables import GOLD
from northstar.lake import delta, tables
from northstar.models import orders as orders_model
from northstar.models.runner import run_models
from northstar.quality.evaluate import run_checks
from northstar.quality.publish import audit_and_publish, published_version
from northstar.warehouse import publish
from northstar.warehouse.connection import connect, execute
from northstar.warehouse.reconcile import ReconciliationError
from tests.helpers.envs import make_env

D = Decimal
DAY1, DAY2 = date(2026, 3, 1), date(2026, 3, 2)
RAW_EMAILS = ("alice@example.com", "bob@example.org")
RAW_PHONES = ("+1-415-555-0100", "+44 20 7946 0958")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"\+?\d[\d\s().-]{7,}\d")

ORDER_SCHEMA = orders_model.T.StructType(
    [
        orders_model.T.StructField(n, t)
        for n, t in [
            ("source_system", orders_model.T.StringType()),
            ("order_id", orders_model.T.StringType()),
            ("status", orders_model.T.StringType()),
            ("source_status", orders_model.T.StringType()),
            ("customer_token", orders_model.T.StringType()),
            *[(a, orders_model.T.StringType()) for a in orders_model.CUSTOMER_ATTRIBUTES],
            ("ship_to_country", orders_model.T.StringType()),
            ("sales_channel", orders_model.T.StringType()),
            ("fulfillment_channel", orders_model.T.StringType()),
            ("currency", orders_model.T.StringType()),
            *[(a, orders_model.c.AMOUNT) for a in orders_model.AMOUNTS],
            ("line_items", orders_model.LINE_ITEMS),
            ("item_count", orders_model.T.IntegerType()),
            ("created_at", orders_model.T.TimestampType()),
            ("updated_at", orders_model.T.TimestampType()),
            ("_source_table", orders_model.T.StringType()),
            ("_record_hash", orders_model.T.StringType()),
            ("_landing_file", orders_model.T.StringType()),
        ]
    ]
)
REFUND_SCHEMA = (
    "source_system string, refund_id string, order_id string, status string, source_status string, "
    "reason string, currency string, refund_amount decimal(18,2), created_at timestamp, updated_at timestamp, "
    "_source_table string, _record_hash string, _landing_file string"
)


def line(n, sku, qty, price, discount="0.00"):
    return (f"L{n}", sku, qty, D(price), D(discount))


def order(order_id, created, channel, currency, total, status, lines, token, email):
    total = D(total)
    details = (email, "ab" * 32, "cd" * 32, "ef" * 32)  # email, phone, name, city tokens as silver holds them
    return (
        "marketplace", order_id, status, status, token, *details, "US", channel, None, currency,
        total, D("0.00"), D("0.00"), D("0.00"), total, lines, len(lines), created, created,
        "silver.marketplace_orders", f"h-{order_id}", "f.jsonl",
    )  # fmt: skip


LINE_SCHEMA = (
    "source_system string, order_id string, line_id string, line_number int, sku string, quantity int, "
    "unit_price decimal(18,2), discount_amount decimal(18,2), line_amount decimal(18,2), is_deleted boolean, "
    "created_at timestamp, updated_at timestamp, _source_table string, _record_hash string, _landing_file string"
)


def lines_of(orders):
    """silver.order_lines as the order_lines model conforms a partner order's line_items."""
    return [
        (o[0], o[1], item[0], n, item[1], item[2], item[3], item[4], item[2] * item[3] - item[4], False,
         o[-5], o[-4], o[-3], f"{o[-2]}-{n}", o[-1])
        for o in orders
        for n, item in enumerate(o[-7], start=1)
    ]  # fmt: skip


def refund(refund_id, order_id, created, status, currency, amount):
    return (
        "marketplace", refund_id, order_id, status, status, "damaged", currency, D(amount), created, created,
        "silver.marketplace_refunds", f"h-{refund_id}", "f.jsonl",
    )  # fmt: skip


# Tokens as silver.orders carries them (HMAC of the customer id / of the e-mail); raw values never reach it.
TOKEN_A, TOKEN_B = "a" * 64, "b" * 64
EMAIL_A_OLD, EMAIL_A_NEW, EMAIL_B = "d" * 64, "e" * 64, "f" * 64  # customer A changes e-mail before O5
ORDERS = [
    # day 1: USD web 100.00 (two lines), USD app 50.00, EUR web 80.00
    order(
        "O1",
        datetime(2026, 3, 1, 10),
        "web",
        "USD",
        "100.00",
        "paid",
        [line(1, "A", 2, "30.00"), line(2, "B", 1, "40.00")],
        TOKEN_A,
        EMAIL_A_OLD,
    ),
    order(
        "O2",
        datetime(2026, 3, 1, 23, 30),
        "app",
        "USD",
        "50.00",
        "delivered",
        [line(1, "C", 1, "50.00")],
        TOKEN_B,
        EMAIL_B,
    ),
    order(
        "O3",
        datetime(2026, 3, 1, 12),
        "web",
        "EUR",
        "80.00",
        "shipped",
        [line(1, "D", 4, "20.00")],
        TOKEN_A,
        EMAIL_A_OLD,
    ),
    # day 2: a cancelled USD web order (earns nothing), EUR app 35.50 (2 x 18.00 - 0.50 discount)
    order(
        "O4",
        datetime(2026, 3, 2, 9),
        "web",
        "USD",
        "20.00",
        "cancelled",
        [line(1, "E", 1, "20.00")],
        TOKEN_B,
        EMAIL_B,
    ),
    order(
        "O5",
        datetime(2026, 3, 2, 15),
        "app",
        "EUR",
        "35.50",
        "paid",
        [line(1, "F", 2, "18.00", "0.50")],
        TOKEN_A,
        EMAIL_A_NEW,
    ),
]
# Delivered with the late refund: created on day 2 at 10:00 (before O5) with customer A's OLD e-mail.
LATE_ORDER = order("O6", datetime(2026, 3, 2, 10), "web", "USD", "12.00", "paid", [line(1, "G", 1, "12.00")],
                   TOKEN_A, EMAIL_A_OLD)  # fmt: skip
REFUNDS = [
    refund("R1", "O1", datetime(2026, 3, 2, 8), "completed", "USD", "30.00"),  # counts on day 2, web
    refund("R2", "O3", datetime(2026, 3, 1, 18), "requested", "EUR", "80.00"),  # not money back: 0
    refund(
        "R4", "O99", datetime(2026, 3, 2, 11), "completed", "USD", "5.00"
    ),  # order unknown: kept, 'unknown'
]
LATE_REFUND = refund("R3", "O5", datetime(2026, 3, 2, 20), "completed", "EUR", "10.00")  # arrives after gold

# (day, currency, channel) -> (order_count, gross, refund_count, refunded, net), worked out by hand above
REVENUE_BEFORE = {
    (DAY1, "USD", "web"): (1, D("100.00"), 0, D("0.00"), D("100.00")),
    (DAY1, "USD", "app"): (1, D("50.00"), 0, D("0.00"), D("50.00")),
    (DAY1, "EUR", "web"): (1, D("80.00"), 0, D("0.00"), D("80.00")),
    (DAY2, "USD", "web"): (0, D("0.00"), 1, D("30.00"), D("-30.00")),
    (DAY2, "EUR", "app"): (1, D("35.50"), 0, D("0.00"), D("35.50")),
    (DAY2, "USD", "unknown"): (0, D("0.00"), 1, D("5.00"), D("-5.00")),
}
REVENUE_AFTER = {
    **REVENUE_BEFORE,
    (DAY2, "EUR", "app"): (1, D("35.50"), 1, D("10.00"), D("25.50")),  # late R3: 35.50 - 10.00
    (DAY2, "USD", "web"): (1, D("12.00"), 1, D("30.00"), D("-18.00")),  # late O6: 12.00 - 30.00 (R1)
}

# silver.stripe_charges as silver holds them (minor units, epoch seconds); the payments model conforms them.
CHARGE_SCHEMA = (
    "id string, amount bigint, amount_refunded bigint, currency string, status string, created bigint, "
    "_extracted_at timestamp, metadata struct<order_id:string>, billing_details struct<email:string,name:string>, "
    "_record_hash string, _landing_file string"
)
EXTRACTED = datetime(2026, 3, 3)


def charge(charge_id, order_id, amount, refunded, currency, status, created, extracted=EXTRACTED):
    seconds = int((created - datetime(1970, 1, 1)).total_seconds())
    billing = {
        "email": RAW_EMAILS[0],
        "name": "Alice",
    }  # raw, as in a silver table built before its pii: list
    return (charge_id, amount, refunded, currency, status, seconds, extracted, {"order_id": order_id}, billing,
            f"h-{charge_id}-{extracted:%d}", "charges.jsonl")  # fmt: skip


CHARGES = [
    charge("ch_1", "O1", 10000, 3000, "usd", "succeeded", datetime(2026, 3, 1, 10, 5)),  # 100.00, 30.00 back
    charge("ch_2", "O3", 8000, 0, "eur", "succeeded", datetime(2026, 3, 1, 12, 1)),  # 80.00
    charge("ch_3", "O5", 5000, 0, "jpy", "succeeded", datetime(2026, 3, 2, 15, 1)),  # JPY: 5000, not 50.00
    charge("ch_4", "O2", 5000, 0, "usd", "failed", datetime(2026, 3, 1, 23, 31)),  # 50.00, failed
    charge(
        "ch_5", "O4", 2000, 0, "usd", "requires_capture", datetime(2026, 3, 2, 9, 1)
    ),  # unmapped: quarantined
]
# the second delivery: a later snapshot of ch_3 with 1,200 yen refunded (the charge stays on day 2)
# (payment_date, currency) -> (rows, amount, amount_refunded, net_amount), by hand from CHARGES
PAYMENTS_BEFORE = {
    (DAY1, "USD"): (2, D("150.00"), D("30.00"), D("120.00")),  # ch_1 100.00 + ch_4 50.00; 30.00 refunded
    (DAY1, "EUR"): (1, D("80.00"), D("0.00"), D("80.00")),  # ch_2
    (DAY2, "JPY"): (1, D("5000.00"), D("0.00"), D("5000.00")),  # ch_3
}
PAYMENTS_AFTER = {
    **PAYMENTS_BEFORE,
    (DAY2, "JPY"): (1, D("5000.00"), D("1200.00"), D("3800.00")),
}  # 5000-1200

# silver.shipments as the shipments model conforms the 3PL rows (its mapping: tests/unit/test_gold_models.py)
SHIPMENT_SCHEMA = (
    "source_system string, shipment_id string, order_id string, status string, source_status string, "
    "carrier string, warehouse string, cartons int, weight_kg decimal(18,2), status_time timestamp, "
    "updated_at timestamp, _source_table string, _record_hash string, _landing_file string"
)


def shipment(system, shipment_id, order_id, status, source_status, at, carrier, warehouse, cartons, weight):
    return (system, shipment_id, order_id, status, source_status, carrier, warehouse, cartons, D(weight), at, at,
            f"silver.{system.replace('_', '_shipments_')}", f"h-{shipment_id}-{source_status}", "wms.csv")  # fmt: skip


SHIPMENTS = [
    shipment("wms_acme", "S1", "O1", "delivered", "delivered", datetime(2026, 3, 1, 20), "UPS", "RNO1", 2, "3.50"),
    shipment("wms_bolt", "S2", "O3", "in_transit", "out_for_delivery", datetime(2026, 3, 1, 22), "DHL", "ATL2", 1, "1.25"),
    shipment("wms_acme", "S3", "O2", "pending", "packed", datetime(2026, 3, 1, 23, 45), "UPS", "RNO1", 1, "2.00"),
]  # fmt: skip
# S3's next status, a day later: it leaves day 1 for day 2 (the pre-image's day is recomputed too)
LATE_SHIPMENT = {
    "status": "'shipped'",
    "source_status": "'shipped'",
    "status_time": "timestamp'2026-03-02 08:00:00'",
}
# (shipment_date) -> {shipment_id: (source_system, status, weight_kg)}, by hand
SHIPMENTS_AFTER = {
    DAY1: {"S1": ("wms_acme", "delivered", D("3.50")), "S2": ("wms_bolt", "in_transit", D("1.25"))},
    DAY2: {"S3": ("wms_acme", "shipped", D("2.00"))},  # was pending (packed) on day 1
}

# gold.dim_customer after both deliveries, by hand: (token, email token, valid_from, valid_to, current, orders)
DIMENSION_AFTER = {
    (TOKEN_A, EMAIL_A_OLD, datetime(2026, 3, 1, 10), datetime(2026, 3, 2, 15), False, 3),  # O1, O3 + late O6
    (TOKEN_A, EMAIL_A_NEW, datetime(2026, 3, 2, 15), None, True, 1),  # O5: the e-mail changed
    (TOKEN_B, EMAIL_B, datetime(2026, 3, 1, 23, 30), None, True, 2),  # O2, O4: no change, one version
}


def revenue(spark, env) -> dict:
    rows = spark.read.format("delta").load(tables.gold("daily_revenue").path(env)).collect()
    return {
        (r.revenue_date, r.currency, r.sales_channel): (
            r.order_count,
            r.gross_amount,
            r.refund_count,
            r.refund_amount,
            r.net_amount,
        )
        for r in rows
    }


def payments(spark, env) -> dict:
    rows = (
        spark.read.format("delta").load(tables.gold("fact_payments").path(env))
        .groupBy("payment_date", "currency")
        .agg(F.count(F.lit(1)), F.sum("amount"), F.sum("amount_refunded"), F.sum("net_amount"))
        .collect()
    )  # fmt: skip
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def dimension(spark, env) -> dict:
    """(customer_token, email token, valid_from, valid_to, is_current, orders_in_version) -> customer_sk."""
    rows = spark.read.format("delta").load(tables.gold("dim_customer").path(env)).collect()
    return {
        (
            r.customer_token,
            r.customer_email_token,
            r.valid_from,
            r.valid_to,
            r.is_current,
            r.orders_in_version,
        ): (r.customer_sk)
        for r in rows
    }


def files_by_day(spark, env, table, column) -> dict:
    rows = (
        spark.read.format("delta").load(tables.gold(table).path(env))
        .select(column, F.input_file_name().alias("file")).distinct().collect()
    )  # fmt: skip
    out: dict = {}
    for r in rows:
        out.setdefault(r[column], set()).add(r["file"])
    return out


def gold_contents(spark, env, table) -> Counter:
    frame = spark.read.format("delta").load(tables.gold(table).path(env))
    return Counter(tuple(_plain(v) for v in r) for r in frame.select(*frame.columns).collect())


def warehouse_contents(conn, spec, table) -> Counter:
    return Counter(
        tuple(_plain(v) for v in r)
        for r in execute(
            conn, f"SELECT * EXCLUDE (_LOADED_AT, _RUN_ID) FROM {publish.qualified(spec, table)}"
        )
    )


def _plain(value):
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    """Silver built from the crafted rows, gold built once, then the late refund and a second gold run."""
    root = tmp_path_factory.mktemp("gold")
    env = make_env(root)
    env = env.model_copy(
        update={
            "snowflake": SnowflakeSpec(
                mode="fakesnow", account="local", database="NORTHSTAR", warehouse="WH", role="PUBLISHER",
                user="env:USER", password="env:NORTHSTAR_SNOWFLAKE_PASSWORD", fakesnow_path=str(root / "snowflake"),
            )
        }
    )  # fmt: skip
    cdf = {"delta.enableChangeDataFeed": "true"}
    spark.createDataFrame(ORDERS, ORDER_SCHEMA).write.format("delta").options(**cdf).save(
        tables.model("orders").path(env)
    )
    spark.createDataFrame(lines_of(ORDERS), LINE_SCHEMA).write.format("delta").options(**cdf).save(
        tables.model("order_lines").path(env)
    )
    spark.createDataFrame(REFUNDS, REFUND_SCHEMA).write.format("delta").options(**cdf).save(
        tables.model("refunds").path(env)
    )
    # Stripe goes through its conformed model (minor units, status map, quarantine) as in production
    spark.createDataFrame(CHARGES, CHARGE_SCHEMA).write.format("delta").options(**cdf).save(
        tables.silver("stripe", "charges").path(env)
    )
    spark.createDataFrame(SHIPMENTS, SHIPMENT_SCHEMA).write.format("delta").options(**cdf).save(
        tables.model("shipments").path(env)
    )
    models = run_models(spark, env, "payments")
    first = run_gold(spark, env)
    state = {
        "first": first,
        "revenue_before": revenue(spark, env),
        "facts": {
            name: {tuple(r) for r in spark.read.format("delta").load(tables.gold(name).path(env)).drop("created_at", "updated_at").collect()}
            for name in ("fact_orders", "fact_order_lines", "fact_refunds")
        },
        "files_before": {
            "daily_revenue": files_by_day(spark, env, "daily_revenue", "revenue_date"),
            "fact_refunds": files_by_day(spark, env, "fact_refunds", "refund_date"),
        },
        "versions_before": {n: delta.latest_version(spark, tables.gold(n).path(env)) for n in GOLD},
        "models": models,
        "payments_before": payments(spark, env),
        "dimension_before": dimension(spark, env),
    }  # fmt: skip
    state["files_before"]["fact_orders"] = files_by_day(spark, env, "fact_orders", "order_date")
    state["files_before"]["fact_payments"] = files_by_day(spark, env, "fact_payments", "payment_date")
    # the second delivery: a late refund, a late order with old customer details, a later Stripe snapshot
    # (1,200 yen refunded on ch_3) and a shipment's next status a day later
    spark.createDataFrame([LATE_REFUND], REFUND_SCHEMA).write.format("delta").mode("append").save(
        tables.model("refunds").path(env)
    )
    spark.createDataFrame([LATE_ORDER], ORDER_SCHEMA).write.format("delta").mode("append").save(
        tables.model("orders").path(env)
    )
    spark.createDataFrame(lines_of([LATE_ORDER]), LINE_SCHEMA).write.format("delta").mode("append").save(
        tables.model("order_lines").path(env)
    )
    # what the models' MERGE does with a newer version: one UPDATE of the conformed row
    DeltaTable.forPath(spark, tables.model("payments").path(env)).update(
        "payment_id = 'ch_3'",
        {"amount_refunded": "CAST(1200 AS DECIMAL(18,2))", "updated_at": "timestamp'2026-03-04'"},
    )
    DeltaTable.forPath(spark, tables.model("shipments").path(env)).update("shipment_id = 'S3'", LATE_SHIPMENT)
    state["second"] = run_gold(spark, env)
    state["versions_after"] = {n: delta.latest_version(spark, tables.gold(n).path(env)) for n in GOLD}
    state["third"] = run_gold(spark, env)
    return env, state


def test_gold_figures_equal_the_hand_computed_ones(spark, lake):
    env, state = lake
    assert state["revenue_before"] == REVENUE_BEFORE
    assert revenue(spark, env) == REVENUE_AFTER
    facts = state["facts"]
    lines = {(r[1], r[2]): r for r in facts["fact_order_lines"]}
    assert len(lines) == 6
    assert lines[("O1", 1)][5:12] == ("A", 2, "USD", D("30.00"), D("0.00"), D("60.00"), "web")
    assert lines[("O5", 1)][10] == D("35.50")  # 2 x 18.00 - 0.50
    refunds = {r[1]: r for r in facts["fact_refunds"]}
    assert refunds["R1"][3:] == (DAY2, DAY1, "completed", "damaged", "USD", D("30.00"), "web")
    assert refunds["R4"][3:] == (DAY2, None, "completed", "damaged", "USD", D("5.00"), "unknown")
    orders = {r[1]: r for r in facts["fact_orders"]}
    assert orders["O2"][2] == DAY1
    assert orders["O4"][3] == "cancelled"
    assert {r[4] for r in facts["fact_orders"]} == {TOKEN_A, TOKEN_B}
    for entry in state["first"]:
        assert entry.status == ledger.SUCCESS
        assert entry.balanced
    # orders, lines, refunds, mart inputs, payments (ch_5 quarantined by the model), shipments, orders with a customer
    # ... and the two order views: one row per order each
    assert [e.records_read for e in state["first"]] == [5, 6, 3, 8, 4, 3, 5, 5, 5]


def test_late_refund_recomputes_only_its_day(spark, lake):
    env, state = lake
    second = {e.table_name: e for e in state["second"]}
    for name in ("fact_orders", "fact_order_lines", "fact_refunds", "daily_revenue", "fact_payments"):
        assert second[name].status == ledger.SUCCESS, name
        assert second[name].details["partitions"] == 1, name
    assert second["fact_shipments"].details["partitions"] == 2  # S3 left day 1 (pre-image) for day 2
    assert second["daily_revenue"].records_read == 6  # day 2's facts: O4, O5, late O6, R1, R4 and late R3
    after = {
        "daily_revenue": files_by_day(spark, env, "daily_revenue", "revenue_date"),
        "fact_refunds": files_by_day(spark, env, "fact_refunds", "refund_date"),
        "fact_orders": files_by_day(spark, env, "fact_orders", "order_date"),
        "fact_payments": files_by_day(spark, env, "fact_payments", "payment_date"),
    }
    for table, before in state["files_before"].items():
        assert after[table][DAY1] == before[DAY1], f"{table}: day 1 files were rewritten"
        assert after[table][DAY2].isdisjoint(before[DAY2]), f"{table}: day 2 was not recomputed"
    for entry in state["second"]:
        assert entry.balanced
        assert state["versions_after"][entry.table_name] > state["versions_before"][entry.table_name]


ORDER_STATUS_COLUMNS = (
    "order_id string, status string, total_amount decimal(18,2), payment_state string, payment_count bigint, "
    "paid_amount decimal(18,2), payment_refunded_amount decimal(18,2), refund_count bigint, "
    "refunded_amount decimal(18,2), shipment_state string, shipment_count bigint, carrier string, "
    "last_shipment_at timestamp"
)
# after both deliveries, by hand from ORDERS + LATE_ORDER, CHARGES (ch_5 quarantined; ch_3's later 1,200 yen
# refund), SHIPMENTS (S3 later shipped) and REFUNDS (R2 only requested; R4's order unknown; late R3)
ORDER_STATUS_AFTER = [
    ("O1", "paid", D("100.00"), "succeeded", 1, D("100.00"), D("30.00"), 1, D("30.00"), "delivered", 1, "UPS",
     datetime(2026, 3, 1, 20)),
    ("O2", "delivered", D("50.00"), "failed", 1, D("0.00"), D("0.00"), 0, D("0.00"), "shipped", 1, "UPS",
     datetime(2026, 3, 2, 8)),
    ("O3", "shipped", D("80.00"), "succeeded", 1, D("80.00"), D("0.00"), 0, D("0.00"), "in_transit", 1, "DHL",
     datetime(2026, 3, 1, 22)),
    ("O4", "cancelled", D("20.00"), "none", 0, D("0.00"), D("0.00"), 0, D("0.00"), "none", 0, None, None),
    ("O5", "paid", D("35.50"), "succeeded", 1, D("5000.00"), D("1200.00"), 1, D("10.00"), "none", 0, None, None),
    ("O6", "paid", D("12.00"), "none", 0, D("0.00"), D("0.00"), 0, D("0.00"), "none", 0, None, None),
]  # fmt: skip
ORDER_FULFILMENT_COLUMNS = (
    "order_id string, seconds_to_payment bigint, hours_to_ship decimal(18,2), hours_to_delivery decimal(18,2), "
    "shipment_state string"
)
ORDER_FULFILMENT_AFTER = [
    ("O1", 300, D("10.00"), D("10.00"), "delivered"),  # paid 10:05, delivered (so shipped) 20:00
    ("O2", None, D("8.50"), None, "shipped"),  # its charge failed; created 23:30, shipped 08:00 next day
    ("O3", 60, D("10.00"), None, "in_transit"),
    ("O4", None, None, None, "none"),
    ("O5", 60, None, None, "none"),
    ("O6", None, None, None, "none"),
]


def test_order_views_for_support_and_operations_equal_the_hand_computed_ones(spark, lake):
    env, state = lake
    names = {"order_status": ORDER_STATUS_COLUMNS, "order_fulfilment": ORDER_FULFILMENT_COLUMNS}
    expected = {"order_status": ORDER_STATUS_AFTER, "order_fulfilment": ORDER_FULFILMENT_AFTER}
    for name, columns in names.items():
        table = spark.read.format("delta").load(tables.gold(name).path(env))
        assert_df_equality(
            table.select(*[c.split()[0] for c in columns.split(", ")]),
            spark.createDataFrame(expected[name], columns),
            ignore_row_order=True,
            ignore_nullable=True,
        )
    second = {e.table_name: e for e in state["second"]}
    for name in names:  # S3's next status (O2, day 1) and ch_3's refund (O5, day 2), the late O6 and R3
        assert second[name].details["partitions"] == 2, name


def test_payments_and_shipments_equal_the_hand_computed_figures(spark, lake):
    env, state = lake
    assert state["payments_before"] == PAYMENTS_BEFORE
    assert payments(spark, env) == PAYMENTS_AFTER
    facts = {
        r.payment_id: r
        for r in spark.read.format("delta").load(tables.gold("fact_payments").path(env)).collect()
    }
    assert sorted(facts) == [
        "ch_1",
        "ch_2",
        "ch_3",
        "ch_4",
    ]  # ch_5 is in quarantine.payments, with its reason
    assert (facts["ch_1"].order_id, facts["ch_1"].status, facts["ch_1"].created_at) == (
        "O1", "succeeded", datetime(2026, 3, 1, 10, 5)
    )  # fmt: skip
    assert facts["ch_4"].status == "failed"
    assert facts["ch_3"].currency == "JPY"
    assert not {c for c in facts["ch_1"].asDict() if re.search("card|last4|fingerprint|billing", c)}
    first_payments = [e for e in state["models"] if e.table_name == "payments"][0]
    assert (
        first_payments.records_read,
        first_payments.records_written,
        first_payments.records_quarantined,
    ) == (5, 4, 1)
    assert first_payments.details["quarantined.unmapped_status"] == 1
    quarantined = spark.read.format("delta").load(tables.model_quarantine("payments").path(env)).collect()
    assert [(r.reason, "requires_capture" in r.reason_detail) for r in quarantined] == [
        ("unmapped_status", True)
    ]

    shipments = spark.read.format("delta").load(tables.gold("fact_shipments").path(env)).collect()
    by_day: dict = {}
    for r in shipments:
        by_day.setdefault(r.shipment_date, {})[r.shipment_id] = (r.source_system, r.status, r.weight_kg)
    assert by_day == SHIPMENTS_AFTER
    assert sum(r.weight_kg for r in shipments if r.shipment_date == DAY1) == D("4.75")  # 3.50 + 1.25


def test_customer_dimension_is_scd2_and_independent_of_arrival_order(spark, lake):
    env, state = lake
    after = dimension(spark, env)
    assert set(after) == DIMENSION_AFTER
    before = state["dimension_before"]  # before the late order O6: A's first version held O1 and O3
    assert (TOKEN_A, EMAIL_A_OLD, datetime(2026, 3, 1, 10), datetime(2026, 3, 2, 15), False, 2) in before
    assert set(before.values()) == set(after.values())  # the late order changed a version, not its key
    # the same orders delivered in order, all at once, give the same dimension
    in_order = sorted(ORDERS + [LATE_ORDER], key=lambda row: row[ORDER_SCHEMA.names.index("created_at")])
    fresh = gold_transforms.customer_dimension(spark.createDataFrame(in_order, ORDER_SCHEMA))
    gold = spark.read.format("delta").load(tables.gold("dim_customer").path(env))
    assert_df_equality(fresh, gold.select(*fresh.columns), ignore_row_order=True, ignore_nullable=True)
    second = {e.table_name: e for e in state["second"]}["dim_customer"]
    assert (second.records_read, second.records_written, second.records_duplicate) == (
        6,
        3,
        3,
    )  # 6 orders, 3 versions
    third = {e.table_name: e for e in state["third"]}["dim_customer"]
    assert third.status == ledger.NOOP
    assert state["versions_after"]["dim_customer"] == delta.latest_version(
        spark, tables.gold("dim_customer").path(env)
    )


def test_gold_rerun_with_nothing_new_changes_nothing(spark, lake):
    env, state = lake
    assert {e.status for e in state["third"]} == {ledger.NOOP}
    assert {n: delta.latest_version(spark, tables.gold(n).path(env)) for n in GOLD} == state["versions_after"]


@pytest.fixture(scope="module")
def published(spark, lake, monkeypatch_module):
    """Publish once after a publish that died between the staging load and the MERGE, then publish again."""
    env, _ = lake
    monkeypatch_module.setenv("NORTHSTAR_SNOWFLAKE_PASSWORD", "not-used-by-fakesnow")
    real_apply, calls = publish.apply_staging, []

    def dies_once(conn, statements, **kwargs):
        calls.append(statements)
        if len(calls) == 2:  # fact_order_lines: staging is loaded, the MERGE never runs
            raise ConnectionError("simulated crash after the staging load, before the MERGE")
        return real_apply(conn, statements, **kwargs)

    monkeypatch_module.setattr(publish, "apply_staging", dies_once)
    with connect(env.snowflake) as conn:
        with pytest.raises(ConnectionError):
            publish.publish_all(spark, env, conn, run_id="publish-1-crashed")
        leftover = execute(
            conn,
            "SELECT table_name FROM NORTHSTAR.information_schema.tables WHERE table_name LIKE '%__STG_%'",
        )
        retry = publish.publish_all(spark, env, conn, run_id="publish-2-retry")
        after_retry = {n: warehouse_contents(conn, env.snowflake, n) for n in GOLD}
        again = publish.publish_all(spark, env, conn, run_id="publish-3-rerun")
        after_rerun = {n: warehouse_contents(conn, env.snowflake, n) for n in GOLD}
        objects = execute(
            conn,
            "SELECT table_schema, table_name FROM NORTHSTAR.information_schema.tables WHERE table_schema <> 'INFORMATION_SCHEMA'",
        )
        scanned = {
            (schema, name): execute(conn, f"SELECT * FROM NORTHSTAR.{schema}.{name}")
            for schema, name in objects
        }
        execute(
            conn,
            "UPDATE NORTHSTAR.ANALYTICS.DAILY_REVENUE SET NET_AMOUNT = NET_AMOUNT + 0.01 WHERE CURRENCY = 'EUR'",
        )
        tampered = publish.check_table(
            conn,
            env.snowflake,
            GOLD["daily_revenue"],
            spark.read.format("delta").load(tables.gold("daily_revenue").path(env)),
        )
    return {
        "leftover": leftover, "retry": retry, "again": again, "after_retry": after_retry,
        "after_rerun": after_rerun, "scanned": scanned, "tampered": tampered,
    }  # fmt: skip


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_crashed_publish_then_retry_leaves_no_duplicate_and_equals_gold(spark, lake, published):
    env, _ = lake
    assert published["leftover"] == [("FACT_ORDER_LINES__STG_PUBLISH_1_CRASHED",)]
    for name in GOLD:
        assert published["after_retry"][name] == gold_contents(spark, env, name), name
        assert max(published["after_retry"][name].values()) == 1  # no row twice
    assert all(r.reconciled for r in published["retry"])


def test_publishing_twice_leaves_the_warehouse_identical(published):
    assert published["after_rerun"] == published["after_retry"]
    assert {r.table: r.mode for r in published["again"]} == dict.fromkeys(GOLD, publish.NOOP)
    assert {r.table: r.mode for r in published["retry"]}["fact_order_lines"] == publish.FULL
    assert not [name for (_, name) in published["scanned"] if "__STG_" in name]  # staging dropped


def test_warehouse_totals_equal_gold_totals_and_are_recorded(spark, lake, published):
    env, _ = lake
    # the crashed run had published fact_orders (and reconciled it) before it died: the retry finds it current
    assert [r.table for r in published["retry"] if r.mode == publish.NOOP] == ["fact_orders"]
    for result in published["retry"]:
        assert result.differences or result.mode == publish.NOOP, result.table
        assert result.reconciled, result.table
    revenue = {r.table: r for r in published["retry"]}["daily_revenue"]
    by_metric = {(d.partition, d.metric): d for d in revenue.differences}
    assert by_metric[(("2026-03-02", "EUR"), "net_amount")].warehouse == D("25.50")
    recorded = spark.read.format("delta").load(tables.WAREHOUSE_RECONCILIATION.path(env))
    assert recorded.where("matches = false").count() == 0
    assert {r.run_id for r in recorded.select("run_id").distinct().collect()} == {
        "publish-1-crashed",  # fact_orders, reconciled before the crash
        "publish-2-retry",
    }  # the re-run moved nothing, so it compared nothing
    assert [(d.partition, d.metric) for d in published["tampered"] if not d.matches] == [
        (("2026-03-01", "EUR"), "net_amount"), (("2026-03-02", "EUR"), "net_amount")
    ]  # fmt: skip


def test_reconciliation_error_names_the_partition(spark, lake, published, monkeypatch):
    env, _ = lake
    wrong = publish.PublishResult("daily_revenue", 3, 6, differences=published["tampered"])
    monkeypatch.setattr(publish, "publish_table", lambda *a, **k: wrong)
    monkeypatch.setattr(publish, "record_reconciliation", lambda *a, **k: None)
    with pytest.raises(
        ReconciliationError, match=r"daily_revenue v3 2026-03-01/EUR net_amount: lake 80.00 warehouse 80.01"
    ):
        publish.publish_all(spark, env, None, run_id="publish-x")


def test_no_raw_email_or_phone_in_gold_or_any_warehouse_table(spark, lake, published):
    env, _ = lake
    texts = [
        str(v) for rows in published["scanned"].values() for row in rows for v in row if isinstance(v, str)
    ]
    for name in GOLD:
        frame = spark.read.format("delta").load(tables.gold(name).path(env))
        texts += [str(v) for row in frame.collect() for v in row if isinstance(v, str)]
    assert len(published["scanned"]) >= len(GOLD)
    assert texts
    assert TOKEN_A in texts
    assert EMAIL_A_NEW in texts  # the scan sees the token columns (dim_customer's too)
    leaks = [v for v in texts if EMAIL.search(v) or PHONE.search(v) or v in RAW_EMAILS + RAW_PHONES]
    assert leaks == []


def test_a_failed_gold_audit_keeps_the_warehouse_on_the_last_good_version(spark, lake, published):
    env, _ = lake
    fact_orders = GOLD["fact_orders"].table
    path = fact_orders.path(env)
    good = published_version(spark, env, fact_orders)
    assert good == delta.latest_version(spark, path)  # every gold run audited and published its version
    # a wrong transform writes one order twice: the audit (conf/quality/gold.fact_orders.yaml) refuses it
    spark.read.format("delta").load(path).limit(1).write.format("delta").mode("append").save(path)
    current = spark.read.format("delta").load(path)
    found = run_checks(spark, env, "gold.fact_orders", current, "gold-bad", key=["source_system", "order_id"])
    decision = audit_and_publish(spark, env, fact_orders, "gold-bad", found)
    assert not decision.published
    assert decision.published_version == good
    assert "order_key_unique" in decision.failed_checks
    alerts = spark.read.format("delta").load(tables.ALERTS.path(env)).where("table_name = 'gold.fact_orders'")
    assert alerts.count() == 1

    with connect(env.snowflake) as conn:  # the publish takes the published (last good) version
        results = publish.publish_all(spark, env, conn, run_id="publish-4-after-a-refused-audit")
        after = warehouse_contents(conn, env.snowflake, "fact_orders")
    assert {r.table: r.gold_version for r in results}["fact_orders"] == good
    assert after == published["after_rerun"]["fact_orders"]
    assert max(after.values()) == 1
