"""Build the conformed models: read the silver rows changed since the last successful model run, conform them,
quarantine what cannot be conformed, and MERGE the latest version of each key into silver.<model>.

One ledger row per (model, input): layer "model", source = ModelSpec.ledger_source (the input's source_system,
or with its silver table when inputs share the source_system), table_name = the model, input versions = the
silver table's Delta versions consumed, read = written + duplicate + quarantined. A mapping that takes only some
rows of its silver table (a module's ROW_FILTERS) reads only those; the ledger counts the others in a detail.

Incremental runs go input by input: each MERGEs the latest version of each key of its window, replacing a row
only with a strictly newer version, whichever input wrote it. `full_refresh` rebuilds one source_system at a
time from the whole silver tables of all its inputs: the latest version of each key across them replaces that
source_system's rows in one commit (the same table as the incremental runs; no input's rows lost), and each
input replaces its own quarantine rows.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from functools import reduce
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
Inputs = list[tuple[ModelInput, list[str]]]  # the inputs of one source_system, each with its silver PII paths


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
    """Bring silver.<model> up to date with each of its inputs; one ledger entry per input. A full refresh
    rebuilds the inputs of one source_system together (`_rebuild`)."""
    token_key = resolve(spec.customer_token_key).value.encode() if spec.customer_token_key else None
    inputs: Inputs = []
    for item in spec.inputs:
        source = load_source(item.source)
        if item.table not in source.tables:
            raise ConfigError(
                f"conf/models/{spec.name}.yaml: input {item.source}.{item.table}: source {item.source} has no "
                f"table {item.table} (its tables: {', '.join(source.tables)})"
            )
        inputs.append((item, source.tables[item.table].pii))
    if not full_refresh:
        return [_run_input(spark, env, spec, item, pii, token_key) for item, pii in inputs]
    entries = []
    for system in dict.fromkeys(item.system for item in spec.inputs):
        entries += _rebuild(spark, env, spec, [i for i in inputs if i[0].system == system], token_key)
    return entries


def _start(env: EnvConfig, spec: ModelSpec, item: ModelInput) -> LedgerEntry:
    return ledger.start("model", env, source=spec.ledger_source(item), table=spec.name, layer=LAYER)


def _conformed(
    spark: SparkSession,
    env: EnvConfig,
    spec: ModelSpec,
    item: ModelInput,
    pii: list[str],
    token_key: bytes | None,
    entry: LedgerEntry,
    full_refresh: bool,
) -> tuple[DataFrame, int] | None:
    """The input's conformed rows of the silver versions this run consumes, and the last of those versions;
    None when there is nothing to read (the entry is then a noop)."""
    silver = tables.silver(item.source, item.table)
    window = ledger.pending_input(spark, env, entry, silver.path(env), full_refresh=full_refresh)
    if window is None:
        if not delta.table_exists(spark, silver.path(env)):
            entry.details["input_table_missing"] = 1  # silver not built yet: run the source first
        return None
    entry.details["full_refresh"] = int(full_refresh)
    context = c.MappingContext(
        source_system=item.system,
        source_table=silver.full_name,
        status_map=item.status_map,
        currencies=spec.accepted_currencies,
        token_key=token_key,
    )
    module = MODULES[spec.name]
    rows = _model_rows(_read_silver(spark, silver.path(env), window), module, item, entry)
    return module.MAPPINGS[item.mapping](c.with_raw_record(rows, pii), context), window.end


def _read_silver(spark: SparkSession, path: str, window: InputWindow) -> DataFrame:
    """The whole silver table as of the window's end (first run, full refresh), else its changed rows."""
    if window.first:
        return spark.read.format("delta").option("versionAsOf", window.end).load(path)
    return delta.read_changes(spark, path, window.start, window.end, CHANGES)


def _model_rows(rows: DataFrame, module: ModuleType, item: ModelInput, entry: LedgerEntry) -> DataFrame:
    """The silver rows the input's mapping conforms: all of them, unless the model's ROW_FILTERS names the
    mapping (the webhook objects that are charges, for payments). The others are not this model's records:
    not read, counted in the entry's details under the filter's name."""
    if item.mapping not in getattr(module, "ROW_FILTERS", {}):
        return rows
    detail, keep = module.ROW_FILTERS[item.mapping]
    taken = keep(rows)
    entry.details[detail] = rows.where(~taken).count()
    return rows.where(taken)


