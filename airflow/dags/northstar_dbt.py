"""Airflow: The dbt DAG (dbt build of the finance mart), scheduled on the assets of the published gold tables."""

from northstar.orchestration.dags import dbt_dag

globals().update(dbt_dag())
