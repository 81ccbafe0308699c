"""Which landing files a table has not ingested yet, and the log (`ops.landing_files`) that remembers them.

A file is known by its URI and by the SHA-256 of its bytes: the same content delivered again under
another name or folder (a partner re-sending a file over SFTP) is logged as a re-delivery of the first
file (`duplicate_of`) and not ingested a second time. A file replaced under the same name (its size or
modification time differ from what the log holds) is hashed again: new bytes are a new delivery, ingested
and logged beside the first; the same bytes (a touched file) are logged as a re-delivery of itself.

The log's commit of a run keeps the run's finished ledger row in its commit info (lake/commits.py): a run killed
after logging its files and before writing that row leaves it there, and the next run of the table writes it
(`unrecorded_ledger_row`), so the ledger counts every batch that reached bronze exactly once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar import ledger
from northstar.config import EnvConfig, TableSpec
from northstar.lake import commits, delta, tables
from northstar.lake.commits import Tag
from northstar.lake.conflicts import retry_on_conflict
from northstar.lake.storage import LandingFile, file_sha256, list_landing_files
from northstar.ledger import LedgerEntry

LOG_SCHEMA = (
    "source string, table_name string, file_uri string, size bigint, modified_ms bigint, "
    "run_id string, ingested_at timestamp, content_sha256 string, duplicate_of string"
)
CHECKSUM_THREADS = 8  # files are hashed by streaming them through Hadoop's FileSystem; S3 reads overlap
CLOCK_SKEW = timedelta(minutes=10)  # a commit's timestamp (the storage's clock) vs the driver's ingested_at


@dataclass(frozen=True)
class LoggedRun:
    """The run that logged a table's newest files, and when."""

    run_id: str
    ingested_at: datetime


def _log(spark: SparkSession, env: EnvConfig, source: str, table: str) -> DataFrame:
    return (
        spark.read.format("delta")
        .load(tables.LANDING_FILES.path(env))
        .where((F.col("source") == source) & (F.col("table_name") == table))
    )


@dataclass(frozen=True)
class LoggedFile:
    """What the log last recorded for a landing URI."""

    size: int
    modified_ms: int
    content_sha256: str | None
    run_ids: tuple[str, ...]  # every run that logged the URI (one per delivery of a replaced file)

    def differs_from(self, file: LandingFile) -> bool:
        return (self.size, self.modified_ms) != (file.size, file.modified_ms)


def logged_files(spark: SparkSession, env: EnvConfig, source: str, table: str) -> dict[str, LoggedFile]:
    """Landing URI -> the log's latest row for it (a replaced file has one row per delivery)."""
    if not delta.table_exists(spark, tables.LANDING_FILES.path(env)):
        return {}
    log = spark.read.format("delta").load(tables.LANDING_FILES.path(env))
    digest = F.col("content_sha256") if "content_sha256" in log.columns else F.lit(None).cast("string")
    rows = (
        log.where((F.col("source") == source) & (F.col("table_name") == table))
        .groupBy("file_uri")
        .agg(
            F.max_by(F.struct("size", "modified_ms", digest.alias("sha")), "ingested_at").alias("last"),
            F.collect_set("run_id").alias("run_ids"),
        )
        .collect()
    )
    return {
        r["file_uri"]: LoggedFile(
            r["last"]["size"], r["last"]["modified_ms"], r["last"]["sha"], tuple(sorted(r["run_ids"]))
        )
        for r in rows
    }


def last_logged_run(spark: SparkSession, env: EnvConfig, source: str, table: str) -> LoggedRun | None:
    """The run that logged the table's newest files (None before any)."""
    if not delta.table_exists(spark, tables.LANDING_FILES.path(env)):
        return None
    row = _log(spark, env, source, table).orderBy(F.col("ingested_at").desc()).select("run_id", "ingested_at")
    first = row.first()
    return None if first is None else LoggedRun(first["run_id"], first["ingested_at"])


def unrecorded_ledger_row(
    spark: SparkSession, env: EnvConfig, source: str, table: str, last: LoggedRun | None
) -> LedgerEntry | None:
    """The ledger row the run that logged the table's newest files (`last`) kept in its log commit, when the
    ledger has no successful row of that run (it was killed in between); None otherwise. Reads only the log's
    commits since that run."""
    if last is None or ledger.succeeded(spark, env, last.run_id):
        return None
    for commit in commits.since(spark, tables.LANDING_FILES.path(env), last.ingested_at - CLOCK_SKEW):
        if commit.tag is not None and commit.tag.run_id == last.run_id and commit.tag.payload:
            row = LedgerEntry.from_payload(commit.tag.payload)
            row.details["ledger_row_written_by_later_run"] = 1
            return row
    return None


def pending_files(
    spark: SparkSession, env: EnvConfig, spec: TableSpec, logged: dict[str, LoggedFile]
) -> list[LandingFile]:
    """Landing files of the table that no earlier run ingested as they are now (new, or replaced under the
    same name), oldest path first."""
    return [
        f
        for f in list_landing_files(spark, tables.landing_folder(env, spec), spec.format)
        if f.uri not in logged or logged[f.uri].differs_from(f)
    ]


