"""Write a batch into a silver table: the latest-wins MERGE (with CDC deletes and tombstones), and the SCD type 2
MERGE of history tables. Both create the table on its first run and replace it on a full refresh.

The latest-wins MERGE replaces a stored row only with a strictly newer version (ordering columns, then record
hash), so an older update arriving late never overwrites a newer one, and a retried run changes nothing. Its
condition names only the partitions the batch touches, so its cost follows the rows changed, not the table.

Each data commit carries the batch's tag (lake/commits.py); a retry of a batch an interrupted attempt already
committed does not apply it again but returns that commit's metrics (`adopt_earlier`), so the ledger's `written`
is what reached the table.
"""

from __future__ import annotations

import logging
from functools import reduce

from delta.tables import DeltaMergeBuilder, DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from northstar import ledger
from northstar.bronze.transforms import LINEAGE_COLUMNS, RECORD_HASH
from northstar.config import EnvConfig, TableSpec
from northstar.lake import commits, delta
from northstar.lake.commits import Tag
from northstar.lake.conflicts import is_conflict, retry_on_conflict
from northstar.lake.tables import Table
from northstar.ledger import LedgerEntry
from northstar.silver import transforms as tx
from northstar.transforms import cdc
from northstar.transforms.schema import align_to

log = logging.getLogger(__name__)
MAX_PRUNED_PARTITIONS = 500
Metrics = dict[str, int]


def _create(
    spark: SparkSession,
    rows: DataFrame,
    path: str,
    table: Table,
    spec: TableSpec,
    entry: LedgerEntry,
    tag: Tag | None,
    *,
    replace: bool,
) -> Metrics | None:
    """Create the table at `path` with `rows` (`replace`: replace it), change data feed on; what Delta says it
    inserted. None when another writer created the table first (a lost create race): the caller MERGEs instead."""
    if replace:
        return retry_on_conflict(
            lambda: _write_new(spark, rows, path, table, spec, entry, tag, "overwrite"), table.full_name
        )
    try:
        return _write_new(spark, rows, path, table, spec, entry, tag, "errorifexists")
    except Exception as err:
        if not (is_conflict(err) or delta.table_exists(spark, path)):
            raise
        log.warning("%s: created by a concurrent writer first; merging into it instead", table.full_name)
        return None


def _write_new(
    spark: SparkSession,
    rows: DataFrame,
    path: str,
    table: Table,
    spec: TableSpec,
    entry: LedgerEntry,
    tag: Tag | None,
    mode: str,
) -> Metrics:
    writer = (
        rows.write.format("delta")
        .mode(mode)
        .option("overwriteSchema", "true")
        .option("delta.enableChangeDataFeed", "true")
    )
    if tag is not None:
        writer = writer.option("userMetadata", tag.text())
    writer.partitionBy(*spec.partition_by).save(path)
    version = delta.current_version(spark, path)
    entry.wrote(table, version)
    return {"numTargetRowsInserted": delta.commit_metrics(spark, path, version).get("numOutputRows", 0)}


def adopt_earlier(
    spark: SparkSession, env: EnvConfig, path: str, table: Table, entry: LedgerEntry, tag: Tag | None
) -> Metrics | None:
    """The metrics of the commit an interrupted attempt at the same batch (`tag`) made, recorded as this run's
    write (`written_by_earlier_attempt` in the details); None when no such attempt committed it. An attempt
    whose run has a successful ledger row is not interrupted (a full refresh of an unchanged bronze repeats
    its window)."""
    if tag is None:
        return None
    earlier = commits.find_batch(commits.recent(spark, path), tag)
    if earlier is None or earlier.tag is None or ledger.succeeded(spark, env, earlier.tag.run_id):
        return None
    entry.wrote(table, earlier.version)
    entry.details["written_by_earlier_attempt"] = 1
    if earlier.operation == "MERGE":
        return {k: v for k, v in earlier.metrics.items() if k.startswith("numTargetRows")}
    return {"numTargetRowsInserted": earlier.metrics.get("numOutputRows", 0)}


