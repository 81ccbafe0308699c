"""Packaging for EMR Serverless: a real venv-pack archive of a real venv with the project, uploaded to moto's S3.

The requirement set is reduced to nothing but the project (its dependencies are installed by the full build,
measured in docs/orchestration.md): the code path is the same, only the pip downloads are skipped.
"""

from __future__ import annotations

import json
import tarfile

import boto3
import pytest
from moto import mock_aws

from northstar.orchestration.emr import ARCHIVE_NAME
from northstar.orchestration.package import REPO, build, runtime_requirements, upload


def test_runtime_requirements_leave_spark_to_emr():
    names = {r.split("==")[0] for r in runtime_requirements()}
    assert {"pydantic", "pyyaml", "boto3", "tenacity", "delta-spark"} <= names
    assert not names & {"pyspark", "py4j", "apache-airflow", "pytest", "moto"}


def test_build_and_upload_a_release(tmp_path):
    out = tmp_path / "release"
    manifest = build(out, "1.0.0-test", [], REPO / "conf", REPO / ".jars")

    assert (out / "VERSION").read_text() == "1.0.0-test\n"
    with tarfile.open(out / ARCHIVE_NAME) as archive:
        names = set(archive.getnames())
    assert "bin/python" in names
    assert "northstar-conf/sources/shop_db.yaml" in names
    assert any(n.endswith("site-packages/northstar/orchestration/emr.py") for n in names)
    assert not [
        n for n in names if "site-packages/northstar/dev/" in n
    ]  # demo, benchmarks, simulators stay out
    assert "jobs/extract.py" in manifest["files"]
    assert "jars/postgresql-42.7.4.jar" in manifest["files"]
    assert json.loads((out / "manifest.json").read_text())["version"] == "1.0.0-test"

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="northstar-test-artifacts")
        uris = upload(out, "s3://northstar-test-artifacts/releases", "1.0.0-test", s3)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="northstar-test-artifacts")["Contents"]}
        with pytest.raises(FileExistsError, match="releases are immutable"):
            upload(out, "s3://northstar-test-artifacts/releases", "1.0.0-test", s3)
    prefix = "releases/1.0.0-test/"
    assert f"{prefix}{ARCHIVE_NAME}" in keys
    assert f"{prefix}jobs/silver_merge.py" in keys
    assert f"{prefix}manifest.json" in keys
    assert len(uris) == len(keys)
