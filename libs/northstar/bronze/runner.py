"""Bronze job: ingest a table's new landing files into its bronze Delta table, exactly once.

Each run takes the landing files no earlier run ingested (a file whose bytes an earlier file already
brought is logged as a re-delivery, its records counted as duplicates), parses them, conforms them to
the schema contract (rescuing values that do not fit), appends them with lineage columns and copies
unparseable records to quarantine. The write replaces any rows of the same files (`replaceWhere`), so a run that
crashed after writing bronze but before logging its files is repaired, not duplicated, by the next run.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from northstar import ledger, quarantine
from northstar.bronze import transforms as tx
from northstar.bronze import unreadable
from northstar.bronze.read import count_records, existing_data_schema, read_batch
from northstar.config import EnvConfig, SourceSpec, TableSpec
from northstar.lake import delta, tables
from northstar.lake.storage import LandingFile
from northstar.lake.tables import Table
from northstar.landing import files as landing
from northstar.ledger import LedgerEntry
from northstar.observability import alerts
from northstar.quality import rescued as rescued_check
from northstar.quality import results as check_results
from northstar.transforms import pci
from northstar.transforms.schema import conform

# Bronze rows are found by lineage (which file, which run), so those are the columns Delta keeps stats on.
STATS_COLUMNS = ",".join(
    [tx.LANDING_FILE, "_run_id", "_ingest_time", tx.RECORD_HASH, "_rescued_data", tx.CORRUPT]
)


def run_bronze(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    *,
    run_id: str | None = None,
    max_files: int | None = None,
) -> LedgerEntry:
    """Ingest the table's pending landing files; returns the ledger entry it recorded.

    One pass parses and writes every record to bronze: parsed records with their columns, unparseable
    ones with their raw text in `_corrupt_record` (so bronze holds everything that landed, and silver
    never reads those). The unparseable ones are then copied to quarantine from bronze, a cheap scan.
    """
    spec = source.tables[table]
    entry = ledger.start("bronze", env, source=source.name, table=table, layer="bronze", run_id=run_id)
    with ledger.leased(spark, env, entry):
        logged = landing.logged_files(spark, env, source.name, table)
        pending = landing.pending_files(spark, env, spec, logged)[:max_files]
        if not pending:
            entry.status = ledger.NOOP
            return entry
        entry.window_start = datetime.fromtimestamp(min(f.modified_ms for f in pending) / 1000, UTC)
        entry.window_end = datetime.fromtimestamp(max(f.modified_ms for f in pending) / 1000, UTC)
        # the same bytes under another name or folder: logged as a re-delivery, its records counted as duplicates
        checksums = landing.content_checksums(spark, pending)
        deliveries = landing.sort_deliveries(spark, env, source.name, table, pending, checksums, logged)
        files, redelivered = deliveries.fresh, deliveries.redelivered
        entry.details["files"] = len(files)
        if deliveries.replaced:  # new bytes under a name delivered before: a new delivery, said so
            entry.details["files_replaced"] = len(deliveries.replaced)
        if redelivered:
            entry.details["files_redelivered"] = len(redelivered)
            entry.details["records_redelivered"] = count_records(spark, spec, list(redelivered))
            entry.records_read = entry.records_duplicate = entry.details["records_redelivered"]
        if files:
            _ingest_readable(spark, env, source, table, spec, deliveries, checksums, entry)
        landing.record_ingested(
            spark, env, source.name, table, files, entry.run_id, checksums=checksums, redelivered=redelivered
        )
    return entry


def _ingest_readable(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    spec: TableSpec,
    deliveries: landing.Deliveries,
    checksums: dict[str, str],
    entry: LedgerEntry,
) -> None:
    """Ingest the deliveries but the files that cannot be read as they are: those (CSV that is not UTF-8, and,
    when the batch cannot be read, each file that cannot be read alone) go to quarantine as whole-file entries."""
    undecodable = unreadable.undecodable(spark, spec, deliveries.fresh)
    bad = {f: (quarantine.INVALID_ENCODING, why) for f, why in undecodable.items()}
    try:
        _ingest(spark, env, source, table, spec, _without(deliveries, bad), entry)
    except unreadable.READ_ERRORS:
        existing = existing_data_schema(spark, tables.bronze(source.name, table).path(env))
        refused = unreadable.find_unreadable(spark, spec, _without(deliveries, bad).fresh, existing)
        if not refused:
            raise
        bad |= {f: (quarantine.UNREADABLE_FILE, why) for f, why in refused.items()}
        _ingest(spark, env, source, table, spec, _without(deliveries, bad), entry)
    if bad:
        _quarantine_files(spark, env, source.name, table, bad, checksums, entry)


def _without(deliveries: landing.Deliveries, bad: dict[LandingFile, tuple[str, str]]) -> landing.Deliveries:
    """The deliveries less the files in `bad`."""
    good = [f for f in deliveries.fresh if f not in bad]
    uris = {f.uri for f in good}
    return dataclasses.replace(
        deliveries, fresh=good, replaced={u: r for u, r in deliveries.replaced.items() if u in uris}
    )


def _quarantine_files(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    bad: dict[LandingFile, tuple[str, str]],
    checksums: dict[str, str],
    entry: LedgerEntry,
) -> None:
    """Whole-file quarantine entries for the files (replacing any an earlier attempt of this run wrote), an
    alert naming them, and the count in the ledger's details."""
    entries = unreadable.file_entries(
        spark,
        bad,
        checksums,
        run_id=entry.run_id,
        source=source,
        table=table,
        quarantined_at=datetime.now(UTC),
    )
    uris = landing.sql_in_list([f.uri for f in bad])
    quarantine.write(
        spark,
        entries,
        tables.quarantine(source, table).path(env),
        replace_where=f"layer = 'bronze' AND landing_file IN ({uris}) AND run_id = '{entry.run_id}'",
    )
    entry.details["files_unreadable"] = len(bad)
    alerts.send(
        env,
        alerts.Alert(
            kind="file_quarantined",
            table=f"{source}.{table}",
            run_id=entry.run_id,
            message=f"{len(bad)} landing file(s) could not be read and are in quarantine; the others were ingested",
            details={f.uri: f"{code}: {why}" for f, (code, why) in bad.items()},
        ),
    )


