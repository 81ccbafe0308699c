"""How REST requests authenticate (`api.auth`): header token, API key in the query, HTTP basic, OAuth2 client
credentials. Each is a `requests.auth.AuthBase`, so the secret is added to the request, never to a URL or a log
line we write (the request URL landed in a page's manifest has the query key removed: `shown_url`).

OAuth2 is the client-credentials grant only (RFC 6749 section 4.4): a token fetched from `token_url`, kept until
60 s before its `expires_in`, fetched again then, and once more when the API answers 401 (a token revoked early).
It is written here rather than with requests-oauthlib because that one grant is all the extractor needs and it
would be the EMR venv's only OAuth dependency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from northstar.config.api import AuthSpec
from northstar.errors import ConfigError
from northstar.secrets import Secret

EARLY_REFRESH_SECONDS = 60


class HeaderAuth(AuthBase):
    def __init__(self, header: str, value: str) -> None:
        self.header, self.value = header, value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.header] = self.value
        return request


class QueryAuth(AuthBase):
    def __init__(self, param: str, value: str) -> None:
        self.param, self.value = param, value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        query = [*parse_qsl(parts.query, keep_blank_values=True), (self.param, self.value)]
        request.url = urlunsplit(parts._replace(query=urlencode(query)))
        return request


class ClientCredentials(AuthBase):
    """A bearer token from an OAuth2 token endpoint, refreshed before expiry (`invalidate` after a 401)."""

    def __init__(self, spec: AuthSpec, secret: Secret, now: Callable[[], float], timeout: float) -> None:
        self.spec, self.secret, self.now, self.timeout = spec, secret, now, timeout
        self.token: str | None = None
        self.expires_at = 0.0
        self.fetched = 0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        with self._lock:
            self.token = None

    def _fetch(self) -> None:
        data = {"grant_type": "client_credentials", **({"scope": self.spec.scope} if self.spec.scope else {})}
        assert self.spec.token_url  # AuthSpec checks both for this type
        assert self.spec.client_id
        answer = requests.post(
            self.spec.token_url,
            data=data,
            auth=HTTPBasicAuth(self.spec.client_id, self.secret.value),
            timeout=self.timeout,
        )
        if answer.status_code != 200:
            raise ConfigError(
                f"the token endpoint {self.spec.token_url} refused client {self.spec.client_id} (HTTP "
                f"{answer.status_code}); check the client secret in {self.secret.ref}"
            )
        body = answer.json()
        self.token = body["access_token"]
        self.expires_at = self.now() + float(body.get("expires_in", 3600)) - EARLY_REFRESH_SECONDS
        self.fetched += 1

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            if self.token is None or self.now() >= self.expires_at:
                self._fetch()
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def request_auth(
    spec: AuthSpec | None, secret: Secret | None, now: Callable[[], float], timeout: float
) -> AuthBase | None:
    """The requests auth for `spec` with its resolved secret (None: the API takes no credentials)."""
    if spec is None or secret is None:
        return None
    if spec.type == "query":
        return QueryAuth(spec.query_param, secret.value)
    if spec.type == "basic":
        assert spec.username  # AuthSpec checks it for this type
        return HTTPBasicAuth(spec.username, secret.value)
    if spec.type == "oauth2_client_credentials":
        return ClientCredentials(spec, secret, now, timeout)
    return HeaderAuth(spec.header, f"{spec.scheme} {secret.value}" if spec.scheme else secret.value)


def shown_url(url: str, spec: AuthSpec | None) -> str:
    """`url` without the query-string key, for manifests and messages."""
    if spec is None or spec.type != "query":
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != spec.query_param]
    return urlunsplit(parts._replace(query=urlencode(query)))
