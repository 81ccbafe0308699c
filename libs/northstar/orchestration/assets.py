"""The Airflow assets of the published gold tables: one URI per warehouse table, from the env's `snowflake:`.

`snowflake://<account>/<DATABASE>/<SCHEMA>/<TABLE>` is the form the Snowflake provider's URI sanitizer accepts
(apache-airflow-providers-snowflake, `assets/snowflake.py`: an account as the host, then exactly database,
schema and table) and the one its `create_asset` builds. The table is the one warehouse/publish.py MERGEs
into: `<database>.<analytics_schema>.<TABLE>` (upper case). Pure functions, no Airflow import: the DAG factory
turns the URIs into `Asset`s (Airflow 3) or `Dataset`s (Airflow 2.11).
"""

from __future__ import annotations

from northstar.config import EnvConfig
from northstar.config.env import SnowflakeSpec
from northstar.gold.names import GOLD_TABLE_NAMES

SCHEME = "snowflake"


def warehouse_table_uri(spec: SnowflakeSpec, table: str) -> str:
    """The asset URI of the warehouse table that gold.<table> is published to."""
    return f"{SCHEME}://{spec.account}/{spec.database}/{spec.analytics_schema}/{table.upper()}"


def published_table_uris(env: EnvConfig) -> dict[str, str]:
    """gold table name -> asset URI of its warehouse table; empty when the env publishes nowhere."""
    if env.snowflake is None:
        return {}
    return {name: warehouse_table_uri(env.snowflake, name) for name in GOLD_TABLE_NAMES}
