"""Extraction state per table: the watermark, and the run in progress (its window and next page).

The state lives next to the landing data (`<table landing>/_state.json`; backfill windows get their own
`_state-backfill-<start>-<end>.json`) and is rewritten whole, atomically, only after a page is landed. So
a crash at any point resumes at the first page not yet committed: no gap, and the re-fetched page
overwrites its own object (same name), so no duplicate page either.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from northstar.landing.writer import ObjectStore

STATE_VERSION = 1


@dataclass
class RunProgress:
    """A run that has started and not finished: resumed by the next run of the same table and window."""

    run_id: str
    mode: str  # incremental | full | backfill
    since: str | int | None  # the cursor-field lower bound sent to the API (inclusive), None = everything
    until: str | int | None  # upper bound (exclusive), None = open
    next: str | int | None = None  # pagination position of the next page to fetch (None: first page)
    page: int = 0  # pages landed so far in this run
    records: int = 0
    max_cursor: str | int | None = None  # highest cursor-field value landed in this run
    declared_total: int | None = (
        None  # the records the query matches, as its first page said (checked at the end)
    )


@dataclass
class TableState:
    """Committed state of one table (one state file)."""

    watermark: str | int | None = None  # highest cursor-field value of a finished incremental/full run
    last_run_id: str | None = None
    last_finished_at: str | None = None
    in_progress: RunProgress | None = None
    runs_finished: int = 0
    history: list[dict] = field(default_factory=list)  # the last few finished runs, newest last

    def to_json(self) -> bytes:
        body = {"version": STATE_VERSION, **asdict(self)}
        return json.dumps(body, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> TableState:
        body = json.loads(data)
        body.pop("version", None)
        progress = body.pop("in_progress", None)
        return cls(**body, in_progress=RunProgress(**progress) if progress else None)


def state_key(table_folder: str, since: str | None = None, until: str | None = None) -> str:
    """The state object of a table (`since`/`until` given: of that backfill window)."""
    folder = table_folder.strip("/")
    if since is None and until is None:
        return f"{folder}/_state.json"
    slug = re.sub(r"[^0-9A-Za-z]+", "", f"{since or 'start'}-{until or 'open'}")
    return f"{folder}/_state-backfill-{slug}.json"


class StateStore:
    """Load and commit one state object."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self.store, self.key = store, key

    def load(self) -> TableState:
        data = self.store.get(self.key)
        return TableState() if data is None else TableState.from_json(data)

    def commit(self, state: TableState) -> None:
        self.store.put(self.key, state.to_json())
