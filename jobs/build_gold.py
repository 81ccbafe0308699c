"""Build the gold facts and the daily revenue mart from silver.orders / silver.refunds (spark-submit entry point).

spark-submit jobs/build_gold.py --env local [--full-refresh]
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["gold", *sys.argv[1:]]))
