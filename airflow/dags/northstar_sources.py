"""Airflow: One DAG per source (extract -> bronze -> silver -> ...), generated from conf/orchestration/pipelines.yaml."""

from northstar.orchestration.dags import source_dags

globals().update(source_dags())
