"""Run the event stream: Firehose files -> bronze (query 1), bronze -> silver events, sessions and minute
aggregates (query 2), with one trigger choice for both: `processing-time` for the operational path,
`available-now` for the cost-saving batch path. Also the batch repairs over bronze: catch-up and replay.

Why not Spark's "continuous" trigger: it is experimental, supports only map-like queries (no aggregation,
no dedup state, no foreachBatch) and the Delta sink does not support it; a short processingTime trigger
(seconds) keeps the dashboards well inside 2 minutes.

Exactly once:
- query 1 reads files with the file source (its checkpoint records which files each batch took) and writes
  bronze, quarantine and the ledger row in foreachBatch as idempotent appends keyed by the batch id (Delta's
  txnAppId = query + checkpoint tag, txnVersion = batch id): a batch replayed after a crash is skipped by Delta;
- query 2 reads bronze as a Delta stream (skipChangeCommits, so deletion requests do not stop it) and MERGEs:
  insert-if-absent by event id, sessions and minutes recomputed from silver; a replayed batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import DataStreamWriter, StreamingQuery

from northstar import ledger, quarantine
from northstar.bronze.transforms import (
    LANDING_FILE,
    LINEAGE_COLUMNS,
    RAW,
    RECORD_HASH,
    add_lineage,
    non_blank_lines,
)
from northstar.config import EnvConfig, SourceSpec
from northstar.lake import delta, tables
from northstar.ledger import LedgerEntry
from northstar.secrets import resolve
from northstar.streaming import transforms as tx
from northstar.streaming.apply import (
    apply_events,
    create_if_missing,
    ensure_change_feed,
    recompute_minutes,
    recompute_sessions,
)

AVAILABLE_NOW, PROCESSING_TIME = "available-now", "processing-time"

# Called by query 2 after each micro-batch's MERGEs and ledger row, with the batch id (e.g. the warehouse
# publish of the session and minute tables, warehouse/stream_publish.py: this layer does not import it).
AfterBatch = Callable[[int], None]


def token_key(source: SourceSpec) -> bytes:
    """The user-token key, from the secret reference in conf (never logged)."""
    return resolve(source.require_stream().user_token_key).value.encode("utf-8")


def _trigger(writer: DataStreamWriter, mode: str, interval: str) -> DataStreamWriter:
    if mode == AVAILABLE_NOW:
        return writer.trigger(availableNow=True)
    if mode == PROCESSING_TIME:
        return writer.trigger(processingTime=interval)
    raise ValueError(f"trigger {mode!r}: use {AVAILABLE_NOW} or {PROCESSING_TIME}")


def _count_by_reason(rows: DataFrame) -> dict[str | None, int]:
    """Rows per reject reason (None: accepted)."""
    return {
        r["reason"]: r["n"]
        for r in rows.groupBy(F.col(tx.REJECT_REASON).alias("reason"))
        .agg(F.count(F.lit(1)).alias("n"))
        .collect()
    }


def _append_bronze(
    spark: SparkSession, bronze_rows: DataFrame, bronze_path: str, app_id: str, batch_id: int
) -> None:
    """Append a batch to bronze, idempotently (txnAppId/txnVersion: a replayed batch is skipped by Delta)."""
    create_if_missing(spark, bronze_path, bronze_rows, "bronze", partition_by="_ingest_date")
    (
        bronze_rows.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", batch_id)
        .partitionBy("_ingest_date")
        .save(bronze_path)
    )


def _quarantine_rejects(
    spark: SparkSession,
    rows: DataFrame,
    source: SourceSpec,
    quarantine_path: str,
    *,
    run_id: str,
    now: datetime,
    once: tuple[str, int],
) -> None:
    """The batch's rejected rows -> quarantine, once per batch."""
    rejects = quarantine.quarantine_rows(
        rows.where(F.col(tx.REJECT_REASON).isNotNull()),
        run_id=run_id,
        layer="bronze",
        source=source.name,
        table=source.require_stream().table,
        reason=F.col(tx.REJECT_REASON),
        reason_detail=F.col(tx.REJECT_DETAIL),
        raw_record=F.col(RAW),
        landing_file=F.col(LANDING_FILE),
        record_hash=F.col(RECORD_HASH),
        quarantined_at=F.lit(now).cast("timestamp"),
    )
    create_if_missing(spark, quarantine_path, rejects, "quarantine")
    quarantine.write(spark, rejects, quarantine_path, once=once)


