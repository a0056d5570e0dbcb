"""Account commands built from HTTP requests and judged by the core's own validator.

A request becomes the `accounts` command the worker would read (contracts.md section 4):
the type from the endpoint, `tenant_id` (and `user_id` or `plan`) from the path,
`command_id` from the `Idempotency-Key` header, `ts` from the API's clock, and the command's
other fields copied from the JSON body when present. The command's bytes then go through
`core.parse_input`, the function the worker's driver uses, so an HTTP client gets exactly
the dead-letter reason (`missing_field:amount`, `bad_field:minutes`, `currency_mismatch`, …)
the worker would have given, and a command the API accepts is one the worker accepts.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from ..core import COMMAND_FIELDS, Deck, format_instant, parse_input

MAX_KEY_CHARS = 200  # longer Idempotency-Key values are refused as bad_field:command_id


@dataclass(frozen=True)
class Rejected:
    """A request the core refused: the dead-letter reason and the HTTP status it maps to."""

    reason: str
    status: int


@dataclass(frozen=True)
class Command:
    """A command the core accepted, ready to produce to `accounts`."""

    tenant_id: str
    command_id: str
    payload: bytes


def status_of(reason: str) -> int:
    """400 for a body that is not a JSON object or a missing or bad Idempotency-Key (the
    request itself is malformed), 422 for a well-formed request whose fields the rules
    refuse."""
    if reason in ("invalid_json", "not_an_object") or reason.endswith(":command_id"):
        return 400
    return 422


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """What must be equal for a repeated Idempotency-Key to be the same request."""
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def now_ts() -> str:
    return format_instant(time.time_ns() // 1000)


def read_body(raw: bytes) -> dict[str, Any] | Rejected:
    """The request body as a JSON object; an empty body is an empty object."""
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejected("invalid_json", 400)
    if not isinstance(body, dict):
        return Rejected("not_an_object", 400)
    return body


def build(
    deck: Deck,
    kind: str,
    tenant_id: str,
    idempotency_key: str | None,
    body: dict[str, Any],
    fixed: dict[str, Any] | None = None,
    ts: str | None = None,
) -> Command | Rejected:
    """The command of `kind` for this request, judged by the core."""
    cmd: dict[str, Any] = {"type": kind, "tenant_id": tenant_id}
    if idempotency_key is not None:
        if len(idempotency_key) > MAX_KEY_CHARS:
            return Rejected("bad_field:command_id", 400)
        cmd["command_id"] = idempotency_key
    cmd["ts"] = ts or now_ts()
    fixed = fixed or {}
    for field in COMMAND_FIELDS[kind]:
        if field in fixed:
            cmd[field] = fixed[field]
        elif field in body:
            cmd[field] = body[field]
    payload = orjson.dumps(cmd)
    reason, accepted, _tenant, _ts = parse_input(deck, payload)
    if not accepted:
        return Rejected(reason, status_of(reason))
    return Command(tenant_id, idempotency_key or "", payload)
