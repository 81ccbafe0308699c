"""The names of the gold tables, without Spark, in the order gold/tables.py defines them.

Airflow's scheduler and workers have no pyspark (the jobs run on EMR Serverless), yet the DAG factory must name
the warehouse tables a publish updates (one Airflow asset each, orchestration/assets.py). gold/tables.py `GOLD`
is the definition of each table; tests/integration/test_airflow_dags.py fails when the two lists differ.
Every table here is published to the warehouse (warehouse/publish.py `publish_all` publishes each GOLD table).
"""

from __future__ import annotations

GOLD_TABLE_NAMES: tuple[str, ...] = (
    "fact_orders",
    "fact_order_lines",
    "fact_refunds",
    "daily_revenue",
    "fact_payments",
    "fact_shipments",
    "dim_customer",
    "order_status",
    "order_fulfilment",
)
