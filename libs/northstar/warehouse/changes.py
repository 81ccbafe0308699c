"""What one publish moves into the warehouse: the net change of a gold table between the Delta version the
warehouse holds and the version being published, computed from the table's change data feed (no I/O here:
DataFrame -> DataFrame).

A gold run replaces whole day partitions, so the feed of a range holds every row of a rewritten day twice (its
old image deleted, its new one inserted) even when only a few changed. Per key the net change compares the
row as it was before the range (the first version's pre-image) with the row after it (the last version's
post-image): a new or changed row is upserted, a vanished one deleted, an identical one not moved at all. So
the rows staged and merged are the rows that really changed, whatever the size of the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

DELETED = "_deleted"  # staged rows: true = the key leaves the warehouse table
_AFTER = ("insert", "update_postimage")
_FEED = ("_change_type", "_commit_version")


def net_changes(feed: DataFrame, key: Sequence[str]) -> DataFrame:
    """The gold columns plus `_deleted` for every key whose row differs between the start and the end of the
    range: `_deleted` false with the row at the end, or true with the row it had at the start. A key added and
    removed within the range, or rewritten with the same values, is not in the result."""
    columns = [c for c in feed.columns if c not in _FEED]
    by_key = Window.partitionBy(*key)
    version = F.col("_commit_version")
    is_after = F.col("_change_type").isin(*_AFTER)
    marked = feed.withColumn("_first", F.min(version).over(by_key)).withColumn(
        "_last", F.max(version).over(by_key)
    )
    image = F.struct(*[F.col(c) for c in columns])
    before = marked.where(~is_after & (version == F.col("_first"))).select(*key, image.alias("_before"))
    after = marked.where(is_after & (version == F.col("_last"))).select(*key, image.alias("_after"))
    joined = before.join(after, list(key), "full").where(~F.col("_before").eqNullSafe(F.col("_after")))
    return joined.select(
        F.coalesce(F.col("_after"), F.col("_before")).alias("_row"), F.col("_after").isNull().alias(DELETED)
    ).select(*[F.col(f"_row.{c}").alias(c) for c in columns], DELETED)


def touched_partitions(feed: DataFrame, grain: Sequence[str]) -> DataFrame:
    """The partitions (grain values) any change of the range was in, before or after it: the ones a
    reconciliation after the publish must compare."""
    return feed.select(*grain).distinct()


def whole_table(frame: DataFrame) -> DataFrame:
    """Every row of a gold version as an upsert (the full load: first publish, or a range the feed lacks)."""
    return frame.withColumn(DELETED, F.lit(False))
