"""Reconciliation: daily counts and sums of two tables compared per day and currency, and duplicate rates.

`compare` and `daily_figures` / `duplicate_rate` are pure DataFrame -> DataFrame functions (no I/O), so the
lake <-> warehouse comparison can reuse them; `run_reconciliation` reads the tables named in
conf/reconciliation/<name>.yaml and writes one row per comparison, day, currency and measure of a run to
`ops.reconciliation` (a retried run replaces its own rows, never adds to them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig
from northstar.lake import delta, tables
from northstar.reconciliation.spec import ReconSpec, TableProfile, table_location

VALUE = "decimal(38,4)"
OK, BREACH, MISSING_LEFT, MISSING_RIGHT = "ok", "breach", "missing_left", "missing_right"
RECON_SCHEMA = (
    f"run_id string, recon_date date, comparison string, kind string, business_date date, currency string, "
    f"measure string, left_table string, right_table string, left_value {VALUE}, right_value {VALUE}, "
    f"abs_variance {VALUE}, variance_pct double, threshold_pct double, status string"
)


def compare(
    left: DataFrame, right: DataFrame, keys: list[str], measures: list[str], tolerance_pct: float
) -> DataFrame:
    """Per key and measure: both values, |left - right|, that as a percent of |right| (the reference), the
    status: ok when equal or below `tolerance_pct` (the brief's SLAs are strict: < 0.05%), breach otherwise, missing_left / missing_right when a side has no row
    for the key (a missing side is a breach unless the other side's value is 0)."""
    joined = left.alias("l").join(right.alias("r"), on=keys, how="full_outer")
    has_left = F.coalesce(*[F.col(f"l.{k}").isNotNull() for k in keys[:1]], F.lit(False))
    has_right = F.coalesce(*[F.col(f"r.{k}").isNotNull() for k in keys[:1]], F.lit(False))
    frames = []
    for measure in measures:
        lv = F.col(f"l.{measure}").cast(VALUE)
        rv = F.col(f"r.{measure}").cast(VALUE)
        diff = F.abs(F.coalesce(lv, F.lit(0)) - F.coalesce(rv, F.lit(0))).cast(VALUE)
        pct = (
            F.when(diff == 0, F.lit(0.0))
            .when(F.coalesce(rv, F.lit(0)) == 0, F.lit(None).cast("double"))
            .otherwise(diff.cast("double") / F.abs(rv).cast("double") * 100)
        )
        status = (
            F.when(~has_left & (diff != 0), F.lit(MISSING_LEFT))
            .when(~has_right & (diff != 0), F.lit(MISSING_RIGHT))
            .when((diff == 0) | (pct < F.lit(float(tolerance_pct))), F.lit(OK))
            .otherwise(F.lit(BREACH))
        )
        frames.append(
            joined.select(
                *keys,
                F.lit(measure).alias("measure"),
                lv.alias("left_value"),
                rv.alias("right_value"),
                diff.alias("abs_variance"),
                pct.alias("variance_pct"),
                F.lit(float(tolerance_pct)).alias("threshold_pct"),
                status.alias("status"),
            )
        )
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def _profile_rows(frame: DataFrame, profile: TableProfile, extra_filter: str | None) -> DataFrame:
    for condition in (profile.filter, extra_filter):
        if condition:
            frame = frame.where(condition)
    return frame.select(
        F.to_date(F.expr(profile.date)).alias("business_date"),
        F.upper(F.expr(profile.currency).cast("string")).alias("currency"),
        F.expr(profile.amount).cast(VALUE).alias("amount"),
        (F.expr(profile.count) if profile.count else F.lit(1)).cast(VALUE).alias("_count"),
        F.concat_ws("\u0001", *[F.col(k).cast("string") for k in profile.key]).alias("_key"),
    )


def daily_figures(frame: DataFrame, profile: TableProfile, extra_filter: str | None = None) -> DataFrame:
    """business_date, currency, count and sum, each key counted once (an order paid by two charges, or a row
    duplicated by a bug, is one order; its largest amount when its rows disagree): duplicates show in the
    duplicate rate, never as double-counted revenue. A table of totals gives its count with `count:`."""
    rows = _profile_rows(frame, profile, extra_filter)
    per_key = rows.groupBy("business_date", "currency", "_key").agg(
        F.max("amount").alias("amount"), F.max("_count").alias("_count")
    )
    return per_key.groupBy("business_date", "currency").agg(
        F.sum("_count").cast(VALUE).alias("count"), F.sum("amount").cast(VALUE).alias("sum")
    )


def raw_daily_figures(frame: DataFrame, profile: TableProfile, extra_filter: str | None = None) -> DataFrame:
    """Like `daily_figures` but every row counts (what a naive SUM over the table reports)."""
    rows = _profile_rows(frame, profile, extra_filter)
    return rows.groupBy("business_date", "currency").agg(
        F.sum("_count").cast(VALUE).alias("count"), F.sum("amount").cast(VALUE).alias("sum")
    )


def duplicate_rate(frame: DataFrame, profile: TableProfile, tolerance_pct: float) -> DataFrame:
    """Per business date: keys with more than one row (left_value), distinct keys (right_value), their
    ratio in percent (variance_pct) against the duplicate-rate SLA."""
    rows = _profile_rows(frame, profile, None)
    per_key = rows.groupBy("business_date", "_key").agg(F.count(F.lit(1)).alias("rows"))
    daily = per_key.groupBy("business_date").agg(
        F.sum(F.when(F.col("rows") > 1, 1).otherwise(0)).cast(VALUE).alias("duplicated"),
        F.count(F.lit(1)).cast(VALUE).alias("keys"),
    )
    pct = F.col("duplicated").cast("double") / F.col("keys").cast("double") * 100
    return daily.select(
        "business_date",
        F.lit("*").alias("currency"),
        F.lit("duplicate_rate").alias("measure"),
        F.col("duplicated").alias("left_value"),
        F.col("keys").alias("right_value"),
        F.col("duplicated").alias("abs_variance"),
        pct.alias("variance_pct"),
        F.lit(float(tolerance_pct)).alias("threshold_pct"),
        F.when((F.col("duplicated") == 0) | (pct < F.lit(float(tolerance_pct))), F.lit(OK))
        .otherwise(F.lit(BREACH))
        .alias("status"),
    )


@dataclass(frozen=True)
class ReconResult:
    run_id: str
    rows: int
    breaches: int
    version: int | None


def _window(day: date, days: int) -> tuple[date, date]:
    return day - timedelta(days=days - 1), day


def read_table(spark: SparkSession, env: EnvConfig, spec: ReconSpec, name: str) -> DataFrame:
    """The table `name` of the spec, with the tables of its `union_with` appended by column name."""
    frame = spark.read.format("delta").load(spec.tables[name].location(env, name))
    for other in spec.tables[name].union_with:
        other_profile = spec.tables.get(other)
        location = table_location(env, other, other_profile.path if other_profile else None)
        frame = frame.unionByName(spark.read.format("delta").load(location), allowMissingColumns=True)
    return frame


def reconcile_frames(
    spark: SparkSession,
    env: EnvConfig,
    spec: ReconSpec,
    day: date,
    days: int = 1,
) -> DataFrame:
    """Every comparison and duplicate check of `spec` for the business dates day-days+1 .. day."""
    first, last = _window(day, days)
    in_window = (F.col("business_date") >= F.lit(first)) & (F.col("business_date") <= F.lit(last))
    frames = []
    for name, comparison in spec.comparisons.items():
        sides = []
        for side in (comparison.left, comparison.right):
            profile = side.profile(spec.tables)
            if profile.postgres is not None:  # the source of truth itself, one aggregate query
                from northstar.reconciliation.source_totals import (  # noqa: PLC0415  needs psycopg (optional)
                    source_figures,
                )

                if side.filter:
                    profile = profile.model_copy(
                        update={
                            "filter": f"({profile.filter}) AND ({side.filter})"
                            if profile.filter
                            else side.filter
                        }
                    )
                sides.append(source_figures(spark, profile, first, last))
                continue
            table = read_table(spark, env, spec, side.table)
            sides.append(daily_figures(table, profile, side.filter).where(in_window))
        compared = compare(
            sides[0], sides[1], ["business_date", "currency"], comparison.measures, spec.variance_pct(name)
        )
        frames.append(
            compared.select(
                F.lit(name).alias("comparison"),
                F.lit("variance").alias("kind"),
                F.lit(comparison.left.table).alias("left_table"),
                F.lit(comparison.right.table).alias("right_table"),
                "*",
            )
        )
    for table_name in spec.duplicates:
        table = read_table(spark, env, spec, table_name)
        rates = duplicate_rate(table, spec.tables[table_name], spec.thresholds.duplicate_rate_pct)
        frames.append(
            rates.where(in_window).select(
                F.lit(f"duplicates {table_name}").alias("comparison"),
                F.lit("duplicates").alias("kind"),
                F.lit(table_name).alias("left_table"),
                F.lit(table_name).alias("right_table"),
                "*",
            )
        )
    result = frames[0]
    for frame in frames[1:]:
        result = result.unionByName(frame)
    return result


def run_reconciliation(
    spark: SparkSession,
    env: EnvConfig,
    spec: ReconSpec,
    day: date,
    days: int = 1,
    run_id: str | None = None,
) -> ReconResult:
    """Compute and store one reconciliation run. The run id defaults to `reconcile-<spec>-<day>-<days>d`, so a
    retry (or Airflow's retry with its own run id) replaces the run's rows: one run's rows, never twice. When
    it ran is the Delta commit's timestamp (DESCRIBE HISTORY), so a retry leaves identical rows."""
    run_id = run_id or f"reconcile-{spec.name}-{day.isoformat()}-{days}d"
    rows = (
        reconcile_frames(spark, env, spec, day, days)
        .select(
            F.lit(run_id).alias("run_id"),
            F.lit(day).alias("recon_date"),
            "comparison",
            "kind",
            "business_date",
            "currency",
            "measure",
            "left_table",
            "right_table",
            "left_value",
            "right_value",
            "abs_variance",
            "variance_pct",
            "threshold_pct",
            "status",
        )
        .localCheckpoint()
    )
    path = tables.RECONCILIATION.path(env)
    escaped = run_id.replace("'", "''")
    (rows.write.format("delta").mode("overwrite").option("replaceWhere", f"run_id = '{escaped}'").save(path))
    statuses = [r["status"] for r in read_run(spark, env, run_id).select("status").collect()]
    return ReconResult(
        run_id=run_id,
        rows=len(statuses),
        breaches=sum(status != OK for status in statuses),
        version=delta.latest_version(spark, path),
    )


def read_run(spark: SparkSession, env: EnvConfig, run_id: str) -> DataFrame:
    """The stored rows of one reconciliation run."""
    path = tables.RECONCILIATION.path(env)
    if not delta.table_exists(spark, path):
        return spark.createDataFrame([], RECON_SCHEMA)
    return spark.read.format("delta").load(path).where(F.col("run_id") == run_id)
