"""Ingest a source's new landing files into its bronze Delta tables (spark-submit entry point).

spark-submit jobs/bronze_ingest.py --source marketplace --env local
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "--layer", "bronze", *sys.argv[1:]]))
