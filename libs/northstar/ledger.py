"""The run ledger: one row per job run in a Delta table (`ops.run_ledger`), with the run's accounting.

Every row satisfies records_read = records_written + records_duplicate + records_quarantined.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from northstar.config import EnvConfig
from northstar.lake import delta, run_lock, tables
from northstar.lake.conflicts import retry_on_conflict
from northstar.lake.tables import Table

LEDGER_SCHEMA = (
    "run_id string, job string, env string, source string, table_name string, layer string, status string, "
    "window_start timestamp, window_end timestamp, input_version_start bigint, input_version_end bigint, "
    "records_read bigint, records_written bigint, records_duplicate bigint, records_quarantined bigint, "
    "details map<string,bigint>, delta_versions map<string,bigint>, started_at timestamp, ended_at timestamp, "
    "error string"
)

SUCCESS, NOOP, FAILED = "success", "noop", "failed"


def new_run_id(layer: str) -> str:
    """Sortable and unique: <layer>-<UTC time>-<random>."""
    return f"{layer}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def start(
    job: str,
    env: EnvConfig,
    *,
    source: str,
    table: str,
    layer: str,
    run_id: str | None = None,
    run_id_prefix: str | None = None,
) -> LedgerEntry:
    """A new entry for one run of `job` on one table; the run id is `run_id`, else a new one starting with
    `run_id_prefix` (default: the layer)."""
    return LedgerEntry(
        run_id=run_id or new_run_id(run_id_prefix or layer),
        job=job,
        env=env.name,
        source=source,
        table_name=table,
        layer=layer,
    )


@dataclass
class LedgerEntry:
    """What one run of one job did to one table."""

    run_id: str
    job: str
    env: str
    source: str
    table_name: str
    layer: str
    status: str = SUCCESS
    window_start: datetime | None = None
    window_end: datetime | None = None
    input_version_start: int | None = None
    input_version_end: int | None = None
    records_read: int = 0
    records_written: int = 0
    records_duplicate: int = 0
    records_quarantined: int = 0
    details: dict[str, int] = field(default_factory=dict)
    delta_versions: dict[str, int] = field(default_factory=dict)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    error: str | None = None

    def wrote(self, table: Table, version: int) -> None:
        """Record that this run committed `version` of `table`."""
        self.delta_versions[table.full_name] = version

    @property
    def balanced(self) -> bool:
        return self.records_read == self.records_written + self.records_duplicate + self.records_quarantined

    def check_balanced(self) -> None:
        """Refuse to record a run whose counts do not add up: that is a pipeline bug, not a data problem."""
        if not self.balanced:
            raise AccountingError(
                f"{self.layer} run {self.run_id} for {self.source}.{self.table_name}: read {self.records_read} "
                f"!= written {self.records_written} + duplicate {self.records_duplicate} + quarantined "
                f"{self.records_quarantined}. Records were lost or double counted; nothing was published to the "
                "ledger as success. Report this as a pipeline bug with the run id."
            )

    def as_payload(self) -> dict[str, Any]:
        """The entry as JSON-ready values (times as ISO text), e.g. to keep it in a commit's info until the
        ledger row is written (bronze: the landing-file log's commit)."""
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(self).items()}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> LedgerEntry:
        """The entry `as_payload` gave (unknown keys ignored)."""
        times = {"window_start", "window_end", "started_at", "ended_at"}
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: datetime.fromisoformat(v) if k in times and isinstance(v, str) else v
            for k, v in payload.items()
            if k in known
        }
        return cls(**values)


class AccountingError(RuntimeError):
    """records_read != records_written + records_duplicate + records_quarantined."""


def append(
    spark: SparkSession, env: EnvConfig, entry: LedgerEntry, txn: tuple[str, int] | None = None
) -> None:
    """Append the entry. `txn` (app id, version): an idempotent append Delta skips when that version of that
    app was already written (a streaming micro-batch retried after a crash records its row once)."""
    append_many(spark, env, [entry], txn)


