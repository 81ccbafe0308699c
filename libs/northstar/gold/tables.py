"""Each gold table's definition in one place, looked up by name: `GOLD["fact_orders"].key`, `.partition`,
`.day_sources`, `.build`, `.amounts`, `.pii_columns(...)`.

A definition says what the table is (key, also the Snowflake MERGE key; day partition, or None for a table
rebuilt whole and MERGEd by key; the money columns reconciliation sums), what it reads (the conformed models
whose changes rebuild it, and for a mart the gold facts it summarises) and how it is built (a DataFrame ->
DataFrame function over the frames it reads) and counted in the run ledger. The runner (gold/runner.py) does
the reading and writing; nothing here touches storage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
        ),
        GoldTable(
            "fact_payments",
            key=("source_system", "payment_id"),
            partition="payment_date",
            amounts=("amount", "amount_refunded", "net_amount"),
            inputs=("payments",),
            build=lambda read: t.payment_facts(read("payments")),
            day_sources=(("payments", "created_at"),),
        ),
        GoldTable(
            "fact_shipments",
            key=("source_system", "shipment_id"),
            partition="shipment_date",
            amounts=("weight_kg",),
            inputs=("shipments",),
            build=lambda read: t.shipment_facts(read("shipments")),
            day_sources=(("shipments", "status_time"),),  # pre-image: the old day; post-image: the new one
        ),
        GoldTable(
            "dim_customer",
            key=("customer_sk",),
            partition=None,
            amounts=("orders_in_version",),
            inputs=("orders",),
            build=lambda read: t.customer_dimension(read("orders")),
            count=_dimension_counts,
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
        ),
    )
}
# The conformed models gold reads, in the order the runner looks up their versions.
INPUT_MODELS = tuple(dict.fromkeys(m for g in GOLD.values() for m in g.inputs))
