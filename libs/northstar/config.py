"""Load and validate configuration: conf/env/<env>.yaml (where data lives) and conf/sources/<source>.yaml.

One YAML file onboards one source; pydantic validates it and a bad file is reported as a
`ConfigError` that names the file, the field and what is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from northstar.extract.api_spec import ApiSpec
from northstar.extract.jdbc_config import JdbcSpec
from northstar.orchestration.env_spec import AlertsSpec, CommitCoordinatorSpec, EmrSpec
from northstar.secrets import check_reference
from northstar.warehouse.spec import S3Spec, SnowflakeSpec

ATOMIC_TYPE = re.compile(
    r"^(string|boolean|tinyint|smallint|int|bigint|float|double|date|timestamp|decimal\(\s*\d+\s*,\s*\d+\s*\))$"
)
# A column declared with one of these keeps the nested shape the source delivers; only presence is checked.
COMPLEX_TYPES = ("struct", "array", "map")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message says which file, which field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Identifier = Annotated[str, Field(pattern=IDENTIFIER.pattern)]


class ColumnSpec(_Strict):
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


class CsvOptions(_Strict):
    header: bool = True
    delimiter: str = Field(default=",", min_length=1, max_length=1)


class CdcSpec(_Strict):
    """How to read a change feed: which format its events come in and what a delete does."""

    format: Literal["dms", "debezium"] = Field(
        description="dms: AWS DMS files (Op column I/U/D, commit timestamp, optional sequence); "
        "debezium: JSON envelopes (before/after/op/ts_ms/source.lsn)"
    )
    deletes: Literal["soft", "hard"] = Field(
        default="soft",
        description="soft: keep the row with _deleted = true; hard: remove it (a tombstone keeps late, "
        "older events of that key from bringing it back)",
    )
    op_column: str = Field(default="Op", description="dms: the column holding I/U/D")


class TableSpec(_Strict):
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
    columns: list[ColumnSpec] | None = Field(default=None, description="schema contract (optional)")
    drift: Literal["evolve", "rescue", "fail"] = "evolve"
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
        for role in ("primary_key", "ordering", "partition_by"):
            missing = [c for c in getattr(self, role) if c not in names and c not in self.derive]
            if missing:
                raise ValueError(
                    f"{role} names {', '.join(missing)}, which is not in columns: {', '.join(names)} "
                    "(nor in derive)"
                )
        complex_keys = [
            c.name for c in self.columns if c.is_complex and c.name in self.primary_key + self.ordering
        ]
        if complex_keys:
            raise ValueError(
                f"primary_key/ordering columns must have atomic types: {', '.join(complex_keys)}"
            )
        return self

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns or [] if c.name == name), None)

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns or [] if c.required and c.name not in self.primary_key]


DURATION = re.compile(r"^\d+ (second|minute|hour)s?$")


class StreamSpec(_Strict):
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
    user_token_key: str = Field(
        description="secret reference of the user-token key (env:NAME or secretsmanager:ID[#key])"
    )

    @field_validator("watermark", "session_gap", "trigger_interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not DURATION.match(value.strip()):
            raise ValueError("write a duration as '<n> seconds|minutes|hours', e.g. '10 minutes'")
        return value.strip()

    @field_validator("user_token_key")
    @classmethod
    def _reference(cls, value: str) -> str:
        from northstar.secrets import check_reference

        return check_reference(value)


class SourceSpec(_Strict):
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


class EnvConfig(_Strict):
    """Where one environment keeps its zones, and the Spark settings it runs with."""

    name: Identifier
    profile: Literal["local", "emr"] = Field(
        description="local: this machine builds the Spark session; emr: the EMR Serverless runtime does"
    )
    landing: str = Field(min_length=1)
    lake: str = Field(min_length=1)
    quarantine: str = Field(min_length=1)
    spark: dict[str, str] = Field(default_factory=dict)
    pii_token_key: Annotated[str, AfterValidator(check_reference)] = Field(
        default="env:NORTHSTAR_PII_TOKEN_KEY",
        description="secret reference of the key silver tokenizes each table's `pii:` columns with (HMAC-SHA256)",
    )
    alert_sinks: list[Literal["log", "delta", "sns"]] = Field(
        default_factory=lambda: ["log", "delta"],
        description="where northstar.alerts.send delivers: log (a structured line), delta (ops.alerts); "
        "sns (the topic and Slack webhook in `alerts:`)",
    )
    # orchestration (docs/orchestration.md, docs/operations.md): what runs here, where DAGs start jobs,
    # where alerts go
    sources: list[Identifier] | None = Field(
        default=None, description="sources this environment runs (default: every file in conf/sources)"
    )
    secrets: dict[Identifier, Annotated[str, AfterValidator(check_reference)]] = Field(
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

    # Where each table lives. Names follow `<layer>.<source>_<table>`.
    def landing_path(self, table: TableSpec) -> str:
        return f"{self.landing}/{table.landing.strip('/')}"

    def bronze_path(self, source: str, table: str) -> str:
        return f"{self.lake}/bronze/{source}/{table}"

    def silver_path(self, source: str, table: str) -> str:
        return f"{self.lake}/silver/{source}/{table}"

    def quarantine_path(self, source: str, table: str) -> str:
        return f"{self.quarantine}/{source}/{table}"

    def tombstone_path(self, source: str, table: str) -> str:
        """Keys removed by hard CDC deletes, with the ordering of the delete (blocks late, older events)."""
        return f"{self.lake}/_ops/tombstones/{source}/{table}"

    @property
    def run_ledger_path(self) -> str:
        return f"{self.lake}/_ops/run_ledger"

    @property
    def landing_log_path(self) -> str:
        return f"{self.lake}/_ops/landing_files"

    # Data quality (docs/quality.md): check results, the publish pointer, alerts, the quarantine replay log.
    @property
    def check_results_path(self) -> str:
        return f"{self.lake}/_ops/check_results"

    @property
    def published_versions_path(self) -> str:
        return f"{self.lake}/_ops/published_versions"

    @property
    def alerts_path(self) -> str:
        return f"{self.lake}/_ops/alerts"

    @property
    def quarantine_replays_path(self) -> str:
        return f"{self.lake}/_ops/quarantine_replays"


def default_conf_dir() -> Path:
    """`$NORTHSTAR_CONF_DIR`, else ./conf, else the conf/ folder of the checkout this package runs from."""
    if os.environ.get("NORTHSTAR_CONF_DIR"):
        return Path(os.environ["NORTHSTAR_CONF_DIR"])
    if Path("conf/sources").is_dir():
        return Path("conf")
    return Path(__file__).resolve().parents[2] / "conf"


def _expand_env_vars(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        value = os.environ.get(match["name"])
        if value is None:
            if match["default"] is None:
                raise KeyError(match["name"])
            return match["default"]
        return value

    return ENV_VAR.sub(replace, text)


def _read_yaml(path: Path, expand_env: bool = False) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    text = path.read_text()
    if expand_env:
        try:
            text = _expand_env_vars(text)
        except KeyError as err:
            raise ConfigError(
                f"{path}: environment variable {err.args[0]} is not set and has no default "
                f"(write ${{{err.args[0]}:-default}} to give one)"
            ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of settings at the top level, found {type(data).__name__}"
        )
    return data


M = TypeVar("M", bound=BaseModel)


def parse_conf_file(
    path: Path, model: type[M], what: str, *, expand_env: bool = False, name_field: str | None = None
) -> M:
    """Read one conf YAML file into `model`; any problem is a ConfigError naming the file, the field and what
    is allowed. `name_field`: the field that names the thing the file defines; it defaults to the file's stem
    and must equal it (one file, one named thing). `expand_env`: ${VAR} / ${VAR:-default} from the environment."""
    data = _read_yaml(path, expand_env=expand_env)
    if name_field:
        data.setdefault(name_field, path.stem)
    try:
        spec = model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(path, what, err)) from None
    if name_field and getattr(spec, name_field) != path.stem:
        raise ConfigError(
            f"{path}: {name_field} is {getattr(spec, name_field)!r} but the file is {path.name}; make them match"
        )
    return spec


def _format_validation_error(path: Path, what: str, err: ValidationError) -> str:
    lines = [f"{path} is not a valid {what}:"]
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; see docs/onboarding.md for the allowed ones)"
        elif problem["type"] not in ("missing", "value_error") and not isinstance(
            problem.get("input"), dict | list
        ):
            message += f" (got {problem['input']!r})"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)


def load_source(name: str, conf_dir: Path | str | None = None) -> SourceSpec:
    """Load conf/sources/<name>.yaml; the file's `name` must match its file name."""
    conf_dir = Path(conf_dir) if conf_dir else default_conf_dir()
    path = conf_dir / "sources" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(list_sources(conf_dir)) or "none"
        raise ConfigError(f"{path}: no such source file (sources in {conf_dir / 'sources'}: {known})")
    return parse_source(path)


def parse_source(path: Path) -> SourceSpec:
    return parse_conf_file(path, SourceSpec, "source", name_field="name")


def list_sources(conf_dir: Path | str | None = None) -> list[str]:
    conf_dir = Path(conf_dir) if conf_dir else default_conf_dir()
    return sorted(p.stem for p in (conf_dir / "sources").glob("*.yaml"))


def enabled_sources(env: EnvConfig, conf_dir: Path | str | None = None) -> list[str]:
    """The sources `env` runs: its `sources:` list, or every file in conf/sources when it has none."""
    return env.sources if env.sources is not None else list_sources(conf_dir)


def load_env(name: str, conf_dir: Path | str | None = None) -> EnvConfig:
    """Load conf/env/<name>.yaml, expanding ${VAR} and ${VAR:-default} from the process environment."""
    conf_dir = Path(conf_dir) if conf_dir else default_conf_dir()
    path = conf_dir / "env" / f"{name}.yaml"
    return parse_conf_file(path, EnvConfig, "environment", expand_env=True, name_field="name")
