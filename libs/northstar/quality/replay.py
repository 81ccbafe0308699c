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
from pathlib import Path

from delta.tables import DeltaTable
from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from northstar import delta, ledger
from northstar.config import ConfigError, EnvConfig, SourceSpec
from northstar.ledger import LedgerEntry
from northstar.quality import evaluate
from northstar.quality import results as qr
from northstar.quality.spec import TableChecks, load_checks
from northstar.transforms import silver as tx
from northstar.transforms.bronze import RECORD_HASH

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
    conf_dir: Path | str | None = None,
    replay_run_id: str | None = None,
) -> LedgerEntry:
    """Replay the chosen quarantined records of `source`.`table` through the current rules into silver."""
    from northstar.silver import (
        _merge,
        _merge_history,
        classify_with_checks,
        prepare_batch,
        silver_table_name,
    )

    if table not in source.tables:
        raise ConfigError(
            f"source {source.name} has no table {table} (its tables: {', '.join(source.tables)})"
        )
    spec = source.tables[table]
    name = silver_table_name(source.name, table)
    checks = checks if checks is not None else load_checks(name, conf_dir)
    if check and checks is not None:
        checks.by_name(check)  # a misspelt --check is an error, not an empty replay
    quarantine_path = env.quarantine_path(source.name, table)
    silver_path = env.silver_path(source.name, table)
    entry = LedgerEntry(
        run_id=replay_run_id or ledger.new_run_id("replay"),
        job="quarantine_replay",
        env=env.name,
        source=source.name,
        table_name=table,
        layer="silver",
    )
    entry.details["replay"] = 1
    with ledger.recorded(spark, env, entry):
        if not delta.table_exists(spark, quarantine_path) or not delta.table_exists(spark, silver_path):
            entry.status = ledger.NOOP
            _log(spark, env, entry, check, run_id, since, None)
            return entry
        chosen = (
            spark.read.format("delta").load(quarantine_path).where(chosen_condition(check, run_id, since))
        )
        bronze = spark.read.format("delta").load(env.bronze_path(source.name, table))
        shape = prepare_batch(bronze, spec).schema
        records = chosen.select(F.from_json("raw_record", shape).alias("r")).select("r.*")
        row_checks = None
        if checks is not None:  # table-level checks judge a run's batch; a replay judges records
            kept = [c for c in checks.checks if c.row_level]
            row_checks = checks.model_copy(update={"checks": kept}) if kept else None
        tagged = classify_with_checks(spark, env, spec, records, row_checks, conf_dir).persist(
            StorageLevel.MEMORY_AND_DISK
        )
        try:
            by_disposition = Counter(
                {
                    r[tx.DISPOSITION]: r["n"]
                    for r in tagged.groupBy(tx.DISPOSITION).agg(F.count("*").alias("n")).collect()
                }
            )
            entry.records_read = sum(by_disposition.values())
            if entry.records_read == 0:
                entry.status = ledger.NOOP
                _log(spark, env, entry, check, run_id, since, None)
                return entry
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
                    raise evaluate.QualityCheckFailed(name, entry.run_id, failed)
            from northstar.quality.checks import flag_columns

            tagged_data = tagged.drop(*flag_columns(tagged))
            entry.records_quarantined = by_disposition.get(tx.QUARANTINED, 0)
            entry.details["still_quarantined"] = entry.records_quarantined
            entry.details["exact_duplicates"] = by_disposition.get(tx.EXACT_DUPLICATE, 0)
            if spec.history:
                offered = by_disposition.get(tx.CANDIDATE, 0) + by_disposition.get(tx.SUPERSEDED, 0)
                applied = (
                    _merge_history(spark, tx.versions(tagged_data), silver_path, spec, entry, False)
                    if offered
                    else {}
                )
                superseded = 0
                applied["numTargetRowsUpdated"] = 0  # a moved interval is not a new record
            else:
                offered = by_disposition.get(tx.CANDIDATE, 0)
                superseded = by_disposition.get(tx.SUPERSEDED, 0)
                applied = (
                    _merge(
                        spark,
                        tx.candidates(tagged_data),
                        silver_path,
                        spec,
                        entry,
                        False,
                        env.tombstone_path(source.name, table),
                    )
                    if offered
                    else {}
                )
            written = sum(
                applied.get(k, 0)
                for k in ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")
            )
            entry.details.update(
                inserted=applied.get("numTargetRowsInserted", 0),
                updated=applied.get("numTargetRowsUpdated", 0),
                superseded_in_batch=superseded,
                not_applied=offered - written,
            )
            entry.records_written = written
            entry.records_duplicate = entry.details["exact_duplicates"] + superseded + (offered - written)
            _mark_replayed(
                spark, quarantine_path, tagged_data, chosen_condition(check, run_id, since, "t"), entry
            )
            _log(
                spark,
                env,
                entry,
                check,
                run_id,
                since,
                entry.delta_versions.get(f"silver.{source.name}_{table}"),
            )
        finally:
            tagged.unpersist()
    return entry


def _mark_replayed(spark: SparkSession, path: str, tagged, condition: str, entry: LedgerEntry) -> None:
    """Set replayed_run_id on the chosen quarantine rows whose record no longer fails (now in silver, or a
    duplicate of what silver holds). Rows that still fail stay unmarked, ready for the next fix."""
    resolved = (
        tagged.where(F.col(tx.DISPOSITION) != tx.QUARANTINED)
        .select(F.col(RECORD_HASH).alias("hash"))
        .distinct()
    )
    before = delta.latest_version(spark, path)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(resolved.alias("s"), f"t.record_hash = s.hash AND {condition}")
        .whenMatchedUpdate(set={"replayed_run_id": F.lit(entry.run_id)})
        .execute()
    )
    version = delta.latest_version(spark, path)
    if version != before:
        entry.delta_versions[f"quarantine.{entry.source}_{entry.table_name}"] = version
        entry.details["marked_replayed"] = delta.commit_metrics(spark, path, version).get(
            "numTargetRowsUpdated", 0
        )


def _log(spark, env, entry: LedgerEntry, check, run_id, since, silver_version) -> None:
    record = ReplayRecord(
        replay_run_id=entry.run_id,
        source=entry.source,
        table_name=entry.table_name,
        check_filter=check,
        run_id_filter=run_id,
        since_filter=since,
        selected=entry.records_read,
        written=entry.records_written,
        duplicates=entry.records_duplicate,
        still_quarantined=entry.records_quarantined,
        silver_version=silver_version,
        replayed_at=datetime.now(UTC),
    )
    spark.createDataFrame([asdict(record)], REPLAY_SCHEMA).write.format("delta").mode("append").save(
        env.quarantine_replays_path
    )