def merge_latest(
    spark: SparkSession,
    env: EnvConfig,
    latest: DataFrame,
    table: Table,
    spec: TableSpec,
    entry: LedgerEntry,
    *,
    full_refresh: bool,
    tombstones: Table,
    tag: Tag | None = None,
) -> Metrics:
    """MERGE the latest version of each key (`latest`) into the silver `table`; create (or, on full refresh,
    replace) it. Returns Delta's operation metrics of the commit ({} when nothing changed).

    A change feed's deletes: `soft` keeps the row flagged `_deleted` (with its last known values); `hard`
    removes it and records a tombstone (at `tombstones`), so an older event of that key arriving later cannot
    bring it back. `tag`: the batch's identity, kept with the commit; a batch an interrupted attempt committed is
    not applied again (`adopt_earlier`).
    """
    path, tombstones_path = table.path(env), tombstones.path(env)
    hard_deletes = spec.cdc is not None and spec.cdc.deletes == "hard"
    if hard_deletes:
        latest = _drop_tombstoned(spark, latest, tombstones_path, spec)
    earlier = adopt_earlier(spark, env, path, table, entry, tag)
    if earlier is not None:
        if hard_deletes:  # it may have stopped before its tombstones: upsert them (idempotent)
            _record_tombstones(spark, latest, tombstones_path, spec, full_refresh=False)
        return earlier
    if full_refresh or not delta.table_exists(spark, path):
        first = latest.where(F.col(cdc.OP) != cdc.DELETE) if hard_deletes else latest
        created = _create(spark, first, path, table, spec, entry, tag, replace=full_refresh)
        if created is not None:
            if hard_deletes:
                created["numTargetRowsDeleted"] = _record_tombstones(
                    spark, latest, tombstones_path, spec, full_refresh
                )
            return created
    target = delta.evolve_schema(spark, path, latest)
    condition = F.expr(tx.key_condition(spec.primary_key)) & touched_partitions(latest, spec.partition_by)

    def attempt() -> (
        int
    ):  # the MERGE is rebuilt on every try, so a retry reads the concurrent commit's version
        start = delta.current_version(spark, path)
        merge = _latest_wins(spark, path, align_to(latest, target), target, spec, condition, hard_deletes)
        with commits.tagging(spark, tag):
            merge.execute()
        return start

    before = retry_on_conflict(attempt, what=table.full_name)
    version = delta.current_version(spark, path)
    metrics = {}
    if version != before:  # no commit: nothing to merge (e.g. every event was older than a tombstone)
        entry.wrote(table, version)
        metrics = delta.commit_metrics(spark, path, version)
    if hard_deletes:
        _record_tombstones(spark, latest, tombstones_path, spec, full_refresh=False)
    return metrics


def _latest_wins(
    spark: SparkSession,
    path: str,
    latest: DataFrame,
    target: StructType,
    spec: TableSpec,
    condition: Column,
    hard_deletes: bool,
) -> DeltaMergeBuilder:
    """The silver MERGE: insert new keys, update with strictly newer versions (CDC deletes per policy)."""
    newer = tx.newer_condition(spec.ordering)
    merge = DeltaTable.forPath(spark, path).alias("t").merge(latest.alias("s"), condition)
    if spec.cdc is None:
        return merge.whenMatchedUpdateAll(condition=newer).whenNotMatchedInsertAll()
    is_delete = f"s.{cdc.OP} = '{cdc.DELETE}'"
    if hard_deletes:
        merge = merge.whenMatchedDelete(condition=f"{newer} AND {is_delete}")
    else:
        keep_values: dict[str, str | Column] = {
            c: f"s.`{c}`"
            for c in [*spec.ordering, cdc.OP, cdc.DELETED, *LINEAGE_COLUMNS]
            if c in target.fieldNames()
        }
        merge = merge.whenMatchedUpdate(condition=f"{newer} AND {is_delete}", set=keep_values)
    merge = merge.whenMatchedUpdateAll(condition=f"{newer} AND NOT {is_delete}")
    return merge.whenNotMatchedInsertAll(condition=f"NOT {is_delete}" if hard_deletes else None)


