"""Build the gold tables from the conformed models (silver.orders, refunds, payments, shipments), recomputing
only the UTC days touched by silver rows changed since each table's last successful run (Delta change data
feed, then `replaceWhere` on those day partitions; every other partition's files are left as they are).
The customer dimension (SCD2, not day-partitioned) is recomputed from the order history and MERGEd.

One ledger row per gold table and run: layer "gold", details["input_version.<model>"] = the silver version
consumed, details["partitions"] = days recomputed, details["published"] = 1 when the audit of the
recomputed days passed (write-audit-publish: readers and the Snowflake publish get the last published version); read = written (+ 0 duplicate + 0 quarantined): every
input row of a recomputed day lands in exactly one fact row, and in exactly one mart row (`input_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from delta.tables import DeltaTable
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
INPUTS = ("orders", "refunds", "payments", "shipments")  # the conformed models gold reads
CHANGES = ("insert", "update_preimage", "update_postimage", "delete")


@dataclass(frozen=True)
class GoldTable:
    """A gold table: its key (also the Snowflake MERGE key), its day partition (None: not partitioned, rebuilt
    whole when its inputs change), its money (or other summed) columns, and the conformed models it reads."""

    name: str
    key: tuple[str, ...]
    partition: str | None
    amounts: tuple[str, ...]
    inputs: tuple[str, ...]


GOLD_TABLES = {
    g.name: g
    for g in (
        GoldTable("fact_orders", ("source_system", "order_id"), "order_date", ("total_amount",), ("orders",)),
        GoldTable(
            "fact_order_lines",
            ("source_system", "order_id", "line_number"),
            "order_date",
            ("line_amount",),
            ("orders",),
        ),
        GoldTable(
            "fact_refunds",
            ("source_system", "refund_id"),
            "refund_date",
            ("refund_amount",),
            ("orders", "refunds"),
        ),
        GoldTable(
            "daily_revenue",
            ("revenue_date", "currency", "sales_channel"),
            "revenue_date",
            ("gross_amount", "refund_amount", "net_amount"),
            ("orders", "refunds"),
        ),
        GoldTable(
            "fact_payments",
            ("source_system", "payment_id"),
            "payment_date",
            ("amount", "amount_refunded", "net_amount"),
            ("payments",),
        ),
        GoldTable(
            "fact_shipments",
            ("source_system", "shipment_id"),
            "shipment_date",
            ("weight_kg",),
            ("shipments",),
        ),
        GoldTable("dim_customer", ("customer_sk",), None, ("orders_in_version",), ("orders",)),
    )
}

# Per day-partitioned table: (model, time column) pairs whose changed rows name the days to recompute.
DAY_SOURCES = {
    "fact_orders": (("orders", "created_at"),),
    "fact_order_lines": (("orders", "created_at"),),
    "fact_refunds": (("refunds", "created_at"),),
    "daily_revenue": (("orders", "created_at"), ("refunds", "created_at")),
    "fact_payments": (("payments", "created_at"),),
    "fact_shipments": (("shipments", "status_time"),),  # pre-image: the old day; post-image: the new one
}
# Tables whose rows carry the order's channel: refunds of changed orders are recomputed too.
REFUNDS_OF_CHANGED_ORDERS = ("fact_refunds", "daily_revenue")


def gold_path(env: EnvConfig, table: str) -> str:
    """Where gold.<table> lives."""
    return f"{env.lake}/gold/{table}"


def run_gold(spark: SparkSession, env: EnvConfig, *, full_refresh: bool = False) -> list[LedgerEntry]:
    """Bring every gold table up to date with the conformed models it reads."""
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
    table: GoldTable, changed: dict[str, DataFrame | None], refunds: DataFrame | None
) -> set[date] | None:
    """The day partitions of `table` that changed silver rows touch (None = rebuild everything)."""
    if any(changed.get(m) is None for m in table.inputs):
        return None
    days: set[date] = set()
    for model, column in DAY_SOURCES[table.name]:
        days |= _days(changed[model], column)
    if table.name in REFUNDS_OF_CHANGED_ORDERS:  # a refund's row carries its order's channel
        touched_orders = changed["orders"].select("source_system", "order_id").distinct()
        days |= _days(refunds.join(touched_orders, ["source_system", "order_id"], "left_semi"), "created_at")
    return days


def _model(spark: SparkSession, env: EnvConfig, name: str) -> DataFrame:
    return spark.read.format("delta").load(model_path(env, name))


def build(spark: SparkSession, env: EnvConfig, table: GoldTable, days: set[date] | None) -> DataFrame:
    """The rows of `table` for `days` (all days when None), from the current silver and gold inputs."""
    if table.name == "fact_orders":
        frame = t.order_facts(_model(spark, env, "orders"))
    elif table.name == "fact_order_lines":
        frame = t.order_line_facts(_model(spark, env, "orders"))
    elif table.name == "fact_refunds":
        frame = t.refund_facts(_model(spark, env, "refunds"), _model(spark, env, "orders"))
    elif table.name == "fact_payments":
        frame = t.payment_facts(_model(spark, env, "payments"))
    elif table.name == "fact_shipments":
        frame = t.shipment_facts(_model(spark, env, "shipments"))
    elif table.name == "dim_customer":
        return t.customer_dimension(_model(spark, env, "orders"))
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
        for model in table.inputs:
            if ends[model] is not None:
                entry.details[f"input_version.{model}"] = ends[model]
        if any(ends[m] is None for m in table.inputs):  # a model not built yet: `northstar model --name all`
            entry.status = ledger.NOOP
            entry.details["input_table_missing"] = 1
            return entry
        path = gold_path(env, table.name)
        rebuild = full_refresh or not delta.table_exists(spark, path)
        done = {m: None if rebuild else consumed.get(m) for m in table.inputs}
        if all(done[m] is not None and ends[m] <= done[m] for m in table.inputs):
            entry.status = ledger.NOOP  # no input changed since the last run: nothing to read
            return entry
        if table.partition is None:
            _run_dimension(spark, env, table, path, entry)
            return entry
        changed = {m: _changed_rows(spark, env, m, done[m], ends[m]) for m in table.inputs}
        refunds = _model(spark, env, "refunds") if table.name in REFUNDS_OF_CHANGED_ORDERS else None
        days = affected_days(table, changed, refunds)
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
            _audit(spark, env, table, rows, path, version, entry)  # the recomputed days
        finally:
            rows.unpersist()
        if table.name != "daily_revenue":  # what Delta says the commit wrote
            entry.records_written = delta.commit_metrics(spark, path, version).get("numOutputRows", 0)
    return entry


def _run_dimension(
    spark: SparkSession,
    env: EnvConfig,
    table: GoldTable,
    path: str,
    entry: LedgerEntry,
) -> None:
    """gold.dim_customer: recomputed from the full order history whenever silver.orders changed, then MERGEd
    by customer_sk (new versions inserted, changed ones updated, vanished ones deleted). Recomputing from the
    whole history is what makes a late order give the same dimension as in-order arrival; the MERGE (skipped
    when nothing differs) rewrites only the files of changed rows, and a re-run adds no Delta version.

    Accounting: read = orders with a customer; written = dimension versions; duplicate = orders that carried
    the same details as the version they fall in (no new version). Orders without a customer are counted in
    details["orders_without_customer"]. Called only when silver.orders changed (or on a rebuild)."""
    orders = _model(spark, env, "orders")
    counts = orders.agg(
        F.count(F.lit(1)).alias("all"), F.count("customer_token").alias("with_customer")
    ).first()
    rows = build(spark, env, table, None).cache()
    try:
        versions, orders_in_versions, current_customers = rows.agg(
            F.count(F.lit(1)), F.sum("orders_in_version"), F.count_if("is_current")
        ).first()
        entry.records_read = counts["with_customer"]
        entry.records_written = versions
        # an order lost between the history and the versions unbalances the run
        entry.records_duplicate = (orders_in_versions or 0) - versions
        entry.details["orders_without_customer"] = counts["all"] - counts["with_customer"]
        entry.details["current_customers"] = current_customers
        if not delta.table_exists(spark, path):
            rows.write.format("delta").save(path)
        else:
            current = spark.read.format("delta").load(path).select(*rows.columns)
            if rows.exceptAll(current).unionByName(current.exceptAll(rows)).isEmpty():
                entry.status = ledger.NOOP  # the same dimension: no commit
                return
            (
                DeltaTable.forPath(spark, path)
                .alias("t")
                .merge(rows.alias("s"), "t.customer_sk = s.customer_sk")
                .whenMatchedUpdateAll(
                    condition=" OR ".join(f"NOT (t.{c} <=> s.{c})" for c in t.CUSTOMER_DIM_COLUMNS)
                )
                .whenNotMatchedInsertAll()
                .whenNotMatchedBySourceDelete()
                .execute()
            )
        _audit(spark, env, table, rows, path, delta.latest_version(spark, path), entry)
    finally:
        rows.unpersist()


def _audit(
    spark: SparkSession,
    env: EnvConfig,
    table: GoldTable,
    rows: DataFrame,
    path: str,
    version: int,
    entry: LedgerEntry,
) -> None:
    """Write-audit-publish: check the rows just written as `version` (conf/quality/gold.<table>.yaml), then
    publish that version or keep readers and the Snowflake publish on the last good one."""
    found = run_checks(spark, env, f"gold.{table.name}", rows, entry.run_id, key=list(table.key))
    entry.delta_versions[f"gold.{table.name}"] = version
    decision = audit_and_publish(spark, env, f"gold.{table.name}", entry.run_id, found, path=path)
    entry.details["published"] = int(decision.published)


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
