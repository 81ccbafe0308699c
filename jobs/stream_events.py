"""Stream product events: Firehose files -> bronze -> silver events, sessions, minute aggregates (spark-submit).

spark-submit jobs/stream_events.py --source clickstream --trigger processing-time     # operational path
spark-submit jobs/stream_events.py --source clickstream --trigger available-now       # batch path
"""

import sys

from northstar.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", "run", *sys.argv[1:]]))
