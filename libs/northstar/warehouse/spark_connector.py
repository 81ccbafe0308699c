"""The production load path: the Spark Snowflake connector (net.snowflake.spark.snowflake) writes a gold
DataFrame into the per-run staging table; the MERGE then runs over the Python connector (publish.py).

Locally the connector cannot reach fakesnow (docs/snowflake.md records what was tried), so this module is
tested up to the options it builds; the write itself runs only against a real account.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame

from northstar.config.env import SnowflakeSpec
from northstar.secrets import resolve

SOURCE = "net.snowflake.spark.snowflake"


def connector_options(spec: SnowflakeSpec, *, secretsmanager_client: Any = None) -> dict[str, str]:
    """sfOptions for the connector, credentials resolved from the spec's secret references (never logged:
    callers must not print this dict)."""

    def value(ref: str) -> str:
        return resolve(ref, secretsmanager_client=secretsmanager_client).value

    return {
        "sfURL": f"{spec.account}.snowflakecomputing.com",
        "sfUser": value(spec.user),
        "sfPassword": value(spec.password),
        "sfDatabase": spec.database,
        "sfSchema": spec.analytics_schema,
        "sfWarehouse": spec.warehouse,
        "sfRole": spec.role,
        "sfTimezone": "UTC",
        # the staging table is created by our own DDL (same types as the target); never let the connector
        # recreate or retype it
        "truncate_table": "on",
        "usestagingtable": "off",
        "column_mapping": "name",
        "column_mismatch_behavior": "error",
    }


def write_staging(frame: DataFrame, options: dict[str, str], staging_table: str) -> None:
    """Overwrite the staging table with `frame` (truncate + load, so a retry of the same run replaces it)."""
    frame.write.format(SOURCE).options(**options).option("dbtable", staging_table).mode("overwrite").save()
