"""Build the gold tables (northstar.gold.tables) from the conformed models, recomputing only the UTC days touched
by model rows changed since each table's last successful run (Delta change data feed, then `replaceWhere` on
those day partitions; every other partition's files are left as they are). A table without a day partition
(the customer dimension, SCD2) is recomputed whole and MERGEd by its key.

One ledger row per gold table and run: layer "gold", details["input_version.<model>"] = the model version
consumed, details["partitions"] = days recomputed, details["published"] = 1 when the audit of what was written
passed (write-audit-publish: readers and the Snowflake publish get the last published version). read = written
+ duplicate, as each table's definition counts it (`GoldTable.count`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import reduce

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar import ledger
from northstar.config import EnvConfig
from northstar.gold import transforms as t
from northstar.gold.tables import GOLD, INPUT_MODELS, GoldTable, Reader
from northstar.lake import delta, tables
from northstar.ledger import LedgerEntry
from northstar.quality.evaluate import run_checks
from northstar.quality.publish import audit_and_publish

LAYER = "gold"
CHANGES = ("insert", "update_preimage", "update_postimage", "delete")
Versions = dict[str, int | None]


def run_gold(spark: SparkSession, env: EnvConfig, *, full_refresh: bool = False) -> list[LedgerEntry]:
    """Bring every gold table up to date with the conformed models it reads."""
    ends = {m: delta.latest_version(spark, tables.model(m).path(env)) for m in INPUT_MODELS}
    consumed = _consumed(spark, env)
    return [
        _run_table(spark, env, table, full_refresh, ends, consumed.get(table.name, {}))
        for table in GOLD.values()
    ]


def _consumed(spark: SparkSession, env: EnvConfig) -> dict[str, Versions]:
    """Per gold table, the model versions its last successful run consumed, per input model."""
    rows = (
        ledger.read(spark, env)
        .where((F.col("layer") == LAYER) & F.col("status").isin(ledger.SUCCESS, ledger.NOOP))
        .groupBy("table_name")
        .agg(*[F.max(F.col("details")[f"input_version.{m}"]).alias(m) for m in INPUT_MODELS])
        .collect()
    )
    return {r["table_name"]: {m: r[m] for m in INPUT_MODELS} for r in rows}


def _model(spark: SparkSession, env: EnvConfig, name: str) -> DataFrame:
    return spark.read.format("delta").load(tables.model(name).path(env))


def _changed_rows(
    spark: SparkSession, env: EnvConfig, model: str, done: int | None, end: int | None
) -> DataFrame | None:
    """Model rows changed after version `done` (pre- and post-images), or None for 'everything'."""
    if done is None or end is None:
        return None
    if end <= done:
        return spark.createDataFrame([], _model(spark, env, model).schema)
    return delta.read_changes(spark, tables.model(model).path(env), done + 1, end, CHANGES)


def _days(frame: DataFrame, column: str) -> set[date]:
    return {r[0] for r in frame.select(t.utc_date(column)).distinct().collect() if r[0] is not None}


def affected_days(
    table: GoldTable, changed: dict[str, DataFrame | None], read_model: Reader
) -> set[date] | None:
    """The day partitions of `table` that changed model rows touch (None = rebuild everything); `read_model`
    reads a whole conformed model (the refunds of changed orders, the orders of changed lines)."""
    present = {m: frame for m, frame in changed.items() if frame is not None}
    if any(m not in present for m in table.inputs):
        return None
    days: set[date] = set()
    for model, column in table.day_sources:
        days |= _days(present[model], column)
    order_key = ["source_system", "order_id"]
    if table.refunds_of_changed_orders:
        touched_orders = present["orders"].select(*order_key).distinct()
        days |= _days(read_model("refunds").join(touched_orders, order_key, "left_semi"), "created_at")
    if table.orders_of_changed:  # the orders the changed rows name, all models at once: one read, one collect
        orders = read_model("orders")
        touched = [
            orders.join(present[model].select(*columns).distinct(), list(columns), "left_semi")
            for model, columns in table.orders_of_changed
        ]
        days |= _days(reduce(DataFrame.unionByName, touched).select("created_at"), "created_at")
    return days


def reader(spark: SparkSession, env: EnvConfig, days: set[date] | None) -> Reader:
    """What a build reads: a conformed model whole, or a gold table narrowed to `days` (all days when None)."""

    def read(name: str) -> DataFrame:
        if not name.startswith("gold."):
            return _model(spark, env, name)
        source = GOLD[name.removeprefix("gold.")]
        frame = spark.read.format("delta").load(source.table.path(env))
        return (
            frame
            if days is None or source.partition is None
            else t.in_dates(frame, source.partition, sorted(days))
        )

    return read


def build(spark: SparkSession, env: EnvConfig, table: GoldTable, days: set[date] | None) -> DataFrame:
    """The rows of `table` for `days` (all days when None), from the current model and gold inputs."""
    frame = table.build(reader(spark, env, days))
    return (
        frame if days is None or table.partition is None else t.in_dates(frame, table.partition, sorted(days))
    )


def _run_table(
    spark: SparkSession,
    env: EnvConfig,
    table: GoldTable,
    full_refresh: bool,
    ends: Versions,
    consumed: Versions,
) -> LedgerEntry:
    entry = ledger.start("gold", env, source="gold", table=table.name, layer=LAYER)
    with ledger.leased(spark, env, entry):  # one run per table at a time (lake/run_lock.py)
        entry.details.update({f"input_version.{m}": v for m in table.inputs if (v := ends[m]) is not None})
        if any(ends[m] is None for m in table.inputs):  # a model not built yet: `northstar model --name all`
            entry.status = ledger.NOOP
            entry.details["input_table_missing"] = 1
            return entry
        path = table.table.path(env)
        rebuild = full_refresh or not delta.table_exists(spark, path)
        done = {m: None if rebuild else consumed.get(m) for m in table.inputs}
        if _consumed_already(table.inputs, done, ends):
            entry.status = ledger.NOOP  # no input changed since the last run: nothing to read
            return entry
        if table.partition is None:
            _run_whole(spark, env, table, entry)
        else:
            _run_days(spark, env, table, entry, done, ends)
    return entry


def _consumed_already(inputs: Iterable[str], done: Versions, ends: Versions) -> bool:
    """True when the last run consumed every input's current version (no input changed since)."""
    for m in inputs:
        consumed, end = done[m], ends[m]
        if consumed is None or end is None or end > consumed:
            return False
    return True


