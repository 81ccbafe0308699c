"""Bronze transforms: raw landing records -> parsed records with lineage columns, and rejects -> quarantine rows.

All functions take and return DataFrames; reading and writing happen in `northstar.bronze`.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar import quarantine
from northstar.transforms.schema import RESCUED

RAW = "_raw_record"
CORRUPT = "_corrupt_record"
LANDING_FILE = "_landing_file"
RECORD_HASH = "_record_hash"

# Lineage columns every bronze row carries, after its data columns. `_corrupt_record` holds the raw text
# of a record that could not be parsed (its data columns are null); silver never reads those rows.
LINEAGE_COLUMNS = [
    "_source",
    LANDING_FILE,
    "_run_id",
    "_ingest_time",
    "_ingest_date",
    RECORD_HASH,
    RESCUED,
    CORRUPT,
    "_pan_redacted",  # a card number was removed from the record before it was stored
]


def non_blank_lines(lines: DataFrame) -> DataFrame:
    """Drop empty and whitespace-only lines: they are not records (JSON readers skip them too)."""
    return lines.where(F.trim(F.col(RAW)) != "")


def parse_json_lines(lines: DataFrame, schema: T.StructType) -> DataFrame:
    """Parse the `_raw_record` column as JSON with `schema`; lines that are not a JSON object, or whose bytes are
    not valid UTF-8, get `_corrupt_record` (their raw text, byte for byte) and null data columns.

    Spark keeps a text line's bytes as they were delivered, but any value parsed out of it would carry U+FFFD
    in place of the bytes it could not decode: a silent change, so such a line is never parsed into data.
    `schema` should be inferred from the same batch, so a parsed line never fails on a type: every value
    fits and only malformed lines are flagged.
    """
    parse_schema = T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType(), True)])
    parsed = lines.select(
        F.from_json(
            F.col(RAW), parse_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
        ).alias("_parsed"),
        *lines.columns,
    )
    decodes = F.is_valid_utf8(F.col(RAW))
    return parsed.select(
        *[F.when(decodes, F.col(f"_parsed.`{f.name}`")).alias(f.name) for f in schema.fields],
        F.when(decodes, F.col(f"_parsed.{CORRUPT}")).otherwise(F.col(RAW)).alias(CORRUPT),
        *lines.columns,
    )


def hash_raw_record(frame: DataFrame) -> DataFrame:
    """`_record_hash`: SHA-256 of the record exactly as delivered; identical deliveries share it."""
    return frame.withColumn(RECORD_HASH, F.sha2(F.col(RAW), 256))


def hash_columns(frame: DataFrame, columns: list[str]) -> DataFrame:
    """`_record_hash` for sources with no raw text (CSV, Parquet): SHA-256 of the record's values as JSON."""
    return frame.withColumn(
        RECORD_HASH, F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in columns])), 256)
    )


def is_corrupt(frame: DataFrame) -> F.Column:
    return F.col(CORRUPT).isNotNull() if CORRUPT in frame.columns else F.lit(False)


def add_lineage(frame: DataFrame, *, source: str, run_id: str, ingest_time: datetime) -> DataFrame:
    """Add `_source`, `_run_id`, `_ingest_time` and `_ingest_date` (the bronze partition)."""
    ingest_ts = F.lit(ingest_time).cast("timestamp")
    return (
        frame.withColumn("_source", F.lit(source))
        .withColumn("_run_id", F.lit(run_id))
        .withColumn("_ingest_time", ingest_ts)
        .withColumn("_ingest_date", F.to_date(ingest_ts))
    )


def corrupt_to_quarantine(
    rejected: DataFrame, *, run_id: str, source: str, table: str, file_format: str, quarantined_at: datetime
) -> DataFrame:
    """Quarantine rows for records that could not be parsed at all, with the raw text (reason malformed_record),
    or whose bytes are not valid UTF-8 (reason invalid_encoding, the exact bytes base64-encoded in `raw_record`)."""
    decodes = F.is_valid_utf8(F.col(CORRUPT))
    return quarantine.quarantine_rows(
        rejected,
        run_id=run_id,
        layer="bronze",
        source=source,
        table=table,
        reason=F.when(decodes, F.lit(quarantine.MALFORMED)).otherwise(F.lit(quarantine.INVALID_ENCODING)),
        reason_detail=F.when(decodes, F.lit(f"not a valid {file_format} record")).otherwise(
            F.lit(
                "bytes that are not valid UTF-8: raw_record holds the record's exact bytes, base64-encoded; "
                "fix the encoding at the source and re-deliver the file"
            )
        ),
        raw_record=F.when(decodes, F.col(CORRUPT)).otherwise(F.base64(F.col(CORRUPT).cast("binary"))),
        landing_file=F.col(LANDING_FILE),
        record_hash=F.col(RECORD_HASH),
        quarantined_at=F.lit(quarantined_at).cast("timestamp"),
    )
