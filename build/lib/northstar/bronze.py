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
from pyspark.sql import types as T

from northstar import csv_files, delta, landing, ledger, quarantine
from northstar.config import CsvOptions, EnvConfig, SourceSpec, TableSpec
from northstar.ledger import LedgerEntry
from northstar.storage import LandingFile
from northstar.transforms import bronze as tx
from northstar.transforms import columns, pci
from northstar.transforms.schema import ColumnPlan, conform, plan_columns

# Bronze rows are found by lineage (which file, which run), so those are the columns Delta keeps stats on.
STATS_COLUMNS = ",".join(
    [tx.LANDING_FILE, "_run_id", "_ingest_time", tx.RECORD_HASH, "_rescued_data", tx.CORRUPT]
)


def existing_data_schema(spark: SparkSession, path: str) -> T.StructType | None:
    """The bronze table's data columns (lineage left out), or None before its first write."""
    if not delta.table_exists(spark, path):
        return None
    schema = spark.read.format("delta").load(path).schema
    return T.StructType([f for f in schema.fields if f.name not in tx.LINEAGE_COLUMNS])


def read_batch(
    spark: SparkSession, spec: TableSpec, files: list[LandingFile], existing: T.StructType | None
) -> tuple[DataFrame, list[ColumnPlan]]:
    """Read the files into one frame of parsed records, and plan each column against the contract.

    Besides the delivered columns the frame has `_landing_file`, `_record_hash` and `_corrupt_record`
    (the raw text of a record that could not be parsed, null otherwise). Raises SchemaDriftError under
    drift policy `fail`.
    """
    paths = [f.path for f in files]
    landing_file = F.col("_metadata.file_path").alias(tx.LANDING_FILE)
    if spec.format == "jsonl":
        # plain inference: strings stay strings (no "01234" -> 1234), numbers are long or double
        delivered = spark.read.options(dropFieldIfAllNull=True).json(paths).schema
        delivered = T.StructType([f for f in delivered.fields if f.name != tx.CORRUPT])
        lines = tx.non_blank_lines(spark.read.text(paths).select(F.col("value").alias(tx.RAW), landing_file))
        if spec.redact_card_numbers:
            lines = pci.redact_card_numbers(lines, tx.RAW)  # before parsing, hashing or storing anything
        records = tx.hash_raw_record(tx.parse_json_lines(lines, delivered)).drop(tx.RAW)
    elif spec.format == "csv":
        # each file read by its own header, renamed by the table's mapping (csv_files.py)
        records, delivered = csv_files.read_csv(spark, spec, files)
        records = tx.hash_columns(records, delivered.fieldNames())
    else:
        records = spark.read.option("mergeSchema", "true").parquet(*paths).select("*", landing_file)
        delivered = T.StructType([f for f in records.schema.fields if f.name != tx.LANDING_FILE])
        records = tx.hash_columns(records, delivered.fieldNames()).withColumn(
            tx.CORRUPT, F.lit(None).cast("string")
        )
    if spec.rename and spec.format != "csv":
        records = columns.rename_columns(records, delivered.fieldNames(), spec.rename)
        renamed = columns.mapped_names(delivered.fieldNames(), spec.rename)
        delivered = T.StructType(
            [T.StructField(n, f.dataType, True) for n, f in zip(renamed, delivered.fields, strict=True)]
        )
    if spec.redact_card_numbers and spec.format != "jsonl":
        records = pci.redact_string_columns(records, [c for c in delivered.fieldNames()] + [tx.CORRUPT])
    if pci.PAN_FLAG not in records.columns:
        records = records.withColumn(pci.PAN_FLAG, F.lit(False))
    return records, plan_columns(spec, delivered, existing)


def count_records(spark: SparkSession, spec: TableSpec, files: list[LandingFile]) -> int:
    """Records in the files, counted independently of the parser (non-blank lines; rows for Parquet)."""
    paths = [f.path for f in files]
    if spec.format == "parquet":
        return spark.read.parquet(*paths).count()
    lines = tx.non_blank_lines(
        spark.read.text(paths).select(F.col("value").alias(tx.RAW), "_metadata.file_path")
    )
    if spec.format == "csv" and (spec.csv or CsvOptions()).header:
        counts = lines.agg(
            F.count(F.lit(1)).alias("lines"), F.count_distinct("file_path").alias("files")
        ).first()
        return counts["lines"] - counts["files"]  # one header line per file that is not empty
    return lines.count()


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
    bronze_path = env.bronze_path(source.name, table)
    quarantine_path = env.quarantine_path(source.name, table)
    bronze_name = f"bronze.{source.name}_{table}"
    entry = LedgerEntry(
        run_id=run_id or ledger.new_run_id("bronze"),
        job="bronze",
        env=env.name,
        source=source.name,
        table_name=table,
        layer="bronze",
    )
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
        if not files:
            landing.record_ingested(
                spark, env, source.name, table, [], entry.run_id, checksums=checksums, redelivered=redelivered
            )
            return entry
        now = datetime.now(UTC)
        file_predicate = landing.sql_in_list([f.uri for f in files])

        records, plans = read_batch(spark, spec, files, existing_data_schema(spark, bronze_path))
        rows = conform(records, plans, keep=[tx.LANDING_FILE, tx.RECORD_HASH, tx.CORRUPT, pci.PAN_FLAG])
        rows = tx.add_lineage(rows, source=source.name, run_id=entry.run_id, ingest_time=now)
        data_columns = [p.name for p in plans if p.target is not None]
        (
            rows.select(*[F.col(f"`{c}`") for c in data_columns], *tx.LINEAGE_COLUMNS)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"{tx.LANDING_FILE} IN ({file_predicate})")
            .option("mergeSchema", "true")
            .option("delta.enableChangeDataFeed", "true")
            .option("delta.dataSkippingStatsColumns", STATS_COLUMNS)
            .partitionBy("_ingest_date")
            .save(bronze_path)
        )
        version = delta.latest_version(spark, bronze_path)
        entry.delta_versions[bronze_name] = version
        this_run = (
            spark.read.format("delta")
            .option("versionAsOf", version)
            .load(bronze_path)
            .where(F.col("_run_id") == entry.run_id)
        )
        written = this_run.agg(
            F.count(F.lit(1)).alias("rows"),
            F.count(tx.CORRUPT).alias("corrupt"),
            F.count("_rescued_data").alias("rescued"),
            F.count_if(F.col(pci.PAN_FLAG)).alias("pan_redacted"),
        ).first()
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
            (
                rejected.write.format("delta")
                .mode("overwrite")
                .option("replaceWhere", f"layer = 'bronze' AND landing_file IN ({file_predicate})")
                .save(quarantine_path)
            )
            version = delta.latest_version(spark, quarantine_path)
            entry.delta_versions[f"quarantine.{source.name}_{table}"] = version
            entry.records_quarantined = delta.commit_metrics(spark, quarantine_path, version)["numOutputRows"]
            entry.details[f"quarantined.{quarantine.MALFORMED}"] = entry.records_quarantined
        landing.record_ingested(
            spark, env, source.name, table, files, entry.run_id, checksums=checksums, redelivered=redelivered
        )
    return entry
