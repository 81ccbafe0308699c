"""Build the gold tables from silver.orders / silver.refunds, recomputing only the UTC days touched by silver
rows changed since each table's last successful run (Delta change data feed, then `replaceWhere` on those
day partitions; every other partition's files are left as they are).

One ledger row per gold table and run: layer "gold", details["input_version.<model>"] = the silver version
consumed, details["partitions"] = days recomputed, details["published"] = 1 when the audit of the
recomputed days passed (write-audit-publish: readers and the Snowflake publish get the last published version); read = written (+ 0 duplicate + 0 quarantined): every
input row of a recomputed day lands in exactly one fact row, and in exactly one mart row (`input_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar import delta, ledger
from northstar.config import EnvConfig
from northstar.gold import transforms as t
from northstar.ledger import LedgerEntry
from northstar.models.runner import model_path
from northstar.quality.evaluate import run_checks
from northstar.quality.publish import audit_and_publish

LAYER = "gold"
INPUTS = ("orders", "refunds")
CHANGES = ("insert", "update_preimage", "update_postimage", "delete")


@dataclass(frozen=True)
class GoldTable:
    """A gold table: its key (also the Snowflake MERGE key), its day partition and its money columns."""

    name: str
    key: tuple[str, ...]
    partition: str
    amounts: tuple[str, ...]


GOLD_TABLES = {
    g.name: g
    for g in (
        GoldTable("fact_orders", ("source_system", "order_id"), "order_date", ("total_amount",)),
        GoldTable(
            "fact_order_lines", ("source_system", "order_id", "line_number"), "order_date", ("line_amount",)
        ),
        GoldTable("fact_refunds", ("source_system", "refund_id"), "refund_date", ("refund_amount",)),
        GoldTable(
            "daily_revenue",
            ("revenue_date", "currency", "sales_channel"),
            "revenue_date",
            ("gross_amount", "refund_amount", "net_amount"),
        ),
    )
}


def gold_path(env: EnvConfig, table: str) -> str:
    """Where gold.<table> lives."""
    return f"{env.lake}/gold/{table}"


def run_gold(spark: SparkSession, env: EnvConfig, *, full_refresh: bool = False) -> list[LedgerEntry]:
    """Bring every gold table up to date with silver.orders and silver.refunds."""
    ends = {m: delta.latest_version(spark, model_path(env, m)) for m in INPUTS}
    consumed = _consumed(spark, env)
    return [
        _run_table(spark, env, GOLD_TABLES[name], full_refresh, ends, consumed.get(name, {}))
        for name in GOLD_TABLES
    ]


def _consumed(spark: SparkSession, env: EnvConfig) -> dict[str, dict[str, int | None]]:
    """Per gold table, the silver versions its last successful run consumed, per input model."""
    rows = (
        ledger.read(spark, env)
        .where((F.col("layer") == LAYER) & F.col("status").isin(ledger.SUCCESS, ledger.NOOP))
        .groupBy("table_name")
        .agg(*[F.max(F.col("details")[f"input_version.{m}"]).alias(m) for m in INPUTS])
        .collect()
    )
    return {r["table_name"]: {m: r[m] for m in INPUTS} for r in rows}


def _changed_rows(spark, env, model: str, done: int | None, end: int | None) -> DataFrame | None:
    """Silver rows of `model` changed after version `done` (pre- and post-images), or None for 'everything'."""
    if done is None or end is None:
        return None
    if end <= done:
        return spark.createDataFrame([], spark.read.format("delta").load(model_path(env, model)).schema)
    return delta.read_changes(spark, model_path(env, model), done + 1, end, CHANGES)


def _days(frame: DataFrame, column: str) -> set[date]:
    return {r[0] for r in frame.select(t.utc_date(column)).distinct().collect() if r[0] is not None}


def affected_days(
    table: GoldTable, orders_changed: DataFrame | None, refunds_changed: DataFrame | None, refunds: DataFrame
) -> set[date] | None:
    """The day partitions of `table` that changed silver rows touch (None = rebuild everything)."""
    if orders_changed is None or refunds_changed is None:
        return None
    order_days = _days(orders_changed, "created_at")
    if table.name in ("fact_orders", "fact_order_lines"):
        return order_days
    # a refund's row carries its order's channel: refunds of changed orders are recomputed too
    touched_orders = orders_changed.select("source_system", "order_id").distinct()
    refund_days = _days(refunds_changed, "created_at") | _days(
        refunds.join(touched_orders, ["source_system", "order_id"], "left_semi"), "created_at"
    )
    return refund_days if table.name == "fact_refunds" else order_days | refund_days


def build(spark: SparkSession, env: EnvConfig, table: GoldTable, days: set[date] | None) -> DataFrame:
    """The rows of `table` for `days` (all days when None), from the current silver and gold inputs."""
    orders = spark.read.format("delta").load(model_path(env, "orders"))
    refunds = spark.read.format("delta").load(model_path(env, "refunds"))
    if table.name == "fact_orders":
        frame = t.order_facts(orders)
    elif table.name == "fact_order_lines":
        frame = t.order_line_facts(orders)
    elif table.name == "fact_refunds":
        frame = t.refund_facts(refunds, orders)
    else:
        facts_orders = spark.read.format("delta").load(gold_path(env, "fact_orders"))
        facts_refunds = spark.read.format("delta").load(gold_path(env, "fact_refunds"))
        if days is not None:
            facts_orders = t.in_dates(facts_orders, "order_date", sorted(days))
            facts_refunds = t.in_dates(facts_refunds, "refund_date", sorted(days))
        frame = t.daily_revenue(facts_orders, facts_refunds)
    return frame if days is None else t.in_dates(frame, table.partition, sorted(days))


def _run_table(
    spark: SparkSession,
    env: EnvConfig,
    table: GoldTable,
    full_refresh: bool,
    ends: dict[str, int | None],
    consumed: dict[str, int | None],
) -> LedgerEntry:
    entry = LedgerEntry(
        run_id=ledger.new_run_id(LAYER),
        job="gold",
        env=env.name,
        source="gold",
        table_name=table.name,
        layer=LAYER,
    )
    with ledger.recorded(spark, env, entry):
        for model, version in ends.items():
            if version is not None:
                entry.details[f"input_version.{model}"] = version
        if None in ends.values():  # silver models not built yet: run `northstar model --name all` first
            entry.status = ledger.NOOP
            entry.details["input_table_missing"] = 1
            return entry
        path = gold_path(env, table.name)
        rebuild = full_refresh or not delta.table_exists(spark, path)
        done = {m: None if rebuild else consumed.get(m) for m in INPUTS}
        refunds = spark.read.format("delta").load(model_path(env, "refunds"))
        days = affected_days(
            table,
            _changed_rows(spark, env, "orders", done["orders"], ends["orders"]),
            _changed_rows(spark, env, "refunds", done["refunds"], ends["refunds"]),
            refunds,
        )
        if days is not None and not days:
            entry.status = ledger.NOOP
            return entry
        rows = build(spark, env, table, days).cache()
        try:
            if table.name == "daily_revenue":  # every fact row of the days lands in one mart row
                entry.records_read = _mart_inputs(spark, env, days)
                entry.records_written = rows.agg(F.sum("input_rows")).first()[0] or 0
            else:
                entry.records_read = rows.count()
            if days is not None:
                entry.details["partitions"] = len(days)
            version = _write(spark, rows, path, table, days)
            # audit the recomputed days (conf/quality/gold.<table>.yaml), then publish or keep the last good version
            found = run_checks(spark, env, f"gold.{table.name}", rows, entry.run_id, key=list(table.key))
        finally:
            rows.unpersist()
        entry.delta_versions[f"gold.{table.name}"] = version
        decision = audit_and_publish(spark, env, f"gold.{table.name}", entry.run_id, found, path=path)
        entry.details["published"] = int(decision.published)
        if table.name != "daily_revenue":  # what Delta says the commit wrote
            entry.records_written = delta.commit_metrics(spark, path, version).get("numOutputRows", 0)
    return entry


def _mart_inputs(spark: SparkSession, env: EnvConfig, days: set[date] | None) -> int:
    """Fact rows (orders + refunds) of `days` the mart summarises."""
    total = 0
    for name, column in (("fact_orders", "order_date"), ("fact_refunds", "refund_date")):
        frame = spark.read.format("delta").load(gold_path(env, name))
        total += (frame if days is None else t.in_dates(frame, column, sorted(days))).count()
    return total


def _write(spark: SparkSession, rows: DataFrame, path: str, table: GoldTable, days: set[date] | None) -> int:
    """Replace the recomputed day partitions (or the whole table) in one Delta commit."""
    writer = rows.write.format("delta").mode("overwrite").partitionBy(table.partition)
    if days is not None:
        listed = ", ".join(f"DATE'{d.isoformat()}'" for d in sorted(days))
        writer = writer.option("replaceWhere", f"{table.partition} IN ({listed})")
    else:
        writer = writer.option("overwriteSchema", "true")
    writer.save(path)
    return delta.latest_version(spark, path)
