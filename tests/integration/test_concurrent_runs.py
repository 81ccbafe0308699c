"""Two runs of one table at once, in two OS processes (two JVMs): one wins, the other changes nothing and says so.

Each race starts two `northstar run` processes for the same layer of marketplace.orders together; the run lease
(lake/run_lock.py) lets one through. The loser exits 4 with one line, the last on stderr (after the JVM's start-up
lines, as both started Spark before either took the lease); or, when the second starts after the first ended,
both complete and the second is a noop. A run started while the lease is held says its one line alone. Either way the tables
equal one clean run's, and the ledger's counts match them. On a local path the lease is a file under flock; on
moto's S3 it is an item in the commit coordinator's DynamoDB table (the Delta tables commit through it too).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality
from moto.server import ThreadedMotoServer
from pyspark.sql import functions as F

from northstar.bronze.runner import run_bronze
from northstar.config import EnvConfig, load_env
from northstar.config.env import CREDENTIALS_PROVIDER_CONF, CommitCoordinatorSpec
from northstar.dev.generate.marketplace import generate_feed
from northstar.lake import run_lock, tables
from northstar.lake.run_lock import RunInProgress
from northstar.observability import alerts
from northstar.quality import results as check_results
from northstar.quality.results import CheckResult
from northstar.silver.pipeline import run_source
from tests.helpers.conf import load_from
from tests.helpers.envs import make_env
from tests.helpers.moto_aws import (
    REGION,
    bool_updates_kept,
    client,
    free_port,
    give_coordinator_test_credentials,
)
from tests.helpers.processes import conf_with_env, finish, local_env, start_run

ENV = "conc"
RUN_SPECIFIC = ["_run_id", "_ingest_time", "_ingest_date"]
BUSY = re.compile(
    r"^another run of marketplace\.orders is in progress \(run id (?P<run>(bronze|silver)-\S+)\)$"
)
COUNTS = ["records_read", "records_written", "records_duplicate", "records_quarantined"]


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    root = tmp_path_factory.mktemp("feed")
    return generate_feed(root, orders=20, files=2, seed=3)


def race(conf: Path, layer: str, extra_env: dict[str, str] | None = None) -> str | None:
    """Two runs of `layer` of marketplace.orders at once; the loser's holder run id (None: both completed)."""
    args = ("--source", "marketplace", "--table", "orders", "--layer", layer)
    runs = [start_run(conf, ENV, *args, extra_env=extra_env) for _ in range(2)]
    results = [finish(run) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 4]), results
    for _code, _, err in results:
        assert "Traceback" not in err, err
    if codes == [0, 0]:
        return None
    _, _, err = next(r for r in results if r[0] == 4)
    ours = err.rstrip("\n").splitlines()[-1]  # the lines before it are the JVM's start-up lines
    found = BUSY.match(ours)
    assert found, err
    assert err.count("another run of") == 1
    return found["run"]


def ledger_rows(spark, env: EnvConfig, layer: str) -> list:
    path = tables.RUN_LEDGER.path(env)
    return spark.read.format("delta").load(path).where(F.col("layer") == layer).collect()


def assert_one_run_did_the_work(spark, env: EnvConfig, clean: EnvConfig, layer: str, holder: str | None):
    rows = ledger_rows(spark, env, layer)
    worked = [r for r in rows if r.status == "success"]
    assert [r.status for r in rows if r not in worked] in ([], ["noop"]), rows  # the loser wrote no row
    assert len(worked) == 1
    if holder is not None:
        assert worked[0].run_id == holder  # the loser named the run that did the work
    (reference,) = ledger_rows(spark, clean, layer)
    assert [worked[0][c] for c in COUNTS] == [reference[c] for c in COUNTS]
    return worked[0]


def comparable(spark, path: str):
    frame = spark.read.format("delta").load(path).drop(*RUN_SPECIFIC)
    return frame.withColumn("_landing_file", F.element_at(F.split("_landing_file", "/"), -1))


def assert_equal_tables(spark, env: EnvConfig, clean: EnvConfig, table) -> None:
    assert_df_equality(
        comparable(spark, table.path(clean)),
        comparable(spark, table.path(env)),
        ignore_row_order=True,
        ignore_column_order=True,
        ignore_nullable=True,
    )


def clean_run(spark, tmp_path: Path, feed, marketplace) -> EnvConfig:
    """One run of bronze then silver on its own lake: what the races must leave."""
    clean = make_env(tmp_path / "clean")
    deliver(feed, clean, marketplace)
    run_source(spark, clean, marketplace, tables=["orders"])
    return clean


def deliver(feed, env: EnvConfig, marketplace) -> None:
    landing = Path(tables.landing_folder(env, marketplace.tables["orders"]))
    landing.mkdir(parents=True, exist_ok=True)
    for path in feed.files["orders"]:
        shutil.copy(path, landing)


