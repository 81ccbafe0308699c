"""Small helpers over Delta Lake's own API: does a table exist, its version, what a commit did."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import SparkSession


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
