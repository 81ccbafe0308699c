"""Test servers reproducing the documented pagination and incremental contracts of public commerce and payment APIs.

Each `Contract` serves one list endpoint the way the API's own documentation says it pages (the response shape,
the parameter names, how the next page is found and how the last page says it is the last); it is onboarded by
the endpoint YAML a user would write from those docs (`Contract.endpoint_yaml`). What we reproduce, per API:

- GitHub REST (docs.github.com "Using pagination in the REST API"): `per_page`/`page`, the `Link` header with
  rel next/prev/first/last; the last page has prev/first only; the body is a bare JSON array; `since` ISO 8601.
- Shopify Admin REST (shopify.dev "Make paginated requests to the REST Admin API"): `limit`, `page_info` carried
  only in the `Link` header; a request with `page_info` may carry no other filter (400 otherwise); records under
  `orders`; the last page has rel="previous" only.
- Stripe (stripe.com/docs/api/pagination): `limit`, `starting_after=<last id>`, `has_more`, records under `data`,
  `created[gte]` in unix seconds, newest first.
- Zendesk cursor pagination (developer.zendesk.com "Pagination"): `page[size]`, `page[after]`,
  `meta.has_more`, `meta.after_cursor`, `links.next`; records under `tickets`.
- HubSpot CRM v3 (developers.hubspot.com "CRM API paging"): `limit`, `after`; the next cursor at
  `paging.next.after`; on the last page `paging` is absent (so a full last page looks like any other).
- Salesforce REST query (developer.salesforce.com "Execute a SOQL query"): `records`, `totalSize`, `done`, and
  `nextRecordsUrl` (a relative URL) while not done. (The SOQL WHERE bound is a separate `modstamp_gte` parameter
  here: our client does not template `q`.)
- Amazon SP-API getOrders (developer-docs.amazon.com/sp-api "Orders API"): `MaxResultsPerPage`, `NextToken` at
  `payload.NextToken` (absent on the last page), records at `payload.Orders`, `LastUpdatedAfter` ISO 8601.
- BigCommerce v3 (developer.bigcommerce.com "Pagination"): `page`/`limit`, `meta.pagination.{total, count,
  per_page, current_page, total_pages}`, records under `data`, `date_modified:min`.
- Square (developer.squareup.com "Pagination"): `limit`, `cursor` in and out (absent at the end), records under
  `payments`, `begin_time` RFC 3339.
- A partner API with the next token in a response header (`X-Next-Page-Token`, parameter `page_token`, page size
  `pageSize`) and a cursor in epoch milliseconds: the shape that lost records in the first round.

Every server injects, on the first sight of a request: 429 storms (Retry-After as seconds or as an HTTP date),
5xx, a truncated body, a short page while more follow, and a page that starts with the previous page's last
record (a duplicate across pages). It enforces a request budget of `budget` per `window` seconds on the shared
`FakeClock` and counts requests over it (`over_budget`); injected 429s are not counted. `update_late` changes
records after a run (a late update with a newer cursor value, or for Stripe a changed object within the
lookback), and `truth()` is the latest version of every record, what the landing zone must end up holding.
"""

from __future__ import annotations

import base64
import json
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from northstar.extract.cursors import from_moment, to_moment
from northstar.extract.ratelimit import FakeClock

BEGIN = datetime(2026, 11, 1, tzinfo=UTC)
Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body


@dataclass(frozen=True)
class Contract:
    """One API's list endpoint: its path, the YAML a user writes from its docs, and how it serves a page."""

    name: str
    path: str
    cursor_field: str
    cursor_format: str
    since_param: str
    size_param: str
    endpoint_yaml: str
    serve: Callable[[ContractServer, dict[str, str], int, str], Reply]  # (server, query, limit, fault)
    records: int = 57
    newest_first: bool = False
    bumps_cursor_on_update: bool = True


