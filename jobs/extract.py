"""Extract a source's tables into the landing zone (spark-submit entry point).

spark-submit jobs/extract.py --source shop_db --env local [--table orders] [--start ISO --end ISO] [--full-refresh]
"""

import sys

from northstar.cli import extract_main

if __name__ == "__main__":
    sys.exit(extract_main(description=__doc__.splitlines()[0]))
