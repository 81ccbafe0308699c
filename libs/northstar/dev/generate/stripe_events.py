"""Generate Stripe webhook events as JSON-lines landing files, with their ground truth.

The events follow what a webhook endpoint really receives for a card payment's life: a
`payment_intent.succeeded` and a `charge.succeeded` in the same second, sometimes `charge.updated`,
`charge.refunded` (now and then in the same second as the charge, so only the event id orders them) and a
dispute (`charge.dispute.created`, `charge.dispute.closed`), plus a few `balance.available` events whose
object has no id. Delivery is at-least-once and unordered: events are shuffled across files, some are
delivered twice byte for byte, some re-sent with a lower `pending_webhooks`, a few lines are truncated,
and a few payloads carry a full test card number in a free-text field (a description, metadata), one of
them in a truncated line. Everything is seeded: the same arguments write the same bytes.

Ground truth follows the pipeline's rules: one row per event id; the latest state of each object is the
event with the highest (`created`, event id).
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_CREATED = 1_795_000_000  # 2026-11-18, epoch seconds as Stripe sends them
# Stripe's public test card numbers (Luhn-valid, never real cards), as customers type them into notes
TEST_PANS = ["4242424242424242", "5555555555554444", "4000 0566 5566 5556", "3782-822463-10005"]
BRANDS = ["visa", "mastercard", "amex"]
API_VERSION = "2024-06-20"


@dataclass
class StripeTruth:
    """What a correct pipeline ends up with, and what the files contain."""

    events: dict[str, dict] = field(default_factory=dict)  # event id -> type, created, object_id
    objects: dict[str, dict] = field(default_factory=dict)  # object id -> latest event's id, type, status
    lines: int = 0  # lines written, bad ones included
    malformed: int = 0
    exact_copies: int = 0  # lines delivered again byte for byte
    resent: int = 0  # events delivered again with other bytes (pending_webhooks changed)
    objectless: int = 0  # distinct events whose object has no id (kept as events, no object state)
    equal_created: int = 0  # objects with two events in the same second (ordered by event id)
    pan_lines: int = 0  # lines carrying a card number (parsed or not)
    files: list[Path] = field(default_factory=list)


def _token(rng: random.Random, prefix: str, length: int = 24) -> str:
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


def _event(rng: random.Random, event_type: str, created: int, obj: dict) -> dict:
    return {
        "id": _token(rng, "evt_"),
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 2,
        "request": {"id": _token(rng, "req_", 14), "idempotency_key": None},
        "data": {"object": obj},
    }


def _card(rng: random.Random) -> dict[str, Any]:
    return {
        "brand": rng.choice(BRANDS),
        "last4": f"{rng.randint(0, 9999):04d}",
        "fingerprint": _token(rng, "", 16),
        "exp_month": rng.randint(1, 12),
        "exp_year": rng.randint(2027, 2031),
    }


def _free_text(rng: random.Random, number: int) -> tuple[str, dict[str, str], bool]:
    """The charge's description and metadata; and whether a customer typed a card number into one."""
    has_pan = rng.random() < 0.1
    description = f"Order NS-{number:06d}"
    metadata = {"order_id": f"NS-{number:06d}"}
    if has_pan:  # a customer typed the card number where free text goes
        pan = rng.choice(TEST_PANS)
        if rng.random() < 0.5:
            description = f"Order NS-{number:06d} - customer note: card {pan} exp 12/29"
        else:
            metadata["customer_note"] = f"pls charge {pan}"
    return description, metadata, has_pan


def _later_charge_events(rng: random.Random, charge: dict[str, Any], created: int) -> tuple[list[dict], int]:
    """Sometimes a `charge.updated`, sometimes a `charge.refunded`; and the time of the last event."""
    events = []
    at = created
    if rng.random() < 0.2:
        at += rng.randint(1, 3600)
        charge = {**charge, "metadata": {**charge["metadata"], "fulfilment": "shipped"}}
        event = _event(rng, "charge.updated", at, dict(charge))
        event["data"]["previous_attributes"] = {"metadata": {"fulfilment": None}}
        events.append(event)
    if rng.random() < 0.3:
        # now and then in the same second as the last event: only the event id orders them
        amount = charge["amount"]
        at += 0 if rng.random() < 0.25 else rng.randint(60, 3 * 24 * 3600)
        refunded = amount if rng.random() < 0.7 else rng.randint(100, amount)
        charge = {**charge, "amount_refunded": refunded, "refunded": refunded == amount}
        events.append(_event(rng, "charge.refunded", at, dict(charge)))
    return events, at


def _dispute_events(rng: random.Random, charge_id: str, amount: int, at: int) -> list[dict]:
    """Now and then a dispute an hour after the charge's last event, closed ten days later."""
    if rng.random() >= 0.12:
        return []
    dispute = {
        "id": _token(rng, "dp_"),
        "object": "dispute",
        "amount": amount,
        "charge": charge_id,
        "currency": "usd",
        "reason": rng.choice(["fraudulent", "product_not_received", "duplicate"]),
        "status": "needs_response",
        "created": at + 3600,
    }
    opened = _event(rng, "charge.dispute.created", at + 3600, dict(dispute))
    return [
        opened,
        _event(
            rng,
            "charge.dispute.closed",
            at + 10 * 24 * 3600,
            {**dispute, "status": rng.choice(["won", "lost"])},
        ),
    ]


