#!/usr/bin/env bash
# Build the EMR Serverless release (venv-pack archive + jobs + conf + jars + version stamp) and, with an env,
# upload it to that env's emr.artifacts: scripts/package.sh [--env dev] [--version V] (docs/orchestration.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
exec .venv/bin/northstar package "$@"
