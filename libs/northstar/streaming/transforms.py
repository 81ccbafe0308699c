"""Event transforms, DataFrame -> DataFrame with no I/O: parse Firehose lines, reject, conform to silver,
sessionize, aggregate per minute. The stream and the batch path (replay, catch-up) call the same functions,
so a micro-batch and a one-batch run over the same events give the same rows.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar import quarantine
from northstar.bronze.transforms import CORRUPT, LANDING_FILE, RAW, RECORD_HASH
from northstar.config import StreamSpec, TableSpec
from northstar.transforms.pii import keyed_token
from northstar.transforms.schema import RESCUED, contract_type

REJECT_REASON = "_reject_reason"
REJECT_DETAIL = "_reject_detail"

# "Converted": the session holds an order_placed event (a checkout that was not completed does not count).
CONVERSION_EVENT = "order_placed"
FUNNEL_COLUMNS = {
    "page_views": "page_view",
    "product_views": "product_view",
    "add_to_carts": "add_to_cart",
    "checkouts": "checkout_started",
    "orders": "order_placed",
    "errors": "error",
}
SILVER_COLUMNS = [
    "event_id",
    "event_time",
    "event_type",
    "user_token",
    "device_token",
    "visitor_key",
    "platform",
    "page",
    "order_id",
    "error_code",
    RECORD_HASH,
]


def contract_schema(spec: TableSpec) -> T.StructType:
    """The declared columns as a Spark schema (a stream needs its schema up front; it cannot infer per batch)."""
    return T.StructType(
        [T.StructField(c.name, contract_type(c.type) or T.StringType(), True) for c in spec.columns or []]
    )


def parse_lines(lines: DataFrame, spec: TableSpec) -> DataFrame:
    """`_raw_record` lines -> the contract's columns, `_corrupt_record` (raw text of a line that is not a JSON
    object or whose values do not fit the contract), `_rescued_data` (fields outside the contract, as JSON)
    and `_record_hash`; `_raw_record` stays for quarantine and is not written to bronze."""
    schema = contract_schema(spec)
    parse_schema = T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType(), True)])
    options = {
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": CORRUPT,
        "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss[.SSS]XXX",
    }
    parsed = F.from_json(F.col(RAW), parse_schema, options)
    extra = F.map_filter(
        F.from_json(F.col(RAW), "map<string,string>"), lambda k, _: ~k.isin(*schema.fieldNames())
    )
    return lines.select(
        *[parsed[f.name].alias(f.name) for f in schema.fields],
        F.when(F.size(extra) > 0, F.to_json(extra)).alias(RESCUED),
        parsed[CORRUPT].alias(CORRUPT),
        F.sha2(F.col(RAW), 256).alias(RECORD_HASH),
        F.col(LANDING_FILE),
        F.col(RAW),
    )


def with_reject_reason(rows: DataFrame, stream: StreamSpec) -> DataFrame:
    """`_reject_reason` / `_reject_detail`: why a parsed row cannot go on to silver (null when it can)."""
    checks: list[tuple[Column, str, str]] = [
        (
            F.col(CORRUPT).isNotNull(),
            quarantine.MALFORMED,
            "not a JSON object matching the contract of "
            "conf/sources (e.g. truncated, or a value of the wrong type)",
        ),
        (
            F.col(stream.event_id).isNull(),
            quarantine.NULL_KEY,
            f"{stream.event_id} is missing: the producer must send one id per event",
        ),
        (F.col(stream.event_time).isNull(), quarantine.MISSING_REQUIRED, f"{stream.event_time} is missing"),
        (F.col("event_type").isNull(), quarantine.MISSING_REQUIRED, "event_type is missing"),
    ]
    reason, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for failed, code, message in reversed(checks):
        reason = F.when(failed, F.lit(code)).otherwise(reason)
        detail = F.when(failed, F.lit(message)).otherwise(detail)
    return rows.withColumn(REJECT_REASON, reason).withColumn(REJECT_DETAIL, detail)


def valid_rows(bronze_rows: DataFrame, stream: StreamSpec) -> DataFrame:
    """Bronze rows silver takes: parsed, with an id, a time and a type (the others are in quarantine)."""
    return bronze_rows.where(
        F.col(CORRUPT).isNull()
        & F.col(stream.event_id).isNotNull()
        & F.col(stream.event_time).isNotNull()
        & F.col("event_type").isNotNull()
    )


def to_silver(valid: DataFrame, stream: StreamSpec, token_key: bytes) -> DataFrame:
    """Silver event columns: user and device ids replaced by keyed tokens; `visitor_key` the user token, or
    the device token for anonymous visitors (sessions are per visitor)."""
    user_token = keyed_token(F.col(stream.user_column), token_key)
    device_token = keyed_token(F.col(stream.device_column), token_key)
    return valid.select(
        F.col(stream.event_id).alias("event_id"),
        F.col(stream.event_time).alias("event_time"),
        "event_type",
        user_token.alias("user_token"),
        device_token.alias("device_token"),
        F.coalesce(F.concat(F.lit("u:"), user_token), F.concat(F.lit("d:"), device_token)).alias(
            "visitor_key"
        ),
        "platform",
        "page",
        "order_id",
        "error_code",
        RECORD_HASH,
    )


def one_per_event(events: DataFrame) -> DataFrame:
    """One row per event id; copies are the same event, and the smallest record hash is kept so the pick never
    depends on arrival order."""
    order = Window.partitionBy("event_id").orderBy(RECORD_HASH)
    return events.withColumn("_n", F.row_number().over(order)).where("_n = 1").drop("_n")


def sessionize(events: DataFrame, gap: str) -> DataFrame:
    """Session facts per visitor with Spark's session windows: a session closes after `gap` of inactivity.

    start/end are the first and last event times; pages counts distinct pages viewed; converted is true when
    the session holds an order_placed event. session_id = SHA-256(visitor_key | start)."""
    sessions = events.groupBy("visitor_key", F.session_window("event_time", gap).alias("w")).agg(
        F.min("event_time").alias("session_start"),
        F.max("event_time").alias("session_end"),
        F.count(F.lit(1)).alias("events"),
        F.count_distinct(F.when(F.col("event_type").isin("page_view", "product_view"), F.col("page"))).alias(
            "pages"
        ),
        F.max(F.col("event_type") == CONVERSION_EVENT).alias("converted"),
        F.max("order_id").alias("order_id"),
        F.max("user_token").alias("user_token"),
        F.max("device_token").alias("device_token"),
        F.min_by("platform", "event_time").alias("platform"),
    )
    return sessions.select(
        F.sha2(
            F.concat_ws("|", "visitor_key", F.date_format("session_start", "yyyy-MM-dd'T'HH:mm:ss.SSSSSS")),
            256,
        ).alias("session_id"),
        "visitor_key",
        "user_token",
        "device_token",
        "session_start",
        "session_end",
        (F.unix_micros("session_end") - F.unix_micros("session_start"))
        .cast("double")
        .__truediv__(1e6)
        .alias("duration_seconds"),
        "pages",
        "events",
        F.coalesce("converted", F.lit(False)).alias("converted"),
        "order_id",
        "platform",
    )


def minute_aggregates(events: DataFrame) -> DataFrame:
    """Per minute of event time: events, the checkout funnel (page view -> order), errors, error rate and
    distinct visitors. No user key, so a deletion request never needs these rows rewritten."""
    counts = [F.count_if(F.col("event_type") == kind).alias(name) for name, kind in FUNNEL_COLUMNS.items()]
    return (
        events.groupBy(F.date_trunc("minute", "event_time").alias("minute"))
        .agg(
            F.count(F.lit(1)).alias("events"),
            *counts,
            F.count_distinct("visitor_key").alias("visitors"),
            F.max("event_time").alias("max_event_time"),
        )
        .withColumn("error_rate", F.round(F.col("errors") / F.col("events"), 6))
    )
