"""Alerts: `send(env, Alert)` delivers an event to the sinks the environment names (`alert_sinks`).

Sinks: `log` (one structured JSON line on the `northstar.alerts` logger, for CloudWatch), `delta` (a row
appended to ops.alerts) and `sns` (the env's SNS topic, and Slack when a webhook reference is set, through
northstar.observability.notify). A new sink is a name in EnvConfig.alert_sinks and a function in SINKS.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from northstar.config import EnvConfig
from northstar.lake import tables
from northstar.lake.conflicts import retry_on_conflict
from northstar.observability import notify

ALERT_SCHEMA = (
    "kind string, severity string, table_name string, run_id string, message string, "
    "details map<string,string>, raised_at timestamp"
)
log = logging.getLogger("northstar.alerts")


@dataclass
class Alert:
    """Something a person must look at: what happened, to which table, in which run, and the evidence."""

    kind: str
    table: str
    run_id: str
    message: str
    details: dict[str, str] = field(default_factory=dict)
    severity: str = "error"
    raised_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict:
        row = asdict(self)
        row["table_name"] = row.pop("table")
        return row


def _to_log(env: EnvConfig, event: Alert) -> None:
    log.error(json.dumps({"alert": event.kind, "env": env.name, **event.row()}, default=str, sort_keys=True))


def _to_delta(env: EnvConfig, event: Alert) -> None:
    spark = SparkSession.getActiveSession()
    if spark is None:  # no Spark in this process (e.g. a REST extract): the log line is the record
        log.warning("alert %s not written to ops.alerts: no active Spark session", event.kind)
        return
    writer = spark.createDataFrame([event.row()], ALERT_SCHEMA).write.format("delta").mode("append")
    # a blind append: only a race to create the table (runs of two tables alerting at once) can refuse it
    retry_on_conflict(lambda: writer.save(tables.ALERTS.path(env)), what=tables.ALERTS.full_name)


def _to_sns(env: EnvConfig, event: Alert) -> None:
    lines = [f"env: {env.name}", f"table: {event.table}", f"run: {event.run_id}", event.message]
    lines += [f"{k}: {v}" for k, v in sorted(event.details.items())]
    subject = f"[northstar {env.name}] {event.kind.upper()} {event.table}"[: notify.SUBJECT_LIMIT]
    message = notify.Alert(
        event.kind, subject, "\n".join(lines), {"table": event.table, "run_id": event.run_id}
    )
    notify.send(env, message)


SINKS: dict[str, Callable[[EnvConfig, Alert], None]] = {"log": _to_log, "delta": _to_delta, "sns": _to_sns}


def send(env: EnvConfig, event: Alert) -> None:
    """Deliver `event` to every sink of the environment."""
    for sink in env.alert_sinks:
        SINKS[sink](env, event)
