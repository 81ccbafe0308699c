"""The table registry: every table's name, location, key and partitioning, in one place.

A `Table` is one Delta table of the lake: its layer and name (shown as `<layer>.<name>`), where it lives under
an environment's zones, and its key and partition columns where they are known. The constructors below are
the only code that formats a table's name or location; everything else asks for a `Table` and calls
`.path(env)`.

    bronze.<source>_<table>        <lake>/bronze/<source>/<table>
    silver.<source>_<table>        <lake>/silver/<source>/<table>
    quarantine.<source>_<table>    <quarantine>/<source>/<table>
    silver.<model>                 <lake>/conformed/<model>            conformed models
    quarantine.<model>             <quarantine>/_conformed/<model>
    gold.<table>                   <lake>/gold/<table>
    silver.<source>_sessions       <lake>/silver/<source>/sessions     streamed sources
    gold.<source>_minute           <lake>/gold/<source>/minute
    ops.<name>                     <lake>/_ops/<name>                  run ledger, landing log, check results, ...

Folders that are not tables (a table's landing folder, a stream's checkpoints) are formatted here too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from northstar.config import ConfigError, EnvConfig, SourceSpec, TableSpec, list_sources, load_source
from northstar.config.files import names_in

Zone = Literal["lake", "quarantine"]


@dataclass(frozen=True)
class Table:
    """One Delta table: `<layer>.<name>`, stored at `<zone root>/<folder>` of an environment."""

    layer: str
    name: str
    folder: str
    zone: Zone = "lake"
    key: tuple[str, ...] = field(default=(), compare=False)
    partition_by: tuple[str, ...] = field(default=(), compare=False)

    @property
    def full_name(self) -> str:
        """The name a notebook, a conf file or a ledger row uses: `<layer>.<name>`."""
        return f"{self.layer}.{self.name}"

    def path(self, env: EnvConfig) -> str:
        """Where the table lives in `env`."""
        root = env.lake if self.zone == "lake" else env.quarantine
        return f"{root}/{self.folder}"

    def __str__(self) -> str:
        return self.full_name


def bronze(source: str, table: str) -> Table:
    """bronze.<source>_<table>: every record that landed, with lineage."""
    return Table("bronze", f"{source}_{table}", f"bronze/{source}/{table}")


def silver(source: str, table: str, spec: TableSpec | None = None) -> Table:
    """silver.<source>_<table>: the latest valid version per key (its key and partitions from `spec`)."""
    key = tuple(spec.primary_key) if spec else ()
    partition_by = tuple(spec.partition_by) if spec else ()
    return Table(
        "silver", f"{source}_{table}", f"silver/{source}/{table}", key=key, partition_by=partition_by
    )


def quarantine(source: str, table: str) -> Table:
    """quarantine.<source>_<table>: the records bronze and silver rejected, with the reason."""
    return Table("quarantine", f"{source}_{table}", f"{source}/{table}", zone="quarantine")


def tombstones(source: str, table: str) -> Table:
    """Keys removed by hard CDC deletes, with the ordering of the delete (blocks late, older events)."""
    return Table("ops", f"tombstones_{source}_{table}", f"_ops/tombstones/{source}/{table}")


def model(name: str) -> Table:
    """silver.<model>: a conformed model (orders, refunds, payments, shipments)."""
    return Table("silver", name, f"conformed/{name}")


def model_quarantine(name: str) -> Table:
    """quarantine.<model>: rows a model could not conform, with the reason."""
    return Table("quarantine", name, f"_conformed/{name}", zone="quarantine")


def gold(name: str, key: Iterable[str] = (), partition_by: Iterable[str] = ()) -> Table:
    """gold.<name>: a fact table, dimension or mart."""
    return Table("gold", name, f"gold/{name}", key=tuple(key), partition_by=tuple(partition_by))


def stream_sessions(source: str) -> Table:
    """silver.<source>_sessions: one row per session of a streamed source."""
    return Table("silver", f"{source}_sessions", f"silver/{source}/sessions")


def stream_minutes(source: str) -> Table:
    """gold.<source>_minute: one row per minute of event time, for the operational dashboards."""
    return Table("gold", f"{source}_minute", f"gold/{source}/minute")


def ops(name: str) -> Table:
    return Table("ops", name, f"_ops/{name}")


RUN_LEDGER = ops("run_ledger")
LANDING_FILES = ops("landing_files")
CHECK_RESULTS = ops("check_results")
PUBLISHED_VERSIONS = ops("published_versions")
ALERTS = ops("alerts")
QUARANTINE_REPLAYS = ops("quarantine_replays")
RECONCILIATION = ops("reconciliation")
CORRECTIONS = ops("corrections")
DELETION_REQUESTS = ops("deletion_requests")
DELETION_PROOFS = ops("deletion_proofs")
WAREHOUSE_RECONCILIATION = ops("warehouse_reconciliation")
OPS_TABLES = (
    RUN_LEDGER,
    LANDING_FILES,
    CHECK_RESULTS,
    PUBLISHED_VERSIONS,
    ALERTS,
    QUARANTINE_REPLAYS,
    RECONCILIATION,
    CORRECTIONS,
    DELETION_REQUESTS,
    DELETION_PROOFS,
    WAREHOUSE_RECONCILIATION,
)


def landing_folder(env: EnvConfig, spec: TableSpec) -> str:
    """Where a table's files land (not a Delta table: the raw files bronze reads)."""
    return f"{env.landing}/{spec.landing.strip('/')}"


def checkpoint_folder(env: EnvConfig, source: str, query: str, tag: str = "main") -> str:
    """One checkpoint per query and tag of a streamed source; a restart from a chosen point uses a new tag."""
    return f"{env.lake}/_checkpoints/{source}/{query}/{tag}"


def source_tables(source: SourceSpec) -> list[Table]:
    """The bronze, silver and quarantine table of each of the source's tables (and its stream's tables)."""
    found = []
    for name, spec in source.tables.items():
        found += [bronze(source.name, name), silver(source.name, name, spec), quarantine(source.name, name)]
    if source.stream is not None:
        found += [stream_sessions(source.name), stream_minutes(source.name)]
    return found


def conf_tables() -> list[Table]:
    """Every table the conf defines: the ops tables, each source's tables, each conformed model's two. Gold tables
    are defined by the gold package (northstar.gold.tables) and listed by northstar.catalog."""
    found = list(OPS_TABLES)
    for name in list_sources():
        found += source_tables(load_source(name))
    for name in names_in("models"):  # conf/models/<model>.yaml, one per conformed model
        found += [model(name), model_quarantine(name)]
    return found


def lookup(full_name: str) -> Table:
    """The table called `<layer>.<name>`: one the conf defines, or a gold table."""
    known = {t.full_name: t for t in conf_tables()}
    if full_name in known:
        return known[full_name]
    layer, _, name = full_name.partition(".")
    if layer == "gold" and name:
        return gold(name)
    raise ConfigError(
        f"unknown table {full_name}; write <layer>.<name> with one of: {', '.join(sorted(known))}, gold.<table>"
    )
