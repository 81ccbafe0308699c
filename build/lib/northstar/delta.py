"""Small helpers over Delta Lake's own API: does a table exist, its version, what a commit did, its change feed."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

CDF_COLUMNS = ["_change_type", "_commit_version", "_commit_timestamp"]


def table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The table's current version, or None when there is no table yet."""
    if not table_exists(spark, path):
        return None
    return DeltaTable.forPath(spark, path).history(1).select("version").first()["version"]


def commit_metrics(spark: SparkSession, path: str, version: int) -> dict[str, int]:
    """operationMetrics of one commit, as integers (Delta records them as strings)."""
    row = (
        DeltaTable.forPath(spark, path)
        .history()
        .where(f"version = {int(version)}")
        .select("operationMetrics")
        .first()
    )
    metrics = (row["operationMetrics"] if row else None) or {}
    return {k: int(v) for k, v in metrics.items() if str(v).lstrip("-").isdigit()}


def read_changes(
    spark: SparkSession, path: str, start: int, end: int, change_types: tuple[str, ...] = ("insert",)
) -> DataFrame:
    """Rows of the given change types committed in versions start..end (inclusive), from the table's change
    data feed, without the feed's own columns."""
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", start)
        .option("endingVersion", end)
        .load(path)
        .where(F.col("_change_type").isin(*change_types))
        .drop(*CDF_COLUMNS)
    )
