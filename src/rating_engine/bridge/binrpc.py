"""Kamailio's binrpc (the `ctl` module's protocol, what `kamcmd` speaks) over a unix socket.

The bridge calls `dlg.end_dlg`, `dlg.list`, `dlg.dlg_list`, `htable.dump`, `htable.delete` and
`pv.shvSet` this way instead of starting a `kamcmd` process per call: a disconnect is one
connect, one request and one reply (well under a millisecond on the same host), and the
replies come back typed instead of as text to scrape.

Wire format (Kamailio `src/modules/ctl/binrpc.h`): a header `0xA1`, then a byte of
type (4 bits) | length-size − 1 (2 bits) | cookie-size − 1 (2 bits), the body length and the
cookie, both big-endian; then the body, a sequence of records, each a byte of
S (1 bit) | size (3 bits) | value type (4 bits) followed by the value. Structs are named
values (`avp` records) between a start and an end mark; an array inside a struct travels as a
struct of unnamed values.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any, Union

MAGIC_VERS = 0xA1
REQUEST, REPLY, FAULT = 0, 1, 3
T_INT, T_STR, T_DOUBLE, T_STRUCT, T_ARRAY, T_AVP, T_BYTES = 0, 1, 2, 3, 4, 5, 6
MAX_REPLY_BYTES = 64 << 20  # what the bridge accepts at most from one reply
MAX_DEPTH = 32

Param = Union[int, str]


class RpcError(Exception):
    """The proxy could not be reached, or answered with something that is not binrpc."""


class RpcFault(Exception):
    """The proxy answered the call with a fault (`404 Dialog not found`, …)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code, self.message = code, message


def _int_bytes(value: int) -> bytes:
    """Minimal big-endian two's-complement form on at most 4 bytes (0 is no byte at all)."""
    u = value & 0xFFFFFFFF
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"binrpc ints are 32-bit: {value}")
    return u.to_bytes(4, "big").lstrip(b"\x00")


