"""Extract PostgreSQL tables into the landing zone through Spark's JDBC reader, gently and idempotently.

Per table, a window of rows [start, end) by its cursor column (e.g. updated_at) is read in keyset pages
(`northstar.extract.keyset`): each query returns at most `batch_size` rows through an index range scan, in a
read-only session with a statement timeout. Each page lands as one Parquet file in the table's landing folder,
named by the window, the page number and a hash of its rows, so re-running a window rewrites nothing (same
rows, same name) and bronze/silver pick the files up unchanged.

- incremental (default): from the stored watermark minus `overlap` (re-reads late commits; silver's MERGE
  counts the re-read copies as duplicates) to now. The watermark moves only when the whole window landed.
- explicit window (`start`/`end`, a backfill or repair): reads exactly that window; the watermark is untouched.
- full refresh: the whole table (and rows whose cursor is NULL), then the watermark is set to its end.

The keyset position is committed after every landed page, so a crash resumes the same window where it
stopped: no gap, no page landed twice. Hard deletes are invisible to these queries (a deleted row is not
there to read): use a CDC feed (DMS / Debezium, the `cdc` section) for tables that hard-delete, or a
soft-delete column, which lands like any other change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyspark.sql import DataFrame, DataFrameReader, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from northstar import ledger
from northstar.config import EnvConfig, SourceSpec
from northstar.config.jdbc import JdbcSpec, JdbcTable
from northstar.extract import ExtractError, jdbc_state, keyset
from northstar.lake import tables
from northstar.ledger import LedgerEntry
from northstar.secrets import Secret, SecretError, resolve

DRIVER = "org.postgresql.Driver"
FILE_FOLDER = "jdbc"  # pages land in <table landing>/jdbc/<window>/batch-<n>-<hash>.parquet


@dataclass
class TableExtract:
    """What one extraction of one table did."""

    source: str
    table: str
    mode: str
    window_start: datetime | None
    window_end: datetime
    queries: int = 0  # page queries issued (Spark also sends one `WHERE 1=0` schema probe per page)
    rows: int = 0
    max_rows_per_query: int = 0
    files_written: list[str] = field(default_factory=list)
    files_unchanged: list[str] = field(default_factory=list)
    resumed: bool = False
    run_id: str = ""


def run_extract(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    tables: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    full_refresh: bool = False,
) -> list[TableExtract]:
    """Extract `tables` (default: every table in `jdbc.tables`) of a source; one ledger row per table."""
    spec = _require_jdbc(source)
    unknown = [t for t in tables or [] if t not in spec.tables]
    if unknown:
        raise ExtractError(
            f"source {source.name} does not extract {', '.join(unknown)} over JDBC "
            f"(jdbc.tables: {', '.join(spec.tables)})"
        )
    if (start is None) != (end is None):
        raise ExtractError("give both --start and --end for an explicit window, or neither")
    if start is not None and full_refresh:
        raise ExtractError("--full-refresh reads the whole table; do not combine it with --start/--end")
    try:
        secret = resolve(spec.password)
    except SecretError as err:
        raise ExtractError(f"source {source.name}: {err}") from None
    now = datetime.now(UTC)
    results = []
    for table in tables or list(spec.tables):
        explicit = keyset.Window(_utc(start), _utc(end)) if start is not None and end is not None else None
        results.append(_extract_table(spark, env, source, table, secret, explicit, full_refresh, now))
    return results


def _require_jdbc(source: SourceSpec) -> JdbcSpec:
    """The source's jdbc section; ExtractError when it has none."""
    if source.jdbc is None:
        raise ExtractError(f"source {source.name} has no jdbc section; see docs/postgres.md to add one")
    return source.jdbc


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _extract_table(
    spark: SparkSession,
    env: EnvConfig,
    source: SourceSpec,
    table: str,
    secret: Secret,
    explicit: keyset.Window | None,
    full_refresh: bool,
    now: datetime,
) -> TableExtract:
    spec = _require_jdbc(source)
    table_spec = source.tables[table]
    jdbc_table = spec.tables[table]
    landing_folder = tables.landing_folder(env, table_spec)
    state = jdbc_state.load(spark, landing_folder)
    mode, window, progress, resumed = _plan_window(state, explicit, full_refresh, spec.overlap, now)
    entry = LedgerEntry(
        run_id=ledger.new_run_id("extract"),
        job="extract",
        env=env.name,
        source=source.name,
        table_name=table,
        layer="extract",
        window_start=window.start,
        window_end=window.end,
    )
    run = _TableRun(
        spark=spark,
        source=source.name,
        table=table,
        spec=spec,
        jdbc_table=jdbc_table,
        keys=list(table_spec.primary_key),
        secret=secret,
        window=window,
        limit=jdbc_table.batch_size or spec.batch_size,
        mode=mode,
        landing_folder=landing_folder,
        staging=f"{env.landing}/_staging/jdbc/{source.name}/{table}/{entry.run_id}",
        state=state,
        progress=progress,
        entry=entry,
        result=TableExtract(
            source.name, table, mode, window.start, window.end, resumed=resumed, run_id=entry.run_id
        ),
    )
    with ledger.recorded(spark, env, entry):
        try:
            _read_window(run)
        finally:
            _delete(spark, run.staging)  # a failed page leaves nothing staged behind
        _record_details(run, resumed)
    return run.result


