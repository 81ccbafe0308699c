"""Secret references: env variables locally, AWS Secrets Manager (moto's in-process mock) in the cloud."""

from __future__ import annotations

import json
import shutil

import boto3
import pytest
import yaml
from moto import mock_aws

from northstar.config import ConfigError, load_env
from northstar.secrets import Secret, SecretError, check_reference, resolve
from tests.helpers.conf import load_from
from tests.helpers.envs import CONF


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


@pytest.mark.parametrize("pasted", [918273645, 91827.3645, True, ["918273645"]])
@pytest.mark.parametrize(
    "field", [("pii_token_key",), ("snowflake", "password"), ("snowflake", "user"), ("secrets", "partner")]
)
def test_a_secret_pasted_as_a_number_or_list_is_refused_without_echoing_it(tmp_path, field, pasted):
    """YAML turns an unquoted `password: 918273645` into an int: pydantic's own type error would print it."""
    shutil.copytree(CONF, tmp_path / "conf")
    path = tmp_path / "conf" / "env" / "local.yaml"
    env = yaml.safe_load(path.read_text())
    *parents, last = field
    holder = env
    for part in parents:
        holder = holder.setdefault(part, {})
    holder[last] = pasted
    path.write_text(yaml.safe_dump(env))
    with pytest.raises(ConfigError, match="Never put the secret itself in config") as err:
        load_from(tmp_path / "conf", load_env, "local")
    assert "918273645" not in str(err.value)
    assert "91827" not in str(err.value)
    assert ".".join(field) in str(err.value)


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
