"""The conformed payments model (silver.payments): one row per (source_system, payment_id), its latest snapshot.

From Stripe charges (conf/sources/stripe.yaml `charges`): amounts converted from Stripe's minor units with the
currency's exponent (JPY and the other zero-decimal currencies are not divided by 100: common.from_minor_units),
an ISO 4217 currency, statuses mapped to ACCEPTED_STATUSES, `created` (epoch seconds) as a UTC instant, and the
order the charge pays from `metadata.order_id` when the merchant set it. Card data never leaves silver: no card
brand, last4, fingerprint or billing details are mapped (silver itself keeps only tokens and last4, PCI).
A row that cannot be conformed carries `_reason`/`_reason_detail` and goes to quarantine.payments.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from northstar.models import common as c

KEY = ["source_system", "payment_id"]
PII_COLUMNS: tuple[str, ...] = ()  # no column of this model identifies a person
ORDERING = ["updated_at"]  # Stripe objects have no update time: the snapshot's `_extracted_at`
ACCEPTED_STATUSES = ("pending", "succeeded", "failed")
COLUMNS = [
    "source_system",
    "payment_id",
    "order_id",
    "status",
    "source_status",
    "currency",
    "amount",
    "amount_refunded",
    "created_at",
    "updated_at",
    "_source_table",
    c.RECORD_HASH,
    c.LANDING_FILE,
]


def stripe_charges(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """silver.stripe_charges -> conformed payments (amount and amount_refunded in major units)."""
    f = silver
    currency = c.currency_code(c.column_or_null(f, "currency"))
    minor = {name: c.column_or_null(f, name) for name in ("amount", "amount_refunded")}
    money = {name: c.from_minor_units(value, currency) for name, value in minor.items()}
    created_seconds = c.column_or_null(f, "created", "bigint")
    source_status = c.column_or_null(f, "status")
    status = c.mapped_status(source_status, ctx.status_map)
    updated = c.utc_timestamp(f, "_extracted_at")
    bad = [(name, minor[name].isNotNull() & money[name].isNull()) for name in minor]
    reason, detail = c.first_problem(
        [
            (c.unparseable_time(f, "_extracted_at"), c.UNPARSEABLE_TIMESTAMP, "_extracted_at is not a time"),
            (
                created_seconds.isNull() | updated.isNull(),
                c.MISSING_REQUIRED,
                "created (epoch seconds) or _extracted_at is missing",
            ),
            c.status_check(status, source_status, "payments"),
            c.currency_check(currency, ctx.currencies),
            (minor["amount"].isNull(), c.MISSING_REQUIRED, "amount is missing"),
            (
                bad[0][1] | bad[1][1],
                c.UNPARSEABLE_AMOUNT,
                F.concat(
                    F.lit("not an integer amount in the currency's minor units: "),
                    c.names_of(bad),
                ),
            ),
        ]
    )
    return c.conformed_select(
        f,
        {
            "source_system": F.lit(ctx.source_system),
            "payment_id": F.col("id").cast("string"),
            "order_id": c.column_or_null(f, "metadata.order_id"),
            "status": status,
            "source_status": source_status,
            "currency": currency,
            "amount": money["amount"],
            "amount_refunded": F.coalesce(money["amount_refunded"], F.lit(0).cast(c.AMOUNT_SQL)),
            "created_at": F.timestamp_seconds(created_seconds),
            "updated_at": updated,
            **c.lineage(f, ctx.source_table),
            c.REASON: reason,
            c.REASON_DETAIL: detail,
        },
    )


MAPPINGS: dict[str, Callable[[DataFrame, c.MappingContext], DataFrame]] = {"stripe_charges": stripe_charges}
