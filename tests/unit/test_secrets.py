"""Secret references: env variables locally, AWS Secrets Manager (moto's in-process mock) in the cloud."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from northstar.secrets import Secret, SecretError, check_reference, resolve


def test_env_reference_reads_the_variable(monkeypatch):
    monkeypatch.setenv("PARTNER_TOKEN", "s3cr3t-value")
    secret = resolve("env:PARTNER_TOKEN")
    assert secret.value == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(secret)
    assert "s3cr3t-value" not in str(secret)


def test_missing_env_variable_names_the_variable_not_a_value(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(SecretError, match="NOT_SET_ANYWHERE is not set"):
        resolve("env:NOT_SET_ANYWHERE")


@pytest.mark.parametrize("ref", ["hunter2", "env:", "vault:x", "secretsmanager:"])
def test_a_literal_or_unknown_reference_is_refused_without_repeating_it(ref):
    with pytest.raises(ValueError, match="Never put the secret itself in config") as err:
        check_reference(ref)
    assert ref not in str(err.value).replace("env:VARIABLE_NAME", "").replace("secretsmanager:<", "")


@mock_aws
def test_secretsmanager_reference_whole_and_json_key(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("secretsmanager", region_name="us-east-1")
    client.create_secret(
        Name="northstar/pg/orders", SecretString=json.dumps({"password": "pw-1", "user": "etl"})
    )
    client.create_secret(Name="northstar/partner", SecretString="tok-2")

    assert resolve("secretsmanager:northstar/partner", secretsmanager_client=client) == Secret(
        "secretsmanager:northstar/partner", "tok-2"
    )
    assert (
        resolve("secretsmanager:northstar/pg/orders#password", secretsmanager_client=client).value == "pw-1"
    )
    with pytest.raises(SecretError, match="not a JSON object with the key 'token'"):
        resolve("secretsmanager:northstar/pg/orders#token", secretsmanager_client=client)
    with pytest.raises(SecretError, match="could not read northstar/missing") as err:
        resolve("secretsmanager:northstar/missing", secretsmanager_client=client)
    assert "pw-1" not in str(err.value)
