"""The generated Airflow DAGs on real Apache Airflow 3 (SQLite metadata DB) against moto's EMR Serverless/S3/SNS.

moto stands in for EMR Serverless, S3, SNS and SQS (this machine cannot reach AWS): it creates applications
in STARTED and finishes job runs at once with SUCCESS, so the DAG's waiters return after one poll. Airflow
itself runs for real: the DAGs are parsed by a DagBag and run end to end with dag.test(), with Airflow's own
settings (no unit-test mode: that switches Airflow 3 back to Airflow 2's data-interval timetables).

Assets: a publishing task (moto finishes its EMR job run with SUCCESS) records one AssetEvent per published gold
table in the metadata DB, and Airflow's own asset manager and scheduler query queue northstar_dbt, which is
scheduled on three of them; a failed task records none.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
import yaml

# Airflow reads its settings when first imported: give it a private home and SQLite DB before that.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="northstar-airflow-")
os.environ.update(
    {
        "AIRFLOW_HOME": _AIRFLOW_HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[2] / "airflow" / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AIRFLOW_CONN_AWS_DEFAULT": '{"conn_type": "aws"}',
    }
)
airflow = pytest.importorskip("airflow")
from airflow.dag_processing.bundles.manager import DagBundlesManager  # noqa: E402
from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db  # noqa: E402
from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel  # noqa: E402
from airflow.models.dag import DagModel  # noqa: E402
from airflow.models.xcom import XComModel  # noqa: E402
from airflow.sdk import Asset, AssetAll, CronDataIntervalTimetable  # noqa: E402
from airflow.utils import db  # noqa: E402
from airflow.utils.session import create_session  # noqa: E402
from moto import mock_aws  # noqa: E402
from sqlalchemy import select, update  # noqa: E402

from northstar.config import load_env  # noqa: E402
from northstar.gold.names import GOLD_TABLE_NAMES  # noqa: E402
from northstar.gold.tables import GOLD  # noqa: E402
from northstar.orchestration import dags as factory  # noqa: E402
from northstar.orchestration.spec import load_pipelines  # noqa: E402
from northstar.warehouse.publish import qualified  # noqa: E402
from tests.helpers.conf import load_from, with_source_stages  # noqa: E402

try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2
    from airflow.models.dagbag import DagBag

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-west-1"
FINANCE_MART_INPUTS = ("daily_revenue", "fact_orders", "fact_refunds")  # conf dbt.schedule_on


@pytest.fixture(scope="module")
def airflow_db():
    db.initdb()
    yield
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="module")
def aws():
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def stack(aws, tmp_path_factory):
    """moto resources + a conf folder whose `test` env points at them (retries off: a failure is final)."""
    emr = boto3.client("emr-serverless", region_name=REGION)
    apps = {
        kind: emr.create_application(name=f"northstar-test-{kind}", releaseLabel="emr-7.9.0", type="SPARK")[
            "applicationId"
        ]
        for kind in ("scheduled", "backfill")
    }
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket="northstar-test-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic = sns.create_topic(Name="northstar-test-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="northstar-test-alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)

    conf = tmp_path_factory.mktemp("conf")
    shutil.copytree(REPO / "conf", conf, dirs_exist_ok=True)
    pipelines = yaml.safe_load((conf / "orchestration" / "pipelines.yaml").read_text())
    pipelines["defaults"]["retries"] = 0
    (conf / "orchestration" / "pipelines.yaml").write_text(yaml.safe_dump(pipelines))
    env = yaml.safe_load((REPO / "conf" / "env" / "dev.yaml").read_text())
    env["emr"].update(
        applications=apps,
        execution_role_arn="arn:aws:iam::123456789012:role/northstar-test-emr-job",
        log_uri="s3://northstar-test-artifacts/logs",
        artifacts="s3://northstar-test-artifacts/releases",
        artifact_version="1.2.3-test",
        waiter_delay_seconds=1,
        waiter_max_attempts=5,
    )
    env["alerts"] = {"sns_topic_arn": topic, "freshness_minutes": 30}
    (conf / "env" / "test.yaml").write_text(yaml.safe_dump(env))
    return {"conf": conf, "apps": apps, "queue": queue, "emr": emr, "sqs": sqs}


def _messages(stack) -> list[dict]:
    out = stack["sqs"].receive_message(QueueUrl=stack["queue"], MaxNumberOfMessages=10, WaitTimeSeconds=1)
    for m in out.get("Messages", []):
        stack["sqs"].delete_message(QueueUrl=stack["queue"], ReceiptHandle=m["ReceiptHandle"])
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def test_every_dag_file_imports_without_errors(monkeypatch):
    monkeypatch.setenv("NORTHSTAR_ENV", "prod")
    bag = DagBag(dag_folder=str(REPO / "airflow" / "dags"))
    assert bag.import_errors == {}
    pipelines = load_pipelines()
    expected = {f"northstar_{s}" for s in pipelines.sources} | {
        f"northstar_backfill_{s}" for s in pipelines.sources
    }
    expected |= {f"northstar_{name}" for name in pipelines.housekeeping}
    assert set(bag.dag_ids) == expected | {"northstar_daily_reconciliation", "northstar_dbt"}
    assert not (REPO / "airflow" / "__init__.py").exists()


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_task_graph_matches_conf(env_name):
    pipelines = load_pipelines()
    env = load_env(env_name)
    sources = factory.source_dags(env_name)
    backfills = factory.backfill_dags(env_name)
    for source, pipeline in pipelines.sources.items():
        for dag, stages, app in (
            (sources[f"northstar_{source}"], pipeline.stages, env.emr.applications.scheduled),
            (
                backfills[f"northstar_backfill_{source}"],
                pipelines.backfill_stages(source),
                env.emr.applications.backfill,
            ),
        ):
            assert sorted(t.task_id for t in dag.tasks) == sorted(stages)
            for upstream, downstream in zip(stages, stages[1:], strict=False):
                assert dag.get_task(upstream).downstream_task_ids == {downstream}
            assert dag.get_task(stages[0]).upstream_task_ids == set()
            assert dag.catchup is False
            for name in stages:
                task = dag.get_task(name)
                stage = pipelines.stages[name]
                assert task.application_id == app
                assert task.job_driver["sparkSubmit"]["entryPoint"].endswith("/" + stage.entry_point)
                assert task.pool == (pipelines.pool_for(source, name) or "default_pool")
                assert task.retries == pipelines.defaults.retries
                assert task.retry_exponential_backoff
                assert task.on_failure_callback
    # the scheduled app and the backfill app are different EMR Serverless applications
    assert env.emr.applications.scheduled != env.emr.applications.backfill
    assert sources["northstar_shop_db"].get_task("cycle").pool == "postgres_extracts"
    assert backfills["northstar_backfill_shop_db"].get_task("cycle_window").pool == "postgres_extracts"
    assert sources["northstar_stripe"].get_task("cycle").pool == "stripe_api"  # not the marketplace's budget
    reconciliation = factory.reconciliation_dag(env_name)["northstar_daily_reconciliation"]
    chain = ["deadline_guard", *pipelines.reconciliation.stages, "deadline_check"]
    for upstream, downstream in zip(chain, chain[1:], strict=False):
        assert reconciliation.get_task(upstream).downstream_task_ids == {downstream}
    assert reconciliation.get_task("deadline_check").trigger_rule == "all_done"
    housekeeping = factory.housekeeping_dags(env_name)
    assert set(housekeeping) == {f"northstar_{name}" for name in pipelines.housekeeping}
    for name, spec in pipelines.housekeeping.items():
        dag = housekeeping[f"northstar_{name}"]
        assert [t.task_id for t in dag.tasks] == spec.stages
        assert dag.catchup is False
        for task in dag.tasks:
            arguments = task.job_driver["sparkSubmit"]["entryPointArguments"]
            assert task.application_id == env.emr.applications.scheduled
            assert "{source}" not in " ".join(arguments)
            assert env_name in arguments
    catch_up = housekeeping["northstar_stream_catch_up"].get_task("stream_catch_up")
    assert catch_up.job_driver["sparkSubmit"]["entryPointArguments"][:2] == ["--source", "clickstream"]


def test_every_entry_point_a_dag_references_exists():
    referenced = factory.referenced_entry_points(load_pipelines())
    assert referenced
    assert all((REPO / path).is_file() for path in referenced), referenced
    assert {"jobs/run_cycle.py", "jobs/reconcile.py"} <= referenced


def test_dag_runs_end_to_end_and_submits_the_configured_job_runs(airflow_db, stack, monkeypatch):
    monkeypatch.setenv("NORTHSTAR_CONF_DIR", str(stack["conf"]))
    dag = load_from(stack["conf"], factory.source_dags, "test")["northstar_shop_db"]

    run = dag.test()

    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    emr, app = stack["emr"], stack["apps"]["scheduled"]
    job_runs = [
        emr.get_job_run(applicationId=app, jobRunId=r["id"])["jobRun"]
        for r in emr.list_job_runs(applicationId=app)["jobRuns"]
    ]
    by_entry = {j["jobDriver"]["sparkSubmit"]["entryPoint"]: j for j in job_runs}
    release = "s3://northstar-test-artifacts/releases/1.2.3-test"
    assert set(by_entry) == {f"{release}/jobs/run_cycle.py"}  # one EMR job run for the whole cycle
    assert len(job_runs) == 1
    extract = by_entry[f"{release}/jobs/run_cycle.py"]
    assert extract["jobDriver"]["sparkSubmit"]["entryPointArguments"] == [
        "--source",
        "shop_db",
        "--env",
        "test",
    ]
    parameters = extract["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
    assert f"--conf spark.archives={release}/northstar-env.tar.gz#environment" in parameters
    assert f"{release}/jars/postgresql-42.7.4.jar" in parameters
    assert "--conf spark.emr-serverless.executor.cores=4" in parameters
    assert (
        f"{release}/jars/aws-java-sdk-dynamodb-1.12.262.jar" in parameters
    )  # the commit coordinator's client
    assert (
        "--conf spark.databricks.delta.coordinatedCommits.commitCoordinator.dynamodb.awsCredentialsProviderName="
        "com.amazonaws.auth.DefaultAWSCredentialsProviderChain" in parameters
    )
    assert extract["executionRole"] == "arn:aws:iam::123456789012:role/northstar-test-emr-job"
    log_uri = extract["configurationOverrides"]["monitoringConfiguration"]["s3MonitoringConfiguration"][
        "logUri"
    ]
    assert log_uri == "s3://northstar-test-artifacts/logs"
    assert _messages(stack) == []  # success sends no alert


def test_failed_task_publishes_an_sns_alert(airflow_db, stack, monkeypatch):
    monkeypatch.setenv("NORTHSTAR_CONF_DIR", str(stack["conf"]))
    broken = yaml.safe_load((stack["conf"] / "env" / "test.yaml").read_text())
    broken["emr"]["applications"]["scheduled"] = "00nosuchapp0000"  # moto: ResourceNotFoundException
    (stack["conf"] / "env" / "broken.yaml").write_text(yaml.safe_dump(broken))
    dag = load_from(stack["conf"], factory.source_dags, "broken")["northstar_wms"]

    run = dag.test()

    assert "failed" in str(run.state).lower()
    messages = _messages(stack)
    assert [m["Subject"] for m in messages] == ["[northstar broken] FAILED northstar_wms.cycle"]
    body = messages[0]["Message"]
    assert "dag: northstar_wms" in body
    assert "task: cycle" in body
    assert "error: " in body
    assert messages[0]["MessageAttributes"]["kind"]["Value"] == "task_failed"
    assert _asset_events(run) == []  # a failed publishing task updates no asset


def _submitted(stack, name: str) -> list[list[str]]:
    """The entry point arguments of every job run named `name` on the scheduled application."""
    emr, app = stack["emr"], stack["apps"]["scheduled"]
    return [
        emr.get_job_run(applicationId=app, jobRunId=r["id"])["jobRun"]["jobDriver"]["sparkSubmit"][
            "entryPointArguments"
        ]
        for r in emr.list_job_runs(applicationId=app)["jobRuns"]
        if r["name"] == name
    ]


def test_every_scheduled_dag_has_an_explicit_cron_data_interval_timetable():
    pipelines = load_pipelines()
    dags = {
        **factory.source_dags("prod"),
        **factory.housekeeping_dags("prod"),
        **factory.reconciliation_dag("prod"),
    }
    schedules = {f"northstar_{s}": p.schedule for s, p in pipelines.sources.items()}
    schedules |= {f"northstar_{n}": h.schedule for n, h in pipelines.housekeeping.items()}
    schedules["northstar_daily_reconciliation"] = pipelines.reconciliation.schedule
    assert set(dags) == set(schedules)
    for dag_id, dag in dags.items():
        assert dag.timetable == CronDataIntervalTimetable(schedules[dag_id], timezone="UTC"), dag_id
    for dag in factory.backfill_dags("prod").values():
        assert dag.timetable.can_be_scheduled is False  # triggered with a window, never scheduled


def test_the_04_00_reconciliation_reconciles_the_utc_day_before(airflow_db, stack, monkeypatch):
    monkeypatch.setenv("NORTHSTAR_CONF_DIR", str(stack["conf"]))
    dag = load_from(stack["conf"], factory.reconciliation_dag, "test")["northstar_daily_reconciliation"]

    run = dag.test(logical_date=datetime(2026, 11, 25, 4, 0, tzinfo=UTC))  # the "0 4 * * *" run of 25 Nov

    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert (run.data_interval_start, run.data_interval_end) == (
        datetime(2026, 11, 24, 4, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 4, 0, tzinfo=UTC),
    )
    assert _submitted(stack, "northstar-test-daily-reconcile") == [
        ["--env", "test", "--date", "2026-11-24", "--fail-on-breach"]
    ]
    # the run's deadline is 06:30 on the day it runs (long past now: both deadline tasks alert)
    messages = _messages(stack)
    assert sorted(m["MessageAttributes"]["kind"]["Value"] for m in messages) == [
        "deadline_at_risk",
        "deadline_missed",
    ]
    assert all("deadline: 2026-11-25 06:30 UTC" in m["Message"] for m in messages)


def test_an_hourly_source_dag_gets_the_hour_that_ended_as_its_window(
    airflow_db, stack, monkeypatch, tmp_path
):
    # no scheduled stage takes the window today (extract is incremental): run the windowed extract hourly
    conf = with_source_stages(
        stack["conf"], tmp_path / "conf", "marketplace", ["extract_window"], schedule="15 * * * *"
    )
    monkeypatch.setenv("NORTHSTAR_CONF_DIR", str(conf))
    dag = load_from(conf, factory.source_dags, "test")["northstar_marketplace"]  # "15 * * * *"

    run = dag.test(logical_date=datetime(2026, 11, 25, 5, 15, tzinfo=UTC))

    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    assert _submitted(stack, "northstar-test-marketplace-extract_window") == [
        [
            *("--source", "marketplace", "--env", "test"),
            *("--start", "2026-11-25T04:15:00+00:00", "--end", "2026-11-25T05:15:00+00:00"),
        ]
    ]
    assert _messages(stack) == []


def test_no_airflow_package_shadows_apache_airflow():
    assert Path(airflow.__file__).resolve().is_relative_to(Path(sys.prefix).resolve())


def _asset_events(run) -> list[str]:
    """The URIs of the asset events the tasks of `run` recorded in the metadata DB, sorted."""
    with create_session() as session:
        return sorted(
            session.scalars(
                select(AssetModel.uri)
                .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
                .where(AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)
            )
        )


def _gold_uris(env_name: str) -> dict[str, str]:
    """gold table -> the URI its asset should have: the warehouse table warehouse/publish.py MERGEs into."""
    spec = load_env(env_name).snowflake
    return {name: f"snowflake://{spec.account}/{qualified(spec, name).replace('.', '/')}" for name in GOLD}


def _sync_dag_folder_to_db() -> None:
    """Parse the DAG folder and write its DAGs (schedules, outlets, assets) to the metadata DB, as the DAG
    processor does (and as dag.test() does before it runs)."""
    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert bag.import_errors == {}
        sync_bag_to_db(bag, bundle.name, bundle.version)


def test_the_gold_names_airflow_reads_are_the_gold_tables_and_their_uris_the_warehouse_tables():
    assert GOLD_TABLE_NAMES == tuple(GOLD)  # gold/names.py (no Spark) lists gold/tables.py's GOLD
    for env_name in ("dev", "staging", "prod"):
        expected = _gold_uris(env_name)
        assets = factory.gold_assets(load_env(env_name))
        assert {name: a.uri for name, a in assets.items()} == expected
        assert {name: a.extra for name, a in assets.items()} == {n: {"gold_table": f"gold.{n}"} for n in GOLD}
        for uri in expected.values():
            assert Asset(uri).uri == uri  # Airflow's URI normalisation leaves it as it is
            parts = urlsplit(uri)  # the Snowflake provider's rule (assets/snowflake.py sanitize_uri):
            assert parts.netloc  # an account identifier,
            assert len(parts.path.split("/")) == 4  # then database, schema and table
    assert (
        _gold_uris("prod")["fact_orders"] == "snowflake://northstar-prod/NORTHSTAR_PROD/ANALYTICS/FACT_ORDERS"
    )
    try:
        from airflow.providers.snowflake.assets.snowflake import sanitize_uri  # noqa: PLC0415  optional
    except ImportError:  # the provider is not installed here; its rule is checked above
        return
    for uri in _gold_uris("prod").values():
        assert urlunsplit(sanitize_uri(urlsplit(uri))) == uri


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_every_publishing_task_has_exactly_the_gold_assets_as_outlets(env_name):
    pipelines = load_pipelines()
    gold = sorted(_gold_uris(env_name).values())
    dags = {
        **factory.source_dags(env_name),
        **factory.backfill_dags(env_name),
        **factory.reconciliation_dag(env_name),
        **factory.housekeeping_dags(env_name),
        **factory.dbt_dag(env_name),
    }
    publishing = set()
    for dag in dags.values():
        for task in dag.tasks:
            stage = pipelines.stages.get(task.task_id)
            outlets = sorted(o.uri for o in task.outlets)
            if stage is not None and stage.publishes_gold:
                assert outlets == gold, (dag.dag_id, task.task_id)
                publishing.add((dag.dag_id, task.task_id))
            else:
                assert outlets == [], (dag.dag_id, task.task_id)
    # the jobs that run warehouse/publish.py: every cycle, every backfill's cycle, the reconciliation's publish
    assert publishing == (
        {(f"northstar_{s}", "cycle") for s in pipelines.sources}
        | {(f"northstar_backfill_{s}", "cycle_window") for s in pipelines.sources}
        | {("northstar_daily_reconciliation", "publish")}
    )


def test_the_dbt_dag_is_scheduled_on_the_finance_mart_inputs_and_alerts_like_the_others():
    pipelines = load_pipelines()
    assert tuple(pipelines.dbt.schedule_on) == FINANCE_MART_INPUTS
    dag = factory.dbt_dag("prod")["northstar_dbt"]
    uris = _gold_uris("prod")
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAll)  # a run once every one of them has been updated since the last
    assert [a.uri for a in condition.objects] == [uris[n] for n in FINANCE_MART_INPUTS]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    (task,) = dag.tasks
    assert task.task_id == "dbt_build"
    assert task.bash_command == ".venv-dbt/bin/dbt build --project-dir dbt --profiles-dir dbt"
    assert Path(task.cwd) == REPO  # the checkout holding conf/, dbt/ and .venv-dbt
    assert task.append_env is True
    assert task.env == {
        "NORTHSTAR_ENV": "prod",
        "NORTHSTAR_SNOWFLAKE_ACCOUNT": "northstar-prod",
        "NORTHSTAR_SNOWFLAKE_DATABASE": "NORTHSTAR_PROD",
        "NORTHSTAR_SNOWFLAKE_SCHEMA": "ANALYTICS",
        "NORTHSTAR_SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
        "NORTHSTAR_SNOWFLAKE_ROLE": "PUBLISHER",
    }  # no credentials: the dbt profile resolves those
    callbacks = task.on_failure_callback
    assert [type(c) for c in (callbacks if isinstance(callbacks, list) else [callbacks])] == [
        factory.FailureAlert
    ]  # the same SNS (and Slack) alert as every other task
    assert task.retries == pipelines.defaults.retries
    assert task.retry_exponential_backoff


def test_a_successful_publish_records_asset_events_and_queues_the_dbt_dag(airflow_db, stack, monkeypatch):
    monkeypatch.setenv("NORTHSTAR_CONF_DIR", str(stack["conf"]))
    monkeypatch.setenv("NORTHSTAR_ENV", "test")  # the DAG folder, as dag.test() syncs it, is the test env's
    _sync_dag_folder_to_db()
    # what `airflow dags unpause northstar_dbt` does: Airflow queues no runs for a paused DAG
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == "northstar_dbt").values(is_paused=False))
        session.execute(AssetDagRunQueue.__table__.delete())
    dag = load_from(stack["conf"], factory.source_dags, "test")["northstar_shop_db"]

    run = dag.test()  # moto finishes the cycle's EMR job run with SUCCESS

    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    uris = _gold_uris("test")
    assert _asset_events(run) == sorted(uris.values())  # one event per published gold table
    with create_session() as session:
        queued = session.scalars(
            select(AssetModel.uri)
            .join(AssetDagRunQueue, AssetDagRunQueue.asset_id == AssetModel.id)
            .where(AssetDagRunQueue.target_dag_id == "northstar_dbt")
        )
        assert sorted(queued) == sorted(uris[n] for n in FINANCE_MART_INPUTS)
        # the scheduler's own query: the dbt DAG's condition (all three updated) is met, a run is due
        _, triggered = DagModel.dags_needing_dagruns(session)
        assert "northstar_dbt" in triggered
        session.rollback()  # release what dags_needing_dagruns locked; create no run here


def test_the_dbt_dag_runs_its_configured_command_in_the_working_dir(airflow_db, stack, monkeypatch, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(stack["conf"], conf)
    pipelines = yaml.safe_load((conf / "orchestration" / "pipelines.yaml").read_text())
    # a trivial stand-in for dbt, through configuration: the task runs `echo build --project-dir dbt ...`
    pipelines["dbt"].update(executable="echo", working_dir=str(tmp_path))
    (conf / "orchestration" / "pipelines.yaml").write_text(yaml.safe_dump(pipelines))
    monkeypatch.setenv("NORTHSTAR_CONF_DIR", str(conf))
    monkeypatch.setenv("NORTHSTAR_ENV", "test")
    dag = load_from(conf, factory.dbt_dag, "test")["northstar_dbt"]

    run = dag.test()

    assert str(run.state) in ("success", "DagRunState.SUCCESS")
    with create_session() as session:
        output = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == "northstar_dbt",
                XComModel.run_id == run.run_id,
                XComModel.task_id == "dbt_build",
                XComModel.key == "return_value",
            )
        )
    assert output == "build --project-dir dbt --profiles-dir dbt"  # BashOperator: the last line
    assert _messages(stack) == []
