"""Publish gold tables to Snowflake: DDL from the gold schema (add-only), a per-run staging table loaded with
the gold rows of one Delta version, one MERGE (plus the delete of keys gold no longer has) in a transaction
so the target equals gold, the staging table dropped, masking policies on PII columns, then the lake <->
warehouse reconciliation written to ops.warehouse_reconciliation. A retry or re-run never duplicates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from pyspark.sql import DataFrame, SparkSession
from snowflake.connector import SnowflakeConnection

from northstar import ledger
from northstar.config import ConfigError, EnvConfig
from northstar.config.env import SnowflakeSpec
from northstar.gold.tables import GOLD, GoldTable
from northstar.lake import delta, tables
from northstar.ledger import LedgerEntry
from northstar.quality.publish import published_version
from northstar.warehouse import ddl, reconcile
from northstar.warehouse.connection import execute, execute_governance

log = logging.getLogger(__name__)

INSERT_BATCH = 500

Loader = Callable[[SnowflakeConnection, DataFrame, str, list[ddl.Column]], None]


@dataclass
class PublishResult:
    """What one publish of one gold table did."""

    table: str
    gold_version: int
    rows: int
    added_columns: list[str] = field(default_factory=list)
    skipped_statements: list[str] = field(default_factory=list)
    differences: list[reconcile.Difference] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        return all(d.matches for d in self.differences)


def qualified(spec: SnowflakeSpec, table: str, schema: str | None = None) -> str:
    return f"{spec.database}.{schema or spec.analytics_schema}.{table.upper()}"


def staging_name(table: str, run_id: str) -> str:
    """The per-run staging table: <TABLE>__STG_<run id> (run ids are letters, digits and dashes)."""
    return f"{table.upper()}__STG_{re.sub(r'[^A-Za-z0-9]', '_', run_id).upper()}"


def python_loader(
    conn: SnowflakeConnection, frame: DataFrame, staging: str, columns: list[ddl.Column]
) -> None:
    """Local path: rows through the Python connector (what fakesnow serves). Small tables only."""
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


def ensure_schemas(conn: SnowflakeConnection, spec: SnowflakeSpec, skipped: list[str]) -> None:
    """Both schemas, and who may read them (grants are governance statements: see connection.py)."""
    for schema in (spec.analytics_schema, spec.restricted_schema):
        execute(conn, f"CREATE SCHEMA IF NOT EXISTS {spec.database}.{schema}")
    execute_governance(
        conn,
        spec,
        f"CREATE MASKING POLICY IF NOT EXISTS {spec.database}.{spec.analytics_schema}.PII_MASK AS "
        f"(val VARCHAR) RETURNS VARCHAR -> CASE WHEN IS_ROLE_IN_SESSION('{spec.pii_reader_role}') THEN val "
        "ELSE '***MASKED***' END",
        skipped,
    )
    execute_governance(
        conn,
        spec,
        f"REVOKE ALL ON SCHEMA {spec.database}.{spec.restricted_schema} FROM ROLE PUBLIC",
        skipped,
    )
    execute_governance(
        conn,
        spec,
        f"GRANT USAGE ON SCHEMA {spec.database}.{spec.restricted_schema} TO ROLE {spec.pii_reader_role}",
        skipped,
    )


def existing_columns(conn: SnowflakeConnection, spec: SnowflakeSpec, table: str) -> list[ddl.Column] | None:
    """The target's columns from information_schema, or None when the table does not exist."""
    rows = execute(
        conn,
        f"SELECT column_name, data_type, numeric_precision, numeric_scale FROM {spec.database}.information_schema"
        ".columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (spec.analytics_schema.upper(), table.upper()),
    )
    return [ddl.Column(r[0].upper(), ddl.normalise(r[1], r[2], r[3])) for r in rows] or None


def merge_statement(target: str, staging: str, columns: list[ddl.Column], key: tuple[str, ...]) -> str:
    """One MERGE: insert new keys, update keys whose values differ (unchanged rows are not rewritten)."""
    keys = [k.upper() for k in key]
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    values = [c.name for c in columns if c.name not in keys]
    changed = " OR ".join(f"t.{c} IS DISTINCT FROM s.{c}" for c in values) or "FALSE"
    update = ", ".join(f"{c} = s.{c}" for c in values)
    names = ", ".join(c.name for c in columns)
    inserted = ", ".join(f"s.{c.name}" for c in columns)
    return (
        f"MERGE INTO {target} t USING {staging} s ON {on} "
        f"WHEN MATCHED AND ({changed}) THEN UPDATE SET {update} "
        f"WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({inserted})"
    )


