"""The `api:` section of a source file: where a REST API lives, how to page through it, its rate limit.

```yaml
api:
  base_url: ${NORTHSTAR_PARTNER_API:-http://127.0.0.1:8765/partner}   # ${VAR} expanded when the run starts
  auth: {secret: env:NORTHSTAR_PARTNER_TOKEN}        # a secret reference, never the token itself
  rate_limit: {requests: 1200, per_seconds: 3600}    # one budget for every endpoint and worker
  page_size: 100
  lookback_hours: 24
  endpoints:
    orders: {path: /v1/orders, pagination: cursor, cursor_field: updated_at}
```
"""

from __future__ import annotations

from typing import Literal

from jsonpath_ng import parse as jsonpath_parse
from pydantic import AliasChoices, Field, field_validator, model_validator

from northstar.config.base import Strict
from northstar.secrets import SecretReference

CURSOR_FORMATS = ("iso", "unix", "unix_ms")


class AuthSpec(Strict):
    """How requests authenticate; every credential comes from a secret reference, never the config itself.

    header: `<header>: <scheme> <secret>` (bearer token, API key header); query: `?<query_param>=<secret>`;
    basic: HTTP basic with `username` and the secret as password; oauth2_client_credentials: a token from
    `token_url` for `client_id` and the secret (RFC 6749 4.4), refreshed before it expires and once on a 401."""

    type: Literal["header", "query", "basic", "oauth2_client_credentials"] = "header"
    secret: SecretReference = Field(description="env:NAME locally, secretsmanager:<id>[#key] in AWS")
    header: str = "Authorization"
    scheme: str = Field(default="Bearer", description="prefix of the header value; empty for a bare key")
    query_param: str = Field(default="api_key", description="query: the parameter the key goes in")
    username: str | None = Field(default=None, description="basic: the user name")
    client_id: str | None = Field(default=None, description="oauth2_client_credentials: the client id")
    token_url: str | None = Field(default=None, description="oauth2_client_credentials: the token endpoint")
    scope: str | None = None

    @model_validator(mode="after")
    def _type_needs(self) -> AuthSpec:
        if self.type == "basic" and not self.username:
            raise ValueError("auth type basic needs username")
        if self.type == "oauth2_client_credentials" and not (self.client_id and self.token_url):
            raise ValueError("auth type oauth2_client_credentials needs client_id and token_url")
        return self


class RateLimitSpec(Strict):
    """At most `requests` in any `per_seconds` window, shared by every endpoint and worker of the API."""

    requests: int = Field(gt=0)
    per_seconds: float = Field(gt=0)
    max_wait_seconds: float = Field(
        default=300,
        ge=0,
        description="when the next request would have to wait longer than this, the run stops cleanly "
        "with its state saved (the next run resumes) instead of sleeping",
    )
    remaining_header: str = Field(default="X-RateLimit-Remaining", description="requests left in the window")
    reset_header: str = Field(default="X-RateLimit-Reset", description="when the window resets")
    reset_format: Literal["auto", "seconds", "epoch"] = Field(
        default="auto",
        description="the reset header's value: seconds from now, or epoch seconds; auto: epoch when it is "
        "later than 2001-09-09 (10^9)",
    )


class RetrySpec(Strict):
    """Retries of 429, 5xx, timeouts, connection errors and partial pages: exponential backoff with jitter."""

    attempts: int = Field(default=6, ge=1, le=20)
    initial_seconds: float = Field(default=1.0, ge=0)
    max_seconds: float = Field(default=60.0, ge=0)