def _run_days(
    spark: SparkSession, env: EnvConfig, table: GoldTable, entry: LedgerEntry, done: Versions, ends: Versions
) -> None:
    """Recompute the day partitions the changed model rows touch, replace them in one commit, audit."""
    changed = {m: _changed_rows(spark, env, m, done[m], ends[m]) for m in table.inputs}
    days = affected_days(table, changed, lambda name: _model(spark, env, name))
    if days is not None and not days:
        entry.status = ledger.NOOP
        return
    rows = build(spark, env, table, days).cache()
    try:
        counts = table.count(rows, reader(spark, env, days))
        if days is not None:
            entry.details["partitions"] = len(days)
        version = _write(spark, rows, table.table.path(env), table, days)
        _audit(spark, env, table, rows, version, entry)  # the recomputed days
    finally:
        rows.unpersist()
    entry.records_read = counts.read
    entry.records_written = (
        counts.written
        if counts.written is not None
        else delta.commit_metrics(spark, table.table.path(env), version).get("numOutputRows", 0)
    )
    entry.records_duplicate = counts.duplicate
    entry.details.update(counts.details)


def _run_whole(spark: SparkSession, env: EnvConfig, table: GoldTable, entry: LedgerEntry) -> None:
    """A table without a day partition: recomputed from its whole inputs whenever they changed, then MERGEd by
    key (new rows inserted, changed ones updated, vanished ones deleted). Recomputing from the whole history is
    what makes a late order give the same dimension as in-order arrival; the MERGE (skipped when nothing
    differs) rewrites only the files of changed rows, and a re-run adds no Delta version."""
    path = table.table.path(env)
    rows = build(spark, env, table, None).cache()
    try:
        counts = table.count(rows, reader(spark, env, None))
        entry.records_read, entry.records_duplicate = counts.read, counts.duplicate
        entry.records_written = counts.written or 0
        entry.details.update(counts.details)
        if not delta.table_exists(spark, path):
            rows.write.format("delta").option(delta.CHANGE_FEED, "true").save(path)
        elif not _merge_by_key(spark, rows, path, table.key):
            entry.status = ledger.NOOP  # the same table: no commit
            return
        _audit(spark, env, table, rows, delta.current_version(spark, path), entry)
    finally:
        rows.unpersist()


def _merge_by_key(spark: SparkSession, rows: DataFrame, path: str, key: tuple[str, ...]) -> bool:
    """Make the table equal `rows` by one MERGE on `key`; False (and no commit) when it already is."""
    current = spark.read.format("delta").load(path).select(*rows.columns)
    if rows.exceptAll(current).unionByName(current.exceptAll(rows)).isEmpty():
        return False
    delta.enable_change_feed(spark, path)  # the publish reads what changed from the feed
    on = " AND ".join(f"t.{k} = s.{k}" for k in key)
    changed = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in rows.columns)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(rows.alias("s"), on)
        .whenMatchedUpdateAll(condition=changed)
        .whenNotMatchedInsertAll()
        .whenNotMatchedBySourceDelete()
        .execute()
    )
    return True


def _audit(
    spark: SparkSession, env: EnvConfig, table: GoldTable, rows: DataFrame, version: int, entry: LedgerEntry
) -> None:
    """Write-audit-publish: check the rows just written as `version` (conf/quality/gold.<table>.yaml), then
    publish that version or keep readers and the Snowflake publish on the last good one."""
    found = run_checks(spark, env, table.table.full_name, rows, entry.run_id, key=list(table.key))
    entry.wrote(table.table, version)
    decision = audit_and_publish(spark, env, table.table, entry.run_id, found)
    entry.details["published"] = int(decision.published)


def _write(spark: SparkSession, rows: DataFrame, path: str, table: GoldTable, days: set[date] | None) -> int:
    """Replace the recomputed day partitions (or the whole table) in one Delta commit, with the change data
    feed on (the warehouse publish moves only what the feed says changed)."""
    partition = table.partition
    assert partition is not None  # only day-partitioned tables are written by day
    exists = delta.table_exists(spark, path)
    if exists:
        delta.enable_change_feed(spark, path)
    writer = rows.write.format("delta").mode("overwrite").partitionBy(partition)
    if not exists:
        writer = writer.option(delta.CHANGE_FEED, "true")
    if days is not None:
        listed = ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(days))
        writer = writer.option("replaceWhere", f"{partition} IN ({listed})")
    else:
        writer = writer.option("overwriteSchema", "true")
    writer.save(path)
    return delta.current_version(spark, path)
