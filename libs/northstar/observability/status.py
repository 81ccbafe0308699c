"""Freshness and lag per table from the run ledger (ops.run_ledger): what `northstar status` prints.

freshness = now - the last successful (or no-op) run's window end, or its end time when the run has no window:
how old the newest data a layer has caught up to is. lag = how far a layer's last success is behind its
upstream layer's (extract -> bronze -> silver -> models); the first layer has no lag.
A pure DataFrame -> DataFrame function: reading the ledger is the caller's job.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from northstar.ledger import NOOP, SUCCESS

LAYER_ORDER = ("extract", "bronze", "silver", "models", "checks", "gold", "publish", "reconcile")


def table_status(ledger_rows: DataFrame, now: datetime, freshness_minutes: int) -> DataFrame:
    """One row per (source, table_name, layer): last success, freshness and lag in minutes, breach flag."""
    caught_up = F.coalesce(F.col("window_end"), F.col("ended_at"))
    ok = F.col("status").isin(SUCCESS, NOOP)
    per_layer = ledger_rows.groupBy("source", "table_name", "layer").agg(
        F.max(F.when(ok, caught_up)).alias("last_success"),
        F.max("started_at").alias("last_run"),
        F.max_by("status", "started_at").alias("last_status"),
        F.sum(F.when(F.col("status") == "failed", 1).otherwise(0)).alias("failed_runs"),
    )
    order = F.array_position(F.array(*[F.lit(x) for x in LAYER_ORDER]), F.col("layer"))
    upstream = Window.partitionBy("source", "table_name").orderBy(order)
    minutes = lambda later, earlier: (F.unix_timestamp(later) - F.unix_timestamp(earlier)) / 60.0  # noqa: E731
    return (
        per_layer.withColumn("_order", order)
        .withColumn("_upstream_success", F.lag("last_success").over(upstream))
        .withColumn(
            "freshness_minutes", F.round(minutes(F.lit(now).cast("timestamp"), F.col("last_success")), 1)
        )
        .withColumn(
            "lag_minutes",
            # greatest() skips NULLs: no upstream success (or none here) must stay NULL, not 0
            F.when(
                F.col("_upstream_success").isNotNull() & F.col("last_success").isNotNull(),
                F.round(
                    F.greatest(F.lit(0.0), minutes(F.col("_upstream_success"), F.col("last_success"))), 1
                ),
            ),
        )
        .withColumn(
            "breach",
            F.col("last_success").isNull() | (F.col("freshness_minutes") > F.lit(float(freshness_minutes))),
        )
        .orderBy("source", "table_name", "_order")
        .drop("_order", "_upstream_success")
    )
