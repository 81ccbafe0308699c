"""Write events into silver and bring the session facts and minute aggregates they touch up to date.

One function, `apply_events`, serves the stream's micro-batches, the catch-up of late events and replay:
- silver events: MERGE on event id, insert when not there (a replayed micro-batch inserts nothing twice);
- sessions: the sessions of the touched visitors around the touched times are rebuilt from silver and MERGEd
  by session id, stale ones (merged into a bigger session by a late event) deleted in the same commit;
- minute aggregates: the touched minutes are recomputed from silver and MERGEd by minute.
Every step recomputes from silver instead of adding increments, so running it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig, SourceSpec
from northstar.lake import delta, tables
from northstar.streaming import transforms as tx

UPDATED_AT = "_updated_at"  # when the row was last written (the latency benchmark reads it)


@dataclass
class Applied:
    """What one application did: rows offered, events inserted into silver."""

    offered: int
    inserted: int


# Columns Delta keeps min/max statistics on, per table. Never a user id or token: the statistics live in the
# transaction log, which a deletion request's DELETE + VACUUM does not rewrite (docs/streaming.md).
STATS_COLUMNS = {
    "events": "event_id,event_time,event_type",
    "sessions": "session_id,session_start,session_end",
    "minute": "minute",
    "bronze": "event_id,event_time,event_type,_landing_file,_run_id,_ingest_time,_record_hash",
    "quarantine": "run_id,layer,reason,landing_file,record_hash,quarantined_at",
}
# Tables the warehouse publishes incrementally: their change data feed is on from the first version, so each
# micro-batch's MERGE records only the sessions / minutes it changed (docs/streaming.md, "Warehouse").
CHANGE_FEED_TABLES = ("sessions", "minute")


def create_if_missing(
    spark: SparkSession, path: str, frame: DataFrame, stats: str, partition_by: str | None = None
) -> None:
    """Create the table with `frame`'s schema and its statistics columns, unless it exists."""
    if delta.table_exists(spark, path):
        return
    builder = (
        DeltaTable.createIfNotExists(spark)
        .location(path)
        .addColumns(frame.schema)
        .property("delta.dataSkippingStatsColumns", STATS_COLUMNS[stats])
    )
    if stats in CHANGE_FEED_TABLES:
        builder = builder.property(delta.CHANGE_FEED, "true")
    if partition_by:
        builder = builder.partitionedBy(partition_by)
    builder.execute()


def ensure_change_feed(spark: SparkSession, env: EnvConfig, source: SourceSpec) -> None:
    """Turn the change feed on for session and minute tables made before it was set at creation (one metadata
    commit each, once; the first publish after it is a full load, then incremental)."""
    for table in (tables.stream_sessions(source.name), tables.stream_minutes(source.name)):
        path = table.path(env)
        if delta.table_exists(spark, path):
            delta.enable_change_feed(spark, path)


def upsert_events(spark: SparkSession, path: str, events: DataFrame) -> int:
    """Insert the events whose id silver does not hold; returns how many were inserted."""
    create_if_missing(spark, path, events, "events")
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(events.alias("s"), "t.event_id = s.event_id")
        .whenNotMatchedInsertAll()
        .execute()
    )
    return delta.commit_metrics(spark, path, delta.current_version(spark, path)).get(
        "numTargetRowsInserted", 0
    )


