"""The api: section of a source file, and the extractor's page checks (no server, no Spark)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from northstar.config import ConfigError, load_source, parse_source
from northstar.config.api import ApiSpec
from northstar.extract.ratelimit import FakeClock, RateLimiter
from northstar.extract.rest import ApiClient, PartialPage, _link_next, shift_cursor
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
        ({"pagination": "scroll"}, "Input should be 'cursor', 'page', 'offset', 'link' or 'stripe'"),
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
    return api_client._parse(endpoint, position, data, headers or {}, {"url": "u"}, 200)


def test_partial_pages_are_detected(tmp_path):
    api_client, endpoint = client(tmp_path)
    rows = [{"id": 1}, {"id": 2}, {"id": 3}]
    full = parse(api_client, endpoint, body(data=rows, count=3, has_more=True, next_cursor="c1"))
    assert full.next == "c1"
    assert full.has_more
    for broken, reason in [
        (body(data=rows, count=3, has_more=True, next_cursor="c1")[:-9], "not complete JSON"),
        (body(data=rows[:2], count=3, has_more=True, next_cursor="c1"), "says 3 records but holds 2"),
        (body(data=rows, count=3, has_more=True, next_cursor=None), "no next cursor"),
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


def test_link_and_cursor_helpers():
    assert _link_next('<https://a/x?p=2>; rel="next", <https://a/x?p=9>; rel="last"') == "https://a/x?p=2"
    assert _link_next('<https://a/x?p=9>; rel="last"') is None
    assert shift_cursor("2026-11-02T10:00:00.000Z", 24, "iso") == "2026-11-01T10:00:00.000Z"
    assert shift_cursor(1_800_000_000, 1, "unix") == 1_799_996_400


def test_card_numbers_are_redacted_before_landing():
    line, found = redact_card_numbers('{"note":"card 4242 4242 4242 4242, order 1234567890123"}')
    assert found
    assert line == '{"note":"card [REDACTED-PAN], order 1234567890123"}'  # not Luhn-valid: kept
    assert redact_card_numbers('{"fingerprint":"Xt5EWLLDS7FJjR1c"}') == (
        '{"fingerprint":"Xt5EWLLDS7FJjR1c"}',
        False,
    )
