"""Output records, built in one place so `rate`, `simulate` and the worker print the same bytes.

Every record is a plain dict in a fixed key order; `dumps` is the one serializer.
Seconds are orjson fragments (exact JSON numbers), money 4-place strings.

The two records of nearly every call, charges and disconnects, also have a template
form (`charge_json`, `disconnect_json`) that writes the same bytes as `dumps` of the
dict without building it: each value goes through orjson on its own (a JSON text is
its members' texts joined), and a deck row's members are written once per row.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
from typing import Any

import orjson

from .clock import Instant, format_instant, seconds_json, seconds_text
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
        return {
            "prefix": None,
            "destination": None,
            "country": None,
            "number_type": None,
            "zone": None,
            "rate_per_minute": None,
            "connection_fee": None,
        }
    return {
        "prefix": row.prefix,
        "destination": row.destination,
        "country": row.country,
        "number_type": row.number_type,
        "zone": row.zone,
        "rate_per_minute": row.rate_text,
        "connection_fee": row.fee_text,
    }


def priced_fields(
    status: str,
    reason: str | None,
    row: Rate | None,
    duration_us: Instant | None,
    billed_s: int,
    charge_micros: int,
    currency: str | None,
) -> Record:
    """The section-3 pricing fields shared by `rate` lines and charges records."""
    out: Record = {"status": status, "reason": reason}
    out.update(deck_fields(row))
    out["duration_seconds"] = None if duration_us is None else seconds_json(duration_us)
    out["billed_seconds"] = billed_s
    out["charge"] = format_money(charge_micros) if charge_micros else ZERO_MONEY
    out["currency"] = currency
    return out


def charge_record(
    *,
    tenant_id: str,
    call_id: str,
    user_id: str | None,
    kind: str,
    status: str,
    reason: str | None,
    row: Rate | None,
    start: Instant,
    end: Instant,
    billed_s: int,
    charge_micros: int,
    currency: str | None,
    pool: str | None,
    pool_us: Instant,
    disconnected: str | None,
) -> Record:
    out: Record = {
        "charge_id": f"{tenant_id}:{call_id}",
        "call_id": call_id,
        "tenant_id": tenant_id,
        "user_id": user_id,
        "kind": kind,
        "start": format_instant(start),
        "end": format_instant(end),
    }
    out.update(priced_fields(status, reason, row, end - start, billed_s, charge_micros, currency))
    out["pool"] = pool
    out["pool_seconds"] = seconds_json(pool_us) if pool_us else ZERO_SECONDS
    out["disconnected"] = disconnected
    return out


_MEMO_MAX = 100_000


class _JsonText(dict[Any, str]):
    """`J[value]`: a string or null as JSON text, memoized: tenants, users, kinds, statuses recur.

    Only for str and None keys (1 and True would share an entry).
    """

    def __missing__(self, value: str | None) -> str:
        text = orjson.dumps(value).decode()
        if len(self) < _MEMO_MAX:
            self[value] = text
        return text


J = _JsonText()
_ROW_TEXT: dict[int, tuple[Rate, str]] = {}


def _row_text(row: Rate | None) -> str:
    """`deck_fields(row)` as JSON members (no braces); a row never changes, so once per row."""
    hit = _ROW_TEXT.get(id(row))
    if hit is not None and hit[0] is row:  # the row is kept alive here, so its id is not reused
        return hit[1]
    text = orjson.dumps(deck_fields(row))[1:-1].decode()
    if len(_ROW_TEXT) >= _MEMO_MAX:
        _ROW_TEXT.clear()
    _ROW_TEXT[id(row)] = (row, text)
    return text


def charge_json(
    tenant_id: str,
    call_id: str,
    user_id: str | None,
    kind: str,
    status: str,
    reason: str | None,
    row: Rate | None,
    start: Instant,
    end: Instant,
    billed_s: int,
    charge_micros: int,
    currency: str | None,
    pool: str | None,
    pool_us: Instant,
    disconnected: str | None,
) -> bytes:
    """`dumps(charge_record(...))` with the same arguments, by template (see the module doc)."""
    t, c = J[tenant_id], orjson.dumps(call_id).decode()
    return (
        f'{{"charge_id":{t[:-1]}:{c[1:]},"call_id":{c},"tenant_id":{t},'
        f'"user_id":{J[user_id]},"kind":{J[kind]},'
        f'"start":"{format_instant(start)}","end":"{format_instant(end)}",'
        f'"status":{J[status]},"reason":{J[reason]},{_row_text(row)},'
        f'"duration_seconds":{seconds_text(end - start)},"billed_seconds":{billed_s},'
        f'"charge":"{format_money(charge_micros) if charge_micros else ZERO_MONEY}",'
        f'"currency":{J[currency]},"pool":{J[pool]},'
        f'"pool_seconds":{seconds_text(pool_us) if pool_us else "0"},'
        f'"disconnected":{J[disconnected]}}}'
    ).encode()


def disconnect_json(
    tenant_id: str, call_id: str, switch_id: Any, reason: str, at: Instant
) -> bytes:
    """`dumps(disconnect_record(...))` with the same arguments, by template."""
    sw = J[switch_id] if switch_id.__class__ is str else orjson.dumps(switch_id).decode()
    return (
        f'{{"call_id":{orjson.dumps(call_id).decode()},"tenant_id":{J[tenant_id]},'
        f'"switch_id":{sw},"reason":{J[reason]},"at":"{format_instant(at)}"}}'
    ).encode()


def disconnect_record(
    tenant_id: str, call_id: str, switch_id: Any, reason: str, at: Instant
) -> Record:
    return {
        "call_id": call_id,
        "tenant_id": tenant_id,
        "switch_id": switch_id,
        "reason": reason,
        "at": format_instant(at),
    }


def notification_record(
    notification_id: str, tenant_id: str, kind: str, ts: Instant, **details: Any
) -> Record:
    out: Record = {
        "notification_id": notification_id,
        "tenant_id": tenant_id,
        "kind": kind,
        "ts": format_instant(ts),
    }
    out.update(details)
    return out


def payment_record(
    request_id: str, tenant_id: str, amount_micros: int, currency: str | None, ts: Instant
) -> Record:
    return {
        "request_id": request_id,
        "tenant_id": tenant_id,
        "amount": format_money(amount_micros),
        "currency": currency,
        "ts": format_instant(ts),
    }


DEAD_LETTER_ORIGINAL_MAX_BYTES = 65_536


def dead_letter_record(
    reason: str, original: bytes, line: int | None, tenant_id: str | None
) -> Record:
    """The rejected input kept whole up to the limit: as text when it is UTF-8, else also as
    base64; beyond the limit its first bytes (less a character the cut left incomplete), with
    the whole input's size and SHA-256."""
    kept = original[:DEAD_LETTER_ORIGINAL_MAX_BYTES]
    if len(kept) < len(original):
        try:
            kept = kept[: codecs.utf_8_decode(kept, "strict", False)[1]]
        except UnicodeDecodeError:
            pass  # invalid inside the kept bytes: they go as they are, with their base64
    try:
        text, b64 = kept.decode("utf-8"), None
    except UnicodeDecodeError:
        text = kept.decode("utf-8", errors="replace")
        b64 = base64.b64encode(kept).decode("ascii")
    out: Record = {"reason": reason, "original": text, "line": line, "tenant_id": tenant_id}
    if b64 is not None:
        out["original_base64"] = b64
    if len(kept) < len(original):
        out["original_size"] = len(original)
        out["original_sha256"] = hashlib.sha256(original).hexdigest()
    return out
