"""The env's `delta_commit_coordinator:` section: the Spark settings and table properties it produces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from northstar.config import ConfigError, load_env
from northstar.config.env import CommitCoordinatorSpec
from northstar.orchestration.coordinated_commits import coordinate_lake
from northstar.orchestration.emr import spark_properties
from northstar.spark import local_jars
from tests.helpers.conf import load_from
from tests.helpers.envs import make_env

REPO = Path(__file__).resolve().parents[2]
CREDENTIALS = (
    "spark.databricks.delta.coordinatedCommits.commitCoordinator.dynamodb.awsCredentialsProviderName"
)


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_aws_envs_give_every_new_table_the_dynamodb_coordinator(env_name):
    spec = load_env(env_name).delta_commit_coordinator
    conf = json.dumps(
        {
            "dynamoDBTableName": f"northstar-{env_name}-delta-commits",
            "dynamoDBEndpoint": "https://dynamodb.eu-west-1.amazonaws.com",
        },
        separators=(",", ":"),
    )
    assert spec.table_properties() == {
        "delta.coordinatedCommits.commitCoordinator-preview": "dynamodb",
        "delta.coordinatedCommits.commitCoordinatorConf-preview": conf,
    }
    assert spec.spark_settings() == {
        "spark.databricks.delta.properties.defaults.coordinatedCommits.commitCoordinator-preview": "dynamodb",
        "spark.databricks.delta.properties.defaults.coordinatedCommits.commitCoordinatorConf-preview": conf,
        CREDENTIALS: "com.amazonaws.auth.DefaultAWSCredentialsProviderChain",
    }


def test_emr_job_runs_get_the_client_jars_and_credentials_but_no_json():
    env = load_env("prod")
    properties = spark_properties(env)
    release = "s3://northstar-prod-artifacts/releases/0.1.0"
    assert properties["spark.jars"].split(",") == [
        f"{release}/jars/postgresql-42.7.4.jar",
        f"{release}/jars/aws-java-sdk-core-1.12.262.jar",
        f"{release}/jars/aws-java-sdk-dynamodb-1.12.262.jar",
    ]
    assert properties[CREDENTIALS] == "com.amazonaws.auth.DefaultAWSCredentialsProviderChain"
    # the JSON conf reaches the session from the env file (get_spark), not through sparkSubmitParameters
    assert not any("{" in value for value in properties.values())


def test_the_coordinator_jars_load_only_when_needed(tmp_path):
    plain = make_env(tmp_path)
    coordinated = plain.model_copy(
        update={
            "delta_commit_coordinator": CommitCoordinatorSpec(dynamodb_table="t-commits", region="eu-west-1")
        }
    )
    sdk_v1 = lambda env: sorted(Path(j).name for j in local_jars(env) if "aws-java-sdk-" in j)  # noqa: E731
    assert sdk_v1(plain) == []
    assert sdk_v1(coordinated) == ["aws-java-sdk-core-1.12.262.jar", "aws-java-sdk-dynamodb-1.12.262.jar"]


def test_a_bad_coordinator_section_names_the_file_and_field(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    path = conf / "env" / "dev.yaml"
    data = yaml.safe_load(path.read_text())
    data["delta_commit_coordinator"]["region"] = "Ireland"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_from(conf, load_env, "dev")
    assert "dev.yaml" in str(err.value)
    assert "delta_commit_coordinator.region" in str(err.value)


def test_coordinate_commits_says_what_to_add_and_which_tables_exist(tmp_path):
    plain = make_env(tmp_path)
    with pytest.raises(ConfigError, match=r"conf/env/test.yaml: no delta_commit_coordinator section"):
        coordinate_lake(None, plain)
    coordinated = plain.model_copy(
        update={
            "delta_commit_coordinator": CommitCoordinatorSpec(dynamodb_table="t-commits", region="eu-west-1")
        }
    )
    with pytest.raises(ConfigError, match=r"--table silver\.nope: no such table in env test"):
        coordinate_lake(None, coordinated, ["silver.nope"])