def check_race_outcome(spark, env, clean, holders) -> None:
    bronze = assert_one_run_did_the_work(spark, env, clean, "bronze", holders["bronze"])
    silver = assert_one_run_did_the_work(spark, env, clean, "silver", holders["silver"])
    for table in (tables.bronze("marketplace", "orders"), tables.silver("marketplace", "orders")):
        assert_equal_tables(spark, env, clean, table)
    bronze_rows = spark.read.format("delta").load(tables.bronze("marketplace", "orders").path(env))
    assert bronze.records_written == bronze_rows.where("_corrupt_record IS NULL").count()
    assert (
        silver.records_written
        == spark.read.format("delta").load(tables.silver("marketplace", "orders").path(env)).count()
    )


def test_two_processes_run_one_table_at_once_on_a_local_lake(spark, tmp_path, feed, marketplace):
    clean = clean_run(spark, tmp_path, feed, marketplace)
    root = tmp_path / "raced"
    conf = conf_with_env(tmp_path, ENV, local_env(root, lease_seconds=30))
    env = load_from(conf, load_env, ENV)
    deliver(feed, env, marketplace)

    holders = {layer: race(conf, layer) for layer in ("bronze", "silver")}

    print(f"local race: losers named {holders}")
    check_race_outcome(spark, env, clean, holders)
    assert not [
        p for p in Path(env.lake, "_ops", "run_leases").glob("*.json") if '"released": false' in p.read_text()
    ]


def test_a_run_started_while_the_lease_is_held_says_one_line_and_starts_no_spark(tmp_path):
    root = tmp_path / "held"
    conf = conf_with_env(tmp_path, ENV, local_env(root, lease_seconds=30))
    env = EnvConfig(name=ENV, **local_env(root, lease_seconds=30))
    store = run_lock.store_for(env)
    assert store is not None
    key = run_lock.lease_key(env, "bronze", "marketplace", "orders")
    assert store.replace(key, run_lock.Lease("bronze-holder", time.time() + 3600), expected=None)

    run = start_run(conf, ENV, "--source", "marketplace", "--table", "orders", "--layer", "bronze")
    code, out, err = finish(run)

    assert (code, out) == (4, "")
    assert err == "another run of marketplace.orders is in progress (run id bronze-holder)\n"  # no JVM lines
    assert [p.name for p in Path(env.lake).iterdir()] == ["_ops"]  # nothing written, no ledger row
    held = store.read(key)
    assert held is not None
    assert (held.run_id, held.released) == ("bronze-holder", False)  # still the holder's


def test_a_killed_run_leaves_a_lease_that_expires_and_is_taken_over(
    spark, tmp_path, feed, marketplace, caplog
):
    root = tmp_path / "killed"
    conf = conf_with_env(tmp_path, ENV, local_env(root, lease_seconds=6))
    env = EnvConfig(name=ENV, **local_env(root, lease_seconds=6))
    deliver(feed, env, marketplace)
    lease_file = Path(
        env.lake, "_ops", "run_leases", f"{run_lock.lease_key(env, 'bronze', 'marketplace', 'orders')}.json"
    )
    run = start_run(conf, ENV, "--source", "marketplace", "--table", "orders", "--layer", "bronze")
    deadline = time.monotonic() + 120
    while not lease_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(run.pid, signal.SIGKILL)  # the run dies holding its lease: nothing gives it back
    run.communicate()
    killed = run_lock.FileLeaseStore(lease_file.parent).read(lease_file.stem)
    assert killed is not None
    assert not killed.released

    with pytest.raises(
        RunInProgress,
        match=f"^another run of marketplace.orders is in progress \\(run id {killed.run_id}\\)$",
    ):
        run_bronze(spark, env, marketplace, "orders")
    time.sleep(max(0.0, killed.expires_at - time.time()) + 0.5)
    with caplog.at_level(logging.WARNING, logger="northstar.lake.run_lock"):
        entry = run_bronze(spark, env, marketplace, "orders")

    assert entry.status == "success"
    assert entry.details["lease_taken_over"] == 1
    assert f"took over the expired lease of run {killed.run_id}" in caplog.text
    assert entry.records_read == feed.lines["orders"]
    assert run_lock.FileLeaseStore(lease_file.parent).read(lease_file.stem).released


