"""Bronze job: ingest a table's new landing files into its bronze Delta table, exactly once.

Each run takes the landing files no earlier run ingested (a file whose bytes an earlier file already
brought is logged as a re-delivery, its records counted as duplicates), parses them, conforms them to
the schema contract (rescuing values that do not fit), appends them with lineage columns and copies
unparseable records to quarantine. A file that cannot be read as it is goes to quarantine as one whole-file entry
and the other files of the batch proceed.

Crashes: each bronze and quarantine commit carries the run's tag (lake/commits.py); the bronze commit's tag also
names the batch's data columns and the files it found unreadable. A run killed after its bronze commit and before
logging its files is resumed by the next run: it takes over that run's id and files (the unreadable ones too), does
not append them again (bronze's change feed would give silver every row twice), counts what the commit wrote, and
writes what is missing (quarantine, the log, the ledger row). A run killed after logging its files and before its
ledger row left that row in the log's commit; the next run writes it (landing.unrecorded_ledger_row). Quarantine
writes replace the entries of the same deliveries, so an attempt killed before its bronze commit leaves nothing the
next run duplicates.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from northstar import ledger, quarantine
from northstar.bronze import transforms as tx
from northstar.bronze import unreadable
from northstar.bronze.read import count_records, existing_data_schema, read_batch
from northstar.config import EnvConfig, SourceSpec, TableSpec
from northstar.lake import commits, delta, tables
from northstar.lake.commits import Commit, Tag
from northstar.lake.storage import LandingFile
from northstar.lake.tables import Table
from northstar.landing import files as landing
from northstar.ledger import LedgerEntry
from northstar.observability import alerts
from northstar.quality import rescued as rescued_check
from northstar.quality import results as check_results
from northstar.transforms import pci
from northstar.transforms.schema import conform

# Bronze rows are found by lineage (which file, which run), so those are the columns Delta keeps stats on.
STATS_COLUMNS = ",".join(
    [tx.LANDING_FILE, "_run_id", "_ingest_time", tx.RECORD_HASH, "_rescued_data", tx.CORRUPT]
)


@dataclass(frozen=True)
class Interrupted:
    """A run killed after its bronze commit (`commit`) and before logging its files: `files` (still pending),
    of which it found `unreadable` (URI -> (reason code, what was wrong)), and the batch's data `columns`."""

    run_id: str
    commit: Commit
    files: list[LandingFile]
    unreadable: dict[str, tuple[str, str]]
    columns: list[str]


def run_bronze(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    *,
    run_id: str | None = None,
    max_files: int | None = None,
) -> LedgerEntry:
    """Ingest the table's pending landing files; returns the ledger entry it recorded.

    One pass parses and writes every record to bronze: parsed records with their columns, unparseable
    ones with their raw text in `_corrupt_record` (so bronze holds everything that landed, and silver
    never reads those). The unparseable ones are then copied to quarantine from bronze, a cheap scan.
    """
    spec = source.tables[table]
    _record_unrecorded_run(spark, env, source.name, table)
    entry = ledger.start("bronze", env, source=source.name, table=table, layer="bronze", run_id=run_id)
    with ledger.leased(spark, env, entry):
        logged = landing.logged_files(spark, env, source.name, table)
        pending = landing.pending_files(spark, env, spec, logged)
        resumed = interrupted_attempt(spark, env, source.name, table, pending, logged)
        if resumed is None:
            pending = pending[:max_files]
        else:  # its files only: files that landed since wait for the next run
            entry.run_id, pending = resumed.run_id, resumed.files
            entry.details["resumed_interrupted_run"] = 1
        if not pending:
            entry.status = ledger.NOOP
            return entry
        entry.window_start = datetime.fromtimestamp(min(f.modified_ms for f in pending) / 1000, UTC)
        entry.window_end = datetime.fromtimestamp(max(f.modified_ms for f in pending) / 1000, UTC)
        # the same bytes under another name or folder: logged as a re-delivery, its records counted as duplicates
        checksums = landing.content_checksums(spark, pending)
        deliveries = landing.sort_deliveries(spark, env, source.name, table, pending, checksums, logged)
        files, redelivered = deliveries.fresh, deliveries.redelivered
        entry.details["files"] = len(files)
        if deliveries.replaced:  # new bytes under a name delivered before: a new delivery, said so
            entry.details["files_replaced"] = len(deliveries.replaced)
        if redelivered:
            entry.details["files_redelivered"] = len(redelivered)
            entry.details["records_redelivered"] = count_records(spark, spec, list(redelivered))
            entry.records_read = entry.records_duplicate = entry.details["records_redelivered"]
        if files:
            _ingest_readable(spark, env, source, table, spec, deliveries, checksums, entry, resumed)
        entry.check_balanced()
        entry.ended_at = datetime.now(UTC)
        landing.record_ingested(
            spark,
            env,
            source.name,
            table,
            files,
            entry.run_id,
            checksums=checksums,
            redelivered=redelivered,
            ledger_row=entry,
        )
    return entry


