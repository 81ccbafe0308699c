"""A fault-injecting simulator of the marketplace partner's REST API and Stripe's list API, on 127.0.0.1.

Routes: `/partner/v1/orders`, `/partner/v1/refunds` (filters `updated_since` / `updated_until`; pagination by
`cursor` + `limit`, `page` + `per_page`, `offset` + `limit`, and a `Link: <...>; rel="next"` header on every
page that has a next one) and `/stripe/v1/{charges,payment_intents,refunds,disputes}` (`created[gte]`,
`created[lt]`, `limit`, `starting_after`, newest first, `has_more`).

Records reuse the shapes of `northstar.generate.marketplace` (orders with several versions each, refunds).
Each version becomes visible at its own time on the simulator's data clock (`set_time` / `advance`), the
API serving the latest visible version of each record, so running extracts at successive times gives
incremental deliveries; `late_updates` makes some versions visible hours after their `updated_at`.

Faults are seeded per request (the same request gets the same fault whatever the thread interleaving)
and hit a request's first attempts only, so a client that retries gets through: 5xx bursts, timeouts,
dropped connections, partial pages (fewer records than `count`, a truncated body, a missing next
cursor), records repeated across pages and schema drift (a new field, a changed type, a renamed one).
The rate limit answers 429 with Retry-After and counts every request over the limit (`stats.over_limit`).
Time for the rate limit comes from a `Clock` (a `FakeClock` shared with the client makes tests fast).

Stripe's objects are either payments of their own (`payments=N`: random amounts, for tests of the Stripe
extract alone) or, with `stripe_from_orders=True`, the payments of the partner's orders: one world whose
orders, charges and refunds agree (`_stripe_from_orders`), as the demo and the reconciliation need.

`ground_truth(table)` is the latest visible version of every record: what silver must hold;
`final_records(table)` the last version of every record, visible yet or not.

Run it by hand: `python -m northstar.simulate.partner_api --port 8765 --orders 500 --faults`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from northstar.dev.generate.marketplace import START, _iso, _order_versions, _refund_versions
from northstar.extract.ratelimit import Clock
from northstar.models.common import STRIPE_THREE_DECIMAL, STRIPE_ZERO_DECIMAL

PARTNER_TABLES = {"orders": "order_id", "refunds": "refund_id"}
STRIPE_TABLES = ("charges", "payment_intents", "refunds", "disputes")
DRIFT_AT = START + timedelta(days=2)  # from here on the partner's v2 API answers


@dataclass
class Faults:
    """What can go wrong, as shares of distinct requests (or versions, for late updates); seeded."""

    seed: int = 1
    server_errors: float = 0.0  # requests that first fail with a burst of 500/502/503
    burst: int = 2  # failed attempts in a burst (keep it below the client's retry attempts)
    partial_pages: float = 0.0
    repeats: float = 0.0  # pages that start with the previous page's last record again
    timeouts: float = 0.0  # first attempt answered only after `timeout_seconds` (real time)
    timeout_seconds: float = 1.5
    disconnects: float = 0.0  # first attempt: the connection closes with no answer
    late_updates: float = 0.0  # later versions visible up to `late_hours` after their updated_at
    late_hours: float = 20.0
    schema_drift: bool = False  # from DRIFT_AT: `fulfillment` appears, `shipping_fee` becomes an object,
    #                            `channel` is renamed `sales_channel`
    bad_records: float = 0.0  # partner pages that also carry a broken record: one that is not a JSON object,
    #                          or a copy of a record with its key null (extra: the ground truth is unchanged)

    @classmethod
    def everything(cls, seed: int = 1, timeouts: float = 0.02) -> Faults:
        return cls(
            seed=seed,
            server_errors=0.15,
            partial_pages=0.15,
            repeats=0.2,
            timeouts=timeouts,
            disconnects=0.05,
            late_updates=0.15,
            schema_drift=True,
            bad_records=0.1,
        )


@dataclass
class Stats:
    requests: int = 0
    over_limit: int = 0
    by_status: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)


Cursor = TypeVar("Cursor", str, int)  # updated_at (partner) or created (Stripe)


@dataclass
class _Version(Generic[Cursor]):
    key: str
    cursor: Cursor  # updated_at (partner) or created (Stripe)
    visible_at: float  # epoch seconds on the data clock
    record: dict


def record_line(record: dict) -> str:
    """A record as the landing writer writes it (and bronze hashes it)."""
    return json.dumps(record, separators=(",", ":"))


def record_hash(record: dict) -> str:
    return hashlib.sha256(record_line(record).encode()).hexdigest()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _partner_versions(orders: int, seed: int, faults: Faults) -> dict[str, list[_Version[str]]]:
    rng = random.Random(seed)
    late = random.Random(f"{faults.seed}-late")
    drift_at = DRIFT_AT if faults.schema_drift else datetime(2100, 1, 1, tzinfo=UTC)
    by_order = []
    for number in range(1, orders + 1):
        versions = _order_versions(rng, number, drift_at)
        previous = None
        for version in versions:  # one version per updated_at, so "latest" is never a tie
            if previous and version["updated_at"] <= previous:
                version["updated_at"] = _iso(
                    datetime.fromisoformat(previous.replace("Z", "+00:00")) + timedelta(seconds=1)
                )
            previous = version["updated_at"]
            if version.get("api_version") == 2 and "channel" in version:
                version["sales_channel"] = version.pop("channel")  # the v2 API renamed it
        by_order.append(versions)
    refunds = [
        _refund_versions(rng, versions[-1], n)
        for n, versions in enumerate(by_order, start=1)
        if rng.random() < 0.15
    ]
    tables: dict[str, list[_Version[str]]] = {}
    for table, key, groups in (("orders", "order_id", by_order), ("refunds", "refund_id", refunds)):
        tables[table] = []
        for versions in groups:
            for index, version in enumerate(versions):
                visible = _epoch(version["updated_at"])
                if index and late.random() < faults.late_updates:
                    visible += late.uniform(1, faults.late_hours) * 3600
                tables[table].append(_Version(version[key], version["updated_at"], visible, version))
    return tables


_StripeVersions = dict[str, list[_Version[int]]]


def _add(out: _StripeVersions, table: str, obj: dict, at: float) -> None:
    """A version of a Stripe object (a deep copy), visible from `at`."""
    out[table].append(_Version(obj["id"], obj["created"], at, json.loads(json.dumps(obj))))


def minor_units(amount: object, currency: str) -> int:
    """A major-unit amount (19.99) as Stripe's integer in the currency's smallest unit: the exponent of
    models/common.py (JPY and the other zero-decimal currencies: 0 decimals, BHD/KWD/...: 3, else 2). Exact:
    an amount with more decimals than its currency has is an error, never rounded."""
    code = currency.upper()
    exponent = 0 if code in STRIPE_ZERO_DECIMAL else 3 if code in STRIPE_THREE_DECIMAL else 2
    scaled = Decimal(str(amount)).scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {code} has more than {exponent} decimals")
    return int(scaled)


def _charge(rng: random.Random, n: int, pi: dict, note: str, status: str) -> dict:
    """Payment `n`'s charge, 30 s after its payment intent."""
    order_id = pi["metadata"]["order_id"]
    return {
        "id": f"ch_{n:010d}",
        "object": "charge",
        "amount": pi["amount"],
        "amount_refunded": 0,
        "currency": pi["currency"],
        "created": pi["created"] + 30,
        "status": status,
        "paid": status == "succeeded",
        "refunded": False,
        "payment_intent": pi["id"],
        "description": note,
        "billing_details": {"name": f"Customer {n}", "email": f"user{n}@example.com"},
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": rng.choice(["visa", "mastercard", "amex"]),
                "last4": f"{rng.randint(0, 9999):04d}",
                "exp_month": rng.randint(1, 12),
                "exp_year": rng.randint(2027, 2031),
                "fingerprint": hashlib.sha1(f"card{n}".encode()).hexdigest()[:16],
            },
        },
        "metadata": {"order_id": order_id},
    }


