"""Generate a realistic marketplace orders/refunds feed as JSON-lines landing files, with its ground truth.

The feed has what the partner really sends: nested 3-8 KB orders, several versions of each order
(status changes), duplicate deliveries, updates that arrive after newer ones, two versions with the same
`updated_at`, a schema change part-way (a new `fulfillment` object; `shipping_fee` turning from a number
into an object), truncated lines and records with a null key. Everything is seeded, so the same
arguments always write the same bytes.

The ground truth is the latest valid version of every key under the pipeline's own rule (highest
`updated_at`, then highest SHA-256 of the delivered line), so tests can compare silver against it.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2026, 11, 1, tzinfo=UTC)
STATUSES = ["placed", "paid", "shipped", "delivered"]
REFUND_STATUSES = ["requested", "approved", "refunded"]
CURRENCIES = ["USD", "USD", "USD", "EUR", "GBP"]
CHANNELS = ["web", "app", "marketplace_partner"]
WORDS = (
    "organic cotton slim fit breathable waterproof recycled premium lightweight ergonomic wireless compact "
    "stainless steel bamboo vintage handcrafted adjustable portable durable insulated travel outdoor kitchen "
    "garden office studio classic modern essential everyday signature limited edition"
).split()


@dataclass
class FeedTruth:
    """What a correct pipeline must end up with, and what the feed contains, for tests and the demo."""

    orders: dict[str, dict] = field(default_factory=dict)  # order_id -> latest valid version
    refunds: dict[str, dict] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # table -> lines written (records, incl. bad ones)
    malformed: dict[str, int] = field(default_factory=dict)
    null_keys: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)
    bytes_written: int = 0


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _money(rng: random.Random, low: float, high: float) -> float:
    return round(rng.uniform(low, high), 2)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _line_items(rng: random.Random, order_id: str) -> list[dict]:
    items = []
    for n in range(rng.randint(3, 7)):
        items.append(
            {
                "line_id": f"{order_id}-L{n + 1}",
                "sku": f"SKU-{rng.randint(10000, 99999)}",
                "title": _text(rng, 6).title(),
                "description": _text(rng, rng.randint(50, 90)),
                "quantity": rng.randint(1, 4),
                "unit_price": _money(rng, 3, 250),
                "discounts": [
                    {"code": f"PROMO{rng.randint(1, 40)}", "amount": _money(rng, 0.5, 10)}
                    for _ in range(rng.randint(0, 2))
                ],
                "attributes": {
                    "color": rng.choice(["red", "blue", "black", "green"]),
                    "size": rng.choice(["S", "M", "L", "XL"]),
                    "material": rng.choice(WORDS),
                },
            }
        )
    return items


def _order_versions(rng: random.Random, number: int, late_schema_from: datetime) -> list[dict]:
    """Every version the partner will send of one order (full snapshots, oldest first)."""
    order_id = f"MO-{number:07d}"
    created = START + timedelta(seconds=rng.randint(0, 3 * 24 * 3600))
    items = _line_items(rng, order_id)
    subtotal = round(sum(i["quantity"] * i["unit_price"] for i in items), 2)
    shipping = _money(rng, 0, 15)
    tax = round(subtotal * 0.08, 2)
    currency = rng.choice(CURRENCIES)
    customer = {
        "customer_id": f"C-{rng.randint(1, 50000):06d}",
        "name": f"{rng.choice(['Ana', 'Ben', 'Chen', 'Dara', 'Eli', 'Fatima'])} {rng.choice(['Ng', 'Silva', 'Okafor', 'Berg'])}",
        "email": f"user{number}@example.com",
        "phone": f"+1-555-{rng.randint(1000000, 9999999)}",
        "shipping_address": {
            "line1": f"{rng.randint(1, 999)} {_text(rng, 2).title()} St",
            "city": rng.choice(["Austin", "Leeds", "Lyon", "Toronto"]),
            "postal_code": f"{rng.randint(10000, 99999)}",
            "country": rng.choice(["US", "GB", "FR", "CA"]),
        },
    }
    steps = rng.randint(1, 4)
    cancelled = rng.random() < 0.1
    versions, updated = [], created
    for step in range(steps):
        status = "cancelled" if cancelled and step == steps - 1 and step > 0 else STATUSES[step]
        if step > 0:
            # a few versions share updated_at with the previous one: the record hash breaks the tie
            updated = updated if rng.random() < 0.03 else updated + timedelta(minutes=rng.randint(5, 36 * 60))
        record = {
            "order_id": order_id,
            "marketplace": "partner-x",
            "status": status,
            "created_at": _iso(created),
            "updated_at": _iso(updated),
            "currency": currency,
            "item_count": len(items),
            "totals": {"subtotal": subtotal, "tax": tax, "total": round(subtotal + tax + shipping, 2)},
            "shipping_fee": shipping,
            "customer": customer,
            "line_items": items,
            "channel": rng.choice(CHANNELS),
            "notes": _text(rng, rng.randint(5, 40)),
            "api_version": 1,
            "sequence": step + 1,
        }
        if updated >= late_schema_from:
            # the partner's v2 API: shipping_fee becomes an object, and a fulfillment object appears
            record["api_version"] = 2
            record["shipping_fee"] = {"amount": shipping, "currency": currency}
            record["fulfillment"] = {
                "channel": rng.choice(["FBM", "FBA"]),
                "warehouse_id": f"WH-{rng.randint(1, 9)}",
            }
        versions.append(record)
    return versions


def _refund_versions(rng: random.Random, order: dict, number: int) -> list[dict]:
    created = datetime.fromisoformat(order["updated_at"].replace("Z", "+00:00")) + timedelta(
        hours=rng.randint(1, 30)
    )
    refund = {
        "refund_id": f"RF-{number:07d}",
        "order_id": order["order_id"],
        "amount": round(order["totals"]["total"] * rng.choice([0.25, 0.5, 1.0]), 2),
        "currency": order["currency"],
        "reason": rng.choice(["damaged", "late", "wrong_item", "changed_mind"]),
        "notes": _text(rng, rng.randint(20, 60)),
        "created_at": _iso(created),
    }
    versions, updated = [], created
    for step in range(rng.randint(1, 3)):
        updated = updated + timedelta(hours=rng.randint(1, 20)) if step else updated
        versions.append({**refund, "status": REFUND_STATUSES[step], "updated_at": _iso(updated)})
    return versions


def _line_hash(line: str) -> str:
    return hashlib.sha256(line.encode()).hexdigest()


def _latest(current: tuple | None, candidate: tuple) -> tuple:
    return candidate if current is None or candidate[:2] > current[:2] else current


def _deliver(
    rng: random.Random,
    versions_by_key: list[list[dict]],
    files: int,
    table: str,
    key: str,
    truth: FeedTruth,
    faults: bool,
) -> list[list[str]]:
    """Spread versions over files (later versions usually in later files, some swapped), add faults."""
    buckets: list[list[str]] = [[] for _ in range(files)]
    latest: dict[str, tuple] = {}
    duplicates = malformed = null_keys = 0
    for index, versions in enumerate(versions_by_key):
        sure = faults and index == 0  # the first key always gets each fault, so small feeds have them all
        base = rng.randint(0, max(0, files - len(versions)))
        slots = [min(files - 1, base + i + rng.randint(0, 1)) for i in range(len(versions))]
        if faults and len(slots) > 1 and rng.random() < 0.2:
            i = rng.randrange(len(slots) - 1)
            slots[i], slots[i + 1] = slots[i + 1], slots[i]  # the older version arrives after the newer one
        for version, slot in zip(versions, slots, strict=True):
            line = json.dumps(version, separators=(",", ":"))
            buckets[slot].append(line)
            latest[version[key]] = _latest(
                latest.get(version[key]), (version["updated_at"], _line_hash(line), version)
            )
            if sure or (faults and rng.random() < 0.05):
                buckets[rng.randrange(files)].append(line)  # the partner re-sends it, maybe in another file
                duplicates += 1
            if sure or (faults and rng.random() < 0.004):
                buckets[rng.randrange(files)].append(line[: len(line) // 2])  # a truncated line
                malformed += 1
            if sure or (faults and rng.random() < 0.004):
                buckets[rng.randrange(files)].append(
                    json.dumps({**version, key: None}, separators=(",", ":"))
                )
                null_keys += 1
    truth.duplicates[table], truth.malformed[table], truth.null_keys[table] = duplicates, malformed, null_keys
    getattr(truth, table).update({k: v[2] for k, v in latest.items()})
    for bucket in buckets:
        rng.shuffle(bucket)
    return buckets


def generate_feed(
    landing_root: Path | str,
    *,
    orders: int = 2000,
    files: int = 6,
    seed: int = 7,
    faults: bool = True,
    refund_rate: float = 0.15,
    source: str = "marketplace",
) -> FeedTruth:
    """Write `<landing_root>/<source>/{orders,refunds}/part-NNNN.jsonl` and return the ground truth."""
    rng = random.Random(seed)
    schema_change_at = START + timedelta(days=2)
    truth = FeedTruth()
    order_versions = [_order_versions(rng, n, schema_change_at) for n in range(1, orders + 1)]
    refund_versions = [
        _refund_versions(rng, versions[-1], n)
        for n, versions in enumerate(order_versions, start=1)
        if rng.random() < refund_rate
    ]
    for table, key, versions in (
        ("orders", "order_id", order_versions),
        ("refunds", "refund_id", refund_versions),
    ):
        buckets = _deliver(rng, versions, files, table, key, truth, faults)
        folder = Path(landing_root) / source / table
        folder.mkdir(parents=True, exist_ok=True)
        truth.files[table] = []
        truth.lines[table] = 0
        for number, bucket in enumerate(buckets):
            path = folder / f"part-{number:04d}.jsonl"
            text = "\n".join(bucket) + "\n"
            path.write_text(text)
            truth.files[table].append(path)
            truth.lines[table] += len(bucket)
            truth.bytes_written += len(text)
    return truth