class EndpointSpec(Strict):
    """One endpoint, feeding the table of the same name (docs/api-sources.md has one example per style).

    Every path (`records_path`, `cursor_path`, ...) is a JSONPath into the page's JSON body; a dotted name such
    as `meta.pagination.total` is one too. Every query parameter name can be renamed, and `page_size_param`,
    `until_param` set to null are not sent at all."""

    path: str = Field(min_length=1, description="appended to base_url, e.g. /v1/orders")
    pagination: Literal["cursor", "header", "next_url", "page", "offset", "link", "stripe"] = Field(
        description="cursor: next token at cursor_path in the body; header: next token in the response header "
        "next_header; next_url: the next page's URL at next_url_path; page: page number; offset: offset/limit; "
        "link: the Link header's rel=next; stripe: starting_after=<last id> while has_more"
    )
    cursor_field: str = Field(default="updated_at", description="the record field the watermark follows")
    cursor_format: str = Field(
        default="iso",
        description="how the API writes cursor_field and reads since/until: iso, unix (seconds), unix_ms, or a "
        "strftime pattern such as %Y-%m-%d %H:%M:%S (UTC)",
    )
    id_field: str = Field(
        default="id", description="stripe: the field starting_after takes; repeat detection"
    )
    since_param: str = "updated_since"
    until_param: str | None = Field(default="updated_until", description="null: the API has no upper bound")
    records_path: str = Field(
        default="data",
        validation_alias=AliasChoices("records_path", "records_field"),
        description="where the page's list of records is; `$` for a body that is the list itself",
    )
    cursor_path: str = Field(default="next_cursor", description="cursor: where the next token is")
    next_url_path: str = Field(default="next", description="next_url: where the next page's URL is")
    next_header: str | None = Field(
        default=None, description="header: the response header with the next token"
    )
    has_more_path: str | None = Field(default="has_more", description="a boolean saying whether pages follow")
    end_path: str | None = Field(
        default=None,
        description="a boolean that is true on the last page (Salesforce done, Zendesk end_of_stream)",
    )
    count_path: str | None = Field(
        default="count",
        description="the number of records the page says it holds (checked; a mismatch retries)",
    )
    total_path: str | None = Field(
        default=None,
        description="the number of records the whole query matches (e.g. meta.pagination.total): a run that "
        "lands fewer fails; offset: also where the last page is",
    )
    total_pages_path: str | None = Field(default="total_pages", description="page: the number of pages")
    position_param: str | None = Field(
        default=None,
        description="the query parameter carrying the position; default per style: cursor/header -> cursor, "
        "page -> page, offset -> offset, stripe -> starting_after",
    )
    page_size_param: str | None = Field(
        default="default",
        description="the query parameter carrying the page size (default: per_page for page, else limit); "
        "null: none is sent",
    )
    page_size: int | None = Field(default=None, gt=0)
    short_pages: bool = Field(
        default=False,
        description="the API may return fewer records than page_size before its last page (documented by the "
        "API): a short page is then not a partial page",
    )
    full_page_without_next: Literal["fail", "end"] = Field(
        default="fail",
        description="a full page with no next token/link and nothing else saying it is the last (has_more "
        "false, the total reached, a null next field, a Link header without next): fail (a loss guard) or end",
    )
    params: dict[str, str] = Field(default_factory=dict, description="extra query parameters")
    stamp_field: str | None = Field(
        default=None,
        description="add this field to every record with the time it was fetched (for APIs whose "
        "objects have no update time: the latest snapshot then wins in silver)",
    )

    @field_validator("cursor_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in CURSOR_FORMATS and "%" not in value:
            raise ValueError(f"{value!r} is not iso, unix, unix_ms or a strftime pattern (with % fields)")
        return value

    @field_validator(
        "records_path",
        "cursor_path",
        "next_url_path",
        "has_more_path",
        "end_path",
        "count_path",
        "total_path",
        "total_pages_path",
    )
    @classmethod
    def _a_jsonpath(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                jsonpath_parse(value)
            except Exception as err:  # jsonpath-ng raises its own and Lark errors
                raise ValueError(f"{value!r} is not a JSONPath: {err}") from None
        return value

    @model_validator(mode="after")
    def _style_needs(self) -> EndpointSpec:
        if self.pagination == "header" and not self.next_header:
            raise ValueError("pagination: header needs next_header (the response header with the next token)")
        return self

    @property
    def position_query(self) -> str:
        """The query parameter the page position goes in."""
        default = {"page": "page", "offset": "offset", "stripe": "starting_after"}.get(
            self.pagination, "cursor"
        )
        return self.position_param or default

    @property
    def page_size_query(self) -> str | None:
        """The query parameter the page size goes in (None: not sent)."""
        if self.page_size_param == "default":
            return "per_page" if self.pagination == "page" else "limit"
        return self.page_size_param


class ApiSpec(Strict):
    """A REST API source: base URL, auth, pagination per endpoint, incremental window, limits."""

    base_url: str = Field(min_length=1, description="may use ${VAR:-default}; expanded when a run starts")
    auth: AuthSpec | None = None
    rate_limit: RateLimitSpec
    page_size: int = Field(default=100, gt=0)
    lookback_hours: float = Field(default=24, ge=0, description="re-read this far behind the watermark")
    timeout_seconds: float = Field(default=30, gt=0)
    retries: RetrySpec = Field(default_factory=RetrySpec)
    workers: int = Field(default=2, ge=1, le=16, description="endpoints extracted at the same time")
    max_pages_per_run: int = Field(default=100_000, gt=0, description="safety bound on any page loop")
    endpoints: dict[str, EndpointSpec] = Field(min_length=1)