def _record_unrecorded_run(spark: SparkSession, env: EnvConfig, source: str, table: str) -> None:
    """Write the ledger row a run killed after its landing-log commit left in that commit's info."""
    last = landing.last_logged_run(spark, env, source, table)
    unrecorded = landing.unrecorded_ledger_row(spark, env, source, table, last)
    if unrecorded is not None:
        ledger.append(spark, env, unrecorded)


def interrupted_attempt(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    pending: list[LandingFile],
    logged: dict[str, landing.LoggedFile],
) -> Interrupted | None:
    """The run that made bronze's newest tagged commit, when it never logged its files (it was killed or failed
    in between), with those of its files that are still pending. Each run resumes such a run before its own
    batch, so only the newest tagged commit can be one."""
    if not pending:
        return None
    bronze = tables.bronze(source, table)
    path = bronze.path(env)
    newest = next(
        (c for c in commits.recent(spark, path) if c.is_data and _tag_of(c, bronze.full_name) is not None),
        None,
    )
    if newest is None or newest.tag is None:
        return None
    run_id = newest.tag.run_id
    if any(run_id in f.run_ids for f in logged.values()):
        return None
    rows = (
        spark.read.format("delta")
        .option("versionAsOf", newest.version)
        .load(path)
        .where(F.col("_run_id") == run_id)  # statistics on _run_id: only that run's files are read
        .select(tx.LANDING_FILE)
        .distinct()
        .collect()
    )
    written = {r[tx.LANDING_FILE] for r in rows}
    bad = {uri: (code, why) for uri, (code, why) in newest.tag.payload.get("unreadable", {}).items()}
    files = [f for f in pending if f.uri in written or f.uri in bad]
    columns = list(newest.tag.payload.get("columns", []))
    return Interrupted(run_id, newest, files, bad, columns) if files else None


def _tag_of(commit: Commit, table: str) -> Tag | None:
    """The commit's tag when a bronze run for `table` made it."""
    tag = commit.tag
    return tag if tag is not None and tag.job == "bronze" and tag.table == table else None


def _ingest_readable(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    spec: TableSpec,
    deliveries: landing.Deliveries,
    checksums: dict[str, str],
    entry: LedgerEntry,
    resumed: Interrupted | None,
) -> None:
    """Ingest the deliveries but the files that cannot be read as they are: those (CSV that is not UTF-8, and,
    when the batch cannot be read, each file that cannot be read alone) go to quarantine as whole-file entries.
    A resumed run (`resumed`) knows them from its interrupted attempt's bronze commit, which it counts."""
    if resumed is not None:
        bad = {f: resumed.unreadable[f.uri] for f in deliveries.fresh if f.uri in resumed.unreadable}
        _ingest(spark, env, source, table, spec, _without(deliveries, bad), entry, bad, resumed)
    else:
        undecodable = unreadable.undecodable(spark, spec, deliveries.fresh)
        bad = {f: (quarantine.INVALID_ENCODING, why) for f, why in undecodable.items()}
        try:
            _ingest(spark, env, source, table, spec, _without(deliveries, bad), entry, bad)
        except unreadable.READ_ERRORS:
            existing = existing_data_schema(spark, tables.bronze(source.name, table).path(env))
            refused = unreadable.find_unreadable(spark, spec, _without(deliveries, bad).fresh, existing)
            if not refused:
                raise
            bad |= {f: (quarantine.UNREADABLE_FILE, why) for f, why in refused.items()}
            _ingest(spark, env, source, table, spec, _without(deliveries, bad), entry, bad)
    if bad:
        _quarantine_files(spark, env, source.name, table, deliveries, bad, checksums, entry)


def _without(deliveries: landing.Deliveries, bad: dict[LandingFile, tuple[str, str]]) -> landing.Deliveries:
    """The deliveries less the files in `bad`."""
    return _only(deliveries, [f for f in deliveries.fresh if f not in bad])


def _only(deliveries: landing.Deliveries, files: list[LandingFile]) -> landing.Deliveries:
    """The deliveries of these `files` alone."""
    uris = {f.uri for f in files}
    return dataclasses.replace(
        deliveries, fresh=files, replaced={u: r for u, r in deliveries.replaced.items() if u in uris}
    )


