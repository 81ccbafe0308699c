"""Airflow: Housekeeping DAGs (monitoring, PII deletion deadlines, late stream events), generated from conf."""

from northstar.orchestration.dags import housekeeping_dags

globals().update(housekeeping_dags())