def recompute_sessions(spark: SparkSession, env: EnvConfig, source: SourceSpec, scope: DataFrame) -> None:
    """Rebuild the sessions of `scope` (visitor_key, lo, hi: the times touched per visitor) from silver.

    The sessions that may change are those of the visitor within one gap of [lo, hi]; they are widened to
    their own start/end, all silver events of the visitor in that span are sessionized again, and the result
    replaces them (sessions a late event joined together are deleted). Events outside the span belong to
    sessions more than one gap away from every touched time, so they cannot join a rebuilt session."""
    stream = source.require_stream()
    gap = F.expr(f"INTERVAL {stream.session_gap}")
    path = tables.stream_sessions(source.name).path(env)
    events = spark.read.format("delta").load(tables.silver(source.name, stream.table).path(env))
    scope = scope.groupBy("visitor_key").agg(F.min("lo").alias("lo"), F.max("hi").alias("hi"))
    if delta.table_exists(spark, path):
        existing = spark.read.format("delta").load(path)
        stale = existing.join(scope, "visitor_key").where(
            (F.col("session_end") >= F.col("lo") - gap) & (F.col("session_start") <= F.col("hi") + gap)
        )
        spans = (
            stale.select("visitor_key", F.col("session_start").alias("lo"), F.col("session_end").alias("hi"))
            .unionByName(scope)
            .groupBy("visitor_key")
            .agg(F.min("lo").alias("lo"), F.max("hi").alias("hi"))
        )
    else:
        stale, spans = None, scope
    touched = events.join(F.broadcast(spans), "visitor_key").where(
        F.col("event_time").between(F.col("lo"), F.col("hi"))
    )
    rebuilt = tx.sessionize(touched.drop("lo", "hi"), stream.session_gap).withColumn(
        UPDATED_AT, F.current_timestamp()
    )
    create_if_missing(spark, path, rebuilt, "sessions")
    columns = rebuilt.columns
    changes = rebuilt.withColumn("_op", F.lit("upsert"))
    if stale is not None:
        gone = stale.select("session_id").join(rebuilt.select("session_id"), "session_id", "left_anti")
        changes = changes.unionByName(gone.withColumn("_op", F.lit("delete")), allowMissingColumns=True)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(changes.alias("s"), "t.session_id = s.session_id")
        .whenMatchedDelete("s._op = 'delete'")
        .whenMatchedUpdate("s._op = 'upsert'", {c: f"s.{c}" for c in columns})
        .whenNotMatchedInsert("s._op = 'upsert'", {c: f"s.{c}" for c in columns})
        .execute()
    )


def recompute_minutes(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    minutes: DataFrame,
    within: tuple[str, str] | None = None,
) -> None:
    """Recompute the given minutes (a `minute` column) of gold.<source>_minute from silver. `within`
    (replay): minutes of that range with no events left are deleted."""
    path = tables.stream_minutes(source.name).path(env)
    events = spark.read.format("delta").load(
        tables.silver(source.name, source.require_stream().table).path(env)
    )
    touched = events.join(
        F.broadcast(minutes.distinct()),
        F.date_trunc("minute", "event_time") == minutes["minute"],
        "left_semi",
    )
    fresh = tx.minute_aggregates(touched).withColumn(UPDATED_AT, F.current_timestamp())
    create_if_missing(spark, path, fresh, "minute")
    merge = (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(fresh.alias("s"), "t.minute = s.minute")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
    )
    if within is not None:
        merge = merge.whenNotMatchedBySourceDelete(f"t.minute >= '{within[0]}' AND t.minute < '{within[1]}'")
    merge.execute()


def apply_events(
    spark: SparkSession, env: EnvConfig, source: SourceSpec, bronze_rows: DataFrame, token_key: bytes
) -> Applied:
    """Valid bronze rows -> silver events (insert new ids), then the sessions and minutes they touch."""
    stream = source.require_stream()
    silver_rows = tx.one_per_event(tx.to_silver(tx.valid_rows(bronze_rows, stream), stream, token_key))
    # Materialized with its lineage cut: the MERGE into silver below makes Delta re-run cached plans that read
    # silver, and these rows may come from an anti-join with silver (catch-up), which would then be empty.
    silver_rows = silver_rows.localCheckpoint(eager=True)
    offered = silver_rows.count()
    if offered == 0:
        return Applied(0, 0)
    inserted = upsert_events(spark, tables.silver(source.name, stream.table).path(env), silver_rows)
    scope = silver_rows.groupBy("visitor_key").agg(
        F.min("event_time").alias("lo"), F.max("event_time").alias("hi")
    )
    recompute_sessions(spark, env, source, scope)
    minutes = silver_rows.select(F.date_trunc("minute", "event_time").alias("minute")).distinct()
    recompute_minutes(spark, env, source, minutes)
    return Applied(offered, inserted)
