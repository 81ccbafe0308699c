"""Build the conformed models: read the silver rows changed since the last successful model run, conform them,
quarantine what cannot be conformed, and MERGE the latest version of each key into silver.<model>.

One ledger row per (model, input): layer "model", source = the input's source_system (default: its source),
table_name = the model, input versions = the silver table's Delta versions consumed, read = written +
duplicate + quarantined. `full_refresh` rebuilds the input's rows (and its quarantine rows) from the whole
silver table: same result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar import ledger, quarantine
from northstar.config import ConfigError, EnvConfig, load_source
from northstar.lake import delta, tables
from northstar.lake.tables import Table
from northstar.ledger import InputWindow, LedgerEntry
from northstar.models import common as c
from northstar.models.spec import MODULES, ModelInput, ModelSpec, list_models, load_model
from northstar.secrets import resolve
from northstar.silver.accounting import Dispositions, count_dispositions
from northstar.silver.transforms import key_condition, newer_condition

LAYER = "model"
CHANGES = ("insert", "update_postimage")


def run_models(
    spark: SparkSession, env: EnvConfig, name: str, *, full_refresh: bool = False
) -> list[LedgerEntry]:
    """Run one model (`orders`, `refunds`) or `all` of conf/models/; every file is validated first."""
    names = list_models() if name == "all" else [name]
    specs = [load_model(n) for n in names]
    entries: list[LedgerEntry] = []
    for spec in specs:
        entries += run_model(spark, env, spec, full_refresh=full_refresh)
    return entries


def run_model(
    spark: SparkSession, env: EnvConfig, spec: ModelSpec, *, full_refresh: bool = False
) -> list[LedgerEntry]:
    """Bring silver.<model> up to date with each of its inputs; one ledger entry per input."""
    token_key = resolve(spec.customer_token_key).value.encode() if spec.customer_token_key else None
    entries = []
    for item in spec.inputs:
        source = load_source(item.source)
        if item.table not in source.tables:
            raise ConfigError(
                f"conf/models/{spec.name}.yaml: input {item.source}.{item.table}: source {item.source} has no "
                f"table {item.table} (its tables: {', '.join(source.tables)})"
            )
        entries.append(
            _run_input(spark, env, spec, item, source.tables[item.table].pii, token_key, full_refresh)
        )
    return entries


def _run_input(
    spark: SparkSession,
    env: EnvConfig,
    spec: ModelSpec,
    item: ModelInput,
    pii: list[str],
    token_key: bytes | None,
    full_refresh: bool,
) -> LedgerEntry:
    module = MODULES[spec.name]
    silver = tables.silver(item.source, item.table)
    # the input's source_system: two partner tables of one source are two inputs
    entry = ledger.start("model", env, source=item.system, table=spec.name, layer=LAYER)
    with ledger.leased(spark, env, entry):  # one run per table at a time (lake/run_lock.py)
        window = ledger.pending_input(spark, env, entry, silver.path(env), full_refresh=full_refresh)
        if window is None:
            if not delta.table_exists(spark, silver.path(env)):
                entry.details["input_table_missing"] = 1  # silver not built yet: run the source first
            return entry
        entry.details["full_refresh"] = int(full_refresh)
        context = c.MappingContext(
            source_system=item.system,
            source_table=silver.full_name,
            status_map=item.status_map,
            currencies=spec.accepted_currencies,
            token_key=token_key,
        )
        rows = c.with_raw_record(_read_silver(spark, silver.path(env), window), pii)
        conformed = module.MAPPINGS[item.mapping](rows, context)
        tagged = c.classify(conformed, module.KEY, module.ORDERING).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            _apply(spark, env, spec, module, item, tagged, entry, window.end, full_refresh)
        finally:
            tagged.unpersist()
    return entry


def _read_silver(spark: SparkSession, path: str, window: InputWindow) -> DataFrame:
    """The whole silver table as of the window's end (first run, full refresh), else its changed rows."""
    if window.first:
        return spark.read.format("delta").option("versionAsOf", window.end).load(path)
    return delta.read_changes(spark, path, window.start, window.end, CHANGES)