def _plan_window(
    state: jdbc_state.ExtractState,
    explicit: keyset.Window | None,
    full_refresh: bool,
    overlap: timedelta,
    now: datetime,
) -> tuple[str, keyset.Window, jdbc_state.Progress, bool]:
    """The mode, window and keyset position this extraction reads, and whether it resumes a stopped run."""
    progress = None
    if explicit is not None:
        mode, window = "window", explicit
    elif state.in_progress is not None and (not full_refresh or state.in_progress.mode == "full_refresh"):
        progress = state.in_progress  # a run stopped part-way: finish its window first, from where it was
        mode = progress.mode
        window = keyset.Window(
            datetime.fromisoformat(progress.start) if progress.start else None,
            datetime.fromisoformat(progress.end),
        )
    elif full_refresh:
        mode, window = "full_refresh", keyset.Window(None, now.replace(microsecond=0))
    else:
        mode, window = "incremental", keyset.incremental_window(state.watermark_time, overlap, now)
    if progress is not None:
        return mode, window, progress, True
    progress = jdbc_state.Progress(
        mode=mode,
        start=window.start.isoformat() if window.start else None,
        end=window.end.isoformat(),
        phase=keyset.ROWS,
        after=None,
        batch=0,
    )
    return mode, window, progress, False


@dataclass
class _TableRun:
    """One table's extraction under way: what it reads, where it lands, its position and its counts."""

    spark: SparkSession
    source: str
    table: str
    spec: JdbcSpec
    jdbc_table: JdbcTable
    keys: list[str]
    secret: Secret
    window: keyset.Window
    limit: int
    mode: str
    landing_folder: str
    staging: str
    state: jdbc_state.ExtractState
    progress: jdbc_state.Progress
    entry: LedgerEntry
    result: TableExtract


def _read_window(run: _TableRun) -> None:
    """Read every phase of the window page by page; then move the watermark (not for an explicit window)."""
    phases = [keyset.ROWS, keyset.NULL_CURSOR] if run.window.start is None else [keyset.ROWS]
    for phase in phases[phases.index(run.progress.phase) :]:
        run.progress.phase = phase
        _read_phase(run, phase)
        run.progress.after = None
    if run.mode != "window":
        run.state.in_progress = None
        run.state.watermark = run.window.end.isoformat()
        jdbc_state.commit(run.spark, run.landing_folder, run.state)


def _read_phase(run: _TableRun, phase: str) -> None:
    """Land the pages of one phase until a short or empty page, committing the position after each."""
    while True:
        page = _land_next_page(run, phase)
        run.result.queries += 1
        run.result.max_rows_per_query = max(run.result.max_rows_per_query, page.rows)
        if page.rows == 0:
            break
        _count_page(run, page)
        run.progress.after, run.progress.batch = page.last, run.progress.batch + 1
        if run.mode != "window":  # the page is in place: now move the position past it
            run.state.in_progress = run.progress
            run.state = jdbc_state.commit(run.spark, run.landing_folder, run.state)
        if page.rows < run.limit:
            break


def _land_next_page(run: _TableRun, phase: str) -> _Page:
    """Query and land the page after the current keyset position."""
    jdbc_table = run.jdbc_table
    sql = keyset.page_query(
        jdbc_table.relation,
        jdbc_table.cursor,
        run.keys,
        run.window,
        run.limit,
        after=run.progress.after,
        phase=phase,
        columns=jdbc_table.columns,
    )
    number = f"{run.progress.batch + 1:05d}"
    return _land_page(
        run.spark,
        run.source,
        run.table,
        run.spec,
        jdbc_table,
        run.keys,
        run.secret,
        sql,
        staging=f"{run.staging}/{phase}-{number}",
        target_folder=f"{run.landing_folder}/{FILE_FOLDER}/{run.window.label}",
        name=f"{'batch' if phase == keyset.ROWS else 'nulls'}-{number}",
        phase=phase,
    )


def _count_page(run: _TableRun, page: _Page) -> None:
    """Add a landed (or already landed) page to the result and the ledger entry."""
    result, entry = run.result, run.entry
    result.rows += page.rows
    (result.files_written if page.written else result.files_unchanged).append(page.path)
    entry.records_read += page.rows
    if page.written:
        entry.records_written += page.rows
    else:
        entry.records_duplicate += page.rows  # an earlier run landed these exact rows


