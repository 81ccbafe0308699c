"""Two writers committing at once to one Delta table on S3, through Delta's DynamoDB commit coordinator.

Real components: Spark + Delta 4.0 (the coordinator client is Delta's own, io.delta.dynamodbcommitcoordinator,
on the AWS SDK v1), tables on s3a:// and the coordinator's DynamoDB table both on moto's server on 127.0.0.1.
One thing in moto is corrected, not mocked: moto 5.2.5 stores a legacy `AttributeUpdates` PUT of a BOOL as a
string, which real DynamoDB does not; the coordinator updates `hasAcceptedCommits` that way, so
`_moto_keeps_bool_updates` (tests/moto_aws.py) stores the BOOL as DynamoDB does.

The writers are threads in the one test Spark session: each runs its own Delta transactions, so their commits
race exactly as two EMR Serverless applications' would; the coordinator decides every version by a conditional
DynamoDB update, and the loser of a race re-tries at the next version.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict

import pytest
from moto.server import ThreadedMotoServer

from northstar.config.env import CommitCoordinatorSpec
from northstar.orchestration.coordinated_commits import (
    ALREADY,
    CONVERTED,
    NOT_COORDINATED,
    NOT_CREATED,
    RELEASED,
    CoordinatorConflict,
    coordinate_table,
    coordinator_of,
    release_table,
    table_properties,
)
from northstar.spark import get_spark
from tests.helpers.envs import make_env
from tests.helpers.moto_aws import (
    bool_updates_kept,
    client,
    free_port,
    give_coordinator_test_credentials,
    point_s3a_at,
)
from tests.helpers.races import race

BUCKET = "ns-concurrent"  # a bucket no other test uses: s3a caches one FileSystem per bucket
DDB_TABLE = "northstar-test-delta-commits"
COMMITS_PER_WRITER = 2
WRITERS = ("scheduled", "backfill")


@pytest.fixture
def _moto_keeps_bool_updates():
    with bool_updates_kept():
        yield


@pytest.fixture(scope="module")
def aws(spark):
    """moto (S3 + DynamoDB) on 127.0.0.1, s3a pointed at it, the coordinator's client given test credentials."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    point_s3a_at(spark, endpoint)
    give_coordinator_test_credentials(spark)
    clients = {name: client(name, endpoint) for name in ("s3", "dynamodb")}
    clients["s3"].create_bucket(Bucket=BUCKET)
    spec = CommitCoordinatorSpec(
        dynamodb_table=DDB_TABLE,
        region="us-east-1",
        endpoint=endpoint,
        credentials_provider="com.amazonaws.auth.SystemPropertiesCredentialsProvider",
    )
    for key, value in spec.submit_settings().items():  # the client's credentials provider class
        spark.conf.set(key, value)
    yield spec, clients
    for key in spec.submit_settings():
        spark.conf.unset(key)
    give_coordinator_test_credentials(spark, clear=True)
    server.stop()


@pytest.fixture
def coordinated_session(spark, aws, _moto_keeps_bool_updates, tmp_path):
    """The test session as get_spark leaves it for an env with `delta_commit_coordinator:`; undone afterwards."""
    spec, clients = aws
    env = make_env(tmp_path).model_copy(update={"delta_commit_coordinator": spec})
    assert get_spark(env) is spark  # the one session, now with the env's coordinator settings
    settings = spec.spark_settings()
    assert {key: spark.conf.get(key) for key in settings} == settings
    yield spec, clients
    for key in settings:
        if key not in spec.submit_settings():  # the credentials provider belongs to the `aws` fixture
            spark.conf.unset(key)


def coordinator_entry(dynamodb, path: str) -> dict:
    items = [
        i
        for i in dynamodb.scan(TableName=DDB_TABLE)["Items"]
        if i["path"]["S"].removeprefix("file:") == path  # a local table is stored as file:/...
    ]
    assert len(items) == 1, items  # one DynamoDB item per Delta table
    return items[0]


def history(spark, path: str) -> list[tuple[int, str]]:
    rows = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operation").collect()
    return sorted((r.version, r.operation) for r in rows)


def log_files(s3, prefix: str) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listing
    }


