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
from pathlib import Path

from pyspark.sql import SparkSession

from northstar.bronze import run_bronze
from northstar.config import EnvConfig, load_source
from northstar.generate.marketplace import generate_feed
from northstar.silver import run_silver
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