def _record_details(run: _TableRun, resumed: bool) -> None:
    """The run's page counts in the ledger entry; NOOP when nothing new landed."""
    result = run.result
    run.entry.details.update(
        queries=result.queries,
        pages_landed=len(result.files_written) + len(result.files_unchanged),
        files_written=len(result.files_written),
        files_unchanged=len(result.files_unchanged),
        max_rows_per_query=result.max_rows_per_query,
        batch_size=run.limit,
        resumed=int(resumed),
    )
    if result.rows == 0 or not result.files_written:
        run.entry.status = ledger.NOOP


@dataclass
class _Page:
    rows: int
    path: str = ""
    written: bool = False
    last: list[str] | None = None


def _reader(spark: SparkSession, spec: JdbcSpec, secret: Secret, application: str) -> DataFrameReader:
    """A JDBC reader for `spec`: read-only sessions with the statement timeout, credentials as properties."""
    reader = (
        spark.read.format("jdbc")
        .option("url", spec.url)
        .option("driver", DRIVER)
        .option("user", spec.user)
        .option("password", secret.value)
        .option("fetchsize", str(spec.fetch_size))
        .option("connectTimeout", str(max(1, int(spec.connect_timeout.total_seconds()))))
        .option("sslmode", spec.sslmode)
    )
    for key, value in keyset.session_options(spec.statement_timeout, application).items():
        reader = reader.option(key, value)
    return reader


def application_name(source: str, table: str) -> str:
    """How extraction sessions name themselves to PostgreSQL (pg_stat_activity, the server log)."""
    return f"northstar-extract:{source}.{table}"


def read_query(spark: SparkSession, source: SourceSpec, table: str, sql: str) -> DataFrame:
    """One query through the same connection settings the extractor uses (for checks and debugging)."""
    spec = _require_jdbc(source)
    secret = resolve(spec.password)
    return _reader(spark, spec, secret, application_name(source.name, table)).option("query", sql).load()


def _land_page(
    spark: SparkSession,
    source: str,
    table: str,
    spec: JdbcSpec,
    jdbc_table: JdbcTable,
    keys: list[str],
    secret: Secret,
    sql: str,
    *,
    staging: str,
    target_folder: str,
    name: str,
    phase: str,
) -> _Page:
    """Run one page query, stage its rows as Parquet, and move them into the landing folder.

    The page is read from the source exactly once (staged, then everything else reads the staged copy).
    """
    context = f"source {source} table {table} ({jdbc_table.relation} at {spec.where})"
    try:
        page = _reader(spark, spec, secret, application_name(source, table)).option("query", sql).load()
        page.coalesce(1).write.mode("overwrite").parquet(staging)
    except Exception as err:  # py4j / Spark wrap the driver's SQLException in many shapes
        raise ExtractError(_explain(err, context, spec, jdbc_table, secret)) from None
    staged = spark.read.parquet(staging)
    cursor_type = staged.schema[jdbc_table.cursor].dataType if jdbc_table.cursor in staged.columns else None
    if not isinstance(cursor_type, T.TimestampType | T.TimestampNTZType):
        raise ExtractError(
            f"{context}: cursor column {jdbc_table.cursor} is {cursor_type or 'missing'}; it must be a "
            "timestamp (timestamptz preferred) set on every insert and update"
        )
    summary = summarize_page(staged, jdbc_table.cursor, keys, phase).first()
    assert summary is not None  # a global aggregate always has one row
    if summary["rows"] == 0:
        _delete(spark, staging)
        return _Page(rows=0)
    target = f"{target_folder}/{name}-{summary['content_hash'][:16]}.parquet"
    written = _move_single_file(spark, staging, target)
    return _Page(summary["rows"], target, written, list(summary["last"]))


def summarize_page(staged: DataFrame, cursor: str, keys: list[str], phase: str) -> DataFrame:
    """One row: the page's row count, its last keyset position (as text) and a hash of its rows.

    The hash does not depend on row order, so the same rows always give the same landing file name.
    """
    position = keys if phase == keyset.NULL_CURSOR else [cursor, *keys]
    last = F.max(F.struct(*[F.col(c) for c in position])).alias("last")
    row_hash = F.sha2(F.to_json(F.struct(*[F.col(c) for c in staged.columns])), 256)
    summary = staged.agg(
        F.count(F.lit(1)).alias("rows"),
        last,
        F.sha2(F.concat_ws(",", F.sort_array(F.collect_list(row_hash))), 256).alias("content_hash"),
    )
    as_text = [
        (
            F.date_format(F.col(f"last.{c}"), "yyyy-MM-dd HH:mm:ss.SSSSSS")
            if isinstance(staged.schema[c].dataType, T.TimestampType | T.TimestampNTZType)
            else F.col(f"last.{c}").cast("string")
        )
        for c in position
    ]
    return summary.select("rows", F.array(*as_text).alias("last"), "content_hash")


