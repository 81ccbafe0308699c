#!/usr/bin/env bash
# Set up this checkout on a fresh machine: a Python 3.11 venv from requirements.lock, the project installed
# in it, and the JVM jars (Delta, hadoop-aws + AWS SDK bundle, AWS SDK v1 for DynamoDB, PostgreSQL JDBC)
# fetched by Maven into .jars/, and Debezium (embedded engine + PostgreSQL connector, for the local CDC capture,
# scripts/debezium/) into .jars-debezium/: its Kafka and Jackson versions must never meet Spark's.
# Idempotent: when nothing changed it finishes in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin="$candidate"; break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  echo "setup: Python 3.11 is required (EMR Serverless emr-spark-8.0.0 runs 3.11); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if ! java -version 2>&1 | grep -q 'version "17'; then
  echo "setup: Java 17 is required by Spark 4.0 (found: $(java -version 2>&1 | head -n 1))" >&2
  exit 1
fi
command -v mvn >/dev/null 2>&1 || { echo "setup: Maven (mvn) is required to fetch the jars" >&2; exit 1; }

# Python: reinstall only when the lock file or pyproject.toml changed.
stamp=".venv/.northstar-installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python dependencies from requirements.lock ..."
  [ -x .venv/bin/python ] || "$python_bin" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r requirements.lock
  .venv/bin/python -m pip install --quiet --no-deps -e .
  echo "$want" > "$stamp"
fi

# JVM jars: fetch only what is missing.
missing=0
for jar in delta-spark_2.13-4.0.0.jar delta-storage-4.0.0.jar hadoop-aws-3.4.1.jar bundle-2.24.6.jar postgresql-42.7.4.jar \
    aws-java-sdk-core-1.12.262.jar aws-java-sdk-dynamodb-1.12.262.jar; do
  [ -s ".jars/$jar" ] || missing=1
done
if [ "$missing" = 1 ]; then
  echo "setup: fetching jars from Maven Central into .jars/ ..."
  mvn -q -B -f scripts/pom.xml dependency:copy-dependencies -DoutputDirectory="$PWD/.jars"
fi
# Debezium's jars: fetched when missing or when its pom changed (the stamp is written after a complete copy).
debezium_stamp=".jars-debezium/.fetched"
debezium_want="$(sha256sum scripts/debezium/pom.xml | cut -d' ' -f1)"
if [ "$(cat "$debezium_stamp" 2>/dev/null)" != "$debezium_want" ]; then
  echo "setup: fetching the Debezium jars from Maven Central into .jars-debezium/ ..."
  rm -rf .jars-debezium
  mvn -q -B -f scripts/debezium/pom.xml dependency:copy-dependencies -DoutputDirectory="$PWD/.jars-debezium"
  echo "$debezium_want" > "$debezium_stamp"
fi
echo "setup: ready (.venv, .jars, .jars-debezium)"
