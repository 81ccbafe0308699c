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

from pydantic import Field

from northstar.config.base import Strict
from northstar.secrets import SecretReference

PAGINATION_STYLES = ("cursor", "page", "offset", "link", "stripe")


class AuthSpec(Strict):
    """How requests authenticate: a header whose value comes from a secret reference."""

    secret: SecretReference = Field(description="env:NAME locally, secretsmanager:<id>[#key] in AWS")
    header: str = "Authorization"
    scheme: str = Field(default="Bearer", description="prefix of the header value; empty for a bare key")


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


class RetrySpec(Strict):
    """Retries of 429, 5xx, timeouts, connection errors and partial pages: exponential backoff with jitter."""

    attempts: int = Field(default=6, ge=1, le=20)
    initial_seconds: float = Field(default=1.0, ge=0)
    max_seconds: float = Field(default=60.0, ge=0)


class EndpointSpec(Strict):
    """One endpoint, feeding the table of the same name."""

    path: str = Field(min_length=1, description="appended to base_url, e.g. /v1/orders")
    pagination: Literal["cursor", "page", "offset", "link", "stripe"] = Field(
        description="cursor: next token in the body; page: page number; offset: offset/limit; "
        "link: the Link header's rel=next; stripe: starting_after=<last id> while has_more"
    )
    cursor_field: str = Field(default="updated_at", description="the record field the watermark follows")
    cursor_format: Literal["iso", "unix"] = "iso"
    id_field: str = Field(default="id", description="stripe: the field starting_after takes")
    since_param: str = "updated_since"
    until_param: str = "updated_until"
    records_field: str = "data"
    page_size: int | None = Field(default=None, gt=0)
    params: dict[str, str] = Field(default_factory=dict, description="extra query parameters")
    stamp_field: str | None = Field(
        default=None,
        description="add this field to every record with the time it was fetched (for APIs whose "
        "objects have no update time: the latest snapshot then wins in silver)",
    )


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
