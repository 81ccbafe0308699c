"""Run bronze then silver for a source in one Spark application (spark-submit entry point).

spark-submit jobs/ingest_source.py --source marketplace --env local
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "--layer", "all", *sys.argv[1:]]))