def _add_payment(
    rng: random.Random,
    out: _StripeVersions,
    n: int,
    order_id: str,
    money: tuple[int, str],
    created: int,
    status: str = "succeeded",
) -> dict:
    """Payment `n` of an order: a payment intent at `created`, its charge (`status`) 30 s later and the
    intent's final version 60 s later; `money` is (minor units, lower-case currency). Returns the charge."""
    pi = {
        "id": f"pi_{n:010d}",
        "object": "payment_intent",
        "amount": money[0],
        "currency": money[1],
        "created": created,
        "status": "requires_payment_method",
        "metadata": {"order_id": order_id},
    }
    _add(out, "payment_intents", pi, created)
    final = "succeeded" if status == "succeeded" else "requires_payment_method"  # a declined card: retry
    pi = {**pi, "status": final, "latest_charge": f"ch_{n:010d}"}
    _add(out, "payment_intents", pi, created + 60)
    note = "customer note: card 4242 4242 4242 4242 please" if rng.random() < 0.05 else "web checkout"
    charge = _charge(rng, n, pi, note, status)
    _add(out, "charges", charge, created + 30)
    return charge


def _add_refund(rng: random.Random, out: _StripeVersions, n: int, charge: dict, at: int, amount: int) -> None:
    """A refund of `amount` (pending at `at`, succeeded 10 min later) of `charge`, and the charge's refunded
    version."""
    refund = {
        "id": f"re_{n:010d}",
        "object": "refund",
        "amount": amount,
        "charge": charge["id"],
        "currency": charge["currency"],
        "created": at,
        "reason": rng.choice(["requested_by_customer", "duplicate", "fraudulent"]),
        "status": "pending",
    }
    _add(out, "refunds", refund, at)
    _add(out, "refunds", {**refund, "status": "succeeded"}, at + 600)
    refunded = {
        **charge,
        "amount_refunded": refund["amount"],
        "refunded": refund["amount"] == charge["amount"],
    }
    _add(out, "charges", refunded, at + 600)


