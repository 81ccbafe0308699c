"""The deletion request log (`ops.deletion_requests`) and the proof log (`ops.deletion_proofs`).

A request holds the subject's keyed token, never the id itself: the log can be kept for audit forever.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig
from northstar.lake import delta, tables

REQUEST_SCHEMA = (
    "request_id string, subject_token string, received_at timestamp, deadline timestamp, status string, "
    "processed_at timestamp"
)
PROOF_SCHEMA = (
    "request_id string, subject_token string, table_name string, table_path string, table_exists boolean, "
    "rows_deleted bigint, version_before bigint, version_after bigint, vacuum_retain_hours int, "
    "vacuum_done boolean, files_removed bigint, files_erased_by timestamp, processed_at timestamp"
)
PENDING, DONE = "pending", "done"


def read_requests(spark: SparkSession, env: EnvConfig) -> DataFrame:
    if not delta.table_exists(spark, tables.DELETION_REQUESTS.path(env)):
        return spark.createDataFrame([], REQUEST_SCHEMA)
    return spark.read.format("delta").load(tables.DELETION_REQUESTS.path(env))


def record_request(
    spark: SparkSession,
    env: EnvConfig,
    subject_token: str,
    deadline_hours: int,
    received_at: datetime | None = None,
) -> str:
    """Log a request (deadline = received_at + deadline_hours); a subject already pending keeps its request."""
    pending = (
        read_requests(spark, env)
        .where((F.col("subject_token") == subject_token) & (F.col("status") == PENDING))
        .select("request_id")
        .first()
    )
    if pending:
        return pending["request_id"]
    received_at = received_at or datetime.now(UTC)
    request_id = f"del-{received_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    row = (
        request_id,
        subject_token,
        received_at,
        received_at + timedelta(hours=deadline_hours),
        PENDING,
        None,
    )
    spark.createDataFrame([row], REQUEST_SCHEMA).write.format("delta").mode("append").save(
        tables.DELETION_REQUESTS.path(env)
    )
    return request_id


def mark_done(spark: SparkSession, env: EnvConfig, request_id: str, processed_at: datetime) -> None:
    DeltaTable.forPath(spark, tables.DELETION_REQUESTS.path(env)).update(
        F.col("request_id") == request_id,
        {"status": F.lit(DONE), "processed_at": F.lit(processed_at).cast("timestamp")},
    )


def append_proofs(spark: SparkSession, env: EnvConfig, rows: list[dict]) -> None:
    frame = spark.createDataFrame(rows, PROOF_SCHEMA)
    frame.write.format("delta").mode("append").save(tables.DELETION_PROOFS.path(env))
