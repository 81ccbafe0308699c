"""Tiny silver-shaped marketplace orders for the model and gold unit tests: a row builder and its schema."""

from __future__ import annotations

from decimal import Decimal

from northstar.models import common as c

KEY = b"unit-test-key"
STATUS_MAP = {"placed": "pending", "paid": "paid", "shipped": "shipped", "cancelled": "cancelled"}
CTX = c.MappingContext("marketplace", "silver.marketplace_orders", STATUS_MAP, c.ISO_4217, KEY)
ITEMS = "array<struct<line_id:string,sku:string,quantity:bigint,unit_price:double,discounts:array<struct<amount:double,code:string>>>>"
ORDERS_V1 = (
    "order_id string, status string, created_at timestamp, updated_at timestamp, currency string, "
    "totals struct<subtotal:double,tax:double,total:double>, shipping_fee decimal(12,2), "
    f"customer struct<customer_id:string,email:string,name:string,shipping_address:struct<country:string>>, line_items {ITEMS}, "
    "_record_hash string, _landing_file string, _rescued_data string"
)


def ts(spark, text):
    return spark.sql(f"SELECT timestamp'{text}' AS t").first()["t"]


def order(
    spark, order_id="MO-1", status="paid", currency="USD", totals=(10.0, 0.8, 15.79), shipping=4.99, **kw
):
    row = {
        "order_id": order_id,
        "status": status,
        "created_at": ts(spark, "2026-11-01 10:00:00"),
        "updated_at": ts(spark, "2026-11-01 11:00:00"),
        "currency": currency,
        "totals": dict(zip(["subtotal", "tax", "total"], totals, strict=True)) if totals else None,
        "shipping_fee": Decimal(str(shipping)) if shipping is not None else None,
        "customer": {
            "customer_id": "C-1",
            "email": "a@example.com",
            "name": "Ana",
            "shipping_address": {"country": "us"},
        },
        "line_items": [{"line_id": "L1", "sku": "SKU-1", "quantity": 2, "unit_price": 5.0, "discounts": []}],
        "_record_hash": f"h-{order_id}",
        "_landing_file": "f1",
        "_rescued_data": None,
    }
    row.update(kw)
    return row


def frame(spark, rows, schema=ORDERS_V1):
    return spark.createDataFrame(rows, schema)
