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
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.bronze.runner import run_bronze
from northstar.config import EnvConfig, TableSpec, load_source
from northstar.dev.generate.marketplace import generate_feed
from northstar.lake import tables
from northstar.lake.tables import Table
from northstar.ledger import LedgerEntry
from northstar.silver.merge import merge_latest
from northstar.silver.runner import run_silver
from northstar.spark import get_spark

AVERAGE_VERSIONS_PER_ORDER = 2.5  # the generator sends 1-4 versions of each order


def _jvm(spark: SparkSession) -> Any:
    """The driver's py4j JVM view (None only on a Spark Connect session, which the benchmark never uses)."""
    jvm = spark._jvm
    assert jvm is not None, "the benchmark needs a classic (py4j) Spark session"
    return jvm


def _heap_pools(spark: SparkSession) -> list:
    management = _jvm(spark).java.lang.management.ManagementFactory
    pools = management.getMemoryPoolMXBeans()
    heap = _jvm(spark).java.lang.management.MemoryType.HEAP
    return [pools.get(i) for i in range(pools.size()) if pools.get(i).getType().equals(heap)]


def _measure(spark: SparkSession, action: Callable[[], object]) -> tuple[float, int]:
    """Seconds taken and peak JVM heap (bytes, summed over heap pools) while `action` ran."""
    pools = _heap_pools(spark)
    _jvm(spark).java.lang.System.gc()
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


def _bench_env(out: Path, feed_dir: Path) -> EnvConfig:
    for folder in ("lake", "quarantine", "baseline"):
        shutil.rmtree(out / folder, ignore_errors=True)
    os.environ.setdefault("NORTHSTAR_PII_TOKEN_KEY", "bench-only-pii-token-key")  # silver tokenizes PII
    return EnvConfig(
        name="bench",
        profile="local",
        landing=str(feed_dir),
        lake=str(out / "lake"),
        quarantine=str(out / "quarantine"),
        spark={"spark.driver.memory": os.environ.get("NORTHSTAR_DRIVER_MEMORY", "6g")},
    )


@dataclass(frozen=True)
class _Step:
    """One measured contender: seconds, peak heap (bytes) and the records it handled."""

    name: str
    seconds: float
    heap: int
    count: int

    def row(self, size: int) -> str:
        return (
            f"{self.name:<10}{self.seconds:>8.1f}{self.count / self.seconds:>12,.0f}"
            f"{size / 1e6 / self.seconds:>9.1f}{self.heap / 2**20:>11,.0f}"
        )


def _report(
    spark: SparkSession,
    lines: int,
    size: int,
    files: int,
    steps: list[_Step],
    bronze: LedgerEntry,
    silver: LedgerEntry,
) -> str:
    baseline, bronze_step = steps[0], steps[1]
    ratio = baseline.seconds / bronze_step.seconds
    return "\n".join(
        [
            "",
            f"benchmark: {lines:,} records, {size / 1e6:,.0f} MB of nested JSON ({size / lines / 1e3:.1f} KB/record), "
            f"{files} files, Spark {spark.version} {spark.conf.get('spark.master')}",
            f"{'step':<10}{'seconds':>8}{'records/s':>12}{'MB/s':>9}{'peak heap MB':>13}",
            *(step.row(size) for step in steps),
            "",
            f"bronze / baseline throughput: {ratio:.2f}x (goal >= 0.8x)",
            f"bronze wrote {bronze.records_written:,}, quarantined {bronze.records_quarantined:,}; silver wrote "
            f"{silver.records_written:,}, duplicates {silver.records_duplicate:,}, quarantined {silver.records_quarantined:,}",
            "(silver MB/s is over the same input bytes; it reads bronze, not the JSON)",
        ]
    )


def run_bench(out: Path, *, records: int = 200_000, files: int = 8) -> str:
    """Run the benchmark under `out` (the feed is kept between runs; the lakes are reset) and return the report."""
    out = out.resolve()
    feed_dir = out / "feed"
    print(f"generating (or reusing) about {records:,} records in {feed_dir} ...", flush=True)
    lines, size = _feed(feed_dir, records, files)
    env = _bench_env(out, feed_dir)
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
    results: dict[str, LedgerEntry] = {}
    bronze_s, bronze_heap = _measure(
        spark, lambda: results.update(bronze=run_bronze(spark, env, source, "orders"))
    )
    print("silver ...", flush=True)
    silver_s, silver_heap = _measure(
        spark, lambda: results.update(silver=run_silver(spark, env, source, "orders"))
    )
    steps = [
        _Step("baseline", baseline_s, baseline_heap, lines),
        _Step("bronze", bronze_s, bronze_heap, lines),
        _Step("silver", silver_s, silver_heap, lines),
    ]
    return _report(spark, lines, size, files, steps, results["bronze"], results["silver"])


