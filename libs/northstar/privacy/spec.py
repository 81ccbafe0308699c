"""conf/privacy.yaml: which tables hold a subject's data, how the subject is found in each, and the deadlines."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from northstar.config import ConfFile, Strict
from northstar.secrets import SecretReference


class PrivacyTable(Strict):
    """One table holding subjects' data."""

    table: str = Field(
        pattern=r"^[a-z]+\.[A-Za-z0-9_]+$", description="<layer>.<name>, as `northstar tables` lists"
    )
    column: str = Field(min_length=1)
    match: Literal["raw", "token", "json_field"] = Field(
        description="raw: the column holds the subject id; token: its keyed token; json_field: the column is "
        "a raw JSON record (quarantine) whose `field` holds the subject id"
    )
    field: str | None = None
    row_key: str = Field(
        min_length=1,
        description="a column identifying rows without personal data (event id, record hash): the DELETE names "
        "rows by it, because Delta records a DELETE's predicate in the transaction log",
    )

    @model_validator(mode="after")
    def _field_for_json(self) -> PrivacyTable:
        if (self.match == "json_field") != (self.field is not None):
            raise ValueError(
                "give `field` (the JSON field holding the subject id) with match: json_field, only then"
            )
        return self


class PrivacySpec(Strict):
    deadline_hours: int = Field(default=72, ge=1)
    vacuum_retain_hours: int = Field(default=24, ge=0)
    landing_retention_hours: int = Field(ge=1, description="how long raw landing files live (S3 lifecycle)")
    token_key: SecretReference
    tables: list[PrivacyTable] = Field(min_length=1)

    @model_validator(mode="after")
    def _meets_deadline(self) -> PrivacySpec:
        # daily processing (<= 24 h) + vacuum retention + landing expiry must all fit in the deadline
        if 24 + self.vacuum_retain_hours > self.deadline_hours:
            raise ValueError(
                f"vacuum_retain_hours {self.vacuum_retain_hours} + 24 h between daily runs exceeds "
                f"deadline_hours {self.deadline_hours}; lower the retention"
            )
        if self.landing_retention_hours > self.deadline_hours:
            raise ValueError(
                f"landing_retention_hours {self.landing_retention_hours} exceeds deadline_hours "
                f"{self.deadline_hours}: raw files would outlive a deletion request"
            )
        return self


PRIVACY = ConfFile("privacy.yaml", PrivacySpec, "privacy file")


def load_privacy() -> PrivacySpec:
    """conf/privacy.yaml."""
    return PRIVACY.load()