def _apply(
    spark: SparkSession,
    env: EnvConfig,
    spec: ModelSpec,
    module: ModuleType,
    item: ModelInput,
    tagged: DataFrame,
    entry: LedgerEntry,
    end: int,
    full_refresh: bool,
) -> None:
    counts = count_dispositions(tagged, "updated_at")
    counts.record(entry)
    if counts.quarantined or full_refresh:
        _write_quarantine(spark, env, spec, item, tagged, entry, end, full_refresh)
    latest = tagged.where(F.col(c.DISPOSITION) == c.CANDIDATE).select(*module.COLUMNS)
    model = tables.model(spec.name)
    applied = _merge(spark, env, model, latest, module, item, entry, full_refresh, counts.candidates)
    _settle(entry, counts, applied)


def _settle(entry: LedgerEntry, counts: Dispositions, applied: dict[str, int]) -> None:
    """written = rows inserted or updated; duplicates = exact copies + superseded + candidates not applied."""
    inserted, updated = applied.get("inserted", 0), applied.get("updated", 0)
    entry.details.update(
        inserted=inserted, updated=updated, not_applied=counts.candidates - inserted - updated
    )
    entry.records_written = inserted + updated
    entry.records_duplicate = counts.exact_duplicates + counts.superseded + entry.details["not_applied"]


def _write_quarantine(
    spark: SparkSession,
    env: EnvConfig,
    spec: ModelSpec,
    item: ModelInput,
    tagged: DataFrame,
    entry: LedgerEntry,
    end: int,
    full_refresh: bool,
) -> None:
    """Append this window's rejects once (Delta idempotent write keyed to the silver version), or on a full
    refresh replace this input's quarantine rows."""
    table = tables.model_quarantine(spec.name)
    path = table.path(env)
    rejected = quarantine.quarantine_rows(
        tagged.where(F.col(c.DISPOSITION) == c.QUARANTINED),
        run_id=entry.run_id,
        layer=LAYER,
        source=item.source,
        table=item.table,
        reason=F.col(c.REASON),
        reason_detail=F.col(c.REASON_DETAIL),
        raw_record=F.col(c.RAW),
        landing_file=F.col(c.LANDING_FILE),
        record_hash=F.col(c.RECORD_HASH),
        quarantined_at=F.lit(datetime.now(UTC)).cast("timestamp"),
    )
    replace = full_refresh and delta.table_exists(spark, path)
    version = quarantine.write(
        spark,
        rejected,
        path,
        once=None if replace else (f"model-quarantine:{spec.name}:{item.source}.{item.table}", end),
        replace_where=f"source = '{item.source}' AND table_name = '{item.table}'" if replace else None,
    )
    if version is None:
        if not full_refresh:  # Delta skipped the append: this window's rows are already there
            entry.details["quarantine_written_by_earlier_attempt"] = 1
    else:
        entry.wrote(table, version)


def _merge(
    spark: SparkSession,
    env: EnvConfig,
    model: Table,
    latest: DataFrame,
    module: ModuleType,
    item: ModelInput,
    entry: LedgerEntry,
    full_refresh: bool,
    offered: int,
) -> dict[str, int]:
    """Create / replace this input's rows (first run, full refresh) or MERGE newer versions by key."""
    path = model.path(env)
    exists = delta.table_exists(spark, path)
    if not exists or full_refresh:
        writer = latest.write.format("delta").mode("overwrite")
        if exists:  # other inputs' rows stay; columns a newer model version adds are added to the table
            writer = writer.option("replaceWhere", f"source_system = '{item.system}'").option(
                "mergeSchema", "true"
            )
        else:
            writer = writer.option("delta.enableChangeDataFeed", "true")
        writer.save(path)
        version = delta.current_version(spark, path)
        entry.wrote(model, version)
        return {"inserted": delta.commit_metrics(spark, path, version).get("numOutputRows", 0)}
    if not offered:
        return {}
    delta.evolve_schema(
        spark, path, latest
    )  # a column the model gained (metadata-only commit, as silver does)
    before = delta.latest_version(spark, path)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(latest.alias("s"), key_condition(module.KEY))
        .whenMatchedUpdateAll(condition=newer_condition(module.ORDERING))
        .whenNotMatchedInsertAll()
        .execute()
    )
    version = delta.current_version(spark, path)
    if version == before:
        return {}
    entry.wrote(model, version)
    metrics = delta.commit_metrics(spark, path, version)
    return {
        "inserted": metrics.get("numTargetRowsInserted", 0),
        "updated": metrics.get("numTargetRowsUpdated", 0),
    }
