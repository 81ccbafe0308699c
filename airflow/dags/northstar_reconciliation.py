"""Airflow: The daily financial reconciliation DAG, due by 06:30 UTC (deadline guard and check), generated from conf."""

from northstar.orchestration.dags import reconciliation_dag

globals().update(reconciliation_dag())