def _quarantine_files(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    deliveries: landing.Deliveries,
    bad: dict[LandingFile, tuple[str, str]],
    checksums: dict[str, str],
    entry: LedgerEntry,
) -> None:
    """Whole-file quarantine entries for the files (replacing any an earlier attempt at the same deliveries
    wrote, whatever its run id), an alert naming them, and the count in the ledger's details."""
    entries = unreadable.file_entries(
        spark,
        bad,
        checksums,
        run_id=entry.run_id,
        source=source,
        table=table,
        quarantined_at=datetime.now(UTC),
    )
    earlier_attempts = landing.rows_of_deliveries(_only(deliveries, list(bad)), "landing_file", "run_id")
    quarantine.write(
        spark,
        entries,
        tables.quarantine(source, table).path(env),
        replace_where=f"layer = 'bronze' AND ({earlier_attempts})",
        tag=_bronze_tag(source, table, entry.run_id, {"quarantine": "whole_file"}),
    )
    entry.details["files_unreadable"] = len(bad)
    alerts.send(
        env,
        alerts.Alert(
            kind="file_quarantined",
            table=f"{source}.{table}",
            run_id=entry.run_id,
            message=f"{len(bad)} landing file(s) could not be read and are in quarantine; the others were ingested",
            details={f.uri: f"{code}: {why}" for f, (code, why) in bad.items()},
        ),
    )


def _ingest(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    spec: TableSpec,
    deliveries: landing.Deliveries,
    entry: LedgerEntry,
    unreadable_files: dict[LandingFile, tuple[str, str]],
    resumed: Interrupted | None = None,
) -> None:
    """Parse the files into bronze (replacing any rows an interrupted attempt wrote for the same deliveries),
    count what landed, and copy the unparseable records to quarantine. `resumed`: an interrupted attempt of this
    run made the bronze commit with these files; it is counted, not written again."""
    files = deliveries.fresh
    if not files:
        return
    bronze = tables.bronze(source.name, table)
    now = datetime.now(UTC)
    if resumed is None:
        batch = _Batch(deliveries, unreadable_files, now, entry.run_id)
        version, data_columns = _append(spark, bronze.path(env), source, table, spec, batch)
    else:
        version, data_columns = resumed.commit.version, resumed.columns
        entry.details["written_by_earlier_attempt"] = 1
    entry.wrote(bronze, version)
    this_run, written = _rows_written(spark, bronze.path(env), version, entry.run_id)
    entry.records_read += count_records(spark, spec, files)
    entry.records_written = written["rows"] - written["corrupt"]
    entry.details["rescued"] = written["rescued"]
    entry.details["pan_redacted"] = written["pan_redacted"]
    if written["rescued"]:
        parsed = this_run.where(F.col(tx.CORRUPT).isNull())
        _check_rescued(spark, env, source.name, table, spec, parsed, data_columns, entry)
    if written["corrupt"]:
        rejected = tx.corrupt_to_quarantine(
            this_run.where(F.col(tx.CORRUPT).isNotNull()),
            run_id=entry.run_id,
            source=source.name,
            table=table,
            file_format=spec.format,
            quarantined_at=now,
        )
        in_quarantine = landing.rows_of_deliveries(deliveries, "landing_file", "run_id")
        tag = _bronze_tag(source.name, table, entry.run_id, {"quarantine": quarantine.MALFORMED})
        _write_quarantine(
            spark, env, rejected, tables.quarantine(source.name, table), in_quarantine, entry, tag
        )
        entry.details[f"quarantined.{quarantine.MALFORMED}"] = written["corrupt"] - written["undecodable"]
        if written["undecodable"]:
            entry.details[f"quarantined.{quarantine.INVALID_ENCODING}"] = written["undecodable"]


@dataclass(frozen=True)
class _Batch:
    """What one bronze append writes: the deliveries (unreadable files left out), those files, when, which run."""

    deliveries: landing.Deliveries
    unreadable: dict[LandingFile, tuple[str, str]]
    now: datetime
    run_id: str


def _append(
    spark: SparkSession, path: str, source: SourceSpec, table: str, spec: TableSpec, batch: _Batch
) -> tuple[int, list[str]]:
    """Parse and conform the batch's files and append them to bronze at `path` with their lineage, the commit
    tagged with the run, the batch's data columns and its unreadable files (what a resumed run needs); the version
    written and the data columns."""
    records, plans = read_batch(spark, spec, batch.deliveries.fresh, existing_data_schema(spark, path))
    rows = conform(records, plans, keep=[tx.LANDING_FILE, tx.RECORD_HASH, tx.CORRUPT, pci.PAN_FLAG])
    rows = tx.add_lineage(rows, source=source.name, run_id=batch.run_id, ingest_time=batch.now)
    data_columns = [p.name for p in plans if p.target is not None]
    payload = {
        "columns": data_columns,
        "unreadable": {f.uri: list(reason) for f, reason in batch.unreadable.items()},
    }
    version = _write_bronze(
        spark,
        rows.select(*[F.col(f"`{c}`") for c in data_columns], *tx.LINEAGE_COLUMNS),
        path,
        landing.rows_of_deliveries(batch.deliveries, tx.LANDING_FILE, "_run_id"),
        _bronze_tag(source.name, table, batch.run_id, payload),
    )
    return version, data_columns


