"""Check results: one row per check per run in the Delta table ops.check_results, each explaining itself.

A row holds what was observed, the expected range and how that range was derived, how many rows failed and a
sample of their keys. Writing a run's results replaces that run's earlier rows for the table, so a retried
run never duplicates them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig
from northstar.lake import delta, tables
from northstar.lake.conflicts import retry_on_conflict

PASS, WARN, QUARANTINED, FAIL, SKIPPED = "pass", "warn", "quarantined", "fail", "skipped"

RESULT_SCHEMA = (
    "run_id string, table_name string, check_name string, check_type string, severity string, status string, "
    "observed double, expected_low double, expected_high double, explanation string, failed_rows bigint, "
    "rows_checked bigint, failing_keys array<string>, checked_at timestamp"
)


@dataclass
class CheckResult:
    """The outcome of one check in one run."""

    run_id: str
    table_name: str
    check_name: str
    check_type: str
    severity: str
    status: str
    explanation: str
    observed: float | None = None
    expected_low: float | None = None
    expected_high: float | None = None
    failed_rows: int | None = None
    rows_checked: int | None = None
    failing_keys: list[str] = field(default_factory=list)
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def stops_the_run(self) -> bool:
        return self.status == FAIL

    def line(self) -> str:
        return f"{self.table_name} {self.check_name} [{self.check_type}, {self.severity}]: {self.status} - {self.explanation}"


def _sql_text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write(spark: SparkSession, env: EnvConfig, results: list[CheckResult]) -> int | None:
    """Store results, replacing any earlier rows of the same (run, table): idempotent per run.
    Returns the Delta version written (None when there was nothing to write). Runs of other tables write here
    at once (the first two may create the table together): a commit that loses such a race is tried again."""
    if not results:
        return None
    path = tables.CHECK_RESULTS.path(env)
    frame = spark.createDataFrame([asdict(r) for r in results], RESULT_SCHEMA)
    pairs = sorted({(r.run_id, r.table_name) for r in results})
    scope = " OR ".join(
        f"(run_id = {_sql_text(run)} AND table_name = {_sql_text(table)})" for run, table in pairs
    )

    def save() -> None:  # decided again on a retry: the table may exist now
        writer = frame.write.format("delta")
        if delta.table_exists(spark, path):
            writer = writer.mode("overwrite").option("replaceWhere", scope)
        else:
            writer = writer.mode("append")
        writer.save(path)

    retry_on_conflict(save, what=tables.CHECK_RESULTS.full_name)
    return delta.latest_version(spark, path)


def read(spark: SparkSession, env: EnvConfig) -> DataFrame:
    path = tables.CHECK_RESULTS.path(env)
    if not delta.table_exists(spark, path):
        return spark.createDataFrame([], RESULT_SCHEMA)
    return spark.read.format("delta").load(path)


def history(
    spark: SparkSession, env: EnvConfig, table: str, check: str, before_run: str
) -> list[tuple[datetime, float]]:
    """(checked_at, observed) of this check in earlier runs: the metric history anomaly checks compare with."""
    rows = (
        read(spark, env)
        .where((F.col("table_name") == table) & (F.col("check_name") == check))
        .where((F.col("run_id") != before_run) & F.col("observed").isNotNull())
        .where(F.col("status") != SKIPPED)
        .select("checked_at", "observed")
        .collect()
    )
    return [(r["checked_at"], r["observed"]) for r in rows]
