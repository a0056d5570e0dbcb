"""Offline rating of one CDR line (contracts.md section 3) with the per-call core."""

from __future__ import annotations

from typing import Any

import orjson

from .clock import TimestampError, parse_instant
from .deck import Deck
from .pricing import KINDS, billed_seconds, is_e164, price_micros, rate_for
from .records import Record, priced_fields

REQUIRED_FIELDS = ("call_id", "kind", "from", "to", "start", "end")


def _carried(obj: dict[str, Any]) -> Record:
    call_id = obj.get("call_id")
    out: Record = {"call_id": call_id if isinstance(call_id, (str, int)) and not isinstance(call_id, bool) else None}
    for key in ("tenant_id", "user_id"):
        if key in obj:
            out[key] = obj[key]
    kind = obj.get("kind")
    out["kind"] = kind if kind in KINDS else None
    return out


def rate_line(deck: Deck, raw: bytes) -> tuple[Record, str | None]:
    """Price one JSONL line; returns the output record and the rejection reason if any."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _invalid({"call_id": None, "kind": None}, "invalid_json", deck, None), "invalid_json"
    if not isinstance(obj, dict):
        return _invalid({"call_id": None, "kind": None}, "not_an_object", deck, None), "not_an_object"
    head = _carried(obj)
    for field in REQUIRED_FIELDS:
        if field not in obj:
            reason = f"missing_field:{field}"
            return _invalid(head, reason, deck, None), reason
    if head["call_id"] is None:
        return _invalid(head, "bad_field:call_id", deck, None), "bad_field:call_id"
    kind = obj["kind"]
    if kind not in KINDS:
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
    if kind == "inbound":
        head.update(priced_fields("free", None, None, duration, 0, 0, deck.currency))
        return head, None
    src, dst = obj["from"], obj["to"]
    if not (is_e164(src) and is_e164(dst)):
        return _invalid(head, "bad_number", deck, duration), "bad_number"
    row = rate_for(deck, kind, src, dst, start)
    if row is None:
        head.update(priced_fields("unrated", "no_rate", None, duration, 0, 0, deck.currency))
        return head, "no_rate"
    billed = billed_seconds(duration, row.first_increment_s, row.next_increment_s)
    head.update(priced_fields("rated", None, row, duration, billed, price_micros(row, billed), row.currency))
    return head, None


def _invalid(head: Record, reason: str, deck: Deck, duration: Any) -> Record:
    head.update(priced_fields("invalid", reason, None, duration, 0, 0, deck.currency))
    return head