def _bronze_entry(
    env: EnvConfig, source: SourceSpec, run_id: str, batch_id: int, by_reason: dict[str | None, int]
) -> LedgerEntry:
    """The ledger row of one bronze micro-batch, balanced."""
    read = sum(by_reason.values())
    rejected = read - by_reason.get(None, 0)
    entry = LedgerEntry(
        run_id=run_id,
        job="stream_bronze",
        env=env.name,
        source=source.name,
        table_name=source.require_stream().table,
        layer="bronze",
        records_read=read,
        records_written=read - rejected,
        records_quarantined=rejected,
        details={"batch_id": batch_id, **{f"quarantined.{k}": v for k, v in by_reason.items() if k}},
    )
    entry.check_balanced()
    return entry


def bronze_batch_writer(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, tag: str
) -> Callable[[DataFrame, int], None]:
    """foreachBatch of query 1: parse, write bronze (everything that landed), quarantine rejects, ledger row."""
    stream = source.require_stream()
    spec = source.tables[stream.table]
    app_id = f"northstar-stream-bronze-{source.name}-{tag}"
    bronze_path, quarantine_path = (
        tables.bronze(source.name, stream.table).path(env),
        tables.quarantine(source.name, stream.table).path(env),
    )
    data_columns = [c.name for c in spec.columns or []]

    def write(batch: DataFrame, batch_id: int) -> None:
        run_id = f"stream-bronze-{tag}-{batch_id:010d}"
        now = datetime.now(UTC)
        rows = tx.with_reject_reason(tx.parse_lines(non_blank_lines(batch), spec), stream)
        rows = add_lineage(rows, source=source.name, run_id=run_id, ingest_time=now)
        rows = rows.withColumn("_pan_redacted", F.lit(False)).persist()
        try:
            by_reason = _count_by_reason(rows)
            if sum(by_reason.values()) == 0:
                return
            _append_bronze(spark, rows.select(*data_columns, *LINEAGE_COLUMNS), bronze_path, app_id, batch_id)
            if sum(by_reason.values()) - by_reason.get(None, 0):  # rejected rows
                _quarantine_rejects(
                    spark, rows, source, quarantine_path, run_id=run_id, now=now, once=(app_id, batch_id)
                )
            entry = _bronze_entry(env, source, run_id, batch_id, by_reason)
            ledger.append(spark, env, entry, txn=(f"{app_id}-ledger", batch_id))
        finally:
            rows.unpersist()

    return write


def silver_batch_writer(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, tag: str, after_batch: AfterBatch | None = None
) -> Callable[[DataFrame, int], None]:
    """foreachBatch of query 2: silver events, sessions, minute aggregates; one ledger row per batch; then
    `after_batch(batch_id)` (also for a batch that brought nothing, so a timed publish still runs)."""
    key = token_key(source)
    app_id = f"northstar-stream-silver-{source.name}-{tag}"
    table = source.require_stream().table

    def write(batch: DataFrame, batch_id: int) -> None:
        apply(batch, batch_id)
        if after_batch is not None:
            after_batch(batch_id)

    def apply(batch: DataFrame, batch_id: int) -> None:
        applied = apply_events(spark, env, source, batch, key)
        if applied.offered == 0:
            return
        entry = LedgerEntry(
            run_id=f"stream-silver-{tag}-{batch_id:010d}",
            job="stream_silver",
            env=env.name,
            source=source.name,
            table_name=table,
            layer="silver",
            records_read=applied.offered,
            records_written=applied.inserted,
            records_duplicate=applied.offered - applied.inserted,
            details={"batch_id": batch_id},
        )
        ledger.append(spark, env, entry, txn=(f"{app_id}-ledger", batch_id))

    return write


