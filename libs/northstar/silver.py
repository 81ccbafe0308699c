"""Silver job: MERGE a table's new bronze rows into silver, latest version per key wins.

A run reads the bronze versions no successful silver run has consumed (Delta change data feed), rejects
records with null keys, null ordering values or missing required values to quarantine, counts exact
duplicates and superseded versions, and MERGEs the latest version of each key into silver. The MERGE only
replaces a silver row with a newer one, so an older update arriving late never overwrites a newer one.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from northstar import alerts, delta, ledger, quarantine
from northstar.config import EnvConfig, SourceSpec
from northstar.conflicts import retry_on_conflict
from northstar.ledger import LedgerEntry
from northstar.quality import checks as qc
from northstar.quality import evaluate
from northstar.quality import results as qr
from northstar.quality.spec import TableChecks, load_checks
from northstar.secrets import resolve
from northstar.transforms import cdc, columns, pii
from northstar.transforms import silver as tx
from northstar.transforms.bronze import CORRUPT, LINEAGE_COLUMNS, RECORD_HASH
from northstar.transforms.schema import align_to, merge_types


def parsed_only(bronze_rows: DataFrame) -> DataFrame:
    """Bronze rows that were parsed (unparseable ones carry only `_corrupt_record` and are quarantined)."""
    if CORRUPT not in bronze_rows.columns:
        return bronze_rows
    return bronze_rows.where(F.col(CORRUPT).isNull()).drop(CORRUPT)


def prepare_batch(bronze_rows: DataFrame, spec) -> DataFrame:
    """Bronze rows as silver judges them: parsed ones only, change events normalised, derived columns added.
    (Quarantine keeps each rejected record in this shape as JSON, so a replay parses it back with this schema.)"""
    batch = parsed_only(bronze_rows)
    if spec.cdc:
        batch = cdc.with_deleted_flag(cdc.normalize(batch, spec.cdc))
    if spec.derive:
        batch = columns.derive_columns(batch, spec.derive)  # e.g. a key on a nested path
    return batch


def classify_with_checks(
    spark: SparkSession,
    env: EnvConfig,
    spec,
    batch: DataFrame,
    checks: TableChecks | None,
    conf_dir: Path | str | None = None,
) -> DataFrame:
    """Validate the batch, flag it with the table's row-level checks (conf/quality/), and tag dispositions:
    a record failing a quarantine-severity check is quarantined (reason failed_check, `_check` names it)."""
    validated = tx.validate(batch, spec)
    if checks is not None:
        validated = evaluate.flag(
            spark, env, checks, validated, eligible=F.col(tx.REASON).isNull(), conf_dir=conf_dir
        )
        failed_check = F.col(qc.CHECK).isNotNull()
        validated = validated.withColumn(
            tx.REASON, F.when(failed_check, F.lit(quarantine.FAILED_CHECK)).otherwise(F.col(tx.REASON))
        ).withColumn(
            tx.REASON_DETAIL, F.when(failed_check, F.col(qc.CHECK_DETAIL)).otherwise(F.col(tx.REASON_DETAIL))
        )
    return tx.tag_dispositions(validated, spec.primary_key, spec.ordering)


def silver_table_name(source: str, table: str) -> str:
    return f"silver.{source}_{table}"


def run_silver(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    *,
    run_id: str | None = None,
    full_refresh: bool = False,
    checks: TableChecks | None = None,
    conf_dir: Path | str | None = None,
) -> LedgerEntry:
    """Bring silver up to date with bronze. `full_refresh` rebuilds silver from all of bronze (replay).

    The table's checks (`checks`, default conf/quality/silver.<source>_<table>.yaml) run on each batch:
    quarantine-severity failures go to quarantine, a failed fail-severity check stops the run before any
    write, and every result is stored in ops.check_results.
    """
    spec = source.tables[table]
    if checks is None:
        checks = load_checks(silver_table_name(source.name, table), conf_dir)
    bronze_path = env.bronze_path(source.name, table)
    silver_path = env.silver_path(source.name, table)
    quarantine_path = env.quarantine_path(source.name, table)
    entry = LedgerEntry(
        run_id=run_id or ledger.new_run_id("silver"),
        job="silver",
        env=env.name,
        source=source.name,
        table_name=table,
        layer="silver",
    )
    with ledger.recorded(spark, env, entry):
        end = delta.latest_version(spark, bronze_path)
        done = None if full_refresh else ledger.last_input_version(spark, env, "silver", source.name, table)
        start = 0 if done is None else done + 1
        if end is None or start > end:
            entry.status = ledger.NOOP
            entry.input_version_start = entry.input_version_end = done
            return entry
        entry.input_version_start, entry.input_version_end = start, end
        entry.details["full_refresh"] = int(full_refresh)
        now = datetime.now(UTC)

        if full_refresh:
            batch = spark.read.format("delta").option("versionAsOf", end).load(bronze_path)
        else:
            batch = delta.read_changes(spark, bronze_path, start, end)
        batch = prepare_batch(batch, spec)
        tagged = persisted = classify_with_checks(spark, env, spec, batch, checks, conf_dir).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        try:
            groups = (
                tagged.groupBy(tx.DISPOSITION, tx.REASON)
                .agg(
                    F.count(F.lit(1)).alias("n"),
                    F.min("_ingest_time").alias("first"),
                    F.max("_ingest_time").alias("last"),
                )
                .collect()
            )
            counts = {(g[tx.DISPOSITION], g[tx.REASON]): g["n"] for g in groups}
            entry.window_start = min((g["first"] for g in groups if g["first"]), default=None)
            entry.window_end = max((g["last"] for g in groups if g["last"]), default=None)
            entry.records_read = sum(counts.values())
            by_disposition = Counter()
            for (disposition, _), n in counts.items():
                by_disposition[disposition] += n
            for (disposition, reason), n in counts.items():
                if disposition == tx.QUARANTINED:
                    entry.details[f"quarantined.{reason}"] = n
            entry.details["exact_duplicates"] = by_disposition.get(tx.EXACT_DUPLICATE, 0)
            entry.details["superseded_in_batch"] = by_disposition.get(tx.SUPERSEDED, 0)
            if checks is not None:
                _judge_batch(spark, env, checks, tagged, batch, silver_path, spec, entry, now)
                tagged = tagged.drop(*[c for c in qc.flag_columns(tagged) if c != qc.CHECK])

            entry.records_quarantined = by_disposition.get(tx.QUARANTINED, 0)
            if entry.records_quarantined or full_refresh:
                written = _write_quarantine(
                    spark, tagged, quarantine_path, entry, source.name, table, now, end, full_refresh
                )
                if written is None:
                    entry.details["quarantine_written_by_earlier_attempt"] = 1
                elif written != entry.records_quarantined:
                    raise ledger.AccountingError(
                        f"silver run {entry.run_id}: {entry.records_quarantined} records classified as quarantined "
                        f"but the quarantine commit wrote {written}"
                    )

            if spec.pii:  # what silver keeps of a PII column is its token (transforms/pii.py)
                key = resolve(env.pii_token_key).value.encode("utf-8")
                tagged = pii.tokenize(tagged, spec.pii, key)
            if spec.history:
                offered = by_disposition.get(tx.CANDIDATE, 0) + by_disposition.get(tx.SUPERSEDED, 0)
                applied = (
                    _merge_history(spark, tx.versions(tagged), silver_path, spec, entry, full_refresh)
                    if offered
                    else {}
                )
                entry.details["superseded_in_batch"] = 0  # kept as history, not duplicates
                entry.details["intervals_changed"] = applied.get("numTargetRowsUpdated", 0)
                applied["numTargetRowsUpdated"] = 0  # a moved interval is not a new record
            else:
                offered = by_disposition.get(tx.CANDIDATE, 0)
                applied = (
                    _merge(
                        spark,
                        tx.candidates(tagged),
                        silver_path,
                        spec,
                        entry,
                        full_refresh,
                        env.tombstone_path(source.name, table),
                    )
                    if offered
                    else {}
                )
            inserted = applied.get("numTargetRowsInserted", 0)
            updated = applied.get("numTargetRowsUpdated", 0)
            deleted = applied.get("numTargetRowsDeleted", 0)
            entry.details.update(
                inserted=inserted,
                updated=updated,
                deleted=deleted,
                not_applied=offered - inserted - updated - deleted,
            )
            entry.records_written = inserted + updated + deleted
            entry.records_duplicate = (
                entry.details["exact_duplicates"]
                + entry.details["superseded_in_batch"]
                + entry.details["not_applied"]
            )
        finally:
            persisted.unpersist()
    return entry


def _judge_batch(spark, env, checks, tagged, batch, silver_path, spec, entry: LedgerEntry, now) -> None:
    """Judge the batch with the table's checks, store the results (and the failures in the ledger's details);
    raise QualityCheckFailed, before anything is written, when a fail-severity check failed."""
    baseline = (
        spark.read.format("delta").load(silver_path).schema
        if delta.table_exists(spark, silver_path)
        else None
    )
    found = evaluate.judge(
        spark,
        env,
        checks,
        tagged,
        tx.candidates(tagged).drop(*qc.flag_columns(tagged)),
        run_id=entry.run_id,
        key=spec.primary_key,
        as_of=now,
        rows=entry.records_read,
        row_count_history=evaluate.ledger_row_counts(
            spark, env, job="silver", source=entry.source, table=entry.table_name, before_run=entry.run_id
        ),
        current_schema=batch.schema,
        baseline_schema=baseline,
        ignore_columns=tuple(tx.HISTORY_COLUMNS),
    )
    for result in found:
        if result.status not in (qr.PASS, qr.SKIPPED):
            entry.details[f"check.{result.check_name}"] = result.failed_rows or 1
    qr.write(spark, env, found)
    failed = evaluate.stopping(found)
    if failed:
        alerts.send(
            env,
            alerts.Alert(
                kind="quality_check_failed",
                table=checks.table,
                run_id=entry.run_id,
                message=f"{len(failed)} fail-severity checks failed; the run stopped before writing",
                details={r.check_name: r.explanation for r in failed},
            ),
        )
        raise evaluate.QualityCheckFailed(checks.table, entry.run_id, failed)


def _write_quarantine(
    spark, tagged, path, entry, source, table, now, bronze_version, full_refresh
) -> int | None:
    """Append this window's rejects once: the write is keyed to the bronze version it covers, so a retry
    of the same window is skipped by Delta (idempotent writes with txnAppId/txnVersion).
    Returns the rows this attempt wrote, or None when an earlier attempt already wrote them."""
    rejected = tx.rejected_to_quarantine(
        tagged, run_id=entry.run_id, source=source, table=table, quarantined_at=now
    )
    version = quarantine.write_once(
        spark,
        rejected,
        path,
        app_id=f"silver-quarantine:{source}.{table}",
        window_version=bronze_version,
        replace_where="layer = 'silver'" if full_refresh else None,
    )
    if version is None:
        return None  # already written by an earlier attempt at this window
    entry.delta_versions[f"quarantine.{source}_{table}"] = version
    return delta.commit_metrics(spark, path, version).get("numOutputRows", 0)


def _merge(
    spark, latest: DataFrame, path: str, spec, entry: LedgerEntry, full_refresh: bool, tombstones: str
) -> dict[str, int]:
    """MERGE the latest version of each key into silver; create (or, on full refresh, replace) the table.

    A change feed's deletes: `soft` keeps the row flagged `_deleted` (with its last known values); `hard`
    removes it and records a tombstone, so an older event of that key arriving later cannot bring it back.
    """
    name = f"silver.{entry.source}_{entry.table_name}"
    hard_deletes = spec.cdc is not None and spec.cdc.deletes == "hard"
    if hard_deletes:
        latest = _drop_tombstoned(spark, latest, tombstones, spec)
    if full_refresh or not delta.table_exists(spark, path):
        first = latest.where(F.col(cdc.OP) != cdc.DELETE) if hard_deletes else latest
        (
            first.write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .option("delta.enableChangeDataFeed", "true")
            .partitionBy(*spec.partition_by)
            .save(path)
        )
        version = delta.latest_version(spark, path)
        entry.delta_versions[name] = version
        metrics = {
            "numTargetRowsInserted": delta.commit_metrics(spark, path, version).get("numOutputRows", 0)
        }
        if hard_deletes:
            metrics["numTargetRowsDeleted"] = _record_tombstones(
                spark, latest, tombstones, spec, full_refresh
            )
        return metrics
    target = spark.read.format("delta").load(path).schema
    if merge_types(target, latest.schema) != target:
        # new columns or nested fields: evolve the table first (a metadata-only commit), rather than
        # MERGE ... WITH SCHEMA EVOLUTION, which turns NULL structs into structs of NULLs (delta-io/delta#2248)
        empty = spark.createDataFrame([], latest.schema)
        empty.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
        target = spark.read.format("delta").load(path).schema
    newer = tx.newer_condition(spec.ordering)
    condition = F.expr(tx.key_condition(spec.primary_key)) & _touched_partitions(latest, spec.partition_by)

    def build_merge():  # rebuilt on every try, so a retry after a concurrent commit reads the new version
        return _merge_builder(spark, path, latest, target, spec, condition, newer, hard_deletes)

    def attempt() -> int:
        start = delta.latest_version(spark, path)
        build_merge().execute()
        return start

    before = retry_on_conflict(attempt, what=name)
    version = delta.latest_version(spark, path)
    if version == before:  # nothing to merge (e.g. every event was older than a tombstone): no commit
        metrics = {}
    else:
        entry.delta_versions[name] = version
        metrics = delta.commit_metrics(spark, path, version)
    if hard_deletes:
        _record_tombstones(spark, latest, tombstones, spec, full_refresh=False)
    return metrics


def _merge_builder(spark, path, latest, target, spec, condition, newer, hard_deletes):
    """The silver MERGE: insert new keys, update with strictly newer versions (CDC deletes per policy)."""
    merge = DeltaTable.forPath(spark, path).alias("t").merge(align_to(latest, target).alias("s"), condition)
    if spec.cdc is None:
        merge = merge.whenMatchedUpdateAll(condition=newer).whenNotMatchedInsertAll()
    else:
        is_delete = f"s.{cdc.OP} = '{cdc.DELETE}'"
        if hard_deletes:
            merge = merge.whenMatchedDelete(condition=f"{newer} AND {is_delete}")
        else:
            keep_values = {
                c: f"s.`{c}`"
                for c in [*spec.ordering, cdc.OP, cdc.DELETED, *LINEAGE_COLUMNS]
                if c in target.fieldNames()
            }
            merge = merge.whenMatchedUpdate(condition=f"{newer} AND {is_delete}", set=keep_values)
        merge = merge.whenMatchedUpdateAll(condition=f"{newer} AND NOT {is_delete}")
        merge = merge.whenNotMatchedInsertAll(condition=f"NOT {is_delete}" if hard_deletes else None)
    return merge


def _evolved_schema(spark: SparkSession, path: str, incoming: DataFrame):
    """The table's schema after adding what `incoming` brings (new columns or nested fields).

    Done as a metadata-only commit rather than MERGE ... WITH SCHEMA EVOLUTION, which turns NULL structs
    into structs of NULLs (delta-io/delta#2248).
    """
    target = spark.read.format("delta").load(path).schema
    if merge_types(target, incoming.schema) != target:
        empty = spark.createDataFrame([], incoming.schema)
        empty.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
        target = spark.read.format("delta").load(path).schema
    return target


def _merge_history(
    spark: SparkSession, new_versions: DataFrame, path: str, spec, entry: LedgerEntry, full_refresh: bool
) -> dict:
    """SCD type 2: recompute the intervals of every key this batch touches from all its versions (stored
    and new), then MERGE on (key, record hash): new versions are inserted, moved intervals updated."""
    name = f"silver.{entry.source}_{entry.table_name}"
    if full_refresh or not delta.table_exists(spark, path):
        (
            tx.with_validity(new_versions, spec)
            .write.format("delta")
            .mode("overwrite")
            .option("overwriteSchema", "true")
            .option("delta.enableChangeDataFeed", "true")
            .partitionBy(*spec.partition_by)
            .save(path)
        )
        version = delta.latest_version(spark, path)
        entry.delta_versions[name] = version
        return {"numTargetRowsInserted": delta.commit_metrics(spark, path, version).get("numOutputRows", 0)}
    target = _evolved_schema(spark, path, new_versions)
    keys = [F.col(f"`{c}`") for c in spec.primary_key]
    stored = (
        spark.read.format("delta")
        .load(path)
        .join(new_versions.select(*keys).distinct(), spec.primary_key, "left_semi")
        .drop(*tx.HISTORY_COLUMNS)
    )
    incoming = align_to(new_versions, target).drop(*tx.HISTORY_COLUMNS)
    # a version already stored keeps its stored lineage (the first delivery), like the latest-wins path
    first_delivery = Window.partitionBy(*keys, F.col(RECORD_HASH)).orderBy(F.col("_stored").desc())
    all_versions = (
        stored.withColumn("_stored", F.lit(True))
        .unionByName(incoming.withColumn("_stored", F.lit(False)))
        .withColumn("_n", F.row_number().over(first_delivery))
        .where("_n = 1")
        .drop("_n", "_stored")
    )
    history = align_to(tx.with_validity(all_versions, spec), target)
    same_version = f"{tx.key_condition(spec.primary_key)} AND t.{RECORD_HASH} = s.{RECORD_HASH}"
    moved = f"NOT (t.{tx.VALID_TO} <=> s.{tx.VALID_TO}) OR t.{tx.IS_CURRENT} <> s.{tx.IS_CURRENT}"
    before = delta.latest_version(spark, path)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(history.alias("s"), same_version)
        .whenMatchedUpdate(condition=moved, set={c: f"s.{c}" for c in (tx.VALID_TO, tx.IS_CURRENT)})
        .whenNotMatchedInsertAll()
        .execute()
    )
    version = delta.latest_version(spark, path)
    if version == before:
        return {}
    entry.delta_versions[name] = version
    return delta.commit_metrics(spark, path, version)


MAX_PRUNED_PARTITIONS = 500


def _touched_partitions(latest: DataFrame, partition_by: list[str]) -> Column:
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


def _drop_tombstoned(spark: SparkSession, latest: DataFrame, tombstones: str, spec) -> DataFrame:
    """Events not newer than their key's hard delete: they must not bring the row back."""
    if not delta.table_exists(spark, tombstones):
        return latest
    condition = F.expr(
        f"{tx.key_condition(spec.primary_key, 's', 'd')} AND NOT {tx.newer_condition(spec.ordering, 's', 'd')}"
    )
    return latest.alias("s").join(
        spark.read.format("delta").load(tombstones).alias("d"), condition, "left_anti"
    )


def _record_tombstones(spark: SparkSession, latest: DataFrame, path: str, spec, full_refresh: bool) -> int:
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
