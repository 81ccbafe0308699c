"""Benchmark of the API landing path: records/s and MB/s of `run_extract` next to a plain-requests baseline.

Both sides fetch the same pages from the simulator (no faults, no rate limit) in the same process and run:
the baseline follows `next_cursor` with plain `requests` and writes each page as gzip JSON lines with no
state, manifest or checks; the extractor does everything a real run does (limiter, retries, partial-page
checks, atomic writes, manifest, state commit per page). The difference is the cost of those guarantees.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
import time
from pathlib import Path

import requests

from northstar.config import ConfigError, EnvConfig, SourceSpec, load_source
from northstar.config.api import RateLimitSpec
from northstar.dev.simulate.partner_api import PartnerApiSimulator
from northstar.extract.rest import run_extract
from northstar.extract.state import RunProgress, StateStore, TableState, state_key
from northstar.landing.writer import LocalStore, encode_records, page_key, write_manifest, write_page


def _baseline(url: str, token: str, out: Path, page_size: int, keep: list | None = None) -> tuple[int, int]:
    """Plain requests + gzip: (records, uncompressed bytes). `keep` collects the pages' records."""
    session, cursor, number, records, size = requests.Session(), None, 0, 0, 0
    out.mkdir(parents=True, exist_ok=True)
    while True:
        params = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
        body = session.get(
            f"{url}/v1/orders", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()
        number += 1
        data, _ = encode_records(body["data"])
        (out / f"page-{number:06d}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
        records, size = records + len(body["data"]), size + len(data)
        if keep is not None:
            keep.append(body["data"])
        cursor = body.get("next_cursor")
        if not body.get("has_more"):
            return records, size


def _write_plain(pages: list[list[dict]], out: Path) -> tuple[int, int]:
    out.mkdir(parents=True, exist_ok=True)
    records = size = 0
    for number, page in enumerate(pages, start=1):
        data, _ = encode_records(page)
        (out / f"page-{number:06d}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
        records, size = records + len(page), size + len(data)
    return records, size


def _write_landing(pages: list[list[dict]], out: Path) -> tuple[int, int]:
    store = LocalStore(str(out))
    states = StateStore(store, state_key("orders"))
    progress = RunProgress("bench", "full", None, None)
    state = TableState(in_progress=progress)
    records = size = 0
    for number, page in enumerate(pages, start=1):
        landed = write_page(store, page_key("orders", "bench", number), page)
        write_manifest(store, landed, {"page": number, "request": {"url": "bench"}})
        progress.page, progress.records = number, progress.records + len(page)
        states.commit(state)
        records, size = records + len(page), size + len(encode_records(page)[0])
    return records, size


Result = tuple[float, int, int]  # (seconds, records, bytes)


def _keep_best(best: dict[str, Result], name: str, result: Result) -> None:
    """Keep the fastest of the rounds for `name`."""
    if name not in best or result[0] < best[name][0]:
        best[name] = result


def _bench_source(partner_url: str, page_size: int) -> SourceSpec:
    """conf's marketplace source pointed at the simulator, with pages of `page_size` and no rate limit."""
    source = load_source("marketplace")
    if source.api is None:
        raise ConfigError("sources/marketplace.yaml: the extract benchmark needs its api: section")
    api = source.api.model_copy(
        update={
            "base_url": partner_url,
            "page_size": page_size,
            "rate_limit": RateLimitSpec(requests=1_000_000, per_seconds=1),
        }
    )
    return source.model_copy(update={"api": api})


def _timed_extract(source: SourceSpec, root: Path) -> Result:
    """run_extract of the orders into a fresh env under `root`: (seconds, records, uncompressed bytes landed)."""
    env = EnvConfig(
        name="bench",
        profile="local",
        landing=str(root / "landing"),
        lake=str(root / "lake"),
        quarantine=str(root / "q"),
    )
    started = time.perf_counter()
    report = run_extract(env, source, tables=["orders"], full_refresh=True)
    elapsed = time.perf_counter() - started
    landed = sum(len(gzip.decompress(p.read_bytes())) for p in (root / "landing").rglob("*.jsonl.gz"))
    return elapsed, report.tables[0].records, landed


def _fetch_rounds(
    sim: PartnerApiSimulator, token: str, source: SourceSpec, out: Path, page_size: int, rounds: int
) -> tuple[dict[str, Result], list[list[dict]]]:
    """Baseline and extractor, `rounds` times each: the best of each, and the pages the first baseline got."""
    best: dict[str, Result] = {}
    pages: list[list[dict]] = []
    for attempt in range(rounds):
        started = time.perf_counter()
        records, size = _baseline(
            sim.partner_url,
            token,
            out / f"baseline-{attempt}",
            page_size,
            keep=pages if attempt == 0 else None,
        )
        _keep_best(best, "baseline", (time.perf_counter() - started, records, size))
        _keep_best(best, "extract", _timed_extract(source, out / f"extract-{attempt}"))
    return best, pages


def _write_rounds(best: dict[str, Result], pages: list[list[dict]], out: Path, rounds: int) -> None:
    """The write side alone, on the same pages held in memory."""
    for attempt in range(rounds):
        for name, writer in (("write_plain", _write_plain), ("write_landing", _write_landing)):
            started = time.perf_counter()
            records, size = writer(pages, out / f"{name}-{attempt}")
            _keep_best(best, name, (time.perf_counter() - started, records, size))


def _extract_report(
    best: dict[str, Result], orders: int, generated: float, page_size: int, rounds: int
) -> str:
    lines = [
        f"bench-extract: {orders:,} orders (simulator built in {generated:.1f} s), pages of {page_size}, best of {rounds}",
        f"{'':<40}{'records':>9}{'seconds':>9}{'records/s':>11}{'MB/s':>8}",
    ]
    for name, label in (
        ("baseline", "fetch+write: plain requests + gzip"),
        ("extract", "fetch+write: northstar extract"),
        ("write_plain", "write only: gzip files (baseline)"),
        ("write_landing", "write only: pages + manifests + state"),
    ):
        elapsed, records, size = best[name]
        lines.append(
            f"{label:<40}{records:>9,}{elapsed:>9.2f}{records / elapsed:>11,.0f}{size / 1e6 / elapsed:>8.1f}"
        )
    ratio = best["extract"][0] / best["baseline"][0]
    write_ratio = best["write_landing"][0] / best["write_plain"][0]
    lines.append(
        f"end to end the extractor takes {ratio:.2f}x the baseline's time (the simulator's serving dominates "
        f"both); the write side alone {write_ratio:.2f}x (atomic write + fsync, manifest, state commit per page)"
    )
    ordered = {name: best[name] for name in ("baseline", "extract", "write_plain", "write_landing")}
    lines.append(
        json.dumps(
            {k: {"seconds": round(v[0], 3), "records": v[1], "bytes": v[2]} for k, v in ordered.items()}
        )
    )
    return "\n".join(lines)


def run_extract_bench(out: Path, *, orders: int = 3000, page_size: int = 100, rounds: int = 2) -> str:
    """Reset `out`, run both sides `rounds` times (best of each), return the report."""
    out = out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    token = secrets.token_hex(16)
    os.environ["NORTHSTAR_PARTNER_TOKEN"] = token
    generated = time.perf_counter()
    sim = PartnerApiSimulator(orders=orders, rate_limit=None, token=token).start()
    generated = time.perf_counter() - generated
    try:
        source = _bench_source(sim.partner_url, page_size)
        best, pages = _fetch_rounds(sim, token, source, out, page_size, rounds)
        _write_rounds(best, pages, out, rounds)
    finally:
        sim.stop()
    return _extract_report(best, orders, generated, page_size, rounds)
