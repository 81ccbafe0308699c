"""What changed in a Delta table between two versions (time travel): rows added, removed and changed.

With a key, a row is matched by its key and `changed` when any other column differs; without one, rows are
matched by a hash of the whole row (added / removed only). Pure over the two DataFrames Delta returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


@dataclass(frozen=True)
class VersionDiff:
    version_from: int
    version_to: int
    added: int
    removed: int
    changed: int
    unchanged: int

    def as_dict(self) -> dict[str, int]:
        return {
            "version_from": self.version_from,
            "version_to": self.version_to,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
        }


def _row_hash(frame: DataFrame, columns: list[str]) -> DataFrame:
    # to_json handles maps and arrays, which set operations (exceptAll) refuse
    return frame.select(*frame.columns, F.sha2(F.to_json(F.struct(*columns)), 256).alias("_row_hash"))


def diff_frames(before: DataFrame, after: DataFrame, key: list[str] | None = None) -> dict[str, int]:
    """Counts of added / removed / changed / unchanged rows from `before` to `after` (same columns compared:
    the columns both have, so a new column alone does not make every row `changed`)."""
    common = [c for c in before.columns if c in after.columns]
    if not key:
        left = _row_hash(before, common).groupBy("_row_hash").count().withColumnRenamed("count", "n_before")
        right = _row_hash(after, common).groupBy("_row_hash").count().withColumnRenamed("count", "n_after")
        joined = left.join(right, "_row_hash", "full_outer").fillna(0, ["n_before", "n_after"])
        totals = joined.agg(
            F.sum(F.greatest(F.col("n_after") - F.col("n_before"), F.lit(0))).alias("added"),
            F.sum(F.greatest(F.col("n_before") - F.col("n_after"), F.lit(0))).alias("removed"),
            F.sum(F.least("n_before", "n_after")).alias("unchanged"),
        ).first()
        assert totals is not None  # an aggregation without groupBy gives exactly one row
        return {
            "added": int(totals["added"] or 0),
            "removed": int(totals["removed"] or 0),
            "changed": 0,
            "unchanged": int(totals["unchanged"] or 0),
        }
    values = [c for c in common if c not in key]
    left = _row_hash(before, values).select(*key, F.col("_row_hash").alias("h_before"))
    right = _row_hash(after, values).select(*key, F.col("_row_hash").alias("h_after"))
    joined = left.join(right, key, "full_outer")
    totals = joined.agg(
        F.sum(F.when(F.col("h_before").isNull(), 1).otherwise(0)).alias("added"),
        F.sum(F.when(F.col("h_after").isNull(), 1).otherwise(0)).alias("removed"),
        F.sum(
            F.when(
                F.col("h_before").isNotNull()
                & F.col("h_after").isNotNull()
                & (F.col("h_before") != F.col("h_after")),
                1,
            ).otherwise(0)
        ).alias("changed"),
        F.sum(F.when(F.col("h_before") == F.col("h_after"), 1).otherwise(0)).alias("unchanged"),
    ).first()
    assert totals is not None  # an aggregation without groupBy gives exactly one row
    return {name: int(totals[name] or 0) for name in ("added", "removed", "changed", "unchanged")}


def read_version(spark: SparkSession, path: str, version: int) -> DataFrame:
    return spark.read.format("delta").option("versionAsOf", int(version)).load(path)


def diff_versions(
    spark: SparkSession,
    path: str,
    version_from: int,
    version_to: int,
    key: list[str] | None = None,
    where: str | None = None,
) -> VersionDiff:
    """Diff two versions of the table at `path`, optionally only the rows matching `where` (e.g. one day)."""
    before, after = read_version(spark, path, version_from), read_version(spark, path, version_to)
    if where:
        before, after = before.where(where), after.where(where)
    counts = diff_frames(before, after, key)
    return VersionDiff(version_from=version_from, version_to=version_to, **counts)
