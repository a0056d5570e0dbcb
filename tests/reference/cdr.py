"""Offline rating of one CDR line (contracts.md section 3) with the per-call core."""

from __future__ import annotations

from typing import Any

import orjson

from .clock import TimestampError, parse_instant, seconds_json
from .deck import Deck
from .money import ZERO_MONEY, format_money
from .pricing import _E164_RE, KINDS, billed_seconds, price_micros
from .records import Record, deck_fields, priced_fields

REQUIRED_FIELDS = ("call_id", "kind", "from", "to", "start", "end")
_REQUIRED = frozenset(REQUIRED_FIELDS)
_E164 = _E164_RE.fullmatch
_FREE_TAIL = {"reason": None, **deck_fields(None)}
_SERVICE_OF_KIND = {
    "user_outbound": "outbound",
    "conference_dialout": "outbound",
    "tollfree_inbound": "tollfree_inbound",
}


def rate_line(deck: Deck, raw: bytes) -> tuple[Record, str | None]:
    """Price one JSONL line; returns the output record and the rejection reason if any."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _invalid({"call_id": None, "kind": None}, "invalid_json", deck, None), "invalid_json"
    if obj.__class__ is not dict:
        return _invalid(
            {"call_id": None, "kind": None}, "not_an_object", deck, None
        ), "not_an_object"
    # The carried fields: call_id (null unless a string), tenant_id/user_id when present, kind
    # (null unless one of the kinds; any JSON value may come here, a list would not even hash).
    call_id = obj.get("call_id")
    head: Record = {"call_id": call_id if call_id.__class__ is str else None}  # README: a string
    if "tenant_id" in obj:
        head["tenant_id"] = obj["tenant_id"]
    if "user_id" in obj:
        head["user_id"] = obj["user_id"]
    kind = obj.get("kind")
    head["kind"] = kind = kind if kind.__class__ is str and kind in KINDS else None
    if not _REQUIRED <= obj.keys():
        for field in REQUIRED_FIELDS:
            if field not in obj:
                reason = f"missing_field:{field}"
                return _invalid(head, reason, deck, None), reason
    if head["call_id"] is None:
        return _invalid(head, "bad_field:call_id", deck, None), "bad_field:call_id"
    if kind is None:
        return _invalid(head, "bad_field:kind", deck, None), "bad_field:kind"
    try:
        start = parse_instant(obj["start"])
    except TimestampError:
        return _invalid(head, "bad_field:start", deck, None), "bad_field:start"
    try:
        end = parse_instant(obj["end"])
    except TimestampError:
        return _invalid(head, "bad_field:end", deck, None), "bad_field:end"
    duration = end - start
    if (
        kind == "inbound"
    ):  # `priced_fields("free", None, None, duration, 0, 0, deck.currency)`, inlined
        head["status"] = "free"
        head.update(_FREE_TAIL)
        head["duration_seconds"] = seconds_json(duration)
        head["billed_seconds"] = 0
        head["charge"] = ZERO_MONEY
        head["currency"] = deck.currency
        return head, None
    src, dst = obj["from"], obj["to"]
    if not (
        src.__class__ is str and _E164(src) and dst.__class__ is str and _E164(dst)
    ):  # is_e164, inlined
        return _invalid(head, "bad_number", deck, duration), "bad_number"
    service = _SERVICE_OF_KIND[kind]
    row = deck.lookup(service, (src if service == "tollfree_inbound" else dst)[1:], start)
    if row is None:
        head.update(priced_fields("unrated", "no_rate", None, duration, 0, 0, deck.currency))
        return head, "no_rate"
    billed = billed_seconds(duration, row.first_increment_s, row.next_increment_s)
    charge = price_micros(row, billed)
    # The fields of `records.priced_fields("rated", None, row, ...)`, built in one go (hot path;
    # tests/test_pricing.py checks both spellings give the same record).
    head["status"] = "rated"
    head["reason"] = None
    head["prefix"] = row.prefix
    head["destination"] = row.destination
    head["country"] = row.country
    head["number_type"] = row.number_type
    head["zone"] = row.zone
    head["rate_per_minute"] = row.rate_text
    head["connection_fee"] = row.fee_text
    head["duration_seconds"] = seconds_json(duration)
    head["billed_seconds"] = billed
    head["charge"] = format_money(charge) if charge else ZERO_MONEY
    head["currency"] = row.currency
    return head, None


def invalid_message(name: str, line_no: int, reason: str) -> str:
    """The stderr line `rate` prints for an invalid CDR line (`FILE:LINE: invalid: reason`)."""
    return f"{name}:{line_no}: invalid: {reason}\n"


def _invalid(head: Record, reason: str, deck: Deck, duration: Any) -> Record:
    head.update(priced_fields("invalid", reason, None, duration, 0, 0, deck.currency))
    return head
