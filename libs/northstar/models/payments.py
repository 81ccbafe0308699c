"""The conformed payments model (silver.payments): one row per (source_system, payment_id), its latest state.

Two inputs tell us about the same Stripe charges, both with source_system `stripe`: the list API's snapshots
(conf/sources/stripe.yaml `charges`, silver.stripe_charges, mapping `stripe_charges`) and the webhook events'
latest object states (conf/sources/stripe_events.yaml `objects`, silver.stripe_events_objects, mapping
`stripe_event_charges`: the rows whose object is a charge). One row per charge id whichever input saw it: the
latest state wins, by ORDERING. A list API snapshot's state is from its `_extracted_at`; a webhook's from the
event's `created` (the time Stripe says the charge reached that state), and two events of one second are
ordered by event id (`source_event_id`), as silver.stripe_events_objects orders them.

Both mappings conform the same Charge object: amounts converted from Stripe's minor units with the currency's
exponent (JPY and the other zero-decimal currencies are not divided by 100: common.from_minor_units), an ISO
4217 currency, statuses mapped to ACCEPTED_STATUSES, `created` (epoch seconds) as a UTC instant, and the order
the charge pays from `metadata.order_id` when the merchant set it. Card data never leaves silver: no card
brand, last4, fingerprint or billing details are mapped (silver itself keeps only tokens and last4, PCI).
A row that cannot be conformed carries `_reason`/`_reason_detail` and goes to quarantine.payments.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from northstar.models import common as c

KEY = ["source_system", "payment_id"]
PII_COLUMNS: tuple[str, ...] = ()  # no column of this model identifies a person
# Stripe objects have no update time: a snapshot's `_extracted_at`, or the event's `created`; then the event id
# ('' for a snapshot, which no event carried), then the record hash (the runner adds it)
ORDERING = ["updated_at", "source_event_id"]
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
    "source_event_id",
    "_source_table",
    c.RECORD_HASH,
    c.LANDING_FILE,
]
NOT_A_CHARGE = "not_a_charge"  # the ledger detail counting webhook objects that are not charges


def conformed_charges(
    f: DataFrame,
    ctx: c.MappingContext,
    charge: str,
    updated: Column,
    source_event_id: Column,
    time_checks: list[tuple[Column, str, str]],
) -> DataFrame:
    """Stripe Charge objects -> conformed payments (amount and amount_refunded in major units).

    `charge`: where the Charge's fields are ("" for a list API row, "data.object." for a webhook event);
    `updated`: the time of this state; `time_checks`: the checks of that time, first of the row's checks.
    """
    currency = c.currency_code(c.column_or_null(f, f"{charge}currency"))
    minor = {name: c.column_or_null(f, f"{charge}{name}") for name in ("amount", "amount_refunded")}
    money = {name: c.from_minor_units(value, currency) for name, value in minor.items()}
    created_seconds = c.column_or_null(f, f"{charge}created", "bigint")
    source_status = c.column_or_null(f, f"{charge}status")
    status = c.mapped_status(source_status, ctx.status_map)
    bad = [(name, minor[name].isNotNull() & money[name].isNull()) for name in minor]
    reason, detail = c.first_problem(
        [
            *time_checks,
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
            "payment_id": c.column_or_null(f, f"{charge}id"),
            "order_id": c.column_or_null(f, f"{charge}metadata.order_id"),
            "status": status,
            "source_status": source_status,
            "currency": currency,
            "amount": money["amount"],
            "amount_refunded": F.coalesce(money["amount_refunded"], F.lit(0).cast(c.AMOUNT_SQL)),
            "created_at": F.timestamp_seconds(created_seconds),
            "updated_at": updated,
            "source_event_id": source_event_id,
            **c.lineage(f, ctx.source_table),
            c.REASON: reason,
            c.REASON_DETAIL: detail,
        },
    )


def stripe_charges(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """silver.stripe_charges (list API snapshots) -> conformed payments; the state is from `_extracted_at`."""
    f = silver
    created_seconds = c.column_or_null(f, "created", "bigint")
    updated = c.utc_timestamp(f, "_extracted_at")
    checks = [
        (c.unparseable_time(f, "_extracted_at"), c.UNPARSEABLE_TIMESTAMP, "_extracted_at is not a time"),
        (
            created_seconds.isNull() | updated.isNull(),
            c.MISSING_REQUIRED,
            "created (epoch seconds) or _extracted_at is missing",
        ),
    ]
    return conformed_charges(f, ctx, "", updated, F.lit(""), checks)


def is_charge(silver: DataFrame) -> Column:
    """The rows of silver.stripe_events_objects whose object is a charge (it also holds payment intents,
    disputes and every other object the events carry)."""
    return F.coalesce(c.column_or_null(silver, "object_type") == F.lit("charge"), F.lit(False))


def stripe_event_charges(silver: DataFrame, ctx: c.MappingContext) -> DataFrame:
    """silver.stripe_events_objects, its charges (`is_charge`) -> conformed payments: the Charge is the event's
    `data.object`; the state is from the event's `created` (epoch seconds), then its id (`evt_...`). Other
    objects are left out (the runner reads only the charges and counts the others: ROW_FILTERS)."""
    f = silver.where(is_charge(silver))
    created_seconds = c.column_or_null(f, "data.object.created", "bigint")
    updated = F.timestamp_seconds(c.column_or_null(f, "created", "bigint"))
    checks = [
        (
            created_seconds.isNull() | updated.isNull(),
            c.MISSING_REQUIRED,
            "data.object.created (epoch seconds) or the event's created is missing",
        ),
    ]
    return conformed_charges(f, ctx, "data.object.", updated, c.column_or_null(f, "id"), checks)


MAPPINGS: dict[str, Callable[[DataFrame, c.MappingContext], DataFrame]] = {
    "stripe_charges": stripe_charges,
    "stripe_event_charges": stripe_event_charges,
}
# Mappings that conform only some rows of their silver table: mapping -> (ledger detail, the rows it takes).
# The runner reads only those rows and counts the others in the ledger entry's details, so records_read is
# the rows this model reads and the others are still accounted for.
ROW_FILTERS: dict[str, tuple[str, Callable[[DataFrame], Column]]] = {
    "stripe_event_charges": (NOT_A_CHARGE, is_charge)
}
