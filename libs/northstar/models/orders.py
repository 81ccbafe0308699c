"""The conformed orders model (silver.orders): one row per (source_system, order_id), its latest version.

Statuses are mapped to ACCEPTED_STATUSES, amounts are decimal(18,2) with an ISO 4217 currency, times are UTC
instants, line items are array<struct<line_id, sku, quantity, unit_price, discount_amount>>, and the customer
is a keyed token (HMAC-SHA256 of `<source_system>:<customer_id>`): no name, email, phone or address, only
their keyed tokens as the order carried them (CUSTOMER_FIELDS, the attributes of gold.dim_customer).
A row that cannot be conformed carries `_reason`/`_reason_detail` and goes to quarantine.orders.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.models import common as c

KEY = ["source_system", "order_id"]
ORDERING = ["updated_at"]  # then the silver record hash, as in silver
ACCEPTED_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled", "returned")

LINE_ITEM = T.StructType(
    [
        T.StructField("line_id", T.StringType()),
        T.StructField("sku", T.StringType()),
        T.StructField("quantity", T.IntegerType()),
        T.StructField("unit_price", c.AMOUNT),
        T.StructField("discount_amount", c.AMOUNT),
    ]
)
LINE_ITEMS = T.ArrayType(LINE_ITEM)
# The customer's details as of the order, as keyed tokens (gold.dim_customer's SCD2 attributes): column -> the
# partner's field, which silver already holds as a token (conf/sources/marketplace.yaml `pii:`).
CUSTOMER_FIELDS = {
    "customer_email_token": "customer.email",
    "customer_phone_token": "customer.phone",
    "customer_name_token": "customer.name",
    "ship_to_city_token": "customer.shipping_address.city",
}
CUSTOMER_ATTRIBUTES = tuple(CUSTOMER_FIELDS)
# Columns that identify a person (keyed tokens are still personal data): masked in the warehouse's analytics
# schema, wherever gold carries them.
PII_COLUMNS = ("customer_token", *CUSTOMER_ATTRIBUTES)
TOKEN_PATTERN = "^[0-9a-f]{64}$"
AMOUNTS = ("subtotal_amount", "tax_amount", "shipping_amount", "discount_amount", "total_amount")
COLUMNS = [
    "source_system",
    "order_id",
    "status",
    "source_status",
    "customer_token",
    *CUSTOMER_ATTRIBUTES,
    "ship_to_country",
    "sales_channel",
    "fulfillment_channel",
    "currency",
    *AMOUNTS,
    "line_items",
    "item_count",
    "created_at",
    "updated_at",
    "_source_table",
    c.RECORD_HASH,
    c.LANDING_FILE,
]


def line_items(frame: DataFrame) -> Column:
    """`line_items` as LINE_ITEMS whatever fields the delivered elements have (missing ones are null)."""
    delivered = c.field_type(frame.schema, "line_items")
    if not isinstance(delivered, T.ArrayType) or not isinstance(delivered.elementType, T.StructType):
        return F.array().cast(LINE_ITEMS)
    element = delivered.elementType

    def get(x: Column, name: str, cast: str) -> Column:
        return x[name].try_cast(cast) if name in element.fieldNames() else F.lit(None).cast(cast)

    delivered_discounts = c.field_type(element, "discounts")
    # the discounts' type when they carry amounts, else None
    discounts = (
        delivered_discounts
        if isinstance(delivered_discounts, T.ArrayType)
        and isinstance(delivered_discounts.elementType, T.StructType)
        and "amount" in delivered_discounts.elementType.fieldNames()
        else None
    )

    def discount(x: Column) -> Column:
        if discounts is None:
            return F.lit(0).cast(c.AMOUNT_SQL)
        return F.aggregate(
            F.coalesce(x["discounts"], F.array().cast(discounts)),
            F.lit(0).cast(c.AMOUNT_SQL),
            lambda total, d: (total + c.amount(d["amount"].cast("string"))).try_cast(c.AMOUNT_SQL),
        )

    def unit_price(x: Column) -> Column:
        if "unit_price" not in element.fieldNames():
            return F.lit(None).cast(c.AMOUNT_SQL)
        return c.amount(x["unit_price"].cast("string"))

    return F.transform(
        F.coalesce(F.col("line_items"), F.array().cast(delivered)),
        lambda x: F.struct(
            get(x, "line_id", "string").alias("line_id"),
            get(x, "sku", "string").alias("sku"),
            get(x, "quantity", "int").alias("quantity"),
            unit_price(x).alias("unit_price"),
            discount(x).alias("discount_amount"),
        ),
    ).cast(LINE_ITEMS)


def _as_token(frame: DataFrame, path: str) -> Column:
    """A PII field silver already tokenized, passed through. A value that is not a token (a silver table built
    before its `pii:` list was set) becomes NULL: no raw value gets further, and no Python function runs per
    row for the common case (a UDF inside CASE WHEN is still evaluated for every row)."""
    value = c.column_or_null(frame, path)
    return F.when(value.rlike(TOKEN_PATTERN), value)


# The order's amounts as delivered, in the order their problems are named.
_AMOUNT_TEXTS = ("subtotal", "tax", "shipping_fee", "discount", "total")


def _staged(silver: DataFrame) -> DataFrame:
    """`silver` with the values the checks and outputs share staged as columns, so each is computed once per
    row: `__text_<amount>` and `__amount_<amount>` (_AMOUNT_TEXTS), `__items`, `__currency`,
    `__shipping_currency`."""
    f = silver
    texts = {
        "subtotal": c.delivered_text(f, "totals.subtotal"),
        "tax": c.delivered_text(f, "totals.tax"),
        "shipping_fee": F.coalesce(
            c.delivered_text(f, "shipping_fee.amount"), c.delivered_text(f, "shipping_fee")
        ),
        "discount": c.delivered_text(f, "totals.discount"),
        "total": c.delivered_text(f, "totals.total"),
    }
    f = f.withColumns(
        {
            **{f"__text_{name}": text for name, text in texts.items()},
            "__items": line_items(f),
            "__currency": c.currency_code(c.column_or_null(f, "currency")),
            "__shipping_currency": c.currency_code(c.delivered_text(f, "shipping_fee.currency")),
        }
    )
    return f.withColumns({f"__amount_{name}": c.amount(F.col(f"__text_{name}")) for name in texts})


def _customer_token(customer_id: Column, ctx: c.MappingContext) -> Column:
    """The customer's keyed token (null without a customer): HMAC of `<source_system>:<customer id>`."""
    if ctx.token_key is None:
        raise ValueError("the orders model needs a token key (customer_token_key in conf/models/orders.yaml)")
    return F.when(
        customer_id.isNotNull(),
        c.keyed_token(F.concat_ws(":", F.lit(ctx.source_system), customer_id), ctx.token_key),
    )


