"""The env file's orchestration sections: `emr:` (applications, role, artifacts), `alerts:`,
`delta_commit_coordinator:` (concurrent writers).

Additive to EnvConfig (config.py); every field is plain configuration, secrets only as references.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, field_validator

from northstar.secrets import check_reference


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _s3_uri(value: str) -> str:
    if not value.startswith("s3://"):
        raise ValueError(f"must be an s3:// URI (got {value!r})")
    return value.rstrip("/")


class EmrApplications(_Strict):
    """EMR Serverless application ids: scheduled loads and backfills never share capacity."""

    scheduled: str = Field(min_length=1, description="application id for the scheduled DAGs")
    backfill: str = Field(min_length=1, description="application id for the backfill DAG")


class EmrSpec(_Strict):
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


class AlertsSpec(_Strict):
    """Where failures, freshness breaches and quality regressions are sent."""

    sns_topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+$")
    slack_webhook: str | None = Field(default=None, description="secret reference to a Slack webhook URL")
    cloudwatch_namespace: str = "Northstar"
    freshness_minutes: int = Field(default=30, ge=1, description="a table older than this is a breach")

    @field_validator("slack_webhook")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return None if value is None else check_reference(value)


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


class CommitCoordinatorSpec(_Strict):
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
