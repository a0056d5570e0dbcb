"""The account API and the web console: one Starlette app (ASGI), served by uvicorn.

Handlers are plain functions over four parts handed in by `create_app`: the deck (its
currency for the core's validator), the account views (`broker.Views`), the SQLite store
(`store.Store`: charges, idempotency answers) and a `produce(tenant_id, payload)` coroutine.
The tests run the same app with an in-memory producer; `rating-engine api` wires it to Kafka.

Authorization is checked in each handler, not in a middleware: Starlette's middleware wraps
every request in extra tasks and costs more than the account lookup itself.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import weakref
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..core import Deck, parse_instant
from . import commands
from .broker import Views
from .openapi import document_bytes
from .store import Answer, BadCursor, Store
from .tokens import OPERATOR, Grant, TokenStore

log = logging.getLogger("rating_engine.api")

STATIC = Path(__file__).with_name("static")
PROBLEM = "application/problem+json"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Content",
    503: "Service Unavailable",
}
CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
NO_STORE = {"Cache-Control": "no-store"}

Produce = Callable[[str, bytes], Awaitable[None]]


def problem(
    status: int,
    reason: str,
    detail: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem; `reason` is a dead-letter reason code or the API's own code."""
    body: dict[str, Any] = {
        "type": f"urn:rating-engine:problem:{reason}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "reason": reason,
    }
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    return Response(orjson.dumps(body), status, headers=headers, media_type=PROBLEM)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def parse_bound(text: str | None) -> int | None:
    """A period bound: a UTC date `YYYY-MM-DD` (its midnight) or an ISO 8601 instant."""
    if text is None or text == "":
        return None
    if len(text) == 10:
        text += "T00:00:00Z"
    return int(parse_instant(text))


