"""Gold transforms: conformed silver rows -> fact tables and the daily revenue mart. DataFrame -> DataFrame,
no I/O. Money stays decimal(18,2) with its currency beside it; dates are UTC calendar days of UTC instants.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

AMOUNT_SQL = "decimal(18,2)"
UNKNOWN_CHANNEL = "unknown"  # a refund whose order is not (yet) in silver.orders: counted, never dropped
REVENUE_STATUSES_EXCLUDED = ("cancelled",)  # a cancelled order earns nothing; refunds cover returns
COUNTED_REFUND_STATUS = "completed"  # only money that went back to the customer reduces revenue

ORDER_FACT_COLUMNS = [
    "source_system",
    "order_id",
    "order_date",
    "status",
    "customer_token",
    "sales_channel",
    "fulfillment_channel",
    "ship_to_country",
    "currency",
    "subtotal_amount",
    "tax_amount",
    "shipping_amount",
    "discount_amount",
    "total_amount",
    "item_count",
    "created_at",
    "updated_at",
]


def utc_date(column: str) -> F.Column:
    """The UTC calendar day of a timestamp column (sessions run in UTC: spark.py sets the time zone)."""
    return F.to_date(F.col(column))


def order_facts(orders: DataFrame) -> DataFrame:
    """silver.orders -> gold.fact_orders: one row per (source_system, order_id), partitioned by order_date."""
    return orders.withColumn("order_date", utc_date("created_at")).select(*ORDER_FACT_COLUMNS)


def order_line_facts(orders: DataFrame) -> DataFrame:
    """silver.orders -> gold.fact_order_lines: one row per line item, key (source_system, order_id,
    line_number); line_amount = quantity * unit_price - discount_amount."""
    lines = orders.select(
        "source_system",
        "order_id",
        utc_date("created_at").alias("order_date"),
        "sales_channel",
        "currency",
        F.posexplode("line_items").alias("position", "line"),
    )
    return lines.select(
        "source_system",
        "order_id",
        (F.col("position") + 1).alias("line_number"),
        "order_date",
        F.col("line.line_id").alias("line_id"),
        F.col("line.sku").alias("sku"),
        F.col("line.quantity").alias("quantity"),
        "currency",
        F.col("line.unit_price").alias("unit_price"),
        F.col("line.discount_amount").alias("discount_amount"),
        (F.col("line.quantity") * F.col("line.unit_price") - F.col("line.discount_amount"))
        .cast(AMOUNT_SQL)
        .alias("line_amount"),
        "sales_channel",
    )


def refund_facts(refunds: DataFrame, orders: DataFrame) -> DataFrame:
    """silver.refunds (+ the order's channel and day) -> gold.fact_refunds, partitioned by refund_date, the
    UTC day the refund was created: a refund that arrives late still counts on its own day."""
    order_side = orders.select(
        "source_system",
        "order_id",
        F.col("sales_channel").alias("_order_channel"),
        utc_date("created_at").alias("order_date"),
    )
    return refunds.join(order_side, ["source_system", "order_id"], "left").select(
        "source_system",
        "refund_id",
        "order_id",
        utc_date("created_at").alias("refund_date"),
        "order_date",
        "status",
        "reason",
        "currency",
        "refund_amount",
        F.coalesce("_order_channel", F.lit(UNKNOWN_CHANNEL)).alias("sales_channel"),
        "created_at",
        "updated_at",
    )


def daily_revenue(fact_orders: DataFrame, fact_refunds: DataFrame) -> DataFrame:
    """gold.daily_revenue: per (revenue_date, currency, sales_channel), gross = total_amount of the day's
    orders that were not cancelled, refunds = completed refunds created that day, net = gross - refunds.
    Amounts of different currencies are never added together."""
    zero = F.lit(0).cast(AMOUNT_SQL)
    earning = ~F.col("status").isin(*REVENUE_STATUSES_EXCLUDED)
    sales = fact_orders.select(
        F.col("order_date").alias("revenue_date"),
        "currency",
        F.coalesce("sales_channel", F.lit(UNKNOWN_CHANNEL)).alias("sales_channel"),
        F.when(earning, 1).otherwise(0).alias("orders"),
        F.when(earning, F.col("total_amount")).otherwise(zero).alias("gross"),
        F.lit(0).alias("refunds"),
        zero.alias("refunded"),
        F.lit(1).alias("input_rows"),
    )
    counted = F.col("status") == COUNTED_REFUND_STATUS
    returns = fact_refunds.select(
        F.col("refund_date").alias("revenue_date"),
        "currency",
        "sales_channel",
        F.lit(0).alias("orders"),
        zero.alias("gross"),
        F.when(counted, 1).otherwise(0).alias("refunds"),
        F.when(counted, F.col("refund_amount")).otherwise(zero).alias("refunded"),
        F.lit(1).alias("input_rows"),
    )
    return (
        sales.unionByName(returns)
        .groupBy("revenue_date", "currency", "sales_channel")
        .agg(
            F.sum("orders").cast("bigint").alias("order_count"),
            F.sum("gross").cast(AMOUNT_SQL).alias("gross_amount"),
            F.sum("refunds").cast("bigint").alias("refund_count"),
            F.sum("refunded").cast(AMOUNT_SQL).alias("refund_amount"),
            F.sum("input_rows").cast("bigint").alias("input_rows"),
        )
        .withColumn("net_amount", (F.col("gross_amount") - F.col("refund_amount")).cast(AMOUNT_SQL))
        .select(
            "revenue_date",
            "currency",
            "sales_channel",
            "order_count",
            "gross_amount",
            "refund_count",
            "refund_amount",
            "net_amount",
            "input_rows",
        )
    )


def in_dates(frame: DataFrame, column: str, dates: list) -> DataFrame:
    """Rows whose `column` is one of `dates` (the partitions a run recomputes)."""
    return frame.where(F.col(column).isin(*dates))
