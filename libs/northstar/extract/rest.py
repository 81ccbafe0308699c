"""REST API extraction: page through each endpoint, land every page, commit the cursor after it is landed.

`run_extract` runs a full, incremental or backfill extract of a source's `api:` endpoints. Incremental runs
ask for records whose cursor field (e.g. `updated_at`) is at or after the watermark minus the lookback,
so late updates are re-read; silver counts the re-read copies as duplicates. Every request goes through
one rate limiter per API; 429, 5xx, timeouts, connection errors and partial pages are retried with
exponential backoff and jitter (tenacity). A page is landed, then its manifest written, then the state
committed: a crash anywhere resumes at the first uncommitted page, which overwrites its own object.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from northstar.config import ConfigError, EnvConfig, SourceSpec
from northstar.config.api import ApiSpec, EndpointSpec
from northstar.config.base import expand_env_vars
from northstar.extract import ExtractError
from northstar.extract.auth import ClientCredentials, request_auth, shown_url
from northstar.extract.cursors import shift_cursor, window_bounds
from northstar.extract.pages import Page, PageLoss, PartialPage, Position, Response, read_page
from northstar.extract.ratelimit import BudgetExhausted, Clock, RateLimiter
from northstar.extract.state import RunProgress, StateStore, TableState, state_key
from northstar.landing import writer as landing_writer
from northstar.landing.writer import ObjectStore, open_store
from northstar.secrets import Secret, SecretError, resolve

# Points of a page's life where tests inject crashes: fetched -> landed -> manifested -> committed.
Hook = Callable[[str, str, int], None]
Bound = str | int | None  # a cursor-field bound sent to the API, in the endpoint's cursor_format
REQUEST_LOG = "_extract/{source}/_requests.json"


class RetryableStatus(Exception):
    """429 or 5xx: try again (after Retry-After when the server gave one)."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}" + (f" (Retry-After {retry_after:g} s)" if retry_after else ""))
        self.status, self.retry_after = status, retry_after


RETRYABLE = (
    RetryableStatus,
    PartialPage,
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)


@dataclass
class TableResult:
    """What one table's extract did (`status`: done, budget_spent or failed)."""

    table: str
    status: str = "running"
    mode: str = ""
    run_id: str = ""
    since: str | int | None = None
    pages: int = 0
    records: int = 0
    resumed_at_page: int = 0
    watermark: str | int | None = None
    error: str = ""


@dataclass
class ExtractReport:
    source: str
    tables: list[TableResult] = field(default_factory=list)
    requests: int = 0
    retries: Counter = field(default_factory=Counter)
    waited_seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return all(t.status == "done" for t in self.tables)

    def format(self) -> str:
        lines = [
            f"extract {self.source}: {self.requests} requests, waited {self.waited_seconds:.1f} s for the rate limit"
        ]
        if self.retries:
            lines.append("  retries: " + ", ".join(f"{k} {v}" for k, v in sorted(self.retries.items())))
        for t in self.tables:
            resumed = f", resumed at page {t.resumed_at_page + 1}" if t.resumed_at_page else ""
            lines.append(
                f"  {t.table:<18} {t.status:<13} {t.mode:<11} pages {t.pages:>5}  records {t.records:>8}"
                f"  watermark {t.watermark}{resumed}  run {t.run_id}"
            )
            if t.error:
                lines.append(f"    {t.error}")
        if any(t.status == "budget_spent" for t in self.tables):
            lines.append(
                "  request budget spent: state is saved; the next run resumes where this one stopped"
            )
        return "\n".join(lines)


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as the RFC 9110 allows it: delay seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    if value.strip().replace(".", "", 1).isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def reset_seconds(value: str | None, fmt: str, now: float) -> float | None:
    """Seconds until a rate-limit window resets, from a reset header written as a delay or as epoch seconds."""
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    if number is None:
        return None
    epoch = fmt == "epoch" or (fmt == "auto" and number > 1e9)
    return max(0.0, number - now) if epoch else number


def _cursor_max(current: Any, candidate: Any) -> Any:  # cursor values as the API sent them
    if candidate is None:
        return current
    return candidate if current is None or candidate > current else current


