"""The account API app over in-memory parts, for the HTTP tests (no broker).

`ApiHarness` builds the same Starlette app `rating-engine api` serves, with the views put in
by hand (as the account-views topic would), charges added to an in-memory SQLite store (as
from the charges topic), and a producer that records what would go to `accounts`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from rating_engine import core
from rating_engine.api.app import create_app
from rating_engine.api.broker import Views
from rating_engine.api.store import Store
from rating_engine.api.tokens import OPERATOR, TENANT, TokenStore

from .tenant_support import T, add_funds, assign_licence, call_end, call_start, set_pool, to_line


def view_of(deck: core.Deck, events: list[Any], tenant: str) -> bytes:
    """The account view the worker would publish for `tenant` after `events`."""
    engine = core.Engine(deck)
    for line, event in enumerate(events, 1):
        engine.feed(to_line(event), line)
    state = engine.tenant_state(tenant)
    assert state is not None
    return core.account_view(state, deck.currency)


def charge(tenant: str, call: str, start: str, user: str | None = "ann", **kw: Any) -> bytes:
    """A charges record as the worker publishes it (only the members the API reads matter)."""
    rec = {
        "charge_id": f"{tenant}:{call}",
        "call_id": call,
        "tenant_id": tenant,
        "user_id": user,
        "kind": "user_outbound",
        "start": start,
        "end": start,
        "status": "rated",
        "reason": None,
        "destination": "United States",
        "billed_seconds": 60,
        "charge": "0.0600",
        "currency": "USD",
        "pool": None,
        "pool_seconds": 0,
        "disconnected": None,
        **kw,
    }
    return orjson.dumps(rec)


ACME_EVENTS = [
    set_pool("p1", T(0), "domestic", "US", 10, tenant="acme"),
    add_funds("f1", T(0), "5.00", tenant="acme"),
    assign_licence("l1", T(0), "ann", tenant="acme"),
    call_start("c1", T(10), tenant="acme"),
    call_end("c1", T(70), tenant="acme"),
]


class ApiHarness:
    """The app, its parts and a token per role."""

    def __init__(self, deck: core.Deck, tmp: Path) -> None:
        self.deck = deck
        self.views = Views(deck.currency)
        self.views.ready.set()
        self.store = Store(":memory:")
        self.tokens = TokenStore(tmp / "tokens.json")
        self.produced: list[tuple[str, bytes]] = []
        self.fail_produce = False
        self.operator = self.tokens.add(OPERATOR)
        self.acme = self.tokens.add(TENANT, "acme")
        self.globex = self.tokens.add(TENANT, "globex")
        self.app = create_app(deck, self.views, self.store, self.tokens, self._produce)
        self.views.put("acme", view_of(deck, ACME_EVENTS, "acme"))
        self.store.add_charges(
            "charges",
            [
                (0, 0, charge("acme", "c1", "2026-11-24T10:00:10.000Z")),
                (0, 1, charge("acme", "c2", "2026-11-25T09:00:00.000Z", user="bob")),
                (1, 0, charge("acme", "c3", "2026-12-01T00:00:00.000Z")),
                (1, 1, charge("globex", "g1", "2026-11-24T10:00:00.000Z", user="gus")),
                (1, 2, b"not a charge"),
            ],
        )

    async def _produce(self, tenant_id: str, payload: bytes) -> None:
        if self.fail_produce:
            raise ConnectionError("broker down")
        self.produced.append((tenant_id, payload))

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


class ApiProcess:
    """`rating-engine api` as a child process on the test broker, as the `admin` role."""

    def __init__(self, prefix: str, tmp: Path, deck: Path) -> None:
        from .kafka_support import free_port

        self.prefix, self.tmp, self.deck = prefix, tmp, deck
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens = tmp / "tokens.json"
        self.log_path = tmp / "api.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def token(self, *who: str) -> str:
        """`rating-engine api token add` (its stdout is the token)."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "rating_engine.cli",
                "api",
                "token",
                "add",
                "--tokens",
                str(self.tokens),
                *who,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    def start(self, timeout_s: float = 60) -> None:
        from .kafka_support import REPO, connection_flags

        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rating_engine.cli",
                "api",
                "--rates",
                str(self.deck),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--tokens",
                str(self.tokens),
                "--store",
                str(self.tmp / "store.sqlite"),
                "--topic-prefix",
                self.prefix,
                *connection_flags("admin"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the API exited:\n" + self.log_tail()
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=2) as resp:
                    if orjson.loads(resp.read())["status"] == "ok":
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the API did not come up:\n" + self.log_tail())

    def call(
        self, method: str, path: str, token: str, body: Any = None, key: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Authorization": f"Bearer {token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        data = None if body is None else orjson.dumps(body)
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