@pytest.fixture
def moto_aws(spark):
    """moto (S3 + DynamoDB) on 127.0.0.1 for the processes; the test session's s3a and coordinator client too."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    yield endpoint
    server.stop()


S3_SETTINGS = {
    "spark.hadoop.fs.s3a.endpoint.region": REGION,
    "spark.hadoop.fs.s3a.path.style.access": "true",
    "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
    "spark.hadoop.fs.s3a.access.key": "testing",
    "spark.hadoop.fs.s3a.secret.key": "testing",
    "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
    "spark.hadoop.fs.s3a.change.detection.mode": "none",
}
AWS_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECRET_KEY": "testing",
}


def test_two_processes_run_one_table_at_once_on_s3_through_the_coordinator(
    spark, tmp_path, feed, marketplace, moto_aws
):
    s3, dynamodb = client("s3", moto_aws), client("dynamodb", moto_aws)
    for bucket in ("nsc-landing", "nsc-lake", "nsc-quarantine"):
        s3.create_bucket(Bucket=bucket)
    dynamodb.create_table(  # as infra/cloudformation does: the coordinator's table, key tableId
        TableName="nsc-delta-commits",
        KeySchema=[{"AttributeName": "tableId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "tableId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for path in feed.files["orders"]:
        s3.upload_file(str(path), "nsc-landing", f"marketplace/orders/{path.name}")
    coordinator = CommitCoordinatorSpec(
        dynamodb_table="nsc-delta-commits",
        region=REGION,
        endpoint=moto_aws,
        credentials_provider="com.amazonaws.auth.EnvironmentVariableCredentialsProvider",
    )
    env_file = {
        "profile": "local",
        "landing": "s3a://nsc-landing",
        "lake": "s3a://nsc-lake",
        "quarantine": "s3a://nsc-quarantine",
        "spark": {
            "spark.master": "local[1]",
            "spark.driver.memory": "1g",
            "spark.hadoop.fs.s3a.endpoint": moto_aws,
            **S3_SETTINGS,
        },
        "delta_commit_coordinator": coordinator.model_dump(),
        "run_lease_seconds": 30,
    }
    conf = conf_with_env(tmp_path, ENV, env_file)
    env = EnvConfig(name=ENV, **env_file)
    clean = clean_run(spark, tmp_path, feed, marketplace)

    with bool_updates_kept():
        holders = {layer: race(conf, layer, extra_env=AWS_TEST_CREDENTIALS) for layer in ("bronze", "silver")}
        print(f"S3 race: losers named {holders}")
        hadoop = spark._jsc.hadoopConfiguration()
        for key, value in {"spark.hadoop.fs.s3a.endpoint": moto_aws, **S3_SETTINGS}.items():
            hadoop.set(key.removeprefix("spark.hadoop."), value)
        # this JVM started without the AWS_* variables: its coordinator client reads system properties instead
        give_coordinator_test_credentials(spark)
        spark.conf.set(CREDENTIALS_PROVIDER_CONF, "com.amazonaws.auth.SystemPropertiesCredentialsProvider")
        try:
            check_race_outcome(spark, env, clean, holders)
        finally:
            spark.conf.unset(CREDENTIALS_PROVIDER_CONF)
            give_coordinator_test_credentials(spark, clear=True)
    leases = [
        i
        for i in dynamodb.scan(TableName="nsc-delta-commits")["Items"]
        if i["tableId"]["S"].startswith(run_lock.LEASE_ITEM_PREFIX)
    ]
    assert sorted(i["tableId"]["S"] for i in leases) == [
        f"{run_lock.LEASE_ITEM_PREFIX}{ENV}.{layer}.marketplace.orders" for layer in ("bronze", "silver")
    ]
    assert all(i["released"] == {"BOOL": True} for i in leases)
    coordinated = [i for i in dynamodb.scan(TableName="nsc-delta-commits")["Items"] if "path" in i]
    assert any(
        "silver/marketplace/orders" in i["path"]["S"] for i in coordinated
    )  # Delta committed through it


def test_runs_of_two_tables_store_check_results_and_alerts_at_once(spark, tmp_path):
    """Bronze runs of two tables (different leases) may run together; both write the shared ops.check_results
    and ops.alerts, the first two even create them at once. Each write lands, once."""
    env = make_env(tmp_path)
    rounds, writers = 3, ("orders", "refunds")
    start, errors = threading.Barrier(len(writers)), []

    def write(table: str) -> None:
        try:
            for n in range(rounds):
                result = CheckResult(
                    run_id=f"bronze-{table}-{n}",
                    table_name=f"bronze.marketplace_{table}",
                    check_name="rescued_share.amount",
                    check_type="rescued_share",
                    severity="warn",
                    status="pass",
                    explanation="test",
                )
                start.wait(timeout=120)  # both commit each write at the same moment
                check_results.write(spark, env, [result])
                start.wait(timeout=120)
                alerts.send(env, alerts.Alert("test", result.table_name, result.run_id, "test"))
        except Exception as err:  # noqa: BLE001 - reported by the test
            errors.append(f"{type(err).__name__}: {str(err)[:600]}")
            start.abort()  # the other writer stops waiting

    threads = [threading.Thread(target=write, args=(t,)) for t in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)

    assert not errors, errors
    expected = sorted(f"bronze-{t}-{n}" for t in writers for n in range(rounds))
    stored = check_results.read(spark, env).select("run_id").collect()
    assert sorted(r.run_id for r in stored) == expected
    raised = spark.read.format("delta").load(tables.ALERTS.path(env)).select("run_id").collect()
    assert sorted(r.run_id for r in raised) == expected
