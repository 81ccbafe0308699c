"""Cursor values in the API's own format: ISO 8601, unix seconds, unix milliseconds or a strftime pattern.

The watermark, the lookback and `--start/--end` are all turned into the endpoint's `cursor_format` before they are
sent, so a lookback of 24 hours is 86,400,000 in a millisecond API, not 86,400.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from northstar.config import ConfigError

CursorValue = str | int


def to_moment(value: CursorValue, fmt: str) -> datetime:
    """The UTC time a cursor value stands for."""
    if fmt == "unix":
        return datetime.fromtimestamp(int(value), UTC)
    if fmt == "unix_ms":
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    if fmt == "iso":
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.strptime(str(value), fmt).replace(tzinfo=UTC)


def from_moment(moment: datetime, fmt: str) -> CursorValue:
    """`moment` written as the API writes its cursor (ISO 8601: millisecond `Z` form)."""
    moment = moment.astimezone(UTC)
    if fmt == "unix":
        return int(moment.timestamp())
    if fmt == "unix_ms":
        return int(round(moment.timestamp() * 1000))
    if fmt == "iso":
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime(fmt)


def shift_cursor(value: CursorValue, hours: float, fmt: str) -> CursorValue:
    """The cursor value `hours` earlier, in the same format."""
    return from_moment(to_moment(value, fmt) - timedelta(hours=hours), fmt)


def parse_window_bound(text: str, flag: str) -> datetime:
    """A `--start/--end` value (ISO 8601 date or time, UTC if no offset); ConfigError naming the flag."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not a date or time; write e.g. 2026-11-01 or 2026-11-01T06:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def window_bounds(
    start: str | None, end: str | None, fmt: str
) -> tuple[CursorValue | None, CursorValue | None]:
    """`--start/--end` checked (real dates, start before end) and written in the cursor's format."""
    begin = parse_window_bound(start, "--start") if start else None
    finish = parse_window_bound(end, "--end") if end else None
    if begin and finish and begin >= finish:
        raise ConfigError(f"--start {start} is not before --end {end}; the window would be empty")
    return (
        None if begin is None else from_moment(begin, fmt),
        None if finish is None else from_moment(finish, fmt),
    )
