"""Publish gold tables to Snowflake, moving only what changed: the warehouse records the gold version each
table holds (published.py); a publish reads the change data feed from there to the version being published
(changes.py), loads the net upserts and deletes into a per-run staging table (loaders.py: Parquet on the S3
stage + COPY INTO by default), and applies them with one MERGE and the new version record in one transaction.
A table already at that version is a noop that reads nothing; a first publish, or a range the feed cannot
cover, loads the whole version and deletes the keys it lacks. DDL comes from the gold schema (add-only), PII
columns get masking policies, and the touched partitions are reconciled lake <-> warehouse into
ops.warehouse_reconciliation. A retry or re-run never duplicates and never skips a change.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from snowflake.connector import SnowflakeConnection

from northstar import ledger
from northstar.config import ConfigError, EnvConfig
from northstar.config.env import SnowflakeSpec
from northstar.gold.tables import GOLD, GoldTable
from northstar.lake import delta, tables
from northstar.ledger import LedgerEntry
from northstar.quality.publish import published_version
from northstar.warehouse import changes, ddl, loaders, published, reconcile
from northstar.warehouse.comments import comment_statements
from northstar.warehouse.connection import execute, execute_governance, execute_only
from northstar.warehouse.stream_tables import Publishable, stream_tables

log = logging.getLogger(__name__)

FULL, INCREMENTAL, NOOP = "full", "incremental", "noop"


@dataclass
class PublishResult:
    """What one publish of one gold table did."""

    table: str
    gold_version: int
    rows: int
    mode: str = NOOP
    from_version: int | None = None  # the version the warehouse held before
    upserted: int = 0
    deleted: int = 0
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


def ensure_schemas(conn: SnowflakeConnection, spec: SnowflakeSpec, skipped: list[str]) -> None:
    """The schemas, the publish's own objects (version record, gold stage) and who may read them (grants are
    governance statements: see connection.py)."""
    for schema in (spec.analytics_schema, spec.restricted_schema, spec.ops_schema):
        execute(conn, f"CREATE SCHEMA IF NOT EXISTS {spec.database}.{schema}")
    execute(conn, published.create_statement(spec))
    if spec.loader == "bulk":
        execute(conn, loaders.create_stage_statement(spec))
    for statement in governance_statements(spec):
        execute_governance(conn, spec, statement, skipped)


def governance_statements(spec: SnowflakeSpec) -> list[str]:
    """The masking policy PII_MASK (the PII reader sees values, everyone else ***MASKED***), and the restricted
    schema closed to PUBLIC and opened to the PII reader role."""
    return [
        f"CREATE MASKING POLICY IF NOT EXISTS {spec.database}.{spec.analytics_schema}.PII_MASK AS "
        f"(val VARCHAR) RETURNS VARCHAR -> CASE WHEN IS_ROLE_IN_SESSION('{spec.pii_reader_role}') THEN val "
        "ELSE '***MASKED***' END",
        f"REVOKE ALL ON SCHEMA {spec.database}.{spec.restricted_schema} FROM ROLE PUBLIC",
        f"GRANT USAGE ON SCHEMA {spec.database}.{spec.restricted_schema} TO ROLE {spec.pii_reader_role}",
    ]


def masking_statements(
    spec: SnowflakeSpec, table: Publishable, target: str, columns: list[ddl.Column]
) -> list[str]:
    """Columns that identify a person (tokens too: pseudonymous data is still personal data) are masked in
    the analytics schema for every role but the PII reader."""
    pii = {c.upper() for c in table.pii_columns([c.name.lower() for c in columns])}
    return [
        f"ALTER TABLE {target} MODIFY COLUMN {column.name} SET MASKING POLICY "
        f"{spec.database}.{spec.analytics_schema}.PII_MASK FORCE"
        for column in columns
        if column.name in pii and column.type == "VARCHAR"
    ]


def existing_columns(conn: SnowflakeConnection, spec: SnowflakeSpec, table: str) -> list[ddl.Column] | None:
    """The target's columns from information_schema, or None when the table does not exist."""
    rows = execute(
        conn,
        f"SELECT column_name, data_type, numeric_precision, numeric_scale FROM {spec.database}.information_schema"
        ".columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (spec.analytics_schema.upper(), table.upper()),
    )
    return [ddl.Column(r[0].upper(), ddl.normalise(r[1], r[2], r[3])) for r in rows] or None


