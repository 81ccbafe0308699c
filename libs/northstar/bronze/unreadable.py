"""Files of a batch that cannot be read as they are, and their whole-file quarantine entries: one row per file
with its URI, size, checksum and what was wrong, so one bad file never holds back the other files of its table.

Two kinds: a file Spark's reader refuses (a truncated gzip, a record holding both `id` and `ID`), found one by
one after the batch as a whole failed (reason unreadable_file); and a CSV file whose bytes are not valid UTF-8
(reason invalid_encoding), found before reading, because the CSV reader would put U+FFFD in place of those
bytes without a word. (A JSON Lines line that is not valid UTF-8 is quarantined alone: bronze/transforms.py.)

A file is only judged unreadable when it fails on its own; when every file reads alone, the batch's error is
the batch's (e.g. schema drift under `drift: fail`) and is raised as it was.
"""

from __future__ import annotations

import json
from datetime import datetime

from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar import quarantine
from northstar.bronze import transforms as tx
from northstar.bronze.read import count_records, read_batch
from northstar.config import TableSpec
from northstar.lake.storage import LandingFile
from northstar.transforms.schema import SchemaDriftError, conform

# what reading a file can raise: Spark's own errors (analysis, execution) and Py4J's wrapper of a Java one
try:
    from py4j.protocol import Py4JJavaError

    READ_ERRORS: tuple[type[Exception], ...] = (PySparkException, Py4JJavaError)
except ImportError:  # pragma: no cover - py4j ships with pyspark classic
    READ_ERRORS = (PySparkException,)


def summary(error: Exception) -> str:
    """One line saying what Spark refused: its error condition and the first line of its message."""
    if isinstance(error, PySparkException):
        condition = error.getCondition() or type(error).__name__
        message = str(error.getMessage() or error)
    else:  # Py4JJavaError: the Java exception's own message, not the Py4J trace
        java = getattr(error, "java_exception", None)
        condition = java.getClass().getSimpleName() if java is not None else type(error).__name__
        message = str(java.getMessage()) if java is not None else str(error)
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    return f"{condition}: {first}"[:500]


def _reads(
    spark: SparkSession, spec: TableSpec, file: LandingFile, existing: T.StructType | None
) -> str | None:
    """None when the file reads end to end on its own, else why not (one line)."""
    try:
        records, plans = read_batch(spark, spec, [file], existing)
        conform(records, plans, keep=[tx.LANDING_FILE]).write.format("noop").mode("overwrite").save()
        count_records(spark, spec, [file])
    except SchemaDriftError:
        return None  # a contract question, not an unreadable file: the batch's error stands
    except READ_ERRORS as error:
        return summary(error)
    return None


def find_unreadable(
    spark: SparkSession, spec: TableSpec, files: list[LandingFile], existing: T.StructType | None
) -> dict[LandingFile, str]:
    """The files that fail when read alone, each with the one-line reason."""
    found = {}
    for file in files:
        reason = _reads(spark, spec, file, existing)
        if reason is not None:
            found[file] = reason
    return found


def undecodable(spark: SparkSession, spec: TableSpec, files: list[LandingFile]) -> dict[LandingFile, str]:
    """The CSV files whose bytes (decompressed) are not valid UTF-8, each with the one-line reason."""
    if spec.format != "csv" or not files:
        return {}
    by_uri = {f.uri: f for f in files}
    invalid = (
        spark.read.text([f.path for f in files], wholetext=True)
        .where(~F.is_valid_utf8("value"))
        .select(F.col("_metadata.file_path").alias("uri"))
        .collect()
    )
    return {
        by_uri[r.uri]: "bytes that are not valid UTF-8 (the CSV reader would replace them)" for r in invalid
    }


def file_entries(
    spark: SparkSession,
    unreadable: dict[LandingFile, tuple[str, str]],
    checksums: dict[str, str],
    *,
    run_id: str,
    source: str,
    table: str,
    quarantined_at: datetime,
) -> DataFrame:
    """One quarantine row per file (`unreadable`: file -> (reason code, what was wrong)): `raw_record` holds its
    URI, size and SHA-256 as JSON, `record_hash` the SHA-256, `reason_detail` what was wrong and what to do."""
    rows = [
        (
            file.uri,
            code,
            json.dumps({"file_uri": file.uri, "size": file.size, "sha256": checksums.get(file.uri)}),
            checksums.get(file.uri),
            f"{what}; fix or re-deliver the file (the next bronze run reads it again)",
        )
        for file, (code, what) in unreadable.items()
    ]
    frame = spark.createDataFrame(rows, "uri string, reason string, raw string, sha string, detail string")
    return quarantine.quarantine_rows(
        frame,
        run_id=run_id,
        layer="bronze",
        source=source,
        table=table,
        reason=F.col("reason"),
        reason_detail=F.col("detail"),
        raw_record=F.col("raw"),
        landing_file=F.col("uri"),
        record_hash=F.col("sha"),
        quarantined_at=F.lit(quarantined_at).cast("timestamp"),
    )
