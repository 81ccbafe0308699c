"""`python -m northstar.cli ...`: the same as the `northstar` command."""

import sys

from northstar.cli import main

sys.exit(main())