def _run_input(
    spark: SparkSession,
    env: EnvConfig,
    spec: ModelSpec,
    item: ModelInput,
    pii: list[str],
    token_key: bytes | None,
) -> LedgerEntry:
    """An incremental run of one input (the first creates the table): MERGE the latest version of each key."""
    module = MODULES[spec.name]
    entry = _start(env, spec, item)
    with ledger.leased(spark, env, entry):  # one run per input at a time (lake/run_lock.py)
        read = _conformed(spark, env, spec, item, pii, token_key, entry, full_refresh=False)
        if read is None:
            return entry
        conformed, end = read
        tagged = c.classify(conformed, module.KEY, module.ORDERING).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = count_dispositions(tagged, "updated_at")
            counts.record(entry)
            if counts.quarantined:
                _write_quarantine(spark, env, spec, item, tagged, entry, end, full_refresh=False)
            latest = tagged.where(F.col(c.DISPOSITION) == c.CANDIDATE).select(*module.COLUMNS)
            model = tables.model(spec.name)
            applied = _merge(spark, env, model, latest, module, item, entry, counts.candidates)
            _settle(entry, counts, applied)
        finally:
            tagged.unpersist()
    return entry


def _rebuild(
    spark: SparkSession, env: EnvConfig, spec: ModelSpec, inputs: Inputs, token_key: bytes | None
) -> list[LedgerEntry]:
    """Full refresh of one source_system: each of its inputs read whole and conformed, the latest version of
    each key chosen across all of them (as the incremental MERGEs do), and the source_system's rows replaced
    in one commit, so no input's rows are lost and a failure changes none. Each input replaces its own
    quarantine rows and has its own ledger entry, counting its own rows (a key's version that another input
    has newer is superseded)."""
    module = MODULES[spec.name]
    entries = [_start(env, spec, item) for item, _ in inputs]
    with ExitStack() as recording:
        for entry in entries:  # each input's lease held; every entry recorded (all failed if any step fails)
            recording.enter_context(ledger.leased(spark, env, entry))
        reads = []
        for (item, pii), entry in zip(inputs, entries, strict=True):
            read = _conformed(spark, env, spec, item, pii, token_key, entry, full_refresh=True)
            if read is not None:
                reads.append((item, entry, *read))
        if not reads:
            return entries
        union = reduce(DataFrame.unionByName, [conformed for _, _, conformed, _ in reads])
        tagged = c.classify(union, module.KEY, module.ORDERING).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counted = []
            for item, entry, _, end in reads:
                # every mapping stamps its rows with their silver table (common.lineage's `_source_table`)
                own = tagged.where(F.col("_source_table") == tables.silver(item.source, item.table).full_name)
                counts = count_dispositions(own, "updated_at")
                counts.record(entry)
                _write_quarantine(spark, env, spec, item, own, entry, end, full_refresh=True)
                counted.append((entry, counts))
            model = tables.model(spec.name)
            latest = tagged.where(F.col(c.DISPOSITION) == c.CANDIDATE).select(*module.COLUMNS)
            system = inputs[0][0].system
            version, written = _overwrite(spark, model.path(env), latest, system)
            offered = sum(counts.candidates for _, counts in counted)
            if written != offered:  # each entry's written is its candidates: they must be what Delta wrote
                raise ledger.AccountingError(
                    f"{spec.name} full refresh of {system}: Delta wrote {written} rows, {offered} were offered"
                )
            for entry, counts in counted:
                entry.wrote(model, version)
                _settle(entry, counts, {"inserted": counts.candidates})
        finally:
            tagged.unpersist()
    return entries


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


def _overwrite(spark: SparkSession, path: str, latest: DataFrame, system: str) -> tuple[int, int]:
    """Write `latest` as the rows of `system`: a new table (first run), else replacing that source_system's rows
    (other systems' rows stay; columns a newer model version adds are added to the table). The version
    written and its number of rows."""
    writer = latest.write.format("delta").mode("overwrite")
    if delta.table_exists(spark, path):
        writer = writer.option("replaceWhere", f"source_system = '{system}'").option("mergeSchema", "true")
    else:
        writer = writer.option("delta.enableChangeDataFeed", "true")
    writer.save(path)
    version = delta.current_version(spark, path)
    return version, delta.commit_metrics(spark, path, version).get("numOutputRows", 0)


def _merge(
    spark: SparkSession,
    env: EnvConfig,
    model: Table,
    latest: DataFrame,
    module: ModuleType,
    item: ModelInput,
    entry: LedgerEntry,
    offered: int,
) -> dict[str, int]:
    """Create the table (first run) or MERGE newer versions by key."""
    path = model.path(env)
    if not delta.table_exists(spark, path):
        version, written = _overwrite(spark, path, latest, item.system)
        entry.wrote(model, version)
        return {"inserted": written}
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
