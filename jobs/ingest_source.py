"""Run bronze then silver for a source in one Spark application (spark-submit entry point).

spark-submit jobs/ingest_source.py --source marketplace --env local
"""

import sys

from northstar.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(("bronze", "silver"), description=__doc__.splitlines()[0]))