def merge_history(
    spark: SparkSession,
    env: EnvConfig,
    new_versions: DataFrame,
    table: Table,
    spec: TableSpec,
    entry: LedgerEntry,
    *,
    full_refresh: bool,
    tag: Tag | None = None,
) -> Metrics:
    """SCD type 2: recompute the intervals of every key this batch touches from all its versions (stored
    and new), then MERGE on (key, record hash): new versions are inserted, moved intervals updated. `tag` as
    for merge_latest."""
    path = table.path(env)
    earlier = adopt_earlier(spark, env, path, table, entry, tag)
    if earlier is not None:
        return earlier
    if full_refresh or not delta.table_exists(spark, path):
        created = _create(
            spark, tx.with_validity(new_versions, spec), path, table, spec, entry, tag, replace=full_refresh
        )
        if created is not None:
            return created
    target = delta.evolve_schema(spark, path, new_versions)
    history = align_to(tx.with_validity(_all_versions(spark, path, new_versions, target, spec), spec), target)
    same_version = f"{tx.key_condition(spec.primary_key)} AND t.{RECORD_HASH} = s.{RECORD_HASH}"
    moved = f"NOT (t.{tx.VALID_TO} <=> s.{tx.VALID_TO}) OR t.{tx.IS_CURRENT} <> s.{tx.IS_CURRENT}"
    before = delta.latest_version(spark, path)
    merge = (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(history.alias("s"), same_version)
        .whenMatchedUpdate(condition=moved, set={c: f"s.{c}" for c in (tx.VALID_TO, tx.IS_CURRENT)})
        .whenNotMatchedInsertAll()
    )
    with commits.tagging(spark, tag):
        merge.execute()
    version = delta.current_version(spark, path)
    if version == before:
        return {}
    entry.wrote(table, version)
    return delta.commit_metrics(spark, path, version)


def _all_versions(
    spark: SparkSession, path: str, new_versions: DataFrame, target: StructType, spec: TableSpec
) -> DataFrame:
    """Every version of the keys in `new_versions`: the stored ones and the new ones, each once. A version already
    stored keeps its stored lineage (the first delivery), like the latest-wins path."""
    keys = [F.col(f"`{c}`") for c in spec.primary_key]
    stored = (
        spark.read.format("delta")
        .load(path)
        .join(new_versions.select(*keys).distinct(), spec.primary_key, "left_semi")
        .drop(*tx.HISTORY_COLUMNS)
    )
    incoming = align_to(new_versions, target).drop(*tx.HISTORY_COLUMNS)
    first_delivery = Window.partitionBy(*keys, F.col(RECORD_HASH)).orderBy(F.col("_stored").desc())
    return (
        stored.withColumn("_stored", F.lit(True))
        .unionByName(incoming.withColumn("_stored", F.lit(False)))
        .withColumn("_n", F.row_number().over(first_delivery))
        .where("_n = 1")
        .drop("_n", "_stored")
    )


def touched_partitions(latest: DataFrame, partition_by: list[str]) -> Column:
    """A predicate on the target naming only the partitions this batch touches, so Delta reads and rewrites
    those files alone: MERGE cost follows the rows changed, not the table size. (A key's partition value
    must not change between versions, e.g. partition orders by their creation date.)"""
    if not partition_by:
        return F.lit(True)
    values = latest.select(*partition_by).distinct().limit(MAX_PRUNED_PARTITIONS + 1).collect()
    if len(values) > MAX_PRUNED_PARTITIONS:
        return F.lit(True)  # a wide backfill: scanning everything is cheaper than a huge predicate
    return reduce(
        lambda a, b: a | b,
        [
            reduce(lambda a, b: a & b, [F.col(f"t.`{c}`").eqNullSafe(F.lit(row[c])) for c in partition_by])
            for row in values
        ],
        F.lit(False),
    )


def _drop_tombstoned(spark: SparkSession, latest: DataFrame, tombstones: str, spec: TableSpec) -> DataFrame:
    """Events not newer than their key's hard delete: they must not bring the row back."""
    if not delta.table_exists(spark, tombstones):
        return latest
    condition = F.expr(
        f"{tx.key_condition(spec.primary_key, 's', 'd')} AND NOT {tx.newer_condition(spec.ordering, 's', 'd')}"
    )
    return latest.alias("s").join(
        spark.read.format("delta").load(tombstones).alias("d"), condition, "left_anti"
    )


def _record_tombstones(
    spark: SparkSession, latest: DataFrame, path: str, spec: TableSpec, full_refresh: bool
) -> int:
    """Upsert this batch's delete events (key, ordering, record hash) into the tombstone table."""
    columns = [*spec.primary_key, *spec.ordering, RECORD_HASH]
    deletes = latest.where(F.col(cdc.OP) == cdc.DELETE).select(*[F.col(f"`{c}`") for c in columns])
    if full_refresh or not delta.table_exists(spark, path):
        deletes.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
        return 0  # nothing was in silver to delete
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(deletes.alias("s"), tx.key_condition(spec.primary_key))
        .whenMatchedUpdateAll(condition=tx.newer_condition(spec.ordering))
        .whenNotMatchedInsertAll()
        .execute()
    )
    return 0
