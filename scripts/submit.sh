#!/usr/bin/env bash
# spark-submit a job from jobs/ on the local stack with the project's jars, the way EMR Serverless runs it:
#   scripts/submit.sh jobs/ingest_source.py --source marketplace --env local
# (On EMR the runtime provides Delta; the other jars are passed as --jars from S3.)
set -euo pipefail
cd "$(dirname "$0")/.."
jars=$(ls .jars/*.jar | grep -v -e '/bundle-' -e '/hadoop-aws-' | paste -sd, -)
export PATH="$PWD/.venv/bin:$PATH"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$PWD/.venv/bin/python}"
exec .venv/bin/spark-submit --master "${NORTHSTAR_SPARK_MASTER:-local[*]}" --jars "$jars" \
  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
  "$@"
