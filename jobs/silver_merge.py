"""MERGE a source's new bronze rows into its silver Delta tables, latest version wins (spark-submit entry point).

spark-submit jobs/silver_merge.py --source marketplace --env local [--full-refresh]
"""

import sys

from northstar.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main(("silver",), description=__doc__.splitlines()[0]))
