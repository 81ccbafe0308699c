"""Publish the gold tables to Snowflake (staging + MERGE) and reconcile them with the lake (spark-submit entry point).

spark-submit jobs/publish_snowflake.py --env prod [--version fact_orders=12 ...] [--run-id ID]
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["publish", *sys.argv[1:]]))