MERGE_DAYS = 100


def _bench_orders(spark: SparkSession, first: int, count: int, version: int) -> DataFrame:
    """`count` orders from id `first`, spread over MERGE_DAYS days from 2026-08-01, at `version`."""
    ids = spark.range(first, first + count)
    return ids.select(
        F.format_string("O%09d", "id").alias("order_id"),
        F.date_add(F.lit("2026-08-01").cast("date"), (F.col("id") % MERGE_DAYS).cast("int")).alias(
            "order_date"
        ),
        (F.lit("2026-11-20 00:00:00").cast("timestamp") + F.make_interval(secs=F.lit(version))).alias(
            "updated_at"
        ),
        F.lit(version).alias("version"),
        (F.col("id") % 997 / 10).cast("decimal(12,2)").alias("amount"),
        F.sha2(F.concat(F.col("id").cast("string"), F.lit(version)), 256).alias("_record_hash"),
    )


def _bench_entry(run_id: str) -> LedgerEntry:
    return LedgerEntry(
        run_id=run_id, job="bench", env="bench", source="bench", table_name="t", layer="silver"
    )


def _bench_merge(
    spark: SparkSession, env: EnvConfig, batch: DataFrame, table: Table, spec: TableSpec, run_id: str
) -> None:
    """MERGE `batch` into `table` as silver does (no change feed: the tombstones table is never used)."""
    merge_latest(
        spark,
        env,
        batch,
        table,
        spec,
        _bench_entry(run_id),
        full_refresh=False,
        tombstones=tables.tombstones("bench", table.name),
    )


def _warm_up_merge(spark: SparkSession, env: EnvConfig) -> None:
    """One small MERGE before the measured ones (JIT, Delta's caches); not measured."""
    table = Table("silver", "bench_warm_up", "warm_up")
    shutil.rmtree(table.path(env), ignore_errors=True)
    _bench_orders(spark, 0, 20_000, 1).write.format("delta").partitionBy("order_date").save(table.path(env))
    warm_spec = TableSpec(format="parquet", landing="x", primary_key=["order_id"], ordering=["updated_at"])
    _bench_merge(spark, env, _bench_orders(spark, 0, 2_000, 2), table, warm_spec, "w")


def _merge_line(spark: SparkSession, env: EnvConfig, rows: int, changes: int, *, pruned: bool) -> str:
    """Build a `rows`-row silver table, MERGE `changes` events into it, and report one result line."""
    kind = "pruned" if pruned else "full"
    table = Table("silver", f"bench_{rows}_{kind}", f"silver_{rows}_{kind}")
    path = table.path(env)
    shutil.rmtree(path, ignore_errors=True)
    _bench_orders(spark, 0, rows, 1).write.format("delta").partitionBy("order_date").save(path)
    spec = TableSpec(
        format="parquet",
        landing="x",
        primary_key=["order_id"],
        ordering=["updated_at"],
        partition_by=["order_date"] if pruned else [],
    )
    recent = _bench_orders(spark, 0, rows, 2).where(F.col("order_date") >= F.lit("2026-11-06").cast("date"))
    updates = recent.limit(int(changes * 0.9))
    inserts = _bench_orders(spark, rows, int(changes * 0.1), 1)
    inserts = inserts.withColumn("order_date", F.lit("2026-11-08").cast("date"))
    batch = updates.unionByName(inserts).localCheckpoint()
    count = batch.count()
    seconds, _ = _measure(spark, partial(_bench_merge, spark, env, batch, table, spec, "bench"))
    last = DeltaTable.forPath(spark, path).history(1).select("operationMetrics").first()
    assert last is not None, f"{path} has no history after the MERGE"
    metrics = last[0]
    return (
        f"{rows:>12,}{'yes' if pruned else 'no':>9}{seconds:>9.1f}{count / seconds:>11,.0f}"
        f"{int(metrics['scanTimeMs']) / 1000:>10.1f}{metrics['numTargetFilesRemoved']:>11}"
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
        lake=str(out),
        quarantine=str(out / "quarantine"),
    )
    spark = get_spark(env, app_name="northstar-bench-merge")
    _warm_up_merge(spark, env)
    lines = [
        "",
        f"MERGE benchmark: {changes:,} change events (90% updates, 10% inserts, all in the 3 newest days of "
        f"{MERGE_DAYS}) applied to silver tables of different sizes",
        f"{'table rows':>12}{'pruning':>9}{'seconds':>9}{'events/s':>11}{'scan s':>10}{'rewritten':>11}",
    ]
    for rows in sizes:
        for pruned in (True, False):
            lines.append(_merge_line(spark, env, rows, changes, pruned=pruned))
    lines.append(
        "(scan s = Delta's time finding the matching target rows; rewritten = files the MERGE replaced)"
    )
    return "\n".join(lines)
