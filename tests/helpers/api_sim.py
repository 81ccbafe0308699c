"""Helpers for tests against the partner API simulator: the marketplace source pointed at it, landed pages."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from northstar.config import EnvConfig, SourceSpec
from northstar.config.api import RateLimitSpec, RetrySpec
from northstar.lake import tables

TOKEN = "sim-token-not-a-secret"
RATE = (20, 60.0)  # 20 requests per simulated minute: small enough that every run hits the limit
KEYS = {"orders": "order_id", "refunds": "refund_id"}


def pointed_at(source: SourceSpec, url: str, pagination: str | None = None, **api_updates) -> SourceSpec:
    """The source with its api: section aimed at the simulator, small pages and a fast rate limit."""
    api = source.api
    endpoints = {
        name: endpoint.model_copy(update={"pagination": pagination}) if pagination else endpoint
        for name, endpoint in api.endpoints.items()
    }
    updates = {
        "base_url": url,
        "page_size": 10,
        "timeout_seconds": 0.5,
        "rate_limit": RateLimitSpec(requests=RATE[0], per_seconds=RATE[1], max_wait_seconds=10_000),
        "retries": RetrySpec(attempts=6, initial_seconds=0.5, max_seconds=8),
        "endpoints": endpoints,
        **api_updates,
    }
    return source.model_copy(update={"api": api.model_copy(update=updates)})


def landed_pages(env: EnvConfig, source: SourceSpec, table: str) -> dict[str, bytes]:
    """Every landed page of a table: path relative to the landing root -> its uncompressed text."""
    root = Path(env.landing)
    folder = Path(tables.landing_folder(env, source.tables[table]))
    return {
        str(p.relative_to(root)): gzip.decompress(p.read_bytes()) for p in sorted(folder.rglob("*.jsonl.gz"))
    }


def landed_records(env: EnvConfig, source: SourceSpec, table: str) -> list[dict]:
    return [
        json.loads(line)
        for text in landed_pages(env, source, table).values()
        for line in text.decode().splitlines()
    ]


def latest_landed(env: EnvConfig, source: SourceSpec, table: str) -> dict[str, dict]:
    """The newest landed version of each key (what silver will hold)."""
    latest: dict[str, dict] = {}
    for record in landed_records(env, source, table):
        if not isinstance(record, dict) or record.get(KEYS[table]) is None:
            continue  # broken records (a simulator fault): bronze / silver quarantine them
        key = record[KEYS[table]]
        if key not in latest or record["updated_at"] > latest[key]["updated_at"]:
            latest[key] = record
    return latest
