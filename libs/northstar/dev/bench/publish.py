"""Benchmark: the warehouse publish (fakesnow as the warehouse, the bulk loader through a local stage folder).

For each table size (a generated gold.fact_orders of N rows over 365 day partitions, change feed on):
- the full load of the whole table (first publish): seconds and rows/s;
- the same change (`--changed` rows updated, in the newest 10 days) published incrementally: seconds,
  and the ratio of the largest table's to the smallest's (cost follows changed rows, not table size: <= 2x);
- a noop publish (nothing changed since): seconds.
Then the Python-connector loader (the old default) on `--python-rows` rows of the same table next to the bulk
rows/s of the smallest full load (it moves ~60-130 rows/s, so a 1M-row run of it would take hours), and a noop
`publish_all` of every gold table (small stand-ins of each, already published).

All figures come from one run on one machine: compare them with each other, not with another machine's.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig
from northstar.config.env import SnowflakeSpec
from northstar.gold.tables import GOLD
from northstar.lake import delta
from northstar.spark import get_spark
from northstar.warehouse import ddl, loaders
from northstar.warehouse.connection import connect, execute
from northstar.warehouse.publish import PublishResult, publish_all, publish_table, staging_name

FACT = GOLD["fact_orders"]
DAYS = 365
RECENT_DAYS = 10  # where the changed rows are: late updates land on recent days


def _env(folder: Path) -> EnvConfig:
    spec = SnowflakeSpec(
        mode="fakesnow", account="local", database="NORTHSTAR", warehouse="BENCH", role="PUBLISHER",
        user="env:USER", password="env:NORTHSTAR_SNOWFLAKE_PASSWORD", fakesnow_path=str(folder / "snowflake"),
    )  # fmt: skip
    return EnvConfig(
        name="bench", profile="local", landing=str(folder / "landing"), lake=str(folder / "lake"),
        quarantine=str(folder / "quarantine"), snowflake=spec,
    )  # fmt: skip


def _orders(spark: SparkSession, rows: int) -> DataFrame:
    """`rows` fact_orders-shaped rows (key, day, currency, amount, status, times) over DAYS days."""
    n = F.col("id")
    return spark.range(rows).select(
        F.lit("shop").alias("source_system"),
        F.concat(F.lit("o"), n.cast("string")).alias("order_id"),
        F.date_add(F.lit("2025-01-01").cast("date"), (n % DAYS).cast("int")).alias("order_date"),
        F.element_at(F.array(F.lit("EUR"), F.lit("USD"), F.lit("GBP")), (n % 3 + 1).cast("int")).alias(
            "currency"
        ),
        ((n % 10_000) / 100 + 1).cast("decimal(18,2)").alias("total_amount"),
        F.lit("paid").alias("status"),
        F.concat(F.lit("customer-token-"), (n % 50_000).cast("string")).alias("customer_token"),
        F.timestamp_seconds(F.lit(1_735_689_600) + n % (DAYS * 86_400)).alias("created_at"),
    )


def _timed(action: Callable[[], PublishResult]) -> tuple[float, PublishResult]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def _size_line(spark: SparkSession, folder: Path, rows: int, changed: int) -> tuple[str, float]:
    env = _env(folder)
    assert env.snowflake is not None
    Path(env.snowflake.fakesnow_path or "").mkdir(parents=True, exist_ok=True)
    path = FACT.table.path(env)
    _orders(spark, rows).write.format("delta").partitionBy("order_date").option(
        delta.CHANGE_FEED, "true"
    ).save(path)
    with connect(env.snowflake) as conn:
        full_s, full = _timed(lambda: publish_table(spark, env, conn, FACT, run_id="bench-full", version=0))
        # late refunds: the same number of rows at every size, in the newest RECENT_DAYS days (row id = day index
        # + DAYS * j, so `changed / RECENT_DAYS` values of j per day)
        n = "CAST(substring(order_id, 2) AS BIGINT)"
        DeltaTable.forPath(spark, path).update(
            f"{n} % {DAYS} >= {DAYS - RECENT_DAYS} AND {n} DIV {DAYS} < {changed // RECENT_DAYS}",
            {"status": "'refunded'"},
        )
        version = delta.current_version(spark, path)
        inc_s, inc = _timed(
            lambda: publish_table(spark, env, conn, FACT, run_id="bench-inc", version=version)
        )
        noop_s, noop = _timed(
            lambda: publish_table(spark, env, conn, FACT, run_id="bench-noop", version=version)
        )
    if not (full.reconciled and inc.reconciled):
        raise RuntimeError("the benchmark's publish did not reconcile: see ops.warehouse_reconciliation")
    line = (
        f"{rows:>12,}{full_s:>9.1f}{rows / full_s:>11,.0f}{inc.upserted:>10,}{inc_s:>9.1f}"
        f"{len({d.partition for d in inc.differences}):>8}{noop_s:>8.1f}  {noop.mode}"
    )
    return line, inc_s


def _python_loader_line(spark: SparkSession, folder: Path, rows: int, bulk_rows_per_s: float) -> str:
    """The Python loader into a staging table of the same shape, on `rows` rows."""
    env = _env(folder)
    assert env.snowflake is not None
    frame = spark.read.format("delta").load(FACT.table.path(env)).limit(rows)
    columns = ddl.columns_of(frame.schema)
    with connect(env.snowflake) as conn:
        staging = f"NORTHSTAR.ANALYTICS.{staging_name('fact_orders', 'bench-python')}"
        execute(conn, ddl.create_table(staging, columns, replace=True))
        started = time.perf_counter()
        loaders.python_load(conn, env.snowflake, frame, staging, columns)
        seconds = time.perf_counter() - started
        execute(conn, f"DROP TABLE {staging}")
    rate = rows / seconds
    return (
        f"python loader: {rows:,} rows in {seconds:.1f} s = {rate:,.0f} rows/s; bulk full load "
        f"{bulk_rows_per_s:,.0f} rows/s = {bulk_rows_per_s / rate:,.0f}x"
    )


def _noop_all_line(spark: SparkSession, folder: Path) -> str:
    """Every gold table (a small stand-in of its key, day and amount columns) published once, then the timed
    `publish_all` with nothing changed: what an idle cycle's publish costs (ledger rows, leases, warehouse reads)."""
    env = _env(folder)
    assert env.snowflake is not None
    Path(env.snowflake.fakesnow_path or "").mkdir(parents=True, exist_ok=True)
    for table in GOLD.values():
        columns = [F.lit("k").alias(k) for k in table.key if k != table.partition]
        if table.partition:
            columns.append(
                F.date_add(F.lit("2025-01-01").cast("date"), (F.col("id") % 30).cast("int")).alias(
                    table.partition
                )
            )
        columns += [F.lit(1).cast("decimal(18,2)").alias(a) for a in table.amounts]
        frame = spark.range(1_000).select(*columns, F.col("id").cast("string").alias("row_id"))
        key_frame = (
            frame.withColumn(table.key[-1], F.col("row_id")) if table.key[-1] != table.partition else frame
        )
        writer = key_frame.drop("row_id").write.format("delta").option(delta.CHANGE_FEED, "true")
        writer.save(table.table.path(env))
    versions = dict.fromkeys(GOLD, 0)
    with connect(env.snowflake) as conn:
        publish_all(spark, env, conn, run_id="bench-all-first", versions=versions)
        started = time.perf_counter()
        results = publish_all(spark, env, conn, run_id="bench-all-noop", versions=versions)
        seconds = time.perf_counter() - started
    modes = sorted({r.mode for r in results})
    return f"noop publish of all {len(results)} gold tables: {seconds:.1f} s (modes: {', '.join(modes)})"


