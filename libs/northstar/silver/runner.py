"""Silver job: MERGE a table's new bronze rows into silver, latest version per key wins.

A run reads the bronze versions no successful silver run has consumed (Delta change data feed), rejects
records with null keys, null ordering values or missing required values to quarantine, counts exact
duplicates and superseded versions, and MERGEs the latest version of each key into silver. The MERGE only
replaces a silver row with a newer one, so an older update arriving late never overwrites a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from northstar import ledger, quarantine
from northstar.config import EnvConfig, SourceSpec, TableSpec
from northstar.lake import commits, delta, tables
from northstar.lake.commits import Tag
from northstar.lake.tables import Table
from northstar.ledger import AccountingError, InputWindow, LedgerEntry
from northstar.observability import alerts
from northstar.quality import checks as qc
from northstar.quality import evaluate
from northstar.quality import results as qr
from northstar.quality.spec import TableChecks, load_checks
from northstar.secrets import resolve
from northstar.silver import transforms as tx
from northstar.silver.accounting import Dispositions, count_dispositions
from northstar.silver.batch import classify_with_checks, prepare_batch
from northstar.silver.merge import merge_history, merge_latest
from northstar.transforms import pii


@dataclass(frozen=True)
class SilverTables:
    """The tables a run of one source table reads and writes."""

    bronze: Table
    silver: Table
    quarantine: Table
    tombstones: Table

    @classmethod
    def of(cls, source: SourceSpec, table: str) -> SilverTables:
        return cls(
            bronze=tables.bronze(source.name, table),
            silver=tables.silver(source.name, table, source.tables[table]),
            quarantine=tables.quarantine(source.name, table),
            tombstones=tables.tombstones(source.name, table),
        )


def run_silver(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    *,
    run_id: str | None = None,
    full_refresh: bool = False,
    checks: TableChecks | None = None,
) -> LedgerEntry:
    """Bring silver up to date with bronze. `full_refresh` rebuilds silver from all of bronze (replay).

    The table's checks (`checks`, default conf/quality/silver.<source>_<table>.yaml) run on each batch:
    quarantine-severity failures go to quarantine, a failed fail-severity check stops the run before any
    write, and every result is stored in ops.check_results.
    """
    spec = source.tables[table]
    names = SilverTables.of(source, table)
    checks = checks if checks is not None else load_checks(names.silver.full_name)
    entry = ledger.start("silver", env, source=source.name, table=table, layer="silver", run_id=run_id)
    with ledger.leased(spark, env, entry):
        window = ledger.pending_input(spark, env, entry, names.bronze.path(env), full_refresh=full_refresh)
        if window is None:
            return entry
        entry.details["full_refresh"] = int(full_refresh)
        window = resume_window(spark, env, names, entry, window, full_refresh)
        batch = prepare_batch(_read_bronze(spark, names.bronze.path(env), window, full_refresh), spec)
        tagged = classify_with_checks(spark, env, spec, batch, checks).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            _apply(spark, env, spec, names, tagged, batch, checks, entry, window, full_refresh)
        finally:
            tagged.unpersist()
    return entry


def batch_tag(names: SilverTables, entry: LedgerEntry, window: InputWindow, full_refresh: bool) -> Tag:
    """The identity this run's commits carry: the silver table and the bronze version window it applies."""
    return Tag(
        job="silver",
        table=names.silver.full_name,
        run_id=entry.run_id,
        window=(window.start, window.end),
        full_refresh=full_refresh,
    )


def resume_window(
    spark: SparkSession,
    env: EnvConfig,
    names: SilverTables,
    entry: LedgerEntry,
    window: InputWindow,
    full_refresh: bool,
) -> InputWindow:
    """The window of an interrupted attempt that starts where this run starts, when bronze has grown since: the
    retry applies exactly that batch, so it finds what the attempt committed (quarantine rows, the MERGE) and
    applies the rest once. Bronze versions committed since wait for the next run."""
    wanted = batch_tag(names, entry, window, full_refresh)
    for path in (names.silver.path(env), names.quarantine.path(env)):
        for commit in commits.recent(spark, path):
            found = commit.tag
            end = earlier_end(found, wanted)
            if found is not None and end is not None and not ledger.succeeded(spark, env, found.run_id):
                entry.input_version_end = end
                entry.details["window_of_earlier_attempt"] = 1
                return InputWindow(window.start, end, window.first)
    return window


def earlier_end(found: Tag | None, wanted: Tag) -> int | None:
    """The end of `found`'s window when it is an attempt at a shorter window of the same start than `wanted`."""
    if found is None or found.window is None or wanted.window is None:
        return None
    same = (found.job, found.table, found.full_refresh) == (wanted.job, wanted.table, wanted.full_refresh)
    start, end = found.window
    return end if same and start == wanted.window[0] and end < wanted.window[1] else None


def _read_bronze(spark: SparkSession, path: str, window: InputWindow, full_refresh: bool) -> DataFrame:
    """All of bronze as of the window's end (full refresh), else the rows its versions added."""
    if full_refresh:
        return spark.read.format("delta").option("versionAsOf", window.end).load(path)
    return delta.read_changes(spark, path, window.start, window.end)