def _payment_events(rng: random.Random, number: int) -> tuple[list[dict], bool]:
    """Every event of one payment, oldest first; and whether a card number was typed into it."""
    created = BASE_CREATED + rng.randint(0, 2 * 24 * 3600)
    amount = rng.randint(500, 50_000)
    charge_id, intent_id, method_id = _token(rng, "ch_"), _token(rng, "pi_"), _token(rng, "pm_")
    card = _card(rng)
    description, metadata, has_pan = _free_text(rng, number)
    charge: dict[str, Any] = {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_refunded": 0,
        "currency": "usd",
        "status": "succeeded",
        "paid": True,
        "refunded": False,
        "disputed": False,
        "payment_intent": intent_id,
        "payment_method": method_id,
        "payment_method_details": {"type": "card", "card": card},
        "description": description,
        "metadata": metadata,
        "created": created,
    }
    intent = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": amount,
        "currency": "usd",
        "status": "succeeded",
        "latest_charge": charge_id,
        "payment_method": method_id,
        "created": created,
    }
    events = [
        _event(rng, "payment_intent.succeeded", created, intent),
        _event(rng, "charge.succeeded", created, dict(charge)),
    ]
    later, at = _later_charge_events(rng, charge, created)
    return [*events, *later, *_dispute_events(rng, charge_id, amount, at)], has_pan


def _all_events(rng: random.Random, payments: int, truth: StripeTruth) -> tuple[list[dict], set[str]]:
    """Every payment's events and two objectless ones; and the ids of the charge events carrying a card number."""
    events: list[dict] = []
    pan_event_ids: set[str] = set()
    for number in range(payments):
        payment, has_pan = _payment_events(rng, number)
        events += payment
        if has_pan:
            pan_event_ids |= {
                e["id"] for e in payment if e["type"].startswith("charge.") and "dispute" not in e["type"]
            }
    for n in range(2):  # objects without an id: kept as events, quarantined by the objects table (null key)
        balance = {"object": "balance", "available": [{"amount": 1000 * (n + 1), "currency": "usd"}]}
        events.append(_event(rng, "balance.available", BASE_CREATED + 3600 * (n + 1), balance))
        truth.objectless += 1
    return events, pan_event_ids


def _record_truth(truth: StripeTruth, events: list[dict]) -> None:
    """One row per event id; per object, the event with the highest (created, event id)."""
    for event in events:
        obj = event["data"]["object"]
        truth.events[event["id"]] = {
            "type": event["type"],
            "created": event["created"],
            "object_id": obj.get("id"),
        }
        if obj.get("id") is None:
            continue
        latest = truth.objects.get(obj["id"])
        if latest is None or (event["created"], event["id"]) > (latest["created"], latest["event_id"]):
            truth.objects[obj["id"]] = {
                "event_id": event["id"],
                "created": event["created"],
                "type": event["type"],
                "object_type": obj["object"],
                "status": obj.get("status"),
                "amount_refunded": obj.get("amount_refunded"),
            }
    created_by_object: dict[str, list[int]] = {}
    for event in events:
        if event["data"]["object"].get("id"):
            created_by_object.setdefault(event["data"]["object"]["id"], []).append(event["created"])
    truth.equal_created = sum(1 for times in created_by_object.values() if len(set(times)) < len(times))


def _deliveries(
    rng: random.Random, events: list[dict], pan_event_ids: set[str], truth: StripeTruth
) -> list[tuple[str, bool]]:
    """At-least-once delivery, shuffled: (line, carries a card number) per delivery."""
    deliveries = [(json.dumps(e, separators=(",", ":")), e["id"] in pan_event_ids) for e in events]
    for line, has_pan in list(deliveries):
        roll = rng.random()
        if roll < 0.1:  # at-least-once: the same bytes again
            deliveries.append((line, has_pan))
            truth.exact_copies += 1
        elif roll < 0.14:  # re-sent after a failed delivery: fewer endpoints pending, other bytes
            resent = json.loads(line)
            resent["pending_webhooks"] = 1
            deliveries.append((json.dumps(resent, separators=(",", ":")), has_pan))
            truth.resent += 1
    rng.shuffle(deliveries)
    return deliveries


def _truncated(rng: random.Random, deliveries: list[tuple[str, bool]]) -> list[str]:
    """Truncated lines (a partial write): one of them cut just after a card number it carries."""
    bad = []
    for line, has_pan in deliveries:
        pan = next((p for p in TEST_PANS if p in line), None) if has_pan else None
        if pan:
            bad.append(line[: line.index(pan) + len(pan) + 1])
            break
    bad += [line[: len(line) // 2] for line, _ in rng.sample(deliveries, 2)]
    return bad


def generate_stripe_events(folder: Path, payments: int = 60, files: int = 4, seed: int = 5) -> StripeTruth:
    """Write `files` JSON-lines files of webhook events under `folder`; return the ground truth."""
    rng = random.Random(seed)
    truth = StripeTruth()
    events, pan_event_ids = _all_events(rng, payments, truth)
    _record_truth(truth, events)
    deliveries = _deliveries(rng, events, pan_event_ids, truth)
    bad = _truncated(rng, deliveries)
    lines = [line for line, _ in deliveries]
    for line in bad:
        lines.insert(rng.randrange(len(lines)), line)
    truth.malformed = len(bad)
    truth.lines = len(lines)
    truth.pan_lines = sum(1 for line in lines if any(p in line for p in TEST_PANS))

    folder.mkdir(parents=True, exist_ok=True)
    for number in range(files):
        path = folder / f"events-{number:04d}.jsonl"
        path.write_text("".join(line + "\n" for line in lines[number::files]))
        truth.files.append(path)
    return truth
