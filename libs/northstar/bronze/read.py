"""Read a batch of landing files for bronze: parse each format into records with their hash and raw text, plan
every column against the table's contract, and count records independently of the parser."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.bronze import csv_files
from northstar.bronze import transforms as tx
from northstar.config import CsvOptions, TableSpec
from northstar.lake import delta
from northstar.lake.storage import LandingFile
from northstar.transforms import cdc, columns, pci
from northstar.transforms.schema import ColumnPlan, SchemaDriftError, plan_columns


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
    require_needed_columns(spec, delivered, files)
    if spec.redact_card_numbers and spec.format != "jsonl":
        records = pci.redact_string_columns(records, [c for c in delivered.fieldNames()] + [tx.CORRUPT])
    if pci.PAN_FLAG not in records.columns:
        records = records.withColumn(pci.PAN_FLAG, F.lit(False))
    return records, plan_columns(spec.bronze_contract(), delivered, existing)


def require_needed_columns(spec: TableSpec, delivered: T.StructType, files: list[LandingFile]) -> None:
    """Stop when the batch lacks a column the table needs (a key, an ordering column, a change feed's operation:
    DMS full-load files alone may lack the operation). For JSON Lines, a field null in every record of the
    batch is absent too: no record of it could be applied."""
    needed = spec.needed_columns()
    if spec.cdc is not None and spec.cdc.format == "dms" and all(cdc.is_full_load_file(f.uri) for f in files):
        needed.pop(spec.cdc.op_column)
    if spec.cdc is not None and spec.cdc.format == "debezium" and "payload" in delivered.fieldNames():
        needed.pop("op")  # the envelope wrapped in `payload`
    missing = [f"{c} ({role})" for c, role in needed.items() if c not in delivered.fieldNames()]
    if missing:
        raise SchemaDriftError(
            f"the batch of {len(files)} landing file(s) has no column {', '.join(missing)}, which the table "
            f"needs (delivered: {', '.join(delivered.fieldNames()) or 'none'}). Map the delivered name with "
            "`rename:` in the source YAML, or have the partner re-deliver; the files stay pending until then."
        )


def count_records(spark: SparkSession, spec: TableSpec, files: list[LandingFile]) -> int:
    """Records in the files, counted independently of the parser (non-blank lines of JSON Lines, RFC 4180
    records of CSV, rows for Parquet)."""
    paths = [f.path for f in files]
    if spec.format == "parquet":
        return spark.read.parquet(*paths).count()
    if spec.format == "csv":
        return csv_files.count_csv_records(spark, files, (spec.csv or CsvOptions()).header)
    return tx.non_blank_lines(spark.read.text(paths).select(F.col("value").alias(tx.RAW))).count()
