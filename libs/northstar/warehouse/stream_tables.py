"""What the publish needs to know about a table (`Publishable`), and the two tables of a streamed source that are
published next to the batch gold tables: silver.<source>_sessions (session facts) and gold.<source>_minute
(minute aggregates), written by the stream's MERGEs (northstar.streaming.apply).

`GoldTable` (gold/tables.py) already has every attribute `Publishable` names, so the batch tables are published
as they are; `StreamTable` is the same shape for a stream table. Its metadata lives here, once: the stream code
defines how the rows are built, this module what they mean in the warehouse (key, reconciled counts, PII).
Neither stream table has a date column (their times are timestamps), so both are reconciled as a whole
(partition None), like the customer dimension. Table descriptions carry no single quote (fakesnow 0.12.1 cannot
store a table comment with one: tests/unit/test_warehouse_comments.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from northstar.gold.tables import WAREHOUSE_COLUMNS
from northstar.lake import tables
from northstar.lake.tables import Table


class Publishable(Protocol):
    """A lake table the warehouse publish can carry: its name (the warehouse table's), lake table, MERGE key,
    day partition (None: reconciled whole), reconciled sums, PII columns and descriptions."""

    @property
    def name(self) -> str: ...
    @property
    def table(self) -> Table: ...
    @property
    def key(self) -> tuple[str, ...]: ...
    @property
    def partition(self) -> str | None: ...
    @property
    def amounts(self) -> tuple[str, ...]: ...
    @property
    def description(self) -> str: ...

    def pii_columns(self, columns: Iterable[str]) -> list[str]: ...
    def column_descriptions(self, *, warehouse: bool = False) -> dict[str, str]: ...


@dataclass(frozen=True)
class StreamTable:
    """A table the event stream MERGEs every micro-batch, as the publish sees it. `pii`: columns that identify
    a person (masked like customer tokens); `columns`: (column, description) in the table's order."""

    name: str
    table: Table
    key: tuple[str, ...]
    amounts: tuple[str, ...]
    pii: tuple[str, ...]
    description: str
    columns: tuple[tuple[str, str], ...]
    partition: str | None = None

    def pii_columns(self, columns: Iterable[str]) -> list[str]:
        return [c for c in columns if c in self.pii]

    def column_descriptions(self, *, warehouse: bool = False) -> dict[str, str]:
        return {**dict(self.columns), **(WAREHOUSE_COLUMNS if warehouse else {})}


_UPDATED = ("_updated_at", "when the stream last recomputed this row, UTC")


def sessions(source: str) -> StreamTable:
    """silver.<source>_sessions -> <SOURCE>_SESSIONS: one row per visitor session (30 minutes of inactivity
    close one). The visitor key and both tokens are personal data (HMAC tokens of the user and device ids,
    conf/sources/<source>.yaml `pii:`): masked for every role but the PII reader."""
    return StreamTable(
        name=f"{source}_sessions",
        table=tables.stream_sessions(source),
        key=("session_id",),
        amounts=("events", "pages"),
        pii=("visitor_key", "user_token", "device_token"),
        description=(
            "Product-event sessions, one row per visitor session (closed after 30 minutes without events); "
            "refreshed by the micro-batches of the event stream."
        ),
        columns=(
            ("session_id", "SHA-256 of the visitor key and the session start: the session's key"),
            (
                "visitor_key",
                "the user token (u:) or, for anonymous visitors, the device token (d:); personal data",
            ),
            ("user_token", "HMAC-SHA256 token of the user id (null for anonymous visitors); personal data"),
            ("device_token", "HMAC-SHA256 token of the device id; personal data"),
            ("session_start", "event time of the session's first event, UTC"),
            ("session_end", "event time of the session's last event, UTC"),
            ("duration_seconds", "session_end - session_start in seconds"),
            ("pages", "distinct pages seen in page and product views"),
            ("events", "events in the session"),
            ("converted", "the session holds an order_placed event"),
            ("order_id", "the order placed in the session, if any"),
            ("platform", "platform of the session's first event (web, ios, android, backend)"),
            _UPDATED,
        ),
    )


def minutes(source: str) -> StreamTable:
    """gold.<source>_minute -> <SOURCE>_MINUTE: per minute of event time, the operational dashboard figures.
    No user key, nothing masked."""
    return StreamTable(
        name=f"{source}_minute",
        table=tables.stream_minutes(source),
        key=("minute",),
        amounts=("events", "orders", "errors"),
        pii=(),
        description=(
            "Operational dashboard figures per minute of event time (events, checkout funnel, errors, "
            "visitors); refreshed by the micro-batches of the event stream, late events correct their minute."
        ),
        columns=(
            ("minute", "the minute of event time, UTC (truncated)"),
            ("events", "events in the minute"),
            ("page_views", "page_view events"),
            ("product_views", "product_view events"),
            ("add_to_carts", "add_to_cart events"),
            ("checkouts", "checkout_started events"),
            ("orders", "order_placed events"),
            ("errors", "error events"),
            ("visitors", "distinct visitors (user or device token) with an event in the minute"),
            ("max_event_time", "the newest event time in the minute, UTC"),
            ("error_rate", "errors / events, 6 decimals"),
            _UPDATED,
        ),
    )


def stream_tables(source: str) -> list[StreamTable]:
    """The published tables of a streamed source: sessions, then minutes."""
    return [sessions(source), minutes(source)]
