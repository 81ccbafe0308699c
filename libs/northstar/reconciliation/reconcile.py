"""Reconciliation: daily counts and sums of two tables compared per day and currency, and duplicate rates.

`compare` and `daily_figures` / `duplicate_rate` are pure DataFrame -> DataFrame functions (no I/O), so the
lake <-> warehouse comparison can reuse them; `run_reconciliation` reads the tables named in
conf/reconciliation/<name>.yaml and writes one row per comparison, day, currency and measure of a run to
`ops.reconciliation` (a retried run replaces its own rows, never adds to them).

A comparison whose input table does not exist yet is not computed: it gets one row with status `not_run` and a
`detail` naming the missing table and the command that builds it (`not_run: silver.orders missing - run
northstar model --name orders`). A missing table is never read as zero revenue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig, list_sources, load_source
from northstar.lake import delta, tables
from northstar.models.spec import MODULES as MODEL_MODULES
from northstar.reconciliation.spec import ReconSpec, Side, TableProfile, table_location

MODEL_NAMES = frozenset(MODEL_MODULES)

VALUE = "decimal(38,4)"
OK, BREACH, MISSING_LEFT, MISSING_RIGHT = "ok", "breach", "missing_left", "missing_right"
NOT_RUN = "not_run"  # an input table does not exist: the comparison could not be computed
RECON_SCHEMA = (
    f"run_id string, recon_date date, comparison string, kind string, business_date date, currency string, "
    f"measure string, left_table string, right_table string, left_value {VALUE}, right_value {VALUE}, "
    f"abs_variance {VALUE}, variance_pct double, threshold_pct double, status string, detail string"
)
ROW_COLUMNS = [c.split()[0] for c in RECON_SCHEMA.split(", ")][2:]  # what reconcile_frames gives per row


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
    not_run: int = 0


def build_command(spec: ReconSpec, name: str) -> str:
    """The command that builds the lake table `name` (what a not_run row tells the user to run)."""
    layer, _, table = name.partition(".")
    if layer == "gold":
        return "northstar gold"
    if layer == "silver" and table in MODEL_NAMES:
        return f"northstar model --name {table}"
    profile = spec.tables.get(name)
    source = profile.ledger_source if profile and profile.ledger_source else _source_of(table)
    return f"northstar extract --source {source} && northstar run --source {source}"


def _source_of(table: str) -> str:
    """The conf source whose table `<source>_<table>` is `table` ("<source>" when none is)."""
    for source in list_sources():
        rest = table.removeprefix(f"{source}_")
        if rest != table and rest in load_source(source).tables:
            return source
    return "<source>"


def _missing(spark: SparkSession, env: EnvConfig, spec: ReconSpec, name: str) -> list[str]:
    """The lake tables `name` reads (itself and its union_with) that do not exist."""
    profile = spec.tables.get(name)
    names = [name, *(profile.union_with if profile else [])]
    missing = []
    for table in names:
        other = spec.tables.get(table)
        if other is not None and other.postgres is not None:
            continue  # read from PostgreSQL itself
        if not delta.table_exists(spark, table_location(env, table, other.path if other else None)):
            missing.append(table)
    return missing


def _not_run(
    spark: SparkSession,
    spec: ReconSpec,
    name: str,
    kind: str,
    sides: tuple[str, str],
    missing: list[str],
    day: date,
) -> DataFrame:
    """The one row of a comparison that could not run."""
    detail = "; ".join(f"not_run: {t} missing - run {build_command(spec, t)}" for t in missing)
    row = (name, kind, day, "*", NOT_RUN, *sides, None, None, None, None, None, NOT_RUN, detail)
    schema = ", ".join(c for c in RECON_SCHEMA.split(", ")[2:])
    return spark.createDataFrame([row], schema)


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


def _side_figures(
    spark: SparkSession, env: EnvConfig, spec: ReconSpec, side: Side, first: date, last: date
) -> DataFrame:
    """One side's daily figures for first .. last: from its lake table, or from PostgreSQL itself."""
    profile = side.profile(spec.tables)
    if profile.postgres is not None:  # the source of truth itself, one aggregate query
        from northstar.reconciliation.source_totals import (  # noqa: PLC0415  needs psycopg (optional)
            source_figures,
        )

        if side.filter:
            combined = f"({profile.filter}) AND ({side.filter})" if profile.filter else side.filter
            profile = profile.model_copy(update={"filter": combined})
        return source_figures(spark, profile, first, last)
    in_window = (F.col("business_date") >= F.lit(first)) & (F.col("business_date") <= F.lit(last))
    table = read_table(spark, env, spec, side.table)
    return daily_figures(table, profile, side.filter).where(in_window)


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
        names = (comparison.left.table, comparison.right.table)
        missing = [t for table_name in names for t in _missing(spark, env, spec, table_name)]
        if missing:
            frames.append(_not_run(spark, spec, name, "variance", names, missing, last))
            continue
        sides = [
            _side_figures(spark, env, spec, side, first, last) for side in (comparison.left, comparison.right)
        ]
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
                F.lit(None).cast("string").alias("detail"),
            ).select(*ROW_COLUMNS)
        )
    for table_name in spec.duplicates:
        missing = _missing(spark, env, spec, table_name)
        if missing:
            both = (table_name, table_name)
            frames.append(
                _not_run(spark, spec, f"duplicates {table_name}", "duplicates", both, missing, last)
            )
            continue
        table = read_table(spark, env, spec, table_name)
        rates = duplicate_rate(table, spec.tables[table_name], spec.thresholds.duplicate_rate_pct)
        frames.append(
            rates.where(in_window)
            .select(
                F.lit(f"duplicates {table_name}").alias("comparison"),
                F.lit("duplicates").alias("kind"),
                F.lit(table_name).alias("left_table"),
                F.lit(table_name).alias("right_table"),
                "*",
                F.lit(None).cast("string").alias("detail"),
            )
            .select(*ROW_COLUMNS)
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
        .select(F.lit(run_id).alias("run_id"), F.lit(day).alias("recon_date"), *ROW_COLUMNS)
        .localCheckpoint()
    )
    path = tables.RECONCILIATION.path(env)
    escaped = run_id.replace("'", "''")
    (
        rows.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"run_id = '{escaped}'")
        .option("mergeSchema", "true")  # `detail` came later: older tables gain the column
        .save(path)
    )
    statuses = [r["status"] for r in read_run(spark, env, run_id).select("status").collect()]
    return ReconResult(
        run_id=run_id,
        rows=len(statuses),
        breaches=sum(status not in (OK, NOT_RUN) for status in statuses),
        version=delta.latest_version(spark, path),
        not_run=statuses.count(NOT_RUN),
    )


def read_run(spark: SparkSession, env: EnvConfig, run_id: str) -> DataFrame:
    """The stored rows of one reconciliation run."""
    path = tables.RECONCILIATION.path(env)
    if not delta.table_exists(spark, path):
        return spark.createDataFrame([], RECON_SCHEMA)
    return spark.read.format("delta").load(path).where(F.col("run_id") == run_id)