def run_publish_bench(
    out: Path,
    *,
    sizes: tuple[int, ...] = (1_000_000, 10_000_000),
    changed: int = 10_000,
    python_rows: int = 5_000,
) -> str:
    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    os.environ.setdefault("NORTHSTAR_SNOWFLAKE_PASSWORD", "not-used-by-fakesnow")
    spark = get_spark(_env(out / "session"), app_name="northstar-bench-publish")
    lines = [
        "",
        f"publish benchmark: gold.fact_orders of N rows over {DAYS} days into fakesnow, bulk loader (Parquet on a "
        f"local stage + COPY INTO); the same {changed:,} rows changed (newest {RECENT_DAYS} days) at every size; load average "
        f"{os.getloadavg()[0]:.1f}",
        f"{'table rows':>12}{'full s':>9}{'rows/s':>11}{'changed':>10}{'incr s':>9}{'parts':>8}{'noop s':>8}",
    ]
    _size_line(spark, out / "warm-up", 1_000, 100)  # JVM, Delta and fakesnow start-up: not reported
    incremental = []
    for rows in sizes:
        line, inc_s = _size_line(spark, out / f"rows-{rows}", rows, changed)
        lines.append(line)
        incremental.append(inc_s)
    first_full = lines[3].split()
    lines.append(
        f"incremental publish, largest table / smallest: {incremental[-1] / incremental[0]:.2f}x "
        f"(table {sizes[-1] / sizes[0]:.0f}x larger; target <= 2x)"
    )
    bulk_rate = float(first_full[2].replace(",", ""))
    lines.append(_python_loader_line(spark, out / f"rows-{sizes[0]}", python_rows, bulk_rate))
    lines.append(_noop_all_line(spark, out / "all-tables"))
    lines.append(f"load average at the end {os.getloadavg()[0]:.1f}")
    return "\n".join(lines)
