"""conf/env/<env>.yaml: where one environment keeps its zones, its Spark settings, and the sections the
orchestration (`emr:`, `alerts:`, `delta_commit_coordinator:`), the publish (`snowflake:`) and the buckets
(`s3:`) read. Every field is plain configuration; secrets only as references (env:NAME / secretsmanager:ID#key).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from northstar.config.base import Identifier, Strict
from northstar.config.files import ConfKind
from northstar.secrets import SecretReference


def _s3_uri(value: str) -> str:
    if not value.startswith("s3://"):
        raise ValueError(f"must be an s3:// URI (got {value!r})")
    return value.rstrip("/")


class EmrApplications(Strict):
    """EMR Serverless application ids: scheduled loads and backfills never share capacity."""

    scheduled: str = Field(min_length=1, description="application id for the scheduled DAGs")
    backfill: str = Field(min_length=1, description="application id for the backfill DAG")


class EmrSpec(Strict):
    """Where and how the DAGs start jobs on EMR Serverless."""

    region: str = Field(min_length=1)
    applications: EmrApplications
    execution_role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    log_uri: str = Field(description="s3:// folder for driver/executor logs (monitoringConfiguration)")
    artifacts: str = Field(description="s3:// folder `northstar package` uploads <version>/ into")
    artifact_version: str = Field(min_length=1, description="which packaged version the DAGs run")
    aws_conn_id: str = "aws_default"
    spark: dict[str, str] = Field(
        default_factory=dict,
        description="Spark properties of every job (sizing: spark.emr-serverless.executor.cores, ...)",
    )
    waiter_delay_seconds: int = Field(default=30, ge=1)
    waiter_max_attempts: int = Field(default=240, ge=1)

    @field_validator("log_uri", "artifacts")
    @classmethod
    def _s3(cls, value: str) -> str:
        return _s3_uri(value)

    @field_validator("spark", mode="before")
    @classmethod
    def _values_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value

    @property
    def release_folder(self) -> str:
        return f"{self.artifacts}/{self.artifact_version}"


class AlertsSpec(Strict):
    """Where failures, freshness breaches and quality regressions are sent."""

    sns_topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+$")
    slack_webhook: SecretReference | None = Field(
        default=None, description="secret reference to a Slack webhook URL"
    )
    cloudwatch_namespace: str = "Northstar"
    freshness_minutes: int = Field(default=30, ge=1, description="a table older than this is a breach")


# Delta's coordinated commits (a preview table feature in Delta 4.0): the table properties that name a table's
# commit coordinator and its conf, the session defaults that give every new table the same, and the AWS SDK v1
# credentials provider the DynamoDB coordinator builds its client with (names checked with javap on
# delta-spark_2.13-4.0.0.jar: DeltaConfigs, DeltaSQLConf, DynamoDBCommitCoordinatorClientBuilder).
COORDINATOR_NAME_PROPERTY = "delta.coordinatedCommits.commitCoordinator-preview"
COORDINATOR_CONF_PROPERTY = "delta.coordinatedCommits.commitCoordinatorConf-preview"
TABLE_DEFAULTS_PREFIX = "spark.databricks.delta.properties.defaults."
CREDENTIALS_PROVIDER_CONF = (
    "spark.databricks.delta.coordinatedCommits.commitCoordinator.dynamodb.awsCredentialsProviderName"
)


class CommitCoordinatorSpec(Strict):
    """Delta's DynamoDB commit coordinator: every commit to a table is decided by a conditional write to one
    DynamoDB item per table, so writers in different EMR Serverless applications cannot take the same version."""

    dynamodb_table: str = Field(
        min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$", description="DynamoDB table (key tableId)"
    )
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$", description="AWS region of the DynamoDB table")
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="DynamoDB endpoint URL; default https://dynamodb.<region>.amazonaws.com (tests: moto)",
    )
    credentials_provider: str = Field(
        default="com.amazonaws.auth.DefaultAWSCredentialsProviderChain",
        pattern=r"^[A-Za-z_][A-Za-z0-9_.$]*$",
        description="AWS SDK v1 credentials provider class (the default chain finds the job role)",
    )

    @property
    def dynamodb_endpoint(self) -> str:
        return self.endpoint or f"https://dynamodb.{self.region}.amazonaws.com"

    def table_properties(self) -> dict[str, str]:
        """The two properties that put a Delta table under this coordinator (set together, never one alone)."""
        conf = {"dynamoDBTableName": self.dynamodb_table, "dynamoDBEndpoint": self.dynamodb_endpoint}
        return {
            COORDINATOR_NAME_PROPERTY: "dynamodb",
            COORDINATOR_CONF_PROPERTY: json.dumps(conf, separators=(",", ":")),
        }

    def submit_settings(self) -> dict[str, str]:
        """Spark properties safe on a spark-submit line (no JSON): the credentials provider."""
        return {CREDENTIALS_PROVIDER_CONF: self.credentials_provider}

    def spark_settings(self) -> dict[str, str]:
        """Session settings: every table this session creates is coordinated; the client's credentials."""
        defaults = {
            TABLE_DEFAULTS_PREFIX + key.removeprefix("delta."): value
            for key, value in self.table_properties().items()
        }
        return {**defaults, **self.submit_settings()}