def _token(offset: int, since: str | None) -> str:
    return base64.urlsafe_b64encode(json.dumps([offset, since]).encode()).decode().rstrip("=")


def _untoken(token: str) -> tuple[int, str | None]:
    offset, since = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return int(offset), since


@dataclass
class ContractServer:
    """A threaded HTTP server for one `Contract` (start with `with`)."""

    contract: Contract
    clock: FakeClock
    budget: int = 30
    window: float = 60.0
    seed: int = 7
    faults: bool = True
    requests: int = 0
    over_budget: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    rows: dict[str, dict] = field(default_factory=dict)
    tamper: Callable[[Any], Any] | None = None  # a test's change to every 200 body (a server losing records)
    auth: str = ""  # "", bearer (OAuth2 tokens from POST /oauth/token), query (?api_key=), basic
    client: tuple[str, str] = ("northstar", "s3cret-client-value")
    tokens: dict[str, float] = field(default_factory=dict)  # issued token -> expiry (revoke: delete)
    issued: int = 0
    _stamps: list[float] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for n in range(self.contract.records):
            moment = BEGIN + timedelta(minutes=37 * n)
            self.rows[f"r{n:04d}"] = {"id": f"r{n:04d}", "amount": 100 + n, "_moment": moment}
        self._dice = random.Random(f"{self.seed}-{self.contract.name}")

    # ---- the data ----
    def record(self, row: dict) -> dict:
        c = self.contract
        shown = {
            "id": row["id"],
            "amount": row["amount"],
            c.cursor_field: from_moment(row["_moment"], c.cursor_format),
        }
        return {**shown, "deleted": True} if row.get("deleted") else shown

    def _moment(self, text: str | None) -> datetime | None:
        fmt = self.contract.cursor_format
        return None if text is None else to_moment(int(text) if fmt.startswith("unix") else text, fmt)

    def matching(self, since: str | None, until: str | None = None) -> list[dict]:
        """The rows at or after `since` and before `until` (the API's own text), in the API's order."""
        c, low, high = self.contract, self._moment(since), self._moment(until)
        rows = [
            r
            for r in self.rows.values()
            if (low is None or r["_moment"] >= low) and (high is None or r["_moment"] < high)
        ]
        rows.sort(key=lambda r: (r["_moment"], r["id"]), reverse=c.newest_first)
        return [self.record(r) for r in rows]

    def update_late(self, count: int = 5) -> None:
        """Change `count` records after a run: a newer cursor value (now), or for Stripe an object created within
        the lookback whose amount changes (its `created` stays)."""
        ordered = sorted(self.rows.values(), key=lambda r: r["_moment"])
        changed = ordered[:count] if self.contract.bumps_cursor_on_update else ordered[-count:]
        now = datetime.fromtimestamp(self.clock.now(), UTC).replace(microsecond=0)
        for row in changed:
            row["amount"] += 1000
            if self.contract.bumps_cursor_on_update:
                row["_moment"] = max(now, row["_moment"] + timedelta(seconds=1))

    def delete(self, count: int = 3) -> list[str]:
        """Delete `count` records the API's way: a tombstone `{id, deleted: true}` with a newer cursor value."""
        now = datetime.fromtimestamp(self.clock.now(), UTC).replace(microsecond=0)
        gone = sorted(r for r in self.rows if not self.rows[r].get("deleted"))[1 : 1 + count]
        for key in gone:
            self.rows[key].update(deleted=True, _moment=now)
        return gone

    def add_new(self, count: int = 4) -> None:
        start = len(self.rows)
        now = datetime.fromtimestamp(self.clock.now(), UTC).replace(microsecond=0)
        for n in range(start, start + count):
            self.rows[f"r{n:04d}"] = {
                "id": f"r{n:04d}",
                "amount": 100 + n,
                "_moment": now + timedelta(seconds=n),
            }

    def truth(self) -> dict[str, dict]:
        return {r["id"]: self.record(r) for r in self.rows.values()}

    # ---- HTTP ----
    def __enter__(self) -> ContractServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                self._answer(*server.handle(self.path, dict(self.headers)))

            def do_POST(self) -> None:  # noqa: N802 (the OAuth2 token endpoint)
                length = int(self.headers.get("Content-Length", 0))
                self._answer(*server.issue_token(dict(self.headers), self.rfile.read(length).decode()))

            def _answer(self, status: int, headers: dict[str, str], body: Any) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def _inject(self, name: str) -> None:
        self.injected[name] = self.injected.get(name, 0) + 1

    def _over_budget(self) -> bool:
        now = self.clock.now()
        self._stamps = [t for t in self._stamps if t > now - self.window]
        self._stamps.append(now)
        return len(self._stamps) > self.budget

    def issue_token(self, headers: dict[str, str], form: str) -> Reply:
        """RFC 6749 4.4: client credentials in HTTP basic, grant_type=client_credentials; 120 s tokens."""
        expected = "Basic " + base64.b64encode(f"{self.client[0]}:{self.client[1]}".encode()).decode()
        if headers.get("Authorization") != expected or "grant_type=client_credentials" not in form:
            return 401, {}, {"error": "invalid_client"}
        self.issued += 1
        token = f"tok-{self.issued}"
        self.tokens[token] = self.clock.now() + 120
        return 200, {}, {"access_token": token, "token_type": "Bearer", "expires_in": 120}

    def _authorized(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        if self.auth == "bearer":
            token = headers.get("Authorization", "").removeprefix("Bearer ")
            return self.tokens.get(token, 0) > self.clock.now()
        if self.auth == "query":
            return query.get("api_key") == self.client[1]
        if self.auth == "basic":
            expected = base64.b64encode(f"{self.client[0]}:{self.client[1]}".encode()).decode()
            return headers.get("Authorization") == f"Basic {expected}"
        return True

    def handle(self, raw_path: str, headers: dict[str, str] | None = None) -> Reply:
        parts = urlsplit(raw_path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if not self._authorized(headers or {}, query):
            return 401, {}, {"error": "unauthorized"}
        query.pop("api_key", None)
        with self._lock:
            self.requests += 1
            if self._over_budget():
                self.over_budget += 1
                return 429, {"Retry-After": str(int(self.window))}, {"error": "rate limited"}
            first_sight = raw_path not in self._seen
            self._seen.add(raw_path)
            roll = self._dice.random() if (first_sight and self.faults) else 1.0
        if roll < 0.08:
            self._inject("429")
            retry = "2" if self._dice.random() < 0.5 else formatdate(self.clock.now() + 2, usegmt=True)
            return 429, {"Retry-After": retry}, {"error": "slow down"}
        if roll < 0.14:
            self._inject("5xx")
            return 503, {}, {"error": "unavailable"}
        limit = int(query.get(self.contract.size_param, 10))
        kind = "truncate" if roll < 0.20 else "short" if roll < 0.26 else "duplicate" if roll < 0.34 else ""
        status, headers, body = self.contract.serve(self, query | {"_path": parts.path}, limit, kind)
        if self.tamper is not None and status == 200:
            body = self.tamper(body)
        if kind == "truncate" and status == 200:
            self._inject("truncated")
            text = json.dumps(body).encode()
            return status, headers, text[: len(text) // 2]
        return status, headers, body

    # ---- pagination helpers the contracts use ----
    def slice(
        self, since: str | None, offset: int, limit: int, kind: str, until: str | None = None
    ) -> tuple[list[dict], bool, int]:
        """The page at `offset` of the query, whether more follow and the query's size; `kind`'s fault applied."""
        rows = self.matching(since, until)
        page = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        if kind == "short" and more and len(page) > 1:
            self._inject("short_page")
            page = page[:-1]
        elif kind == "duplicate" and offset > 0:
            self._inject("duplicate")
            page = [rows[offset - 1], *page]
        return page, more, len(rows)

    def link(self, path: str, params: dict[str, Any]) -> str:
        return f"{self.url}{path}?{urlencode(params)}"


# ---- the contracts ----
def _github(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    page, since = int(q.get("page", 1)), q.get("since")
    rows, more, total = server.slice(since, (page - 1) * limit, limit, kind)
    base = {"per_page": limit, **({"since": since} if since else {})}
    rels = []
    if more:
        rels += [
            f'<{server.link(q["_path"], base | {"page": page + 1})}>; rel="next"',
            f'<{server.link(q["_path"], base | {"page": -(-total // limit)})}>; rel="last"',
        ]
    if page > 1:
        rels += [
            f'<{server.link(q["_path"], base | {"page": page - 1})}>; rel="prev"',
            f'<{server.link(q["_path"], base | {"page": 1})}>; rel="first"',
        ]
    return 200, ({"Link": ", ".join(rels)} if rels else {}), rows


def _shopify(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    if "page_info" in q:
        if "updated_at_min" in q:  # Shopify: page_info requests take no other filter
            return 400, {}, {"errors": "page_info cannot be combined with other filters"}
        offset, since = _untoken(q["page_info"])
    else:
        offset, since = 0, q.get("updated_at_min")
    rows, more, _ = server.slice(since, offset, limit, kind)
    rels = []
    if more:
        rels.append(
            f'<{server.link(q["_path"], {"limit": limit, "page_info": _token(offset + limit, since)})}>; rel="next"'
        )
    if offset:
        rels.append(
            f'<{server.link(q["_path"], {"limit": limit, "page_info": _token(max(0, offset - limit), since)})}>; rel="previous"'
        )
    return 200, ({"Link": ", ".join(rels)} if rels else {}), {"orders": rows}


def _stripe(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    since = q.get("created[gte]")
    offset = 0
    if "starting_after" in q:
        ids = [r["id"] for r in server.matching(since)]
        offset = ids.index(q["starting_after"]) + 1
    rows, more, _ = server.slice(since, offset, limit, kind)
    return 200, {}, {"object": "list", "data": rows, "has_more": more, "url": q["_path"]}


def _zendesk(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    offset, since = _untoken(q["page[after]"]) if "page[after]" in q else (0, q.get("start_time"))
    rows, more, _ = server.slice(since, offset, limit, kind)
    after = _token(offset + limit, since) if more else None
    next_url = server.link(q["_path"], {"page[size]": limit, "page[after]": after}) if after else None
    return (
        200,
        {},
        {
            "tickets": rows,
            "meta": {"has_more": more, "after_cursor": after, "before_cursor": _token(offset, since)},
            "links": {"next": next_url, "prev": None},
        },
    )


def _hubspot(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    offset, since = _untoken(q["after"]) if "after" in q else (0, q.get("updatedAfter"))
    rows, more, _ = server.slice(since, offset, limit, kind)
    body: dict[str, Any] = {"results": rows}
    if more:  # HubSpot: no paging object at all on the last page
        after = _token(offset + limit, since)
        body["paging"] = {"next": {"after": after, "link": server.link(q["_path"], {"after": after})}}
    return 200, {}, body


SALESFORCE_QUERY = "/services/data/v60.0/query"


def _salesforce(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    if q["_path"].startswith(SALESFORCE_QUERY + "/"):
        offset, since = _untoken(q["_path"].rsplit("-", 1)[1])
    elif "q" not in q:
        return 400, {}, [{"errorCode": "MALFORMED_QUERY", "message": "q is required"}]
    else:
        offset, since = 0, q.get("modstamp_gte")
    rows, more, total = server.slice(since, offset, limit, kind)
    body: dict[str, Any] = {"totalSize": total, "done": not more, "records": rows}
    if more:
        body["nextRecordsUrl"] = f"{SALESFORCE_QUERY}/01gD0000002HU6KIAW-{_token(offset + limit, since)}"
    return 200, {}, body


def _sp_api(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    if "MarketplaceIds" not in q:
        return 400, {}, {"errors": [{"code": "InvalidInput", "message": "MarketplaceIds is required"}]}
    offset, since = _untoken(q["NextToken"]) if "NextToken" in q else (0, q.get("LastUpdatedAfter"))
    rows, more, _ = server.slice(since, offset, limit, kind, q.get("LastUpdatedBefore"))
    payload: dict[str, Any] = {"Orders": rows}
    if more:
        payload["NextToken"] = _token(offset + limit, since)
    return 200, {}, {"payload": payload}


def _bigcommerce(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    page, since = int(q.get("page", 1)), q.get("date_modified:min")
    rows, _, total = server.slice(since, (page - 1) * limit, limit, kind)
    pages = max(1, -(-total // limit))
    pagination = {
        "total": total,
        "count": len(rows),
        "per_page": limit,
        "current_page": page,
        "total_pages": pages,
    }
    return 200, {}, {"data": rows, "meta": {"pagination": pagination}}


def _square(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    offset, since = _untoken(q["cursor"]) if "cursor" in q else (0, q.get("begin_time"))
    rows, more, _ = server.slice(since, offset, limit, kind)
    return 200, {}, {"payments": rows, **({"cursor": _token(offset + limit, since)} if more else {})}


def _header_token(server: ContractServer, q: dict[str, str], limit: int, kind: str) -> Reply:
    offset, since = _untoken(q["page_token"]) if "page_token" in q else (0, q.get("since_ms"))
    rows, more, _ = server.slice(since, offset, limit, kind, q.get("until_ms"))
    return 200, ({"X-Next-Page-Token": _token(offset + limit, since)} if more else {}), {"items": rows}


CONTRACTS = {
    c.name: c
    for c in [
        Contract(
            "github",
            "/repos/o/r/issues",
            "updated_at",
            "iso",
            "since",
            "per_page",
            "{path: /repos/o/r/issues, pagination: link, records_path: $, cursor_field: updated_at, "
            "since_param: since, until_param: null, page_size_param: per_page}",
            _github,
        ),
        Contract(
            "shopify",
            "/admin/api/2024-01/orders.json",
            "updated_at",
            "iso",
            "updated_at_min",
            "limit",
            "{path: /admin/api/2024-01/orders.json, pagination: link, records_path: orders, "
            "cursor_field: updated_at, since_param: updated_at_min, until_param: null}",
            _shopify,
        ),
        Contract(
            "stripe",
            "/v1/charges",
            "created",
            "unix",
            "created[gte]",
            "limit",
            "{path: /v1/charges, pagination: stripe, cursor_field: created, cursor_format: unix, "
            "since_param: 'created[gte]', until_param: 'created[lt]'}",
            _stripe,
            newest_first=True,
            bumps_cursor_on_update=False,
        ),
        Contract(
            "zendesk",
            "/api/v2/tickets",
            "updated_at",
            "unix",
            "start_time",
            "page[size]",
            "{path: /api/v2/tickets, pagination: cursor, records_path: tickets, cursor_path: meta.after_cursor, "
            "has_more_path: meta.has_more, position_param: 'page[after]', page_size_param: 'page[size]', "
            "cursor_field: updated_at, cursor_format: unix, since_param: start_time, until_param: null}",
            _zendesk,
        ),
        Contract(
            "hubspot",
            "/crm/v3/objects/deals",
            "hs_lastmodifieddate",
            "unix_ms",
            "updatedAfter",
            "limit",
            "{path: /crm/v3/objects/deals, pagination: cursor, records_path: results, "
            "cursor_path: paging.next.after, position_param: after, full_page_without_next: end, "
            "cursor_field: hs_lastmodifieddate, cursor_format: unix_ms, since_param: updatedAfter, "
            "until_param: null}",
            _hubspot,
            records=60,
        ),
        Contract(
            "salesforce",
            SALESFORCE_QUERY,
            "SystemModstamp",
            "%Y-%m-%dT%H:%M:%S.000+0000",
            "modstamp_gte",
            "-",
            "{path: /services/data/v60.0/query, pagination: next_url, next_url_path: nextRecordsUrl, "
            "end_path: done, total_path: totalSize, records_path: records, page_size_param: null, "
            "params: {q: 'SELECT Id, Amount, SystemModstamp FROM Opportunity'}, cursor_field: SystemModstamp, "
            "cursor_format: '%Y-%m-%dT%H:%M:%S.000+0000', since_param: modstamp_gte, until_param: null}",
            _salesforce,
        ),
        Contract(
            "sp_api",
            "/orders/v0/orders",
            "LastUpdateDate",
            "iso",
            "LastUpdatedAfter",
            "MaxResultsPerPage",
            "{path: /orders/v0/orders, pagination: cursor, records_path: payload.Orders, "
            "cursor_path: payload.NextToken, position_param: NextToken, page_size_param: MaxResultsPerPage, "
            "full_page_without_next: end, params: {MarketplaceIds: ATVPDKIKX0DER}, "
            "cursor_field: LastUpdateDate, since_param: LastUpdatedAfter, until_param: LastUpdatedBefore}",
            _sp_api,
        ),
        Contract(
            "bigcommerce",
            "/v3/catalog/products",
            "date_modified",
            "iso",
            "date_modified:min",
            "limit",
            "{path: /v3/catalog/products, pagination: page, page_size_param: limit, "
            "total_pages_path: meta.pagination.total_pages, count_path: meta.pagination.count, "
            "total_path: meta.pagination.total, cursor_field: date_modified, "
            "since_param: 'date_modified:min', until_param: 'date_modified:max'}",
            _bigcommerce,
        ),
        Contract(
            "square",
            "/v2/payments",
            "updated_at",
            "iso",
            "begin_time",
            "limit",
            "{path: /v2/payments, pagination: cursor, records_path: payments, cursor_path: cursor, "
            "position_param: cursor, full_page_without_next: end, cursor_field: updated_at, "
            "since_param: begin_time, until_param: end_time}",
            _square,
        ),
        Contract(
            "header_token",
            "/v1/items",
            "modified_ms",
            "unix_ms",
            "since_ms",
            "pageSize",
            "{path: /v1/items, pagination: header, next_header: X-Next-Page-Token, position_param: page_token, "
            "page_size_param: pageSize, records_path: items, cursor_field: modified_ms, full_page_without_next: end, "
            "cursor_format: unix_ms, since_param: since_ms, until_param: until_ms}",
            _header_token,
        ),
    ]
}

SOURCE_YAML = """\
description: {name} contract reproduction (tests/helpers/contract_apis.py)
owner: tests@northstar.example
tables:
  items:
    description: the endpoint's records
    format: jsonl
    landing: contracts/{name}/items
    primary_key: [id]
    ordering: [{cursor_field}]
api:
  base_url: {url}
  rate_limit: {{requests: {budget}, per_seconds: {window}, max_wait_seconds: 100000}}
  page_size: 10
  lookback_hours: 24
  timeout_seconds: 5
  retries: {{attempts: 6, initial_seconds: 0.5, max_seconds: 8}}
  endpoints:
    items: {endpoint}
"""


def source_yaml(server: ContractServer, endpoint: str | None = None) -> str:
    """The source file a user writes for the contract's API (only YAML: no code)."""
    c = server.contract
    return SOURCE_YAML.format(
        name=c.name,
        cursor_field=c.cursor_field,
        url=server.url,
        budget=server.budget,
        window=server.window,
        endpoint=endpoint or c.endpoint_yaml,
    )
