"""The api: section of a source file, and the extractor's page checks (no server, no Spark)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from northstar.config import ConfigError, load_source, parse_source
from northstar.config.api import ApiSpec
from northstar.extract.cursors import shift_cursor
from northstar.extract.pages import PageLoss, PartialPage
from northstar.extract.ratelimit import FakeClock, RateLimiter
from northstar.extract.rest import ApiClient, reset_seconds, retry_after_seconds
from northstar.landing.writer import redact_card_numbers

SOURCE = """
tables:
  orders: {format: jsonl, landing: p/orders, primary_key: [id], ordering: [updated_at]}
api:
  base_url: http://127.0.0.1:1
  auth: {secret: "%s"}
  rate_limit: {requests: 10, per_seconds: 60}
  endpoints:
    %s: {path: /v1/orders, pagination: %s}
"""


def write(tmp_path: Path, secret="env:TOKEN", endpoint="orders", pagination="cursor") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "p.yaml"
    path.write_text(SOURCE % (secret, endpoint, pagination))
    return path


def test_repo_sources_with_an_api_section_are_valid():
    assert load_source("marketplace").api.rate_limit.requests == 1200
    stripe = load_source("stripe")
    assert {e.pagination for e in stripe.api.endpoints.values()} == {"stripe"}
    assert all(t.redact_card_numbers for t in stripe.tables.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secret": "hunter2"}, "api.auth.secret: a secret must be given as a reference"),
        ({"endpoint": "refunds"}, "api.endpoints names refunds, which is not a table: orders"),
        (
            {"pagination": "scroll"},
            "Input should be 'cursor', 'header', 'next_url', 'page', 'offset', 'link' or",
        ),
    ],
)
def test_a_bad_api_section_names_the_field(tmp_path, kwargs, message):
    with pytest.raises(ConfigError) as err:
        parse_source(write(tmp_path, **kwargs))
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)


def client(tmp_path: Path, pagination="cursor") -> tuple[ApiClient, object]:
    source = parse_source(write(tmp_path, pagination=pagination))
    api: ApiSpec = source.api.model_copy(update={"page_size": 3})
    clock = FakeClock()
    return ApiClient(api, api.base_url, RateLimiter(10, 60, clock=clock), clock, None), api.endpoints[
        "orders"
    ]


def body(**fields) -> bytes:
    return json.dumps(fields).encode()


def parse(api_client, endpoint, data: bytes, position=None, headers=None):
    """The page read from a real requests.Response (so its Link parsing is requests' own)."""
    response = requests.Response()
    response.status_code, response._content, response.url = 200, data, "http://127.0.0.1:1/v1/orders"
    response.headers = CaseInsensitiveDict(headers or {})
    return api_client.read(endpoint, position, response)


def test_partial_pages_are_detected(tmp_path):
    api_client, endpoint = client(tmp_path)
    rows = [{"id": 1}, {"id": 2}, {"id": 3}]
    full = parse(api_client, endpoint, body(data=rows, count=3, has_more=True, next_cursor="c1"))
    assert full.next == "c1"
    assert full.has_more
    for broken, reason in [
        (body(data=rows, count=3, has_more=True, next_cursor="c1")[:-9], "not complete JSON"),
        (
            body(data=rows[:2], count=3, has_more=True, next_cursor="c1"),
            "says 3 records \\(count\\) but holds 2",
        ),
        (body(data=rows, count=3, has_more=True, next_cursor=None), "no next position"),
        (body(data=rows[:2], has_more=True, next_cursor="c1"), "short page: 2 of 3"),
    ]:
        with pytest.raises(PartialPage, match=reason):
            parse(api_client, endpoint, broken)
    last = parse(api_client, endpoint, body(data=rows[:1], count=1, has_more=False, next_cursor=None))
    assert last.next is None
    assert not last.has_more  # a short last page is complete


def test_page_offset_link_and_stripe_positions(tmp_path):
    rows = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    page_client, page = client(tmp_path / "page", "page")
    assert parse(page_client, page, body(data=rows, total_pages=4), position=2).next == 3
    assert not parse(page_client, page, body(data=rows, total_pages=2), position=2).has_more
    offset_client, offset = client(tmp_path / "offset", "offset")
    assert parse(offset_client, offset, body(data=rows, total=10), position=3).next == 6
    link_client, link = client(tmp_path / "link", "link")
    got = parse(link_client, link, body(data=rows), headers={"Link": '</v1/orders?cursor=x>; rel="next"'})
    assert got.next == "http://127.0.0.1:1/v1/orders?cursor=x"
    stripe_client, stripe = client(tmp_path / "stripe", "stripe")
    assert parse(stripe_client, stripe, body(data=rows, has_more=True)).next == "c"


def test_link_header_next_and_its_absence(tmp_path):
    rows = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    link_client, link = client(tmp_path, "link")
    both = '<https://127.0.0.1:1/v1/orders?p=2>; rel="next", <https://127.0.0.1:1/v1/orders?p=9>; rel="last"'
    assert parse(link_client, link, body(data=rows), headers={"Link": both}).next.endswith("p=2")
    # the last page of a Link API (GitHub, Shopify) has other rels but no next: the end, even when full
    last = parse(link_client, link, body(data=rows), headers={"Link": '</v1/orders?p=1>; rel="prev"'})
    assert not last.has_more
    with pytest.raises(
        PageLoss, match="no next Link header rel=next"
    ):  # no Link header at all on a full page
        parse(link_client, link, body(data=rows))
    with pytest.raises(Exception, match="leaves"):
        parse(link_client, link, body(data=rows), headers={"Link": '<https://evil.example/x>; rel="next"'})


@pytest.mark.parametrize(
    ("value", "hours", "fmt", "shifted"),
    [
        ("2026-11-02T10:00:00.000Z", 24, "iso", "2026-11-01T10:00:00.000Z"),
        (1_800_000_000, 1, "unix", 1_799_996_400),
        (1_800_000_000_123, 24, "unix_ms", 1_800_000_000_123 - 86_400_000),
        ("2026-11-02 10:00:00", 1.5, "%Y-%m-%d %H:%M:%S", "2026-11-02 08:30:00"),
    ],
)
def test_lookback_is_in_the_cursors_own_unit(value, hours, fmt, shifted):
    assert shift_cursor(value, hours, fmt) == shifted


def test_card_numbers_are_redacted_before_landing():
    line, found = redact_card_numbers('{"note":"card 4242 4242 4242 4242, order 1234567890123"}')
    assert found
    assert line == '{"note":"card [REDACTED-PAN], order 1234567890123"}'  # not Luhn-valid: kept
    assert redact_card_numbers('{"fingerprint":"Xt5EWLLDS7FJjR1c"}') == (
        '{"fingerprint":"Xt5EWLLDS7FJjR1c"}',
        False,
    )


def test_retry_after_as_an_http_date_and_a_reset_header_in_epoch_seconds_are_waited_out():
    now = 1_800_000_000.0
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Fri, 15 Jan 2027 08:02:00 GMT", now) == 120  # 08:00:00 + 2 min
    assert retry_after_seconds("soon", now) is None
    assert reset_seconds(str(int(now) + 30), "auto", now) == 30  # epoch seconds
    assert reset_seconds("30", "auto", now) == 30  # a delay
    assert reset_seconds("30", "epoch", now) == 0