class Api:
    """The handlers and the parts they share."""

    def __init__(
        self, deck: Deck, views: Views, store: Store, tokens: TokenStore, produce: Produce
    ) -> None:
        self.deck, self.views, self.store, self.tokens = deck, views, store, tokens
        self.produce = produce
        self.locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # ------------------------------------------------------------ auth

    def grant(self, request: Request) -> Grant | Response:
        """The token's grant, or the 401 to answer (no token or an unknown one)."""
        header = request.headers.get("authorization")
        challenge = {"WWW-Authenticate": 'Bearer realm="rating-engine"'}
        if not header:
            return problem(401, "unauthorized", "a bearer token is required", headers=challenge)
        scheme, _, token = header.partition(" ")
        grant = self.tokens.verify(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            challenge["WWW-Authenticate"] += ', error="invalid_token"'
            return problem(401, "unauthorized", "the token is not valid", headers=challenge)
        return grant

    def for_tenant(self, request: Request) -> tuple[str, Grant] | Response:
        """The path's tenant and the grant, or the 401/403 to answer."""
        grant = self.grant(request)
        if isinstance(grant, Response):
            return grant
        tenant_id = request.path_params["tenant_id"]
        if not grant.may_act_for(tenant_id):
            return problem(403, "forbidden", "this token is for another tenant")
        return tenant_id, grant

    # ------------------------------------------------------------ reads

    async def health(self, request: Request) -> Response:
        return json_response(
            {
                "status": "ok" if self.views.ready.is_set() else "starting",
                "tenants": len(self.views.by_tenant),
                "charges_bad_records": self.store.bad_records,
            },
            headers=NO_STORE,
        )

    async def whoami(self, request: Request) -> Response:
        grant = self.grant(request)
        if isinstance(grant, Response):
            return grant
        return json_response(
            {"token_id": grant.token_id, "scope": grant.scope, "tenant_id": grant.tenant_id}
        )

    async def tenants(self, request: Request) -> Response:
        grant = self.grant(request)
        if isinstance(grant, Response):
            return grant
        if grant.scope != OPERATOR:
            return problem(403, "forbidden", "listing tenants needs the operator's token")
        return json_response({"tenants": sorted(self.views.by_tenant)}, headers=NO_STORE)

    async def account(self, request: Request) -> Response:
        who = self.for_tenant(request)
        if isinstance(who, Response):
            return who
        if not self.views.ready.is_set():
            return problem(
                503,
                "not_ready",
                "the account views are still being read",
                headers={"Retry-After": "1"},
            )
        view = self.views.get(who[0])
        if view is None:
            return problem(404, "not_found", "no account view for this tenant yet")
        return Response(view, headers=NO_STORE, media_type="application/json")

    def _period(self, request: Request) -> tuple[int | None, int | None] | Response:
        bounds = []
        for name in ("from", "to"):
            try:
                bounds.append(parse_bound(request.query_params.get(name)))
            except ValueError:
                return problem(400, f"bad_field:{name}", f"{name} is not a date or an instant")
        return bounds[0], bounds[1]

    def _tenant_period(self, request: Request) -> tuple[str, int | None, int | None] | Response:
        """The path's tenant (as the grant allows) and the query's period, or the problem."""
        who = self.for_tenant(request)
        if isinstance(who, Response):
            return who
        period = self._period(request)
        if isinstance(period, Response):
            return period
        return who[0], period[0], period[1]

    async def charges(self, request: Request) -> Response:
        asked = self._tenant_period(request)
        if isinstance(asked, Response):
            return asked
        tenant_id, from_us, to_us = asked
        q = request.query_params
        try:
            limit = int(q.get("limit", "50"))
            if not 1 <= limit <= 500:
                raise ValueError
        except ValueError:
            return problem(400, "bad_field:limit", "limit is a whole number from 1 to 500")
        try:
            items, cursor = self.store.charges(
                tenant_id, from_us, to_us, q.get("user"), limit, q.get("cursor")
            )
        except BadCursor:
            return problem(400, "bad_field:cursor", "not a cursor this API handed out")
        body = b'{"items":[' + b",".join(items) + b'],"next_cursor":' + orjson.dumps(cursor)
        return Response(body + b"}", headers=NO_STORE, media_type="application/json")

    async def users(self, request: Request) -> Response:
        who = self.for_tenant(request)
        if isinstance(who, Response):
            return who
        view = self.views.get(who[0])
        licensed = set(orjson.loads(view)["licensed_users"]) if view is not None else set()
        names = sorted(licensed | set(self.store.users(who[0])))
        return json_response(
            {"users": [{"user_id": u, "licensed": u in licensed} for u in names]},
            headers=NO_STORE,
        )

    async def report(self, request: Request) -> Response:
        asked = self._tenant_period(request)
        if isinstance(asked, Response):
            return asked
        tenant_id, from_us, to_us = asked
        records = self.store.all_charges(tenant_id, from_us, to_us)
        workbook = await asyncio.to_thread(_usage_workbook, tenant_id, records)
        return Response(
            workbook,
            headers={"Content-Disposition": _attachment(f"usage-{tenant_id}.xlsx"), **NO_STORE},
            media_type=XLSX,
        )

    # ------------------------------------------------------------ commands

    async def command(
        self, request: Request, kind: str, fixed: dict[str, Any] | None = None
    ) -> Response:
        """Judge the request's command in the core and produce it, once per Idempotency-Key."""
        who = self.for_tenant(request)
        if isinstance(who, Response):
            return who
        tenant_id = who[0]
        raw = await request.body()
        key = request.headers.get("idempotency-key")
        if key is None:
            return await self._decide(request, kind, tenant_id, key, raw, fixed)
        fingerprint = commands.fingerprint(request.method, request.url.path, raw)
        lock = self.locks.get((tenant_id, key))
        if lock is None:
            lock = self.locks[(tenant_id, key)] = asyncio.Lock()
        async with lock:
            prior = self.store.answer(tenant_id, key)
            if prior is not None:
                if prior.fingerprint != fingerprint:
                    return problem(
                        422,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used for another request",
                    )
                return Response(
                    prior.body,
                    prior.status,
                    headers={"Idempotent-Replayed": "true"},
                    media_type="application/json",
                )
            answer = await self._decide(request, kind, tenant_id, key, raw, fixed)
            if answer.status_code == 202:
                self.store.remember(tenant_id, key, Answer(fingerprint, 202, bytes(answer.body)))
            return answer

    async def _decide(
        self,
        request: Request,
        kind: str,
        tenant_id: str,
        key: str | None,
        raw: bytes,
        fixed: dict[str, Any] | None,
    ) -> Response:
        body = commands.read_body(raw)
        if isinstance(body, commands.Rejected):
            return problem(body.status, body.reason, "the body is not a JSON object")
        built = commands.build(self.deck, kind, tenant_id, key, body, fixed)
        if isinstance(built, commands.Rejected):
            return problem(built.status, built.reason, f"{kind} refused: {built.reason}")
        try:
            await self.produce(tenant_id, built.payload)
        except Exception as exc:
            log.warning("producing %s for %s failed: %s", kind, tenant_id, type(exc).__name__)
            return problem(503, "unavailable", "the broker did not take the command")
        ts = orjson.loads(built.payload)["ts"]
        return json_response(
            {
                "status": "accepted",
                "command_id": built.command_id,
                "tenant_id": tenant_id,
                "type": kind,
                "ts": ts,
            },
            202,
        )

    async def funds(self, request: Request) -> Response:
        return await self.command(request, "add_funds")

    async def auto_recharge(self, request: Request) -> Response:
        return await self.command(request, "set_auto_recharge")

    async def assign_licence(self, request: Request) -> Response:
        return await self.command(
            request, "assign_licence", {"user_id": request.path_params["user_id"]}
        )

    async def remove_licence(self, request: Request) -> Response:
        return await self.command(
            request, "remove_licence", {"user_id": request.path_params["user_id"]}
        )

    async def pool(self, request: Request) -> Response:
        plan = request.path_params["plan"]
        fixed: dict[str, Any] = {"plan": plan}
        if plan == "conferencing":
            fixed["country"] = None
        return await self.command(request, "set_pool", fixed)

    # ------------------------------------------------------------ documents

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type="application/json")

    _openapi = document_bytes()

    async def console(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=CONSOLE_HEADERS)


