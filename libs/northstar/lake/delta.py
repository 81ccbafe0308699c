"""Small helpers over Delta Lake's own API: does a table exist, its version, what a commit did, its change feed,
adding columns to a table."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from northstar.transforms.schema import merge_types

CDF_COLUMNS = ["_change_type", "_commit_version", "_commit_timestamp"]
CHANGE_FEED = "delta.enableChangeDataFeed"


def table_exists(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The table's current version, or None when there is no table yet."""
    if not table_exists(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return None if row is None else row["version"]


def current_version(spark: SparkSession, path: str) -> int:
    """The current version of a table that exists (e.g. one just written); an error when there is none."""
    version = latest_version(spark, path)
    if version is None:
        raise LookupError(f"{path}: no Delta table there")
    return version


def commit_metrics(spark: SparkSession, path: str, version: int) -> dict[str, int]:
    """operationMetrics of one commit, as integers (Delta records them as strings)."""
    row = (
        DeltaTable.forPath(spark, path)
        .history()
        .where(f"version = {int(version)}")
        .select("operationMetrics")
        .first()
    )
    metrics = (row["operationMetrics"] if row else None) or {}
    return {k: int(v) for k, v in metrics.items() if str(v).lstrip("-").isdigit()}


def read_changes(
    spark: SparkSession, path: str, start: int, end: int, change_types: tuple[str, ...] = ("insert",)
) -> DataFrame:
    """Rows of the given change types committed in versions start..end (inclusive), from the table's change
    data feed, without the feed's own columns."""
    return (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", start)
        .option("endingVersion", end)
        .load(path)
        .where(F.col("_change_type").isin(*change_types))
        .drop(*CDF_COLUMNS)
    )


def enable_change_feed(spark: SparkSession, path: str) -> None:
    """Turn the table's change data feed on (one metadata commit) when it is off; versions from then on record
    their changes. Nothing is written when it is already on."""
    properties = DeltaTable.forPath(spark, path).detail().select("properties").first()
    if ((properties and properties["properties"]) or {}).get(CHANGE_FEED) != "true":
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({CHANGE_FEED} = true)")


def change_feed(spark: SparkSession, path: str, start: int, end: int) -> DataFrame | None:
    """Every change row of versions start..end (inclusive) with `_change_type` and `_commit_version`, or None
    when the feed cannot cover the range: it was off for one of those versions, or their log is gone."""
    try:
        feed = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", start)
            .option("endingVersion", end)
            .load(path)
        )
        # planning (not running) the read is where Delta checks that every version recorded its changes;
        # PySpark has no public "plan only" call, so the query execution's plan is asked for directly
        feed._jdf.queryExecution().executedPlan()
    except AnalysisException as err:
        if _feed_unavailable(str(err)):
            return None
        raise
    return feed.drop("_commit_timestamp")


def _feed_unavailable(message: str) -> bool:
    """Delta's errors for a range the change feed does not cover (feed off at a version, log cleaned up)."""
    markers = (
        "DELTA_MISSING_CHANGE_DATA",
        "DELTA_CHANGE_DATA_FILE_NOT_FOUND",
        "VERSION_NOT_FOUND",
        "DELTA_VERSIONS_NOT_CONTIGUOUS",
        "change data was not recorded",
    )
    return any(m.lower() in message.lower() for m in markers)


def evolve_schema(spark: SparkSession, path: str, incoming: DataFrame) -> StructType:
    """The table's schema after adding what `incoming` brings (new columns or nested fields; types never change).

    Done as a metadata-only commit (an empty append with mergeSchema) rather than MERGE ... WITH SCHEMA
    EVOLUTION, which turns NULL structs into structs of NULLs (delta-io/delta#2248). No commit when nothing is new.
    """
    target = spark.read.format("delta").load(path).schema
    if merge_types(target, incoming.schema) != target:
        empty = spark.createDataFrame([], incoming.schema)
        empty.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
        target = spark.read.format("delta").load(path).schema
    return target
