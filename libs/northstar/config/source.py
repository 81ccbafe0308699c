"""conf/sources/<source>.yaml: a source system and the tables it delivers, one file per source.

One YAML file onboards one source; pydantic validates it, and a bad file is reported as a `ConfigError` that
names the file, the field and what is allowed.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from northstar.config.api import ApiSpec
from northstar.config.base import Identifier, Strict
from northstar.config.env import EnvConfig
from northstar.config.files import ConfKind
from northstar.config.jdbc import JdbcSpec
from northstar.errors import ConfigError
from northstar.secrets import SecretReference

ATOMIC_TYPE = re.compile(
    r"^(string|boolean|tinyint|smallint|int|bigint|float|double|date|timestamp|decimal\(\s*\d+\s*,\s*\d+\s*\))$"
)
# A column declared with one of these keeps the nested shape the source delivers; only presence is checked.
COMPLEX_TYPES = ("struct", "array", "map")


class ColumnSpec(Strict):
    """One column of a table's schema contract."""

    name: Identifier
    type: str = Field(
        description="Spark SQL type: string, int, bigint, double, decimal(p,s), date, "
        "timestamp, boolean, or struct/array/map to keep the delivered shape"
    )
    required: bool = False

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        value = value.strip().lower()
        if ATOMIC_TYPE.match(value) or value in COMPLEX_TYPES:
            return value
        raise ValueError(
            f"unknown type {value!r}; allowed: string, boolean, tinyint, smallint, int, bigint, float, "
            "double, date, timestamp, decimal(p,s), struct, array, map"
        )

    @property
    def is_complex(self) -> bool:
        return self.type in COMPLEX_TYPES


class CsvOptions(Strict):
    """How a table's CSV files are written. The defaults read RFC 4180: fields in double quotes may hold the
    delimiter and line breaks, and a double quote inside one is written twice."""

    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    escape: str = Field(
        default='"',
        min_length=1,
        max_length=1,
        description='what escapes a quote inside quotes: " (RFC 4180) or \\',
    )


class CdcSpec(Strict):
    """How to read a change feed: which format its events come in and what a delete does."""

    format: Literal["dms", "debezium", "flag"] = Field(
        description="dms: AWS DMS files (Op column I/U/D, commit timestamp, optional sequence); "
        "debezium: JSON envelopes (before/after/op/ts_ms/source.lsn); flag: records of any source (an API's "
        "tombstones, a deleted-records endpoint) where deleted_field marks a delete and every other record is an "
        "upsert"
    )
    deletes: Literal["soft", "hard"] = Field(
        default="soft",
        description="soft: keep the row with _deleted = true; hard: remove it (a tombstone keeps late, "
        "older events of that key from bringing it back)",
    )
    op_column: str = Field(default="Op", description="dms: the column holding I/U/D")
    deleted_field: str | None = Field(
        default=None,
        description="flag: the field marking a delete (e.g. Stripe's deleted, Zendesk's deleted_at)",
    )
    deleted_when: Literal["true", "not_null"] = Field(
        default="true",
        description="flag: a delete when the field is true, or when it is set at all (a timestamp)",
    )

    @model_validator(mode="after")
    def _flag_needs_a_field(self) -> CdcSpec:
        if self.format == "flag" and not self.deleted_field:
            raise ValueError("cdc format flag needs deleted_field (the field that marks a delete)")
        return self

    @property
    def operation_column(self) -> str:
        """The delivered column that says what a change is."""
        if self.format == "flag":
            assert self.deleted_field  # checked above
            return self.deleted_field
        return self.op_column if self.format == "dms" else "op"


# What a Debezium row carries besides its columns: the envelope's ts_ms and the log position (transforms/cdc.py).
DEBEZIUM_ENVELOPE_COLUMNS = ("_cdc_ts_ms", "_cdc_lsn")


class OrderingBounds(Strict):
    """The sane window of a time-typed ordering value; outside it a record is quarantined (ordering_out_of_range)."""

    max_future_hours: int = Field(
        default=24, ge=0, description="how far after its ingestion a record's ordering time may lie"
    )
    earliest: date = Field(default=date(1970, 1, 1), description="ordering times before this are refused")


