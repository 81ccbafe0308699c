"""Ingest a source's new landing files into its bronze Delta tables (spark-submit entry point).

spark-submit jobs/bronze_ingest.py --source marketplace --env local
"""

import sys

from northstar.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(("bronze",), description=__doc__.splitlines()[0]))
