"""The conformed order-lines model (silver.order_lines): one row per (source_system, order_id, line_id), its
latest version. The grain of gold.fact_order_lines (brief 001: 45M lines a day).

Two shapes feed it: a partner order carries its lines inside the order (`line_items` of
silver.marketplace_orders: each order version gives its lines that version, `line_number` its position), the
shop keeps them in their own table (silver.shop_db_order_lines: one row per line, its own `updated_at`, a
deleted line has `deleted_at`). Amounts are decimal(18,2) (never rounded: a price with more decimals is
quarantined); `line_amount` = quantity * unit_price - discount_amount. The line carries no currency or order
date: gold takes both from the order (silver.orders). A line removed from a partner order in a later version
is not marked deleted (the partner sends the lines an order has, not the ones it lost): docs/models.md.
A row that cannot be conformed carries `_reason`/`_reason_detail` and goes to quarantine.order_lines.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from northstar.models import common as c
from northstar.models.orders import line_items

KEY = ["source_system", "order_id", "line_id"]
PII_COLUMNS: tuple[str, ...] = ()  # no column of this model identifies a person
ORDERING = ["updated_at"]
ACCEPTED_STATUSES: tuple[str, ...] = ()  # a line has no status of its own: its order has
COLUMNS = [
    "source_system",
    "order_id",
    "line_id",
    "line_number",
    "sku",
    "quantity",
    "unit_price",
    "discount_amount",
    "line_amount",
    "is_deleted",
    "created_at",
    "updated_at",
    "_source_table",
    c.RECORD_HASH,
    c.LANDING_FILE,
]


def _line_problem(
    line_id: Column, sku: Column, quantity: Column, prices: dict[str, Column]
) -> tuple[Column, Column]:
    """(reason, detail) of the first check a line fails (`prices`: name -> (delivered text, amount))."""
    bad = [(name, c.unparseable(text)) for name, text in prices.items()]
    return c.first_problem(
        [
            (
                F.col("__created").isNull() | F.col("__updated").isNull(),
                c.MISSING_REQUIRED,
                "the times are missing",
            ),
            (line_id.isNull(), c.MISSING_REQUIRED, "line_id is missing"),
            (
                sku.isNull() | F.coalesce(quantity <= 0, F.lit(True)),
                c.INVALID_LINE_ITEM,
                "the line has no sku or no positive quantity",
            ),
            (prices["unit_price"].isNull(), c.MISSING_REQUIRED, "unit_price is missing"),
            (
                bad[0][1] | bad[1][1],
                c.UNPARSEABLE_AMOUNT,
                F.concat(F.lit("not an amount with at most 2 decimals: "), c.names_of(bad)),
            ),
        ]
    )


def _conformed(f: DataFrame, ctx: c.MappingContext, line: dict[str, Column]) -> DataFrame:
    """The model's columns from `line` (order_id, line_id, line_number, sku, quantity, the price texts,
    is_deleted) over `f`, which has `__created` and `__updated`."""
    texts = {"unit_price": line["unit_price"], "discount_amount": line["discount_amount"]}
    price = c.amount(texts["unit_price"])
    discount = F.coalesce(c.amount(texts["discount_amount"]), F.lit(0).cast(c.AMOUNT_SQL))
    reason, detail = _line_problem(line["line_id"], line["sku"], line["quantity"], texts)
    return c.conformed_select(
        f,
        {
            "source_system": F.lit(ctx.source_system),
            "order_id": line["order_id"],
            "line_id": line["line_id"],
            "line_number": line["line_number"],
            "sku": line["sku"],
            "quantity": line["quantity"],
            "unit_price": price,
            "discount_amount": discount,
            "line_amount": (line["quantity"] * price - discount).try_cast(c.AMOUNT_SQL),
            "is_deleted": line["is_deleted"],
            "created_at": F.col("__created"),
            "updated_at": F.col("__updated"),
            **c.lineage(f, ctx.source_table),
            c.REASON: reason,
            c.REASON_DETAIL: detail,
        },
    )


def partner_order_lines(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """A partner's orders (silver.marketplace_orders) -> one conformed row per line of each order version.

    The line's times are its order's; `line_number` is its position in the order (1-based). An order without
    lines gives no rows.
    """
    f = silver.select(
        "*",
        F.posexplode(line_items(silver)).alias("__position", "__line"),
        c.utc_timestamp(silver, "created_at").alias("__created"),
        c.utc_timestamp(silver, "updated_at").alias("__updated"),
    )
    item = F.col("__line")
    return _conformed(
        f,
        ctx,
        {
            "order_id": F.col("order_id").cast("string"),
            "line_id": item["line_id"],
            "line_number": (F.col("__position") + 1).cast("int"),
            "sku": item["sku"],
            "quantity": item["quantity"],
            "unit_price": item["unit_price"].cast("string"),
            "discount_amount": item["discount_amount"].cast("string"),
            "is_deleted": F.lit(False),
        },
    )


def shop_order_lines(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """The shop's PostgreSQL order lines (silver.shop_db_order_lines) -> conformed lines; `deleted_at` set
    -> is_deleted (gold leaves the line out; the row stays so the delete reaches every layer)."""
    f = silver.withColumns(
        {
            "__created": c.utc_timestamp(silver, "created_at"),
            "__updated": c.utc_timestamp(silver, "updated_at"),
        }
    )
    return _conformed(
        f,
        ctx,
        {
            "order_id": c.column_or_null(f, "order_id"),
            "line_id": c.column_or_null(f, "id"),
            "line_number": c.column_or_null(f, "line_number", "int"),
            "sku": c.column_or_null(f, "sku"),
            "quantity": c.column_or_null(f, "quantity", "int"),
            "unit_price": c.delivered_text(f, "unit_price"),
            "discount_amount": c.delivered_text(f, "discount_amount"),
            "is_deleted": c.column_or_null(f, "deleted_at", "timestamp").isNotNull(),
        },
    )


MAPPINGS: dict[str, Callable[[DataFrame, c.MappingContext], DataFrame]] = {
    "partner_order_lines": partner_order_lines,
    "shop_order_lines": shop_order_lines,
}
