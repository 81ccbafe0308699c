"""Which landing files a table has not ingested yet, and the log (`ops.landing_files`) that remembers them."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from northstar import delta
from northstar.config import EnvConfig, TableSpec
from northstar.storage import LandingFile, list_landing_files

LOG_SCHEMA = (
    "source string, table_name string, file_uri string, size bigint, modified_ms bigint, "
    "run_id string, ingested_at timestamp"
)


def ingested_uris(spark: SparkSession, env: EnvConfig, source: str, table: str) -> set[str]:
    if not delta.table_exists(spark, env.landing_log_path):
        return set()
    rows = (
        spark.read.format("delta")
        .load(env.landing_log_path)
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
    return [f for f in list_landing_files(spark, env.landing_path(spec), spec.format) if f.uri not in done]


def record_ingested(
    spark: SparkSession, env: EnvConfig, source: str, table: str, files: list[LandingFile], run_id: str
) -> None:
    now = datetime.now(UTC)
    rows = [(source, table, f.uri, f.size, f.modified_ms, run_id, now) for f in files]
    spark.createDataFrame(rows, LOG_SCHEMA).write.format("delta").mode("append").save(env.landing_log_path)


def sql_in_list(values: list[str]) -> str:
    """`'a', 'b'` for a SQL IN (...) predicate, quotes escaped."""
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
