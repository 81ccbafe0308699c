"""Open a DB-API connection to the warehouse the env names: the real Snowflake (snowflake-connector-python,
credentials resolved from secret references) or fakesnow, which serves the same connector API from a local
DuckDB file. Statements fakesnow cannot parse (masking policies, grants, roles) are skipped locally only,
with a log line; against Snowflake every statement runs and any failure stops the publish.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import snowflake.connector
from snowflake.connector import SnowflakeConnection
from snowflake.connector import errors as sf_errors

from northstar.config.env import SnowflakeSpec
from northstar.secrets import resolve

log = logging.getLogger(__name__)


@contextmanager
def connect(spec: SnowflakeSpec) -> Iterator[SnowflakeConnection]:
    """A snowflake.connector connection for `spec` (closed on exit); in fakesnow mode fakesnow's stand-in,
    which serves the same API."""
    if spec.mode == "fakesnow":
        import fakesnow  # noqa: PLC0415  a dev dependency, needed only locally

        assert spec.fakesnow_path is not None  # SnowflakeSpec requires it in fakesnow mode
        Path(spec.fakesnow_path).mkdir(parents=True, exist_ok=True)
        with fakesnow.patch(db_path=spec.fakesnow_path):
            conn = snowflake.connector.connect(database=spec.database, schema=spec.analytics_schema)
            try:
                yield conn
            finally:
                conn.close()
        return
    conn = snowflake.connector.connect(
        account=spec.account,
        user=resolve(spec.user).value,
        password=resolve(spec.password).value,
        warehouse=spec.warehouse,
        role=spec.role,
        database=spec.database,
        schema=spec.analytics_schema,
        session_parameters={"TIMEZONE": "UTC", "QUERY_TAG": "northstar-publish"},
    )
    try:
        yield conn
    finally:
        conn.close()


def execute(conn: SnowflakeConnection, statement: str, params: Sequence[Any] | None = None) -> list[tuple]:
    """Run one statement and return its rows."""
    cur = conn.cursor()
    try:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []
    finally:
        cur.close()


def execute_only(conn: SnowflakeConnection, statement: str) -> None:
    """Run one statement whose result is not read (COMMENT ON ...: fakesnow cannot describe its result)."""
    cur = conn.cursor()
    try:
        cur.execute(statement)
    finally:
        cur.close()


def execute_governance(
    conn: SnowflakeConnection, spec: SnowflakeSpec, statement: str, skipped: list[str]
) -> None:
    """Run a masking-policy / grant / role statement; in fakesnow mode a statement it cannot parse is logged
    and appended to `skipped` (production: every statement must succeed)."""
    if spec.mode != "fakesnow":
        execute(conn, statement)
        return
    try:
        execute(conn, statement)
    except sf_errors.ProgrammingError as err:
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        log.warning(
            "skipped locally (fakesnow does not accept it): %s -- %s", statement.split("\n", 1)[0], first_line
        )
        skipped.append(statement)
