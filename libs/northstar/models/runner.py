"""Build the conformed models: read the silver rows changed since the last successful model run, conform them,
quarantine what cannot be conformed, and MERGE the latest version of each key into silver.<model>.

One ledger row per (model, input): layer "model", source = the input's source_system (default: its source),
table_name = the model,
input versions = the silver table's Delta versions consumed, read = written + duplicate + quarantined.
`full_refresh` rebuilds the input's rows (and its quarantine rows) from the whole silver table: same result.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from northstar import delta, ledger, quarantine
from northstar.config import ConfigError, EnvConfig, load_source
from northstar.ledger import LedgerEntry
from northstar.models import common as c
from northstar.models.spec import MODULES, ModelInput, ModelSpec, list_models, load_model
from northstar.secrets import resolve
from northstar.silver import _evolved_schema
from northstar.transforms.silver import key_condition, newer_condition

LAYER = "model"
CHANGES = ("insert", "update_postimage")


def model_path(env: EnvConfig, model: str) -> str:
    """Where silver.<model> lives."""
    return f"{env.lake}/conformed/{model}"


def model_quarantine_path(env: EnvConfig, model: str) -> str:
    """Where quarantine.<model> lives (rows a model could not conform, with the reason)."""
    return f"{env.quarantine}/_conformed/{model}"


def run_models(
    spark: SparkSession,
    env: EnvConfig,
    name: str,
    *,
    conf_dir: Path | str | None = None,
    full_refresh: bool = False,
) -> list[LedgerEntry]:
    """Run one model (`orders`, `refunds`) or `all` of conf/models/; every file is validated first."""
    names = list_models(conf_dir) if name == "all" else [name]
    specs = [load_model(n, conf_dir) for n in names]
    entries: list[LedgerEntry] = []
    for spec in specs:
        entries += run_model(spark, env, spec, conf_dir=conf_dir, full_refresh=full_refresh)
    return entries


def run_model(
    spark: SparkSession,
    env: EnvConfig,
    spec: ModelSpec,
    *,
    conf_dir: Path | str | None = None,
    full_refresh: bool = False,
) -> list[LedgerEntry]:
    """Bring silver.<model> up to date with each of its inputs; one ledger entry per input."""
    token_key = resolve(spec.customer_token_key).value.encode() if spec.customer_token_key else None
    entries = []
    for item in spec.inputs:
        source = load_source(item.source, conf_dir)
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
    silver_path = env.silver_path(item.source, item.table)
    entry = LedgerEntry(
        run_id=ledger.new_run_id(LAYER),
        job="model",
        env=env.name,
        source=item.system,  # the input's source_system: two partner tables of one source are two inputs
        table_name=spec.name,
        layer=LAYER,
    )
    with ledger.recorded(spark, env, entry):
        end = delta.latest_version(spark, silver_path)
        done = None if full_refresh else ledger.last_input_version(spark, env, LAYER, item.system, spec.name)
        start = 0 if done is None else done + 1
        if end is None or start > end:
            entry.status = ledger.NOOP
            entry.input_version_start = entry.input_version_end = done
            if end is None:
                entry.details["input_table_missing"] = 1  # silver not built yet: run the source first
            return entry
        entry.input_version_start, entry.input_version_end = start, end
        entry.details["full_refresh"] = int(full_refresh)
        if done is None:  # first run or replay: the whole table as of `end`
            rows = spark.read.format("delta").option("versionAsOf", end).load(silver_path)
        else:
            rows = delta.read_changes(spark, silver_path, start, end, CHANGES)
        context = c.MappingContext(
            source_system=item.system,
            source_table=f"silver.{item.source}_{item.table}",
            status_map=item.status_map,
            currencies=spec.accepted_currencies,
            token_key=token_key,
        )
        conformed = module.MAPPINGS[item.mapping](c.with_raw_record(rows, pii), context)
        tagged = c.classify(conformed, module.KEY, module.ORDERING).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            _apply(spark, env, spec, module, item, tagged, entry, end, full_refresh)
        finally:
            tagged.unpersist()
    return entry


def _apply(spark, env, spec, module, item, tagged, entry, end, full_refresh) -> None:
    groups = (
        tagged.groupBy(c.DISPOSITION, c.REASON)
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.min("updated_at").alias("first"),
            F.max("updated_at").alias("last"),
        )
        .collect()
    )
    entry.records_read = sum(g["n"] for g in groups)
    entry.window_start = min((g["first"] for g in groups if g["first"]), default=None)
    entry.window_end = max((g["last"] for g in groups if g["last"]), default=None)
    by_disposition: Counter = Counter()
    for g in groups:
        by_disposition[g[c.DISPOSITION]] += g["n"]
        if g[c.DISPOSITION] == c.QUARANTINED:
            entry.details[f"quarantined.{g[c.REASON]}"] = g["n"]
    entry.records_quarantined = by_disposition[c.QUARANTINED]
    if entry.records_quarantined or full_refresh:
        _write_quarantine(spark, env, spec, item, tagged, entry, end, full_refresh)

    latest = tagged.where(F.col(c.DISPOSITION) == c.CANDIDATE).select(*module.COLUMNS)
    offered = by_disposition[c.CANDIDATE]
    applied = _merge(spark, model_path(env, spec.name), latest, module, item, entry, full_refresh, offered)
    inserted, updated = applied.get("inserted", 0), applied.get("updated", 0)
    entry.details.update(
        inserted=inserted,
        updated=updated,
        exact_duplicates=by_disposition[c.EXACT_DUPLICATE],
        superseded_in_batch=by_disposition[c.SUPERSEDED],
        not_applied=offered - inserted - updated,
    )
    entry.records_written = inserted + updated
    entry.records_duplicate = (
        by_disposition[c.EXACT_DUPLICATE] + by_disposition[c.SUPERSEDED] + entry.details["not_applied"]
    )


def _write_quarantine(spark, env, spec, item, tagged, entry, end, full_refresh) -> None:
    """Append this window's rejects once (Delta idempotent write keyed to the silver version), or on a full
    refresh replace this input's quarantine rows."""
    path = model_quarantine_path(env, spec.name)
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
    version = quarantine.write_once(
        spark,
        rejected,
        path,
        app_id=f"model-quarantine:{spec.name}:{item.source}.{item.table}",
        window_version=end,
        replace_where=(
            f"source = '{item.source}' AND table_name = '{item.table}'"
            if full_refresh and delta.table_exists(spark, path)
            else None
        ),
    )
    if version is None:
        if not full_refresh:  # Delta skipped the append: this window's rows are already there
            entry.details["quarantine_written_by_earlier_attempt"] = 1
    else:
        entry.delta_versions[f"quarantine.{spec.name}"] = version


def _merge(spark, path, latest, module, item, entry, full_refresh, offered) -> dict[str, int]:
    """Create / replace this input's rows (first run, full refresh) or MERGE newer versions by key."""
    name = f"silver.{entry.table_name}"
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
        version = delta.latest_version(spark, path)
        entry.delta_versions[name] = version
        return {"inserted": delta.commit_metrics(spark, path, version).get("numOutputRows", 0)}
    if not offered:
        return {}
    _evolved_schema(spark, path, latest)  # a column the model gained (metadata-only commit, as silver does)
    before = delta.latest_version(spark, path)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(latest.alias("s"), key_condition(module.KEY))
        .whenMatchedUpdateAll(condition=newer_condition(module.ORDERING))
        .whenNotMatchedInsertAll()
        .execute()
    )
    version = delta.latest_version(spark, path)
    if version == before:
        return {}
    entry.delta_versions[name] = version
    metrics = delta.commit_metrics(spark, path, version)
    return {
        "inserted": metrics.get("numTargetRowsInserted", 0),
        "updated": metrics.get("numTargetRowsUpdated", 0),
    }
