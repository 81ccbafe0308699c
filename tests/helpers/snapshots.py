"""Run-twice checks on Delta tables: the rows a table holds now against the version an earlier run left.

Delta's time travel keeps the earlier rows, so a test records version numbers before the second run and chispa
shows a readable diff of any row that changed (rows compared as a multiset: order is not part of a table).
"""

from __future__ import annotations

from collections.abc import Mapping

from chispa import DataFramesNotEqualError, SchemasNotEqualError, assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar.lake import delta


def versions(spark: SparkSession, paths: Mapping[str, str]) -> dict[str, int]:
    """The latest version of each of `paths` that is a Delta table (missing ones are left out)."""
    found = {name: delta.latest_version(spark, path) for name, path in paths.items()}
    return {name: version for name, version in found.items() if version is not None}


def assert_rows_unchanged(spark: SparkSession, paths: Mapping[str, str], since: Mapping[str, int]) -> None:
    """Each table named in `since` holds the same rows now as at that version (what a rerun must leave)."""
    for name, version in since.items():
        earlier = spark.read.format("delta").option("versionAsOf", version).load(paths[name])
        now = spark.read.format("delta").load(paths[name])
        try:
            assert_df_equality(_sortable(earlier), _sortable(now), ignore_row_order=True)
        except (DataFramesNotEqualError, SchemasNotEqualError) as error:
            raise AssertionError(f"{name} changed since version {version}:\n{error}") from None


def assert_same_rows(name: str, expected: DataFrame, actual: DataFrame, drop: tuple[str, ...] = ()) -> None:
    """The two frames hold the same rows (a multiset, columns in any order), `drop` columns left out."""
    try:
        assert_df_equality(
            _sortable(expected.drop(*drop)),
            _sortable(actual.drop(*drop)),
            ignore_row_order=True,
            ignore_column_order=True,
            ignore_nullable=True,
        )
    except (DataFramesNotEqualError, SchemasNotEqualError) as error:
        raise AssertionError(f"{name} differs from one clean run's:\n{error}") from None


def _sortable(frame: DataFrame) -> DataFrame:
    """Map columns as sorted entry arrays: Spark cannot order rows by a map, and chispa sorts to ignore order."""
    for field in frame.schema.fields:
        if isinstance(field.dataType, T.MapType):
            frame = frame.withColumn(field.name, F.array_sort(F.map_entries(field.name)))
    return frame
