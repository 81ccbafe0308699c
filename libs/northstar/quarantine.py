"""Quarantine tables: one Delta table per source table, holding every rejected record with its reason.

Nothing is dropped silently: a record that cannot go on is written here with the raw record, the reason,
the run that rejected it and where it came from.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

QUARANTINE_COLUMNS = [
    "run_id",
    "layer",
    "source",
    "table_name",
    "reason",
    "reason_detail",
    "raw_record",
    "landing_file",
    "record_hash",
    "quarantined_at",
]

# Reason codes (the `reason` column); `reason_detail` says what exactly was wrong.
MALFORMED = "malformed_record"
NULL_KEY = "null_primary_key"
NULL_ORDERING = "null_ordering_value"
MISSING_REQUIRED = "missing_required_value"
INVALID_CHANGE = "invalid_change_event"


def quarantine_rows(
    rejected: DataFrame,
    *,
    run_id: str,
    layer: str,
    source: str,
    table: str,
    reason: Column | str,
    reason_detail: Column | str,
    raw_record: Column,
    landing_file: Column,
    record_hash: Column,
    quarantined_at: Column,
) -> DataFrame:
    """Shape rejected records into the quarantine table's columns."""

    def as_column(value: Column | str) -> Column:
        return F.lit(value) if isinstance(value, str) else value

    return rejected.select(
        F.lit(run_id).alias("run_id"),
        F.lit(layer).alias("layer"),
        F.lit(source).alias("source"),
        F.lit(table).alias("table_name"),
        as_column(reason).alias("reason"),
        as_column(reason_detail).alias("reason_detail"),
        raw_record.alias("raw_record"),
        landing_file.alias("landing_file"),
        record_hash.alias("record_hash"),
        quarantined_at.alias("quarantined_at"),
    )