def merge_statement(
    target: str, staging: str, columns: list[ddl.Column], key: tuple[str, ...], *, run_id: str, at: datetime
) -> str:
    """One MERGE: staged deletes leave, new keys are inserted, keys whose values differ are updated (unchanged
    rows are not rewritten, so their _LOADED_AT / _RUN_ID stay those of the publish that last changed them)."""
    keys = [k.upper() for k in key]
    on = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    values = [c.name for c in columns if c.name not in keys]
    changed = " OR ".join(f"t.{c} IS DISTINCT FROM s.{c}" for c in values) or "FALSE"
    stamp = f"CAST('{at.replace(tzinfo=None).isoformat(sep=' ')}' AS TIMESTAMP_NTZ)"
    run = "'" + run_id.replace("'", "''") + "'"
    update = ", ".join(
        [f"{c} = s.{c}" for c in values] + [f"{ddl.LOADED_AT.name} = {stamp}", f"{ddl.RUN_ID.name} = {run}"]
    )
    names = ", ".join([c.name for c in columns] + [ddl.LOADED_AT.name, ddl.RUN_ID.name])
    inserted = ", ".join([f"s.{c.name}" for c in columns] + [stamp, run])
    deleted = ddl.DELETED.name
    return (
        f"MERGE INTO {target} t USING {staging} s ON {on} "
        f"WHEN MATCHED AND s.{deleted} THEN DELETE "
        f"WHEN MATCHED AND ({changed}) THEN UPDATE SET {update} "
        f"WHEN NOT MATCHED AND NOT s.{deleted} THEN INSERT ({names}) VALUES ({inserted})"
    )


def delete_statement(target: str, staging: str, key: tuple[str, ...]) -> str:
    """A full load: keys the published gold version does not have leave the target."""
    on = " AND ".join(f"t.{k.upper()} = s.{k.upper()}" for k in key)
    return f"DELETE FROM {target} t WHERE NOT EXISTS (SELECT 1 FROM {staging} s WHERE {on})"


def apply_staging(
    conn: SnowflakeConnection,
    statements: list[tuple[str, tuple | None]],
    *,
    transaction: bool = True,
) -> None:
    """The MERGE (a full load's DELETE) and the version record in one transaction: readers see the old table
    or the new one, and the recorded version is always the one the table holds.

    fakesnow cannot MERGE inside an explicit transaction (DuckDB: "a single transaction can only write to a
    single attached database"), so locally they run one after the other; each is idempotent and the version
    is recorded last, so a crash between them is repaired by the retry, which moves the same changes again."""
    if transaction:
        execute(conn, "BEGIN")
    try:
        for statement, params in statements:
            execute(conn, statement, params)
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


@dataclass(frozen=True)
class _Changes:
    """What a publish moves: the rows to stage and the partitions a reconciliation compares (None = all)."""

    mode: str
    rows: DataFrame | None
    partitions: list[tuple] | None


