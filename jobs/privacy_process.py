"""Process pending PII deletion requests: delete, purge, vacuum, and write a proof per table (spark-submit).

spark-submit jobs/privacy_process.py --env prod
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["privacy", "process", *sys.argv[1:]]))
