"""moto's server as the S3 + DynamoDB that Delta's DynamoDB commit coordinator talks to (tests and the bench).

One correction to moto 5.2.5, not a mock: a legacy `AttributeUpdates` PUT of a BOOL is stored as the string
"True" (moto/dynamodb/models/dynamo_type.py, "TODO deal with other types"); real DynamoDB stores a BOOL. The
coordinator sets `hasAcceptedCommits` that way and fails reading it back, so `bool_updates_kept` stores the
BOOL as DynamoDB does while it is active.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.dynamodb.models.dynamo_type import DynamoType, Item

REGION = (
    "us-east-1"  # the AWS SDK v1 signs for us-east-1 at a 127.0.0.1 endpoint; boto3 must read that region
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def bool_updates_kept() -> Iterator[None]:
    original = Item.update_with_attribute_updates

    def keep_bool(self, attribute_updates):
        rest = {}
        for name, update in attribute_updates.items():
            value = update.get("Value", {})
            if update.get("Action", "PUT") == "PUT" and set(value) == {"BOOL"}:
                self.attrs[name] = DynamoType(value)
            else:
                rest[name] = update
        original(self, rest)

    Item.update_with_attribute_updates = keep_bool
    try:
        yield
    finally:
        Item.update_with_attribute_updates = original


def point_s3a_at(spark, endpoint: str) -> None:
    """s3a:// of this session goes to moto at `endpoint` (path style, test credentials)."""
    hadoop = spark._jsc.hadoopConfiguration()
    for key, value in {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": REGION,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": "testing",
        "fs.s3a.secret.key": "testing",
        "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "fs.s3a.change.detection.mode": "none",
    }.items():
        hadoop.set(key, value)


def give_coordinator_test_credentials(spark, clear: bool = False) -> None:
    """What com.amazonaws.auth.SystemPropertiesCredentialsProvider hands the coordinator's client."""
    system = spark._jvm.java.lang.System
    for key in ("aws.accessKeyId", "aws.secretKey"):
        if clear:
            system.clearProperty(key)
        else:
            system.setProperty(key, "testing")


def client(name: str, endpoint: str):
    return boto3.client(
        name,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
