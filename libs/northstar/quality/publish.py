"""Write-audit-publish: a table's published version moves only when the run's checks pass.

A job writes its table as usual (write), judges it with `evaluate.run_checks` (audit), then calls
`audit_and_publish`: when no fail-severity check failed, the table's current Delta version becomes the
published one; otherwise the last good version stays published, the refusal is recorded and an alert raised.
Readers (dashboards, the Snowflake publish) read `read_published`, never the latest version. The pointer is
the append-only Delta table ops.published_versions: one row per decision, so the history of what was
published, refused and why is kept (SOX).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig
from northstar.lake import delta, tables
from northstar.lake.tables import Table
from northstar.observability import alerts
from northstar.quality.results import FAIL, CheckResult

PUBLISHED, REFUSED = "published", "refused"
DECISION_SCHEMA = (
    "table_name string, version bigint, run_id string, decision string, failed_checks array<string>, "
    "published_version bigint, decided_at timestamp"
)


@dataclass
class PublishDecision:
    """What `audit_and_publish` decided for one run of one table."""

    table: str
    run_id: str
    version: int  # the table version the run produced and the audit judged
    published: bool  # True: `version` is now the published version
    published_version: int | None  # the version readers get after this decision (None: never published)
    failed_checks: list[str] = field(default_factory=list)
    decided_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def decision(self) -> str:
        return PUBLISHED if self.published else REFUSED


def _failed_checks(table: str, results: list[CheckResult] | DataFrame) -> list[str]:
    """Names of fail-severity checks of `table` that failed (results of other tables are ignored)."""
    if isinstance(results, DataFrame):
        rows = results.where((F.col("table_name") == table) & (F.col("status") == FAIL)).select("check_name")
        return sorted({r["check_name"] for r in rows.collect()})
    return sorted({r.check_name for r in results if r.table_name == table and r.status == FAIL})


def _decisions(spark: SparkSession, env: EnvConfig, table: Table) -> DataFrame | None:
    path = tables.PUBLISHED_VERSIONS.path(env)
    if not delta.table_exists(spark, path):
        return None
    return spark.read.format("delta").load(path).where(F.col("table_name") == table.full_name)


def published_version(spark: SparkSession, env: EnvConfig, table: Table) -> int | None:
    """The table's last good (published) Delta version, None if it was never published."""
    decisions = _decisions(spark, env, table)
    if decisions is None:
        return None
    row = decisions.where(F.col("decision") == PUBLISHED).orderBy(F.col("decided_at").desc()).first()
    return None if row is None else row["version"]


def read_published(spark: SparkSession, env: EnvConfig, table: Table) -> DataFrame:
    """The table as of its published version (Delta time travel). Raises when it was never published."""
    version = published_version(spark, env, table)
    if version is None:
        raise LookupError(
            f"{table} has no published version yet: no run of it has passed its audit "
            "(see ops.published_versions and ops.check_results)"
        )
    return spark.read.format("delta").option("versionAsOf", version).load(table.path(env))


def audit_and_publish(
    spark: SparkSession, env: EnvConfig, table: Table, run_id: str, results: list[CheckResult] | DataFrame
) -> PublishDecision:
    """Publish the table's current version if no fail-severity check of `table` failed in `results`; else keep
    the last published version, record the refusal and raise an alert. Calling it again for the same run
    and version returns the recorded decision without writing a second row."""
    location = table.path(env)
    version = delta.latest_version(spark, location)
    if version is None:
        raise LookupError(f"{table}: no Delta table at {location}; write the table before auditing it")
    earlier = _recorded_decision(spark, env, table, run_id, version)
    if earlier is not None:
        return earlier
    failed = _failed_checks(table.full_name, results)
    current = published_version(spark, env, table)
    decision = PublishDecision(
        table=table.full_name,
        run_id=run_id,
        version=version,
        published=not failed,
        published_version=current if failed else version,
        failed_checks=failed,
    )
    _record(spark, env, decision)
    if failed:
        _alert_refusal(env, table, decision, current)
    return decision


def _recorded_decision(
    spark: SparkSession, env: EnvConfig, table: Table, run_id: str, version: int
) -> PublishDecision | None:
    """The decision already recorded for this run and version, if any."""
    decisions = _decisions(spark, env, table)
    if decisions is None:
        return None
    earlier = decisions.where((F.col("run_id") == run_id) & (F.col("version") == version)).first()
    if earlier is None:
        return None
    return PublishDecision(
        table=table.full_name,
        run_id=run_id,
        version=version,
        published=earlier["decision"] == PUBLISHED,
        published_version=earlier["published_version"],
        failed_checks=list(earlier["failed_checks"] or []),
        decided_at=earlier["decided_at"],
    )


def _record(spark: SparkSession, env: EnvConfig, decision: PublishDecision) -> None:
    """Append the decision to ops.published_versions."""
    row = {
        "table_name": decision.table,
        "version": decision.version,
        "run_id": decision.run_id,
        "decision": decision.decision,
        "failed_checks": decision.failed_checks,
        "published_version": decision.published_version,
        "decided_at": decision.decided_at,
    }
    spark.createDataFrame([row], DECISION_SCHEMA).write.format("delta").mode("append").save(
        tables.PUBLISHED_VERSIONS.path(env)
    )


def _alert_refusal(env: EnvConfig, table: Table, decision: PublishDecision, current: int | None) -> None:
    """Alert that the run's version failed its audit and which version stays published."""
    failed = decision.failed_checks
    kept = "never published" if current is None else f"version {current} stays published"
    alerts.send(
        env,
        alerts.Alert(
            kind="audit_failed",
            table=table.full_name,
            run_id=decision.run_id,
            message=f"{table} version {decision.version} failed its audit ({', '.join(failed)}); {kept}",
            details={
                "version": str(decision.version),
                "published_version": str(current),
                "failed": ",".join(failed),
            },
        ),
    )