def publish_table(
    spark: SparkSession,
    env: EnvConfig,
    conn: SnowflakeConnection,
    table: Publishable,
    *,
    run_id: str,
    version: int | None = None,
    schemas_ready: bool = False,
) -> PublishResult:
    """Make the warehouse table equal to gold.<table> at Delta `version` (None = the version its audit last
    published, ops.published_versions), moving only the changes since the version it holds, then reconcile
    the partitions they touched. `schemas_ready`: the caller already ran `ensure_schemas` on this connection
    (publish_all does it once per run)."""
    spec = env.snowflake
    if spec is None:
        raise ConfigError(f"conf/env/{env.name}.yaml: no snowflake: section (see docs/snowflake.md)")
    version, frame = _published_gold(spark, env, table, version)
    columns = ddl.columns_of(frame.schema)
    result = PublishResult(table.name, version, 0)
    if not schemas_ready:
        ensure_schemas(conn, spec, result.skipped_statements)
    target = qualified(spec, table.name)
    created = _ensure_table(conn, spec, table, target, columns, result)
    held = None if created else published.held_version(conn, spec, table.name)
    result.from_version = held
    drop_stale_staging(conn, spec, table.name)
    if held == version:
        result.rows = _row_count(conn, target)
        return result  # the warehouse holds this version: nothing to read, nothing to move
    found = _changes_to_move(spark, env, table, frame, held, version)
    result.mode = found.mode
    _move(conn, spec, table, target, columns, found, result, run_id=run_id)
    for statement in masking_statements(spec, table, target, columns):
        execute_governance(conn, spec, statement, result.skipped_statements)
    result.rows = _row_count(conn, target)
    result.differences = check_table(conn, spec, table, frame, found.partitions)
    return result


def _ensure_table(
    conn: SnowflakeConnection,
    spec: SnowflakeSpec,
    table: Publishable,
    target: str,
    columns: list[ddl.Column],
    result: PublishResult,
) -> bool:
    """The target with the gold columns plus _LOADED_AT / _RUN_ID: created, or the new columns added (never
    dropped or retyped); comments written when it is created or widened. True when it was created."""
    existing = existing_columns(conn, spec, table.name)
    wanted = [*columns, ddl.LOADED_AT, ddl.RUN_ID]
    if existing is None:
        execute(conn, ddl.create_table(target, wanted))
    else:
        for statement in ddl.evolve(target, existing, wanted):
            execute(conn, statement)
            result.added_columns.append(statement.rsplit(" ", 2)[-2])
    if existing is None or result.added_columns:
        for statement in comment_statements(target, table, [c.name for c in wanted]):
            execute_only(conn, statement)
    return existing is None


def _move(
    conn: SnowflakeConnection,
    spec: SnowflakeSpec,
    table: Publishable,
    target: str,
    columns: list[ddl.Column],
    found: _Changes,
    result: PublishResult,
    *,
    run_id: str,
) -> None:
    """Stage the rows, then MERGE them (a full load also deletes the keys it lacks) and record the version, in
    one transaction; drop the staging table."""
    at = datetime.now(UTC)
    statements: list[tuple[str, tuple | None]] = []
    staging = qualified(spec, staging_name(table.name, run_id))
    if found.rows is not None:
        execute(conn, ddl.create_table(staging, [*columns, ddl.DELETED], replace=True))
        loaders.LOADERS[spec.loader](conn, spec, found.rows, staging, [*columns, ddl.DELETED])
        result.upserted, result.deleted = _staged_counts(conn, staging)
        statements.append((merge_statement(target, staging, columns, table.key, run_id=run_id, at=at), None))
        if found.mode == FULL:
            statements.append((delete_statement(target, staging, table.key), None))
    statements += published.record_statements(
        spec, table.name, result.gold_version, run_id=run_id, mode=found.mode, upserted=result.upserted,
        deleted=result.deleted, at=at,
    )  # fmt: skip
    apply_staging(conn, statements, transaction=spec.mode != "fakesnow")
    execute(conn, f"DROP TABLE IF EXISTS {staging}")