def delete_statement(target: str, staging: str, key: tuple[str, ...]) -> str:
    """Keys the published gold version no longer has (a replaced partition lost a row) leave the target."""
    on = " AND ".join(f"t.{k.upper()} = s.{k.upper()}" for k in key)
    return f"DELETE FROM {target} t WHERE NOT EXISTS (SELECT 1 FROM {staging} s WHERE {on})"


def apply_staging(
    conn: SnowflakeConnection,
    target: str,
    staging: str,
    columns: list[ddl.Column],
    key: tuple[str, ...],
    *,
    transaction: bool = True,
) -> None:
    """MERGE then DELETE in one transaction: readers see the old table or the new one, never half.

    fakesnow cannot MERGE inside an explicit transaction (DuckDB: "a single transaction can only write to a
    single attached database"), so locally the two run one after the other; both are idempotent, so a crash
    between them is repaired by the retry either way."""
    if transaction:
        execute(conn, "BEGIN")
    try:
        execute(conn, merge_statement(target, staging, columns, key))
        execute(conn, delete_statement(target, staging, key))
    except BaseException:
        if transaction:
            execute(conn, "ROLLBACK")
        raise
    if transaction:
        execute(conn, "COMMIT")


def drop_stale_staging(conn: SnowflakeConnection, spec: SnowflakeSpec, table: str) -> None:
    """Staging tables an earlier, interrupted run of this table left behind."""
    rows = execute(
        conn,
        f"SELECT table_name FROM {spec.database}.information_schema.tables WHERE table_schema = %s "
        "AND table_name LIKE %s",
        (spec.analytics_schema.upper(), f"{table.upper()}__STG_%"),
    )
    for (name,) in rows:
        log.info("dropping staging table %s left by an interrupted publish", name)
        execute(conn, f"DROP TABLE IF EXISTS {spec.database}.{spec.analytics_schema}.{name}")


def publish_table(
    spark: SparkSession,
    env: EnvConfig,
    conn: SnowflakeConnection,
    table: GoldTable,
    *,
    run_id: str,
    version: int | None = None,
    loader: Loader = python_loader,
    schemas_ready: bool = False,
) -> PublishResult:
    """Make the warehouse table equal to gold.<table> at Delta `version` (None = the version its audit last
    published, ops.published_versions), then reconcile. `schemas_ready`: the caller already ran
    `ensure_schemas` on this connection (publish_all does it once per run)."""
    spec = env.snowflake
    if spec is None:
        raise ConfigError(f"conf/env/{env.name}.yaml: no snowflake: section (see docs/snowflake.md)")
    version, frame = _published_gold(spark, env, table, version)
    columns = ddl.columns_of(frame.schema)
    result = PublishResult(table.name, version, 0)
    if not schemas_ready:
        ensure_schemas(conn, spec, result.skipped_statements)
    target = qualified(spec, table.name)
    existing = existing_columns(conn, spec, table.name)
    if existing is None:
        execute(conn, ddl.create_table(target, columns))
    else:
        for statement in ddl.evolve(target, existing, columns):
            execute(conn, statement)
            result.added_columns.append(statement.rsplit(" ", 2)[-2])
    drop_stale_staging(conn, spec, table.name)
    staging = qualified(spec, staging_name(table.name, run_id))
    execute(conn, ddl.create_table(staging, columns, replace=True))
    loader(conn, frame, staging, columns)
    apply_staging(conn, target, staging, columns, table.key, transaction=spec.mode != "fakesnow")
    execute(conn, f"DROP TABLE IF EXISTS {staging}")
    # columns that identify a person (tokens too: pseudonymous data is still personal data) are masked in the
    # analytics schema for every role but the PII reader
    pii = {c.upper() for c in table.pii_columns(frame.columns)}
    for column in columns:
        if column.name in pii and column.type == "VARCHAR":
            execute_governance(
                conn,
                spec,
                f"ALTER TABLE {target} MODIFY COLUMN {column.name} SET MASKING POLICY "
                f"{spec.database}.{spec.analytics_schema}.PII_MASK FORCE",
                result.skipped_statements,
            )
    result.rows = execute(conn, f"SELECT COUNT(*) FROM {target}")[0][0]
    result.differences = check_table(conn, spec, table, frame)
    return result