class ApiClient:
    """Fetch one page of an endpoint, with the rate limiter, retries and partial-page checks."""

    def __init__(
        self,
        api: ApiSpec,
        base_url: str,
        limiter: RateLimiter,
        clock: Clock,
        token: Secret | None,
        session: requests.Session | None = None,
    ) -> None:
        self.api, self.base_url, self.limiter, self.clock = api, base_url.rstrip("/"), limiter, clock
        self.session = session or requests.Session()
        self.headers = {"Accept": "application/json", "User-Agent": "northstar-extract/1"}
        self.auth = request_auth(api.auth, token, clock.now, api.timeout_seconds)
        self.retries: Counter = Counter()
        self._lock = threading.Lock()

    def _count(self, reason: str) -> None:
        with self._lock:
            self.retries[reason] += 1

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_exponential_jitter(
            initial=self.api.retries.initial_seconds,
            max=self.api.retries.max_seconds,
            jitter=self.api.retries.initial_seconds,
        )(state)
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None) or 0
        return max(backoff, retry_after)

    def fetch(
        self,
        table: str,
        endpoint: EndpointSpec,
        position: Position,
        since: Bound,
        until: Bound,
        page_number: int,
    ) -> Page:
        """The page at `position` (None: the first), retried until complete or the retry limit."""
        attempts = self.api.retries.attempts
        retrying = Retrying(
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RETRYABLE),
            sleep=self.clock.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    page = self._fetch_once(endpoint, position, since, until)
                    page.attempts = attempt.retry_state.attempt_number
                    return page
        except RETRYABLE as err:
            raise ExtractError(
                f"{table}: page {page_number} failed {attempts} times in a row (last: "
                f"{type(err).__name__}: {err}). Nothing after the last landed page was committed; fix the "
                "cause (or raise api.retries.attempts) and run the same command again to resume."
            ) from err
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(
        self, endpoint: EndpointSpec, position: Position, since: Bound, until: Bound
    ) -> tuple[str, dict | None]:
        if endpoint.pagination in ("link", "next_url") and position:
            return str(position), None  # the server's own next link carries every parameter
        params: dict = dict(endpoint.params)
        if since is not None:
            params[endpoint.since_param] = since
        if until is not None and endpoint.until_param is not None:
            params[endpoint.until_param] = until
        if endpoint.page_size_query is not None:
            params[endpoint.page_size_query] = endpoint.page_size or self.api.page_size
        first = {"page": 1, "offset": 0}.get(endpoint.pagination)
        if position is not None or first is not None:
            params[endpoint.position_query] = first if position is None else position
        return self.base_url + endpoint.path, params

    def _send(self, url: str, params: dict | None) -> requests.Response:
        """One GET through the rate limiter (a 401 with an OAuth2 token: the token fetched again, sent once more)."""
        for attempt in (1, 2):
            slot = self.limiter.acquire()
            try:
                response = self.session.get(
                    url, params=params, headers=self.headers, auth=self.auth, timeout=self.api.timeout_seconds
                )
            except requests.RequestException as err:
                self._count(type(err).__name__)
                raise
            finally:
                self.limiter.release(slot)
            if response.status_code != 401 or not isinstance(self.auth, ClientCredentials) or attempt == 2:
                return response
            self._count("token_refreshed_on_401")
            self.auth.invalidate()
        raise AssertionError("unreachable")  # pragma: no cover

    def _fetch_once(self, endpoint: EndpointSpec, position: Position, since: Bound, until: Bound) -> Page:
        url, params = self._request(endpoint, position, since, until)
        response = self._send(url, params)
        body = response.content
        now = self.clock.now()
        limits = self.api.rate_limit
        if response.headers.get(limits.remaining_header) == "0":
            reset = reset_seconds(response.headers.get(limits.reset_header), limits.reset_format, now)
            self.limiter.pause_until(now + (self.limiter.per_seconds if reset is None else reset))
        status = response.status_code
        if status == 429 or status >= 500:
            seconds = retry_after_seconds(response.headers.get("Retry-After"), now)
            if seconds:
                self.limiter.pause_until(now + seconds)
            self._count(f"http_{status}")
            raise RetryableStatus(status, seconds)
        if status in (401, 403):
            raise ExtractError(
                f"{url}: HTTP {status}: the API refused the credentials from {self.api.auth.secret if self.api.auth else 'no auth'}; "
                "check the secret holds a valid token"
            )
        if status >= 400:
            raise ExtractError(f"{url}: HTTP {status}: {body[:300].decode(errors='replace')}")
        try:
            return self.read(endpoint, position, response)
        except PartialPage as err:
            self._count("partial_page")
            raise PartialPage(f"{err} ({shown_url(response.url, self.api.auth)})") from None

    def read(self, endpoint: EndpointSpec, position: Position, response: requests.Response) -> Page:
        """The page in a 2xx response (PartialPage / PageLoss when it cannot be trusted)."""
        try:
            document = json.loads(response.content)
        except ValueError:
            raise PartialPage(
                f"body is not complete JSON ({len(response.content)} bytes; truncated?)"
            ) from None
        limit = endpoint.page_size or self.api.page_size
        shown = shown_url(response.url, self.api.auth)
        seen = Response(document, response.headers, response.links, shown, self.base_url)
        page = read_page(endpoint, limit, position, seen)
        page.request["status"], page.status = response.status_code, response.status_code
        return page


