"""Monitoring from the run ledger: freshness/lag per table, CloudWatch metrics, a freshness breach -> SNS.

moto stands in for CloudWatch, SNS and SQS (an SQS queue subscribed to the topic reads what SNS delivered).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from northstar.config.env import AlertsSpec
from northstar.lake import tables
from northstar.ledger import LEDGER_SCHEMA
from northstar.observability.commands import report_runs
from northstar.observability.status import table_status

NOW = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
REGION = "eu-west-1"


def run(source, table, layer, status, ended_minutes_ago, window_end_minutes_ago=None, read=10):
    ended = NOW - timedelta(minutes=ended_minutes_ago)
    window_end = None if window_end_minutes_ago is None else NOW - timedelta(minutes=window_end_minutes_ago)
    written = read if status != "failed" else 0
    return {
        "run_id": f"{layer}-{source}-{ended_minutes_ago}",
        "job": layer,
        "env": "test",
        "source": source,
        "table_name": table,
        "layer": layer,
        "status": status,
        "window_start": None,
        "window_end": window_end,
        "records_read": read if status != "failed" else 0,
        "records_written": written,
        "records_duplicate": 0,
        "records_quarantined": 0,
        "details": {},
        "delta_versions": {},
        "started_at": ended - timedelta(minutes=2),
        "ended_at": ended,
        "error": "boom" if status == "failed" else None,
    }


# each row says why it is here
LEDGER_ROWS = [
    run(
        "marketplace", "orders", "extract", "success", 6, window_end_minutes_ago=10
    ),  # fresh: window end counts
    run("marketplace", "orders", "bronze", "success", 8),  # fresh
    run("marketplace", "orders", "silver", "success", 50),  # stale (50 > 30) and 42 min behind bronze
    run("marketplace", "orders", "silver", "failed", 5),  # a later failure does not make it fresh
    run("shop_db", "orders", "silver", "failed", 3),  # never succeeded: a breach with no age
    run("wms", "shipments", "silver", "noop", 4),  # a no-op run means caught up: fresh
]


@pytest.fixture
def ledger_env(spark, env):
    spark.createDataFrame(LEDGER_ROWS, LEDGER_SCHEMA).write.format("delta").save(tables.RUN_LEDGER.path(env))
    return env


def test_freshness_and_lag_per_table(spark):
    rows = table_status(spark.createDataFrame(LEDGER_ROWS, LEDGER_SCHEMA), NOW, 30).collect()
    got = {(r.source, r.layer): (r.freshness_minutes, r.lag_minutes, r.breach, r.last_status) for r in rows}
    assert got == {
        ("marketplace", "extract"): (10.0, None, False, "success"),
        ("marketplace", "bronze"): (8.0, 0.0, False, "success"),
        ("marketplace", "silver"): (50.0, 42.0, True, "failed"),
        ("shop_db", "silver"): (None, None, True, "failed"),
        ("wms", "silver"): (4.0, None, False, "noop"),
    }


def test_freshness_breach_sends_sns_alert_and_metrics_reach_cloudwatch(spark, ledger_env):
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
        topic = sns.create_topic(Name="northstar-test-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        env = ledger_env.model_copy(update={"alerts": AlertsSpec(sns_topic_arn=topic, freshness_minutes=30)})

        result = report_runs(
            spark, env, NOW, since=timedelta(hours=2), sns_client=sns, cloudwatch_client=cloudwatch
        )

        messages = [
            json.loads(m["Body"])
            for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        ]
        assert result["breaches"] == 2
        assert result["alert"]
        assert [m["Subject"] for m in messages] == [
            "[northstar test] FRESHNESS breach: 2 table(s) older than 30 min"
        ]
        body = messages[0]["Message"]
        assert "marketplace.orders silver: 50 min (last run failed)" in body
        assert "shop_db.orders silver: never succeeded (last run failed)" in body
        assert "wms" not in body
        assert messages[0]["MessageAttributes"]["kind"]["Value"] == "freshness_breach"

        listed = cloudwatch.list_metrics(Namespace="Northstar")["Metrics"]
        names = {m["MetricName"] for m in listed}
        assert {
            "RecordsRead",
            "RecordsWritten",
            "DurationSeconds",
            "RunFailures",
            "FreshnessMinutes",
            "LagMinutes",
        } <= names
        stale = cloudwatch.get_metric_statistics(
            Namespace="Northstar",
            MetricName="FreshnessMinutes",
            Dimensions=[
                {"Name": "Env", "Value": "test"},
                {"Name": "Source", "Value": "marketplace"},
                {"Name": "Table", "Value": "orders"},
                {"Name": "Layer", "Value": "silver"},
            ],
            StartTime=NOW - timedelta(minutes=5),
            EndTime=NOW + timedelta(minutes=5),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        assert [d["Maximum"] for d in stale] == [50.0]


def test_no_alert_when_everything_is_fresh(spark, env):
    fresh = [run("wms", "shipments", "silver", "success", 5)]
    spark.createDataFrame(fresh, LEDGER_SCHEMA).write.format("delta").save(tables.RUN_LEDGER.path(env))
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="northstar-test-alerts")["TopicArn"]
        env = env.model_copy(update={"alerts": AlertsSpec(sns_topic_arn=topic)})
        result = report_runs(
            spark, env, NOW, sns_client=sns, cloudwatch_client=boto3.client("cloudwatch", region_name=REGION)
        )
    assert result == {"metrics": result["metrics"], "alert": None, "breaches": 0}
    assert result["metrics"] > 0
