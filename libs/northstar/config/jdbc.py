"""The `jdbc` section of a source file: one PostgreSQL database, how gently to read it, and which tables.

    jdbc:
      host: 127.0.0.1
      port: 5432
      database: shop
      user: northstar_reader
      password: env:NORTHSTAR_SHOP_DB_PASSWORD     # a secret reference, never the password itself
      batch_size: 10000          # rows per query (keyset page)
      overlap: 15m               # incremental runs re-read this much before the watermark (late commits)
      statement_timeout: 60s     # the server cancels any extraction query running longer
      tables:
        orders: {relation: public.orders, cursor: updated_at}

Each name under `tables` must be a table of the source with `format: parquet`; its `primary_key` is the
keyset tie-breaker after the cursor column, and the extracted pages land in its `landing` folder.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, field_validator

from northstar.config.base import Strict
from northstar.secrets import SecretReference

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
DURATION = re.compile(r"^\s*(?P<n>\d+(\.\d+)?)\s*(?P<unit>ms|s|m|h|d)\s*$")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

Column = Annotated[str, Field(pattern=IDENTIFIER)]


def parse_duration(value: object) -> timedelta:
    """`500ms`, `30s`, `15m`, `2h`, `1d` (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration; write e.g. 500ms, 30s, 15m, 2h or 1d")
    return timedelta(seconds=float(match["n"]) * UNITS[match["unit"]])


Duration = Annotated[timedelta, Field()]


class JdbcTable(Strict):
    """One table to extract: the relation in the database and the column that moves when a row changes."""

    relation: str = Field(description="schema.table in the database (names as stored, usually lower case)")
    cursor: Column = Field(
        default="updated_at",
        description="timestamp column set on every insert and update; index (cursor, primary key) on it",
    )
    columns: list[Column] | None = Field(
        default=None, description="columns to extract (default: all); leave out what the lake must not hold"
    )
    batch_size: int | None = Field(default=None, ge=1, le=1_000_000, description="overrides jdbc.batch_size")

    @field_validator("relation")
    @classmethod
    def _relation_name(cls, value: str) -> str:
        if not RELATION.match(value):
            raise ValueError(f"{value!r} is not a relation name; write schema.table, e.g. public.orders")
        return value

    @property
    def schema_and_table(self) -> tuple[str, str]:
        schema, _, table = self.relation.rpartition(".")
        return schema or "public", table


class JdbcSpec(Strict):
    """Connection and politeness settings for one PostgreSQL database (one source file per database)."""

    kind: Literal["postgresql"] = "postgresql"
    host: str = Field(min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    database: str = Field(min_length=1)
    user: str = Field(min_length=1)
    password: SecretReference = Field(description="secret reference: env:NAME or secretsmanager:<id>[#key]")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    batch_size: int = Field(default=10_000, ge=1, le=1_000_000, description="rows per query (keyset page)")
    fetch_size: int = Field(default=1_000, ge=1, le=100_000, description="rows per network round trip")
    overlap: Duration = Field(
        default=timedelta(minutes=15),
        description="incremental runs start this long before the watermark, to catch late commits",
    )
    statement_timeout: Duration = Field(default=timedelta(seconds=60))
    connect_timeout: Duration = Field(default=timedelta(seconds=10))
    tables: dict[Annotated[str, Field(pattern=IDENTIFIER)], JdbcTable] = Field(min_length=1)

    @field_validator("overlap", "statement_timeout", "connect_timeout", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("statement_timeout", "connect_timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be more than zero")
        return value

    @property
    def url(self) -> str:
        """The JDBC URL: no credentials in it (user and password go as connection properties)."""
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}"

    @property
    def where(self) -> str:
        """The database, for messages: host:port/database."""
        return f"{self.host}:{self.port}/{self.database}"

    def check_tables(self, tables: dict) -> None:
        """Every extracted table is a table of the source that lands Parquet (raises ValueError)."""
        for name in self.tables:
            if name not in tables:
                raise ValueError(
                    f"jdbc.tables.{name} is not a table of this source (its tables: {', '.join(tables)}); "
                    "add it under tables: with format: parquet"
                )
            if tables[name].format != "parquet":
                raise ValueError(
                    f"tables.{name}.format must be parquet for a jdbc table (got {tables[name].format})"
                )
            table = self.tables[name]
            needed = [table.cursor, *tables[name].primary_key]
            missing = [c for c in needed if table.columns is not None and c not in table.columns]
            if missing:
                raise ValueError(
                    f"jdbc.tables.{name}.columns must include the cursor and primary key: add {', '.join(missing)}"
                )