def _record(kind: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 8:
        return bytes([(n << 4) | kind]) + payload
    size = _int_bytes(n)
    return bytes([((8 | len(size)) << 4) | kind]) + size + payload


def encode_request(method: str, params: tuple[Param, ...], cookie: int) -> bytes:
    """One request packet: the method name, then each parameter as an int or a string."""
    body = bytearray(_record(T_STR, method.encode() + b"\x00"))
    for p in params:
        if isinstance(p, bool) or not isinstance(p, (int, str)):
            raise TypeError(f"binrpc parameters are ints or strings, not {type(p).__name__}")
        if isinstance(p, int):
            body += _record(T_INT, _int_bytes(p))
        else:
            body += _record(T_STR, p.encode() + b"\x00")
    return _header(REQUEST, len(body), cookie) + bytes(body)


def _header(kind: int, body_len: int, cookie: int) -> bytes:
    length = _int_bytes(body_len) or b"\x00"
    ck = (cookie & 0xFFFFFFFF).to_bytes(4, "big").lstrip(b"\x00") or b"\x00"
    return bytes([MAGIC_VERS, (kind << 4) | ((len(length) - 1) << 2) | (len(ck) - 1)]) + length + ck


@dataclass(frozen=True)
class Header:
    kind: int
    body_len: int
    cookie: int
    size: int  # bytes of the header itself


def decode_header(data: bytes) -> Header | None:
    """The packet header at the start of `data`, or None when more bytes are needed."""
    if len(data) < 2:
        return None
    if data[0] != MAGIC_VERS:
        raise RpcError(f"not a binrpc packet (first byte {data[0]:#04x})")
    kind, ll, cl = data[1] >> 4, ((data[1] >> 2) & 3) + 1, (data[1] & 3) + 1
    if len(data) < 2 + ll + cl:
        return None
    body_len = int.from_bytes(data[2 : 2 + ll], "big")
    cookie = int.from_bytes(data[2 + ll : 2 + ll + cl], "big")
    return Header(kind, body_len, cookie, 2 + ll + cl)


class _Reader:
    """Records of one body, decoded to Python values (structs to dicts or lists)."""

    def __init__(self, body: bytes) -> None:
        self.body, self.pos = body, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.body):
            raise RpcError("binrpc record runs past the end of its packet")
        chunk = self.body[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def next(self, depth: int = 0) -> tuple[int, Any, bool]:
        """(type, value, is_end_mark) of the next record."""
        if depth > MAX_DEPTH:
            raise RpcError("binrpc structs nested too deep")
        head = self._take(1)[0]
        ext, size, kind = head >> 7, (head >> 4) & 7, head & 0xF
        if ext:
            if size == 0:
                if kind not in (T_STRUCT, T_ARRAY):
                    raise RpcError(f"binrpc end mark of a non-container type {kind}")
                return kind, None, True
            size = int.from_bytes(self._take(size), "big")
        if kind in (T_STRUCT, T_ARRAY):
            return kind, self._container(kind, depth + 1), False
        raw = self._take(size)
        if kind == T_INT:
            value = int.from_bytes(raw, "big", signed=len(raw) == 4)
            return kind, value, False
        if kind in (T_STR, T_AVP):
            return kind, raw[:-1].decode("utf-8", "replace") if raw else "", False
        if kind == T_BYTES:
            return kind, bytes(raw), False
        if kind == T_DOUBLE:  # fixed point: the value times 1000
            return kind, int.from_bytes(raw, "big", signed=True) / 1000, False
        raise RpcError(f"unknown binrpc value type {kind}")

    def _container(self, kind: int, depth: int) -> Any:
        items: list[tuple[str | None, Any]] = []
        while True:
            t, value, end = self.next(depth)
            if end:
                break
            if t == T_AVP:
                t2, inner, end2 = self.next(depth)
                if end2:
                    raise RpcError("binrpc struct member without a value")
                items.append((value, inner))
            else:
                items.append((None, value))
        if kind == T_ARRAY or all(name is None for name, _ in items):
            return [v for _, v in items]
        return {name if name is not None else str(i): v for i, (name, v) in enumerate(items)}

    def values(self) -> list[Any]:
        out = []
        while self.pos < len(self.body):
            _, value, end = self.next()
            if end:
                raise RpcError("binrpc end mark outside a struct")
            out.append(value)
        return out


def decode_body(body: bytes) -> list[Any]:
    """Every top-level value of a reply body."""
    return _Reader(body).values()


class BinRpcClient:
    """Calls on the proxy's `ctl` socket (`unix:PATH`), one connection per call.

    A connection per call costs a unix-socket connect (tens of microseconds) and means no
    state survives a proxy restart, and that a long `dlg.list` never delays a `dlg.end_dlg`
    running beside it.
    """

    def __init__(self, address: str, timeout_s: float = 5.0) -> None:
        if not address.startswith("unix:"):
            raise ValueError(f"the proxy's RPC address must be unix:PATH, got {address!r}")
        self.path = address.removeprefix("unix:")
        self.timeout_s = timeout_s
        self._cookies = itertools.count(1)

    async def call(self, method: str, *params: Param) -> list[Any]:
        """The reply's values; RpcFault for a fault reply, RpcError when the proxy is away."""
        cookie = next(self._cookies) & 0xFFFFFFFF
        try:
            return await asyncio.wait_for(self._call(method, params, cookie), self.timeout_s)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise RpcError(f"{method}: proxy RPC socket {self.path}: {exc}") from None
        except asyncio.TimeoutError:
            raise RpcError(f"{method}: no reply within {self.timeout_s} s") from None

    async def _call(self, method: str, params: tuple[Param, ...], cookie: int) -> list[Any]:
        reader, writer = await asyncio.open_unix_connection(self.path)
        try:
            writer.write(encode_request(method, params, cookie))
            await writer.drain()
            head = await reader.readexactly(2)
            more = ((head[1] >> 2) & 3) + 1 + (head[1] & 3) + 1
            head += await reader.readexactly(more)
            header = decode_header(head)
            assert header is not None
            if header.body_len > MAX_REPLY_BYTES:
                raise RpcError(f"{method}: reply of {header.body_len} bytes is too large")
            body = await reader.readexactly(header.body_len)
        finally:
            writer.close()
        values = decode_body(body)
        if header.kind == FAULT:
            code = values[0] if values and isinstance(values[0], int) else 500
            message = values[1] if len(values) > 1 and isinstance(values[1], str) else ""
            raise RpcFault(code, message)
        if header.kind != REPLY:
            raise RpcError(f"{method}: unexpected binrpc packet type {header.kind}")
        if header.cookie != cookie:
            raise RpcError(f"{method}: reply for another request (cookie {header.cookie})")
        return values
