"""Output records, built in one place so `rate`, `simulate` and the worker print the same bytes.

Every record is a plain dict in a fixed key order; `dumps` is the one serializer.
Seconds are orjson fragments (exact JSON numbers), money 4-place strings.
"""

from __future__ import annotations

from typing import Any

import orjson

from .clock import Instant, format_instant, seconds_json
from .deck import Rate
from .money import ZERO_MONEY, format_money

Record = dict[str, Any]
ZERO_SECONDS = seconds_json(0)

DISCONNECTS = "disconnects"
CHARGES = "charges"
NOTIFICATIONS = "notifications"
PAYMENTS = "payments"
DEAD_LETTERS = "dead-letters"
OUTPUT_TOPICS = (DISCONNECTS, CHARGES, NOTIFICATIONS, PAYMENTS, DEAD_LETTERS)


def dumps(record: Record) -> bytes:
    return orjson.dumps(record)


def deck_fields(row: Rate | None) -> Record:
    """The deck's columns on a priced line; nulls where no row applied."""
    if row is None:
        return {"prefix": None, "destination": None, "country": None, "number_type": None,
                "zone": None, "rate_per_minute": None, "connection_fee": None}
    return {"prefix": row.prefix, "destination": row.destination, "country": row.country,
            "number_type": row.number_type, "zone": row.zone,
            "rate_per_minute": row.rate_text, "connection_fee": row.fee_text}


def priced_fields(status: str, reason: str | None, row: Rate | None, duration_us: Instant | None,
                  billed_s: int, charge_micros: int, currency: str | None) -> Record:
    """The section-3 pricing fields shared by `rate` lines and charges records."""
    out: Record = {"status": status, "reason": reason}
    out.update(deck_fields(row))
    out["duration_seconds"] = None if duration_us is None else seconds_json(duration_us)
    out["billed_seconds"] = billed_s
    out["charge"] = format_money(charge_micros) if charge_micros else ZERO_MONEY
    out["currency"] = currency
    return out


def charge_record(*, tenant_id: str, call_id: str, user_id: str | None, kind: str, status: str,
                  reason: str | None, row: Rate | None, start: Instant, end: Instant,
                  billed_s: int, charge_micros: int, currency: str | None, pool: str | None,
                  pool_us: Instant, disconnected: str | None) -> Record:
    out: Record = {"charge_id": f"{tenant_id}:{call_id}", "call_id": call_id, "tenant_id": tenant_id,
                   "user_id": user_id, "kind": kind,
                   "start": format_instant(start), "end": format_instant(end)}
    out.update(priced_fields(status, reason, row, end - start, billed_s, charge_micros, currency))
    out["pool"] = pool
    out["pool_seconds"] = seconds_json(pool_us) if pool_us else ZERO_SECONDS
    out["disconnected"] = disconnected
    return out


def disconnect_record(tenant_id: str, call_id: str, switch_id: Any, reason: str, at: Instant) -> Record:
    return {"call_id": call_id, "tenant_id": tenant_id, "switch_id": switch_id, "reason": reason,
            "at": format_instant(at)}


def notification_record(notification_id: str, tenant_id: str, kind: str, ts: Instant,
                        **details: Any) -> Record:
    out: Record = {"notification_id": notification_id, "tenant_id": tenant_id, "kind": kind,
                   "ts": format_instant(ts)}
    out.update(details)
    return out


def payment_record(request_id: str, tenant_id: str, amount_micros: int, currency: str | None,
                   ts: Instant) -> Record:
    return {"request_id": request_id, "tenant_id": tenant_id, "amount": format_money(amount_micros),
            "currency": currency, "ts": format_instant(ts)}


def dead_letter_record(reason: str, original: bytes, line: int | None, tenant_id: str | None) -> Record:
    """The rejected input kept whole: as text when it is UTF-8, else also as base64."""
    try:
        text, b64 = original.decode("utf-8"), None
    except UnicodeDecodeError:
        import base64

        text = original.decode("utf-8", errors="replace")
        b64 = base64.b64encode(original).decode("ascii")
    out: Record = {"reason": reason, "original": text, "line": line, "tenant_id": tenant_id}
    if b64 is not None:
        out["original_base64"] = b64
    return out
