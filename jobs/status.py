"""Freshness, lag and run metrics per table from the run ledger; with --publish, to CloudWatch and SNS.

spark-submit jobs/status.py --env prod --publish
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["status", *sys.argv[1:]]))
