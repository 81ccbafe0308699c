"""Benchmark: bronze and silver throughput and peak JVM heap next to a plain-Spark baseline in the same run.

The baseline reads the same JSON files with `spark.read.json` and writes them to Delta with no checks,
no lineage and no quarantine. The figure that matters is the ratio bronze / baseline (goal: >= 0.8).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pyspark.sql import SparkSession

from northstar.bronze.runner import run_bronze
from northstar.config import EnvConfig, load_source
from northstar.dev.generate.marketplace import generate_feed
from northstar.silver.runner import run_silver
from northstar.spark import get_spark

AVERAGE_VERSIONS_PER_ORDER = 2.5  # the generator sends 1-4 versions of each order


def _heap_pools(spark: SparkSession) -> list:
    management = spark._jvm.java.lang.management.ManagementFactory
    pools = management.getMemoryPoolMXBeans()
    heap = spark._jvm.java.lang.management.MemoryType.HEAP
    return [pools.get(i) for i in range(pools.size()) if pools.get(i).getType().equals(heap)]


def _measure(spark: SparkSession, action: Callable[[], object]) -> tuple[float, int]:
    """Seconds taken and peak JVM heap (bytes, summed over heap pools) while `action` ran."""
    pools = _heap_pools(spark)
    spark._jvm.java.lang.System.gc()
    for pool in pools:
        pool.resetPeakUsage()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    return seconds, sum(pool.getPeakUsage().getUsed() for pool in pools)


def _feed(folder: Path, records: int, files: int) -> tuple[int, int]:
    """Generate (or reuse) the feed; returns (lines, bytes)."""
    marker = folder / "feed.json"
    wanted = {"records": records, "files": files}
    if marker.is_file() and json.loads(marker.read_text()).get("params") == wanted:
        saved = json.loads(marker.read_text())
        return saved["lines"], saved["bytes"]
    shutil.rmtree(folder, ignore_errors=True)
    orders = max(1, int(records / AVERAGE_VERSIONS_PER_ORDER))
    truth = generate_feed(folder, orders=orders, files=files, refund_rate=0.0)
    lines, size = truth.lines["orders"], sum(p.stat().st_size for p in truth.files["orders"])
    shutil.rmtree(folder / "marketplace" / "refunds", ignore_errors=True)
    marker.write_text(json.dumps({"params": wanted, "lines": lines, "bytes": size}))
    return lines, size


def run_bench(out: Path, *, records: int = 200_000, files: int = 8) -> str:
    """Run the benchmark under `out` (the feed is kept between runs; the lakes are reset) and return the report."""
    out = out.resolve()
    feed_dir = out / "feed"
    print(f"generating (or reusing) about {records:,} records in {feed_dir} ...", flush=True)
    lines, size = _feed(feed_dir, records, files)
    for folder in ("lake", "quarantine", "baseline"):
        shutil.rmtree(out / folder, ignore_errors=True)
    os.environ.setdefault("NORTHSTAR_PII_TOKEN_KEY", "bench-only-pii-token-key")  # silver tokenizes PII
    env = EnvConfig(
        name="bench",
        profile="local",
        landing=str(feed_dir),
        lake=str(out / "lake"),
        quarantine=str(out / "quarantine"),
        spark={"spark.driver.memory": os.environ.get("NORTHSTAR_DRIVER_MEMORY", "6g")},
    )
    source = load_source("marketplace")
    spark = get_spark(env, app_name="northstar-bench")
    orders_dir = str(feed_dir / "marketplace" / "orders")
    spark.read.text(orders_dir).count()  # warm the OS page cache and the JIT for every contender alike

    print("baseline: spark.read.json -> Delta ...", flush=True)
    baseline_s, baseline_heap = _measure(
        spark,
        lambda: (
            spark.read.json(orders_dir).write.format("delta").mode("overwrite").save(str(out / "baseline"))
        ),
    )
    print("bronze ...", flush=True)
    results: dict[str, object] = {}
    bronze_s, bronze_heap = _measure(
        spark, lambda: results.update(bronze=run_bronze(spark, env, source, "orders"))
    )
    print("silver ...", flush=True)
    silver_s, silver_heap = _measure(
        spark, lambda: results.update(silver=run_silver(spark, env, source, "orders"))
    )
    bronze, silver = results["bronze"], results["silver"]

    def row(name: str, seconds: float, heap: int, count: int) -> str:
        return (
            f"{name:<10}{seconds:>8.1f}{count / seconds:>12,.0f}{size / 1e6 / seconds:>9.1f}"
            f"{heap / 2**20:>11,.0f}"
        )

    ratio = baseline_s / bronze_s
    return "\n".join(
        [
            "",
            f"benchmark: {lines:,} records, {size / 1e6:,.0f} MB of nested JSON ({size / lines / 1e3:.1f} KB/record), "
            f"{files} files, Spark {spark.version} {spark.conf.get('spark.master')}",
            f"{'step':<10}{'seconds':>8}{'records/s':>12}{'MB/s':>9}{'peak heap MB':>13}",
            row("baseline", baseline_s, baseline_heap, lines),
            row("bronze", bronze_s, bronze_heap, lines),
            row("silver", silver_s, silver_heap, lines),
            "",
            f"bronze / baseline throughput: {ratio:.2f}x (goal >= 0.8x)",
            f"bronze wrote {bronze.records_written:,}, quarantined {bronze.records_quarantined:,}; silver wrote "
            f"{silver.records_written:,}, duplicates {silver.records_duplicate:,}, quarantined {silver.records_quarantined:,}",
            "(silver MB/s is over the same input bytes; it reads bronze, not the JSON)",
        ]
    )


def run_merge_bench(
    out: Path, *, sizes: tuple[int, ...] = (500_000, 2_000_000), changes: int = 20_000
) -> str:
    """Apply the same change batch (updates and inserts in the 3 newest days) to silver tables of
    different sizes, with and without partition pruning, and report events/s. With pruning the
    MERGE's cost follows the rows it touches; without it, the table size."""
    out = out.resolve()
    env = EnvConfig(
        name="bench",
        profile="local",
        landing=str(out / "landing"),
        lake=str(out / "lake"),
        quarantine=str(out / "quarantine"),
    )
    spark = get_spark(env, app_name="northstar-bench-merge")
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from northstar.config import TableSpec
    from northstar.ledger import LedgerEntry
    from northstar.silver.runner import _merge

    days = 100

    def orders(first: int, count: int, version: int, day_offset: int = 0):
        ids = spark.range(first, first + count)
        return ids.select(
            F.format_string("O%09d", "id").alias("order_id"),
            F.date_add(
                F.lit("2026-08-01").cast("date"), ((F.col("id") % days) + day_offset).cast("int")
            ).alias("order_date"),
            (F.lit("2026-11-20 00:00:00").cast("timestamp") + F.make_interval(secs=F.lit(version))).alias(
                "updated_at"
            ),
            F.lit(version).alias("version"),
            (F.col("id") % 997 / 10).cast("decimal(12,2)").alias("amount"),
            F.sha2(F.concat(F.col("id").cast("string"), F.lit(version)), 256).alias("_record_hash"),
        )

    warm_up = str(out / "warm_up")
    shutil.rmtree(warm_up, ignore_errors=True)
    orders(0, 20_000, 1).write.format("delta").partitionBy("order_date").save(warm_up)
    warm_spec = TableSpec(format="parquet", landing="x", primary_key=["order_id"], ordering=["updated_at"])
    warm_entry = LedgerEntry(
        run_id="w", job="bench", env="bench", source="bench", table_name="t", layer="silver"
    )
    _merge(spark, orders(0, 2_000, 2), warm_up, warm_spec, warm_entry, False, "")  # warm-up, not measured

    lines = [
        "",
        f"MERGE benchmark: {changes:,} change events (90% updates, 10% inserts, all in the 3 newest days of "
        f"{days}) applied to silver tables of different sizes",
        f"{'table rows':>12}{'pruning':>9}{'seconds':>9}{'events/s':>11}{'scan s':>10}{'rewritten':>11}",
    ]
    for rows in sizes:
        for pruned in (True, False):
            path = str(out / f"silver_{rows}_{'pruned' if pruned else 'full'}")
            shutil.rmtree(path, ignore_errors=True)
            orders(0, rows, 1).write.format("delta").partitionBy("order_date").save(path)
            spec = TableSpec(
                format="parquet",
                landing="x",
                primary_key=["order_id"],
                ordering=["updated_at"],
                partition_by=["order_date"] if pruned else [],
            )
            recent = orders(0, rows, 2).where(F.col("order_date") >= F.lit("2026-11-06").cast("date"))
            updates = recent.limit(int(changes * 0.9))
            inserts = orders(rows, int(changes * 0.1), 1)
            inserts = inserts.withColumn("order_date", F.lit("2026-11-08").cast("date"))
            batch = updates.unionByName(inserts).localCheckpoint()
            count = batch.count()
            entry = LedgerEntry(
                run_id="bench", job="bench", env="bench", source="bench", table_name="t", layer="silver"
            )
            seconds, _ = _measure(spark, partial(_merge, spark, batch, path, spec, entry, False, ""))
            metrics = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()[0]
            lines.append(
                f"{rows:>12,}{'yes' if pruned else 'no':>9}{seconds:>9.1f}{count / seconds:>11,.0f}"
                f"{int(metrics['scanTimeMs']) / 1000:>10.1f}{metrics['numTargetFilesRemoved']:>11}"
            )
    lines.append(
        "(scan s = Delta's time finding the matching target rows; rewritten = files the MERGE replaced)"
    )
    return "\n".join(lines)
