"""Audited corrections (SOX): UPDATE / DELETE / RESTORE of a Delta table, each logged in ops.corrections.

Every change records who, why, the ticket, the action, the rows affected (Delta's own operation metrics;
for a RESTORE, a row diff of the two versions) and the table's versions before and after. The log is a
Delta table with `delta.appendOnly = true`: Delta itself refuses an UPDATE or DELETE of it. A figure
published from a version can be recomputed from that version (time travel) with `reproduce`.
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig
from northstar.lake import delta, tables
from northstar.reconciliation.errors import CorrectionError
from northstar.reconciliation.reconcile import daily_figures
from northstar.reconciliation.spec import TableProfile
from northstar.reconciliation.version_diff import diff_versions, read_version

CORRECTIONS_SCHEMA = (
    "correction_id string, corrected_at timestamp, who string, why string, ticket string, action string, "
    "table_name string, table_path string, predicate string, assignments string, rows_affected bigint, "
    "version_before bigint, version_after bigint, metrics map<string,bigint>"
)
UPDATE, DELETE, ROLLBACK = "update", "delete", "rollback"


@dataclass(frozen=True)
class Correction:
    correction_id: str
    action: str
    table_name: str
    rows_affected: int
    version_before: int
    version_after: int


def default_who() -> str:
    """The OS user running the command (never a secret); --who overrides it."""
    return getpass.getuser()


def _require(who: str | None, why: str | None, ticket: str | None) -> tuple[str, str, str]:
    """(who, why, ticket) stripped; refused when one is missing or blank."""
    missing = [
        flag
        for flag, value in (("--who", who), ("--why", why), ("--ticket", ticket))
        if not (value or "").strip()
    ]
    if missing:
        raise CorrectionError(
            f"refused: a correction must say who made it, why, and under which ticket; pass {', '.join(missing)} "
            '(e.g. --why "duplicate charge ch_123 booked twice" --ticket FIN-1234)'
        )
    return (who or "").strip(), (why or "").strip(), (ticket or "").strip()


def ensure_log(spark: SparkSession, env: EnvConfig) -> str:
    """Create ops.corrections (append-only) if it does not exist; returns its path."""
    path = tables.CORRECTIONS.path(env)
    if delta.table_exists(spark, path):
        return path
    builder = DeltaTable.createIfNotExists(spark).location(path).property("delta.appendOnly", "true")
    for field in spark.createDataFrame([], CORRECTIONS_SCHEMA).schema.fields:
        builder = builder.addColumn(field.name, field.dataType)
    builder.execute()
    return path


def _log(spark: SparkSession, env: EnvConfig, row: dict) -> None:
    path = ensure_log(spark, env)
    spark.createDataFrame([row], CORRECTIONS_SCHEMA).write.format("delta").mode("append").save(path)


def _table_version(spark: SparkSession, path: str, table_name: str) -> int:
    version = delta.latest_version(spark, path)
    if version is None:
        raise CorrectionError(
            f"{table_name}: no Delta table at {path}; check the name with `northstar tables`"
        )
    return version


def correct(
    spark: SparkSession,
    env: EnvConfig,
    *,
    table_name: str,
    path: str,
    where: str,
    assignments: dict[str, str] | None,
    who: str | None,
    why: str | None,
    ticket: str | None,
) -> Correction:
    """UPDATE the rows matching `where` (column -> SQL expression) or, without assignments, DELETE them."""
    who, why, ticket = _require(who, why, ticket)
    if not (where or "").strip():
        raise CorrectionError(
            "refused: pass --where with the rows to correct (a whole-table change is a rollback or a rebuild)"
        )
    before = _table_version(spark, path, table_name)
    table = DeltaTable.forPath(spark, path)
    if assignments:
        unknown = sorted(set(assignments) - set(table.toDF().columns))
        if unknown:
            raise CorrectionError(f"--set names {', '.join(unknown)}, not columns of {table_name}")
        table.update(condition=where, set={c: F.expr(e) for c, e in assignments.items()})
        action, metric = UPDATE, "numUpdatedRows"
    else:
        table.delete(where)
        action, metric = DELETE, "numDeletedRows"
    after = _table_version(spark, path, table_name)
    metrics = delta.commit_metrics(spark, path, after) if after != before else {}
    correction_id, rows_affected = uuid.uuid4().hex, metrics.get(metric, 0)
    entry = {
        "correction_id": correction_id,
        "corrected_at": datetime.now(UTC),
        "who": who,
        "why": why,
        "ticket": ticket,
        "action": action,
        "table_name": table_name,
        "table_path": path,
        "predicate": where,
        "assignments": ", ".join(f"{c} = {e}" for c, e in (assignments or {}).items()) or None,
        "rows_affected": rows_affected,
        "version_before": before,
        "version_after": after,
        "metrics": metrics,
    }
    _log(spark, env, entry)
    return Correction(correction_id, action, table_name, rows_affected, before, after)


def rollback(
    spark: SparkSession,
    env: EnvConfig,
    *,
    table_name: str,
    path: str,
    to_version: int,
    who: str | None,
    why: str | None,
    ticket: str | None,
) -> Correction:
    """RESTORE the table to `to_version` (Delta's own RESTORE, itself a new version: nothing is erased)."""
    who, why, ticket = _require(who, why, ticket)
    before = _table_version(spark, path, table_name)
    if not 0 <= to_version < before:
        raise CorrectionError(
            f"--to-version {to_version}: {table_name} is at version {before}; pass an earlier version "
            "(see `DESCRIBE HISTORY` or `northstar investigate`)"
        )
    DeltaTable.forPath(spark, path).restoreToVersion(to_version)
    after = _table_version(spark, path, table_name)
    metrics = delta.commit_metrics(spark, path, after)
    changes = diff_versions(spark, path, before, after)
    metrics.update({"rows_added": changes.added, "rows_removed": changes.removed})
    correction_id, rows_affected = uuid.uuid4().hex, changes.added + changes.removed
    entry = {
        "correction_id": correction_id,
        "corrected_at": datetime.now(UTC),
        "who": who,
        "why": why,
        "ticket": ticket,
        "action": ROLLBACK,
        "table_name": table_name,
        "table_path": path,
        "predicate": f"restore to version {to_version}",
        "assignments": None,
        "rows_affected": rows_affected,
        "version_before": before,
        "version_after": after,
        "metrics": metrics,
    }
    _log(spark, env, entry)
    return Correction(correction_id, ROLLBACK, table_name, rows_affected, before, after)


def read_log(spark: SparkSession, env: EnvConfig) -> DataFrame:
    path = tables.CORRECTIONS.path(env)
    if not delta.table_exists(spark, path):
        return spark.createDataFrame([], CORRECTIONS_SCHEMA)
    return spark.read.format("delta").load(path)


def reproduce(
    spark: SparkSession, path: str, version: int, profile: TableProfile, day: date | None = None
) -> DataFrame:
    """The daily figures (count, sum per day and currency) of the table as it was at `version`."""
    figures = daily_figures(read_version(spark, path, version), profile)
    if day is not None:
        figures = figures.where(F.col("business_date") == F.lit(day))
    return figures.orderBy("business_date", "currency")
