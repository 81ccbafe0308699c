"""The lake by table name, for a notebook or `pyspark` shell, and the `northstar tables` command.

    from northstar.catalog import open_lake
    spark = open_lake("local")            # or open_lake("dev") with NORTHSTAR_CONF_DIR set
    spark.table("silver.marketplace_orders").show()

Every table of the registry (northstar.lake.tables: each source's bronze/silver/quarantine tables, the
conformed models, the streaming tables, the ops tables) and every gold table (northstar.gold.tables) is
registered as an external table over its location in the session's own in-memory catalog: nothing is written to
a shared metastore.
"""

from __future__ import annotations

import argparse

from pyspark.sql import SparkSession

from northstar.config import EnvConfig, load_env
from northstar.gold.tables import GOLD
from northstar.lake import delta, tables
from northstar.lake.tables import Table
from northstar.spark import get_spark


def all_tables() -> list[Table]:
    """Every table the lake can have: the registry's and the gold tables."""
    return tables.conf_tables() + [g.table for g in GOLD.values()]


def register_tables(spark: SparkSession, env: EnvConfig) -> list[str]:
    """Register every existing table as `<layer>.<name>`; returns the names registered."""
    registered = []
    for table in all_tables():
        path = table.path(env)
        if not delta.table_exists(spark, path):
            continue
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {table.layer}")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {table.full_name} USING DELTA LOCATION '{path}'")
        registered.append(table.full_name)
    return registered


def open_lake(env_name: str = "local") -> SparkSession:
    """A session for `env_name` with the lake's tables registered by name."""
    env = load_env(env_name)
    spark = get_spark(env, app_name="northstar-notebook")
    register_tables(spark, env)
    return spark


def _cmd_tables(args: argparse.Namespace) -> int:
    env = load_env(args.env)
    for table in all_tables():
        print(f"{table.full_name:<40}{table.path(env)}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    """`northstar tables`."""
    listing = commands.add_parser("tables", help="list table names and their locations")
    listing.add_argument("--env", default="local", help="environment: conf/env/<env>.yaml (default: local)")
    listing.set_defaults(action=_cmd_tables)
