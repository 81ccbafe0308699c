"""The conformed refunds model (silver.refunds): one row per (source_system, refund_id), its latest version.

Statuses mapped to ACCEPTED_STATUSES, the amount as decimal(18,2) with an ISO 4217 currency, times as UTC
instants. A row that cannot be conformed carries `_reason`/`_reason_detail` and goes to quarantine.refunds.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from northstar.models import common as c

KEY = ["source_system", "refund_id"]
PII_COLUMNS: tuple[str, ...] = ()  # no column of this model identifies a person
ORDERING = ["updated_at"]
ACCEPTED_STATUSES = ("requested", "approved", "rejected", "completed", "cancelled")
COLUMNS = [
    "source_system",
    "refund_id",
    "order_id",
    "status",
    "source_status",
    "reason",
    "currency",
    "refund_amount",
    "created_at",
    "updated_at",
    "_source_table",
    c.RECORD_HASH,
    c.LANDING_FILE,
]


def partner_refunds(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """The marketplace partner's refunds -> conformed refunds (an amount the partner sends as text is
    parsed; one bronze rescued because it did not fit decimal(12,2) is read from `_rescued_data`)."""
    f = silver
    currency = c.currency_code(c.column_or_null(f, "currency"))
    amount_text = c.delivered_text(f, "amount")
    source_status = c.column_or_null(f, "status")
    status = c.mapped_status(source_status, ctx.status_map)
    created, updated = c.utc_timestamp(f, "created_at"), c.utc_timestamp(f, "updated_at")
    reason, detail = c.first_problem(
        [
            (
                c.unparseable_time(f, "created_at") | c.unparseable_time(f, "updated_at"),
                c.UNPARSEABLE_TIMESTAMP,
                "created_at or updated_at is not an ISO-8601 time",
            ),
            (updated.isNull(), c.MISSING_REQUIRED, "updated_at is missing"),
            (c.column_or_null(f, "order_id").isNull(), c.MISSING_REQUIRED, "order_id is missing"),
            c.status_check(status, source_status, "refunds"),
            c.currency_check(currency, ctx.currencies),
            (amount_text.isNull(), c.MISSING_REQUIRED, "amount is missing"),
            (
                c.unparseable(amount_text),
                c.UNPARSEABLE_AMOUNT,
                "not an amount with at most 2 decimals: amount",
            ),
        ]
    )
    return c.conformed_select(
        f,
        {
            "source_system": F.lit(ctx.source_system),
            "refund_id": F.col("refund_id").cast("string"),
            "order_id": c.column_or_null(f, "order_id"),
            "status": status,
            "source_status": source_status,
            "reason": F.lower(F.trim(c.column_or_null(f, "reason"))),
            "currency": currency,
            "refund_amount": c.amount(amount_text),
            "created_at": created,
            "updated_at": updated,
            **c.lineage(f, ctx.source_table),
            c.REASON: reason,
            c.REASON_DETAIL: detail,
        },
    )


MAPPINGS: dict[str, Callable[[DataFrame, c.MappingContext], DataFrame]] = {"partner_refunds": partner_refunds}
