"""Benchmark of the event stream: events/s per core through bronze and through silver + sessions + minute
aggregates, as a ratio to a plain-Spark baseline measured in the same run, and the end-to-end latency
(event time -> row visible in gold.<source>_minute) under the processingTime trigger.

Baseline: `spark.read.json` of the same files written to Delta in one batch, with no parsing contract,
lineage, quarantine, dedup or sessions. The EMR Serverless estimate divides the brief's 120K events/s peak by
the measured per-core rate of the whole path.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from northstar.config import ConfigError, EnvConfig, SourceSpec, StreamSpec, load_source
from northstar.dev.simulate.events import make_batch, write_firehose_file
from northstar.lake import delta, tables
from northstar.spark import get_spark
from northstar.streaming import run

PEAK_EVENTS_PER_SECOND = 120_000  # shared/seeds/003
EMR_WORKER_VCPU = 4  # an EMR Serverless worker of 4 vCPU / 16 GB


def _feed(landing: Path, prefix: str, events: int, per_file: int = 10_000) -> int:
    """Write (or reuse) `events` lines in Firehose files; returns the number of lines."""
    marker = landing / f"_events_{events}"
    if marker.is_file():
        return int(marker.read_text())
    shutil.rmtree(landing, ignore_errors=True)
    rng, lines, start = random.Random(11), 0, datetime(2026, 11, 20, 10, tzinfo=UTC)
    for n in range(math.ceil(events / per_file)):
        batch = make_batch(
            rng, min(per_file, events - n * per_file), start + timedelta(minutes=n), users=20_000
        )
        write_firehose_file(landing, prefix, batch.lines, start + timedelta(minutes=n), n)
        lines += len(batch.lines)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(lines))
    return lines


def _stream_spec(source: SourceSpec) -> StreamSpec:
    if source.stream is None:
        raise ConfigError(f"sources/{source.name}.yaml: the stream benchmark needs its stream: section")
    return source.stream


def _newest_minute_event(spark: SparkSession, env: EnvConfig, source: SourceSpec) -> datetime | None:
    """The newest event time gold.<source>_minute holds (None before its first row)."""
    row = (
        spark.read.format("delta")
        .load(tables.stream_minutes(source.name).path(env))
        .agg(F.max("max_event_time"))
        .first()
    )
    return row[0] if row is not None else None


def _probe_latency(spark: SparkSession, env: EnvConfig, source: SourceSpec, seconds: int) -> list[float]:
    """Run both queries with the processingTime trigger; once a second write a file whose newest event is
    'now'; return, per file, seconds from that event time until gold.<source>_minute shows it."""
    stream = _stream_spec(source)
    prefix = source.tables[stream.table].landing
    bronze = run.start_bronze(spark, env, source, run.PROCESSING_TIME, tag="latency")
    pending: list[datetime] = []
    stop = threading.Event()

    def produce() -> None:
        rng, n = random.Random(5), 0
        while not stop.is_set():
            now = datetime.now(UTC)
            batch = make_batch(rng, 200, now, late_rate=0.0, malformed_rate=0.0)
            probe = now.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            line = f'{{"event_id":"probe-{n}","event_time":"{probe}","event_type":"page_view","device_id":"probe"}}'
            write_firehose_file(env.landing, prefix, [*batch.lines, line], now, 10_000_000 + n)
            pending.append(now.replace(microsecond=now.microsecond // 1000 * 1000))
            n += 1
            time.sleep(1.0)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    while not delta.table_exists(
        spark, tables.bronze(source.name, stream.table).path(env)
    ):  # query 2 reads bronze: wait for it
        time.sleep(0.5)
    silver = run.start_silver(spark, env, source, run.PROCESSING_TIME, tag="latency")
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline or (pending and time.monotonic() < deadline + 120):
            if time.monotonic() >= deadline:
                stop.set()
            if delta.table_exists(spark, tables.stream_minutes(source.name).path(env)):
                newest = _newest_minute_event(spark, env, source)
                seen = datetime.now(UTC)
                while newest and pending and pending[0].replace(tzinfo=None) <= newest:
                    latencies.append((seen - pending.pop(0)).total_seconds())
            time.sleep(0.5)
    finally:
        stop.set()
        for query in (bronze, silver):
            query.stop()
    return latencies


def _bench_env(out: Path, feed: Path) -> EnvConfig:
    for folder in ("lake", "quarantine", "baseline", "latency"):
        shutil.rmtree(out / folder, ignore_errors=True)
    return EnvConfig(
        name="bench",
        profile="local",
        landing=str(feed),
        lake=str(out / "lake"),
        quarantine=str(out / "quarantine"),
        spark={"spark.driver.memory": os.environ.get("NORTHSTAR_DRIVER_MEMORY", "4g")},
    )


def _throughput(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, files: list[str], baseline_path: str
) -> tuple[float, float, float]:
    """Seconds for the baseline, the bronze stream and the silver stream (availableNow), in that order."""
    started = time.perf_counter()
    spark.read.json(files).write.format("delta").save(baseline_path)
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    run.start_bronze(spark, env, source, run.AVAILABLE_NOW).awaitTermination()
    bronze = time.perf_counter() - started
    started = time.perf_counter()
    run.start_silver(spark, env, source, run.AVAILABLE_NOW).awaitTermination()
    silver = time.perf_counter() - started
    return baseline, bronze, silver


def _stream_report(
    lines: int,
    files: int,
    cores: int,
    timings: tuple[float, float, float],
    latencies: list[float],
    trigger_interval: str,
) -> str:
    baseline, bronze, silver = timings

    def rate(seconds: float) -> float:
        return lines / seconds / cores

    path_rate = lines / (bronze + silver) / cores
    cores_needed = PEAK_EVENTS_PER_SECOND / path_rate
    workers = math.ceil(cores_needed / EMR_WORKER_VCPU)
    report = [
        f"stream benchmark: {lines:,} event lines in {files} Firehose files, {cores} cores (local[*]), load average {os.getloadavg()[0]:.1f} at start",
        f"  baseline (read.json -> Delta)   {baseline:7.1f} s  {rate(baseline):9,.0f} events/s/core  1.00",
        f"  bronze stream (availableNow)    {bronze:7.1f} s  {rate(bronze):9,.0f} events/s/core  "
        f"{baseline / bronze:.2f} x baseline",
        f"  silver + sessions + minutes     {silver:7.1f} s  {rate(silver):9,.0f} events/s/core  "
        f"{baseline / silver:.2f} x baseline",
        f"  whole path                      {bronze + silver:7.1f} s  {path_rate:9,.0f} events/s/core",
    ]
    if latencies:
        report.append(
            f"  end-to-end latency (event time -> gold minute row), trigger {trigger_interval}: "
            f"median {statistics.median(latencies):.1f} s, max {max(latencies):.1f} s over {len(latencies)} probes"
        )
    report.append(
        f"  EMR Serverless for {PEAK_EVENTS_PER_SECOND:,} events/s: {PEAK_EVENTS_PER_SECOND:,} / {path_rate:,.0f} "
        f"per core = {cores_needed:,.0f} cores = {workers} workers of {EMR_WORKER_VCPU} vCPU (before headroom)"
    )
    return "\n".join(report)


def run_stream_bench(out: Path, *, events: int = 200_000, latency_seconds: int = 60) -> str:
    """Throughput of both streams next to the baseline, then the end-to-end latency; returns the report."""
    out = out.resolve()
    os.environ.setdefault("NORTHSTAR_USER_TOKEN_KEY", "bench-only-key-not-a-secret")
    source = load_source("clickstream")
    stream = _stream_spec(source)
    prefix = source.tables[stream.table].landing
    feed = out / "feed"
    lines = _feed(feed, prefix, events)
    env = _bench_env(out, feed)
    spark = get_spark(env, app_name="northstar-bench-stream")
    cores = len(
        os.sched_getaffinity(0)
    )  # the cores local[*] runs on (defaultParallelism is a setting, not cores)
    files = [str(p) for p in sorted((feed / prefix).rglob("*.json"))]
    timings = _throughput(spark, env, source, files, str(out / "baseline"))
    latency_env = env.model_copy(  # a lake of its own: the probes do not queue behind the throughput data
        update={k: str(out / "latency" / k) for k in ("landing", "lake", "quarantine")}
    )
    latencies = _probe_latency(spark, latency_env, source, latency_seconds) if latency_seconds else []
    return _stream_report(lines, len(files), cores, timings, latencies, stream.trigger_interval)
