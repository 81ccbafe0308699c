"""The gold Delta version each warehouse table holds: <ops schema>.PUBLISHED_VERSIONS, one row per table,
rewritten in the same transaction as the table's MERGE. The next publish moves only the changes after that
version; a publish that died before recording it moves the same changes again, which the MERGE applies
idempotently. (The lake records the same version in the ledger's publish rows, `input_version_end`.)
"""

from __future__ import annotations

from datetime import datetime

from snowflake.connector import SnowflakeConnection

from northstar.config.env import SnowflakeSpec
from northstar.warehouse.connection import execute

TABLE = "PUBLISHED_VERSIONS"


def qualified(spec: SnowflakeSpec) -> str:
    return f"{spec.database}.{spec.ops_schema}.{TABLE}"


def create_statement(spec: SnowflakeSpec) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(spec)} (TABLE_NAME VARCHAR, GOLD_VERSION NUMBER(38,0), "
        "RUN_ID VARCHAR, MODE VARCHAR, ROWS_UPSERTED NUMBER(38,0), ROWS_DELETED NUMBER(38,0), "
        "PUBLISHED_AT TIMESTAMP_NTZ)"
    )


def held_version(conn: SnowflakeConnection, spec: SnowflakeSpec, table: str) -> int | None:
    """The gold version the warehouse table holds, None when no publish recorded one."""
    rows = execute(conn, f"SELECT MAX(GOLD_VERSION) FROM {qualified(spec)} WHERE TABLE_NAME = %s", (table,))
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def record_statements(
    spec: SnowflakeSpec,
    table: str,
    version: int,
    *,
    run_id: str,
    mode: str,
    upserted: int,
    deleted: int,
    at: datetime,
) -> list[tuple[str, tuple]]:
    """DELETE + INSERT of the table's row (statement, parameters), run inside the publish's transaction."""
    return [
        (f"DELETE FROM {qualified(spec)} WHERE TABLE_NAME = %s", (table,)),
        (
            f"INSERT INTO {qualified(spec)} (TABLE_NAME, GOLD_VERSION, RUN_ID, MODE, ROWS_UPSERTED, ROWS_DELETED, "
            "PUBLISHED_AT) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (table, version, run_id, mode, upserted, deleted, at.replace(tzinfo=None)),
        ),
    ]