def content_checksums(spark: SparkSession, files: list[LandingFile]) -> dict[str, str]:
    """File URI -> SHA-256 of its bytes."""
    if not files:
        return {}
    with ThreadPoolExecutor(max_workers=min(CHECKSUM_THREADS, len(files))) as pool:
        digests = pool.map(lambda f: file_sha256(spark, f.path), files)
        return {f.uri: digest for f, digest in zip(files, digests, strict=True)}


def ingested_checksums(spark: SparkSession, env: EnvConfig, source: str, table: str) -> dict[str, str]:
    """SHA-256 -> URI of the file first ingested with that content (re-deliveries left out)."""
    if not delta.table_exists(spark, tables.LANDING_FILES.path(env)):
        return {}
    log = spark.read.format("delta").load(tables.LANDING_FILES.path(env))
    if "content_sha256" not in log.columns:  # a log written before checksums were recorded
        return {}
    rows = (
        log.where((F.col("source") == source) & (F.col("table_name") == table))
        .where(F.col("content_sha256").isNotNull() & F.col("duplicate_of").isNull())
        .select("content_sha256", "file_uri")
        .collect()
    )
    return {r["content_sha256"]: r["file_uri"] for r in rows}


@dataclass(frozen=True)
class Deliveries:
    """A batch of pending files sorted by what their bytes are."""

    fresh: list[LandingFile]  # to ingest
    redelivered: dict[LandingFile, str]  # file -> URI of the file that first brought its bytes
    replaced: dict[str, tuple[str, ...]]  # URI of a fresh file replaced under its name -> runs that logged it


def sort_deliveries(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    files: list[LandingFile],
    checksums: dict[str, str],
    logged: dict[str, LoggedFile],
) -> Deliveries:
    """A file is a re-delivery when an earlier run ingested the same bytes (under any name, its own included),
    or when an earlier file of this batch (by path) has them; otherwise it is ingested, and when its URI was
    logged before, it is a replacement: new bytes under a name already delivered."""
    first_seen = ingested_checksums(spark, env, source, table)
    deliveries = Deliveries(fresh=[], redelivered={}, replaced={})
    for file in files:
        digest = checksums[file.uri]
        earlier = logged.get(file.uri)
        if earlier is not None and earlier.content_sha256 == digest:
            deliveries.redelivered[file] = file.uri  # touched, same bytes
        elif digest in first_seen:
            deliveries.redelivered[file] = first_seen[digest]
        else:
            first_seen[digest] = file.uri
            deliveries.fresh.append(file)
            if earlier is not None:
                deliveries.replaced[file.uri] = earlier.run_ids
    return deliveries


def rows_of_deliveries(deliveries: Deliveries, file_column: str, run_column: str) -> str:
    """SQL predicate: the bronze rows of these deliveries, and of an interrupted attempt at them, but not the
    rows an earlier, logged delivery of a replaced file brought."""
    new = [f.uri for f in deliveries.fresh if f.uri not in deliveries.replaced]
    terms = [f"{file_column} IN ({sql_in_list(new)})"] if new else []
    terms += [
        f"({file_column} = {sql_in_list([uri])} AND {run_column} NOT IN ({sql_in_list(list(runs))}))"
        for uri, runs in deliveries.replaced.items()
    ]
    return " OR ".join(terms)


def record_ingested(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    table: str,
    files: list[LandingFile],
    run_id: str,
    checksums: dict[str, str] | None = None,
    redelivered: dict[LandingFile, str] | None = None,
    ledger_row: LedgerEntry | None = None,
) -> None:
    """Log the files a run ingested, and the re-deliveries it skipped (with `duplicate_of`), in one commit; the
    commit keeps `ledger_row` (the run's finished entry) in its info until the ledger has it."""
    now = datetime.now(UTC)
    checksums = checksums or {}
    rows: list[tuple[str, str, str, int, int, str, datetime, str | None, str | None]] = [
        (source, table, f.uri, f.size, f.modified_ms, run_id, now, checksums.get(f.uri), None) for f in files
    ]
    rows += [
        (source, table, f.uri, f.size, f.modified_ms, run_id, now, checksums.get(f.uri), original)
        for f, original in (redelivered or {}).items()
    ]
    writer = (
        spark.createDataFrame(rows, LOG_SCHEMA)
        .write.format("delta")
        .mode("append")
        .option("mergeSchema", "true")  # logs written before checksums were recorded gain the columns
    )
    if ledger_row is not None:
        payload = ledger_row.as_payload()
        tag = Tag(job=ledger_row.job, table=f"{source}.{table}", run_id=run_id, payload=payload)
        writer = writer.option("userMetadata", tag.text())
    # a blind append: only a race to create the log can refuse it
    retry_on_conflict(
        lambda: writer.save(tables.LANDING_FILES.path(env)), what=tables.LANDING_FILES.full_name
    )


def sql_in_list(values: list[str]) -> str:
    """`'a', 'b'` for a SQL IN (...) predicate, quotes escaped."""
    return ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values)
