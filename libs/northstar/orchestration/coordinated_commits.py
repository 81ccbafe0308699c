"""Put existing Delta tables under the env's DynamoDB commit coordinator; say which tables already are.

A session built by get_spark for an env with `delta_commit_coordinator:` gives every table it *creates* the
coordinator (session defaults). A table created before commits through the file system until it is converted
here, once: `ALTER TABLE ... SET TBLPROPERTIES` with the two coordinator properties. That converting commit
itself still goes through the file system (Delta's documented caveat), so run it while nothing else writes to
the table (docs/runbooks/concurrent-writers.md). Re-running is a no-op for tables already converted.
`--release` goes the other way (Delta's DROP FEATURE), e.g. before a Delta upgrade.
"""

from __future__ import annotations

import json

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from northstar.catalog import all_tables
from northstar.config import ConfigError, EnvConfig
from northstar.config.env import COORDINATOR_CONF_PROPERTY, COORDINATOR_NAME_PROPERTY, CommitCoordinatorSpec

CONVERTED, ALREADY, NOT_CREATED = "converted", "already coordinated", "not created yet"
RELEASED, NOT_COORDINATED = "back on file-system commits", "not coordinated"


class CoordinatorConflict(ConfigError):
    """A table already commits through another coordinator (or another DynamoDB table); says how to move it."""


def table_properties(spark: SparkSession, path: str) -> dict[str, str] | None:
    """The Delta table's properties, or None when there is no Delta table at `path`."""
    if not DeltaTable.isDeltaTable(spark, path):
        return None
    detail = DeltaTable.forPath(spark, path).detail().select("properties").first()
    assert detail is not None  # a Delta table's detail is always one row
    return dict(detail["properties"])


def coordinator_of(properties: dict[str, str]) -> tuple[str, dict[str, str]] | None:
    """(coordinator name, its conf) of a table, or None when it commits through the file system."""
    name = properties.get(COORDINATOR_NAME_PROPERTY)
    if name is None:
        return None
    return name, json.loads(properties.get(COORDINATOR_CONF_PROPERTY) or "{}")


def coordinate_table(spark: SparkSession, path: str, spec: CommitCoordinatorSpec) -> str:
    """Convert one table (idempotent): CONVERTED, ALREADY, or NOT_CREATED (a new table gets it from the session)."""
    properties = table_properties(spark, path)
    if properties is None:
        return NOT_CREATED
    wanted = spec.table_properties()
    current = coordinator_of(properties)
    if current == ("dynamodb", json.loads(wanted[COORDINATOR_CONF_PROPERTY])):
        return ALREADY
    if current is not None:
        raise CoordinatorConflict(
            f"{path} already commits through coordinator {current[0]!r} with {current[1]}, not DynamoDB table "
            f"{spec.dynamodb_table!r} at {spec.dynamodb_endpoint}. A coordinated table cannot be re-pointed in "
            "place: stop its writers, run ALTER TABLE delta.`<path>` DROP FEATURE 'coordinatedCommits-preview', "
            "then run this command again (docs/runbooks/concurrent-writers.md)."
        )
    assignments = ", ".join(f"'{key}' = '{value}'" for key, value in wanted.items())
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
    return CONVERTED


def release_table(spark: SparkSession, path: str) -> str:
    """Take a table off its coordinator (idempotent): Delta's DROP FEATURE backfills every commit and moves the
    table back to file-system commits. Needed before a Delta upgrade that no longer knows the preview feature."""
    properties = table_properties(spark, path)
    if properties is None:
        return NOT_CREATED
    if coordinator_of(properties) is None:
        return NOT_COORDINATED
    spark.sql(f"ALTER TABLE delta.`{path}` DROP FEATURE 'coordinatedCommits-preview'")
    return RELEASED


def coordinate_lake(
    spark: SparkSession,
    env: EnvConfig,
    names: list[str] | None = None,
    release: bool = False,
) -> dict[str, str]:
    """Convert (or, with `release`, take off) every table of the lake or only `names`: name -> outcome."""
    spec = require_coordinator(env)
    paths = {table.full_name: table.path(env) for table in all_tables()}
    unknown = sorted(set(names or []) - set(paths))
    if unknown:
        raise ConfigError(
            f"--table {', '.join(unknown)}: no such table in env {env.name} (`northstar tables --env "
            f"{env.name}` lists them)"
        )
    if release:
        return {name: release_table(spark, paths[name]) for name in names or sorted(paths)}
    return {name: coordinate_table(spark, paths[name], spec) for name in names or sorted(paths)}


def require_coordinator(env: EnvConfig) -> CommitCoordinatorSpec:
    if env.delta_commit_coordinator is None:
        raise ConfigError(
            f"conf/env/{env.name}.yaml: no delta_commit_coordinator section; add one with dynamodb_table and "
            "region (see conf/env/dev.yaml and docs/concurrent-writers.md)"
        )
    return env.delta_commit_coordinator