def _move_single_file(spark: SparkSession, staging: str, target: str) -> bool:
    """Move the one Parquet file Spark staged to `target`; False when `target` already holds it."""
    fs, folder = jdbc_state.hadoop_fs(spark, staging)
    parts = [s.getPath() for s in fs.listStatus(folder) if s.getPath().getName().endswith(".parquet")]
    if len(parts) != 1:
        raise RuntimeError(f"expected one staged Parquet file in {staging}, found {len(parts)}")
    destination = jdbc_state.hadoop_path(spark, target)
    if fs.exists(destination):  # same window, page and row hash: the same rows already landed
        fs.delete(folder, True)
        return False
    fs.mkdirs(destination.getParent())
    if not fs.rename(parts[0], destination):
        raise RuntimeError(f"could not move {parts[0].toString()} to {target}")
    fs.delete(folder, True)
    return True


def _delete(spark: SparkSession, path: str) -> None:
    fs, jpath = jdbc_state.hadoop_fs(spark, path)
    if fs.exists(jpath):
        fs.delete(jpath, True)


# SQLSTATEs a user can act on: https://www.postgresql.org/docs/current/errcodes-appendix.html
_ADVICE = {
    "28P01": "the server rejected the password of user {user}; check that the secret {ref} holds the "
    "current password for this user (the value is not shown)",
    "28000": "the server refused the login of user {user} (pg_hba.conf or the role may not log in); ask the "
    "DBA to allow this user from this network",
    "57014": "the server cancelled a query after statement_timeout ({timeout}); each page should be an index "
    "range scan: check there is an index on ({cursor}, primary key) of {relation} (EXPLAIN the page query), "
    "or lower jdbc.batch_size, or raise jdbc.statement_timeout",
    "55P03": "a lock could not be taken in time; retry later",
    "42P01": "relation {relation} does not exist (or the user cannot see it); fix jdbc.tables.{table}.relation",
    "42703": "a configured column does not exist in {relation}; fix jdbc.tables.{table}.cursor/columns or the "
    "table's primary_key",
    "42501": "user {user} may not read {relation}; GRANT SELECT on it to this user",
    "3D000": "database {database} does not exist on this server; fix jdbc.database",
    "08001": "could not connect to {where}; check jdbc.host/port and that the database is up and reachable "
    "from here",
    "08004": "the server rejected the connection; check jdbc.host/port/database",
    "53300": "the server has no free connection slots; retry later or lower concurrent extractions",
}


def _explain(err: Exception, context: str, spec: JdbcSpec, table: JdbcTable, secret: Secret) -> str:
    """A message that says what went wrong and what to do, from PostgreSQL's SQLSTATE; never the password."""
    state, detail = _sql_state(err)
    advice = _ADVICE.get(state or "")
    if advice is None and state and state.startswith("08"):
        advice = _ADVICE["08001"]
    if advice is None and re.search(r"Connection refused|UnknownHost|connect timed out", detail):
        state, advice = state or "08001", _ADVICE["08001"]
    fields = {
        "user": spec.user,
        "ref": spec.password,
        "timeout": f"{spec.statement_timeout.total_seconds():g}s",
        "cursor": table.cursor,
        "relation": table.relation,
        "table": next((name for name, t in spec.tables.items() if t is table), table.relation),
        "database": spec.database,
        "where": spec.where,
    }
    what = advice.format(**fields) if advice else "the extraction query failed"
    message = f"{context}: {what} (SQLSTATE {state or 'unknown'}: {detail.strip()[:500]})"
    if len(secret.value) >= 4:
        message = message.replace(secret.value, "***")
    return message


def _sql_state(err: Exception) -> tuple[str | None, str]:
    """The PostgreSQL SQLSTATE and server message behind a Spark/py4j error, if there is one."""
    java = getattr(err, "java_exception", None) or getattr(err, "_origin", None)
    seen = 0
    while java is not None and seen < 20:
        seen += 1
        try:
            name = java.getClass().getName()
            if name.startswith("org.postgresql."):
                state = java.getSQLState() if hasattr(java, "getSQLState") else None
                return state, str(java.getMessage())
            java = java.getCause()
        except Exception:
            break
    text = str(err)
    match = re.search(r"org\.postgresql\.util\.PSQLException: ([^\n]*)", text)
    detail = match.group(1) if match else text.splitlines()[0] if text else type(err).__name__
    if "statement timeout" in detail:
        return "57014", detail
    if "password authentication failed" in detail:
        return "28P01", detail
    return None, detail
