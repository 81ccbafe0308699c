"""Conformance: public APIs' documented pagination and incremental contracts, onboarded by YAML only (no Spark).

Every contract server (tests/helpers/contract_apis.py, what each reproduces and from which docs) serves its
records through 429 storms, 5xx, truncated bodies, short pages and duplicates across pages; a full run, a late
update and an incremental run later, the landing zone holds the latest version of every record the server has,
and no request went over the server's budget. Then the loss guards: configurations that would lose records stop
the run with one message naming the endpoint and what to set, the watermark not moved.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from northstar.config import ConfigError, parse_source
from northstar.extract.cursors import to_moment
from northstar.extract.ratelimit import FakeClock
from northstar.extract.rest import ExtractError, run_extract
from northstar.extract.state import StateStore, state_key
from northstar.landing.writer import LocalStore
from tests.helpers.api_sim import landed_records
from tests.helpers.contract_apis import CONTRACTS, ContractServer, source_yaml
from tests.helpers.envs import REPO, make_env

DAY = 86_400


def onboard(tmp_path: Path, server: ContractServer, endpoint: str | None = None):
    """The source as a user writes it: one YAML file, parsed as conf/sources files are."""
    path = tmp_path / "conf" / f"{server.contract.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source_yaml(server, endpoint))
    return parse_source(path)


def latest_landed(env, source, server: ContractServer) -> dict[str, dict]:
    """The newest landed version of every record: the higher cursor value, else the later landing."""
    c, latest = server.contract, {}
    for record in landed_records(env, source, "items"):
        moment = to_moment(record[c.cursor_field], c.cursor_format)
        held = latest.get(record["id"])
        if held is None or moment >= to_moment(held[c.cursor_field], c.cursor_format):
            latest[record["id"]] = record
    return latest


@pytest.mark.parametrize("name", list(CONTRACTS))
def test_a_public_api_contract_lands_its_ground_truth_through_every_fault(tmp_path, name):
    clock = FakeClock()
    env = make_env(tmp_path)
    with ContractServer(CONTRACTS[name], clock) as server:
        source = onboard(tmp_path, server)
        first = run_extract(env, source, clock=clock)
        clock.advance(DAY)
        server.update_late()
        server.add_new()
        second = run_extract(env, source, clock=clock)

        assert [first.tables[0].mode, second.tables[0].mode] == ["full", "incremental"]
        assert first.complete, first.format()
        assert second.complete, second.format()
        truth, landed = server.truth(), latest_landed(env, source, server)
        assert set(landed) == set(truth)
        assert {k: r["amount"] for k, r in landed.items()} == {k: r["amount"] for k, r in truth.items()}
        assert server.over_budget == 0, server.requests
        assert sum(server.injected.values()) > 0, server.injected
        reads = second.tables[0].records
        assert reads < len(truth), "the incremental run re-read everything"


def test_every_fault_kind_was_served_by_some_contract(tmp_path):
    """The faults above are rolled per request: check the battery as a whole hit each kind."""
    seen: dict[str, int] = {}
    for name, contract in CONTRACTS.items():
        clock = FakeClock()
        with ContractServer(contract, clock) as server:
            run_extract(make_env(tmp_path / name), onboard(tmp_path / name, server), clock=clock)
            for kind, n in server.injected.items():
                seen[kind] = seen.get(kind, 0) + n
    assert set(seen) == {"429", "5xx", "truncated", "short_page", "duplicate"}, seen


def extract_fails(tmp_path, contract: str, endpoint: str | None, faults: bool = False, **server_args) -> str:
    """Run a misconfigured or misbehaving extract; return the error and check nothing was committed."""
    clock, env = FakeClock(), make_env(tmp_path)
    with ContractServer(CONTRACTS[contract], clock, faults=faults, **server_args) as server:
        source = onboard(tmp_path, server, endpoint)
        with pytest.raises(ExtractError) as err:
            run_extract(env, source, clock=clock)
    state = StateStore(LocalStore(env.landing), state_key(source.tables["items"].landing)).load()
    assert state.watermark is None, state
    assert state.runs_finished == 0
    return str(err.value)


def test_a_next_token_in_a_header_read_as_a_link_api_stops_instead_of_landing_page_one(tmp_path):
    message = extract_fails(
        tmp_path,
        "header_token",
        "{path: /v1/items, pagination: link, records_path: items, page_size_param: pageSize, "
        "cursor_field: modified_ms, cursor_format: unix_ms, since_param: since_ms, until_param: null}",
    )
    assert "a full page of 10 records with no next Link header rel=next" in message
    assert "pagination: header with next_header" in message
    assert "pages     0  records        0" in message  # the guard stops before the page is landed


SQUARE_WRONG_CURSOR_NAME = (
    "{path: /v2/payments, pagination: cursor, records_path: payments, cursor_path: cursor, "
    "cursor_field: updated_at, since_param: begin_time, until_param: end_time, position_param: page_cursor}"
)


def test_a_cursor_sent_under_a_name_the_api_ignores_stops_on_the_repeated_position(tmp_path):
    message = extract_fails(tmp_path, "square", SQUARE_WRONG_CURSOR_NAME)
    assert "the API returned the same next position" in message
    assert "it ignores the position sent as 'page_cursor'? Set position_param" in message
    assert "pages     1  records       10" in message  # the report says what landed before it stopped


def test_pages_that_repeat_under_fresh_tokens_stop_the_run(tmp_path):
    """The API ignores the cursor but hands out a new token every time: the same records come back forever."""
    tokens = iter(range(10**6))

    def fresh_token(body):
        return {**body, "cursor": f"t{next(tokens)}"} if "cursor" in body else body

    message = extract_fails(tmp_path, "square", SQUARE_WRONG_CURSOR_NAME, tamper=fresh_token)
    assert "page 2 holds the same 10 records as page 1" in message
    assert "position sent as 'page_cursor'" in message


def test_a_count_at_a_nested_path_catches_a_last_page_that_lost_records(tmp_path):
    """BigCommerce says each page's count at meta.pagination.count; a last page holding fewer records than it
    says (short, so no short-page rule applies) is retried, then fails naming the page."""

    def loses_one_on_the_last_page(body):
        pagination = body["meta"]["pagination"]
        last = pagination["current_page"] == pagination["total_pages"]
        return {**body, "data": body["data"][:-1]} if last else body

    clock, env = FakeClock(), make_env(tmp_path)
    with ContractServer(
        CONTRACTS["bigcommerce"], clock, faults=False, tamper=loses_one_on_the_last_page
    ) as server:
        source = onboard(tmp_path, server)
        with pytest.raises(ExtractError) as err:
            run_extract(env, source, clock=clock)
    assert "page 6 failed 6 times in a row" in str(err.value)
    assert "page says 7 records (meta.pagination.count) but holds 6" in str(err.value)


def test_a_total_the_landed_records_fall_short_of_fails_the_run(tmp_path):
    """Salesforce says totalSize; a last page silently short of it (its `done` true, no count to check) fails
    at the end of the run, the watermark not moved."""

    def last_page_short(body):
        return {**body, "records": body["records"][:-2]} if body["done"] else body

    message = extract_fails(tmp_path, "salesforce", None, tamper=last_page_short)
    assert "the API said the query matches 57 records (total_path) but the run's 6 pages held 55" in message


def test_short_pages_mid_stream_are_accepted_only_when_the_api_documents_them(tmp_path):
    def short_while_more(body):
        return {**body, "payments": body["payments"][:-1]} if "cursor" in body else body

    clock = FakeClock()
    with ContractServer(CONTRACTS["square"], clock, faults=False, tamper=short_while_more) as server:
        strict = onboard(tmp_path / "strict", server)
        with pytest.raises(ExtractError, match="set short_pages: true"):
            run_extract(make_env(tmp_path / "strict"), strict, clock=clock)
        lenient_yaml = CONTRACTS["square"].endpoint_yaml.replace("{path:", "{short_pages: true, path:")
        lenient, env = onboard(tmp_path / "lenient", server, lenient_yaml), make_env(tmp_path / "lenient")
        report = run_extract(env, lenient, clock=clock)
    assert report.complete
    assert report.tables[0].pages == 6


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-13-01", None, "--start '2026-13-01' is not a date or time"),
        ("2026-11-02", "2026-11-01", "--start 2026-11-02 is not before --end 2026-11-01"),
        ("2026-11-01", "2026-11-02", "endpoint items has no until parameter (until_param: null)"),
    ],
)
def test_a_bad_window_is_refused_before_any_request(tmp_path, start, end, message):
    clock, env = FakeClock(), make_env(tmp_path)
    with ContractServer(CONTRACTS["github"], clock) as server:
        source = onboard(tmp_path, server)
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            run_extract(env, source, start=start, end=end, clock=clock)
        assert server.requests == 0
    assert not list(Path(env.landing).rglob("*state*"))


def test_a_backfill_window_is_sent_in_the_cursors_own_format(tmp_path):
    """A unix_ms API: --start/--end become epoch milliseconds, and only the window's records land."""
    clock, env = FakeClock(), make_env(tmp_path)
    contract = CONTRACTS["header_token"]
    with ContractServer(contract, clock, faults=False) as server:
        source = onboard(tmp_path, server)
        report = run_extract(
            env, source, start="2026-11-01T06:00:00Z", end="2026-11-01T12:00:00Z", clock=clock
        )
        assert report.complete
    landed = landed_records(env, source, "items")
    moments = sorted(to_moment(r[contract.cursor_field], contract.cursor_format) for r in landed)
    assert moments, "nothing landed"
    assert moments[0].hour >= 6
    assert {m.hour for m in moments} <= set(range(6, 12))


