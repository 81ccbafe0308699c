"""Gold transforms: conformed silver rows -> fact tables, the customer dimension (SCD2) and the daily revenue
mart. DataFrame -> DataFrame, no I/O. Money stays decimal(18,2) with its currency beside it; dates are UTC calendar days of UTC instants.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
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


def order_line_facts(lines: DataFrame, orders: DataFrame) -> DataFrame:
    """silver.order_lines + silver.orders -> gold.fact_order_lines: one row per live line (deleted lines leave),
    key (source_system, order_id, line_number). The order gives the date, currency and channel; a line whose
    order is not (yet) in silver.orders keeps its own date, currency null and channel `unknown` (counted,
    never dropped)."""
    order = orders.select(
        "source_system",
        "order_id",
        F.col("created_at").alias("__order_created_at"),
        "currency",
        "sales_channel",
    )
    live = lines.where(~F.coalesce(F.col("is_deleted"), F.lit(False)))
    joined = live.join(order, ["source_system", "order_id"], "left")
    return joined.select(
        "source_system",
        "order_id",
        "line_number",
        F.to_date(F.coalesce(F.col("__order_created_at"), F.col("created_at"))).alias("order_date"),
        "line_id",
        "sku",
        "quantity",
        "currency",
        "unit_price",
        "discount_amount",
        "line_amount",
        F.coalesce(F.col("sales_channel"), F.lit(UNKNOWN_CHANNEL)).alias("sales_channel"),
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


PAYMENT_FACT_COLUMNS = [
    "source_system",
    "payment_id",
    "order_id",
    "payment_date",
    "status",
    "currency",
    "amount",
    "amount_refunded",
    "net_amount",
    "created_at",
    "updated_at",
]


def payment_facts(payments: DataFrame) -> DataFrame:
    """silver.payments -> gold.fact_payments: one row per charge, key (source_system, payment_id), partitioned
    by payment_date (UTC day of the charge's `created`); net_amount = amount - amount_refunded. Amounts are
    already major units (the model applied the currency's exponent); no card data reaches this table."""
    return (
        payments.withColumn("payment_date", utc_date("created_at"))
        .withColumn("net_amount", (F.col("amount") - F.col("amount_refunded")).cast(AMOUNT_SQL))
        .select(*PAYMENT_FACT_COLUMNS)
    )


SHIPMENT_FACT_COLUMNS = [
    "source_system",
    "shipment_id",
    "order_id",
    "shipment_date",
    "status",
    "source_status",
    "carrier",
    "warehouse",
    "cartons",
    "weight_kg",
    "status_time",
]


def shipment_facts(shipments: DataFrame) -> DataFrame:
    """silver.shipments -> gold.fact_shipments: the latest status per shipment, key (source_system,
    shipment_id), partitioned by shipment_date (UTC day of that status's time)."""
    return shipments.withColumn("shipment_date", utc_date("status_time")).select(*SHIPMENT_FACT_COLUMNS)


CUSTOMER_ATTRIBUTES = (
    "customer_email_token",
    "customer_phone_token",
    "customer_name_token",
    "ship_to_country",
    "ship_to_city_token",
)
CUSTOMER_DIM_COLUMNS = [
    "customer_sk",
    "customer_token",
    *CUSTOMER_ATTRIBUTES,
    "valid_from",
    "valid_to",
    "is_current",
    "version",
    "orders_in_version",
]


def customer_dimension(orders: DataFrame) -> DataFrame:
    """silver.orders (every order, any arrival order) -> gold.dim_customer, SCD type 2.

    Each order carries the customer's details as of its `created_at`. Per customer_token the orders are
    ordered by (created_at, source_system, order_id); a new version starts at an order whose attributes
    differ from the previous order's. valid_from = that order's created_at, valid_to = the next version's
    valid_from (null for the current version: is_current), customer_sk = SHA-256 of customer_token, valid_from
    and the order that started the version, so the key is the same on every run. The result depends only on the set of orders, never on
    the order they arrived in: a late order with old details lands in (or splits) the version of its time.
    Orders without a customer (null token) are not customers and are left out (the runner counts them)."""
    missing = [a for a in CUSTOMER_ATTRIBUTES if a not in orders.columns]  # silver.orders from before them
    orders = orders.withColumns({a: F.lit(None).cast("string") for a in missing})
    by_customer = Window.partitionBy("customer_token").orderBy("created_at", "source_system", "order_id")
    attributes = F.struct(*[F.col(a) for a in CUSTOMER_ATTRIBUTES])
    marked = (
        orders.where(F.col("customer_token").isNotNull())
        .select("customer_token", "created_at", "source_system", "order_id", *CUSTOMER_ATTRIBUTES)
        .withColumn("_attributes", attributes)
        .withColumn(
            "_starts",
            F.coalesce(~F.lag("_attributes").over(by_customer).eqNullSafe(F.col("_attributes")), F.lit(True)),
        )
        .withColumn("version", F.sum(F.col("_starts").cast("int")).over(by_customer))
    )
    versions = marked.groupBy("customer_token", "version").agg(
        F.min("created_at").alias("valid_from"),
        F.count(F.lit(1)).cast("bigint").alias("orders_in_version"),
        F.min_by("_attributes", F.struct("created_at", "source_system", "order_id")).alias("_attributes"),
        F.min(F.struct("created_at", "source_system", "order_id")).alias("_first"),
    )
    by_version = Window.partitionBy("customer_token").orderBy("version")
    return (
        versions.withColumn("valid_to", F.lead("valid_from").over(by_version))
        .withColumn("is_current", F.col("valid_to").isNull())
        .withColumn(
            "customer_sk",
            F.sha2(
                F.concat_ws(
                    "|",
                    "customer_token",
                    F.date_format("valid_from", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"),
                    "_first.source_system",
                    "_first.order_id",
                ),
                256,
            ),
        )
        .select("*", "_attributes.*")
        .select(*CUSTOMER_DIM_COLUMNS)
    )


PAYMENT_STATES = ("succeeded", "pending", "failed")  # an order's payment state: the best of its charges
SHIPPED_STATUSES = ("shipped", "in_transit", "delivered")
ORDER_STATUS_COLUMNS = [
    "source_system",
    "order_id",
    "order_date",
    "status",
    "currency",
    "total_amount",
    "payment_state",
    "payment_count",
    "paid_amount",
    "payment_refunded_amount",
    "refund_count",
    "refunded_amount",
    "shipment_state",
    "shipment_count",
    "carrier",
    "last_shipment_at",
    "created_at",
    "updated_at",
]
ORDER_FULFILMENT_COLUMNS = [
    "source_system",
    "order_id",
    "order_date",
    "status",
    "created_at",
    "first_paid_at",
    "seconds_to_payment",
    "first_shipped_at",
    "hours_to_ship",
    "delivered_at",
    "hours_to_delivery",
    "shipment_state",
]


def _hours(start: str, end: str) -> F.Column:
    return ((F.unix_micros(F.col(end)) - F.unix_micros(F.col(start))) / F.lit(3_600_000_000)).cast(
        "decimal(18,2)"
    )


def _payments_per_order(payments: DataFrame) -> DataFrame:
    """order_id -> payment_state (succeeded when any charge succeeded, else pending, else failed), counts and
    the succeeded charges' amounts and first time. Charges are matched to orders by order_id alone: a Stripe
    charge names the order in `metadata.order_id`, not the order's system."""
    rank = F.array_position(F.lit(list(PAYMENT_STATES)), F.col("status"))
    succeeded = F.col("status") == "succeeded"
    zero = F.lit(0).cast(AMOUNT_SQL)
    return (
        payments.where(F.col("order_id").isNotNull())
        .groupBy("order_id")
        .agg(
            F.min_by("status", rank).alias("payment_state"),
            F.count(F.lit(1)).alias("payment_count"),
            F.coalesce(F.sum(F.when(succeeded, F.col("amount"))), zero).cast(AMOUNT_SQL).alias("paid_amount"),
            F.coalesce(F.sum(F.when(succeeded, F.col("amount_refunded"))), zero)
            .cast(AMOUNT_SQL)
            .alias("payment_refunded_amount"),
            F.min(F.when(succeeded, F.col("created_at"))).alias("first_paid_at"),
        )
    )


def _shipments_per_order(shipments: DataFrame) -> DataFrame:
    """order_id -> the latest shipment status (by status_time), carrier, counts and times."""
    latest = F.struct("status_time", "status", "carrier")
    shipped = F.col("status").isin(*SHIPPED_STATUSES)
    return (
        shipments.where(F.col("order_id").isNotNull())
        .groupBy("order_id")
        .agg(
            F.max(latest).alias("_latest"),
            F.count(F.lit(1)).alias("shipment_count"),
            F.min(F.when(shipped, F.col("status_time"))).alias("first_shipped_at"),
            F.max(F.when(F.col("status") == "delivered", F.col("status_time"))).alias("delivered_at"),
        )
        .select(
            "order_id",
            F.col("_latest.status").alias("shipment_state"),
            F.col("_latest.carrier").alias("carrier"),
            F.col("_latest.status_time").alias("last_shipment_at"),
            "shipment_count",
            "first_shipped_at",
            "delivered_at",
        )
    )


def order_journey(
    orders: DataFrame, payments: DataFrame, shipments: DataFrame, refunds: DataFrame
) -> DataFrame:
    """Every order with its payment, refund and shipment state (the columns of both order views). An order
    with no charge has payment_state `none`, with no shipment shipment_state `none`; counts are then 0."""
    completed = refunds.where(F.col("status") == COUNTED_REFUND_STATUS)
    refunded = completed.groupBy("source_system", "order_id").agg(
        F.count(F.lit(1)).alias("refund_count"),
        F.sum("refund_amount").cast(AMOUNT_SQL).alias("refunded_amount"),
    )
    zero = F.lit(0).cast(AMOUNT_SQL)
    joined = (
        orders.withColumn("order_date", utc_date("created_at"))
        .join(_payments_per_order(payments), "order_id", "left")
        .join(_shipments_per_order(shipments), "order_id", "left")
        .join(refunded, ["source_system", "order_id"], "left")
    )
    return joined.withColumns(
        {
            "payment_state": F.coalesce(F.col("payment_state"), F.lit("none")),
            "shipment_state": F.coalesce(F.col("shipment_state"), F.lit("none")),
            **{
                c: F.coalesce(F.col(c), F.lit(0)) for c in ("payment_count", "shipment_count", "refund_count")
            },
            **{
                c: F.coalesce(F.col(c), zero)
                for c in ("paid_amount", "payment_refunded_amount", "refunded_amount")
            },
        }
    )


def order_status(
    orders: DataFrame, payments: DataFrame, shipments: DataFrame, refunds: DataFrame
) -> DataFrame:
    """gold.order_status (support): one row per order, key (source_system, order_id), partitioned by
    order_date: the order's status and total, its payment state and amounts (Stripe), refunds, and its
    latest shipment state and carrier (3PLs) - what support needs to answer "where is my order"."""
    return order_journey(orders, payments, shipments, refunds).select(*ORDER_STATUS_COLUMNS)


def order_fulfilment(
    orders: DataFrame, payments: DataFrame, shipments: DataFrame, refunds: DataFrame
) -> DataFrame:
    """gold.order_fulfilment (operations): one row per order, key (source_system, order_id), partitioned by
    order_date: when it was paid, first shipped and delivered, and the lags (seconds to payment, hours to
    ship, hours to delivery; null until it happens). The 3PLs send a shipment's latest status, so
    first_shipped_at is the earliest time a shipment of the order is known shipped or later."""
    journey = order_journey(orders, payments, shipments, refunds)
    return journey.withColumns(
        {
            "seconds_to_payment": F.unix_seconds(F.col("first_paid_at"))
            - F.unix_seconds(F.col("created_at")),
            "hours_to_ship": _hours("created_at", "first_shipped_at"),
            "hours_to_delivery": _hours("created_at", "delivered_at"),
        }
    ).select(*ORDER_FULFILMENT_COLUMNS)