def _ingest(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    spec: TableSpec,
    deliveries: landing.Deliveries,
    entry: LedgerEntry,
) -> None:
    """Parse the files into bronze (replacing any rows an interrupted attempt wrote for the same deliveries),
    count what landed, and copy the unparseable records to quarantine."""
    files = deliveries.fresh
    if not files:
        return
    bronze = tables.bronze(source.name, table)
    now = datetime.now(UTC)
    records, plans = read_batch(spark, spec, files, existing_data_schema(spark, bronze.path(env)))
    rows = conform(records, plans, keep=[tx.LANDING_FILE, tx.RECORD_HASH, tx.CORRUPT, pci.PAN_FLAG])
    rows = tx.add_lineage(rows, source=source.name, run_id=entry.run_id, ingest_time=now)
    data_columns = [p.name for p in plans if p.target is not None]
    version = _write_bronze(
        spark,
        rows.select(*[F.col(f"`{c}`") for c in data_columns], *tx.LINEAGE_COLUMNS),
        bronze.path(env),
        landing.rows_of_deliveries(deliveries, tx.LANDING_FILE, "_run_id"),
    )
    entry.wrote(bronze, version)
    this_run, written = _rows_written(spark, bronze.path(env), version, entry.run_id)
    entry.records_read += count_records(spark, spec, files)
    entry.records_written = written["rows"] - written["corrupt"]
    entry.details["rescued"] = written["rescued"]
    entry.details["pan_redacted"] = written["pan_redacted"]
    if written["rescued"]:
        parsed = this_run.where(F.col(tx.CORRUPT).isNull())
        _check_rescued(spark, env, source.name, table, spec, parsed, data_columns, entry)
    if written["corrupt"]:
        rejected = tx.corrupt_to_quarantine(
            this_run.where(F.col(tx.CORRUPT).isNotNull()),
            run_id=entry.run_id,
            source=source.name,
            table=table,
            file_format=spec.format,
            quarantined_at=now,
        )
        in_quarantine = landing.rows_of_deliveries(deliveries, "landing_file", "run_id")
        _write_quarantine(spark, env, rejected, tables.quarantine(source.name, table), in_quarantine, entry)
        entry.details[f"quarantined.{quarantine.MALFORMED}"] = written["corrupt"] - written["undecodable"]
        if written["undecodable"]:
            entry.details[f"quarantined.{quarantine.INVALID_ENCODING}"] = written["undecodable"]


