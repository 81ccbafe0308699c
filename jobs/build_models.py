"""Build the conformed models (silver.orders, refunds, payments, shipments) from the sources' silver tables (spark-submit entry point).

spark-submit jobs/build_models.py --name orders|refunds|all --env local [--full-refresh]
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["model", *sys.argv[1:]]))
