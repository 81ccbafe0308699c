"""Quarantine replay: re-process chosen quarantined silver records after a fix, idempotently.

`replay` reads the chosen rows of quarantine.<source>_<table> (silver rejects not yet replayed, optionally of
one check, one run, or since a time), parses each raw record back into the batch shape, runs it through
the current rules (silver's validation and the table's checks in conf/quality/) and MERGEs the records
that now pass into silver with silver's own latest-wins MERGE: replaying twice, or replaying a version older
than silver's row, changes nothing. The replayed quarantine rows are marked (`replayed_run_id`), never
deleted; records that still fail stay as they are. Each replay writes a ledger row (job quarantine_replay,
read = written + duplicates + still quarantined) and a row in ops.quarantine_replays.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar import ledger
from northstar.bronze.transforms import RECORD_HASH
from northstar.config import ConfigError, EnvConfig, SourceSpec, TableSpec
from northstar.lake import delta, tables
from northstar.lake.tables import Table
from northstar.ledger import LedgerEntry
from northstar.quality import evaluate
from northstar.quality import results as qr
from northstar.quality.checks import flag_columns
from northstar.quality.spec import TableChecks, load_checks
from northstar.silver import transforms as tx
from northstar.silver.accounting import Dispositions
from northstar.silver.batch import classify_with_checks, prepare_batch
from northstar.silver.runner import SilverTables, merge_batch

REPLAY_SCHEMA = (
    "replay_run_id string, source string, table_name string, check_filter string, run_id_filter string, "
    "since_filter timestamp, selected bigint, written bigint, duplicates bigint, still_quarantined bigint, "
    "silver_version bigint, replayed_at timestamp"
)


@dataclass
class ReplayRecord:
    """One replay, as stored in ops.quarantine_replays."""

    replay_run_id: str
    source: str
    table_name: str
    check_filter: str | None
    run_id_filter: str | None
    since_filter: datetime | None
    selected: int
    written: int
    duplicates: int
    still_quarantined: int
    silver_version: int | None
    replayed_at: datetime


def _text(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def chosen_condition(check: str | None, run_id: str | None, since: datetime | None, alias: str = "") -> str:
    """SQL over the quarantine table: silver rejects not yet replayed, narrowed by the filters."""
    p = f"{alias}." if alias else ""
    parts = [f"{p}layer = 'silver'", f"{p}replayed_run_id IS NULL"]
    if check:
        parts.append(f"{p}check_name = {_text(check)}")
    if run_id:
        parts.append(f"{p}run_id = {_text(run_id)}")
    if since:
        parts.append(f"{p}quarantined_at >= TIMESTAMP {_text(since.isoformat(sep=' '))}")
    return " AND ".join(parts)


def replay(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    *,
    check: str | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
    checks: TableChecks | None = None,
    replay_run_id: str | None = None,
) -> LedgerEntry:
    """Replay the chosen quarantined records of `source`.`table` through the current rules into silver."""
    if table not in source.tables:
        raise ConfigError(
            f"source {source.name} has no table {table} (its tables: {', '.join(source.tables)})"
        )
    names = SilverTables.of(source, table)
    checks = checks if checks is not None else load_checks(names.silver.full_name)
    if check and checks is not None:
        checks.by_name(check)  # a misspelt --check is an error, not an empty replay
    entry = ledger.start(
        "quarantine_replay",
        env,
        source=source.name,
        table=table,
        layer="silver",
        run_id=replay_run_id,
        run_id_prefix="replay",
    )
    entry.details["replay"] = 1
    filters = ReplayFilters(check, run_id, since)
    with ledger.recorded(spark, env, entry):
        if not all(delta.table_exists(spark, t.path(env)) for t in (names.quarantine, names.silver)):
            entry.status = ledger.NOOP
            _log(spark, env, entry, filters, None)
            return entry
        tagged = _chosen_records(spark, env, source, table, names, filters, checks).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        try:
            _replay_records(spark, env, source.tables[table], names, tagged, checks, entry, filters)
        finally:
            tagged.unpersist()
    return entry


@dataclass(frozen=True)
class ReplayFilters:
    """Which quarantined records a replay takes (besides: silver rejects not replayed yet)."""

    check: str | None = None
    run_id: str | None = None
    since: datetime | None = None

    def condition(self, alias: str = "") -> str:
        return chosen_condition(self.check, self.run_id, self.since, alias)


def _row_checks(checks: TableChecks | None) -> TableChecks | None:
    """The row-level checks only: table-level checks judge a run's batch, a replay judges records."""
    if checks is None:
        return None
    kept = [c for c in checks.checks if c.row_level]
    return checks.model_copy(update={"checks": kept}) if kept else None


