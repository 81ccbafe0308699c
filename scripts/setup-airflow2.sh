#!/usr/bin/env bash
# A second, small venv (.venv-airflow2) with Apache Airflow 2.11 from requirements-airflow2.lock and the project
# installed with --no-deps, so tests/integration/test_airflow2_import.py can prove the DAGs import on Airflow 2.
# Idempotent: reinstalls only when the lock file changed (about 2 minutes on 2 cores the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin="${PYTHON:-python3.11}"
stamp=".venv-airflow2/.northstar-installed"
want="$(sha256sum requirements-airflow2.lock | cut -d' ' -f1)"
if [ ! -x .venv-airflow2/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup-airflow2: installing Apache Airflow 2.11 into .venv-airflow2 ..."
  [ -x .venv-airflow2/bin/python ] || "$python_bin" -m venv .venv-airflow2
  .venv-airflow2/bin/python -m pip install --quiet -r requirements-airflow2.lock
  echo "$want" > "$stamp"
fi
# the project's code (no dependencies: the DAG import needs only pydantic/PyYAML/requests, which Airflow brings)
.venv-airflow2/bin/python -m pip install --quiet --no-deps -e .
echo "setup-airflow2: ready (.venv-airflow2)"