def _bad_line_item(items: Column) -> Column:
    """True when a line item has no sku, no positive quantity, or an unparseable unit_price/discount."""
    return F.exists(
        items,
        lambda i: (
            i["sku"].isNull()
            | F.coalesce(i["quantity"] <= 0, F.lit(True))
            | i["unit_price"].isNull()
            | i["discount_amount"].isNull()
        ),
    )


def _order_problem(
    f: DataFrame, ctx: c.MappingContext, status: Column, source_status: Column, times: tuple[Column, Column]
) -> tuple[Column, Column]:
    """(reason, detail) of the first check a staged order fails (`times`: created_at, updated_at as UTC)."""
    texts = {name: F.col(f"__text_{name}") for name in _AMOUNT_TEXTS}
    currency, shipping_currency = F.col("__currency"), F.col("__shipping_currency")
    created, updated = times
    bad_time = c.unparseable_time(f, "created_at") | c.unparseable_time(f, "updated_at")
    bad_amounts = [
        (name, text.isNotNull() & F.col(f"__amount_{name}").isNull()) for name, text in texts.items()
    ]
    return c.first_problem(
        [
            (bad_time, c.UNPARSEABLE_TIMESTAMP, "created_at or updated_at is not an ISO-8601 time"),
            (created.isNull() | updated.isNull(), c.MISSING_REQUIRED, "created_at or updated_at is missing"),
            c.status_check(status, source_status, "orders"),
            c.currency_check(currency, ctx.currencies),
            (
                shipping_currency.isNotNull() & (shipping_currency != currency),
                c.CURRENCY_MISMATCH,
                F.concat(
                    F.lit("shipping_fee.currency "),
                    shipping_currency,
                    F.lit(" differs from the order's "),
                    currency,
                ),
            ),
            (
                texts["subtotal"].isNull() | texts["total"].isNull(),
                c.MISSING_REQUIRED,
                "totals.subtotal or totals.total is missing",
            ),
            (
                reduce(lambda a, b: a | b, [flag for _, flag in bad_amounts]),
                c.UNPARSEABLE_AMOUNT,
                F.concat(F.lit("not an amount with at most 2 decimals: "), c.names_of(bad_amounts)),
            ),
            (
                _bad_line_item(F.col("__items")),
                c.INVALID_LINE_ITEM,
                "a line item has no sku, no positive quantity, or an unparseable unit_price/discount",
            ),
        ]
    )


