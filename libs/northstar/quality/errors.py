"""Errors of the quality commands a user can fix (no Spark import, so the CLI can catch them cheaply)."""


class CorrectionError(ValueError):
    """A correction or rollback was refused; the message says what to pass or fix."""
