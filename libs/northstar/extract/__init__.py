"""Extraction from source systems into the landing zone: REST APIs (`rest`) and PostgreSQL over JDBC (`jdbc`)."""

from northstar.errors import NorthstarError


class ExtractError(NorthstarError, RuntimeError):
    """An extraction could not finish; the message names the source, the table or endpoint, what went wrong
    and what to do (never a secret). State is kept, so the next run resumes."""

    label = "extract failed"
