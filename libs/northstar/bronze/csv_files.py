"""Read CSV landing files by their own headers: per-partner header mappings, headers that change over time.

Spark's CSV reader takes the header of the first file and applies it by position to every other file, so
a partner that reorders or adds a column part-way would shift values silently. Here each file's header is
read (its first line, through Hadoop's FileSystem), files with the same header are read together, every
column is renamed by the table's `rename` mapping, and the groups are united by name.
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
    raw line of a row whose field count does not match its header) and `_landing_file`.

    Returns the records and the delivered schema (all strings, the union of the mapped names in order of
    first appearance).
    """
    options = (spec.csv or CsvOptions()).model_dump()
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