def _published_gold(
    spark: SparkSession, env: EnvConfig, table: GoldTable, version: int | None
) -> tuple[int, DataFrame]:
    """gold.<table> at `version`, or at the version its audit last published (ops.published_versions)."""
    path = table.table.path(env)
    if not delta.table_exists(spark, path):
        raise FileNotFoundError(f"{table.table} does not exist at {path}: run `northstar gold` first")
    version = published_version(spark, env, table.table) if version is None else version
    if version is None:
        raise LookupError(
            f"{table.table} has no published version: no build of it has passed its audit "
            f"(conf/quality/{table.table}.yaml). See ops.check_results and docs/runbooks/failed-audit.md"
        )
    return version, spark.read.format("delta").option("versionAsOf", version).load(path)


def _never_built(spark: SparkSession, env: EnvConfig, table: GoldTable) -> bool:
    """The gold table does not exist because a conformed model it reads does not exist (not an error: that
    source is not onboarded here). A gold table missing while its inputs exist is still an error."""
    if delta.table_exists(spark, table.table.path(env)):
        return False
    return any(not delta.table_exists(spark, tables.model(m).path(env)) for m in table.inputs)


def check_table(
    conn: SnowflakeConnection, spec: SnowflakeSpec, table: GoldTable, gold: DataFrame
) -> list[reconcile.Difference]:
    """Counts and money sums per partition of the gold rows vs the warehouse table."""
    grain = reconcile.partition_columns(gold.columns, table.partition)
    target = qualified(spec, table.name)
    return reconcile.compare(
        reconcile.lake_figures(gold, grain, table.amounts),
        reconcile.warehouse_figures(
            execute(conn, reconcile.warehouse_query(target, grain, table.amounts)), grain, table.amounts
        ),
    )


def publish_all(
    spark: SparkSession,
    env: EnvConfig,
    conn: SnowflakeConnection,
    *,
    run_id: str,
    versions: Mapping[str, int | None] | None = None,
    loader: Loader = python_loader,
) -> list[PublishResult]:
    """Publish every gold table (versions: table -> Delta version, missing/None = the published one), record the
    reconciliation, and raise ReconciliationError when any partition differs."""
    versions = versions or {}
    results = []
    schemas_ready = False  # ensure_schemas runs with the first table's publish, once per run
    for name, table in GOLD.items():
        entry = LedgerEntry(
            run_id=run_id, job="publish", env=env.name, source="snowflake", table_name=name, layer="publish"
        )
        if _never_built(spark, env, table):
            entry.status = (
                ledger.NOOP
            )  # its inputs do not exist yet (e.g. no Stripe source landed): nothing to load
            entry.details["input_table_missing"] = 1
            ledger.append(spark, env, entry)
            log.info("gold.%s not built (its conformed inputs do not exist yet): not published", name)
            continue
        with ledger.leased(spark, env, entry):  # read = gold rows, written = warehouse rows after the MERGE
            result = publish_table(
                spark,
                env,
                conn,
                table,
                run_id=run_id,
                version=versions.get(name),
                loader=loader,
                schemas_ready=schemas_ready,
            )
            schemas_ready = True
            entry.input_version_start = entry.input_version_end = result.gold_version
            entry.records_read = sum(int(d.lake or 0) for d in result.differences if d.metric == "rows")
            entry.records_written = result.rows
            entry.details.update(
                added_columns=len(result.added_columns), skipped_statements=len(result.skipped_statements)
            )
        results.append(result)
    record_reconciliation(spark, env, run_id, results)
    bad = [r for r in results if not r.reconciled]
    if bad:
        lines = [
            f"  {r.table} v{r.gold_version} {'/'.join(d.partition)} {d.metric}: lake {d.lake} warehouse {d.warehouse}"
            for r in bad
            for d in r.differences
            if not d.matches
        ]
        raise reconcile.ReconciliationError(
            "warehouse differs from gold after publish (ops.warehouse_reconciliation has every figure):\n"
            + "\n".join(lines[:20])
            + "\nRe-run the publish for the same versions; if it still differs see docs/runbooks/snowflake-load-failure.md"
        )
    return results


def record_reconciliation(
    spark: SparkSession, env: EnvConfig, run_id: str, results: list[PublishResult]
) -> None:
    """Append every compared figure of this publish run to ops.warehouse_reconciliation (an audit log: a
    re-run adds its own rows under its own run id)."""
    now = datetime.now(UTC)

    def amount(value: Decimal | int | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    rows = [
        (
            run_id,
            r.table,
            r.gold_version,
            "/".join(d.partition),
            d.metric,
            amount(d.lake),
            amount(d.warehouse),
            d.matches,
            now,
        )
        for r in results
        for d in r.differences
    ]
    frame = spark.createDataFrame(rows, reconcile.RESULT_SCHEMA)
    frame.write.format("delta").mode("append").save(tables.WAREHOUSE_RECONCILIATION.path(env))