AUTH_YAML = {
    "bearer": "{type: oauth2_client_credentials, secret: 'env:CONTRACT_SECRET', client_id: northstar, "
    "token_url: '%s/oauth/token'}",
    "query": "{type: query, secret: 'env:CONTRACT_SECRET', query_param: api_key}",
    "basic": "{type: basic, secret: 'env:CONTRACT_SECRET', username: northstar}",
}


@pytest.mark.parametrize("kind", list(AUTH_YAML))
def test_auth_styles_against_a_server_that_checks_them(tmp_path, monkeypatch, kind):
    """OAuth2 client credentials (token fetched, refreshed before expiry, and once on a 401 after a revoke), an
    API key in the query string (kept out of the landed manifests), HTTP basic; the secret is never landed."""
    monkeypatch.setenv("CONTRACT_SECRET", "s3cret-client-value")
    clock, env = FakeClock(), make_env(tmp_path)
    with ContractServer(CONTRACTS["square"], clock, faults=False, auth=kind) as server:
        text = source_yaml(server).replace(
            "  endpoints:", "  auth: " + AUTH_YAML[kind].replace("%s", server.url) + "\n  endpoints:"
        )
        path = tmp_path / "conf" / "square.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(text)
        source = parse_source(path)
        assert run_extract(env, source, clock=clock).complete
        if kind == "bearer":
            clock.advance(100)  # past expiry minus 60 s: the next run's first request gets a new token
            server.add_new()
            assert run_extract(env, source, clock=clock).complete
            server.tokens.clear()  # revoked early: a 401, a new token, the same request again
            server.add_new()
            assert run_extract(env, source, clock=clock).complete
            assert len(server.tokens) == 1
            assert server.issued == 3  # the first, the one fetched before expiry, the one after the revoke
        truth, landed = server.truth(), latest_landed(env, source, server)
        assert set(landed) == set(truth)
    written = b"".join(p.read_bytes() for p in Path(env.landing).rglob("*") if p.is_file())
    assert b"s3cret-client-value" not in written
    assert b"tok-" not in written


def test_the_docs_show_each_contracts_yaml():
    """docs/api-contracts.md holds, per contract, the endpoint YAML this suite onboards it with."""
    text = (REPO / "docs" / "api-contracts.md").read_text()
    shown = {
        name: yaml.safe_load(block)["endpoints"]["items"]
        for name, block in re.findall(r"## (\w+)\n\n[^\n]*\n\n```yaml\n(.*?)```", text, re.S)
    }
    assert shown == {name: yaml.safe_load(c.endpoint_yaml) for name, c in CONTRACTS.items()}
