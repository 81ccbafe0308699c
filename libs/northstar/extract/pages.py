"""Reading one page of a REST endpoint: its records, the position of the next page, and the page's own checks.

`read_page` knows every pagination style of `EndpointSpec` (body cursor, next-token header, next URL, Link header,
page number, offset, Stripe). It raises `PartialPage` for a page that is visibly incomplete (retried), and
`PageLoss` for a page whose next position cannot be found although it is full: that would end the run early and
lose every later record, so the run stops instead of saying `done`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlparse

from jsonpath_ng import parse as jsonpath_parse

from northstar.config.api import EndpointSpec
from northstar.extract import ExtractError

Position = str | int | None  # a pagination position: page or offset number, cursor, next link, last id
MISSING = object()


class PartialPage(Exception):
    """The page is incomplete (truncated body, fewer records than it says, a missing next cursor)."""


class PageLoss(ExtractError):
    """Following the API as configured would skip records: the run stops, its state not advanced."""


@dataclass
class Page:
    records: list[Any]
    next: Position
    has_more: bool
    request: dict
    status: int
    attempts: int
    total: int | None = None  # the number of records the whole query matches, when the page says


@functools.lru_cache(maxsize=256)
def _compiled(path: str) -> Any:
    return jsonpath_parse(path)


def value_at(document: Any, path: str | None) -> Any:
    """The value at `path` (a JSONPath) in `document`; MISSING when there is none."""
    if path is None:
        return MISSING
    found = _compiled(path).find(document)
    return found[0].value if found else MISSING


@dataclass(frozen=True)
class Response:
    """What `read_page` needs of an HTTP response."""

    body: Any  # the parsed JSON
    headers: Any  # case-insensitive mapping
    links: dict[str, dict[str, str]]  # requests' parsed Link header
    url: str
    base_url: str


def read_page(endpoint: EndpointSpec, limit: int, position: Position, response: Response) -> Page:
    """The page's records and next position; PartialPage or PageLoss when it cannot be trusted."""
    document = response.body
    records = value_at(document, endpoint.records_path)
    if not isinstance(records, list):
        raise PartialPage(f"no list of records at {endpoint.records_path!r}")
    # a record that is not a JSON object is landed as delivered: bronze quarantines it with its raw text
    count = value_at(document, endpoint.count_path)
    if isinstance(count, int) and not isinstance(count, bool) and count != len(records):
        raise PartialPage(f"page says {count} records ({endpoint.count_path}) but holds {len(records)}")
    next_position, more, last_said = _next(endpoint, position, records, response, limit)
    stated, ended = value_at(document, endpoint.has_more_path), value_at(document, endpoint.end_path)
    if isinstance(stated, bool):
        more, last_said = stated, last_said or not stated
    if isinstance(ended, bool):
        more, last_said = more and not ended, last_said or ended
    _check(endpoint, limit, position, records, next_position, more, last_said, response.url)
    total = value_at(document, endpoint.total_path)
    return Page(
        records,
        next_position if more else None,
        more,
        {"method": "GET", "url": response.url, "status": 200},
        200,
        1,
        total if isinstance(total, int) and not isinstance(total, bool) else None,
    )


def _next(
    endpoint: EndpointSpec, position: Position, records: list, response: Response, limit: int
) -> tuple[Position, bool, bool]:
    """(next position, whether more pages follow, whether the page itself says it is the last)."""
    style, document = endpoint.pagination, response.body
    if style in ("cursor", "next_url"):
        found = value_at(document, endpoint.cursor_path if style == "cursor" else endpoint.next_url_path)
        token = None if found is MISSING or found in ("", None) else found
        if style == "next_url" and token is not None:
            token = _same_host(str(token), response.base_url)
        return token, token is not None, found is not MISSING and token is None
    if style == "header":
        token = response.headers.get(endpoint.next_header) or None
        return token, token is not None, False
    if style == "link":
        target = response.links.get("next", {}).get("url")
        token = _same_host(target, response.base_url) if target else None
        return token, token is not None, bool(response.links) and token is None
    if style == "page":
        page, pages = position or 1, value_at(document, endpoint.total_pages_path)
        assert isinstance(page, int)  # page positions are page numbers
        known = isinstance(pages, int) and not isinstance(pages, bool)
        return page + 1, (page < pages) if known else len(records) >= limit, known
    if style == "offset":
        offset, total = position or 0, value_at(document, endpoint.total_path)
        assert isinstance(offset, int)  # offset positions are record offsets
        known = isinstance(total, int) and not isinstance(total, bool)
        return offset + limit, (offset + limit < total) if known else len(records) >= limit, known
    last = records[-1] if records else None  # stripe: starting_after the last id while has_more
    return (last.get(endpoint.id_field) if isinstance(last, dict) else None), len(records) >= limit, False


def _check(
    endpoint: EndpointSpec,
    limit: int,
    position: Position,
    records: list,
    next_position: Position,
    more: bool,
    last_said: bool,
    url: str,
) -> None:
    if more and next_position is None:
        raise PartialPage("the page says more records follow but gives no next position")
    if more and len(records) < limit and not endpoint.short_pages:
        raise PartialPage(
            f"short page: {len(records)} of {limit} records while more follow (if the API documents short "
            "pages before the last, set short_pages: true)"
        )
    if more and next_position == position:
        raise PageLoss(
            f"{url}: the API returned the same next position {position!r} again: it ignores the position sent as "
            f"{endpoint.position_query!r}? Set position_param to the parameter the API reads"
        )
    full_without_next = not more and len(records) >= limit and not last_said
    if (
        full_without_next
        and endpoint.full_page_without_next == "fail"
        and endpoint.pagination in _TOKEN_STYLES
    ):
        raise PageLoss(
            f"{url}: a full page of {len(records)} records with no next {_TOKEN_STYLES[endpoint.pagination]} "
            "and nothing saying it is the last page: the records after it would be lost. Check the endpoint's "
            "pagination settings against the API's docs (a token in a header is pagination: header with "
            "next_header), or set full_page_without_next: end if the API ends that way"
        )


_TOKEN_STYLES = {
    "cursor": "cursor in the body (cursor_path)",
    "next_url": "URL in the body (next_url_path)",
    "header": "token in the header (next_header)",
    "link": "Link header rel=next",
}


def _same_host(target: str, base_url: str) -> str:
    """`target` resolved against the base URL; never a link to another host (a token could follow it)."""
    resolved = urljoin(base_url + "/", target)
    if urlparse(resolved).netloc != urlparse(base_url).netloc:
        raise ExtractError(f"the API's next link {resolved} leaves {base_url}; refusing to follow it")
    return resolved
