"""Local product-event producer: writes Firehose-style files (newline JSON under YYYY/MM/DD/HH/ prefixes).

Stands in for Kinesis Data Firehose delivering ShopPulse web, mobile and backend events to S3. Visitors
browse in sessions (page views, product views, add to cart, checkout, order placed, the odd error), and
the producer mixes in what a real feed carries: events delivered twice (at-least-once), events that arrive
late (their event time far behind the file they land in), malformed lines (truncated JSON) and events with
no event id. Everything is seeded: the same arguments give the same events.

`write_firehose_file` is the one place a file is written; `produce` writes at a chosen rate for the demo
and the benchmark.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

PLATFORMS = ("web", "ios", "android")
PAGES = ("/", "/search", "/category/shoes", "/category/bags", "/product/1", "/product/2", "/cart")
# The funnel, in order; a visit walks down it and stops at some step.
FUNNEL = ("page_view", "product_view", "add_to_cart", "checkout_started", "order_placed")


def firehose_key(prefix: str, delivered_at: datetime, sequence: int) -> str:
    """Firehose's default object key: <prefix>/YYYY/MM/DD/HH/<stream>-<n>-YYYY-MM-DD-HH-MM-SS-<uuid>."""
    at = delivered_at.astimezone(UTC)
    return (
        f"{prefix.strip('/')}/{at:%Y/%m/%d/%H}/shoppulse-events-1-{at:%Y-%m-%d-%H-%M-%S}-"
        f"{sequence:06d}-{uuid.UUID(int=random.Random(sequence).getrandbits(128)).hex[:12]}.json"
    )


def write_firehose_file(
    landing_root: Path | str, prefix: str, lines: list[str], delivered_at: datetime, sequence: int
) -> Path:
    """Write one delivery (newline-delimited JSON) atomically: a hidden temporary name, then a rename, so a
    stream never reads half a file."""
    path = Path(landing_root) / firehose_key(prefix, delivered_at, sequence)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{path.name}.tmp"
    partial.write_text("".join(line + "\n" for line in lines))
    partial.rename(path)
    return path


@dataclass
class EventBatch:
    """Lines of one delivery and what they contain (for tests and the demo's check)."""

    lines: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # every well-formed event, duplicates included
    duplicates: int = 0
    malformed: int = 0
    missing_id: int = 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def visit(rng: random.Random, user_id: str | None, device_id: str, start: datetime) -> list[dict]:
    """One visit: events a few seconds to a few minutes apart down the funnel; 1 in 20 events is an error."""
    steps = FUNNEL[: rng.choice((1, 2, 2, 3, 3, 4, 5))]
    platform = rng.choice(PLATFORMS)
    moment, events = start, []
    for step in steps:
        for _ in range(rng.randint(1, 3) if step in ("page_view", "product_view") else 1):
            kind = "error" if rng.random() < 0.05 else step
            events.append(
                {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "event_time": _iso(moment),
                    "event_type": kind,
                    "user_id": user_id,
                    "device_id": device_id,
                    "platform": platform,
                    "page": rng.choice(PAGES),
                    "order_id": f"ord_{rng.getrandbits(40):010x}" if kind == "order_placed" else None,
                    "error_code": rng.choice(("E500", "E502", "TIMEOUT")) if kind == "error" else None,
                }
            )
            moment += timedelta(seconds=rng.randint(2, 180))
    return events


def make_batch(
    rng: random.Random,
    count: int,
    around: datetime,
    *,
    duplicate_rate: float = 0.02,
    late_rate: float = 0.01,
    late_by: timedelta = timedelta(hours=2),
    malformed_rate: float = 0.005,
    users: int = 500,
) -> EventBatch:
    """About `count` event lines whose event times sit just before `around`, with the feed's defects."""
    batch = EventBatch()
    events: list[dict] = []
    while len(events) < count:
        user = rng.randrange(users)
        user_id = f"user-{user:05d}" if rng.random() < 0.7 else None  # anonymous visitors have only a device
        start = around - timedelta(seconds=rng.randint(0, 300))
        if rng.random() < late_rate:
            start -= late_by
        events += visit(rng, user_id, f"dev-{user:05d}", start)
    for generated in events[:count]:
        event = generated
        if rng.random() < 0.002:
            event = {**generated, "event_id": None}
            batch.missing_id += 1
        line = json.dumps(event, separators=(",", ":"))
        if rng.random() < malformed_rate:
            batch.lines.append(line[: len(line) // 2])  # truncated in transit
            batch.malformed += 1
            continue
        batch.lines.append(line)
        batch.events.append(event)
        if rng.random() < duplicate_rate:  # at-least-once: delivered again
            batch.lines.append(line)
            batch.events.append(event)
            batch.duplicates += 1
    return batch


def produce(
    landing_root: Path | str,
    prefix: str = "clickstream/events",
    *,
    events_per_second: float = 200.0,
    seconds: float = 10.0,
    file_every_seconds: float = 1.0,
    seed: int = 7,
    realtime: bool = True,
    start: datetime | None = None,
) -> Iterator[tuple[Path, EventBatch]]:
    """Write files at `events_per_second` for `seconds`, one file every `file_every_seconds`.

    realtime: event times are the wall clock and the producer sleeps to keep the rate (demo, latency
    benchmark); otherwise event times start at `start` and advance without sleeping (tests, throughput).
    """
    rng = random.Random(seed)
    files = max(1, round(seconds / file_every_seconds))
    per_file = max(1, round(events_per_second * file_every_seconds))
    clock = start or datetime.now(UTC)
    began = time.monotonic()
    for sequence in range(files):
        at = datetime.now(UTC) if realtime else clock + timedelta(seconds=sequence * file_every_seconds)
        batch = make_batch(rng, per_file, at)
        path = write_firehose_file(landing_root, prefix, batch.lines, at, sequence + seed * 1_000_000)
        yield path, batch
        if realtime:
            time.sleep(max(0.0, began + (sequence + 1) * file_every_seconds - time.monotonic()))
