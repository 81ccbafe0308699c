"""Run-ledger metrics to CloudWatch: rows per layer, duration, failures, freshness and lag per table.

`ledger_metrics` and `status_metrics` are pure (rows in, CloudWatch MetricData out); `publish` sends them with
boto3 (a client may be passed in: moto locally). Dimensions: Env, Source, Table, Layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from northstar.config import EnvConfig

MAX_PER_CALL = 1000  # PutMetricData accepts at most 1,000 metrics per request
COUNTS = {
    "records_read": "RecordsRead",
    "records_written": "RecordsWritten",
    "records_duplicate": "RecordsDuplicate",
    "records_quarantined": "RecordsQuarantined",
}


def _dimensions(env: str, row: dict) -> list[dict]:
    return [
        {"Name": "Env", "Value": env},
        {"Name": "Source", "Value": row["source"]},
        {"Name": "Table", "Value": row["table_name"]},
        {"Name": "Layer", "Value": row["layer"]},
    ]


def ledger_metrics(env: str, runs: Iterable[dict]) -> list[dict]:
    """MetricData for ledger rows (dicts with the ledger's columns): counts, duration, a failure count."""
    data = []
    for run in runs:
        dims, at = _dimensions(env, run), run["ended_at"] or run["started_at"]
        for column, name in COUNTS.items():
            data.append(
                {"MetricName": name, "Dimensions": dims, "Timestamp": at, "Value": float(run[column] or 0)}
            )
        if run["ended_at"] and run["started_at"]:
            seconds = (run["ended_at"] - run["started_at"]).total_seconds()
            data.append(
                {"MetricName": "DurationSeconds", "Dimensions": dims, "Timestamp": at, "Value": seconds}
            )
        failed = 1.0 if run["status"] == "failed" else 0.0
        name = "CheckFailures" if run["layer"] == "checks" else "RunFailures"
        data.append({"MetricName": name, "Dimensions": dims, "Timestamp": at, "Value": failed})
        # per env as well: the CloudWatch alarm (infra/cloudformation) watches this one
        data.append({"MetricName": name, "Dimensions": dims[:1], "Timestamp": at, "Value": failed})
    return data


def status_metrics(env: str, status_rows: Iterable[dict], now: datetime) -> list[dict]:
    """MetricData for `table_status` rows: FreshnessMinutes and LagMinutes per table and layer."""
    data = []
    for row in status_rows:
        dims = _dimensions(env, row)
        for column, name in (("freshness_minutes", "FreshnessMinutes"), ("lag_minutes", "LagMinutes")):
            if row[column] is not None:
                data.append({"MetricName": name, "Dimensions": dims, "Timestamp": now, "Value": row[column]})
                # per (env, layer) too: the freshness alarm watches the stalest table of a layer
                layer_dims = [dims[0], dims[3]]
                data.append(
                    {"MetricName": name, "Dimensions": layer_dims, "Timestamp": now, "Value": row[column]}
                )
    return data


def publish(env: EnvConfig, metric_data: list[dict], cloudwatch_client: Any = None) -> int:
    """PutMetricData in chunks into the env's namespace; returns how many metrics were sent."""
    if env.alerts is None:
        raise ValueError(f"env {env.name} has no alerts: section (cloudwatch_namespace, sns_topic_arn)")
    if cloudwatch_client is None:
        import boto3  # noqa: PLC0415 - boto3 takes ~0.2 s to import; only the AWS path needs it

        cloudwatch_client = boto3.client("cloudwatch", region_name=env.emr.region if env.emr else None)
    for start in range(0, len(metric_data), MAX_PER_CALL):
        cloudwatch_client.put_metric_data(
            Namespace=env.alerts.cloudwatch_namespace, MetricData=metric_data[start : start + MAX_PER_CALL]
        )
    return len(metric_data)