def _changes_to_move(
    spark: SparkSession, env: EnvConfig, table: Publishable, frame: DataFrame, held: int | None, version: int
) -> _Changes:
    """The net changes after `held` up to `version` from the change feed, or the whole version when there is
    nothing to start from (first publish, an older version asked for) or the feed does not cover the range."""
    feed = None
    if held is not None and held < version:
        feed = delta.change_feed(spark, table.table.path(env), held + 1, version)
        if feed is None:
            log.warning(
                "gold.%s: the change feed does not cover versions %d..%d; loading the whole version %d",
                table.name, held + 1, version, version,
            )  # fmt: skip
    if feed is None:
        return _Changes(FULL, changes.whole_table(frame), None)
    grain = reconcile.partition_columns(frame.columns, table.partition)
    partitions = (
        [tuple(r) for r in changes.touched_partitions(feed, grain).collect()] if table.partition else None
    )
    net = changes.net_changes(feed, table.key)
    return _Changes(INCREMENTAL, None if not partitions and table.partition else net, partitions)


def _staged_counts(conn: SnowflakeConnection, staging: str) -> tuple[int, int]:
    """(rows to upsert, keys to delete) in the staging table."""
    rows = execute(
        conn,
        f"SELECT COUNT_IF(NOT {ddl.DELETED.name}), COUNT_IF({ddl.DELETED.name}) FROM {staging}",
    )
    return int(rows[0][0] or 0), int(rows[0][1] or 0)


def _row_count(conn: SnowflakeConnection, target: str) -> int:
    return int(execute(conn, f"SELECT COUNT(*) FROM {target}")[0][0])


def _published_gold(
    spark: SparkSession, env: EnvConfig, table: Publishable, version: int | None
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
    conn: SnowflakeConnection,
    spec: SnowflakeSpec,
    table: Publishable,
    gold: DataFrame,
    partitions: list[tuple] | None = None,
) -> list[reconcile.Difference]:
    """Counts and money sums per partition of the gold rows vs the warehouse table: every partition, or only
    `partitions` (grain values: the day, and the currency where the table has one)."""
    grain = reconcile.partition_columns(gold.columns, table.partition)
    target = qualified(spec, table.name)
    where = None
    if partitions is not None:
        if not partitions:
            return []
        days = sorted({p[0] for p in partitions})
        gold = gold.where(F.col(grain[0]).isin(days))
        where = reconcile.partition_filter(grain[0], [str(d) for d in days])
    lake = reconcile.lake_figures(gold, grain, table.amounts)
    warehouse = reconcile.warehouse_figures(
        execute(conn, reconcile.warehouse_query(target, grain, table.amounts, where)), grain, table.amounts
    )
    if partitions is not None:
        wanted = {tuple(str(v) for v in p) for p in partitions}
        lake = {k: v for k, v in lake.items() if k in wanted}
        warehouse = {k: v for k, v in warehouse.items() if k in wanted}
        for emptied in (
            wanted - set(lake) - set(warehouse)
        ):  # every row of it left: 0 on both sides is the check
            lake[emptied] = warehouse[emptied] = {"rows": 0}
    return reconcile.compare(lake, warehouse)


def publish_all(
    spark: SparkSession,
    env: EnvConfig,
    conn: SnowflakeConnection,
    *,
    run_id: str,
    versions: Mapping[str, int | None] | None = None,
) -> list[PublishResult]:
    """Publish every gold table (versions: table -> Delta version, missing/None = the published one), record the
    reconciliation, and raise ReconciliationError when any partition differs."""
    versions = versions or {}
    results: list[PublishResult] = []
    done: list[LedgerEntry] = []  # successful ledger rows, written in one commit at the end (even on a crash)
    try:
        for name, table in GOLD.items():
            if _never_built(spark, env, table):
                done.append(_not_built(env, run_id, name))
                log.info("gold.%s not built (its conformed inputs do not exist yet): not published", name)
                continue
            results.append(
                publish_recorded(
                    spark,
                    env,
                    conn,
                    table,
                    run_id=run_id,
                    version=versions.get(name),
                    schemas_ready=bool(results),
                    done=done,
                )  # fmt: skip
            )  # ensure_schemas runs with the first table's publish, once per run
    finally:
        ledger.append_many(spark, env, done)
    raise_if_different(results)
    return results


