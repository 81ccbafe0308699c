"""Which landing files a table has not ingested yet, and the log (`ops.landing_files`) that remembers them.

A file is known by its URI and by the SHA-256 of its bytes: the same content delivered again under
another name or folder (a partner re-sending a file over SFTP) is logged as a re-delivery of the first
file (`duplicate_of`) and not ingested a second time.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig, TableSpec
from northstar.lake import delta, tables
from northstar.lake.storage import LandingFile, file_sha256, list_landing_files

LOG_SCHEMA = (
    "source string, table_name string, file_uri string, size bigint, modified_ms bigint, "
    "run_id string, ingested_at timestamp, content_sha256 string, duplicate_of string"
)
CHECKSUM_THREADS = 8  # files are hashed by streaming them through Hadoop's FileSystem; S3 reads overlap


def ingested_uris(spark: SparkSession, env: EnvConfig, source: str, table: str) -> set[str]:
    if not delta.table_exists(spark, tables.LANDING_FILES.path(env)):
        return set()
    rows = (
        spark.read.format("delta")
        .load(tables.LANDING_FILES.path(env))
        .where((F.col("source") == source) & (F.col("table_name") == table))
        .select("file_uri")
        .collect()
    )
    return {r["file_uri"] for r in rows}


def pending_files(
    spark: SparkSession, env: EnvConfig, source: str, table: str, spec: TableSpec
) -> list[LandingFile]:
    """Landing files of the table that no earlier run ingested, oldest path first."""
    done = ingested_uris(spark, env, source, table)
    return [
        f
        for f in list_landing_files(spark, tables.landing_folder(env, spec), spec.format)
        if f.uri not in done
    ]


def content_checksums(spark: SparkSession, files: list[LandingFile]) -> dict[str, str]:
    """File URI -> SHA-256 of its bytes."""
    if not files:
        return {}
    with ThreadPoolExecutor(max_workers=min(CHECKSUM_THREADS, len(files))) as pool:
        digests = pool.map(lambda f: file_sha256(spark, f.path), files)
        return {f.uri: digest for f, digest in zip(files, digests, strict=True)}


def ingested_checksums(spark: SparkSession, env: EnvConfig, source: str, table: str) -> dict[str, str]:
    """SHA-256 -> URI of the file first ingested with that content (re-deliveries left out)."""
    if not delta.table_exists(spark, tables.LANDING_FILES.path(env)):
        return {}
    log = spark.read.format("delta").load(tables.LANDING_FILES.path(env))
    if "content_sha256" not in log.columns:  # a log written before checksums were recorded
        return {}
    rows = (
        log.where((F.col("source") == source) & (F.col("table_name") == table))
        .where(F.col("content_sha256").isNotNull() & F.col("duplicate_of").isNull())
        .select("content_sha256", "file_uri")
        .collect()
    )
    return {r["content_sha256"]: r["file_uri"] for r in rows}


def split_redeliveries(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    files: list[LandingFile],
    checksums: dict[str, str],
) -> tuple[list[LandingFile], dict[LandingFile, str]]:
    """(files to ingest, re-delivered file -> URI of the file that first brought its content).

    A file is a re-delivery when an earlier run ingested the same bytes, or when an earlier file of this
    batch (by path) has them.
    """
    first_seen = ingested_checksums(spark, env, source, table)
    fresh, redelivered = [], {}
    for file in files:
        digest = checksums[file.uri]
        if digest in first_seen:
            redelivered[file] = first_seen[digest]
        else:
            first_seen[digest] = file.uri
            fresh.append(file)
    return fresh, redelivered


def record_ingested(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    files: list[LandingFile],
    run_id: str,
    checksums: dict[str, str] | None = None,
    redelivered: dict[LandingFile, str] | None = None,
) -> None:
    """Log the files a run ingested, and the re-deliveries it skipped (with `duplicate_of`), in one commit."""
    now = datetime.now(UTC)
    checksums = checksums or {}
    rows: list[tuple[str, str, str, int, int, str, datetime, str | None, str | None]] = [
        (source, table, f.uri, f.size, f.modified_ms, run_id, now, checksums.get(f.uri), None) for f in files
    ]
    rows += [
        (source, table, f.uri, f.size, f.modified_ms, run_id, now, checksums.get(f.uri), original)
        for f, original in (redelivered or {}).items()
    ]
    (
        spark.createDataFrame(rows, LOG_SCHEMA)
        .write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")  # logs written before checksums were recorded gain the columns
        .save(tables.LANDING_FILES.path(env))
    )


def sql_in_list(values: list[str]) -> str:
    """`'a', 'b'` for a SQL IN (...) predicate, quotes escaped."""
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
