"""Generate change events for a `customers` table as Debezium or AWS DMS files, with the table's final state.

Events are inserts, updates and deletes (some keys deleted and re-created), many sharing a commit
timestamp so only the log position / change sequence orders them. Files are written in shuffled order
with duplicated events, the way a replayed or retried feed arrives.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
TIERS = ["bronze", "silver", "gold", "platinum"]
BASE_TS_MS = 1_795_000_000_000  # 2026-11-18


@dataclass
class ChangeFeed:
    """The events in commit order and the source table's state after all of them."""

    events: list[dict] = field(default_factory=list)  # op (c/u/d), ts_ms, lsn, before, after
    final: dict[int, dict] = field(default_factory=dict)


def change_events(keys: int = 40, updates: int = 160, seed: int = 3) -> ChangeFeed:
    rng = random.Random(seed)
    feed, lsn, ts = ChangeFeed(), 1000, BASE_TS_MS
    table: dict[int, dict] = {}
    for step in range(keys + updates):
        lsn += rng.randint(1, 50)
        ts += 0 if rng.random() < 0.3 else rng.randint(1, 5000)  # 30% share the previous commit time
        key = step + 1 if step < keys else rng.randint(1, keys)
        before = table.get(key)
        if before is None:
            op, after = "c", {"id": key, "name": f"customer {key}", "tier": rng.choice(TIERS), "version": 1}
        elif rng.random() < 0.15:
            op, after = "d", None
        else:
            op, after = "u", {**before, "tier": rng.choice(TIERS), "version": before["version"] + 1}
        feed.events.append({"op": op, "ts_ms": ts, "lsn": lsn, "before": before, "after": after})
        if after is None:
            table.pop(key)
        else:
            table[key] = after
    feed.final = table
    return feed


def _shuffled_files(rng: random.Random, lines: list[T], files: int) -> list[list[T]]:
    copies = lines + [rng.choice(lines) for _ in range(len(lines) // 10)]  # ~10% delivered twice
    rng.shuffle(copies)
    return [copies[i::files] for i in range(files)]


def write_debezium(feed: ChangeFeed, folder: Path, files: int = 3, seed: int = 1) -> list[Path]:
    """JSON lines, one Debezium envelope per line, events spread over `files` in random order."""
    rng = random.Random(seed)
    lines = [
        json.dumps(
            {
                "before": e["before"],
                "after": e["after"],
                "op": e["op"],
                "ts_ms": e["ts_ms"],
                "source": {"connector": "postgresql", "db": "shop", "table": "customers", "lsn": e["lsn"]},
            }
        )
        for e in feed.events
    ]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, chunk in enumerate(_shuffled_files(rng, lines, files)):
        path = folder / f"customers-{number:03d}.jsonl"
        path.write_text("\n".join(chunk) + "\n")
        paths.append(path)
    return paths


def write_dms_csv(feed: ChangeFeed, folder: Path, files: int = 3, seed: int = 1) -> list[Path]:
    """DMS CDC CSV with a header: Op, commit_ts, change_seq and the row (deletes carry the key only), in files
    named by timestamp as the DMS S3 target names CDC files."""
    rng = random.Random(seed)
    header = ["Op", "commit_ts", "change_seq", "id", "name", "tier", "version"]
    rows: list[list[Any]] = []
    for e in feed.events:
        image = e["after"] or {"id": e["before"]["id"]}
        op = {"c": "I", "u": "U", "d": "D"}[e["op"]]
        ts = datetime.fromtimestamp(e["ts_ms"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows.append(
            [
                op,
                ts,
                e["lsn"],
                image["id"],
                image.get("name", ""),
                image.get("tier", ""),
                image.get("version", ""),
            ]
        )
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, chunk in enumerate(_shuffled_files(rng, rows, files)):
        path = folder / f"20261118-{120000 + number:06d}0000.csv"  # DMS names CDC files by timestamp
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(chunk)
        paths.append(path)
    return paths
