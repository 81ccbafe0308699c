"""Bring product events the stream dropped as late (beyond the watermark) from bronze into silver (spark-submit).

spark-submit jobs/stream_catch_up.py --source clickstream --env prod [--since 2026-11-24T00:00:00Z]
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", "catch-up", *sys.argv[1:]]))
