"""Errors a user can act on and the exit code each gives: the one place both are defined.

Every error the `northstar` command reports as a message rather than a traceback derives from
`NorthstarError`; `guarded` prints its `report()` on stderr and returns its `exit_code`. Domain errors
(a bad conf file, schema drift, a failed extract, a stopping quality check, a refused correction) subclass it
beside the code that raises them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_DRIFT = 0, 1, 2, 3
EXIT_BUSY = 4  # another run of the table holds its run lease (lake/run_lock.py); nothing was changed

A = TypeVar("A")


class NorthstarError(Exception):
    """An error whose message tells the user what was wrong and what to do."""

    exit_code = EXIT_FAILED
    label = "failed"

    def report(self) -> str:
        """The line(s) the CLI prints: `<label>: <message>`."""
        return f"{self.label}: {self}" if self.label else str(self)


class ConfigError(NorthstarError, ValueError):
    """A configuration file is missing or invalid; the message says which file, which field and why."""

    exit_code = EXIT_CONFIG
    label = "configuration error"


def guarded(action: Callable[[A], int], args: A) -> int:
    """Run a command; an error the user can fix becomes its message on stderr and its exit code."""
    try:
        return action(args)
    except NorthstarError as err:
        print(err.report(), file=sys.stderr)
        return err.exit_code
