"""Alerts to SNS and an optional Slack webhook: task failures, freshness breaches, deadlines, quality regressions.

`send` is the one function that talks to AWS/Slack (the lead registers it as a sink of northstar.alerts);
the `*_alert` functions are pure and build the message. The Slack URL is a secret reference, resolved when
sending and never logged or put in a message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from northstar.config import EnvConfig
from northstar.secrets import resolve

log = logging.getLogger(__name__)
SUBJECT_LIMIT = 100  # SNS subjects are at most 100 characters


@dataclass(frozen=True)
class Alert:
    """What happened, where, and what to do: the same text goes to SNS (email/pager) and Slack."""

    kind: str  # task_failed | freshness_breach | deadline_at_risk | deadline_missed | quality_regression
    subject: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)


def task_failed_alert(env: str, context: dict) -> Alert:
    """From an Airflow task context (on_failure_callback): which DAG/task/run failed, the error, the runbook."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    error = context.get("exception")
    lines = [
        f"env: {env}",
        f"dag: {dag_id}",
        f"task: {task_id}",
        f"run: {run_id}",
        f"try: {getattr(ti, 'try_number', '?')}",
        f"error: {type(error).__name__ + ': ' + str(error) if error else 'unknown (see the task log)'}"[
            :2000
        ],
        f"log: {getattr(ti, 'log_url', '') or f'Airflow UI -> {dag_id}'}",
        "runbook: docs/runbooks/README.md (extraction-failure.md for extract tasks, backfill.md for backfills)",
    ]
    return Alert(
        "task_failed",
        f"[northstar {env}] FAILED {dag_id}.{task_id}"[:SUBJECT_LIMIT],
        "\n".join(lines),
        {"dag_id": str(dag_id), "task_id": str(task_id)},
    )


def freshness_alert(env: str, breaches: Iterable[dict], limit_minutes: int) -> Alert | None:
    """From `table_status` rows with breach = true; None when nothing is stale."""
    stale = [b for b in breaches if b["breach"]]
    if not stale:
        return None
    lines = [
        f"env: {env}",
        f"freshness limit: {limit_minutes} min",
        "stale tables (source.table layer: age):",
    ]
    for b in stale:
        age = "never succeeded" if b["freshness_minutes"] is None else f"{b['freshness_minutes']:.0f} min"
        lines.append(f"  {b['source']}.{b['table_name']} {b['layer']}: {age} (last run {b['last_status']})")
    lines.append(f"check: northstar status --env {env}; runbook: docs/runbooks/extraction-failure.md")
    return Alert(
        "freshness_breach",
        f"[northstar {env}] FRESHNESS breach: {len(stale)} table(s) older than {limit_minutes} min"[
            :SUBJECT_LIMIT
        ],
        "\n".join(lines),
        {"tables": ",".join(f"{b['source']}.{b['table_name']}" for b in stale)[:256]},
    )


def deadline_alert(env: str, dag_id: str, deadline: datetime, predicted_end: datetime, missed: bool) -> Alert:
    what = "MISSED" if missed else "AT RISK"
    body = (
        f"env: {env}\ndag: {dag_id}\ndeadline: {deadline:%Y-%m-%d %H:%M} UTC\n"
        f"{'finished' if missed else 'predicted finish'}: {predicted_end:%Y-%m-%d %H:%M} UTC\n"
        "runbook: docs/runbooks/reconciliation-mismatch.md (deadline section)"
    )
    return Alert(
        "deadline_missed" if missed else "deadline_at_risk",
        f"[northstar {env}] DEADLINE {what}: {dag_id} by {deadline:%H:%M} UTC"[:SUBJECT_LIMIT],
        body,
        {"dag_id": dag_id},
    )


def quality_regression_alert(env: str, table: str, check: str, detail: str) -> Alert:
    return Alert(
        "quality_regression",
        f"[northstar {env}] QUALITY {table}: {check}"[:SUBJECT_LIMIT],
        f"env: {env}\ntable: {table}\ncheck: {check}\n{detail}\nrunbook: docs/runbooks/failed-audit.md",
        {"table": table, "check": check},
    )


def send(
    env: EnvConfig,
    alert: Alert,
    *,
    sns_client: Any = None,  # a boto3 SNS client (no stubs); default: one for the topic's region
    post: Callable[..., requests.Response] = requests.post,
) -> str:
    """Publish to the env's SNS topic, then to Slack if a webhook reference is set; returns the SNS message id.

    A Slack failure is logged (without the URL) and does not hide the SNS alert.
    """
    if env.alerts is None:
        raise ValueError(f"env {env.name} has no alerts: section; add sns_topic_arn (conf/env/dev.yaml)")
    if sns_client is None:
        import boto3  # noqa: PLC0415 - boto3 takes ~0.2 s to import; only the AWS path needs it

        region = env.alerts.sns_topic_arn.split(":")[3]
        sns_client = boto3.client("sns", region_name=region)
    attributes = {"kind": alert.kind, **alert.attributes}
    message_id = sns_client.publish(
        TopicArn=env.alerts.sns_topic_arn,
        Subject=alert.subject,
        Message=alert.body,
        MessageAttributes={k: {"DataType": "String", "StringValue": v or "-"} for k, v in attributes.items()},
    )["MessageId"]
    if env.alerts.slack_webhook:
        try:
            url = resolve(env.alerts.slack_webhook).value
            response = post(url, data=json.dumps({"text": f"*{alert.subject}*\n{alert.body}"}), timeout=10)
            response.raise_for_status()
        except Exception as err:  # noqa: BLE001 - Slack is best effort; SNS already has the alert
            log.warning("slack alert via %s failed: %s", env.alerts.slack_webhook, type(err).__name__)
    return message_id