def _money(name: str, default_zero: bool) -> Column:
    value = F.col(f"__amount_{name}")
    return F.coalesce(value, F.lit(0).cast(c.AMOUNT_SQL)) if default_zero else value


def partner_orders(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """The marketplace partner's orders (conf/sources/marketplace.yaml) -> conformed orders.

    Drift handled: `shipping_fee` a number (API v1) or an object {amount, currency} (v2, kept by bronze in
    `_rescued_data`); `fulfillment` present only from v2 on; `totals.discount` used when the partner sends it.
    Soft cases: no customer -> null token; missing tax/shipping/discount -> 0.00; no line items -> [].
    """
    f = _staged(silver)
    items = F.col("__items")
    source_status = c.column_or_null(f, "status")
    status = c.mapped_status(source_status, ctx.status_map)
    token = _customer_token(c.column_or_null(f, "customer.customer_id"), ctx)
    created, updated = c.utc_timestamp(f, "created_at"), c.utc_timestamp(f, "updated_at")
    reason, detail = _order_problem(f, ctx, status, source_status, (created, updated))
    return c.conformed_select(
        f,
        {
            "source_system": F.lit(ctx.source_system),
            "order_id": F.col("order_id").cast("string"),
            "status": status,
            "source_status": source_status,
            "customer_token": token,
            **{name: _as_token(f, path) for name, path in CUSTOMER_FIELDS.items()},
            "ship_to_country": F.upper(c.column_or_null(f, "customer.shipping_address.country")),
            "sales_channel": c.column_or_null(f, "channel"),
            "fulfillment_channel": c.column_or_null(f, "fulfillment.channel"),
            "currency": F.col("__currency"),
            "subtotal_amount": _money("subtotal", False),
            "tax_amount": _money("tax", True),
            "shipping_amount": _money("shipping_fee", True),
            "discount_amount": _money("discount", True),
            "total_amount": _money("total", False),
            "line_items": items,
            "item_count": F.size(items),
            "created_at": created,
            "updated_at": updated,
            **c.lineage(f, ctx.source_table),
            c.REASON: reason,
            c.REASON_DETAIL: detail,
        },
    )


SHOP_CHANNEL = "shop"  # sales_channel of the shop's own storefront orders
DELETED_STATUS = "deleted"  # source_status of a shop order whose row was deleted (deleted_at set)
_SHOP_AMOUNTS = ("amount", "tax_amount", "shipping_amount", "discount_amount")


def _shop_problem(
    f: DataFrame, ctx: c.MappingContext, status: Column, source_status: Column, money: dict[str, Column]
) -> tuple[Column, Column]:
    """(reason, detail) of the first check a shop order fails."""
    bad = [(name, c.unparseable(c.delivered_text(f, name))) for name in _SHOP_AMOUNTS]
    return c.first_problem(
        [
            (
                F.col("__created").isNull() | F.col("__updated").isNull(),
                c.MISSING_REQUIRED,
                "created_at or updated_at is missing",
            ),
            c.status_check(status, source_status, "orders"),
            c.currency_check(F.col("__currency"), ctx.currencies),
            (money["amount"].isNull(), c.MISSING_REQUIRED, "amount (the order total) is missing"),
            (
                reduce(lambda a, b: a | b, [flag for _, flag in bad]),
                c.UNPARSEABLE_AMOUNT,
                F.concat(F.lit("not an amount with at most 2 decimals: "), c.names_of(bad)),
            ),
        ]
    )


def shop_orders(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """The shop's own PostgreSQL orders (silver.shop_db_orders, conf/sources/shop_db.yaml) -> conformed orders.

    `amount` is the order total; tax, shipping and discount are 0.00 when the row has none and the subtotal is
    the total less tax and shipping plus the discount (the shop keeps no subtotal column). A row deleted in the
    shop (deleted_at set) stays as `cancelled` with source_status `deleted`, so its revenue leaves every
    figure. The order's lines are the `order_lines` model (silver.order_lines, from public.order_lines):
    `line_items` is empty and `item_count` null here. The customer token is keyed on the shop's customer id.
    """
    f = silver.withColumns(
        {
            "__currency": c.currency_code(c.column_or_null(silver, "currency")),
            "__created": c.utc_timestamp(silver, "created_at"),
            "__updated": c.utc_timestamp(silver, "updated_at"),
        }
    )
    deleted = c.column_or_null(f, "deleted_at", "timestamp").isNotNull()
    source_status = F.when(deleted, F.lit(DELETED_STATUS)).otherwise(c.column_or_null(f, "status"))
    status = F.when(deleted, F.lit("cancelled")).otherwise(c.mapped_status(source_status, ctx.status_map))
    money = {name: c.amount(c.delivered_text(f, name)) for name in _SHOP_AMOUNTS}
    extra = {name: F.coalesce(money[name], F.lit(0).cast(c.AMOUNT_SQL)) for name in _SHOP_AMOUNTS[1:]}
    token = _customer_token(c.column_or_null(f, "customer_id"), ctx)
    reason, detail = _shop_problem(f, ctx, status, source_status, money)
    subtotal = money["amount"] - extra["tax_amount"] - extra["shipping_amount"] + extra["discount_amount"]
    return c.conformed_select(
        f,
        {
            "source_system": F.lit(ctx.source_system),
            "order_id": F.col("id").cast("string"),
            "status": status,
            "source_status": source_status,
            "customer_token": token,
            **{name: F.lit(None).cast("string") for name in CUSTOMER_ATTRIBUTES},
            "ship_to_country": F.lit(None).cast("string"),
            "sales_channel": F.lit(SHOP_CHANNEL),
            "fulfillment_channel": F.lit(None).cast("string"),
            "currency": F.col("__currency"),
            "subtotal_amount": subtotal.cast(c.AMOUNT_SQL),
            **extra,
            "total_amount": money["amount"],
            "line_items": F.array().cast(LINE_ITEMS),
            "item_count": F.lit(None).cast("int"),
            "created_at": F.col("__created"),
            "updated_at": F.col("__updated"),
            **c.lineage(f, ctx.source_table),
            c.REASON: reason,
            c.REASON_DETAIL: detail,
        },
    )


# Mappings a conf/models/orders.yaml input may name. A second order source with a different shape adds one.
MAPPINGS: dict[str, Callable[[DataFrame, c.MappingContext], DataFrame]] = {
    "partner_orders": partner_orders,
    "shop_orders": shop_orders,
}
