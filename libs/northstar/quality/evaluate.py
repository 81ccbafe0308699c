"""Run a table's checks on a DataFrame: gather what the checks need (referenced tables, metric history from the
run ledger and ops.check_results), call the pure checks, and return the flagged rows and the results.

Used by the silver job on each batch (`evaluate`) and by any other job on the frame it is about to publish
(`run_checks`, which also stores the results and raises when a fail-severity check failed).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from northstar import ledger
from northstar.config import EnvConfig
from northstar.errors import NorthstarError
from northstar.lake import delta, tables
from northstar.quality import checks as c
from northstar.quality import results
from northstar.quality import spec as q
from northstar.quality.results import CheckResult


class QualityCheckFailed(NorthstarError):
    """A fail-severity check failed: the run stops before writing. The message lists the failed checks."""

    label = "stopped by a quality check"

    def __init__(self, table: str, run_id: str, failed: list[CheckResult]) -> None:
        self.failed = failed
        lines = "\n".join(f"  - {r.check_name} [{r.check_type}]: {r.explanation}" for r in failed)
        super().__init__(
            f"{table}: run {run_id} stopped by fail-severity checks; nothing was written to the table.\n{lines}\n"
            f"Fix the data at the source (or the rule in conf/quality/{table}.yaml), then re-run; "
            "results are in ops.check_results."
        )


def references(spark: SparkSession, env: EnvConfig, spec: q.TableChecks) -> dict[str, DataFrame]:
    """The tables relationship checks point at (an empty frame when a table does not exist yet, so every
    non-null reference fails: the check cannot pass by accident)."""
    frames = {}
    for check in spec.checks:
        if isinstance(check, q.Relationship) and check.to not in frames:
            path = tables.lookup(check.to).path(env)
            if delta.table_exists(spark, path):
                frames[check.to] = spark.read.format("delta").load(path)
            else:
                frames[check.to] = spark.createDataFrame([], f"`{check.to_column}` string")
    return frames


def ledger_row_counts(
    spark: SparkSession, env: EnvConfig, *, job: str, source: str, table: str, before_run: str
) -> list[tuple[datetime, float]]:
    """(started_at, records_read) of earlier successful runs of a job for a table: the row-count history."""
    rows = (
        ledger.read(spark, env)
        .where((F.col("job") == job) & (F.col("source") == source) & (F.col("table_name") == table))
        .where((F.col("status") == ledger.SUCCESS) & (F.col("run_id") != before_run))
        .select("started_at", "records_read")
        .collect()
    )
    return [(r["started_at"], float(r["records_read"])) for r in rows]


def flag(
    spark: SparkSession,
    env: EnvConfig,
    spec: q.TableChecks,
    frame: DataFrame,
    *,
    eligible: Column | None = None,
    refs: dict[str, DataFrame] | None = None,
) -> DataFrame:
    """`frame` with a failure flag per row-level check and `_check`/`_check_detail` (first failing
    quarantine-severity check); rows outside `eligible` are never flagged."""
    refs = refs if refs is not None else references(spark, env, spec)
    return c.flag_rows(frame, spec.checks, refs, eligible)


def judge(
    spark: SparkSession,
    env: EnvConfig,
    spec: q.TableChecks,
    flagged: DataFrame,
    judged: DataFrame,
    *,
    run_id: str,
    key: list[str],
    as_of: datetime | None = None,
    rows: int | None = None,
    row_count_history: list[tuple[datetime, float]] | None = None,
    current_schema: StructType | None = None,
    baseline_schema: StructType | None = None,
    ignore_columns: tuple[str, ...] = (),
) -> list[CheckResult]:
    """One result per check: row-level ones from the flags of `flagged`, table-level ones on `judged` (the
    rows the table would receive).

    `rows`: the count row_count_anomaly judges (default: `flagged`'s). `row_count_history`: earlier counts
    (default: this check's own earlier results). `current_schema` / `baseline_schema`: the incoming schema
    (default: `judged`'s) and the table's schema before this run (schema_change).
    """
    as_of = as_of or datetime.now(UTC)
    table = spec.table
    counts = c.failure_counts(flagged, spec.checks, key)
    total = rows
    if total is None and (counts or any(isinstance(k, q.RowCountAnomaly) for k in spec.checks)):
        total = flagged.count()
    found = c.row_results(spec.checks, counts, total or 0, run_id, table)
    for check in spec.checks:
        if isinstance(check, q.Unique):
            found.append(c.unique(judged, check, run_id, table))
        elif isinstance(check, q.Freshness):
            found.append(c.freshness(judged, check, run_id, table, as_of))
        elif isinstance(check, q.RowCountAnomaly):
            history = (
                row_count_history
                if row_count_history is not None
                else results.history(spark, env, table, check.name, run_id)
            )
            assert total is not None  # counted above whenever there is a row_count_anomaly check
            found.append(c.anomaly(check, float(total), history, as_of, run_id, table, "row count"))
        elif isinstance(check, q.NullRateSpike):
            rate, _ = c.null_rate(judged, check.column)
            history = results.history(spark, env, table, check.name, run_id)
            found.append(
                c.anomaly(check, rate, history, as_of, run_id, table, f"null rate of {check.column}")
            )
        elif isinstance(check, q.SchemaChange):
            incoming = current_schema if current_schema is not None else judged.schema
            found.append(c.schema_change(incoming, baseline_schema, check, run_id, table, ignore_columns))
    for result in found:
        result.checked_at = as_of
    return found


def run_checks(
    spark: SparkSession,
    env: EnvConfig,
    table: str,
    frame: DataFrame,
    run_id: str,
    *,
    key: list[str],
    baseline_schema: StructType | None = None,
    as_of: datetime | None = None,
) -> list[CheckResult]:
    """Judge a frame about to be published (e.g. a gold table) with conf/quality/<table>.yaml and store the
    results in ops.check_results. Row-level quarantine-severity failures are counted, not removed (there is
    no quarantine for derived tables). Pass the results to `publish.audit_and_publish`."""
    spec = q.load_checks(table)
    if spec is None:
        return []
    flagged = flag(spark, env, spec, frame)
    found = judge(
        spark,
        env,
        spec,
        flagged,
        frame,
        run_id=run_id,
        key=key,
        as_of=as_of,
        current_schema=frame.schema,
        baseline_schema=baseline_schema,
    )
    results.write(spark, env, found)
    return found


def stopping(found: list[CheckResult]) -> list[CheckResult]:
    return [r for r in found if r.stops_the_run]
