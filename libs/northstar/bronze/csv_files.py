"""Read CSV landing files by their own headers: per-partner header mappings, headers that change over time.

Spark's CSV reader takes the header of the first file and applies it by position to every other file, so
a partner that reorders or adds a column part-way would shift values silently. Here each file's header is
read (its first line, through Hadoop's FileSystem), files with the same header are read together, every
column is renamed by the table's `rename` mapping, and the groups are united by name.

Files are read as RFC 4180 (quoted delimiters, quoted line breaks, doubled quotes), so a record is a record
whatever lines it spans, and records are counted by a second, independent reading of the bytes
(`count_csv_records`).
"""

from __future__ import annotations

import csv

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.bronze.transforms import CORRUPT, LANDING_FILE
from northstar.config import CsvOptions, TableSpec
from northstar.lake.storage import LandingFile, first_line
from northstar.transforms.columns import mapped_names


def header_of(spark: SparkSession, file: LandingFile, delimiter: str) -> tuple[str, ...]:
    """The column names in a file's header line (empty for an empty file)."""
    line = first_line(spark, file.path)
    if not line:
        return ()
    return tuple(next(csv.reader([line.lstrip("\ufeff")], delimiter=delimiter)))


def read_csv(
    spark: SparkSession, spec: TableSpec, files: list[LandingFile]
) -> tuple[DataFrame, T.StructType]:
    """Every record of `files` as string columns named by the table's mapping, plus `_corrupt_record` (the
    raw text of a record whose field count does not match its header) and `_landing_file`.

    Returns the records and the delivered schema (all strings, the union of the mapped names in order of
    first appearance).
    """
    options = {**(spec.csv or CsvOptions()).model_dump(), "multiLine": True}
    if options["header"]:
        groups: dict[tuple[str, ...], list[LandingFile]] = {}
        for file in files:
            groups.setdefault(header_of(spark, file, options["delimiter"]), []).append(file)
        groups.pop((), None)  # empty files hold no records
    else:
        names = spark.read.options(**options).csv([f.path for f in files]).schema.fieldNames()
        groups = {tuple(names): files}

    frames, delivered_names = [], []
    for header, group in groups.items():
        names = mapped_names(list(header), spec.rename)
        positional = [T.StructField(f"_c{i}", T.StringType(), True) for i in range(len(header))]
        read_schema = T.StructType([*positional, T.StructField(CORRUPT, T.StringType(), True)])
        frame = (
            spark.read.options(**options, mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT)
            .schema(read_schema)
            .csv([f.path for f in group])
            .select(
                *[F.col(f"_c{i}").alias(name) for i, name in enumerate(names)],
                F.col(CORRUPT),
                F.col("_metadata.file_path").alias(LANDING_FILE),
            )
        )
        frames.append(frame)
        delivered_names += [n for n in names if n not in delivered_names]
    delivered = T.StructType([T.StructField(n, T.StringType(), True) for n in delivered_names])
    if not frames:
        empty = T.StructType(
            [T.StructField(CORRUPT, T.StringType(), True), T.StructField(LANDING_FILE, T.StringType(), True)]
        )
        return spark.createDataFrame([], empty), delivered
    records = frames[0]
    for frame in frames[1:]:
        records = records.unionByName(frame, allowMissingColumns=True)
    columns = [*delivered_names, CORRUPT, LANDING_FILE]
    return records.select(*[F.col(f"`{c}`") for c in columns]), delivered


# Per physical line: is the line's end inside quotes (an odd count of quotes so far), and does a record end
# there that is not an empty line? Doubled quotes add two, so they never change the parity.
_QUOTES = "(length(line) - length(replace(line, '\"', '')))"
_ENDS_INSIDE = f"(acc.inside != ({_QUOTES} % 2 = 1))"
_RECORDS_IN_TEXT = (
    "aggregate(split(regexp_replace(value, '\\r\\n', '\\n'), '\\n', -1), "
    "named_struct('inside', false, 'records', 0), (acc, line) -> named_struct("
    f"'inside', {_ENDS_INSIDE}, "
    f"'records', acc.records + CASE WHEN {_ENDS_INSIDE} THEN 0 WHEN acc.inside OR line != '' THEN 1 ELSE 0 END"
    ")).records"
)


def count_csv_records(spark: SparkSession, files: list[LandingFile], header: bool) -> int:
    """Records in the files by RFC 4180's grammar, counted without the CSV parser: a line break ends a record
    unless it is inside quotes; empty lines are not records; one header per non-empty file.

    Each file is read whole (`wholetext`), so a file must fit in one task's memory (CSV drops do)."""
    text = spark.read.text([f.path for f in files], wholetext=True)
    per_file = text.select(F.expr(_RECORDS_IN_TEXT).alias("n"))
    if header:
        per_file = per_file.select(F.greatest(F.col("n") - 1, F.lit(0)).alias("n"))
    total = per_file.agg(F.sum("n").alias("n")).first()
    assert total is not None  # a global aggregate has one row
    return int(total["n"] or 0)
