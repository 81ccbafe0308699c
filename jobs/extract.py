"""Extract a source into the landing zone: its REST API (`api:`) or PostgreSQL tables (`jdbc:`) (entry point).

spark-submit jobs/extract.py --source shop_db --env local [--table orders] [--start ISO --end ISO] [--full-refresh]
python jobs/extract.py --source marketplace --env local [--max-requests N]   # a REST API needs no Spark
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
