"""The Snowflake publish's pure parts: DDL from Spark schemas and the add-only rule, the MERGE text, the
lake <-> warehouse comparison, the production connector's options, and the env's snowflake / s3 sections."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from pydantic import ValidationError
from pyspark.sql import types as T

from northstar.config import load_source
from northstar.config.base import format_validation_error
from northstar.config.env import S3Spec, SnowflakeSpec
from northstar.gold.tables import GOLD
from northstar.models import orders as orders_model
from northstar.spark import s3_encryption
from northstar.warehouse import ddl, loaders, publish, reconcile
from northstar.warehouse.spark_connector import connector_options
from tests.helpers.envs import make_env

SCHEMA = T.StructType(
    [
        T.StructField("order_id", T.StringType()),
        T.StructField("order_date", T.DateType()),
        T.StructField("total_amount", T.DecimalType(18, 2)),
        T.StructField("item_count", T.IntegerType()),
        T.StructField("created_at", T.TimestampType()),
    ]
)
SPEC = dict(
    mode="snowflake", account="xy12345.eu-west-1", database="NORTHSTAR", warehouse="TRANSFORMING",
    role="PUBLISHER", user="env:SF_USER", password="secretsmanager:northstar/snowflake#password",
    stage_location="s3://northstar-test-lake/warehouse-stage", storage_integration="NORTHSTAR_TEST_STAGE",
)  # fmt: skip


def test_columns_from_a_gold_schema():
    assert ddl.columns_of(SCHEMA) == [
        ddl.Column("ORDER_ID", "VARCHAR"),
        ddl.Column("ORDER_DATE", "DATE"),
        ddl.Column("TOTAL_AMOUNT", "NUMBER(18,2)"),
        ddl.Column("ITEM_COUNT", "NUMBER(38,0)"),
        ddl.Column("CREATED_AT", "TIMESTAMP_NTZ"),
    ]
    assert (
        ddl.create_table("DB.S.T", ddl.columns_of(SCHEMA)[:1])
        == "CREATE TABLE IF NOT EXISTS DB.S.T (\n  ORDER_ID VARCHAR\n)"
    )


def test_information_schema_types_read_back_as_written():
    existing = [
        ddl.Column("ORDER_ID", ddl.normalise("TEXT")),
        ddl.Column("TOTAL_AMOUNT", ddl.normalise("NUMBER", 18, 2)),
    ]
    assert existing == ddl.columns_of(SCHEMA)[0:3:2]


def test_new_gold_columns_are_added_and_nothing_else_changes():
    wanted = ddl.columns_of(SCHEMA)
    assert ddl.evolve("DB.S.T", wanted[:3], wanted) == [
        "ALTER TABLE DB.S.T ADD COLUMN ITEM_COUNT NUMBER(38,0)",
        "ALTER TABLE DB.S.T ADD COLUMN CREATED_AT TIMESTAMP_NTZ",
    ]
    assert ddl.evolve("DB.S.T", wanted, wanted) == []


def test_dropped_or_retyped_column_is_refused_with_the_column_and_what_to_do():
    wanted = ddl.columns_of(SCHEMA)
    with pytest.raises(
        ddl.SchemaChangeRefused, match=r"DB.S.T refused: column\(s\) LEGACY_FLAG are no longer"
    ):
        ddl.evolve("DB.S.T", [*wanted, ddl.Column("LEGACY_FLAG", "BOOLEAN")], wanted)
    retyped = [ddl.Column("TOTAL_AMOUNT", "FLOAT") if c.name == "TOTAL_AMOUNT" else c for c in wanted]
    with pytest.raises(
        ddl.SchemaChangeRefused, match=r"TOTAL_AMOUNT \(FLOAT -> NUMBER\(18,2\)\) changed type.*new table"
    ):
        ddl.evolve("DB.S.T", retyped, wanted)


def test_merge_deletes_staged_deletes_updates_only_changed_rows_and_inserts_new_keys():
    cols = ddl.columns_of(SCHEMA)[:3]
    at = datetime(2026, 3, 2, 4, 5, 6, tzinfo=UTC)
    sql = publish.merge_statement("DB.S.T", "DB.S.T__STG_R1", cols, ("order_id",), run_id="publish-1", at=at)
    stamp = "CAST('2026-03-02 04:05:06' AS TIMESTAMP_NTZ)"
    assert sql == (
        "MERGE INTO DB.S.T t USING DB.S.T__STG_R1 s ON t.ORDER_ID = s.ORDER_ID "
        "WHEN MATCHED AND s._DELETED THEN DELETE "
        "WHEN MATCHED AND (t.ORDER_DATE IS DISTINCT FROM s.ORDER_DATE OR t.TOTAL_AMOUNT IS DISTINCT FROM "
        f"s.TOTAL_AMOUNT) THEN UPDATE SET ORDER_DATE = s.ORDER_DATE, TOTAL_AMOUNT = s.TOTAL_AMOUNT, _LOADED_AT = {stamp}, "
        "_RUN_ID = 'publish-1' "
        "WHEN NOT MATCHED AND NOT s._DELETED THEN INSERT (ORDER_ID, ORDER_DATE, TOTAL_AMOUNT, _LOADED_AT, _RUN_ID) "
        f"VALUES (s.ORDER_ID, s.ORDER_DATE, s.TOTAL_AMOUNT, {stamp}, 'publish-1')"
    )
    assert (
        publish.staging_name("fact_orders", "publish-20261125T0400Z-ab12")
        == "FACT_ORDERS__STG_PUBLISH_20261125T0400Z_AB12"
    )


def test_bulk_load_statements_name_the_stage_files_and_the_integration():
    spec = SnowflakeSpec(**SPEC)
    assert loaders.stage_url("s3a://b/gold") == "s3://b/gold/"
    assert loaders.stage_url("/data/stage") == "file:///data/stage/"
    assert loaders.create_stage_statement(spec) == (
        "CREATE OR REPLACE STAGE NORTHSTAR.NORTHSTAR_OPS.GOLD_STAGE URL = 's3://northstar-test-lake/warehouse-stage/' "
        "STORAGE_INTEGRATION = NORTHSTAR_TEST_STAGE FILE_FORMAT = (TYPE = PARQUET)"
    )
    files = [f"part-{i:05d}.parquet" for i in range(1001)]
    statements = loaders.copy_statements("DB.S.T__STG_R", "DB.OPS.GOLD_STAGE", "t__stg_r", files)
    assert len(statements) == 2  # Snowflake takes at most 1000 names in one FILES list
    assert statements[1] == (
        "COPY INTO DB.S.T__STG_R FROM @DB.OPS.GOLD_STAGE/t__stg_r/ FILES = ('part-01000.parquet') "
        "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE"
    )
    with pytest.raises(ValidationError, match="needs storage_integration"):
        SnowflakeSpec(**{**SPEC, "storage_integration": None})
    with pytest.raises(ValidationError, match="needs stage_location"):
        SnowflakeSpec(**{**SPEC, "stage_location": None})
    local = SnowflakeSpec(**{**SPEC, "mode": "fakesnow", "fakesnow_path": "/tmp/sf", "stage_location": None})
    assert local.stage_root == "/tmp/sf/stage"


def test_masked_columns_are_the_pii_the_models_declare_not_a_guess_from_names():
    dim = GOLD["dim_customer"]
    columns = [
        "customer_sk",
        "customer_token",
        "customer_email_token",
        "customer_phone_token",
        "customer_name_token",
        "ship_to_country",
        "ship_to_city_token",
        "valid_from",
    ]
    assert dim.pii_columns(columns) == [
        "customer_token",
        "customer_email_token",
        "customer_phone_token",
        "customer_name_token",
        "ship_to_city_token",
    ]  # the country is not personal data; a column named like PII but not declared is not masked
    assert GOLD["fact_orders"].pii_columns(["order_id", "customer_token", "email_domain"]) == [
        "customer_token"
    ]
    assert GOLD["fact_payments"].pii_columns(["payment_id", "amount"]) == []


def test_each_customer_token_column_comes_from_a_field_the_source_declares_pii():
    """The orders model's token columns carry fields marketplace.yaml lists under `pii:` (so masking follows
    the source spec); customer_token is the keyed id the dimension is built on."""
    declared = set(load_source("marketplace").tables["orders"].pii)
    assert set(orders_model.CUSTOMER_FIELDS.values()) <= declared
    assert set(orders_model.PII_COLUMNS) == {"customer_token", *orders_model.CUSTOMER_FIELDS}


def test_compare_reports_every_metric_and_missing_partitions():
    lake = {
        ("2026-03-01", "USD"): {"rows": 2, "net": Decimal("10.00")},
        ("2026-03-02", "USD"): {"rows": 1, "net": Decimal("1.00")},
    }
    warehouse = {
        ("2026-03-01", "USD"): {"rows": 2, "net": Decimal("10.01")},
        ("2026-03-03", "EUR"): {"rows": 1, "net": Decimal("0.00")},
    }
    bad = [
        (d.partition, d.metric, d.lake, d.warehouse)
        for d in reconcile.compare(lake, warehouse)
        if not d.matches
    ]
    assert bad == [
        (("2026-03-01", "USD"), "net", Decimal("10.00"), Decimal("10.01")),
        (("2026-03-02", "USD"), "net", Decimal("1.00"), None),
        (("2026-03-02", "USD"), "rows", 1, None),
        (("2026-03-03", "EUR"), "net", None, Decimal("0.00")),
        (("2026-03-03", "EUR"), "rows", None, 1),
    ]
    assert all(d.matches for d in reconcile.compare(lake, dict(lake)))


def test_warehouse_figures_parse_the_query_rows():
    grain = reconcile.partition_columns(["order_date", "currency", "total_amount"], "order_date")
    assert reconcile.warehouse_query("DB.S.T", grain, ("total_amount",)) == (
        "SELECT TO_VARCHAR(ORDER_DATE), TO_VARCHAR(CURRENCY), COUNT(*), SUM(TOTAL_AMOUNT) FROM DB.S.T "
        "GROUP BY TO_VARCHAR(ORDER_DATE), TO_VARCHAR(CURRENCY)"
    )
    rows = [("2026-03-01", "USD", 3, 12.5)]
    assert reconcile.warehouse_figures(rows, grain, ("total_amount",)) == {
        ("2026-03-01", "USD"): {"rows": 3, "total_amount": Decimal("12.50")}
    }


def test_a_table_without_partition_is_reconciled_as_a_whole():
    grain = reconcile.partition_columns(["customer_sk", "orders_in_version"], None)  # gold.dim_customer
    assert grain == []
    assert reconcile.warehouse_query("DB.S.DIM", grain, ("orders_in_version",)) == (
        "SELECT COUNT(*), SUM(ORDERS_IN_VERSION) FROM DB.S.DIM"
    )
    assert reconcile.warehouse_figures([(3, 6)], grain, ("orders_in_version",)) == {
        (): {"rows": 3, "orders_in_version": Decimal("6.00")}
    }


@mock_aws
def test_spark_connector_options_come_from_env_conf_and_secret_references(monkeypatch):
    monkeypatch.setenv("SF_USER", "svc_northstar")
    client = boto3.client("secretsmanager", region_name="us-east-1")
    client.create_secret(Name="northstar/snowflake", SecretString='{"password": "s3cr3t-from-sm"}')
    options = connector_options(SnowflakeSpec(**SPEC), secretsmanager_client=client)
    assert options == {
        "sfURL": "xy12345.eu-west-1.snowflakecomputing.com",
        "sfUser": "svc_northstar",
        "sfPassword": "s3cr3t-from-sm",
        "sfDatabase": "NORTHSTAR",
        "sfSchema": "ANALYTICS",
        "sfWarehouse": "TRANSFORMING",
        "sfRole": "PUBLISHER",
        "sfTimezone": "UTC",
        "truncate_table": "on",
        "usestagingtable": "off",
        "column_mapping": "name",
        "column_mismatch_behavior": "error",
    }


def test_snowflake_and_s3_sections_refuse_secrets_and_missing_settings():
    with pytest.raises(ValidationError, match="must be given as a reference") as err:
        SnowflakeSpec(**{**SPEC, "password": "hunter2"})
    shown = format_validation_error(
        Path("conf/env/prod.yaml"), "environment", err.value
    )  # what load_env raises
    assert "password" in shown
    assert "hunter2" not in shown
    with pytest.raises(ValidationError, match="fakesnow needs fakesnow_path"):
        SnowflakeSpec(**{**SPEC, "mode": "fakesnow"})
    with pytest.raises(ValidationError, match="SSE-KMS needs kms_key_id"):
        S3Spec(encryption="SSE-KMS")
    assert S3Spec(encryption="SSE-KMS", kms_key_id="env:KMS_KEY").kms_key_id == "env:KMS_KEY"


def test_sse_kms_setting_becomes_the_s3a_encryption_settings(monkeypatch, tmp_path):
    env = make_env(tmp_path)
    assert s3_encryption(env) == {}
    monkeypatch.setenv("LAKE_KMS_KEY", "arn:aws:kms:eu-west-1:111122223333:key/abcd")
    kms = env.model_copy(update={"s3": S3Spec(encryption="SSE-KMS", kms_key_id="env:LAKE_KMS_KEY")})
    assert s3_encryption(kms) == {
        "fs.s3a.encryption.algorithm": "SSE-KMS",
        "fs.s3a.encryption.key": "arn:aws:kms:eu-west-1:111122223333:key/abcd",
    }
