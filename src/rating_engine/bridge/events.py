"""What the proxy says, as `calls` records: pure functions, no sockets.

The proxy's config (deploy/kamailio/kamailio.cfg) sends one JSON object per event over evapi,
netstring framed:

    {"event": "call_start", "call_id", "tenant_id", "user_id", "kind", "from", "to",
     "usage_location", "ts": "<epoch s>.<µs>", "h_entry": N, "h_id": N}
    {"event": "call_end", "call_id", "tenant_id", "ts", "h_entry", "h_id"}

The bridge adds its `switch_id`, turns `ts` into the contract's instant (floored to the
millisecond) and puts the fields in the contract's order. The field values are passed on as
the proxy gave them: the engine validates them (a call from `ann` instead of a number is the
engine's `bad_number` refusal, not the bridge's), so a bad event is dead-lettered there with
its original bytes, never dropped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from ..core import format_instant

START_FIELDS = ("call_id", "tenant_id", "user_id", "kind", "from", "to", "usage_location")
MAX_NETSTRING = 1 << 20  # one event is a few hundred bytes; a longer length is a broken stream


@dataclass(frozen=True)
class Handle:
    """The proxy's name for a dialog: what `dlg.end_dlg` takes."""

    h_entry: int
    h_id: int


@dataclass(frozen=True)
class CallEvent:
    """One `calls` record ready to publish, and the dialog it belongs to."""

    kind: str  # call_start or call_end
    tenant_id: str
    call_id: str
    handle: Handle | None
    value: bytes  # the record, as published

    @property
    def key(self) -> bytes:
        return self.tenant_id.encode()


@dataclass(frozen=True)
class Unreadable:
    """A proxy message the bridge cannot make a record of: published as-is for the engine to
    dead-letter (with `key` when a tenant could be read), and counted."""

    reason: str
    value: bytes
    key: bytes | None


def instant_of(ts: object) -> str | None:
    """`"1796626377.574610"` (the proxy's `$TV(Sn)`) as `2026-12-07T06:52:57.574Z`."""
    if not isinstance(ts, str):
        return None
    whole, _, frac = ts.partition(".")
    if not whole.isdigit() or not (frac.isdigit() or frac == "") or len(frac) > 9:
        return None
    us = int(whole) * 1_000_000 + int((frac + "000000")[:6])
    return format_instant(us)


def _handle(obj: dict[str, Any]) -> Handle | None:
    e, i = obj.get("h_entry"), obj.get("h_id")
    if isinstance(e, int) and isinstance(i, int) and not isinstance(e, bool):
        return Handle(e, i)
    return None


def from_proxy(raw: bytes, switch_id: str) -> CallEvent | Unreadable:
    """The record for one evapi message."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Unreadable("invalid_json", raw, None)
    if not isinstance(obj, dict):
        return Unreadable("not_an_object", raw, None)
    tenant = obj.get("tenant_id")
    key = tenant.encode() if isinstance(tenant, str) else None
    event, call_id = obj.get("event"), obj.get("call_id")
    ts = instant_of(obj.get("ts"))
    if event not in ("call_start", "call_end"):
        return Unreadable("unknown_event", raw, key)
    if not isinstance(tenant, str) or not isinstance(call_id, str) or ts is None:
        return Unreadable("missing_field", raw, key)
    record: dict[str, Any] = {"type": event}
    if event == "call_start":
        record.update({f: obj.get(f) for f in START_FIELDS})
        record["switch_id"] = switch_id
    else:
        record.update({"call_id": call_id, "tenant_id": tenant})
    record["ts"] = ts
    return CallEvent(event, tenant, call_id, _handle(obj), orjson.dumps(record))


@dataclass(frozen=True)
class LiveDialog:
    """A confirmed dialog from `dlg.list`, with the `calls` fields the proxy kept in its vars."""

    handle: Handle
    call_id: str
    start: CallEvent | None  # None: the dialog carries no call fields (not one of ours)


def dialogs_of(reply: list[Any], switch_id: str) -> list[LiveDialog]:
    """The answered dialogs of a `dlg.list` reply (state 3: 200 OK sent, 4: confirmed)."""
    out = []
    for d in reply:
        if not isinstance(d, dict) or d.get("state") not in (3, 4):
            continue
        handle = _handle(d)
        call_id = d.get("call-id")
        if handle is None or not isinstance(call_id, str):
            continue
        variables: dict[str, Any] = {}
        for v in d.get("variables") or []:
            if isinstance(v, dict):
                variables.update(v)
        start = None
        fields, ts = variables.get("re_call"), variables.get("re_ts")
        if isinstance(fields, str) and isinstance(ts, str):
            try:
                obj = orjson.loads(fields)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                obj.update(event="call_start", ts=ts, h_entry=handle.h_entry, h_id=handle.h_id)
                event = from_proxy(orjson.dumps(obj), switch_id)
                start = event if isinstance(event, CallEvent) else None
        out.append(LiveDialog(handle, call_id, start))
    return out


def missed_of(reply: list[Any]) -> list[tuple[str, bytes]]:
    """(key, message) of each event in an `htable.dump missed` reply, oldest first."""
    items = []
    for bucket in reply:
        if not isinstance(bucket, dict):
            continue
        for cell in bucket.get("slot") or []:
            if not isinstance(cell, dict):
                continue
            name, value = cell.get("name"), cell.get("value")
            if isinstance(name, str) and isinstance(value, str):
                items.append((name, value.encode()))
    items.sort(key=lambda kv: (len(kv[0]), kv[0]))  # the names are the proxy's sequence numbers
    return items


class Netstrings:
    """Splits a byte stream into netstrings (`<len>:<bytes>,`), as evapi frames its messages."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The whole messages `data` completes; ValueError when the stream is not netstrings."""
        self.buf += data
        out: list[bytes] = []
        while True:
            colon = self.buf.find(b":", 0, 12)
            if colon < 0:
                if len(self.buf) >= 12:
                    raise ValueError("netstring length too long or missing")
                return out
            head = bytes(self.buf[:colon])
            if not head.isdigit():
                raise ValueError(f"bad netstring length {head[:20]!r}")
            n = int(head)
            if n > MAX_NETSTRING:
                raise ValueError(f"netstring of {n} bytes")
            end = colon + 1 + n
            if len(self.buf) < end + 1:
                return out
            if self.buf[end] != ord(","):
                raise ValueError("netstring not ended by a comma")
            out.append(bytes(self.buf[colon + 1 : end]))
            del self.buf[: end + 1]
