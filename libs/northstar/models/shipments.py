"""The conformed shipments model (silver.shipments): one row per (source_system, shipment_id), its latest status.

From the 3PL partners' CSV drops (conf/sources/wms.yaml: one silver table per partner, one shape), each input
with its own `source_system` (wms_acme, wms_bolt) and `status_map` onto ACCEPTED_STATUSES. The latest status is
the one with the latest `status_time` (UTC; silver already keeps the latest per shipment, and the model's MERGE
never goes back in time). `weight_kg` is decimal(18,2); `cartons` an int (null when the partner sent something
that is not a number: silver keeps the delivered text in `_rescued_data`).
A row that cannot be conformed carries `_reason`/`_reason_detail` and goes to quarantine.shipments.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from northstar.models import common as c

KEY = ["source_system", "shipment_id"]
PII_COLUMNS: tuple[str, ...] = ()  # no column of this model identifies a person
ORDERING = ["updated_at"]  # = status_time: the partner's own clock of the status change
ACCEPTED_STATUSES = ("pending", "shipped", "in_transit", "delivered", "exception", "returned")
COLUMNS = [
    "source_system",
    "shipment_id",
    "order_id",
    "status",
    "source_status",
    "carrier",
    "warehouse",
    "cartons",
    "weight_kg",
    "status_time",
    "updated_at",
    "_source_table",
    c.RECORD_HASH,
    c.LANDING_FILE,
]


def partner_shipments(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """A 3PL partner's shipment statuses (silver.wms_shipments_<partner>) -> conformed shipments."""
    f = silver
    source_status = c.column_or_null(f, "status")
    status = c.mapped_status(source_status, ctx.status_map)
    status_time = c.utc_timestamp(f, "status_time")
    weight_text = c.delivered_text(f, "weight_kg")
    weight = c.amount(weight_text)
    reason, detail = c.first_problem(
        [
            (c.unparseable_time(f, "status_time"), c.UNPARSEABLE_TIMESTAMP, "status_time is not a time"),
            (status_time.isNull(), c.MISSING_REQUIRED, "status_time is missing"),
            c.status_check(status, source_status, "shipments"),
            (
                weight_text.isNotNull() & weight.isNull(),
                c.UNPARSEABLE_AMOUNT,
                "not a number with at most 2 decimals: weight_kg",
            ),
        ]
    )
    return c.conformed_select(
        f,
        {
            "source_system": F.lit(ctx.source_system),
            "shipment_id": F.col("shipment_id").cast("string"),
            "order_id": c.column_or_null(f, "order_id"),
            "status": status,
            "source_status": source_status,
            "carrier": c.column_or_null(f, "carrier"),
            "warehouse": c.column_or_null(f, "warehouse"),
            "cartons": c.column_or_null(f, "cartons", "int"),
            "weight_kg": weight,
            "status_time": status_time,
            "updated_at": status_time,
            **c.lineage(f, ctx.source_table),
            c.REASON: reason,
            c.REASON_DETAIL: detail,
        },
    )


MAPPINGS: dict[str, Callable[[DataFrame, c.MappingContext], DataFrame]] = {
    "partner_shipments": partner_shipments
}