def start_bronze(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    mode: str,
    *,
    tag: str = "main",
    max_files_per_trigger: int | None = None,
) -> StreamingQuery:
    """Query 1: the landing folder's Firehose files (YYYY/MM/DD/HH/) -> bronze + quarantine + ledger."""
    stream = source.require_stream()
    spec = source.tables[stream.table]
    lines = (
        spark.readStream.format("text")
        .option("maxFilesPerTrigger", max_files_per_trigger or stream.max_files_per_trigger)
        .load(f"{tables.landing_folder(env, spec)}/*/*/*/*")
        .select(F.col("value").alias(RAW), F.col("_metadata.file_path").alias(LANDING_FILE))
    )
    writer = (
        lines.writeStream.queryName(f"{source.name}-bronze-{tag}")
        .option("checkpointLocation", tables.checkpoint_folder(env, source.name, "bronze", tag))
        .foreachBatch(bronze_batch_writer(spark, env, source, tag))
    )
    return _trigger(writer, mode, stream.trigger_interval).start()


def start_silver(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    mode: str,
    *,
    tag: str = "main",
    starting_version: int | None = None,
    max_files_per_trigger: int | None = None,
    after_batch: AfterBatch | None = None,
) -> StreamingQuery:
    """Query 2: bronze (Delta stream) -> dedup within the watermark -> silver, sessions, minute aggregates.

    `starting_version` (with a new `tag`, i.e. a new checkpoint): restart from that bronze version.
    `after_batch`: called with the batch id after each batch's writes (the warehouse publish)."""
    stream = source.require_stream()
    ensure_change_feed(spark, env, source)
    reader = (
        spark.readStream.format("delta")
        .option("skipChangeCommits", "true")
        .option("maxFilesPerTrigger", max_files_per_trigger or stream.max_files_per_trigger)
    )
    if starting_version is not None:
        reader = reader.option("startingVersion", starting_version)
    bronze = reader.load(tables.bronze(source.name, stream.table).path(env))
    deduped = (
        tx.valid_rows(bronze, stream)
        .withWatermark(stream.event_time, stream.watermark)
        .dropDuplicatesWithinWatermark([stream.event_id])
    )
    writer = (
        deduped.writeStream.queryName(f"{source.name}-silver-{tag}")
        .option("checkpointLocation", tables.checkpoint_folder(env, source.name, "silver", tag))
        .foreachBatch(silver_batch_writer(spark, env, source, tag, after_batch))
    )
    return _trigger(writer, mode, stream.trigger_interval).start()


@dataclass
class StreamRun:
    """What an available-now run did, from the queries' progress reports."""

    bronze_batches: int = 0
    silver_batches: int = 0
    dropped_late: int = 0  # rows behind the watermark: in bronze, brought to silver by catch-up / replay
    dropped_duplicates: int = 0  # copies of an event id within the watermark
    progress: list[dict] = field(default_factory=list)


def _progress_counts(query: StreamingQuery, run: StreamRun, layer: str) -> None:
    for progress in query.recentProgress:
        report = progress if isinstance(progress, dict) else progress.jsonValue()
        if report.get("numInputRows", 0) == 0:
            continue
        run.progress.append({"layer": layer, "batch": report["batchId"], "rows": report["numInputRows"]})
        if layer == "bronze":
            run.bronze_batches += 1
            continue
        run.silver_batches += 1
        for operator in report.get("stateOperators", []):
            run.dropped_late += operator.get("numRowsDroppedByWatermark", 0)
            run.dropped_duplicates += operator.get("customMetrics", {}).get("numDroppedDuplicateRows", 0)


def run_available_now(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    *,
    tag: str = "main",
    max_files_per_trigger: int | None = None,
    starting_version: int | None = None,
    after_batch: AfterBatch | None = None,
) -> StreamRun:
    """The batch path: both queries with availableNow, one after the other, until the input is consumed.
    `after_batch`: see start_silver."""
    run = StreamRun()
    bronze = start_bronze(
        spark, env, source, AVAILABLE_NOW, tag=tag, max_files_per_trigger=max_files_per_trigger
    )
    bronze.awaitTermination()
    _progress_counts(bronze, run, "bronze")
    if not delta.table_exists(spark, tables.bronze(source.name, source.require_stream().table).path(env)):
        return run
    silver = start_silver(
        spark,
        env,
        source,
        AVAILABLE_NOW,
        tag=tag,
        starting_version=starting_version,
        max_files_per_trigger=max_files_per_trigger,
        after_batch=after_batch,
    )
    silver.awaitTermination()
    _progress_counts(silver, run, "silver")
    return run


