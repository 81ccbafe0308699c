"""Stripe's own documented examples, as JSON literals: the Event object (https://docs.stripe.com/api/events/object,
a `setup_intent.created` event) and the Charge object (https://docs.stripe.com/api/charges/object), plus the
envelope Stripe wraps an object in when it sends an event (`event`). Tests build webhook deliveries from
these rather than from our own generator (northstar.dev.generate.stripe_events)."""

from __future__ import annotations

import copy
from typing import Any

# https://docs.stripe.com/api/events/object: the example Event (its object is a SetupIntent, not a charge)
DOCS_EVENT: dict[str, Any] = {
    "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
    "object": "event",
    "api_version": "2019-02-19",
    "created": 1686089970,
    "data": {
        "object": {
            "id": "seti_1NG8Du2eZvKYlo2C9XMqbR0x",
            "object": "setup_intent",
            "application": None,
            "automatic_payment_methods": None,
            "cancellation_reason": None,
            "client_secret": "seti_1NG8Du2eZvKYlo2C9XMqbR0x_secret_O2CdhLwGFh2Aej7bCY7qp8jlIuyR8DJ",
            "created": 1686089970,
            "customer": None,
            "description": None,
            "flow_directions": None,
            "last_setup_error": None,
            "latest_attempt": None,
            "livemode": False,
            "mandate": None,
            "metadata": {},
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": "pm_1NG8Du2eZvKYlo2CYzzldNr7",
            "payment_method_options": {
                "acss_debit": {
                    "currency": "cad",
                    "mandate_options": {
                        "interval_description": "First day of every month",
                        "payment_schedule": "interval",
                        "transaction_type": "personal",
                    },
                    "verification_method": "automatic",
                }
            },
            "payment_method_types": ["acss_debit"],
            "single_use_mandate": None,
            "status": "requires_confirmation",
            "usage": "off_session",
        }
    },
    "livemode": False,
    "pending_webhooks": 0,
    "request": {"id": None, "idempotency_key": None},
    "type": "setup_intent.created",
}
# https://docs.stripe.com/api/charges/object: the example Charge (checked field by field up to
# payment_method_details.card.fingerprint; the fields after it are the documented attributes, receipt_url shortened)
DOCS_CHARGE: dict[str, Any] = {
    "id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
    "object": "charge",
    "amount": 1099,
    "amount_captured": 1099,
    "amount_refunded": 0,
    "application": None,
    "application_fee": None,
    "application_fee_amount": None,
    "balance_transaction": "txn_3MmlLrLkdIwHu7ix0uke3Ezy",
    "billing_details": {
        "address": {
            "city": None,
            "country": None,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "email": None,
        "name": None,
        "phone": None,
    },
    "calculated_statement_descriptor": "Stripe",
    "captured": True,
    "created": 1679090539,
    "currency": "usd",
    "customer": None,
    "description": None,
    "disputed": False,
    "failure_balance_transaction": None,
    "failure_code": None,
    "failure_message": None,
    "fraud_details": {},
    "livemode": False,
    "metadata": {},
    "on_behalf_of": None,
    "outcome": {
        "network_status": "approved_by_network",
        "reason": None,
        "risk_level": "normal",
        "risk_score": 32,
        "seller_message": "Payment complete.",
        "type": "authorized",
    },
    "paid": True,
    "payment_intent": None,
    "payment_method": "card_1MmlLrLkdIwHu7ixIJwEWSNR",
    "payment_method_details": {
        "card": {
            "brand": "visa",
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": None},
            "country": "US",
            "exp_month": 3,
            "exp_year": 2024,
            "fingerprint": "mToisGZ01V71BCos",
            "funding": "credit",
            "installments": None,
            "last4": "4242",
            "mandate": None,
            "network": "visa",
            "three_d_secure": None,
            "wallet": None,
        },
        "type": "card",
    },
    "receipt_email": None,
    "receipt_number": None,
    "receipt_url": "https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdF8xTTJKVGtMa2RJd0h1N2l4",
    "refunded": False,
    "review": None,
    "shipping": None,
    "source_transfer": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "status": "succeeded",
    "transfer_data": None,
    "transfer_group": None,
}


def charge(**changes: Any) -> dict[str, Any]:
    """The documented Charge with `changes` (id, amount, status, metadata, ...)."""
    return {**copy.deepcopy(DOCS_CHARGE), **changes}


def event(
    event_id: str, event_type: str, created: int, obj: dict[str, Any], **changes: Any
) -> dict[str, Any]:
    """An Event as the documented one is shaped, carrying `obj` as `data.object`, caused by an API request
    (`request.id` set; the documented example's is null, as an automatic event's)."""
    envelope = copy.deepcopy(DOCS_EVENT)
    envelope.update(id=event_id, type=event_type, created=created, data={"object": copy.deepcopy(obj)})
    envelope["request"] = {"id": "req_" + event_id.removeprefix("evt_")[:14], "idempotency_key": None}
    envelope.update(changes)
    return envelope