def _add_dispute(rng: random.Random, out: _StripeVersions, n: int, charge: dict, created: int) -> None:
    """A dispute of `charge` (needs_response, then won or lost five hours later)."""
    at = created + rng.randint(24 * 3600, 72 * 3600)
    dispute = {
        "id": f"dp_{n:010d}",
        "object": "dispute",
        "amount": charge["amount"],
        "charge": charge["id"],
        "currency": charge["currency"],
        "created": at,
        "reason": rng.choice(["fraudulent", "product_not_received"]),
        "status": "needs_response",
    }
    _add(out, "disputes", dispute, at)
    _add(out, "disputes", {**dispute, "status": rng.choice(["won", "lost"])}, at + 5 * 3600)


def _stripe_versions(payments: int, seed: int) -> _StripeVersions:
    """Payments of their own (random amounts, currencies and times, metadata.order_id MO-<n> whatever the
    partner's orders are): payment intents, charges, refunds and disputes; each status change is a new version."""
    rng = random.Random(seed + 1000)
    out: _StripeVersions = {t: [] for t in STRIPE_TABLES}
    for n in range(1, payments + 1):
        created = int(START.timestamp()) + rng.randint(0, 3 * 24 * 3600)
        money = rng.randint(500, 50_000), rng.choice(["usd", "usd", "eur", "gbp"])
        charge = _add_payment(rng, out, n, f"MO-{n:07d}", money, created)
        if rng.random() < 0.2:
            at = created + rng.randint(3600, 48 * 3600)
            _add_refund(rng, out, n, charge, at, charge["amount"] // rng.choice([1, 2]))
        if rng.random() < 0.06:
            _add_dispute(rng, out, n, charge, created)
    return out


def _final(versions: list[_Version[str]]) -> dict[str, dict]:
    """The last version of every record (highest updated_at), visible or not yet: the world's end state."""
    latest: dict[str, _Version[str]] = {}
    for version in versions:
        if version.key not in latest or version.cursor > latest[version.key].cursor:
            latest[version.key] = version
    return {key: version.record for key, version in latest.items()}


def _charge_time(rng: random.Random, order: dict) -> int:
    """When an order's card is charged (the charge's `created`): 35-120 s after checkout (`created_at`), but
    never past that UTC day's last second, so the charge's day is the order's day (orders_vs_payments compares
    them by day; the payment intent is 30 s before the charge)."""
    created = datetime.fromisoformat(order["created_at"].replace("Z", "+00:00"))
    day_end = datetime.combine(created.date(), datetime.max.time(), UTC).replace(microsecond=0)
    return int(min(created + timedelta(seconds=rng.randint(35, 120)), day_end).timestamp())


def _stripe_from_orders(partner: dict[str, list[_Version[str]]], seed: int) -> _StripeVersions:
    """The Stripe side of the partner's orders, one world: each order that ends paid, shipped or delivered
    gets one succeeded charge of its total (minor units, its currency lower-cased, metadata.order_id) seconds
    after checkout; a cancelled order gets a failed (declined) charge; an order still placed has no charge
    yet. A partner refund that ends `refunded` of a charged order is mirrored as a Stripe refund at the
    partner's refund time, and a few charges are disputed. Charges are gross: refunds do not change them."""
    rng = random.Random(seed + 2000)
    out: _StripeVersions = {t: [] for t in STRIPE_TABLES}
    refunds = {r["order_id"]: r for r in _final(partner["refunds"]).values() if r["status"] == "refunded"}
    orders = sorted(_final(partner["orders"]).values(), key=lambda o: o["order_id"])
    charged = [o for o in orders if o["status"] != "placed"]
    for n, order in enumerate(charged, start=1):
        money = minor_units(order["totals"]["total"], order["currency"]), order["currency"].lower()
        created = _charge_time(rng, order)
        status = "failed" if order["status"] == "cancelled" else "succeeded"
        charge = _add_payment(rng, out, n, order["order_id"], money, created - 30, status)
        refund = refunds.get(order["order_id"])
        if status == "succeeded" and refund is not None:
            at = int(_epoch(refund["updated_at"]))
            _add_refund(rng, out, n, charge, at, minor_units(refund["amount"], refund["currency"]))
        if status == "succeeded" and rng.random() < 0.03:
            _add_dispute(rng, out, n, charge, created)
    return out


# a page: (200, the page, headers), or (a 4xx status, the error message, {})
_Answer = tuple[int, dict | str, dict]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # quiet: tests and the demo print their own output
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        try:
            self.server.sim._handle(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sim: PartnerApiSimulator


class PartnerApiSimulator:
    """The simulator: `start()` it, point the extractor at `partner_url` / `stripe_url`, `stop()` it."""

    def __init__(
        self,
        *,
        orders: int = 200,
        payments: int = 0,
        stripe_from_orders: bool = False,
        seed: int = 7,
        faults: Faults | None = None,
        rate_limit: tuple[int, float] | None = (1200, 3600.0),
        clock: Clock | None = None,
        token: str | None = None,
        now: datetime | None = None,
        port: int = 0,
        max_page_size: int = 500,
    ) -> None:
        self.faults = faults or Faults()
        self.clock = clock or Clock()
        self.rate_limit = rate_limit
        self.token = token
        self.port = port
        self.max_page_size = max_page_size
        self.stats = Stats()
        self._lock = threading.Lock()
        self._arrivals: deque[float] = deque()
        self._seen: Counter = Counter()
        self.partner: dict[str, list[_Version[str]]] = (
            _partner_versions(orders, seed, self.faults) if orders else {t: [] for t in PARTNER_TABLES}
        )
        if stripe_from_orders and payments:
            raise ValueError("pass payments (payments of their own) or stripe_from_orders, not both")
        self.stripe: _StripeVersions = (
            _stripe_from_orders(self.partner, seed)
            if stripe_from_orders
            else _stripe_versions(payments, seed)
            if payments
            else {t: [] for t in STRIPE_TABLES}
        )
        self._now = (now or datetime(2100, 1, 1, tzinfo=UTC)).timestamp()
        self._server: _Server | None = None
        self._cache: dict[tuple[str, str], tuple[float, list[Any]]] = {}

    # -- data clock -------------------------------------------------------------------------------
    def set_time(self, when: datetime) -> None:
        """Move the data clock: versions become visible when their time has come."""
        with self._lock:
            self._now = when.timestamp()

    def advance(self, hours: float) -> None:
        with self._lock:
            self._now += hours * 3600

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    def _current(self, versions: list[_Version[Cursor]]) -> dict[str, _Version[Cursor]]:
        latest: dict[str, _Version[Cursor]] = {}
        for version in versions:
            if version.visible_at <= self._now:
                held = latest.get(version.key)  # newest cursor value; equal ones (Stripe): newest change
                if held is None or (version.cursor, version.visible_at) > (held.cursor, held.visible_at):
                    latest[version.key] = version
        return latest

    def _sorted(self, api: str, table: str, versions: list[_Version[Cursor]]) -> list[_Version[Cursor]]:
        """The table's current records in API order (partner: oldest cursor first; Stripe: newest first)."""
        with self._lock:
            cached = self._cache.get((api, table))
            if cached is None or cached[0] != self._now:
                rows = sorted(
                    self._current(versions).values(), key=lambda v: (v.cursor, v.key), reverse=api == "stripe"
                )
                cached = self._cache[(api, table)] = (self._now, rows)
            return cached[1]

    def final_records(self, table: str) -> dict[str, dict]:
        """The last version of every record of a partner table, visible yet or not: the world's end state."""
        return _final(self.partner[table])

    def ground_truth(self, table: str, api: str = "partner") -> dict[str, dict]:
        """The latest visible version of every record of a table: what silver must equal."""
        with self._lock:
            if api == "partner":
                return {k: v.record for k, v in self._current(self.partner[table]).items()}
            return {k: v.record for k, v in self._current(self.stripe[table]).items()}

    # -- server -----------------------------------------------------------------------------------
    def start(self) -> PartnerApiSimulator:
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.sim = self
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="partner-api-sim", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> PartnerApiSimulator:
        return self if self._server else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def partner_url(self) -> str:
        return f"{self.base_url}/partner"

    @property
    def stripe_url(self) -> str:
        return f"{self.base_url}/stripe"

    # -- request handling -------------------------------------------------------------------------
    def _send(self, handler: _Handler, status: int, body: bytes, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
        with self._lock:
            self.stats.by_status[status] += 1

    def _error(self, handler: _Handler, status: int, message: str, headers: dict | None = None) -> None:
        self._send(handler, status, json.dumps({"error": {"message": message}}).encode(), headers)

    def _admit(self) -> tuple[bool, dict]:
        """Rate limit: (admitted, headers). Rejected requests are counted as over the limit."""
        if self.rate_limit is None:
            return True, {}
        limit, window = self.rate_limit
        with self._lock:
            self.stats.requests += 1
            now = self.clock.now()
            while self._arrivals and self._arrivals[0] <= now - window:
                self._arrivals.popleft()
            reset = (self._arrivals[0] + window - now) if self._arrivals else window
            if len(self._arrivals) >= limit:
                self.stats.over_limit += 1
                return False, {
                    "Retry-After": str(max(1, math.ceil(reset))),
                    "X-RateLimit-Limit": str(limit),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": f"{reset:.3f}",
                }
            self._arrivals.append(now)
            remaining = limit - len(self._arrivals)
            reset = self._arrivals[0] + window - now
            return True, {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": f"{reset:.3f}",
            }

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        query = dict(parse_qsl(split.query))
        if self.token is not None and handler.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(handler, 401, "missing or invalid bearer token")
        admitted, limit_headers = self._admit()
        if not admitted:
            return self._error(handler, 429, "rate limit exceeded", limit_headers)
        if self.rate_limit is None:
            with self._lock:
                self.stats.requests += 1
        canonical = split.path + "?" + urlencode(sorted(query.items()))
        with self._lock:
            attempt = self._seen[canonical]
            self._seen[canonical] += 1
        dice = random.Random(f"{self.faults.seed}|{canonical}")
        rolls = [dice.random() for _ in range(6)]
        f = self.faults
        if self._connection_fault(handler, rolls, attempt):
            return None
        parts = split.path.strip("/").split("/")
        routed = self._route(handler, parts, split.path, query)
        if routed is None:
            return self._error(handler, 404, f"no such resource {split.path}")
        status, body, headers = routed
        if isinstance(body, str):  # not 200: the message
            return self._error(handler, status, body)
        partial = rolls[3] < f.partial_pages and attempt == 0
        repeat = rolls[4] < f.repeats
        if parts[0] == "partner" and rolls[5] < f.bad_records and body["data"]:
            body["data"] = [*body["data"], self._bad_record(parts[2], body["data"][0], dice)]
        data, headers = self._shape(body, headers, partial, repeat, dice, parts[0])
        self._send(handler, 200, data, {**limit_headers, **headers})

    def _connection_fault(self, handler: _Handler, rolls: list[float], attempt: int) -> bool:
        """A 5xx burst, a slow answer or a dropped connection; True when the request is answered (or dropped)."""
        f = self.faults
        if rolls[0] < f.server_errors and attempt < f.burst:
            self._fault("server_error")
            self._error(handler, (500, 502, 503)[attempt % 3], "internal error (simulated)")
            return True
        if rolls[1] < f.timeouts and attempt == 0:
            self._fault("timeout")
            time.sleep(f.timeout_seconds)
        elif rolls[2] < f.disconnects and attempt == 0:
            self._fault("disconnect")
            handler.close_connection = True
            return True
        return False

    def _route(self, handler: _Handler, parts: list[str], path: str, query: dict) -> _Answer | None:
        """The page a path asks for (None: no such resource)."""
        if len(parts) == 3 and parts[0] == "partner" and parts[2] in PARTNER_TABLES:
            return self._partner_page(handler, parts[2], path, query)
        if len(parts) == 3 and parts[0] == "stripe" and parts[2] in STRIPE_TABLES:
            return self._stripe_page(parts[2], path, query)
        return None

    def _bad_record(self, table: str, sample: dict, dice: random.Random) -> object:
        """A record the pipeline must quarantine, not drop: not an object, or a real record with a null key."""
        if dice.random() < 0.5:
            self._fault("malformed_record")
            return "<record unavailable: upstream error 0x2f>"
        self._fault("null_key_record")
        return {**sample, PARTNER_TABLES[table]: None}

    def _fault(self, name: str) -> None:
        with self._lock:
            self.stats.faults[name] += 1

    def _shape(
        self, page: dict, headers: dict, partial: bool, repeat: bool, dice: random.Random, api: str
    ) -> tuple[bytes, dict]:
        """Apply the page-level faults (repeats, partial pages) and serialise."""
        previous = page.pop("_previous", None)
        if repeat and previous is not None:
            page["data"] = [previous, *page["data"]]
            self._fault("repeated_record")
        if api == "partner":
            page["count"] = len(page["data"])
        if partial:
            kinds = ["truncated"]
            if page["data"] and (api == "partner" or page["has_more"]):
                kinds.append("fewer_records")
            if page["has_more"] and api == "partner":
                kinds.append("no_next_cursor")
            kind = dice.choice(kinds)
            self._fault(f"partial_{kind}")
            if kind == "fewer_records":
                page["data"] = page["data"][: max(0, len(page["data"]) - dice.randint(1, 3))]
            elif kind == "no_next_cursor":
                page["next_cursor"] = None
                headers = {k: v for k, v in headers.items() if k != "Link"}
            else:
                text = json.dumps(page, separators=(",", ":")).encode()
                return text[: len(text) // 2], headers
        return json.dumps(page, separators=(",", ":")).encode(), headers

    def _limit(self, query: dict, name: str = "limit", default: int = 100) -> int:
        try:
            return max(1, min(self.max_page_size, int(query.get(name, default))))
        except ValueError:
            return default

    def _partner_page(self, handler: _Handler, table: str, path: str, query: dict) -> _Answer:
        since, until = query.get("updated_since"), query.get("updated_until")
        rows = self._sorted("partner", table, self.partner[table])
        rows = [
            v for v in rows if (since is None or v.cursor >= since) and (until is None or v.cursor < until)
        ]
        page: dict = {}
        if "page" in query or "per_page" in query:
            size = self._limit(query, "per_page")
            number = int(query.get("page", 1))
            start = (number - 1) * size
            page.update(page=number, per_page=size, total_pages=max(1, math.ceil(len(rows) / size)))
        elif "offset" in query:
            size = self._limit(query)
            start = int(query["offset"])
            page.update(offset=start, limit=size, total=len(rows))
        else:
            size = self._limit(query)
            start = 0
            if query.get("cursor"):
                try:
                    after = tuple(json.loads(base64.urlsafe_b64decode(query["cursor"])))
                except ValueError:
                    return 400, f"bad cursor {query['cursor']!r}", {}
                start = next((i for i, v in enumerate(rows) if (v.cursor, v.key) > after), len(rows))
        chunk = rows[start : start + size]
        has_more = start + size < len(rows)
        next_cursor = None
        headers = {}
        if has_more and chunk:
            last = chunk[-1]
            next_cursor = base64.urlsafe_b64encode(json.dumps([last.cursor, last.key]).encode()).decode()
            keep = {k: v for k, v in query.items() if k in ("updated_since", "updated_until")}
            link = f"http://{handler.headers.get('Host')}{path}?" + urlencode(
                {**keep, "limit": size, "cursor": next_cursor}
            )
            headers["Link"] = f'<{link}>; rel="next"'
        page.update(data=[v.record for v in chunk], has_more=has_more, next_cursor=next_cursor)
        page["_previous"] = rows[start - 1].record if start > 0 and start - 1 < len(rows) else None
        return 200, page, headers

    def _stripe_page(self, table: str, path: str, query: dict) -> _Answer:
        gte, lt = query.get("created[gte]"), query.get("created[lt]")
        rows = self._sorted("stripe", table, self.stripe[table])
        rows = [
            v for v in rows if (gte is None or v.cursor >= int(gte)) and (lt is None or v.cursor < int(lt))
        ]
        size = self._limit(query, default=10)
        start = 0
        if query.get("starting_after"):
            index = next((i for i, v in enumerate(rows) if v.key == query["starting_after"]), None)
            if index is None:
                return 400, f"No such object: {query['starting_after']}", {}
            start = index + 1
        chunk = rows[start : start + size]
        page = {
            "object": "list",
            "url": path.removeprefix("/stripe"),
            "has_more": start + size < len(rows),
            "data": [v.record for v in chunk],
            "_previous": rows[start - 1].record if start > 0 else None,
        }
        return 200, page, {}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument(
        "--stripe-from-orders", action="store_true", help="Stripe payments of the orders (ignores --payments)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", action="store_true", help="switch every fault on")
    parser.add_argument("--rate", type=int, default=1200, help="requests per --window seconds")
    parser.add_argument("--window", type=float, default=3600)
    parser.add_argument("--token-env", default="NORTHSTAR_PARTNER_TOKEN", help="require this env var's token")
    args = parser.parse_args(argv)
    sim = PartnerApiSimulator(
        orders=args.orders,
        payments=0 if args.stripe_from_orders else args.payments,
        stripe_from_orders=args.stripe_from_orders,
        seed=args.seed,
        faults=Faults.everything() if args.faults else Faults(),
        rate_limit=(args.rate, args.window),
        token=os.environ.get(args.token_env),
        port=args.port,
    ).start()
    print(f"partner API on {sim.partner_url}, Stripe list API on {sim.stripe_url} (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
