"""Stream product events: Firehose files -> bronze -> silver events, sessions, minute aggregates (spark-submit).

spark-submit jobs/stream_events.py --source clickstream --trigger processing-time     # operational path
spark-submit jobs/stream_events.py --source clickstream --trigger available-now       # batch path
"""

import sys

from northstar.streaming.commands import stream_main

if __name__ == "__main__":
    sys.exit(stream_main(description=__doc__.splitlines()[0]))