def publish_stream(
    spark: SparkSession,
    env: EnvConfig,
    conn: SnowflakeConnection,
    source: str,
    *,
    run_id: str,
    schemas_ready: bool = False,
) -> list[PublishResult]:
    """Publish the session facts and minute aggregates of a streamed source at their latest Delta version
    (there is no audit of stream tables, so the latest version is the published one), incrementally from their
    change feeds; same ledger rows and reconciliation as publish_all. A table the stream has not written yet
    is a noop ledger row (`input_table_missing`)."""
    results: list[PublishResult] = []
    done: list[LedgerEntry] = []
    try:
        for table in stream_tables(source):
            version = delta.latest_version(spark, table.table.path(env))
            if version is None:
                done.append(_not_built(env, run_id, table.name))
                continue
            results.append(
                publish_recorded(
                    spark,
                    env,
                    conn,
                    table,
                    run_id=run_id,
                    version=version,
                    schemas_ready=schemas_ready,
                    done=done,
                )  # fmt: skip
            )
            schemas_ready = True
    finally:
        ledger.append_many(spark, env, done)
    raise_if_different(results)
    return results


def _not_built(env: EnvConfig, run_id: str, name: str) -> LedgerEntry:
    """The noop ledger row of a table that does not exist yet (nothing to publish)."""
    entry = LedgerEntry(
        run_id=run_id, job="publish", env=env.name, source="snowflake", table_name=name, layer="publish"
    )
    entry.status = ledger.NOOP
    entry.details["input_table_missing"] = 1
    return entry


def publish_recorded(
    spark: SparkSession,
    env: EnvConfig,
    conn: SnowflakeConnection,
    table: Publishable,
    *,
    run_id: str,
    version: int | None,
    schemas_ready: bool,
    done: list[LedgerEntry] | None = None,
) -> PublishResult:
    """publish_table under the table's publish lease, with its ledger row (read = rows staged, written = rows
    the MERGE applied; a failure is a `failed` row written at once and re-raised; a success goes to `done`
    when given, for one commit of the run's rows) and its reconciliation figures (none for a noop)."""
    entry = LedgerEntry(
        run_id=run_id, job="publish", env=env.name, source="snowflake", table_name=table.name, layer="publish"
    )
    with ledger.leased(spark, env, entry, done):
        result = publish_table(
            spark, env, conn, table, run_id=run_id, version=version, schemas_ready=schemas_ready
        )
        entry.input_version_start = (result.from_version + 1) if result.from_version is not None else 0
        entry.input_version_end = result.gold_version
        entry.records_read = entry.records_written = result.upserted + result.deleted
        if result.mode == NOOP:
            entry.status = ledger.NOOP
        entry.details.update(
            incremental=int(result.mode == INCREMENTAL), full=int(result.mode == FULL),
            upserted=result.upserted, deleted=result.deleted, warehouse_rows=result.rows,
            added_columns=len(result.added_columns), skipped_statements=len(result.skipped_statements),
        )  # fmt: skip
    if result.mode != NOOP:
        record_reconciliation(spark, env, run_id, [result])  # per table, so a later crash keeps it
    return result


def raise_if_different(results: list[PublishResult]) -> None:
    """ReconciliationError naming every figure that differs (first 20), when any does."""
    bad = [r for r in results if not r.reconciled]
    if not bad:
        return
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


def record_reconciliation(
    spark: SparkSession, env: EnvConfig, run_id: str, results: list[PublishResult]
) -> None:
    """Append every compared figure of this publish run to ops.warehouse_reconciliation (an audit log: a
    re-run adds its own rows under its own run id). Nothing compared (a noop), nothing written."""
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
    if not rows:
        return
    frame = spark.createDataFrame(rows, reconcile.RESULT_SCHEMA)
    frame.write.format("delta").mode("append").save(tables.WAREHOUSE_RECONCILIATION.path(env))
