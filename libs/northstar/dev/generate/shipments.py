"""Generate 3PL shipment-status CSV drops from two partners with different headers, with the ground truth.

Partner `acme` sends comma-separated files every few hours, with headers like `Shipment #`, `Status Code`,
`Status Time (UTC)`; partner `bolt` sends semicolon-separated files with camelCase headers in another
order, ISO timestamps with a `Z`, and an extra `remarks` column. Both describe the same thing: a
shipment's status changes (created, picked, packed, shipped, in_transit, out_for_delivery, delivered,
sometimes an exception and back in transit).

Each status change goes into the file of its time window (`hours_per_file`), a tenth of them into a
later window's file (late scans); some rows are repeated in a later file; one row has no shipment number (null key), one has a
non-numeric carton count (rescued, the row stays), one has a missing field (malformed). Within a
shipment, status times strictly increase, so the latest status is well defined. Everything is seeded.

`shipments_from_orders` writes the drops of the shop's own orders instead (the demo's one world): one
shipment per shipped or delivered order, its latest scan minutes before the order's latest status change.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

START = datetime(2026, 11, 18, 6, tzinfo=UTC)
FLOW = ["created", "picked", "packed", "shipped", "in_transit", "out_for_delivery", "delivered"]
CARRIERS = ["UPS", "FedEx", "DHL", "USPS"]
WAREHOUSES = ["RNO1", "ATL2", "DFW3"]


class PartnerFormat(TypedDict):
    """How one partner writes its files."""

    delimiter: str
    prefix: str
    time_format: str
    columns: dict[str, str]  # conformed column -> the partner's header


# Conformed column -> each partner's header for it (None: the partner does not send it)
PARTNERS: dict[str, PartnerFormat] = {
    "acme": {
        "delimiter": ",",
        "prefix": "AC-",
        "time_format": "%Y-%m-%d %H:%M:%S",
        "columns": {
            "shipment_id": "Shipment #",
            "order_id": "Order Ref",
            "status": "Status Code",
            "status_time": "Status Time (UTC)",
            "carrier": "Carrier",
            "tracking_number": "Tracking No",
            "warehouse": "Warehouse",
            "cartons": "Cartons",
            "weight_kg": "Weight (kg)",
        },
    },
    "bolt": {
        "delimiter": ";",
        "prefix": "BLT",
        "time_format": "%Y-%m-%dT%H:%M:%SZ",
        "columns": {
            "shipment_id": "shipmentId",
            "order_id": "orderNumber",
            "carrier": "carrierName",
            "tracking_number": "trackingNumber",
            "status": "state",
            "status_time": "stateChangedAt",
            "warehouse": "dc",
            "cartons": "pieces",
            "weight_kg": "weightKg",
            "notes": "remarks",
        },
    },
}


@dataclass
class ShipmentTruth:
    """Per partner: the latest status of every shipment, and what the files contain."""

    latest: dict[str, dict[str, tuple[str, datetime]]] = field(default_factory=dict)  # id -> (status, time)
    rows: dict[str, int] = field(default_factory=dict)  # data rows written (bad ones included)
    repeated: dict[str, int] = field(default_factory=dict)  # rows delivered again in a later file
    malformed: dict[str, int] = field(default_factory=dict)
    null_keys: dict[str, int] = field(default_factory=dict)
    rescued: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[Path]] = field(default_factory=dict)  # oldest hour first


def _status_changes(
    rng: random.Random, partner: str, number: int, order_ids: list[str] | None = None
) -> list[dict]:
    """One shipment's status changes, oldest first (strictly increasing times)."""
    spec = PARTNERS[partner]
    shipment = {
        "shipment_id": f"{spec['prefix']}{number:06d}",
        "order_id": rng.choice(order_ids) if order_ids else f"NS-{rng.randint(1, 99999):06d}",
        "carrier": rng.choice(CARRIERS),
        "tracking_number": f"1Z{rng.randint(10**9, 10**10 - 1)}",
        "warehouse": rng.choice(WAREHOUSES),
        "cartons": str(rng.randint(1, 6)),
        "weight_kg": f"{rng.uniform(0.2, 30):.2f}",
        "notes": "",
    }
    steps = FLOW[: rng.randint(2, len(FLOW))]
    if "in_transit" in steps and rng.random() < 0.15:
        cut = steps.index("in_transit") + 1
        steps = steps[:cut] + ["exception", "in_transit"] + steps[cut:]
    changes, at = [], START + timedelta(minutes=rng.randint(0, 240))
    for status in steps:
        at += timedelta(minutes=rng.randint(1, 90), seconds=rng.randint(0, 59))
        changes.append({**shipment, "status": status, "status_time": at})
    return changes


def _row(partner: str, change: dict) -> list[str]:
    spec = PARTNERS[partner]
    values = {**change, "status_time": change["status_time"].strftime(spec["time_format"])}
    return [values[column] for column in spec["columns"]]


def generate_shipments(
    folder: Path,
    shipments: int = 40,
    seed: int = 21,
    hours_per_file: int = 4,
    order_ids: list[str] | None = None,
) -> ShipmentTruth:
    """Write one CSV file per partner and time window under `folder/<partner>/`; return the ground truth.
    `order_ids`: the orders the shipments belong to (picked at random), else random ids."""
    rng = random.Random(seed)
    truth = ShipmentTruth()
    for partner in PARTNERS:
        changes = [c for n in range(shipments) for c in _status_changes(rng, partner, n, order_ids)]
        _write_partner(folder, partner, changes, rng, hours_per_file, truth)
    return truth


