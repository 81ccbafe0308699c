"""Airflow: Backfill DAGs (one per source, window as parameters) on the backfill EMR Serverless app, generated from conf."""

from northstar.orchestration.dags import backfill_dags

globals().update(backfill_dags())
