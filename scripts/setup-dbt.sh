#!/usr/bin/env bash
# A separate venv (.venv-dbt) with dbt-core + dbt-snowflake + fakesnow[server] from requirements-dbt.lock, so
# tests/integration/test_dbt_project.py can run `dbt build` on dbt/ against `fakesnow -s` (docs/dbt.md).
# Not in requirements.lock: dbt-snowflake's pins conflict with the main venv's. Idempotent: reinstalls only
# when the lock file changed (about a minute the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin="${PYTHON:-python3.11}"
stamp=".venv-dbt/.northstar-installed"
want="$(sha256sum requirements-dbt.lock | cut -d' ' -f1)"
if [ ! -x .venv-dbt/bin/dbt ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup-dbt: installing dbt-core + dbt-snowflake + fakesnow[server] into .venv-dbt ..."
  [ -x .venv-dbt/bin/python ] || "$python_bin" -m venv .venv-dbt
  .venv-dbt/bin/python -m pip install --quiet -r requirements-dbt.lock
  echo "$want" > "$stamp"
fi
echo "setup-dbt: ready (.venv-dbt)"