def test_two_writers_commit_at_once_and_every_commit_lands_once(spark, coordinated_session):
    spec, clients = coordinated_session
    path = f"s3a://{BUCKET}/silver/concurrent/orders"
    # no coordinator property given: the session defaults (what get_spark sets from the env file) coordinate it;
    # the change data feed is on, as on bronze (silver reads bronze's)
    spark.sql(
        f"CREATE TABLE delta.`{path}` (writer string, n int) USING DELTA "
        "TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')"
    )
    assert coordinator_of(table_properties(spark, path)) == (
        "dynamodb",
        {"dynamoDBTableName": DDB_TABLE, "dynamoDBEndpoint": spec.endpoint},
    )
    start, errors = threading.Barrier(len(WRITERS)), []

    def write(writer: str) -> None:
        start.wait()  # both begin together, so their commits race
        try:
            for n in range(COMMITS_PER_WRITER):
                spark.createDataFrame([(writer, n)], "writer string, n int").write.format("delta").mode(
                    "append"
                ).save(path)
        except Exception as err:  # noqa: BLE001 - asserted below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(w,)) for w in WRITERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)

    assert errors == []
    commits = len(WRITERS) * COMMITS_PER_WRITER
    rows = sorted((r.writer, r.n) for r in spark.read.format("delta").load(path).collect())
    assert rows == sorted((w, n) for w in WRITERS for n in range(COMMITS_PER_WRITER))  # none lost, none twice
    assert history(spark, path) == [(0, "CREATE TABLE")] + [(v, "WRITE") for v in range(1, commits + 1)]
    changes = (
        spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 1).load(path)
    )
    assert sorted((r._commit_version, r._change_type) for r in changes.collect()) == [
        (v, "insert") for v in range(1, commits + 1)
    ]  # one commit per append, each at its own version, readable as a change feed
    entry = coordinator_entry(clients["dynamodb"], path)
    assert int(entry["tableVersion"]["N"]) == commits  # DynamoDB decided the last version
    assert entry["hasAcceptedCommits"] == {"BOOL": True}
    assert entry["acceptingCommits"] == {"BOOL": True}
    assert entry["commits"] == {"L": []}  # every ratified commit was backfilled to <version>.json
    # Every version 1..N was first written as a uniquely named staged commit and ratified by DynamoDB, then
    # backfilled to <version>.json with the winner's content; a race's loser left its own staged file behind.
    key_prefix = "silver/concurrent/orders/_delta_log/"
    staged = defaultdict(list)
    for name, body in log_files(clients["s3"], key_prefix + "_staged_commits/").items():
        if name.endswith(".json"):
            staged[int(name.split(".")[0])].append(body)
    backfilled = {
        int(name.split(".")[0]): body
        for name, body in log_files(clients["s3"], key_prefix).items()
        if "/" not in name and name.endswith(".json")
    }
    assert sorted(staged) == list(range(1, commits + 1))
    assert sorted(backfilled) == list(range(0, commits + 1))
    assert all(backfilled[v] in staged[v] for v in range(1, commits + 1))
    refused = sum(len(bodies) for bodies in staged.values()) - commits
    print(f"{commits} commits from {len(WRITERS)} writers; {refused} lost a race and were re-tried")


def test_conflicting_merge_under_the_coordinator_retries_and_lands_once(
    spark, coordinated_session, tmp_path, caplog
):
    _, clients = coordinated_session
    path = str(tmp_path / "merged")  # local: this one is about the retry, the S3 path is covered above
    # the race of test_merge_conflicts (a MERGE held open while a DELETE of the same file commits), here with
    # both commits decided by DynamoDB; northstar.conflicts retries the refused MERGE
    _, outcome = race(spark, tmp_path, merge_attempts=5, path=path)

    assert "error" not in outcome, outcome.get("error")
    assert {r.id: r.v for r in spark.read.format("delta").load(path).collect()} == {1: 2, 3: 1}
    assert [op for _, op in history(spark, path)] == ["WRITE", "DELETE", "MERGE"]
    assert "concurrent Delta commit, retry 1" in caplog.text
    assert int(coordinator_entry(clients["dynamodb"], path)["tableVersion"]["N"]) == 2


@pytest.mark.usefixtures("_moto_keeps_bool_updates")
def test_an_existing_table_is_converted_once_and_can_be_released(spark, aws, tmp_path):
    spec, clients = aws
    path = str(tmp_path / "existing")  # local: the conversion is the same on any file system
    assert coordinate_table(spark, path, spec) == NOT_CREATED
    spark.createDataFrame([(1,)], "id int").write.format("delta").save(path)  # no coordinator: file system
    assert coordinator_of(table_properties(spark, path)) is None

    assert coordinate_table(spark, path, spec) == CONVERTED
    assert coordinate_table(spark, path, spec) == ALREADY
    spark.createDataFrame([(2,)], "id int").write.format("delta").mode("append").save(path)

    assert sorted(r.id for r in spark.read.format("delta").load(path).collect()) == [1, 2]
    assert (
        int(coordinator_entry(clients["dynamodb"], path)["tableVersion"]["N"]) == 2
    )  # the append went via DynamoDB
    elsewhere = spec.model_copy(update={"dynamodb_table": "another-table"})
    with pytest.raises(CoordinatorConflict, match="DROP FEATURE 'coordinatedCommits-preview'"):
        coordinate_table(spark, path, elsewhere)
    assert (
        json.loads(table_properties(spark, path)["delta.coordinatedCommits.commitCoordinatorConf-preview"])[
            "dynamoDBTableName"
        ]
        == DDB_TABLE
    )

    assert release_table(spark, path) == RELEASED  # DROP FEATURE: back to file-system commits
    assert coordinator_of(table_properties(spark, path)) is None
    assert release_table(spark, path) == NOT_COORDINATED
    spark.createDataFrame([(3,)], "id int").write.format("delta").mode("append").save(path)
    assert sorted(r.id for r in spark.read.format("delta").load(path).collect()) == [1, 2, 3]
    assert coordinator_entry(clients["dynamodb"], path)["acceptingCommits"] == {"BOOL": False}
    assert [op for _, op in history(spark, path)][-3:] == ["UNSET TBLPROPERTIES", "DROP FEATURE", "WRITE"]
