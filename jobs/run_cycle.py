"""One source's whole cycle in one Spark application: extract -> bronze -> silver -> models -> gold -> publish
(spark-submit entry point; one EMR Serverless job run per cycle instead of one per stage).

spark-submit jobs/run_cycle.py --source shop_db --env local [--start ISO --end ISO] [--no-publish]
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["cycle", *sys.argv[1:]]))
