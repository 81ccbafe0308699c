"""Run a source's layers in order (bronze, then silver) for some or all of its tables."""

from __future__ import annotations

from pyspark.sql import SparkSession

from northstar.bronze.runner import run_bronze
from northstar.config import EnvConfig, SourceSpec
from northstar.ledger import LedgerEntry
from northstar.silver.runner import run_silver

LAYERS = ("bronze", "silver")


def run_source(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    *,
    tables: list[str] | None = None,
    layers: tuple[str, ...] = LAYERS,
    full_refresh: bool = False,
    max_files: int | None = None,
) -> list[LedgerEntry]:
    """Run `layers` for each table; returns the ledger entries in the order they ran."""
    unknown = [t for t in tables or [] if t not in source.tables]
    if unknown:
        raise ValueError(
            f"source {source.name} has no table {', '.join(unknown)} (its tables: {', '.join(source.tables)})"
        )
    entries = []
    for table in tables or list(source.tables):
        if "bronze" in layers:
            entries.append(run_bronze(spark, env, source, table, max_files=max_files))
        if "silver" in layers:
            entries.append(run_silver(spark, env, source, table, full_refresh=full_refresh))
    return entries