SNOWFLAKE_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$]*$"


class SnowflakeSpec(Strict):
    """Where and how gold tables are published."""

    mode: Literal["fakesnow", "snowflake"] = Field(
        description="fakesnow: the local stand-in (a DuckDB file under fakesnow_path); snowflake: the real service"
    )
    account: str = Field(min_length=1, description="account identifier, e.g. xy12345.eu-west-1")
    database: str = Field(pattern=SNOWFLAKE_IDENTIFIER)
    analytics_schema: str = Field(
        default="ANALYTICS", pattern=SNOWFLAKE_IDENTIFIER, description="BI-facing, PII masked"
    )
    restricted_schema: str = Field(
        default="RESTRICTED", pattern=SNOWFLAKE_IDENTIFIER, description="unmasked PII, few roles"
    )
    warehouse: str = Field(pattern=SNOWFLAKE_IDENTIFIER)
    role: str = Field(pattern=SNOWFLAKE_IDENTIFIER, description="the role the publish runs as")
    pii_reader_role: str = Field(
        default="PII_READER",
        pattern=SNOWFLAKE_IDENTIFIER,
        description="the only role that sees masked columns unmasked",
    )
    user: SecretReference = Field(description="secret reference of the user name")
    password: SecretReference = Field(description="secret reference of the password (or key-pair passphrase)")
    fakesnow_path: str | None = Field(default=None, description="fakesnow mode: folder of the database files")
    ops_schema: str = Field(
        default="NORTHSTAR_OPS",
        pattern=SNOWFLAKE_IDENTIFIER,
        description="the publish's own objects: the gold stage, the version each table holds",
    )
    loader: Literal["bulk", "spark_connector", "python"] = Field(
        default="bulk",
        description="bulk: changed rows as Parquet on stage_location, COPY INTO from the external stage; "
        "spark_connector: the Spark Snowflake connector (needs its jar, docs/snowflake.md); python: rows "
        "through the Python connector (tiny tables only)",
    )
    stage_location: str | None = Field(
        default=None,
        description="bulk loader: where Spark writes the staged Parquet (s3://bucket/prefix; locally a folder, "
        "default <fakesnow_path>/stage); the external stage <ops_schema>.GOLD_STAGE points at it",
    )
    storage_integration: str | None = Field(
        default=None,
        pattern=SNOWFLAKE_IDENTIFIER,
        description="bulk loader on Snowflake: the storage integration the external stage reads S3 with",
    )

    @model_validator(mode="after")
    def _fakesnow_needs_a_path(self) -> SnowflakeSpec:
        if self.mode == "fakesnow" and not self.fakesnow_path:
            raise ValueError("mode fakesnow needs fakesnow_path (a folder for the local database files)")
        if self.loader == "bulk" and self.mode == "snowflake" and not self.stage_location:
            raise ValueError(
                "loader bulk needs stage_location (where Spark writes the Parquet COPY INTO loads)"
            )
        if self.loader == "bulk" and self.mode == "snowflake" and not self.storage_integration:
            raise ValueError("loader bulk on Snowflake needs storage_integration (the stage's S3 access)")
        return self

    @property
    def stage_root(self) -> str:
        """Where the bulk loader writes: stage_location, locally <fakesnow_path>/stage by default."""
        if self.stage_location:
            return self.stage_location
        assert (
            self.fakesnow_path is not None
        )  # fakesnow mode requires it; snowflake mode requires stage_location
        return str(Path(self.fakesnow_path).expanduser().resolve() / "stage")

    @field_validator("stage_location")
    @classmethod
    def _absolute_stage(cls, value: str | None) -> str | None:
        if value is None or "://" in value:
            return value.rstrip("/") if value else value
        return str(Path(value).expanduser().resolve())


