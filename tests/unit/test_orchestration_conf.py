"""Orchestration conf: pipelines.yaml validation, environment promotion, the deadline rule, alert messages."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from northstar.config import ConfigError, load_env
from northstar.observability import notify
from northstar.orchestration import deadline as dl
from northstar.orchestration.emr import job_driver
from northstar.orchestration.promotion import check_promotion
from northstar.orchestration.spec import load_pipelines
from tests.helpers.conf import load_from

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def conf(tmp_path) -> Path:
    shutil.copytree(REPO / "conf", tmp_path / "conf")
    return tmp_path / "conf"


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def test_repo_envs_promote_cleanly():
    assert check_promotion(["dev", "staging", "prod"]) == []


def test_config_in_dev_but_missing_in_prod_is_caught(conf):
    edit(
        conf / "env" / "prod.yaml",
        lambda d: (d["secrets"].pop("shop_db_password"), d["sources"].remove("wms")),
    )
    edit(conf / "env" / "prod.yaml", lambda d: d["emr"]["spark"].pop("spark.emr-serverless.executor.memory"))
    edit(conf / "env" / "prod.yaml", lambda d: d.pop("delta_commit_coordinator"))
    problems = load_from(conf, check_promotion, ["dev", "staging", "prod"])
    assert problems == [
        "conf/env/prod.yaml: sources lacks wms, which staging runs",
        "conf/env/prod.yaml: secrets lacks shop_db_password, which staging defines "
        "(add a secretsmanager: reference for this env)",
        "conf/env/prod.yaml: no delta_commit_coordinator section, but staging has one",
        "conf/env/prod.yaml: emr.spark lacks spark.emr-serverless.executor.memory, which staging sets",
    ]


def test_env_refuses_a_secret_value_in_place_of_a_reference(conf):
    edit(conf / "env" / "dev.yaml", lambda d: d["secrets"].update(stripe_api_key="sk_live_abc123"))
    with pytest.raises(ConfigError) as err:
        load_from(conf, load_env, "dev")
    assert "dev.yaml" in str(err.value)
    assert "secrets.stripe_api_key" in str(err.value)
    assert "sk_live_abc123" not in str(err.value)


def test_pipeline_naming_an_unknown_stage_or_pool_is_a_config_error(conf):
    path = conf / "orchestration" / "pipelines.yaml"
    edit(path, lambda d: d["sources"]["wms"].update(stages=["ingest", "checks"], pools={"ingest": "nope"}))
    with pytest.raises(ConfigError) as err:
        load_from(conf, load_pipelines)
    message = str(err.value)
    assert "pipelines.yaml" in message
    assert "sources.wms.stages names checks" in message
    assert "sources.wms.pools.ingest uses pool nope" in message


def test_unknown_placeholder_in_arguments_is_refused(conf):
    path = conf / "orchestration" / "pipelines.yaml"
    edit(path, lambda d: d["stages"]["bronze"].update(arguments=["--day", "{ds}"]))
    with pytest.raises(ConfigError, match=r"stages.bronze.arguments: unknown placeholders \['ds'\]"):
        load_from(conf, load_pipelines)


def test_dbt_dag_conf_names_only_gold_tables_and_declared_pools(conf):
    path = conf / "orchestration" / "pipelines.yaml"
    edit(path, lambda d: d["dbt"].update(schedule_on=["fact_orders", "silver_orders"]))
    with pytest.raises(
        ConfigError, match=r"dbt.schedule_on: .*silver_orders: not gold tables; gold tables: fact_"
    ):
        load_from(conf, load_pipelines)
    edit(path, lambda d: d["dbt"].update(schedule_on=["fact_orders"], pool="dbt_runs"))
    with pytest.raises(ConfigError, match=r"dbt.pool uses pool dbt_runs; declared pools: "):
        load_from(conf, load_pipelines)


def test_a_stage_that_publishes_gold_cannot_skip_the_publish(conf):
    path = conf / "orchestration" / "pipelines.yaml"
    edit(path, lambda d: d["stages"]["cycle"]["arguments"].append("--no-publish"))
    with pytest.raises(ConfigError, match=r"stages.cycle: .*publishes_gold: true with --no-publish"):
        load_from(conf, load_pipelines)


def test_no_housekeeping_dag_takes_the_dbt_dags_name(conf):
    path = conf / "orchestration" / "pipelines.yaml"
    edit(path, lambda d: d["housekeeping"].update(dbt={"schedule": "@daily", "stages": ["status"]}))
    with pytest.raises(ConfigError, match=r"housekeeping names dbt are taken by another DAG"):
        load_from(conf, load_pipelines)


def test_job_driver_fills_placeholders_and_points_at_the_release():
    env, pipelines = load_env("prod"), load_pipelines()
    driver = job_driver(
        env, pipelines.stages["extract_window"], source="shop_db", window_start="A", window_end="B"
    )
    assert driver["sparkSubmit"]["entryPointArguments"] == [
        "--source", "shop_db", "--env", "prod", "--start", "A", "--end", "B",
    ]  # fmt: skip
    assert (
        driver["sparkSubmit"]["entryPoint"] == "s3://northstar-prod-artifacts/releases/0.1.0/jobs/extract.py"
    )
    assert "spark.dynamicAllocation.maxExecutors=100" in driver["sparkSubmit"]["sparkSubmitParameters"]


@pytest.mark.parametrize(
    ("interval_end", "now", "expected", "risk"),
    [
        ("2026-11-25T04:00", "2026-11-25T04:05", 60, False),  # 05:05 < 06:30
        ("2026-11-25T04:00", "2026-11-25T05:45", 60, True),  # a late start: 06:45 > 06:30
        ("2026-11-25T07:00", "2026-11-25T07:05", 60, False),  # after 06:30: tomorrow's deadline
    ],
)
def test_deadline_prediction(interval_end, now, expected, risk):
    end = datetime.fromisoformat(interval_end).replace(tzinfo=UTC)
    deadline = dl.deadline_for(end, "06:30")
    assert deadline.strftime("%H:%M") == "06:30"
    assert deadline >= end
    assert dl.at_risk(datetime.fromisoformat(now).replace(tzinfo=UTC), expected, deadline) is risk


def test_alert_goes_to_sns_and_to_slack_without_leaking_the_webhook(monkeypatch, caplog):
    received = []

    class Slack(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Slack)  # a local stand-in for hooks.slack.com
    threading.Thread(target=server.handle_request, daemon=True).start()
    monkeypatch.setenv("TEST_SLACK_URL", f"http://127.0.0.1:{server.server_port}/services/T0/B0/secret")
    alert = notify.quality_regression_alert(
        "test", "silver.orders", "duplicates < 0.1%", "0.4% duplicate orders"
    )
    with mock_aws():
        sns = boto3.client("sns", region_name="eu-west-1")
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        env = load_env("dev")
        env = env.model_copy(
            update={
                "alerts": env.alerts.model_copy(
                    update={"sns_topic_arn": topic, "slack_webhook": "env:TEST_SLACK_URL"}
                )
            }
        )
        assert notify.send(env, alert, sns_client=sns)
    server.server_close()
    assert received
    assert received[0][0] == "/services/T0/B0/secret"
    assert b"QUALITY silver.orders" in received[0][1]
    assert "secret" not in caplog.text
