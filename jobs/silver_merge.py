"""MERGE a source's new bronze rows into its silver Delta tables, latest version wins (spark-submit entry point).

spark-submit jobs/silver_merge.py --source marketplace --env local [--full-refresh]
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "--layer", "silver", *sys.argv[1:]]))