def catch_up(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, since: datetime | None = None
) -> LedgerEntry:
    """Bring into silver the valid bronze events silver does not hold (late beyond the watermark), with
    their sessions and minutes. `since`: only bronze rows ingested from then on (default: all)."""
    stream = source.require_stream()
    entry = LedgerEntry(
        run_id=ledger.new_run_id("catchup"),
        job="stream_catch_up",
        env=env.name,
        source=source.name,
        table_name=stream.table,
        layer="silver",
        window_start=since,
    )
    with ledger.recorded(spark, env, entry):
        bronze = tx.valid_rows(
            spark.read.format("delta").load(tables.bronze(source.name, stream.table).path(env)), stream
        )
        if since is not None:
            bronze = bronze.where(F.col("_ingest_time") >= F.lit(since))
        events_path = tables.silver(source.name, stream.table).path(env)
        if delta.table_exists(spark, events_path):
            held = (
                spark.read.format("delta").load(events_path).select(F.col("event_id").alias(stream.event_id))
            )
            bronze = bronze.join(held, stream.event_id, "left_anti")
        applied = apply_events(spark, env, source, bronze, token_key(source))
        entry.records_read = applied.offered
        entry.records_written = applied.inserted
        entry.records_duplicate = applied.offered - applied.inserted
        if applied.offered == 0:
            entry.status = ledger.NOOP
    return entry


def replay(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, start: datetime, end: datetime
) -> LedgerEntry:
    """Rebuild silver events, sessions and minute aggregates for event times in [start, end) from bronze.

    Silver events of the range are replaced in one commit (replaceWhere on event_time); sessions of every
    visitor seen in the range, before or after, are rebuilt (a session crossing an edge is rebuilt whole from
    silver, events outside the range untouched); minutes of the range are recomputed, empty ones deleted.
    Other ranges are not touched; running it twice gives the same tables."""
    stream = source.require_stream()
    if start >= end:
        raise ValueError(f"replay: --from {start} must be before --to {end}")
    entry = LedgerEntry(
        run_id=ledger.new_run_id("replay"),
        job="stream_replay",
        env=env.name,
        source=source.name,
        table_name=stream.table,
        layer="silver",
        window_start=start,
        window_end=end,
    )
    lo, hi = F.lit(start).cast("timestamp"), F.lit(end).cast("timestamp")
    events_path = tables.silver(source.name, stream.table).path(env)
    with ledger.recorded(spark, env, entry):
        bronze = spark.read.format("delta").load(tables.bronze(source.name, stream.table).path(env))
        in_range = tx.valid_rows(bronze, stream).where(
            (F.col(stream.event_time) >= lo) & (F.col(stream.event_time) < hi)
        )
        rebuilt = tx.one_per_event(tx.to_silver(in_range, stream, token_key(source))).persist()
        entry.records_read = in_range.count()
        entry.records_written = rebuilt.count()
        entry.records_duplicate = entry.records_read - entry.records_written
        version_before = delta.latest_version(spark, events_path)
        predicate = f"event_time >= '{start.isoformat()}' AND event_time < '{end.isoformat()}'"
        (rebuilt.write.format("delta").mode("overwrite").option("replaceWhere", predicate).save(events_path))
        entry.delta_versions[tables.silver(source.name, stream.table).full_name] = delta.current_version(
            spark, events_path
        )
        visitors = rebuilt.select("visitor_key")
        if version_before is not None:  # visitors the range held before, whose sessions may now shrink or go
            visitors = visitors.unionByName(
                spark.read.format("delta")
                .option("versionAsOf", version_before)
                .load(events_path)
                .where((F.col("event_time") >= lo) & (F.col("event_time") < hi))
                .select("visitor_key")
            )
        visitors = visitors.distinct()
        recompute_sessions(spark, env, source, visitors.select("visitor_key", lo.alias("lo"), hi.alias("hi")))
        minutes = rebuilt.select(F.date_trunc("minute", "event_time").alias("minute")).distinct()
        recompute_minutes(spark, env, source, minutes, within=(start.isoformat(), end.isoformat()))
        rebuilt.unpersist()
    return entry
