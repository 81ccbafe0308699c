"""Quarantine tables: one Delta table per source table, holding every rejected record with its reason.

Nothing is dropped silently: a record that cannot go on is written here with the raw record, the reason,
the run that rejected it and where it came from.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.lake import delta
from northstar.lake.commits import Tag
from northstar.lake.conflicts import retry_on_conflict

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
    "check_name",
    "replayed_run_id",
]

# Reason codes (the `reason` column); `reason_detail` says what exactly was wrong.
MALFORMED = "malformed_record"
NULL_KEY = "null_primary_key"
NULL_ORDERING = "null_ordering_value"
MISSING_REQUIRED = "missing_required_value"
INVALID_CHANGE = "invalid_change_event"
UNFIT_VALUE = "value_does_not_fit"  # a key/ordering/required value did not fit its declared type (kept in _rescued_data)
BLANK_KEY = "blank_primary_key"  # a key of only whitespace: no record can be told apart by it
ORDERING_OUT_OF_RANGE = "ordering_out_of_range"  # far future or before the earliest: it would win for ever
UNREADABLE_FILE = "unreadable_file"  # a whole landing file Spark could not read (one row for the file)
INVALID_ENCODING = "invalid_encoding"  # bytes that are not valid UTF-8 (read as U+FFFD): never stored as data
FAILED_CHECK = "failed_check"  # a quarantine-severity check of conf/quality/ (check_name says which)


WHOLE_FILE_REASONS = (UNREADABLE_FILE, INVALID_ENCODING)


def is_whole_file(rows: DataFrame) -> Column:
    """True for a whole-file entry (bronze/unreadable.py): its `raw_record` is the file's URI, size and SHA-256
    as JSON, not a record. (A single JSON Lines line that is not UTF-8 has reason invalid_encoding too.)"""
    return (
        (F.col("layer") == "bronze")
        & F.col("reason").isin(*WHOLE_FILE_REASONS)
        & F.get_json_object(F.col("raw_record"), "$.file_uri").isNotNull()
    )


def counts(rows: DataFrame) -> DataFrame:
    """Quarantined rows by table, layer, reason and check: how many, how many replayed, the latest."""
    return (
        rows.groupBy("table", "layer", "reason", "check_name")
        .agg(
            F.count("*").alias("rows"),
            F.count_if(F.col("replayed_run_id").isNotNull()).alias("replayed"),
            F.max("quarantined_at").alias("last_quarantined_at"),
        )
        .orderBy("table", "layer", "reason", "check_name")
    )


def whole_files(rows: DataFrame) -> DataFrame:
    """The whole-file entries, one row per landing file: which file, its size and SHA-256, why, and when."""
    return (
        rows.where(is_whole_file(rows))
        .select(
            "table",
            F.col("landing_file").alias("file"),
            F.get_json_object("raw_record", "$.size").cast("bigint").alias("size"),
            F.col("record_hash").alias("sha256"),
            "reason",
            "reason_detail",
            "run_id",
            "quarantined_at",
        )
        .orderBy("table", "quarantined_at", "file")
    )


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
    check_name: Column | None = None,
) -> DataFrame:
    """Shape rejected records into the quarantine table's columns. `replayed_run_id` starts null and is set
    by `northstar quarantine replay` when the record is re-processed."""

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
        (F.lit(None).cast("string") if check_name is None else check_name).alias("check_name"),
        F.lit(None).cast("string").alias("replayed_run_id"),
    )


def write(
    spark: SparkSession,
    rejected: DataFrame,
    path: str,
    *,
    once: tuple[str, int] | None = None,
    replace_where: str | None = None,
    tag: Tag | None = None,
) -> int | None:
    """Write rejected rows to a quarantine table, so that a retry never writes them twice.

    `replace_where`: replace the rows matching it (a full refresh, or bronze's rows of the same landing files).
    `once` (app id, window version): append once per window with Delta's idempotent writes (txnAppId /
    txnVersion), so a retry of the same window is skipped by Delta. Returns the version written, or None when
    Delta skipped the append because an earlier attempt at this window already wrote it. A commit that loses a
    race with a concurrent writer (a create, the same window's append) is retried: Delta then skips or re-applies it.
    `tag`: the batch's identity, kept in the commit's info (lake/commits.py).
    """
    if (once is None) == (replace_where is None):
        raise ValueError("quarantine.write: pass exactly one of once= or replace_where=")
    writer = rejected.write.format("delta").option("mergeSchema", "true")  # tables from before check_name
    if tag is not None:
        writer = writer.option("userMetadata", tag.text())
    if replace_where is not None:
        writer = writer.mode("overwrite").option("replaceWhere", replace_where)
    elif once is not None:
        app_id, window_version = once
        writer = writer.mode("append").option("txnAppId", app_id).option("txnVersion", window_version)
    before = delta.latest_version(spark, path)
    retry_on_conflict(lambda: writer.save(path), what=f"quarantine {path}")
    version = delta.latest_version(spark, path)
    return None if version == before else version
