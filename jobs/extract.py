"""Extract a source's REST API into the landing zone (spark-submit style entry; no Spark session needed).

python jobs/extract.py --source marketplace --env dev [--table orders] [--start ... --end ...] [--full-refresh]
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["extract", *sys.argv[1:]]))
