"""The `snowflake:` and `s3:` sections of conf/env/<env>.yaml (pydantic): where gold is published and how the
lake's buckets are encrypted. Credentials are secret references (env:NAME / secretsmanager:ID#key), never values.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from northstar.secrets import check_reference

IDENT = r"^[A-Za-z_][A-Za-z0-9_$]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SnowflakeSpec(_Strict):
    """Where and how gold tables are published."""

    mode: Literal["fakesnow", "snowflake"] = Field(
        description="fakesnow: the local stand-in (a DuckDB file under fakesnow_path); snowflake: the real service"
    )
    account: str = Field(min_length=1, description="account identifier, e.g. xy12345.eu-west-1")
    database: str = Field(pattern=IDENT)
    analytics_schema: str = Field(default="ANALYTICS", pattern=IDENT, description="BI-facing, PII masked")
    restricted_schema: str = Field(default="RESTRICTED", pattern=IDENT, description="unmasked PII, few roles")
    warehouse: str = Field(pattern=IDENT)
    role: str = Field(pattern=IDENT, description="the role the publish runs as")
    pii_reader_role: str = Field(
        default="PII_READER", pattern=IDENT, description="the only role that sees masked columns unmasked"
    )
    user: str = Field(description="secret reference of the user name")
    password: str = Field(description="secret reference of the password (or key-pair passphrase)")
    fakesnow_path: str | None = Field(default=None, description="fakesnow mode: folder of the database files")

    @field_validator("user", "password")
    @classmethod
    def _is_reference(cls, value: str) -> str:
        return check_reference(value)

    @model_validator(mode="after")
    def _fakesnow_needs_a_path(self) -> SnowflakeSpec:
        if self.mode == "fakesnow" and not self.fakesnow_path:
            raise ValueError("mode fakesnow needs fakesnow_path (a folder for the local database files)")
        return self


class S3Spec(_Strict):
    """Server-side encryption of every object the jobs write to S3 (s3a:// settings on the Spark session)."""

    encryption: Literal["none", "SSE-KMS"] = Field(default="none", description="local: none; AWS: SSE-KMS")
    kms_key_id: str | None = Field(
        default=None, description="secret reference of the KMS key id/ARN (SSE-KMS only)"
    )

    @model_validator(mode="after")
    def _kms_needs_a_key(self) -> S3Spec:
        if self.encryption == "SSE-KMS":
            if not self.kms_key_id:
                raise ValueError("encryption SSE-KMS needs kms_key_id (a secret reference to the key id)")
            check_reference(self.kms_key_id)
        return self