def _final_scan(rng: random.Random, order: Mapping) -> tuple[datetime, datetime]:
    """(the order's checkout, its shipment's latest scan): 1-30 minutes before the order's latest status
    change (`updated_at`: the shop records a scan after the 3PL reports it), never before that UTC day
    began nor before checkout, so orders_vs_fulfillment (both sides by the latest change's day) agrees."""
    created = datetime.fromisoformat(str(order["created_at"]).replace("Z", "+00:00")).astimezone(UTC)
    updated = datetime.fromisoformat(str(order["updated_at"]).replace("Z", "+00:00")).astimezone(UTC)
    day_start = datetime.combine(updated.date(), datetime.min.time(), UTC)
    return created, max(updated - timedelta(minutes=rng.randint(1, 30)), day_start, created)


def _order_shipment(rng: random.Random, partner: str, number: int, order: Mapping) -> list[dict]:
    """The status changes of a shipped or delivered order's one shipment: created an hour or so after
    checkout, then the flow up to `shipped` (a shipped order) or `delivered`, the last at `_final_scan`'s
    time and the others spread evenly before it (fewer when the order changed within seconds)."""
    changes = _status_changes(rng, partner, number, [str(order["order_id"])])
    shipment = {k: v for k, v in changes[0].items() if k not in ("status", "status_time")}
    steps = FLOW[: FLOW.index("delivered" if order["status"] == "delivered" else "shipped") + 1]
    created, last = _final_scan(rng, order)
    first = min(created + timedelta(minutes=rng.randint(30, 180)), last)
    span = int((last - first).total_seconds())
    steps = steps if span >= len(steps) else steps[-1:]
    gap = span // max(1, len(steps) - 1)
    times = [last - timedelta(seconds=gap * (len(steps) - 1 - i)) for i in range(len(steps))]
    return [
        {**shipment, "status": status, "status_time": at} for status, at in zip(steps, times, strict=True)
    ]


def shipments_from_orders(
    folder: Path, orders: Iterable[Mapping], seed: int = 21, hours_per_file: int = 4
) -> ShipmentTruth:
    """The 3PL drops of the shop's own orders (dicts with order_id, status, created_at, updated_at): one
    shipment per shipped or delivered order, alternately with acme and bolt, its latest scan on the day of
    the order's latest status change; the same late scans, repeats and bad rows as `generate_shipments`."""
    rng = random.Random(seed)
    truth = ShipmentTruth()
    shipped = sorted(
        (o for o in orders if str(o["status"]).lower() in ("shipped", "delivered")),
        key=lambda o: o["order_id"],
    )
    for index, partner in enumerate(PARTNERS):
        mine = shipped[index :: len(PARTNERS)]
        changes = [c for n, order in enumerate(mine) for c in _order_shipment(rng, partner, n, order)]
        if len(changes) >= 3:  # the bad rows copy three changes
            _write_partner(folder, partner, changes, rng, hours_per_file, truth)
    return truth


def _write_partner(
    folder: Path,
    partner: str,
    changes: list[dict],
    rng: random.Random,
    hours_per_file: int,
    truth: ShipmentTruth,
) -> None:
    """Write one partner's status changes as its files (late scans, repeats, three bad rows) into `truth`."""
    spec = PARTNERS[partner]
    truth.latest[partner] = {}
    for change in changes:
        truth.latest[partner][change["shipment_id"]] = (change["status"], change["status_time"])
    by_hour: dict[datetime, list[list[str]]] = {}
    repeated = 0
    for change in changes:
        at = change["status_time"]
        hour = at.replace(hour=at.hour - at.hour % hours_per_file, minute=0, second=0)
        if rng.random() < 0.1:  # a late scan: reported in a later window's file
            hour += timedelta(hours=hours_per_file * rng.randint(1, 2))
        by_hour.setdefault(hour, []).append(_row(partner, change))
        if rng.random() < 0.05:  # the partner repeats a row in a later file
            by_hour.setdefault(hour + timedelta(hours=hours_per_file), []).append(_row(partner, change))
            repeated += 1
    hours = sorted(by_hour)
    header = list(spec["columns"].values())
    # one row with no shipment number, one with cartons that is not a number, one with a field missing
    no_key = _row(partner, {**changes[0], "shipment_id": "", "status_time": changes[0]["status_time"]})
    bad_cartons = changes[1]
    bad_cartons_row = _row(partner, {**bad_cartons, "cartons": "3 boxes"})
    by_hour[hours[0]].append(no_key)
    by_hour[hours[0]].append(bad_cartons_row)
    by_hour[hours[-1]].append(_row(partner, changes[2])[:-2])
    truth.null_keys[partner], truth.rescued[partner], truth.malformed[partner] = 1, 1, 1
    truth.repeated[partner] = repeated + 1  # bad_cartons_row repeats changes[1]'s version (other bytes)
    truth.rows[partner] = sum(len(rows) for rows in by_hour.values())

    target = folder / partner
    target.mkdir(parents=True, exist_ok=True)
    truth.files[partner] = []
    for hour in hours:
        rows = by_hour[hour]
        rng.shuffle(rows)
        path = target / f"{partner}_shipments_{hour:%Y%m%d_%H%M}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, delimiter=spec["delimiter"])
            writer.writerow(header)
            writer.writerows(rows)
        truth.files[partner].append(path)