class TableSpec(Strict):
    """One table of a source: where its files land, its keys, ordering, contract and policies."""

    description: str = ""
    format: Literal["jsonl", "csv", "parquet"]
    landing: str = Field(min_length=1, description="folder under the env's landing root")
    primary_key: list[Identifier] = Field(min_length=1)
    ordering: list[Identifier] = Field(
        min_length=1,
        description="columns deciding which version of a record is latest (compared in order, highest wins); "
        "equal values are broken by the record hash, so the winner never depends on arrival order",
    )
    ordering_bounds: OrderingBounds = Field(default_factory=OrderingBounds)
    columns: list[ColumnSpec] | None = Field(
        default=None,
        description="schema contract (optional); for a Debezium change feed, the columns of the row inside "
        "the envelope, typed in silver (e.g. numeric delivered as text, decimal.handling.mode=string)",
    )
    drift: Literal["evolve", "rescue", "fail"] = "evolve"
    rescued_share_warn: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="when more than this share of a batch's values of a column did not fit and were rescued "
        "(null, the original in _rescued_data), a warn check result and an alert name the column",
    )
    partition_by: list[Identifier] = Field(default_factory=list, description="silver partition columns")
    pii: list[str] = Field(default_factory=list, description="columns (dot paths for nested) holding PII")
    csv: CsvOptions | None = None
    cdc: CdcSpec | None = None
    history: bool = Field(
        default=False,
        description="SCD type 2: keep every version of a key with _valid_from / _valid_to / _is_current",
    )
    redact_card_numbers: bool = Field(
        default=False,
        description="PCI: replace digit runs that pass the Luhn check before anything is stored, and flag "
        "the record (_pan_redacted)",
    )
    rename: dict[str, Identifier] = Field(
        default_factory=dict,
        description="delivered column name (a CSV header, a top-level JSON field) -> column name; matched "
        "ignoring case and surrounding spaces, applied in bronze before the contract",
    )
    derive: dict[Identifier, str] = Field(
        default_factory=dict,
        description="column name -> Spark SQL expression over the record (a dot path such as "
        "data.object.id, or any expression), computed in silver before validation; primary_key and "
        "ordering may name these columns",
    )

    @field_validator("rename")
    @classmethod
    def _rename_targets_unique(cls, value: dict[str, str]) -> dict[str, str]:
        sources = [k.strip().lower() for k in value]
        twice = sorted({k for k in sources if sources.count(k) > 1})
        if twice:
            raise ValueError(
                f"delivered names mapped twice (case and spaces are ignored): {', '.join(twice)}"
            )
        targets = list(value.values())
        twice = sorted({t for t in targets if targets.count(t) > 1})
        if twice:
            raise ValueError(f"several delivered names are renamed to {', '.join(twice)}; map each only once")
        return value

    @field_validator("derive")
    @classmethod
    def _derive_expressions_not_blank(cls, value: dict[str, str]) -> dict[str, str]:
        blank = [name for name, expression in value.items() if not expression.strip()]
        if blank:
            raise ValueError(f"derived columns need an expression: {', '.join(blank)}")
        return value

    @model_validator(mode="after")
    def _columns_are_declared(self) -> TableSpec:
        if self.columns is None:
            return self
        names = [c.name for c in self.columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"columns declared twice: {', '.join(duplicated)}")
        clash = sorted(set(names) & set(self.derive))
        if clash:
            raise ValueError(f"derive would overwrite declared columns: {', '.join(clash)}; pick other names")
        yielded = self.envelope_columns()
        for role in ("primary_key", "ordering", "partition_by"):
            missing = [
                c for c in getattr(self, role) if c not in names and c not in self.derive and c not in yielded
            ]
            if missing:
                raise ValueError(
                    f"{role} names {', '.join(missing)}, which is not in columns: {', '.join(names)} "
                    "(nor in derive)"
                )
        self._change_op_is_declared(names)
        complex_keys = [
            c.name for c in self.columns if c.is_complex and c.name in self.primary_key + self.ordering
        ]
        if complex_keys:
            raise ValueError(
                f"primary_key/ordering columns must have atomic types: {', '.join(complex_keys)}"
            )
        return self

    def _change_op_is_declared(self, names: list[str]) -> None:
        """Under rescue (or fail) an undeclared column never reaches the table: a change feed whose operation
        column were rescued would apply every event, deletes too, as an insert. (Debezium's `op` is part of the
        envelope, which bronze keeps whole: see bronze_contract.)"""
        if self.cdc is None or self.drift == "evolve" or self.cdc.format == "debezium":
            return
        op = self.cdc.operation_column
        if op not in names:
            raise ValueError(
                f"cdc: the operation column {op} is not in columns, so drift: {self.drift} would "
                f"{'rescue' if self.drift == 'rescue' else 'refuse'} it and deletes would be lost; "
                f"declare it: - {{name: {op}, type: string}}"
            )

    def needed_columns(self) -> dict[str, str]:
        """Delivered column -> the role the pipeline needs it for (primary key, ordering, CDC operation): a batch
        without one cannot be applied. Derived columns and those a change feed's envelope yields are left out."""
        if self.cdc is not None and self.cdc.format == "debezium":
            return {"op": "CDC operation"}  # keys and ordering sit inside the envelope
        needed = {c: "primary key" for c in self.primary_key}
        needed |= {c: "ordering" for c in self.ordering if c not in needed}
        needed = {c: role for c, role in needed.items() if c not in self.derive and not c.startswith("_cdc_")}
        if self.cdc is not None and self.cdc.format == "dms":
            needed[self.cdc.op_column] = "CDC operation"
        return needed  # flag: a batch with no delete in it may well lack the field

    def envelope_columns(self) -> tuple[str, ...]:
        """The columns a Debezium table's rows get from the envelope (transforms/cdc.py), which `primary_key` and
        `ordering` may name without declaring them; () for other tables."""
        if self.cdc is not None and self.cdc.format == "debezium":
            return DEBEZIUM_ENVELOPE_COLUMNS
        return ()

    def bronze_contract(self) -> TableSpec:
        """The contract bronze applies to the delivered top-level columns. A Debezium table's `columns:` describe
        the row inside the envelope (`after`, or `before` for a delete) and are applied in silver, once the row is
        out of it; bronze keeps the envelope as delivered and lets it evolve whatever `drift` says, because a
        batch of inserts has no `before` and the batch that adds it carries the deletes."""
        if self.cdc is None or self.cdc.format != "debezium":
            return self
        return self.model_copy(update={"columns": None, "drift": "evolve"})

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns or [] if c.name == name), None)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns or [] if c.required and c.name not in self.primary_key]