def _chosen_records(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    names: SilverTables,
    filters: ReplayFilters,
    checks: TableChecks | None,
) -> DataFrame:
    """The chosen quarantine rows parsed back into the batch shape and tagged by the current rules."""
    spec = source.tables[table]
    chosen = spark.read.format("delta").load(names.quarantine.path(env)).where(filters.condition())
    shape = prepare_batch(spark.read.format("delta").load(names.bronze.path(env)), spec).schema
    records = chosen.select(F.from_json("raw_record", shape).alias("r")).select("r.*")
    return classify_with_checks(spark, env, spec, records, _row_checks(checks))


def _replay_records(
    spark: SparkSession,
    env: EnvConfig,
    spec: TableSpec,
    names: SilverTables,
    tagged: DataFrame,
    checks: TableChecks | None,
    entry: LedgerEntry,
    filters: ReplayFilters,
) -> None:
    """Judge the tagged records, MERGE those that now pass, mark them replayed, log the replay."""
    counts = Dispositions(
        by_disposition=Counter(
            {
                r[tx.DISPOSITION]: r["n"]
                for r in tagged.groupBy(tx.DISPOSITION).agg(F.count("*").alias("n")).collect()
            }
        )
    )
    entry.records_read = counts.total
    if entry.records_read == 0:
        entry.status = ledger.NOOP
        _log(spark, env, entry, filters, None)
        return
    row_checks = _row_checks(checks)
    if row_checks is not None:
        found = evaluate.judge(
            spark,
            env,
            row_checks,
            tagged,
            tagged,
            run_id=entry.run_id,
            key=spec.primary_key,
            rows=entry.records_read,
        )
        qr.write(spark, env, found)
        failed = evaluate.stopping(found)
        if failed:
            raise evaluate.QualityCheckFailed(names.silver.full_name, entry.run_id, failed)
    tagged_data = tagged.drop(*flag_columns(tagged))
    entry.records_quarantined = entry.details["still_quarantined"] = counts.quarantined
    entry.details["exact_duplicates"] = counts.exact_duplicates
    entry.details["superseded_in_batch"] = counts.superseded
    merge_batch(spark, env, tagged_data, spec, names, entry, counts, full_refresh=False)
    _mark_replayed(spark, env, names.quarantine, tagged_data, filters.condition("t"), entry)
    _log(spark, env, entry, filters, entry.delta_versions.get(names.silver.full_name))


def _mark_replayed(
    spark: SparkSession, env: EnvConfig, table: Table, tagged: DataFrame, condition: str, entry: LedgerEntry
) -> None:
    """Set replayed_run_id on the chosen quarantine rows whose record no longer fails (now in silver, or a
    duplicate of what silver holds). Rows that still fail stay unmarked, ready for the next fix."""
    resolved = (
        tagged.where(F.col(tx.DISPOSITION) != tx.QUARANTINED)
        .select(F.col(RECORD_HASH).alias("hash"))
        .distinct()
    )
    path = table.path(env)
    before = delta.latest_version(spark, path)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(resolved.alias("s"), f"t.record_hash = s.hash AND {condition}")
        .whenMatchedUpdate(set={"replayed_run_id": F.lit(entry.run_id)})
        .execute()
    )
    version = delta.current_version(spark, path)
    if version != before:
        entry.wrote(table, version)
        entry.details["marked_replayed"] = delta.commit_metrics(spark, path, version).get(
            "numTargetRowsUpdated", 0
        )


def _log(
    spark: SparkSession,
    env: EnvConfig,
    entry: LedgerEntry,
    filters: ReplayFilters,
    silver_version: int | None,
) -> None:
    record = ReplayRecord(
        replay_run_id=entry.run_id,
        source=entry.source,
        table_name=entry.table_name,
        check_filter=filters.check,
        run_id_filter=filters.run_id,
        since_filter=filters.since,
        selected=entry.records_read,
        written=entry.records_written,
        duplicates=entry.records_duplicate,
        still_quarantined=entry.records_quarantined,
        silver_version=silver_version,
        replayed_at=datetime.now(UTC),
    )
    spark.createDataFrame([asdict(record)], REPLAY_SCHEMA).write.format("delta").mode("append").save(
        tables.QUARANTINE_REPLAYS.path(env)
    )
