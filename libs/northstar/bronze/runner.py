"""Bronze job: ingest a table's new landing files into its bronze Delta table, exactly once.

Each run takes the landing files no earlier run ingested (a file whose bytes an earlier file already
brought is logged as a re-delivery, its records counted as duplicates), parses them, conforms them to
the schema contract (rescuing values that do not fit), appends them with lineage columns and copies
unparseable records to quarantine. The write replaces any rows of the same files (`replaceWhere`), so a run that
crashed after writing bronze but before logging its files is repaired, not duplicated, by the next run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar import ledger, quarantine
from northstar.bronze import transforms as tx
from northstar.bronze.read import count_records, existing_data_schema, read_batch
from northstar.config import EnvConfig, SourceSpec, TableSpec
from northstar.lake import delta, tables
from northstar.lake.storage import LandingFile
from northstar.lake.tables import Table
from northstar.landing import files as landing
from northstar.ledger import LedgerEntry
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
    with ledger.recorded(spark, env, entry):
        pending = landing.pending_files(spark, env, source.name, table, spec)[:max_files]
        if not pending:
            entry.status = ledger.NOOP
            return entry
        entry.window_start = datetime.fromtimestamp(min(f.modified_ms for f in pending) / 1000, UTC)
        entry.window_end = datetime.fromtimestamp(max(f.modified_ms for f in pending) / 1000, UTC)
        # the same bytes under another name or folder: logged as a re-delivery, its records counted as duplicates
        checksums = landing.content_checksums(spark, pending)
        files, redelivered = landing.split_redeliveries(spark, env, source.name, table, pending, checksums)
        entry.details["files"] = len(files)
        if redelivered:
            entry.details["files_redelivered"] = len(redelivered)
            entry.details["records_redelivered"] = count_records(spark, spec, list(redelivered))
            entry.records_read = entry.records_duplicate = entry.details["records_redelivered"]
        if files:
            _ingest(spark, env, source, table, spec, files, entry)
        landing.record_ingested(
            spark, env, source.name, table, files, entry.run_id, checksums=checksums, redelivered=redelivered
        )
    return entry


def _ingest(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    spec: TableSpec,
    files: list[LandingFile],
    entry: LedgerEntry,
) -> None:
    """Parse the files into bronze (replacing any rows of the same files), count what landed, and copy the
    unparseable records to quarantine."""
    bronze = tables.bronze(source.name, table)
    now = datetime.now(UTC)
    listed = landing.sql_in_list([f.uri for f in files])
    records, plans = read_batch(spark, spec, files, existing_data_schema(spark, bronze.path(env)))
    rows = conform(records, plans, keep=[tx.LANDING_FILE, tx.RECORD_HASH, tx.CORRUPT, pci.PAN_FLAG])
    rows = tx.add_lineage(rows, source=source.name, run_id=entry.run_id, ingest_time=now)
    data_columns = [p.name for p in plans if p.target is not None]
    version = _write_bronze(
        spark,
        rows.select(*[F.col(f"`{c}`") for c in data_columns], *tx.LINEAGE_COLUMNS),
        bronze.path(env),
        f"{tx.LANDING_FILE} IN ({listed})",
    )
    entry.wrote(bronze, version)
    this_run = (
        spark.read.format("delta")
        .option("versionAsOf", version)
        .load(bronze.path(env))
        .where(F.col("_run_id") == entry.run_id)
    )
    written = this_run.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(tx.CORRUPT).alias("corrupt"),
        F.count("_rescued_data").alias("rescued"),
        F.count_if(F.col(pci.PAN_FLAG)).alias("pan_redacted"),
    ).first()
    assert written is not None  # a global aggregate has one row
    entry.records_read += count_records(spark, spec, files)
    entry.records_written = written["rows"] - written["corrupt"]
    entry.details["rescued"] = written["rescued"]
    entry.details["pan_redacted"] = written["pan_redacted"]
    if written["corrupt"]:
        rejected = tx.corrupt_to_quarantine(
            this_run.where(F.col(tx.CORRUPT).isNotNull()),
            run_id=entry.run_id,
            source=source.name,
            table=table,
            file_format=spec.format,
            quarantined_at=now,
        )
        _write_quarantine(spark, env, rejected, tables.quarantine(source.name, table), listed, entry)


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
    spark: SparkSession, env: EnvConfig, rejected: DataFrame, table: Table, files: str, entry: LedgerEntry
) -> None:
    """The unparseable records of the `files` (a SQL list) to quarantine, replacing any an earlier attempt wrote
    for them."""
    path = table.path(env)
    version = quarantine.write(
        spark, rejected, path, replace_where=f"layer = 'bronze' AND landing_file IN ({files})"
    )
    if version is None:  # an earlier attempt wrote these rows
        version = delta.current_version(spark, path)
    entry.wrote(table, version)
    entry.records_quarantined = delta.commit_metrics(spark, path, version)["numOutputRows"]
    entry.details[f"quarantined.{quarantine.MALFORMED}"] = entry.records_quarantined