def _rows_written(spark: SparkSession, path: str, version: int, run_id: str) -> tuple[DataFrame, Row]:
    """The run's rows in bronze at `version`, and their counts: rows, corrupt, undecodable, rescued, pan_redacted."""
    this_run = (
        spark.read.format("delta").option("versionAsOf", version).load(path).where(F.col("_run_id") == run_id)
    )
    written = this_run.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(tx.CORRUPT).alias("corrupt"),
        F.count_if(~F.is_valid_utf8(tx.CORRUPT)).alias("undecodable"),
        F.count("_rescued_data").alias("rescued"),
        F.count_if(F.col(pci.PAN_FLAG)).alias("pan_redacted"),
    ).first()
    assert written is not None  # a global aggregate has one row
    return this_run, written


def _check_rescued(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    spec: TableSpec,
    parsed: DataFrame,
    columns: list[str],
    entry: LedgerEntry,
) -> None:
    """Store how much of each column the contract rescued (quality/rescued.py); alert on each column over
    the table's `rescued_share_warn`."""
    rows, rescued = rescued_check.rescued_counts(parsed, columns)
    bronze = tables.bronze(source, table)
    where = f"_rescued_data of {bronze.full_name} (run {entry.run_id}) and of silver"
    found = rescued_check.results(
        rows,
        rescued,
        warn_share=spec.rescued_share_warn,
        run_id=entry.run_id,
        table=bronze.full_name,
        where=where,
    )
    check_results.write(spark, env, found)
    for result in found:
        if result.status == check_results.WARN:
            entry.details[result.check_name] = result.failed_rows or 0
            alerts.send(
                env,
                alerts.Alert(
                    kind="column_emptied_by_rescue",
                    table=f"{source}.{table}",
                    run_id=entry.run_id,
                    message=result.explanation,
                    details={"column": result.check_name.split(".", 1)[1], "share": f"{result.observed:.4f}"},
                    severity="warn",
                ),
            )


def _write_bronze(spark: SparkSession, rows: DataFrame, path: str, file_predicate: str) -> int:
    """Append the rows, replacing any rows an earlier, crashed attempt wrote for the same files; the version."""
    (
        rows.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", file_predicate)
        .option("mergeSchema", "true")
        .option("delta.enableChangeDataFeed", "true")
        .option("delta.dataSkippingStatsColumns", STATS_COLUMNS)
        .partitionBy("_ingest_date")
        .save(path)
    )
    return delta.current_version(spark, path)


def _write_quarantine(
    spark: SparkSession,
    env: EnvConfig,
    rejected: DataFrame,
    table: Table,
    deliveries: str,
    entry: LedgerEntry,
) -> None:
    """The unparseable records of the deliveries (`deliveries`: a SQL predicate on their rows) to quarantine,
    replacing any an earlier attempt wrote for them."""
    path = table.path(env)
    version = quarantine.write(spark, rejected, path, replace_where=f"layer = 'bronze' AND ({deliveries})")
    if version is None:  # an earlier attempt wrote these rows
        version = delta.current_version(spark, path)
    entry.wrote(table, version)
    entry.records_quarantined = delta.commit_metrics(spark, path, version)["numOutputRows"]