DURATION = re.compile(r"^\d+ (second|minute|hour)s?$")


class StreamSpec(Strict):
    """How a table is ingested as a stream (northstar.streaming): watermark, sessions, trigger, token key."""

    table: Identifier = Field(description="the table of this source the stream feeds")
    event_time: Identifier = Field(default="event_time", description="the event-time column")
    event_id: Identifier = Field(default="event_id", description="the column events are deduplicated on")
    user_column: Identifier = Field(default="user_id", description="the user id, tokenized in silver")
    device_column: Identifier = Field(default="device_id", description="the device id of anonymous visitors")
    watermark: str = Field(
        default="10 minutes",
        description="how late an event may be and still be deduped "
        "and sessionized by the stream, e.g. '10 minutes'",
    )
    session_gap: str = Field(default="30 minutes", description="inactivity that closes a session")
    trigger_interval: str = Field(
        default="10 seconds", description="processingTime trigger of the operational path"
    )
    max_files_per_trigger: int = Field(default=1000, ge=1)
    publish_seconds: int = Field(
        default=60,
        ge=0,
        description="the operational stream publishes its session and minute tables to the warehouse at most "
        "this often, after a micro-batch (0: after every micro-batch); dashboards < 2 min (docs/streaming.md)",
    )
    user_token_key: SecretReference = Field(
        description="secret reference of the user-token key (env:NAME or secretsmanager:ID[#key])"
    )

    @field_validator("watermark", "session_gap", "trigger_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION.match(value.strip()):
            raise ValueError("write a duration as '<n> seconds|minutes|hours', e.g. '10 minutes'")
        return value.strip()


class SourceSpec(Strict):
    """A source system and the tables it delivers."""

    name: Identifier
    description: str = ""
    owner: str = ""
    tables: dict[Identifier, TableSpec] = Field(min_length=1)
    api: ApiSpec | None = Field(default=None, description="REST API to extract from (northstar extract)")
    jdbc: JdbcSpec | None = Field(default=None, description="extract tables from PostgreSQL over JDBC")
    stream: StreamSpec | None = Field(default=None, description="ingest as a stream (northstar stream)")

    @model_validator(mode="after")
    def _extract_sections_name_tables(self) -> SourceSpec:
        if self.api is not None and self.jdbc is not None:
            raise ValueError("a source extracts from one system: give it an api or a jdbc section, not both")
        unknown = [e for e in (self.api.endpoints if self.api else {}) if e not in self.tables]
        if unknown:
            raise ValueError(
                f"api.endpoints names {', '.join(unknown)}, which is not a table: {', '.join(self.tables)}"
            )
        if self.jdbc is not None:
            self.jdbc.check_tables(self.tables)
        if self.stream is not None and self.stream.table not in self.tables:
            raise ValueError(
                f"stream.table is {self.stream.table!r}, which is not a table: {', '.join(self.tables)}"
            )
        return self

    def require_stream(self) -> StreamSpec:
        """The stream: section; a ConfigError when this source is not streamed."""
        if self.stream is None:
            raise ConfigError(
                f"conf/sources/{self.name}.yaml has no stream: section; it is not a streamed source"
            )
        return self.stream


SOURCES = ConfKind("sources", SourceSpec, "source")


def load_source(name: str) -> SourceSpec:
    """conf/sources/<name>.yaml; the file's `name` must match its file name."""
    return SOURCES.load(name)


def parse_source(path: Path) -> SourceSpec:
    """A source file anywhere (e.g. one a user is writing), validated as conf/sources/ files are."""
    return SOURCES.parse(path)


def list_sources() -> list[str]:
    """The names of every source file in the conf folder."""
    return SOURCES.names()


def enabled_sources(env: EnvConfig) -> list[str]:
    """The sources `env` runs: its `sources:` list, or every file in conf/sources when it has none."""
    return env.sources if env.sources is not None else list_sources()
