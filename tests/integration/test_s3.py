"""Bronze and silver with every zone on S3 (s3a://), against moto's S3 server on 127.0.0.1.

moto stands in for Amazon S3, which this machine cannot reach; Spark talks to it through the same
hadoop-aws + AWS SDK v2 jars that production uses.
"""

from __future__ import annotations

import socket

import boto3
import pytest
from moto.server import ThreadedMotoServer

from northstar import ledger
from northstar.config import EnvConfig
from northstar.dev.generate.marketplace import generate_feed
from northstar.lake import tables
from northstar.silver.pipeline import run_source


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint(spark):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    hadoop = spark._jsc.hadoopConfiguration()
    for key, value in {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": "us-east-1",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": "testing",
        "fs.s3a.secret.key": "testing",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "fs.s3a.change.detection.mode": "none",
    }.items():
        hadoop.set(key, value)
    yield endpoint
    server.stop()


def test_bronze_and_silver_on_s3(spark, s3_endpoint, marketplace, tmp_path):
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for bucket in ("ns-landing", "ns-lake", "ns-quarantine"):
        s3.create_bucket(Bucket=bucket)
    truth = generate_feed(tmp_path, orders=40, files=2, seed=5)
    for path in truth.files["orders"]:
        s3.upload_file(str(path), "ns-landing", f"marketplace/orders/{path.name}")
    env = EnvConfig(
        name="s3test",
        profile="local",
        landing="s3a://ns-landing",
        lake="s3a://ns-lake",
        quarantine="s3a://ns-quarantine",
    )

    bronze, silver = run_source(spark, env, marketplace, tables=["orders"])

    assert bronze.records_read == truth.lines["orders"]
    assert bronze.balanced
    assert silver.balanced
    rows = spark.read.format("delta").load(tables.silver("marketplace", "orders").path(env)).collect()
    assert {r.order_id: r.status for r in rows} == {k: v["status"] for k, v in truth.orders.items()}
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket="ns-lake", Prefix="silver/marketplace/orders/")["Contents"]
    ]
    assert any(k.endswith(".json") and "_delta_log/" in k for k in keys)
    assert [e.status for e in run_source(spark, env, marketplace, tables=["orders"])] == ["noop", "noop"]
    assert ledger.read(spark, env).count() == 4