def _apply(
    spark: SparkSession,
    env: EnvConfig,
    spec: TableSpec,
    names: SilverTables,
    tagged: DataFrame,
    batch: DataFrame,
    checks: TableChecks | None,
    entry: LedgerEntry,
    window: InputWindow,
    full_refresh: bool,
) -> None:
    """Count the batch, judge it, then write its rejects to quarantine and its latest versions to silver."""
    counts = count_dispositions(tagged, "_ingest_time")
    counts.record(entry)
    if checks is not None:
        _judge_batch(spark, env, checks, tagged, batch, names.silver, spec, entry)
        tagged = tagged.drop(*[c for c in qc.flag_columns(tagged) if c != qc.CHECK])
    tag = batch_tag(names, entry, window, full_refresh)
    if counts.quarantined or full_refresh:
        _write_quarantine(spark, env, tagged, names.quarantine, entry, tag)
    merge_batch(spark, env, tagged, spec, names, entry, counts, full_refresh=full_refresh, tag=tag)


def merge_batch(
    spark: SparkSession,
    env: EnvConfig,
    tagged: DataFrame,
    spec: TableSpec,
    names: SilverTables,
    entry: LedgerEntry,
    counts: Dispositions,
    *,
    full_refresh: bool,
    tag: Tag | None = None,
) -> None:
    """Tokenize the batch's PII columns, MERGE its candidates (history tables: every version) into silver, and
    settle the run's accounting: written = rows inserted, updated or deleted; duplicates = exact copies +
    superseded versions + candidates the MERGE did not apply (not newer than what silver holds).

    Expects entry.details["exact_duplicates"] and ["superseded_in_batch"] to be set (Dispositions.record). `tag`:
    the batch's identity; when an interrupted attempt at the same batch already committed the MERGE, its metrics
    are this run's (merge.adopt_earlier)."""
    if spec.pii:  # what silver keeps of a PII column is its token (transforms/pii.py)
        tagged = pii.tokenize(tagged, spec.pii, resolve(env.pii_token_key).value.encode("utf-8"))
    if spec.history:
        offered = counts.candidates + counts.superseded
        applied = (
            merge_history(
                spark, env, tx.versions(tagged), names.silver, spec, entry, full_refresh=full_refresh, tag=tag
            )
            if offered
            else {}
        )
        entry.details["superseded_in_batch"] = 0  # kept as history, not duplicates
        entry.details["intervals_changed"] = applied.get("numTargetRowsUpdated", 0)
        applied["numTargetRowsUpdated"] = 0  # a moved interval is not a new record
    else:
        offered = counts.candidates
        applied = (
            merge_latest(
                spark,
                env,
                tx.candidates(tagged),
                names.silver,
                spec,
                entry,
                full_refresh=full_refresh,
                tombstones=names.tombstones,
                tag=tag,
            )
            if offered
            else {}
        )
    inserted, updated, deleted = (
        applied.get(f"numTargetRows{kind}", 0) for kind in ("Inserted", "Updated", "Deleted")
    )
    entry.records_written = inserted + updated + deleted
    entry.details.update(
        inserted=inserted, updated=updated, deleted=deleted, not_applied=offered - entry.records_written
    )
    entry.records_duplicate = sum(
        entry.details[k] for k in ("exact_duplicates", "superseded_in_batch", "not_applied")
    )


def _judge_batch(
    spark: SparkSession,
    env: EnvConfig,
    checks: TableChecks,
    tagged: DataFrame,
    batch: DataFrame,
    silver: Table,
    spec: TableSpec,
    entry: LedgerEntry,
) -> None:
    """Judge the batch with the table's checks, store the results (and the failures in the ledger's details);
    raise QualityCheckFailed, before anything is written, when a fail-severity check failed."""
    path = silver.path(env)
    baseline = spark.read.format("delta").load(path).schema if delta.table_exists(spark, path) else None
    found = evaluate.judge(
        spark,
        env,
        checks,
        tagged,
        tx.candidates(tagged).drop(*qc.flag_columns(tagged)),
        run_id=entry.run_id,
        key=spec.primary_key,
        as_of=datetime.now(UTC),
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
    spark: SparkSession,
    env: EnvConfig,
    tagged: DataFrame,
    table: Table,
    entry: LedgerEntry,
    tag: Tag,
) -> None:
    """Append this window's rejects once: the write is keyed to the bronze version it covers, so a retry of the
    same window is skipped by Delta (idempotent writes with txnAppId/txnVersion); a full refresh replaces every
    silver reject. The rows written must be the rows classified as quarantined."""
    rejected = tx.rejected_to_quarantine(
        tagged,
        run_id=entry.run_id,
        source=entry.source,
        table=entry.table_name,
        quarantined_at=datetime.now(UTC),
    )
    path = table.path(env)
    assert tag.window is not None  # a silver batch is a bronze version window
    version = quarantine.write(
        spark,
        rejected,
        path,
        once=None
        if tag.full_refresh
        else (f"silver-quarantine:{entry.source}.{entry.table_name}", tag.window[1]),
        replace_where="layer = 'silver'" if tag.full_refresh else None,
        tag=tag,
    )
    if version is None:  # already written by an earlier attempt at this window
        entry.details["quarantine_written_by_earlier_attempt"] = 1
        return
    entry.wrote(table, version)
    written = delta.commit_metrics(spark, path, version).get("numOutputRows", 0)
    if written != entry.records_quarantined:
        raise AccountingError(
            f"silver run {entry.run_id}: {entry.records_quarantined} records classified as quarantined "
            f"but the quarantine commit wrote {written}"
        )
