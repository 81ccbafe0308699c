# One entry point for everything; each target is one line in README.md.
.PHONY: setup setup-airflow2 setup-dbt services demo test test-fast bench bench-merge bench-extract bench-stream bench-commits bench-freshness bench-publish lint format clean

setup:  ## Python venv from requirements.lock + JVM jars via Maven (idempotent)
	@scripts/setup.sh

setup-airflow2:  ## .venv-airflow2: Apache Airflow 2.11 to prove the DAGs import on the 2.x line (idempotent)
	@scripts/setup-airflow2.sh

setup-dbt:  ## .venv-dbt: dbt-core + dbt-snowflake + fakesnow[server] to build dbt/ against `fakesnow -s` (idempotent)
	@scripts/setup-dbt.sh

demo: setup  ## partner API simulator -> extract -> bronze + silver end to end on the local stack
	.venv/bin/northstar demo

services:  ## the local PostgreSQL the extraction and CDC tests read (scripts/postgres.sh: install, init, wal_level logical, start; idempotent)
	@scripts/postgres.sh

test: setup setup-airflow2 setup-dbt services lint  ## lint, then the whole test suite (what CI runs)
	.venv/bin/pytest -n 2 --dist loadfile

test-fast: setup  ## unit tests only
	.venv/bin/pytest tests/unit

bench: setup  ## bronze/silver throughput vs a plain-Spark baseline (RECORDS=200000)
	.venv/bin/northstar bench --records $${RECORDS:-200000}

bench-merge: setup  ## silver MERGE cost vs table size, with and without partition pruning
	.venv/bin/northstar bench-merge

bench-extract: setup  ## API landing path records/s and MB/s vs plain requests + gzip (ORDERS=3000)
	.venv/bin/northstar bench-extract --orders $${ORDERS:-3000}

bench-stream: setup  ## event stream: events/s/core through bronze and sessions vs plain Spark, latency (EVENTS=200000)
	NORTHSTAR_USER_TOKEN_KEY=$${NORTHSTAR_USER_TOKEN_KEY:-bench-only-key} .venv/bin/northstar bench-stream --events $${EVENTS:-200000}

bench-freshness: setup services  ## source change -> Snowflake stand-in per flow through one `northstar cycle`, vs the briefs' targets (ROUNDS=3)
	.venv/bin/northstar bench-freshness --rounds $${ROUNDS:-3}

bench-publish: setup  ## warehouse publish: full load, the same change into 1M vs 10M rows, noop, bulk vs Python loader (SIZES, CHANGED)
	.venv/bin/northstar bench-publish --sizes $${SIZES:-1000000 10000000} --changed $${CHANGED:-10000}

bench-commits: setup  ## Delta commit through the DynamoDB commit coordinator vs a file-system commit, s3a on moto (COMMITS=10)
	.venv/bin/python scripts/bench_commits.py --commits $${COMMITS:-10}

lint: setup  ## ruff (lint + format), the import-layer contract, mypy on libs/
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports && .venv/bin/mypy

format: setup
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

clean:
	rm -rf data bench-data spark-warehouse .pytest_cache