def _bronze_tag(source: str, table: str, run_id: str, payload: dict[str, Any]) -> Tag:
    """The tag of a bronze run's commits: its bronze commit (payload: columns, unreadable files) and its
    quarantine commits (payload: which quarantine write)."""
    return Tag(job="bronze", table=tables.bronze(source, table).full_name, run_id=run_id, payload=payload)


def _rows_written(spark: SparkSession, path: str, version: int, run_id: str) -> tuple[DataFrame, Row]:
    """The run's rows in bronze at `version`, and their counts: rows, corrupt, undecodable, rescued, pan_redacted."""
    this_run = (
        spark.read.format("delta").option("versionAsOf", version).load(path).where(F.col("_run_id") == run_id)
    )
    written = this_run.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count(tx.CORRUPT).alias("corrupt"),
        F.count_if(~F.is_valid_utf8(tx.CORRUPT)).alias("undecodable"),
        F.count("_rescued_data").alias("rescued"),
        F.count_if(F.col(pci.PAN_FLAG)).alias("pan_redacted"),
    ).first()
    assert written is not None  # a global aggregate has one row
    return this_run, written


def _check_rescued(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    spec: TableSpec,
    parsed: DataFrame,
    columns: list[str],
    entry: LedgerEntry,
) -> None:
    """Store how much of each column the contract rescued (quality/rescued.py); alert on each column over
    the table's `rescued_share_warn`."""
    rows, rescued = rescued_check.rescued_counts(parsed, columns)
    bronze = tables.bronze(source, table)
    where = f"_rescued_data of {bronze.full_name} (run {entry.run_id}) and of silver"
    found = rescued_check.results(
        rows,
        rescued,
        warn_share=spec.rescued_share_warn,
        run_id=entry.run_id,
        table=bronze.full_name,
        where=where,
    )
    check_results.write(spark, env, found)
    for result in found:
        if result.status == check_results.WARN:
            entry.details[result.check_name] = result.failed_rows or 0
            alerts.send(
                env,
                alerts.Alert(
                    kind="column_emptied_by_rescue",
                    table=f"{source}.{table}",
                    run_id=entry.run_id,
                    message=result.explanation,
                    details={"column": result.check_name.split(".", 1)[1], "share": f"{result.observed:.4f}"},
                    severity="warn",
                ),
            )


def _write_bronze(spark: SparkSession, rows: DataFrame, path: str, file_predicate: str, tag: Tag) -> int:
    """Append the rows, replacing any rows an earlier, crashed attempt wrote for the same files; the version."""
    (
        rows.write.format("delta")
        .mode("overwrite")
        .option("userMetadata", tag.text())
        .option("replaceWhere", file_predicate)
        .option("mergeSchema", "true")
        .option("delta.enableChangeDataFeed", "true")
        .option("delta.dataSkippingStatsColumns", STATS_COLUMNS)
        .partitionBy("_ingest_date")
        .save(path)
    )
    return delta.current_version(spark, path)


def _write_quarantine(
    spark: SparkSession,
    env: EnvConfig,
    rejected: DataFrame,
    table: Table,
    deliveries: str,
    entry: LedgerEntry,
    tag: Tag,
) -> None:
    """The unparseable records of the deliveries (`deliveries`: a SQL predicate on their rows) to quarantine,
    replacing any an earlier attempt wrote for them; when an interrupted attempt of this run already wrote them
    (its commit tagged `tag`), that commit counts."""
    path = table.path(env)
    earlier = next((c for c in commits.recent(spark, path) if c.is_data and c.tag == tag), None)
    if earlier is not None:
        entry.details["quarantine_written_by_earlier_attempt"] = 1
    written = (
        earlier.version
        if earlier is not None
        else quarantine.write(
            spark, rejected, path, replace_where=f"layer = 'bronze' AND ({deliveries})", tag=tag
        )
    )
    version = delta.current_version(spark, path) if written is None else written
    entry.wrote(table, version)
    entry.records_quarantined = delta.commit_metrics(spark, path, version)["numOutputRows"]
