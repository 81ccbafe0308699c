"""Open the lake by table name in a notebook or `pyspark` shell.

    from northstar.catalog import open_lake
    spark = open_lake("local")            # or open_lake("dev", conf_dir="conf")
    spark.table("silver.marketplace_orders").show()

Each Delta table of every configured source is registered as `<layer>.<source>_<table>` (bronze, silver,
quarantine), the conformed models as `silver.<model>` / `quarantine.<model>`, plus `ops.run_ledger`,
`ops.landing_files`, the quality tables (`ops.check_results`, `ops.published_versions`, `ops.alerts`,
`ops.quarantine_replays`, `ops.reconciliation`, `ops.corrections`), the streaming tables
(`silver.<source>_sessions`, `gold.<source>_minute`) and `ops.deletion_requests` / `ops.deletion_proofs`, as
external tables over their paths in the
session's own in-memory catalog: nothing is written to a shared metastore.
"""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from northstar import delta
from northstar.config import EnvConfig, list_sources, load_env, load_source
from northstar.spark import get_spark


def table_paths(env: EnvConfig, conf_dir: Path | str | None = None) -> dict[str, str]:
    """Every table name the lake can have, mapped to its location."""
    from northstar.privacy.requests import proofs_path, requests_path
    from northstar.quality.corrections import corrections_path
    from northstar.quality.reconcile import reconciliation_path
    from northstar.streaming import tables as stream_tables

    paths = {
        "ops.run_ledger": env.run_ledger_path,
        "ops.landing_files": env.landing_log_path,
        "ops.check_results": env.check_results_path,
        "ops.published_versions": env.published_versions_path,
        "ops.alerts": env.alerts_path,
        "ops.quarantine_replays": env.quarantine_replays_path,
        "ops.reconciliation": reconciliation_path(env),
        "ops.corrections": corrections_path(env),
        "ops.deletion_requests": requests_path(env),
        "ops.deletion_proofs": proofs_path(env),
    }
    for name in list_sources(conf_dir):
        source = load_source(name, conf_dir)
        for table in source.tables:
            paths[f"bronze.{name}_{table}"] = env.bronze_path(name, table)
            paths[f"silver.{name}_{table}"] = env.silver_path(name, table)
            paths[f"quarantine.{name}_{table}"] = env.quarantine_path(name, table)
        if source.stream is not None:  # sessions and minute aggregates of a streamed source
            paths.update(stream_tables.table_paths(env, source))
    from northstar.models.runner import model_path, model_quarantine_path
    from northstar.models.spec import list_models

    for model in list_models(conf_dir):  # conformed models: silver.orders, quarantine.orders, ...
        paths[f"silver.{model}"] = model_path(env, model)
        paths[f"quarantine.{model}"] = model_quarantine_path(env, model)
    from northstar.gold.runner import GOLD_TABLES, gold_path
    from northstar.warehouse.publish import reconciliation_path

    paths.update({f"gold.{name}": gold_path(env, name) for name in GOLD_TABLES})
    paths["ops.warehouse_reconciliation"] = reconciliation_path(env)
    return paths


def register_tables(spark: SparkSession, env: EnvConfig, conf_dir: Path | str | None = None) -> list[str]:
    """Register every existing table as `<layer>.<name>`; returns the names registered."""
    registered = []
    for name, path in table_paths(env, conf_dir).items():
        if not delta.table_exists(spark, path):
            continue
        database, table = name.split(".", 1)
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        spark.sql(f"CREATE TABLE IF NOT EXISTS {database}.{table} USING DELTA LOCATION '{path}'")
        registered.append(name)
    return registered


def open_lake(env_name: str = "local", conf_dir: Path | str | None = None) -> SparkSession:
    """A session for `env_name` with the lake's tables registered by name."""
    env = load_env(env_name, conf_dir)
    spark = get_spark(env, app_name="northstar-notebook")
    register_tables(spark, env, conf_dir)
    return spark
