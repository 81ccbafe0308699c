"""Airflow DAGs generated from conf: pipeline specs, EMR Serverless job drivers, the DAG factory."""
