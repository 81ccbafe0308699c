"""Batch identities in Delta commit info, so a retried run finds what an interrupted attempt already committed.

Every data commit a job makes carries a small JSON tag in Delta's `userMetadata`: the job, the table it was run
for, the run id, and the batch's identity (silver: the bronze version window it applied). A run killed after a
data commit and before its ledger row leaves that commit in the table's history; the retry of the same batch
looks for it there and records its metrics instead of applying the batch a second time.

Only recent history is read (`LOOKBACK` commits, or the commits since a time), so the cost of the look-up does
not grow with the table's age. Writes pass their tag as the DataFrameWriter option `userMetadata`, which applies to
that commit alone. A MERGE takes no write options, so it takes its tag from the session's `commitInfo.userMetadata`
conf, set around `execute()` only and reset in `finally` (`tagging`); tagged MERGEs of one process take turns, so
two never mix their tags, but a commit another thread of the same session makes at that moment without a tag of its
own carries the MERGE's too. That is why look-ups match the tag's job, table and window, not its presence, and data
operations (`DATA_OPERATIONS`) only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import Row, SparkSession

USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"
LOOKBACK = 100  # commits; a retry normally comes within a few commits of its interrupted attempt
MARK = "northstar"  # the key that tells a northstar tag from anyone else's userMetadata
DATA_OPERATIONS = frozenset(
    {
        "WRITE",
        "MERGE",
        "CREATE TABLE AS SELECT",
        "REPLACE TABLE AS SELECT",
        "CREATE OR REPLACE TABLE AS SELECT",
    }
)
_TAGGING = threading.Lock()  # one tagged MERGE at a time per process: the conf is the session's


@dataclass(frozen=True)
class Tag:
    """What one data commit applied: `job` run for `table` (e.g. silver.marketplace_orders) by `run_id`; `window`
    the input versions of the batch; `payload` anything the job keeps with the commit (bronze: its ledger row)."""

    job: str
    table: str
    run_id: str
    window: tuple[int, int] | None = None
    full_refresh: bool = False
    payload: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return json.dumps({MARK: 1, **asdict(self)}, default=str, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str | None) -> Tag | None:
        """The tag in a commit's userMetadata; None for any other (or no) userMetadata."""
        try:
            found = json.loads(text or "")
        except ValueError:
            return None
        if not isinstance(found, dict) or found.pop(MARK, None) != 1:
            return None
        window = found.pop("window", None)
        try:
            return cls(window=None if window is None else (int(window[0]), int(window[1])), **found)
        except (TypeError, ValueError, IndexError):
            return None

    def same_batch(self, other: Tag | None) -> bool:
        """The same job, table, window and mode (the run id may differ: a retry has its own)."""
        return other is not None and (self.job, self.table, self.window, self.full_refresh) == (
            other.job,
            other.table,
            other.window,
            other.full_refresh,
        )


@dataclass(frozen=True)
class Commit:
    """One commit of a table's history, with its tag (None when it has none)."""

    version: int
    operation: str
    timestamp: datetime
    tag: Tag | None
    metrics: dict[str, int]

    @property
    def is_data(self) -> bool:
        return self.operation in DATA_OPERATIONS


def _commit(row: Row) -> Commit:
    metrics = row["operationMetrics"] or {}
    return Commit(
        version=row["version"],
        operation=row["operation"],
        timestamp=row["timestamp"],
        tag=Tag.parse(row["userMetadata"]),
        metrics={k: int(v) for k, v in metrics.items() if str(v).lstrip("-").isdigit()},
    )


def recent(spark: SparkSession, path: str, limit: int = LOOKBACK) -> list[Commit]:
    """The table's last `limit` commits, newest first ([] when there is no table)."""
    if not DeltaTable.isDeltaTable(spark, path):
        return []
    rows = (
        DeltaTable.forPath(spark, path)
        .history(limit)
        .select("version", "operation", "timestamp", "operationMetrics", "userMetadata")
        .collect()
    )
    return sorted((_commit(r) for r in rows), key=lambda c: -c.version)


def since(spark: SparkSession, path: str, when: datetime) -> list[Commit]:
    """The table's commits from `when` on, newest first: reads twice as far back each time until it passes
    `when` (a shared table such as the landing log gets commits from every table's runs)."""
    limit = LOOKBACK
    while True:
        found = recent(spark, path, limit)
        if len(found) < limit or found[-1].timestamp < when:
            return [c for c in found if c.timestamp >= when]
        limit *= 2


def find_batch(commits: list[Commit], tag: Tag) -> Commit | None:
    """The newest data commit of the same batch as `tag`, if an earlier attempt made one."""
    return next((c for c in commits if c.is_data and tag.same_batch(c.tag)), None)


@contextmanager
def tagging(spark: SparkSession, tag: Tag | None) -> Iterator[None]:
    """Commits of the session carry `tag` while the body runs (for MERGE, which takes no write options): wrap the
    `execute()` alone. Nothing is set when `tag` is None."""
    if tag is None:
        yield
        return
    with _TAGGING:
        before = spark.conf.get(USER_METADATA_CONF, None)
        spark.conf.set(USER_METADATA_CONF, tag.text())
        try:
            yield
        finally:
            if before is None:
                spark.conf.unset(USER_METADATA_CONF)
            else:
                spark.conf.set(USER_METADATA_CONF, before)
