"""Retry a Delta commit that lost a race with a concurrent writer (another EMR Serverless app, a backfill).

Delta's optimistic concurrency refuses a commit whose reads were changed by a commit in between
(ConcurrentAppendException, ConcurrentDeleteReadException, ... - the ConcurrentModificationException family).
The action is re-run from scratch, so it re-reads the target's latest version; the MERGE is idempotent (it
updates only with strictly newer versions), so a retry never double-applies. tenacity does the waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

log = logging.getLogger(__name__)
T = TypeVar("T")
# Delta's conflict exceptions (io.delta.exceptions.*) and their error classes as they reach Python
CONFLICT_MARKERS = (
    "ConcurrentModificationException",
    "ConcurrentAppendException",
    "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException",
    "ConcurrentTransactionException",
    "MetadataChangedException",
    "ProtocolChangedException",
    "DELTA_CONCURRENT_",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",  # two writers creating one table: the loser's version 0 lost the race
)
ATTEMPTS = 5


def is_conflict(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}"
    return any(marker in text for marker in CONFLICT_MARKERS)


def retry_on_conflict(
    action: Callable[[], T], what: str, attempts: int = ATTEMPTS, max_wait: float = 30
) -> T:
    """Run `action`; on a Delta write conflict wait (random exponential, capped) and run it again."""

    def note(state: RetryCallState) -> None:
        log.warning("%s: concurrent Delta commit, retry %d of %d", what, state.attempt_number, attempts - 1)

    retrying = Retrying(
        retry=retry_if_exception(is_conflict),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.5, max=max_wait),
        before_sleep=note,
        reraise=True,
    )
    return retrying(action)
