"""How the rows of one publish reach the per-run staging table (`snowflake.loader` in the env conf).

- `bulk` (the default): Spark writes the rows as Parquet files under `stage_location` (s3://, locally a
  folder), and Snowflake loads them with one `COPY INTO <staging> FROM @<ops schema>.GOLD_STAGE/<prefix>/
  FILES = (...) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE`: the rows never pass through the driver. The staged
  files are removed once the table is loaded; a retry of the same run overwrites them.
- `spark_connector`: the Spark Snowflake connector writes the staging table (spark_connector.py); it needs
  the connector's jar, which has no Spark 4 build on Maven Central yet (docs/snowflake.md).
- `python`: rows through the Python connector in batches; only for tiny tables (it moves ~60 rows/s).

Every loader returns the number of rows the staging table holds afterwards, checked against what was sent.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from snowflake.connector import SnowflakeConnection

from northstar.config.env import SnowflakeSpec
from northstar.lake import storage
from northstar.warehouse import ddl, spark_connector
from northstar.warehouse.connection import execute

STAGE = "GOLD_STAGE"
COPY_FILES_PER_STATEMENT = 1000  # Snowflake's limit on a FILES list
ROWS_PER_FILE = 1_000_000  # with snappy Parquet, files of tens to a few hundred MB (Snowflake's advice)
INSERT_BATCH = 500

Loader = Callable[[SnowflakeConnection, SnowflakeSpec, DataFrame, str, list[ddl.Column]], int]


class LoadIncomplete(RuntimeError):
    """The staging table does not hold every row that was sent: the publish stops before the MERGE."""


def stage_name(spec: SnowflakeSpec) -> str:
    return f"{spec.database}.{spec.ops_schema}.{STAGE}"


def stage_url(location: str) -> str:
    """The URL Snowflake reads `location` at: s3a:// is Spark's spelling of s3://; a local folder is file://."""
    if location.startswith("s3a://"):
        location = "s3://" + location[len("s3a://") :]
    elif "://" not in location:
        location = "file://" + location
    return location.rstrip("/") + "/"


def create_stage_statement(spec: SnowflakeSpec) -> str:
    """The external stage over stage_location (replaced, so a changed location or integration takes effect)."""
    integration = f" STORAGE_INTEGRATION = {spec.storage_integration}" if spec.storage_integration else ""
    return (
        f"CREATE OR REPLACE STAGE {stage_name(spec)} URL = '{stage_url(spec.stage_root)}'{integration} "
        "FILE_FORMAT = (TYPE = PARQUET)"
    )


def stage_types(frame: DataFrame) -> DataFrame:
    """Timestamps as the UTC wall-clock time (TIMESTAMP_NTZ in Parquet), which is what TIMESTAMP_NTZ columns
    hold (the session runs in UTC); every other column as it is."""
    return frame.select(
        *[
            F.col(f.name).cast(T.TimestampNTZType()).alias(f.name)
            if isinstance(f.dataType, T.TimestampType)
            else F.col(f.name)
            for f in frame.schema.fields
        ]
    )


def copy_statements(staging: str, stage: str, prefix: str, files: list[str]) -> list[str]:
    """COPY INTO the staging table from the named files under @stage/prefix/, at most 1000 files each."""
    statements = []
    for start in range(0, len(files), COPY_FILES_PER_STATEMENT):
        listed = ", ".join(f"'{name}'" for name in files[start : start + COPY_FILES_PER_STATEMENT])
        statements.append(
            f"COPY INTO {staging} FROM @{stage}/{prefix}/ FILES = ({listed}) FILE_FORMAT = (TYPE = PARQUET) "
            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE"
        )
    return statements


def bulk_load(
    conn: SnowflakeConnection, spec: SnowflakeSpec, frame: DataFrame, staging: str, columns: list[ddl.Column]
) -> int:
    """Parquet files on the stage, then COPY INTO; the files are removed when the staging table holds them."""
    spark = frame.sparkSession
    prefix = staging.rsplit(".", 1)[-1].lower()  # <table>__stg_<run id>: one folder per table and run
    path = f"{spec.stage_root}/{prefix}"
    stage_types(frame).write.mode("overwrite").option("maxRecordsPerFile", ROWS_PER_FILE).parquet(path)
    written = spark.read.parquet(path)
    sent = written.count()  # from the Parquet footers
    files = sorted({uri.rsplit("/", 1)[-1] for uri in written.inputFiles()})
    for statement in copy_statements(staging, stage_name(spec), prefix, files):
        results = execute(conn, statement)
        refused = [r for r in results if str(r[1]).upper() not in ("LOADED", "LOAD_SKIPPED")]
        if refused:
            raise LoadIncomplete(f"COPY INTO {staging} refused {refused[0][0]}: {refused[0][6]}")
    loaded = _staged_rows(conn, staging, sent)
    storage.delete_path(spark, path)
    return loaded


def python_load(
    conn: SnowflakeConnection, spec: SnowflakeSpec, frame: DataFrame, staging: str, columns: list[ddl.Column]
) -> int:
    """Rows through the Python connector, 500 per INSERT: tiny reference tables only."""
    names = ", ".join(c.name for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    rows = [tuple(r) for r in frame.toLocalIterator()]
    cur = conn.cursor()
    try:
        for start in range(0, len(rows), INSERT_BATCH):
            cur.executemany(
                f"INSERT INTO {staging} ({names}) VALUES ({marks})", rows[start : start + INSERT_BATCH]
            )
    finally:
        cur.close()
    return _staged_rows(conn, staging, len(rows))


def connector_load(
    conn: SnowflakeConnection, spec: SnowflakeSpec, frame: DataFrame, staging: str, columns: list[ddl.Column]
) -> int:
    """The Spark Snowflake connector writes the staging table (its jar must be on the session)."""
    sent = frame.count()
    spark_connector.write_staging(frame, spark_connector.connector_options(spec), staging)
    return _staged_rows(conn, staging, sent)


LOADERS: dict[str, Loader] = {"bulk": bulk_load, "python": python_load, "spark_connector": connector_load}


def _staged_rows(conn: SnowflakeConnection, staging: str, sent: int) -> int:
    """The staging table's row count, which must be what was sent."""
    loaded = int(execute(conn, f"SELECT COUNT(*) FROM {staging}")[0][0])
    if loaded != sent:
        raise LoadIncomplete(
            f"{staging} holds {loaded:,} rows after the load, {sent:,} were sent: the publish stopped before "
            "the MERGE; re-run it (docs/runbooks/snowflake-load-failure.md)"
        )
    return loaded
