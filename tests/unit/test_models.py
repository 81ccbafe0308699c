"""Conformed model mappings on tiny silver-shaped DataFrames (chispa): statuses, amounts, currency, UTC,
line items, the customer token, schema drift and soft cases."""

import hashlib
import hmac
import json
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar import cli
from northstar.config import ConfigError
from northstar.models import common as c
from northstar.models import orders, refunds
from northstar.models.spec import load_model
from tests.helpers.conf import load_from
from tests.helpers.envs import CONF
from tests.helpers.model_rows import CTX, KEY, ORDERS_V1, STATUS_MAP, frame, order, ts


def test_status_mapping_and_unmapped_status_is_quarantined(spark):
    rows = [
        order(spark, "A", "placed"),
        order(spark, "B", "  PAID "),
        order(spark, "C", "cancelled"),
        order(spark, "D", "lost"),
    ]
    out = orders.partner_orders(frame(spark, rows), CTX).select("order_id", "status", c.REASON)
    expected = spark.createDataFrame(
        [
            ("A", "pending", None),
            ("B", "paid", None),
            ("C", "cancelled", None),
            ("D", None, c.UNMAPPED_STATUS),
        ],
        f"order_id string, status string, {c.REASON} string",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    detail = orders.partner_orders(frame(spark, rows), CTX).where("order_id = 'D'").first()[c.REASON_DETAIL]
    assert "'lost'" in detail
    assert "conf/models/orders.yaml" in detail


def test_amounts_are_exact_decimals_and_defaults_for_soft_nulls(spark):
    rows = [
        order(spark, "A", totals=(19.99, 1.6, 26.58), shipping=4.99),
        order(spark, "B", totals=(5.0, None, 5.0), shipping=None),
    ]
    out = orders.partner_orders(frame(spark, rows), CTX)
    assert all(out.schema[a].dataType == T.DecimalType(18, 2) for a in orders.AMOUNTS)
    expected = spark.createDataFrame(
        [
            ("A", Decimal("19.99"), Decimal("1.60"), Decimal("4.99"), Decimal("0.00"), Decimal("26.58")),
            ("B", Decimal("5.00"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), Decimal("5.00")),
        ],
        "order_id string, subtotal_amount decimal(18,2), tax_amount decimal(18,2), shipping_amount decimal(18,2), "
        "discount_amount decimal(18,2), total_amount decimal(18,2)",
    )
    assert_df_equality(
        out.select("order_id", *orders.AMOUNTS), expected, ignore_row_order=True, ignore_nullable=True
    )
    assert out.where(F.col(c.REASON).isNotNull()).count() == 0


def test_unparseable_or_overprecise_amounts_are_quarantined_naming_the_fields(spark):
    schema = ORDERS_V1.replace(
        "totals struct<subtotal:double,tax:double,total:double>",
        "totals struct<subtotal:string,tax:string,total:string>",
    )
    rows = [
        order(spark, "A", totals=("12.345", "1.00", "13.35")),  # would need rounding
        order(spark, "B", totals=("12.00", "n/a", "13.00")),
        order(spark, "C", totals=(" 12.00 ", "1", "13.99")),
        order(spark, "D", totals=None),
    ]
    out = orders.partner_orders(frame(spark, rows, schema), CTX).select(
        "order_id", c.REASON, c.REASON_DETAIL, "total_amount"
    )
    got = {r.order_id: (r[c.REASON], r[c.REASON_DETAIL], r.total_amount) for r in out.collect()}
    assert got["A"][:2] == (c.UNPARSEABLE_AMOUNT, "not an amount with at most 2 decimals: subtotal")
    assert got["B"][:2] == (c.UNPARSEABLE_AMOUNT, "not an amount with at most 2 decimals: tax")
    assert got["C"] == (None, None, Decimal("13.99"))
    assert got["D"][0] == c.MISSING_REQUIRED


def test_currency_is_upper_case_iso_4217_or_quarantined(spark):
    rows = [
        order(spark, "A", currency="usd"),
        order(spark, "B", currency="EURO"),
        order(spark, "C", currency=None),
        order(spark, "D", currency="GBP"),
    ]
    restricted = c.MappingContext("marketplace", "t", STATUS_MAP, frozenset({"USD", "EUR"}), KEY)
    out = orders.partner_orders(frame(spark, rows), restricted).select("order_id", "currency", c.REASON)
    expected = spark.createDataFrame(
        [
            ("A", "USD", None),
            ("B", "EURO", c.UNKNOWN_CURRENCY),
            ("C", None, c.UNKNOWN_CURRENCY),
            ("D", "GBP", c.UNKNOWN_CURRENCY),
        ],
        f"order_id string, currency string, {c.REASON} string",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_times_are_utc_instants_whatever_offset_they_came_with(spark):
    schema = ORDERS_V1.replace(
        "created_at timestamp, updated_at timestamp", "created_at string, updated_at string"
    )
    rows = [
        order(spark, "A", created_at="2026-11-01T12:00:00+02:00", updated_at="2026-11-01T10:30:00Z"),
        order(spark, "B", created_at="2026-11-01T05:00:00-05:00", updated_at="2026-11-01 10:30:00"),
        order(spark, "C", created_at="yesterday", updated_at="2026-11-01T10:30:00Z"),
    ]
    out = orders.partner_orders(frame(spark, rows, schema), CTX).select(
        "order_id",
        F.date_format("created_at", "yyyy-MM-dd HH:mm:ss").alias("created_utc"),
        F.date_format("updated_at", "yyyy-MM-dd HH:mm:ss").alias("updated_utc"),
        c.REASON,
    )
    expected = spark.createDataFrame(
        [
            ("A", "2026-11-01 10:00:00", "2026-11-01 10:30:00", None),
            ("B", "2026-11-01 10:00:00", "2026-11-01 10:30:00", None),
            ("C", None, "2026-11-01 10:30:00", c.UNPARSEABLE_TIMESTAMP),
        ],
        f"order_id string, created_utc string, updated_utc string, {c.REASON} string",
    )
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    assert (
        orders.partner_orders(frame(spark, rows, schema), CTX).schema["created_at"].dataType
        == T.TimestampType()
    )


def test_line_items_are_conformed_and_bad_ones_quarantine_the_order(spark):
    good = [
        {
            "line_id": "L1",
            "sku": "S1",
            "quantity": 2,
            "unit_price": 5.25,
            "discounts": [{"amount": 1.0, "code": "X"}, {"amount": 0.5, "code": "Y"}],
        },
        {"line_id": "L2", "sku": "S2", "quantity": 1, "unit_price": 3.0, "discounts": None},
    ]
    rows = [
        order(spark, "A", line_items=good),
        order(spark, "B", line_items=[{**good[0], "quantity": 0}]),
        order(spark, "C", line_items=[{**good[0], "sku": None}]),
        order(spark, "D", line_items=None),  # soft: no line items -> empty list, not quarantined
    ]
    out = orders.partner_orders(frame(spark, rows), CTX)
    assert out.schema["line_items"].dataType == orders.LINE_ITEMS
    expected = spark.createDataFrame(
        [
            (
                "A",
                [
                    ("L1", "S1", 2, Decimal("5.25"), Decimal("1.50")),
                    ("L2", "S2", 1, Decimal("3.00"), Decimal("0.00")),
                ],
                2,
                None,
            ),
            ("D", [], 0, None),
        ],
        T.StructType(
            [
                T.StructField("order_id", T.StringType()),
                T.StructField("line_items", orders.LINE_ITEMS),
                T.StructField("item_count", T.IntegerType()),
                T.StructField(c.REASON, T.StringType()),
            ]
        ),
    )
    assert_df_equality(
        out.where("order_id IN ('A', 'D')").select("order_id", "line_items", "item_count", c.REASON),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    reasons = {r.order_id: r[c.REASON] for r in out.collect()}
    assert reasons["B"] == reasons["C"] == c.INVALID_LINE_ITEM


def test_drift_shipping_fee_object_from_rescued_data_and_fulfillment_appearing(spark):
    schema_v2 = ORDERS_V1 + ", fulfillment struct<channel:string,warehouse_id:string>"
    rescued = lambda obj: json.dumps({"shipping_fee": json.dumps(obj, separators=(",", ":"))})  # noqa: E731
    rows = [
        order(spark, "V1", shipping=3.5, fulfillment=None),
        order(
            spark,
            "V2",
            shipping=None,
            fulfillment={"channel": "FBA", "warehouse_id": "WH-1"},
            _rescued_data=rescued({"amount": 7.5, "currency": "USD"}),
        ),
        order(
            spark,
            "MIX",
            shipping=None,
            _rescued_data=rescued({"amount": 7.5, "currency": "EUR"}),
            fulfillment=None,
        ),
        order(spark, "BAD", shipping=None, _rescued_data=rescued({"fee": "free"}), fulfillment=None),
    ]
    out = orders.partner_orders(frame(spark, rows, schema_v2), CTX).select(
        "order_id", "shipping_amount", "fulfillment_channel", c.REASON
    )
    expected = spark.createDataFrame(
        [
            ("V1", Decimal("3.50"), None, None),
            ("V2", Decimal("7.50"), "FBA", None),
            ("MIX", Decimal("7.50"), None, c.CURRENCY_MISMATCH),
            ("BAD", Decimal("0.00"), None, c.UNPARSEABLE_AMOUNT),
        ],
        f"order_id string, shipping_amount decimal(18,2), fulfillment_channel string, {c.REASON} string",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)
    # a table from before the drift has no fulfillment column at all: the model still builds
    before = orders.partner_orders(frame(spark, [order(spark, "OLD")]), CTX)
    assert before.first()["fulfillment_channel"] is None
    assert before.schema["fulfillment_channel"].dataType == T.StringType()


def test_customer_is_a_keyed_token_and_no_pii_leaves(spark):
    rows = [order(spark, "A"), order(spark, "B", customer=None)]
    out = orders.partner_orders(
        c.with_raw_record(frame(spark, rows), ["customer.name", "customer.email"]), CTX
    )
    tokens = {r.order_id: r.customer_token for r in out.collect()}
    assert tokens["A"] == hmac.new(KEY, b"marketplace:C-1", hashlib.sha256).hexdigest()
    assert tokens["B"] is None
    assert not {"customer", "email", "name", "phone"} & set(out.columns)
    flat = " ".join(str(v) for r in out.drop(c.RAW).collect() for v in r)
    assert "a@example.com" not in flat
    assert "Ana" not in flat
    raw = out.where("order_id = 'A'").first()[c.RAW]
    assert "a@example.com" not in raw
    assert '"customer_id":"C-1"' in raw  # quarantine rows hold no PII either
    other = c.MappingContext("marketplace", "t", STATUS_MAP, c.ISO_4217, b"another-key")
    assert orders.partner_orders(frame(spark, rows[:1]), other).first().customer_token != tokens["A"]


REFUNDS = (
    "refund_id string, order_id string, amount decimal(12,2), currency string, status string, reason string, "
    "created_at timestamp, updated_at timestamp, _record_hash string, _landing_file string, _rescued_data string"
)


def test_refunds_mapping(spark):
    t1, t2 = ts(spark, "2026-11-02 08:00:00"), ts(spark, "2026-11-02 09:00:00")
    rows = [
        ("R1", "O1", Decimal("12.50"), "usd", "refunded", " Damaged ", t1, t2, "h1", "f", None),
        (
            "R2",
            "O2",
            None,
            "EUR",
            "requested",
            "late",
            t1,
            t2,
            "h2",
            "f",
            json.dumps({"amount": "7.25"}),
        ),  # rescued text
        ("R3", "O3", None, "EUR", "approved", "late", t1, t2, "h3", "f", json.dumps({"amount": "7,25"})),
        ("R4", "O4", Decimal("1.00"), "EUR", "disputed", "late", t1, t2, "h4", "f", None),
        ("R5", "O5", None, "EUR", "approved", "late", t1, t2, "h5", "f", None),
    ]
    ctx = c.MappingContext(
        "marketplace",
        "silver.marketplace_refunds",
        {"requested": "requested", "approved": "approved", "refunded": "completed"},
    )
    out = refunds.partner_refunds(spark.createDataFrame(rows, REFUNDS), ctx).select(
        "refund_id", "status", "reason", "currency", "refund_amount", c.REASON
    )
    expected = spark.createDataFrame(
        [
            ("R1", "completed", "damaged", "USD", Decimal("12.50"), None),
            ("R2", "requested", "late", "EUR", Decimal("7.25"), None),
            ("R3", "approved", "late", "EUR", None, c.UNPARSEABLE_AMOUNT),
            ("R4", None, "late", "EUR", Decimal("1.00"), c.UNMAPPED_STATUS),
            ("R5", "approved", "late", "EUR", None, c.MISSING_REQUIRED),
        ],
        f"refund_id string, status string, reason string, currency string, refund_amount decimal(18,2), {c.REASON} string",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_classify_keeps_the_latest_valid_version_per_key(spark):
    rows = spark.createDataFrame(
        [
            ("m", "A", 1, "h1", None),
            ("m", "A", 2, "h2", None),
            ("m", "A", 2, "h2", None),
            ("m", "A", 3, "h3", c.UNKNOWN_CURRENCY),
            ("m", "B", 1, "h9", None),
        ],
        f"source_system string, order_id string, updated_at int, _record_hash string, {c.REASON} string",
    )
    out = c.classify(rows, orders.KEY, orders.ORDERING).select("order_id", "updated_at", c.DISPOSITION)
    expected = spark.createDataFrame(
        [
            ("A", 1, c.SUPERSEDED),
            ("A", 2, c.CANDIDATE),
            ("A", 2, c.EXACT_DUPLICATE),
            ("A", 3, c.QUARANTINED),
            ("B", 1, c.CANDIDATE),
        ],
        f"order_id string, updated_at int, {c.DISPOSITION} string",
    )
    assert_df_equality(out, expected, ignore_row_order=True, ignore_nullable=True)


def test_model_files_are_validated(tmp_path):
    spec = load_model("orders")
    assert spec.inputs[0].status_map["placed"] == "pending"
    assert spec.customer_token_key.startswith("env:")
    (tmp_path / "models").mkdir()
    bad = tmp_path / "models" / "orders.yaml"
    bad.write_text(
        "inputs:\n  - {source: marketplace, table: orders, mapping: nope, status_map: {placed: open}}\n"
    )
    with pytest.raises(ConfigError, match="unknown mapping 'nope'"):
        load_from(tmp_path, load_model, "orders")
    bad.write_text(
        "inputs:\n  - {source: marketplace, table: orders, mapping: partner_orders, status_map: {placed: open}}\n"
    )
    with pytest.raises(ConfigError, match="maps to open, not in the accepted statuses"):
        load_from(tmp_path, load_model, "orders")
    bad.write_text("customer_token_key: hunter2\ninputs: []\n")
    with pytest.raises(ConfigError, match="Never put the secret itself in config"):
        load_from(tmp_path, load_model, "orders")
    with pytest.raises(ConfigError, match="no such model file"):
        load_from(tmp_path, load_model, "customers")


def test_inputs_sharing_a_source_system_get_a_ledger_key_each(tmp_path):
    payments = load_model("payments")
    assert [i.system for i in payments.inputs] == ["stripe", "stripe"]  # one key space: one row per charge
    assert [payments.ledger_source(i) for i in payments.inputs] == [
        "stripe:stripe.charges",
        "stripe:stripe_events.objects",
    ]
    # an input that is alone in its source_system keeps the key its runs always had
    assert [load_model("shipments").ledger_source(i) for i in load_model("shipments").inputs] == [
        "wms_acme",
        "wms_bolt",
    ]
    orders = load_model("orders")
    assert orders.ledger_source(orders.inputs[0]) == "marketplace"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "payments.yaml").write_text(
        "inputs:\n"
        "  - {source: stripe, table: charges, mapping: stripe_charges, status_map: {succeeded: succeeded}}\n"
        "  - {source: stripe, table: charges, mapping: stripe_charges, status_map: {succeeded: succeeded}}\n"
    )
    with pytest.raises(ConfigError, match="two inputs name the same source table"):
        load_from(tmp_path, load_model, "payments")


def test_model_command_names_an_unset_token_key_before_starting_spark(monkeypatch, capsys):
    monkeypatch.delenv("NORTHSTAR_CUSTOMER_TOKEN_KEY", raising=False)
    monkeypatch.delenv("NORTHSTAR_CUSTOMER_TOKEN_KEY_REF", raising=False)
    assert cli.main(["model", "--name", "all", "--conf-dir", str(CONF)]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "customer_token_key" in err
    assert "NORTHSTAR_CUSTOMER_TOKEN_KEY is not set" in err
    assert cli.main(["model", "--name", "customers", "--conf-dir", str(CONF)]) == cli.EXIT_CONFIG
    assert "no such model file" in capsys.readouterr().err