def _attachment(name: str) -> str:
    """A Content-Disposition for any tenant id (RFC 6266: an ASCII name, and the exact one
    percent-encoded)."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def _usage_workbook(tenant_id: str, records: list[bytes]) -> bytes:
    """`rating-engine report` over the tenant's charges: its usage.xlsx."""
    from ..report import main as report_main

    with tempfile.TemporaryDirectory(prefix="rating-engine-api-report-") as tmp:
        src = Path(tmp) / "charges.jsonl"
        src.write_bytes(b"".join(r + b"\n" for r in records))
        out = Path(tmp) / "out"
        status = report_main([str(src), "--out", str(out), "--tenant", tenant_id])
        if status != 0:
            raise RuntimeError(f"the usage report failed with status {status}")
        return (out / "usage.xlsx").read_bytes()


async def _not_found(request: Request, exc: Exception) -> Response:
    return problem(404, "not_found", "no such resource", instance=request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return problem(405, "method_not_allowed", instance=request.url.path)
    return problem(status, "not_found" if status == 404 else "error", instance=request.url.path)


def create_app(
    deck: Deck,
    views: Views,
    store: Store,
    tokens: TokenStore,
    produce: Produce,
    lifespan: Any = None,
) -> Starlette:
    """The API and console app over these parts."""
    api = Api(deck, views, store, tokens, produce)
    tenant = "/v1/tenants/{tenant_id:str}"
    routes = [
        Route("/", api.console, methods=["GET"], include_in_schema=False),
        Mount("/console", StaticFiles(directory=STATIC), name="console"),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/v1/health", api.health, methods=["GET"]),
        Route("/v1/whoami", api.whoami, methods=["GET"]),
        Route("/v1/tenants", api.tenants, methods=["GET"]),
        Route(tenant + "/account", api.account, methods=["GET"]),
        Route(tenant + "/charges", api.charges, methods=["GET"]),
        Route(tenant + "/users", api.users, methods=["GET"]),
        Route(tenant + "/report.xlsx", api.report, methods=["GET"]),
        Route(tenant + "/funds", api.funds, methods=["POST"]),
        Route(tenant + "/auto-recharge", api.auto_recharge, methods=["PUT"]),
        Route(tenant + "/licences/{user_id:str}", api.assign_licence, methods=["PUT"]),
        Route(tenant + "/licences/{user_id:str}", api.remove_licence, methods=["DELETE"]),
        Route(tenant + "/pools/{plan:str}", api.pool, methods=["PUT"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _not_found, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.api = api
    return app
