"""The CloudFormation templates lint clean offline (cfn-lint) and match conf: retention days, names, encryption."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cfnlint.decode import decode

from northstar.config import load_env

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((REPO / "infra" / "cloudformation").glob("*.yaml"))
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")
RETENTION = yaml.safe_load((REPO / "conf" / "infra" / "retention.yaml").read_text())


def load(path: Path) -> dict:
    template, problems = decode(str(path))
    assert not problems, problems
    return template


def buckets(template: dict) -> dict[str, dict]:
    return {n: r["Properties"] for n, r in template["Resources"].items() if r["Type"] == "AWS::S3::Bucket"}


def test_every_template_passes_cfn_lint():
    assert TEMPLATES
    done = subprocess.run(
        [CFN_LINT, *map(str, TEMPLATES)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_rejects_a_broken_template(tmp_path):
    # the check can fail: a lifecycle rule with a misspelled property is an error
    broken = (
        (REPO / "infra" / "cloudformation" / "northstar.yaml")
        .read_text()
        .replace("ExpirationInDays: 90", "ExpirationDays: 90")
    )
    (tmp_path / "broken.yaml").write_text(broken)
    done = subprocess.run(
        [CFN_LINT, str(tmp_path / "broken.yaml")], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "ExpirationDays" in done.stdout


def test_lifecycle_days_equal_the_retention_figures():
    props = buckets(load(REPO / "infra" / "cloudformation" / "northstar.yaml"))
    rules = {n: p["LifecycleConfiguration"]["Rules"] for n, p in props.items()}
    assert rules["LandingBucket"][0]["ExpirationInDays"] == RETENTION["landing_days"]
    assert rules["QuarantineBucket"][0]["ExpirationInDays"] == RETENTION["quarantine_days"]
    lake = rules["LakeBucket"][0]
    assert lake["NoncurrentVersionExpiration"]["NoncurrentDays"] == RETENTION["curated_max_days"]
    # no rule may delete current lake objects (Delta files) before the curated minimum, or at all
    assert all(
        "ExpirationInDays" not in r or r["ExpirationInDays"] >= RETENTION["curated_min_days"]
        for r in rules["LakeBucket"]
    )
    assert rules["ArtifactsBucket"][0]["ExpirationInDays"] == RETENTION["logs_days"]
    assert 90 <= RETENTION["landing_days"] <= RETENTION["quarantine_days"] <= 365
    assert 730 <= RETENTION["curated_min_days"] <= RETENTION["curated_max_days"] <= 2555


def test_every_bucket_is_encrypted_with_kms_and_private():
    for name, props in buckets(load(REPO / "infra" / "cloudformation" / "northstar.yaml")).items():
        rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0][
            "ServerSideEncryptionByDefault"
        ]
        assert rule["SSEAlgorithm"] == "aws:kms", name
        assert all(props["PublicAccessBlockConfiguration"].values()), name


@pytest.mark.parametrize("env_name", ["dev", "staging", "prod"])
def test_env_files_name_what_the_template_creates(env_name):
    template = load(REPO / "infra" / "cloudformation" / "northstar.yaml")
    env = load_env(env_name)

    def named(resource: str, field: str) -> str:
        value = template["Resources"][resource]["Properties"][field]
        return value["Fn::Sub"].replace("${Env}", env_name)

    assert env.landing == f"s3://{named('LandingBucket', 'BucketName')}"
    assert env.lake == f"s3://{named('LakeBucket', 'BucketName')}"
    assert env.quarantine == f"s3://{named('QuarantineBucket', 'BucketName')}"
    assert env.emr.artifacts.startswith(f"s3://{named('ArtifactsBucket', 'BucketName')}/")
    assert env.emr.log_uri == f"s3://{named('ArtifactsBucket', 'BucketName')}/logs"
    assert env.delta_commit_coordinator.dynamodb_table == named("DeltaCommitsTable", "TableName")
    assert env.emr.execution_role_arn.endswith(":role/" + named("JobRole", "RoleName"))
    assert env.alerts.sns_topic_arn.endswith(":" + named("AlertsTopic", "TopicName"))
    secret_names = {
        named(n, "Name")
        for n, r in template["Resources"].items()
        if r["Type"] == "AWS::SecretsManager::Secret"
    }
    referenced = {
        ref.split(":", 1)[1].split("#")[0]
        for ref in [
            *env.secrets.values(),
            env.alerts.slack_webhook,
            env.snowflake.user,
            env.snowflake.password,
        ]
    }
    assert referenced <= secret_names


def test_commit_coordinator_table_has_the_key_and_permissions_delta_uses():
    resources = load(REPO / "infra" / "cloudformation" / "northstar.yaml")["Resources"]
    table = resources["DeltaCommitsTable"]["Properties"]
    # io.delta.dynamodbcommitcoordinator keys its one item per Delta table by `tableId` (a string)
    assert table["KeySchema"] == [{"AttributeName": "tableId", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "tableId", "AttributeType": "S"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    statements = resources["JobRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    (grant,) = [s for s in statements if s.get("Sid") == "DeltaCommitCoordinator"]
    assert set(grant["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DescribeTable",
    }
    assert grant["Resource"] == {"Fn::GetAtt": ["DeltaCommitsTable", "Arn"]}
