"""The env file's orchestration sections: `emr:` (applications, role, artifacts), `alerts:`, `delta_log_store:`.

Additive to EnvConfig (config.py); every field is plain configuration, secrets only as references.
"""

from __future__ import annotations

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


class DeltaLogStoreSpec(_Strict):
    """Delta's DynamoDB-backed log store: mutual exclusion for commits to s3:// tables."""

    dynamodb_table: str = Field(min_length=3)
    region: str = Field(min_length=1)
    endpoint: str | None = Field(default=None, description="only for tests (moto)")

    def spark_settings(self) -> dict[str, str]:
        """The Spark properties that make Delta commit through DynamoDB (for both s3:// and s3a://)."""
        prefix = "spark.io.delta.storage.S3DynamoDBLogStore"
        settings = {
            "spark.delta.logStore.s3.impl": "io.delta.storage.S3DynamoDBLogStore",
            "spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore",
            f"{prefix}.ddb.tableName": self.dynamodb_table,
            f"{prefix}.ddb.region": self.region,
        }
        return settings