class S3Spec(Strict):
    """Server-side encryption of every object the jobs write to S3 (s3a:// settings on the Spark session)."""

    encryption: Literal["none", "SSE-KMS"] = Field(default="none", description="local: none; AWS: SSE-KMS")
    kms_key_id: SecretReference | None = Field(
        default=None, description="secret reference of the KMS key id/ARN (SSE-KMS only)"
    )

    @model_validator(mode="after")
    def _kms_needs_a_key(self) -> S3Spec:
        if self.encryption == "SSE-KMS":
            if not self.kms_key_id:
                raise ValueError("encryption SSE-KMS needs kms_key_id (a secret reference to the key id)")
        return self


AlertSink = Literal["log", "delta", "sns"]


def _default_alert_sinks() -> list[AlertSink]:
    return ["log", "delta"]


class EnvConfig(Strict):
    """Where one environment keeps its zones, and the Spark settings it runs with."""

    name: Identifier
    profile: Literal["local", "emr"] = Field(
        description="local: this machine builds the Spark session; emr: the EMR Serverless runtime does"
    )
    landing: str = Field(min_length=1)
    lake: str = Field(min_length=1)
    quarantine: str = Field(min_length=1)
    spark: dict[str, str] = Field(default_factory=dict)
    pii_token_key: SecretReference = Field(
        default="env:NORTHSTAR_PII_TOKEN_KEY",
        description="secret reference of the key silver tokenizes each table's `pii:` columns with (HMAC-SHA256)",
    )
    alert_sinks: list[AlertSink] = Field(
        default_factory=_default_alert_sinks,
        description="where northstar.alerts.send delivers: log (a structured line), delta (ops.alerts); "
        "sns (the topic and Slack webhook in `alerts:`)",
    )
    # orchestration (docs/orchestration.md, docs/operations.md): what runs here, where DAGs start jobs,
    # where alerts go
    sources: list[Identifier] | None = Field(
        default=None, description="sources this environment runs (default: every file in conf/sources)"
    )
    secrets: dict[Identifier, SecretReference] = Field(
        default_factory=dict, description="named secret references (env:NAME or secretsmanager:ID#key)"
    )
    emr: EmrSpec | None = Field(default=None, description="EMR Serverless applications, role, artifacts")
    alerts: AlertsSpec | None = Field(default=None, description="SNS topic, Slack webhook reference")
    delta_commit_coordinator: CommitCoordinatorSpec | None = Field(
        default=None,
        description="Delta's DynamoDB commit coordinator: safe concurrent writers on S3 (docs/concurrent-writers.md)",
    )
    snowflake: SnowflakeSpec | None = Field(
        default=None, description="where gold is published (docs/snowflake.md)"
    )
    s3: S3Spec = Field(default_factory=S3Spec, description="server-side encryption of the S3 zones")
    run_lease_seconds: float = Field(
        default=300,
        gt=0,
        description="a run's lease on its table expires this long after its last renewal (renewed every third "
        "of it), so a killed run blocks the table at most this long (lake/run_lock.py)",
    )

    @field_validator("landing", "lake", "quarantine")
    @classmethod
    def _absolute_location(cls, value: str) -> str:
        value = value.rstrip("/")
        if "://" in value:
            return value
        return str(Path(value).expanduser().resolve())

    @field_validator("spark", mode="before")
    @classmethod
    def _spark_values_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
        return value


ENVS = ConfKind("env", EnvConfig, "environment", expand_env=True)


def load_env(name: str) -> EnvConfig:
    """conf/env/<name>.yaml, ${VAR} and ${VAR:-default} expanded from the process environment."""
    return ENVS.load(name)
