"""Check definitions: conf/quality/<layer>.<table>.yaml lists a table's checks, validated by pydantic.

Each check has a name, a type, its column(s) and parameters, a severity (warn | quarantine | fail) and, where
it applies, thresholds. Row-level types (not_null, accepted_values, range, pattern, relationship) judge each
record and may quarantine it; table-level types (unique, freshness, row_count_anomaly, null_rate_spike,
schema_change) judge the batch as a whole and give one result row.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from northstar.config import ConfigError, ConfKind, Identifier, Strict

TABLE_NAME = r"^[a-z]+\.[A-Za-z_][A-Za-z0-9_]*$"
ROW_LEVEL = ("not_null", "accepted_values", "range", "pattern", "relationship")
TABLE_LEVEL = ("unique", "freshness", "row_count_anomaly", "null_rate_spike", "schema_change")


class _Check(Strict):
    name: Identifier = Field(description="unique within the table; stored in results and quarantine rows")
    severity: Literal["warn", "quarantine", "fail"] = Field(
        description="warn: record a result only; quarantine: failing rows go to quarantine, valid rows "
        "continue (row-level types only); fail: stop the run before anything is written"
    )
    description: str = ""

    @property
    def row_level(self) -> bool:
        """One of ROW_LEVEL: every row-level type is a RowCheck."""
        return isinstance(self, RowCheck)


class RowCheck(_Check):
    """The base of the row-level types (ROW_LEVEL), with their failure thresholds."""

    max_failed_rows: int = Field(
        default=0, ge=0, description="the check passes while at most this many rows fail (warn/fail severity)"
    )
    max_failed_fraction: float | None = Field(
        default=None, ge=0, le=1, description="or while at most this fraction of rows fails"
    )


class NotNull(RowCheck):
    type: Literal["not_null"]
    columns: list[Identifier] = Field(min_length=1)


class AcceptedValues(RowCheck):
    type: Literal["accepted_values"]
    column: Identifier
    values: list[str | int | float | bool] = Field(min_length=1)


class Range(RowCheck):
    type: Literal["range"]
    column: Identifier
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Pattern(RowCheck):
    type: Literal["pattern"]
    column: Identifier
    regex: str = Field(min_length=1, description="Java regular expression the whole value must match")


class Relationship(RowCheck):
    type: Literal["relationship"]
    column: Identifier
    to: str = Field(pattern=TABLE_NAME, description="referenced table, e.g. silver.marketplace_orders")
    to_column: Identifier


class Unique(_Check):
    type: Literal["unique"]
    columns: list[Identifier] = Field(min_length=1)
    max_duplicate_keys: int = Field(default=0, ge=0)


class Freshness(_Check):
    type: Literal["freshness"]
    column: Identifier = Field(description="timestamp column; its newest value is compared with now")
    max_lag_hours: float = Field(gt=0)


class _Anomaly(_Check):
    k: float = Field(default=3.0, gt=0, description="allowed distance from the median in scaled MADs")
    lookback: int = Field(default=8, ge=1, description="previous same-weekday runs to use")
    min_history: int = Field(
        default=3,
        ge=2,
        description="same-weekday runs needed; below it all days are used, below it again "
        "the check is skipped (and says so)",
    )
    min_spread: float = Field(
        default=0.1,
        ge=0,
        description="the range is at least median +- this fraction of the median "
        "(a perfectly steady history would otherwise flag any change)",
    )


class RowCountAnomaly(_Anomaly):
    type: Literal["row_count_anomaly"]


class NullRateSpike(_Anomaly):
    type: Literal["null_rate_spike"]
    column: Identifier
    max_rate: float | None = Field(
        default=None, ge=0, le=1, description="also fail above this null rate whatever the history"
    )


class SchemaChange(_Check):
    type: Literal["schema_change"]
    allow_added: bool = Field(default=True, description="new columns pass; removed or retyped ones never do")


Check = Annotated[
    NotNull
    | AcceptedValues
    | Range
    | Pattern
    | Relationship
    | Unique
    | Freshness
    | RowCountAnomaly
    | NullRateSpike
    | SchemaChange,
    Field(discriminator="type"),
]


class TableChecks(Strict):
    """The checks of one table."""

    table: str = Field(pattern=TABLE_NAME, description="<layer>.<name>, e.g. silver.marketplace_orders")
    checks: list[Check] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_unique_and_severities_fit(self) -> TableChecks:
        names = [c.name for c in self.checks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"check names used twice: {', '.join(twice)}")
        table_level_quarantine = [
            c.name for c in self.checks if c.severity == "quarantine" and not c.row_level
        ]
        if table_level_quarantine:
            raise ValueError(
                f"severity quarantine applies to row-level checks ({', '.join(ROW_LEVEL)}) only; "
                f"use warn or fail for {', '.join(table_level_quarantine)}"
            )
        return self

    def by_name(self, name: str) -> Check:
        found = next((c for c in self.checks if c.name == name), None)
        if found is None:
            raise ConfigError(
                f"{self.table} has no check {name!r} (its checks: {', '.join(c.name for c in self.checks)})"
            )
        return found


CHECKS = ConfKind("quality", TableChecks, "quality check", name_field="table")


def list_checked_tables() -> list[str]:
    """The tables with a checks file (conf/quality/<layer>.<table>.yaml)."""
    return CHECKS.names()


def load_checks(table: str) -> TableChecks | None:
    """conf/quality/<table>.yaml, or None when the table has no checks."""
    return CHECKS.load_if_present(table)
