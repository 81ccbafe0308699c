"""Daily reconciliation: orders vs payments vs fulfillment vs finance, lake vs source (spark-submit entry point).

spark-submit jobs/reconcile.py --env local --date 2026-11-24 [--days 7] [--fail-on-breach]
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["reconcile", *sys.argv[1:]]))
