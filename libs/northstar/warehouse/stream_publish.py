"""The event stream's warehouse publish: the session facts and minute aggregates of a streamed source pushed to
the warehouse from inside the streaming job, at most every `stream.publish_seconds` (default 60 s), after a
micro-batch's MERGEs (docs/streaming.md, "Warehouse").

`StreamPublisher` is the `after_batch` hook of query 2 (streaming/run.py): called with the batch id after the
batch is written, it publishes when `publish_seconds` have passed since the last publish, else marks the tables
pending; `flush()` (the command's wait loop calls it every few seconds, and once when the stream stops) publishes
what is pending, so the last micro-batch of a burst does not wait for the next event. Every publish has its own
run id (`stream-publish-<source>-...`) and its ledger rows (warehouse/publish.py `publish_stream`).

A failed publish (warehouse unreachable, a refused schema change, a reconciliation difference) does not stop
the stream: the lake keeps up, the failure is a `failed` ledger row, an error log line and an alert
(`stream_publish_failed`), and the next publish moves everything since the version the warehouse holds (the
change feed covers the gap). After `max_failures` failures in a row it raises, which stops the query so the
scheduler's restart and paging take over: the dashboards would otherwise go stale unseen.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from snowflake.connector import SnowflakeConnection

from northstar import ledger
from northstar.config import ConfigError, EnvConfig, SourceSpec
from northstar.observability import alerts
from northstar.warehouse.connection import connect
from northstar.warehouse.publish import PublishResult, publish_stream

log = logging.getLogger(__name__)

Connector = Callable[[], AbstractContextManager[SnowflakeConnection]]


@dataclass
class StreamPublisher:
    """Publishes a streamed source's session and minute tables at most every `every_seconds`."""

    spark: SparkSession
    env: EnvConfig
    source: SourceSpec
    every_seconds: float
    max_failures: int = 10
    connector: Connector | None = None  # default: connect(env.snowflake), one connection per publish
    clock: Callable[[], float] = time.monotonic
    last_published: float | None = None
    pending: bool = False
    failures: int = 0
    published: list[list[PublishResult]] = field(default_factory=list)  # the recent publishes' results
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.env.snowflake is None:
            raise ConfigError(f"conf/env/{self.env.name}.yaml: no snowflake: section (see docs/snowflake.md)")

    def __call__(self, batch_id: int) -> None:
        """After micro-batch `batch_id`: publish if the interval has passed, else remember there is work."""
        with self._lock:
            self.pending = True
            now = self.clock()
            if self.last_published is None or now - self.last_published >= self.every_seconds:
                self._publish(f"batch {batch_id}")

    def flush(self) -> None:
        """Publish what earlier batches left pending, once the interval has passed since the last publish."""
        with self._lock:
            if self.pending and (
                self.last_published is None or self.clock() - self.last_published >= self.every_seconds
            ):
                self._publish("timer")

    def finish(self) -> None:
        """The stream stopped: publish anything pending now."""
        with self._lock:
            if self.pending:
                self._publish("stop")

    def _publish(self, why: str) -> None:
        run_id = ledger.new_run_id(f"stream-publish-{self.source.name}")
        self.last_published = self.clock()  # also after a failure: the next try waits one interval
        started = time.monotonic()
        try:
            with (self.connector or self._connect)() as conn:
                # ensure_schemas on every publish: a new connection each time, and fakesnow's stage lives
                # with the connection that created it (and a warehouse that was down may have been rebuilt)
                results = publish_stream(self.spark, self.env, conn, self.source.name, run_id=run_id)
        except Exception as err:  # surfaced (ledger, log, alert), and the stream goes on
            self.failures += 1
            log.error(
                "stream publish %s of %s failed (%d in a row): %s",
                run_id,
                self.source.name,
                self.failures,
                err,
            )
            alerts.send(
                self.env,
                alerts.Alert(
                    kind="stream_publish_failed",
                    table=f"{self.source.name}_sessions,{self.source.name}_minute",
                    run_id=run_id,
                    message=f"warehouse publish of the stream tables failed: {err}",
                    details={"failures_in_a_row": str(self.failures), "after": why},
                ),
            )
            if self.failures >= self.max_failures:
                raise
            return
        self.failures = 0
        self.pending = False
        self.published = [*self.published[-9:], results]
        moved = ", ".join(f"{r.table} +{r.upserted} -{r.deleted} ({r.mode})" for r in results)
        log.info("stream publish %s after %s in %.1f s: %s", run_id, why, time.monotonic() - started, moved)

    def _connect(self) -> AbstractContextManager[SnowflakeConnection]:
        assert self.env.snowflake is not None  # checked in __post_init__
        return connect(self.env.snowflake)


def publisher_for(spark: SparkSession, env: EnvConfig, source: SourceSpec) -> StreamPublisher | None:
    """The stream's publisher, or None when the env has no warehouse (then the stream only writes the lake)."""
    if env.snowflake is None:
        log.warning(
            "conf/env/%s.yaml has no snowflake: section: the stream tables are not published", env.name
        )
        return None
    return StreamPublisher(spark, env, source, every_seconds=source.require_stream().publish_seconds)