def append_many(
    spark: SparkSession, env: EnvConfig, entries: list[LedgerEntry], txn: tuple[str, int] | None = None
) -> None:
    """Append the entries in one Delta commit (a commit costs about a second here, whatever its size)."""
    if not entries:
        return
    for entry in entries:
        entry.ended_at = entry.ended_at or datetime.now(UTC)
    frame = spark.createDataFrame([asdict(e) for e in entries], LEDGER_SCHEMA)
    writer = frame.write.format("delta").mode("append")
    if txn is not None:
        writer = writer.option("txnAppId", txn[0]).option("txnVersion", txn[1])
    retry_on_conflict(lambda: writer.save(tables.RUN_LEDGER.path(env)), what=tables.RUN_LEDGER.full_name)


@contextmanager
def recorded(
    spark: SparkSession, env: EnvConfig, entry: LedgerEntry, deferred: list[LedgerEntry] | None = None
) -> Iterator[LedgerEntry]:
    """Run the body, then write `entry` to the ledger: checked for balance on success, `failed` on error.
    `deferred`: a successful entry is added to this list instead, for the caller to write all of its run's
    entries in one commit (`append_many`, in a `finally`); a failed one is always written at once."""
    try:
        yield entry
        entry.check_balanced()
    except BaseException as err:
        entry.status = FAILED
        entry.error = f"{type(err).__name__}: {err}"[:4000]
        append(spark, env, entry)
        raise
    if deferred is None:
        append(spark, env, entry)
    else:
        entry.ended_at = datetime.now(UTC)
        deferred.append(entry)


@contextmanager
def leased(
    spark: SparkSession, env: EnvConfig, entry: LedgerEntry, deferred: list[LedgerEntry] | None = None
) -> Iterator[LedgerEntry]:
    """`recorded`, inside the run lease of the entry's layer of its source table (lake/run_lock.py): a run that
    finds another one in progress raises RunInProgress before reading or writing anything, ledger included."""
    with run_lock.held(env, entry.layer, entry.source, entry.table_name, entry.run_id) as lease:
        with recorded(spark, env, entry, deferred):
            if lease is not None and lease.taken_over_from is not None:
                entry.details["lease_taken_over"] = 1
            yield entry


def read(spark: SparkSession, env: EnvConfig) -> DataFrame:
    if not delta.table_exists(spark, tables.RUN_LEDGER.path(env)):
        return spark.createDataFrame([], LEDGER_SCHEMA)
    return spark.read.format("delta").load(tables.RUN_LEDGER.path(env))


def succeeded(spark: SparkSession, env: EnvConfig, run_id: str) -> bool:
    """Whether the ledger has a successful (or noop) row of run `run_id`."""
    return (
        read(spark, env)
        .where((F.col("run_id") == run_id) & F.col("status").isin(SUCCESS, NOOP))
        .limit(1)
        .count()
        > 0
    )


def last_input_version(
    spark: SparkSession, env: EnvConfig, layer: str, source: str, table: str
) -> int | None:
    """The highest input version a successful run of this layer has consumed (None if it never ran)."""
    row = (
        read(spark, env)
        .where((F.col("layer") == layer) & (F.col("source") == source) & (F.col("table_name") == table))
        .where(F.col("status").isin(SUCCESS, NOOP))
        .agg(F.max("input_version_end").alias("version"))
        .first()
    )
    return row["version"] if row else None


@dataclass(frozen=True)
class InputWindow:
    """The input versions a run consumes: `start`..`end` (inclusive); `first` when no earlier successful run
    consumed any (the first run, or a full refresh)."""

    start: int
    end: int
    first: bool


def pending_input(
    spark: SparkSession, env: EnvConfig, entry: LedgerEntry, input_path: str, *, full_refresh: bool = False
) -> InputWindow | None:
    """The versions of the input table at `input_path` this run consumes: those after the last successful run of
    the same (layer, source, table) through the input's latest (all of them on a full refresh). None when there
    is nothing new: the entry is then a noop. Records the window in the entry."""
    end = delta.latest_version(spark, input_path)
    done = (
        None if full_refresh else last_input_version(spark, env, entry.layer, entry.source, entry.table_name)
    )
    start = 0 if done is None else done + 1
    if end is None or start > end:
        entry.status = NOOP
        entry.input_version_start = entry.input_version_end = done
        return None
    entry.input_version_start, entry.input_version_end = start, end
    return InputWindow(start, end, first=done is None)