def new_run_id(clock: Clock, mode: str) -> str:
    stamp = datetime.fromtimestamp(clock.now(), UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{mode}-{os.urandom(3).hex()}"


def _start_progress(
    api: ApiSpec,
    endpoint: EndpointSpec,
    state: TableState,
    run_id_for: Callable[[str], str],
    start: str | None,
    end: str | None,
    full_refresh: bool,
) -> RunProgress:
    if start is not None or end is not None:
        since, until = window_bounds(start, end, endpoint.cursor_format)
        return RunProgress(run_id_for("backfill"), "backfill", since, until)
    if full_refresh or state.watermark is None:
        return RunProgress(run_id_for("full"), "full", None, None)
    since = shift_cursor(state.watermark, api.lookback_hours, endpoint.cursor_format)
    return RunProgress(run_id_for("incremental"), "incremental", since, None)


def _require_api(source: SourceSpec) -> ApiSpec:
    """The source's api section; ConfigError when it has none."""
    if source.api is None:
        raise ConfigError(f"source {source.name} has no api: section; add one (see docs/api-sources.md)")
    return source.api


def _utc_text(clock: Clock) -> str:
    """The clock's now as ISO-8601 UTC text."""
    return datetime.fromtimestamp(clock.now(), UTC).isoformat()


def extract_table(
    source: SourceSpec,
    table: str,
    client: ApiClient,
    store: ObjectStore,
    *,
    start: str | None = None,
    end: str | None = None,
    full_refresh: bool = False,
    hook: Hook | None = None,
    result: TableResult | None = None,
) -> TableResult:
    """Extract one endpoint into its table's landing folder; returns what it did (raises ExtractError, after
    which `result`, when given, still says what landed)."""
    api = _require_api(source)
    endpoint = api.endpoints[table]
    folder = source.tables[table].landing.strip("/")
    states = StateStore(store, state_key(folder, start, end) if (start or end) else state_key(folder))
    state = states.load()
    result = result or TableResult(table)
    previous = ""
    progress = _resume_or_start(api, endpoint, state, states, result, client.clock, start, end, full_refresh)
    result.mode, result.run_id, result.since = progress.mode, progress.run_id, progress.since
    hook = hook or (lambda point, table, page: None)
    while True:
        number = progress.page + 1
        if number > api.max_pages_per_run:
            raise ExtractError(
                f"{table}: more than max_pages_per_run={api.max_pages_per_run} pages; stopping"
            )
        try:
            page = client.fetch(table, endpoint, progress.next, progress.since, progress.until, number)
        except BudgetExhausted as err:
            result.status, result.error, result.watermark = "budget_spent", str(err), state.watermark
            return result
        hook("fetched", table, number)
        previous = _refuse_repeat(table, endpoint, number, previous, page)
        records = _land_records(source, table, store, client.clock, progress, page, number, hook)
        _advance(progress, endpoint, page, records)
        result.pages += 1
        result.records += len(records)
        if not page.has_more:
            _refuse_short_of_total(table, progress)
            _finish_run(state, progress, client.clock)
        states.commit(state)
        hook("committed", table, number)
        if not page.has_more:
            result.status, result.watermark = "done", state.watermark
            return result


def _resume_or_start(
    api: ApiSpec,
    endpoint: EndpointSpec,
    state: TableState,
    states: StateStore,
    result: TableResult,
    clock: Clock,
    start: str | None,
    end: str | None,
    full_refresh: bool,
) -> RunProgress:
    """The run in progress to resume, or a new one (committed before its first page)."""
    progress = state.in_progress
    if progress is not None and full_refresh and progress.mode != "full":
        progress = None  # a full refresh replaces an unfinished incremental run (its landed pages stay valid)
    if progress is not None:
        result.resumed_at_page = progress.page
        return progress
    progress = _start_progress(
        api, endpoint, state, lambda mode: new_run_id(clock, mode), start, end, full_refresh
    )
    state.in_progress = progress
    states.commit(state)
    return progress


def _land_records(
    source: SourceSpec,
    table: str,
    store: ObjectStore,
    clock: Clock,
    progress: RunProgress,
    page: Page,
    number: int,
    hook: Hook,
) -> list[dict]:
    """Land the page's records (stamped with the fetch time when the endpoint asks) and their manifest."""
    endpoint = _require_api(source).endpoints[table]
    spec = source.tables[table]
    records = page.records
    if endpoint.stamp_field:
        fetched = datetime.fromtimestamp(clock.now(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        records = [{**r, endpoint.stamp_field: fetched} for r in records]
    if not records:
        return records
    key = landing_writer.page_key(spec.landing.strip("/"), progress.run_id, number)
    landed = landing_writer.write_page(store, key, records, redact=spec.redact_card_numbers)
    hook("landed", table, number)
    landing_writer.write_manifest(
        store,
        landed,
        {
            "source": source.name,
            "table": table,
            "run_id": progress.run_id,
            "page": number,
            "request": page.request,
            "position": progress.next,
            "attempts": page.attempts,
            "fetched_at": _utc_text(clock),
        },
    )
    hook("manifested", table, number)
    return records


def _refuse_repeat(table: str, endpoint: EndpointSpec, number: int, previous: str, page: Page) -> str:
    """The page's records as canonical JSON; PageLoss when they are the previous page's exactly (the API ignored
    the position, so the run would loop or stop on copies while the records after it are never read)."""
    text = json.dumps(page.records, sort_keys=True, default=str) if page.records else ""
    if text and text == previous:
        raise PageLoss(
            f"{table}: page {number} holds the same {len(page.records)} records as page {number - 1}: the API "
            f"ignores the position sent as {endpoint.position_query!r}. Set position_param to the parameter the "
            "API reads"
        )
    return text


def _refuse_short_of_total(table: str, progress: RunProgress) -> None:
    """PageLoss when the run landed fewer records than its first page said the query matches."""
    total = progress.declared_total
    if total is not None and progress.records < total:
        raise PageLoss(
            f"{table}: the API said the query matches {total} records (total_path) but the run's "
            f"{progress.page} pages held {progress.records}; state not advanced. Check the pagination settings "
            "(page_size, position_param), then run again with --full-refresh"
        )


def _advance(progress: RunProgress, endpoint: EndpointSpec, page: Page, records: list[dict]) -> None:
    """Move the run past a landed page: its count, the highest cursor value seen, the next position."""
    if progress.page == 0:
        progress.declared_total = page.total
    progress.page += 1
    progress.records += len(records)
    for record in records:
        if isinstance(record, dict):
            progress.max_cursor = _cursor_max(progress.max_cursor, record.get(endpoint.cursor_field))
    progress.next = page.next


def _finish_run(state: TableState, progress: RunProgress, clock: Clock) -> None:
    """The last page landed: move the watermark (not for a backfill), record the run, clear the progress."""
    if progress.mode != "backfill":  # a backfill window never moves the incremental watermark
        state.watermark = _cursor_max(state.watermark, progress.max_cursor)
    state.history = [
        *state.history[-9:],
        {
            "run_id": progress.run_id,
            "mode": progress.mode,
            "since": progress.since,
            "until": progress.until,
            "pages": progress.page,
            "records": progress.records,
            "max_cursor": progress.max_cursor,
        },
    ]
    state.last_run_id, state.in_progress = progress.run_id, None
    state.last_finished_at = _utc_text(clock)
    state.runs_finished += 1


def run_extract(
    env: EnvConfig,
    source: SourceSpec,
    tables: list[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    full_refresh: bool = False,
    *,
    max_requests: int | None = None,
    clock: Clock | None = None,
    hook: Hook | None = None,
    store: ObjectStore | None = None,
    session: requests.Session | None = None,
) -> ExtractReport:
    """Extract the source's API endpoints (all, or `tables`) into the env's landing zone.

    Incremental by default (the whole history on the first run); `full_refresh` re-reads everything;
    `start`/`end` extract that window of the cursor field (a backfill, resumable, never moving the
    watermark). `max_requests` caps this run's requests: when spent, the run stops cleanly with its state
    saved and `report.complete` False. Raises ExtractError when an endpoint fails for good (other
    endpoints finish first; every state stays at its last landed page).
    """
    api = _require_api(source)
    chosen = _chosen_endpoints(source, api, tables, start, end, full_refresh)
    _check_window(source, api, chosen, start, end)
    base_url, token = _connection(source, api)
    clock = clock or Clock()
    store = store or open_store(env.landing)
    limiter, request_log = _rate_limit(source, api, clock, store, max_requests)
    client = ApiClient(api, base_url, limiter, clock, token, session)
    report = ExtractReport(source.name)
    window: dict[str, Any] = {"start": start, "end": end, "full_refresh": full_refresh}

    def one(table: str) -> TableResult:
        result = TableResult(table)  # kept on failure: the report says what landed before it
        try:
            return extract_table(source, table, client, store, **window, hook=hook, result=result)
        except ExtractError as err:
            result.status, result.error = "failed", str(err)
            return result

    try:
        with ThreadPoolExecutor(
            max_workers=min(api.workers, len(chosen)), thread_name_prefix="extract"
        ) as pool:
            report.tables = list(pool.map(one, chosen))
    finally:
        request_log.save()
        report.requests, report.retries, report.waited_seconds = (
            limiter.sent,
            client.retries,
            limiter.waited_seconds,
        )
    failed = [t for t in report.tables if t.status == "failed"]
    if failed:
        raise ExtractError(
            f"{len(failed)} of {len(report.tables)} endpoints failed; each one's state stays at its last "
            "landed page, so the same command resumes once the cause is fixed\n" + report.format()
        )
    return report


def _chosen_endpoints(
    source: SourceSpec,
    api: ApiSpec,
    tables: list[str] | None,
    start: str | None,
    end: str | None,
    full_refresh: bool,
) -> list[str]:
    """The endpoints to extract (all, or `tables`); ConfigError for an unknown one or clashing options."""
    if full_refresh and (start or end):
        raise ConfigError("--full-refresh and --start/--end do not go together: pick one")
    chosen = tables or list(api.endpoints)
    unknown = [t for t in chosen if t not in api.endpoints]
    if unknown:
        raise ConfigError(
            f"source {source.name} has no API endpoint for {', '.join(unknown)} (endpoints: {', '.join(api.endpoints)})"
        )
    return chosen


def _check_window(
    source: SourceSpec, api: ApiSpec, chosen: list[str], start: str | None, end: str | None
) -> None:
    """`--start/--end` are real dates, in order, and sendable to every chosen endpoint (before any request)."""
    for table in chosen:
        endpoint = api.endpoints[table]
        window_bounds(start, end, endpoint.cursor_format)
        if end and endpoint.until_param is None:
            raise ConfigError(
                f"source {source.name}: endpoint {table} has no until parameter (until_param: null), so --end "
                "cannot be sent; give --start alone"
            )


def _connection(source: SourceSpec, api: ApiSpec) -> tuple[str, Secret | None]:
    """The API's base URL (environment variables expanded) and its token, if it authenticates."""
    try:
        base_url = expand_env_vars(api.base_url)
    except KeyError as err:
        raise ConfigError(
            f"source {source.name}: api.base_url uses ${{{err.args[0]}}}, which is not set"
        ) from None
    try:
        token = resolve(api.auth.secret) if api.auth else None
    except SecretError as err:
        raise ConfigError(str(err)) from None
    return base_url, token


def _rate_limit(
    source: SourceSpec, api: ApiSpec, clock: Clock, store: ObjectStore, max_requests: int | None
) -> tuple[RateLimiter, _RequestLog]:
    """The API's rate limiter, preloaded from the request log, which it saves before every request."""
    limiter = RateLimiter(
        api.rate_limit.requests,
        api.rate_limit.per_seconds,
        clock=clock,
        max_wait_seconds=api.rate_limit.max_wait_seconds,
        max_requests=max_requests,
    )
    request_log = _RequestLog(store, REQUEST_LOG.format(source=source.name), limiter, api.timeout_seconds)
    request_log.preload()
    limiter.on_acquire = request_log.save
    return limiter, request_log


class _RequestLog:
    """The API's recent request times, kept in the landing store so rate limits hold across runs."""

    def __init__(self, store: ObjectStore, key: str, limiter: RateLimiter, in_flight_for: float) -> None:
        self.store, self.key, self.limiter, self.in_flight_for = store, key, limiter, in_flight_for
        self._lock = threading.Lock()

    def preload(self) -> None:
        """Count the requests earlier runs sent within the rate limit's period."""
        previous = self.store.get(self.key)
        if previous:
            self.limiter.preload(json.loads(previous).get("stamps", []))

    def save(self) -> None:
        """Every request is in the log before it is sent, so a killed run's requests still count next time."""
        with self._lock:
            stamps = self.limiter.recent_stamps(in_flight_for=self.in_flight_for)
            self.store.put(self.key, json.dumps({"stamps": stamps}).encode())
