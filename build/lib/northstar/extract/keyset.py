"""Keyset pagination SQL for PostgreSQL: one bounded, index-ordered page per query, no I/O here.

A window [start, end) of a table is read in pages ordered by (cursor, primary key):

    first page:  WHERE cursor >= start AND cursor < end            ORDER BY cursor, pk LIMIT n
    next pages:  WHERE (cursor, pk) > (last cursor, last pk) AND cursor < end   ORDER BY ... LIMIT n

With an index on (cursor, pk) every page is an index range scan that stops after n rows, however large the
table: no OFFSET, no COUNT, no scan of the whole table. Rows sharing one cursor value exactly are split
between pages by the key, so none is skipped or read twice. A full refresh has no lower bound and then reads
the rows whose cursor is NULL (never seen by an incremental run) in pages ordered by the key alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ROWS, NULL_CURSOR = "rows", "null_cursor"


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, double-quoted (names are validated by the config; quotes are doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_relation(relation: str) -> str:
    schema, _, table = relation.rpartition(".")
    return f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)


def quote_literal(value: str) -> str:
    """A string literal; PostgreSQL gives it the type of the column it is compared with."""
    if "\x00" in value:
        raise ValueError("a key value holds a NUL character, which PostgreSQL text cannot hold")
    return "'" + value.replace("'", "''") + "'"


def timestamp_text(moment: datetime) -> str:
    """UTC with microseconds and an explicit offset (ignored for `timestamp without time zone` columns)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00:00")


@dataclass(frozen=True)
class Window:
    """Rows with start <= cursor < end; start None means from the beginning (full refresh)."""

    start: datetime | None
    end: datetime

    def __post_init__(self) -> None:
        if self.start is not None and self.start >= self.end:
            raise ValueError(f"window start {self.start} is not before its end {self.end}")

    @property
    def label(self) -> str:
        """A folder name for the window's files: the same window always gets the same name."""

        def stamp(moment: datetime | None) -> str:
            return "begin" if moment is None else moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")

        return f"{stamp(self.start)}_{stamp(self.end)}"


def incremental_window(watermark: datetime | None, overlap: timedelta, now: datetime) -> Window:
    """From the watermark minus the overlap (re-reads late commits) to now; no watermark: from the start."""
    now = now.astimezone(UTC).replace(microsecond=0)
    if watermark is None:
        return Window(None, now)
    return Window(min(watermark - overlap, now - timedelta(microseconds=1)), now)


def page_query(
    relation: str,
    cursor: str,
    keys: list[str],
    window: Window,
    limit: int,
    *,
    after: list[str] | None = None,
    phase: str = ROWS,
    columns: list[str] | None = None,
) -> str:
    """The SQL of one page. `after` is the position of the last row already read, as text: (cursor, *keys)
    in the `rows` phase, the keys alone in the `null_cursor` phase."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    select = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    if phase == NULL_CURSOR:
        order = [quote_ident(k) for k in keys]
        where = [f"{quote_ident(cursor)} IS NULL"]
        if after is not None:
            where.append(_row_after(order, after))
    else:
        order = [quote_ident(c) for c in [cursor, *keys]]
        where = []
        if after is not None:
            where.append(_row_after(order, after))
        elif window.start is not None:
            where.append(f"{order[0]} >= {quote_literal(timestamp_text(window.start))}")
        where.append(f"{order[0]} < {quote_literal(timestamp_text(window.end))}")
    return (
        f"SELECT {select} FROM {quote_relation(relation)} WHERE {' AND '.join(where)} "
        f"ORDER BY {', '.join(order)} LIMIT {int(limit)}"
    )


def _row_after(columns: list[str], values: list[str]) -> str:
    if len(columns) != len(values):
        raise ValueError(f"keyset position has {len(values)} values for {len(columns)} columns")
    if len(columns) == 1:
        return f"{columns[0]} > {quote_literal(values[0])}"
    return f"({', '.join(columns)}) > ({', '.join(quote_literal(v) for v in values)})"


def session_options(statement_timeout: timedelta, application: str) -> dict[str, str]:
    """PostgreSQL connection properties applied before the first statement of every session.

    Read-only transactions, the statement timeout, UTC, and a name DBAs see in pg_stat_activity.
    """
    timeout_ms = max(1, int(statement_timeout.total_seconds() * 1000))
    return {
        "options": (
            f"-c statement_timeout={timeout_ms} -c default_transaction_read_only=on "
            f"-c idle_in_transaction_session_timeout={max(timeout_ms, 60_000)} -c TimeZone=UTC"
        ),
        "readOnly": "true",
        "ApplicationName": application[:63],
    }
