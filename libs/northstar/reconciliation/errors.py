"""Errors of the reconciliation and correction commands a user can fix (no Spark import)."""

from northstar.errors import EXIT_CONFIG, NorthstarError


class CorrectionError(NorthstarError, ValueError):
    """A correction or rollback was refused; the message says what to pass or fix."""

    exit_code = EXIT_CONFIG
    label = ""
