"""Each gold table's definition in one place, looked up by name: `GOLD["fact_orders"].key`, `.partition`,
`.day_sources`, `.build`, `.amounts`, `.pii_columns(...)`, `.description`, `.columns` (column -> description).

A definition says what the table is (key, also the Snowflake MERGE key; day partition, or None for a table
rebuilt whole and MERGEd by key; the money columns reconciliation sums), what it reads (the conformed models
whose changes rebuild it, and for a mart the gold facts it summarises) and how it is built (a DataFrame ->
DataFrame function over the frames it reads) and counted in the run ledger. The runner (gold/runner.py) does
the reading and writing; nothing here touches storage.

Descriptions live here and nowhere else (conf/models/*.yaml describe a model as a whole, not its columns): the
warehouse comments (warehouse/comments.py) and the dbt sources.yml (warehouse/dbt_sources.py) are generated
from them. `WAREHOUSE_COLUMNS` are the columns the publish adds to every warehouse table; gold lacks them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from northstar.gold import transforms as t
from northstar.lake import tables
from northstar.lake.tables import Table
from northstar.models.spec import MODULES

# What a build reads: read("orders") is the conformed model silver.orders; read("gold.fact_orders") is a gold
# table, already narrowed to the days being recomputed.
Reader = Callable[[str], DataFrame]


@dataclass(frozen=True)
class Counts:
    """What a build of a table counts in its ledger row. `written` None: Delta's count of the rows the commit
    wrote. `duplicate`: inputs folded into a row that another input already made (read = written + duplicate)."""

    read: int
    written: int | None = None
    duplicate: int = 0
    details: dict[str, int] = field(default_factory=dict)


def rows_built(rows: DataFrame, _read: Reader) -> Counts:
    """A fact table: every input row of a recomputed day is one fact row."""
    return Counts(read=rows.count())


@dataclass(frozen=True)
class GoldTable:
    """A gold table: what it is, what it reads, how it is built and counted."""

    name: str
    key: tuple[str, ...]
    partition: str | None
    amounts: tuple[str, ...]
    inputs: tuple[str, ...]
    build: Callable[[Reader], DataFrame]
    day_sources: tuple[tuple[str, str], ...] = ()
    summarises: tuple[str, ...] = ()
    refunds_of_changed_orders: bool = False
    # models whose changed rows recompute their orders' days, and the columns that find the order
    orders_of_changed: tuple[tuple[str, tuple[str, ...]], ...] = ()
    count: Callable[[DataFrame, Reader], Counts] = rows_built
    description: str = ""
    # every gold column, in the table's order, with what it means (built by `_columns`)
    columns: tuple[tuple[str, str], ...] = ()

    def column_descriptions(self, *, warehouse: bool = False) -> dict[str, str]:
        """column -> description; `warehouse`: with the columns the publish adds (`_loaded_at`, `_run_id`)."""
        return {**dict(self.columns), **(WAREHOUSE_COLUMNS if warehouse else {})}

    @property
    def table(self) -> Table:
        """gold.<name> in the table registry."""
        return tables.gold(self.name, self.key, (self.partition,) if self.partition else ())

    def pii_columns(self, columns: Iterable[str]) -> list[str]:
        """The columns (of `columns`) that identify a person: those the conformed models it reads declare PII."""
        pii = {c for model in self.inputs for c in MODULES[model].PII_COLUMNS}
        return [c for c in columns if c in pii]


def _mart_counts(rows: DataFrame, read: Reader) -> Counts:
    """daily_revenue: every fact row (orders and refunds) of a recomputed day lands in exactly one mart row."""
    facts = sum(read(f"gold.{name}").count() for name in ("fact_orders", "fact_refunds"))
    total = rows.agg(F.sum("input_rows")).first()
    assert total is not None  # a global aggregate has one row
    return Counts(read=facts, written=total[0] or 0)


def _dimension_counts(rows: DataFrame, read: Reader) -> Counts:
    """dim_customer: read = orders with a customer; written = dimension versions; duplicate = orders that carried
    the same details as the version they fall in (no new version). An order lost between the history and the
    versions unbalances the run."""
    orders = (
        read("orders")
        .agg(F.count(F.lit(1)).alias("all"), F.count("customer_token").alias("with_customer"))
        .first()
    )
    totals = rows.agg(F.count(F.lit(1)), F.sum("orders_in_version"), F.count_if("is_current")).first()
    # global aggregates have one row
    assert orders is not None
    assert totals is not None
    versions, orders_in_versions, current = totals
    return Counts(
        read=orders["with_customer"],
        written=versions,
        duplicate=(orders_in_versions or 0) - versions,
        details={
            "orders_without_customer": orders["all"] - orders["with_customer"],
            "current_customers": current,
        },
    )


# Columns the publish adds to every warehouse table (not in gold).
WAREHOUSE_COLUMNS: Mapping[str, str] = {
    "_loaded_at": "when the publish loaded this row into the warehouse, UTC",
    "_run_id": "the publish run that last wrote this row",
}

# What a column means wherever a gold table has it under this name; a table with its own meaning says so in
# `_columns(..., name="its meaning")`.
SHARED_COLUMNS: Mapping[str, str] = {
    "source_system": "the system the record comes from (marketplace, shop_db, stripe, a 3PL); part of the key",
    "order_id": "the order's id in its source system",
    "order_date": "UTC calendar day the order was created",
    "status": "the record's status, conformed to the model's accepted values",
    "customer_token": "HMAC-SHA256 token of the customer (pseudonymous; masked for all but PII_READER)",
    "sales_channel": "the channel the order was sold through (`unknown` for a line or refund whose order is not yet known)",
    "fulfillment_channel": "who fulfils the order (API v2 only, null before)",
    "ship_to_country": "shipping country, ISO code, upper case (a country alone identifies nobody)",
    "currency": "ISO 4217 currency of the amounts in this row; amounts of different currencies never add up",
    "subtotal_amount": "order subtotal before tax and shipping, in `currency`",
    "tax_amount": "tax, in `currency`; 0.00 when absent",
    "shipping_amount": "shipping fee, in `currency`; 0.00 when absent",
    "discount_amount": "discount, in `currency`; 0.00 when absent",
    "total_amount": "order total (subtotal + tax + shipping), in `currency`",
    "item_count": "number of line items",
    "created_at": "when the record was created in its source, UTC",
    "updated_at": "when the record last changed in its source, UTC",
    "customer_email_token": "token of the customer's email as of the order (masked)",
    "customer_phone_token": "token of the customer's phone as of the order (masked)",
    "customer_name_token": "token of the customer's name as of the order (masked)",
    "ship_to_city_token": "token of the shipping city as of the order (masked)",
    "refund_count": "completed refunds of the order",
    "refunded_amount": "sum of the order's completed refunds, in `currency`",
    "payment_state": "best state of the order's charges: succeeded, pending, failed, or none",
    "shipment_state": "latest shipment status of the order, or none",
    "carrier": "carrier of the latest shipment",
}


def _columns(*names: str, **own: str) -> tuple[tuple[str, str], ...]:
    """(column, description) pairs: `names` from SHARED_COLUMNS, keywords their table's own meaning. Order:
    `names` first in the order given, then the keywords in theirs (use `_columns` twice to interleave)."""
    return tuple((n, SHARED_COLUMNS[n]) for n in names) + tuple(own.items())


ORDER_KEY = ("source_system", "order_id")
# a Stripe charge and a 3PL shipment name the order by its id alone (their source_system is their own)
ORDERS_OF_PAYMENTS_AND_SHIPMENTS = (
    ("payments", ("order_id",)),
    ("shipments", ("order_id",)),
    ("refunds", ORDER_KEY),
)
ORDER_VIEW_INPUTS = ("orders", "payments", "shipments", "refunds")


def _order_view(build: Callable[..., DataFrame]) -> Callable[[Reader], DataFrame]:
    return lambda read: build(*(read(m) for m in ORDER_VIEW_INPUTS))


GOLD: dict[str, GoldTable] = {
    g.name: g
    for g in (
        GoldTable(
            "fact_orders",
            key=("source_system", "order_id"),
            partition="order_date",
            amounts=("total_amount",),
            inputs=("orders",),
            build=lambda read: t.order_facts(read("orders")),
            day_sources=(("orders", "created_at"),),
            description="One row per order and source system (latest version): status, channel, amounts; partitioned by order_date.",
            columns=_columns(*t.ORDER_FACT_COLUMNS),
        ),
        GoldTable(
            "fact_order_lines",
            key=("source_system", "order_id", "line_number"),
            partition="order_date",
            amounts=("line_amount",),
            inputs=("order_lines", "orders"),
            build=lambda read: t.order_line_facts(read("order_lines"), read("orders")),
            day_sources=(("order_lines", "created_at"), ("orders", "created_at")),
            orders_of_changed=(("order_lines", ORDER_KEY),),  # a line's day is its order's
            description="One row per live order line; key (source_system, order_id, line_number); the order gives day, currency, channel.",
            columns=_columns("source_system", "order_id")
            + _columns(
                line_number="the line's position in its order, from 1; part of the key",
                order_date="UTC calendar day of the line's order (the line's own day when the order is not known)",
                line_id="the line's id in its source",
                sku="stock keeping unit of the item",
                quantity="units ordered (> 0)",
            )
            + _columns("currency")
            + _columns(
                unit_price="price of one unit, in `currency`",
                discount_amount="the line's discount, in `currency`; 0.00 when none",
                line_amount="quantity x unit_price - discount_amount, in `currency`",
            )
            + _columns("sales_channel"),
        ),
        GoldTable(
            "fact_refunds",
            key=("source_system", "refund_id"),
            partition="refund_date",
            amounts=("refund_amount",),
            inputs=("orders", "refunds"),
            build=lambda read: t.refund_facts(read("refunds"), read("orders")),
            day_sources=(("refunds", "created_at"),),
            refunds_of_changed_orders=True,  # a refund's row carries its order's channel
            description="One row per refund, on the UTC day it was created (a late refund counts on its own day), with the sales channel of its order.",
            columns=_columns("source_system")
            + _columns(refund_id="the refund's id in its source system; part of the key")
            + _columns("order_id")
            + _columns(refund_date="UTC calendar day the refund was created")
            + _columns(order_date="UTC calendar day of the refunded order; null when the order is not known")
            + _columns("status")
            + _columns(reason="why the customer was refunded, as the source says")
            + _columns("currency")
            + _columns(refund_amount="money returned to the customer, in `currency`")
            + _columns("sales_channel", "created_at", "updated_at"),
        ),
        GoldTable(
            "daily_revenue",
            key=("revenue_date", "currency", "sales_channel"),
            partition="revenue_date",
            amounts=("gross_amount", "refund_amount", "net_amount"),
            inputs=("orders", "refunds"),
            build=lambda read: t.daily_revenue(read("gold.fact_orders"), read("gold.fact_refunds")),
            day_sources=(("orders", "created_at"), ("refunds", "created_at")),
            summarises=("fact_orders", "fact_refunds"),
            refunds_of_changed_orders=True,
            count=_mart_counts,
            description="Finance mart: per UTC day, currency and sales channel, gross revenue of non-cancelled orders, completed refunds and net revenue.",
            columns=_columns(
                revenue_date="UTC calendar day of the orders' creation and the refunds' creation",
                currency="ISO 4217 currency of every amount in the row (never converted or added across currencies)",
                sales_channel="the channel sold through; `unknown` for refunds of orders not (yet) known",
                order_count="orders created that day, cancelled ones excluded",
                gross_amount="sum of total_amount of those orders",
                refund_count="completed refunds created that day",
                refund_amount="sum of those refunds",
                net_amount="gross_amount - refund_amount",
                input_rows="fact rows (orders and refunds, any status) summarised into the row",
            ),
        ),
        GoldTable(
            "fact_payments",
            key=("source_system", "payment_id"),
            partition="payment_date",
            amounts=("amount", "amount_refunded", "net_amount"),
            inputs=("payments",),
            build=lambda read: t.payment_facts(read("payments")),
            day_sources=(("payments", "created_at"),),
            description="One row per Stripe charge (latest state), key (source_system, payment_id), partitioned by payment_date.",
            columns=_columns("source_system")
            + _columns(payment_id="the charge's id in Stripe; part of the key")
            + _columns(
                order_id="the order the charge pays (the order's id alone: its source system is another)"
            )
            + _columns(payment_date="UTC calendar day the charge was created")
            + _columns("status", "currency")
            + _columns(
                amount="amount charged, in `currency`",
                amount_refunded="amount Stripe refunded on the charge, in `currency`",
                net_amount="amount - amount_refunded",
            )
            + _columns("created_at", "updated_at"),
        ),
        GoldTable(
            "fact_shipments",
            key=("source_system", "shipment_id"),
            partition="shipment_date",
            amounts=("weight_kg",),
            inputs=("shipments",),
            build=lambda read: t.shipment_facts(read("shipments")),
            day_sources=(("shipments", "status_time"),),  # pre-image: the old day; post-image: the new one
            description="One row per 3PL shipment (latest status), key (source_system, shipment_id), partitioned by shipment_date.",
            columns=_columns("source_system")
            + _columns(shipment_id="the shipment's id at its 3PL; part of the key")
            + _columns(order_id="the order shipped (the order's id alone: its source system is another)")
            + _columns(shipment_date="UTC calendar day of the shipment's latest status")
            + _columns("status")
            + _columns(source_status="the status as the 3PL sent it")
            + _columns("carrier")
            + _columns(
                warehouse="the 3PL warehouse that ships it",
                cartons="number of cartons",
                weight_kg="total weight, kg",
                status_time="when the shipment reached its latest status, UTC",
            ),
        ),
        GoldTable(
            "dim_customer",
            key=("customer_sk",),
            partition=None,
            amounts=("orders_in_version",),
            inputs=("orders",),
            build=lambda read: t.customer_dimension(read("orders")),
            count=_dimension_counts,
            description="Customer dimension, SCD type 2: one row per version of the (tokenized) details of a customer; contact details only as tokens.",
            columns=_columns(
                customer_sk="surrogate key of the version: SHA-256 of customer_token, valid_from and its first order"
            )
            + _columns("customer_token", *t.CUSTOMER_ATTRIBUTES)
            + _columns(
                valid_from="when this version starts: the created_at of its first order, UTC",
                valid_to="when the next version starts, UTC; null for the current version",
                is_current="true for the customer's current version",
                version="the version's number for the customer, from 1",
                orders_in_version="orders that fall in this version",
            ),
        ),
        GoldTable(
            "order_status",
            key=ORDER_KEY,
            partition="order_date",
            amounts=("total_amount", "paid_amount", "refunded_amount"),
            inputs=ORDER_VIEW_INPUTS,
            build=_order_view(t.order_status),
            day_sources=(("orders", "created_at"),),
            orders_of_changed=ORDERS_OF_PAYMENTS_AND_SHIPMENTS,
            description="Support view: one row per order with its status and total, payment state and amounts (Stripe), refunds, latest shipment state and carrier.",
            columns=_columns(
                "source_system",
                "order_id",
                "order_date",
                "status",
                "currency",
                "total_amount",
                "payment_state",
            )
            + _columns(
                payment_count="the order's charges",
                paid_amount="sum of the order's succeeded charges",
                payment_refunded_amount="amount Stripe refunded on the order's succeeded charges",
            )
            + _columns("refund_count", "refunded_amount", "shipment_state")
            + _columns(shipment_count="the order's shipments")
            + _columns("carrier")
            + _columns(last_shipment_at="time of the latest shipment status, UTC")
            + _columns("created_at", "updated_at"),
        ),
        GoldTable(
            "order_fulfilment",
            key=ORDER_KEY,
            partition="order_date",
            amounts=("hours_to_ship", "hours_to_delivery"),
            inputs=ORDER_VIEW_INPUTS,
            build=_order_view(t.order_fulfilment),
            day_sources=(("orders", "created_at"),),
            orders_of_changed=ORDERS_OF_PAYMENTS_AND_SHIPMENTS,
            description="Operations view: one row per order with when it was paid, first shipped and delivered, and the lags (null until it happens).",
            columns=_columns("source_system", "order_id", "order_date", "status", "created_at")
            + _columns(
                first_paid_at="first succeeded charge of the order, UTC",
                seconds_to_payment="seconds from created_at to first_paid_at",
                first_shipped_at="earliest time a shipment of the order is known shipped or later, UTC",
                hours_to_ship="hours from created_at to first_shipped_at",
                delivered_at="when a shipment of the order was delivered, UTC",
                hours_to_delivery="hours from created_at to delivered_at",
            )
            + _columns("shipment_state"),
        ),
    )
}
# The conformed models gold reads, in the order the runner looks up their versions.
INPUT_MODELS = tuple(dict.fromkeys(m for g in GOLD.values() for m in g.inputs))
