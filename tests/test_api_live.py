"""The account API and console on the real broker with the real worker (`rating-engine
worker` and `rating-engine api` as child processes on deploy/kafka/broker.sh's broker, each
through its own role: the worker as `worker`, the API as `admin`, the test's calls as
`switch`): commands sent over HTTP reach the worker once and come back in the account view,
charges are materialized from the charges topic, the console works in headless Chromium,
and the account views the worker publishes after the demo traffic are the views of the
states `simulate` ends with.

The demo traffic (rates/demo-events.jsonl, 46 s in real time) is replayed from the start of
the module while the other tests run on tenants of their own, so the module takes about
a minute whatever the order of its tests."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, TypeVar

import orjson
import pytest

from rating_engine import core
from rating_engine.core import US_PER_S, format_instant
from rating_engine.stream.connection import KafkaSettings
from rating_engine.stream.kafkaio import produce_lines, shift_times, wait_ready

from .api_support import ApiProcess
from .kafka_support import BROKER, REPO, WorkerProcess, now_us, settings, unique_prefix
from .test_report_browser import _chromium

pytestmark = pytest.mark.kafka

DECK = REPO / "rates" / "sample-deck.csv"
DEMO = REPO / "rates" / "demo-events.jsonl"
BROWSER_DIR = REPO / "tests" / "browser"
PARTITIONS = 4  # WorkerProcess creates every topic with 4
# colours of console.css: a pool's bar, the buttons
POOL_GREEN = (0x4F, 0x9A, 0x6B)
BUTTON_BLUE = (0x3B, 0x6E, 0xA5)

T = TypeVar("T")


class Live:
    """The worker, the API and the demo replay of one topic prefix."""

    def __init__(self, tmp: Path) -> None:
        self.prefix = unique_prefix("api")
        self.worker = WorkerProcess(self.prefix, tmp / "worker", deck=DECK)
        self.api = ApiProcess(self.prefix, tmp, DECK)
        self.demo_lines: list[bytes] = []
        self.demo: threading.Thread | None = None
        self.demo_error: BaseException | None = None
        self.operator = self.tenant = self.web = ""

    def replay_demo(self) -> None:
        """The demo traffic at the wall time of its `ts`, shifted to start now, on a thread
        (it acts for switches and admins at once: the `operator`'s identity)."""
        start_us = (now_us() + 2 * US_PER_S) // 1000 * 1000
        self.demo_lines = shift_times(DEMO.read_bytes().splitlines(), start_us)

        def run() -> None:
            try:
                asyncio.run(produce_lines(BROKER, self.prefix, self.demo_lines, paced=True))
            except BaseException as exc:  # reported by the test that waits for it
                self.demo_error = exc

        self.demo = threading.Thread(target=run, name="demo-replay", daemon=True)
        self.demo.start()

    def view(self, tenant: str, token: str) -> dict[str, Any] | None:
        status, _, body = self.api.call("GET", f"/v1/tenants/{tenant}/account", token)
        return orjson.loads(body) if status == 200 else None

    def call(self, call_id: str, tenant: str, user: str, to: str, seconds: int) -> None:
        """One call of `seconds`, starting now, as a switch sends it: at the wall time of each
        event's `ts` (an event behind the tenant's clock is applied at that clock, so a call
        sent after its end would last nothing) and as the `switch` role, which writes `calls`."""
        start_us = (now_us() + US_PER_S // 2) // 1000 * 1000
        events = [
            {
                "type": "call_start",
                "call_id": call_id,
                "tenant_id": tenant,
                "user_id": user,
                "kind": "user_outbound",
                "from": "+442071234567",
                "to": to,
                "usage_location": "GB",
                "switch_id": "sw-api",
                "ts": format_instant(start_us),
            },
            {
                "type": "call_end",
                "call_id": call_id,
                "tenant_id": tenant,
                "ts": format_instant(start_us + seconds * US_PER_S),
            },
        ]
        lines = [orjson.dumps(e) for e in events]
        asyncio.run(produce_lines(settings("switch"), self.prefix, lines, paced=True))


@pytest.fixture(scope="module")
def live(kafka_broker, tmp_path_factory):
    live = Live(tmp_path_factory.mktemp("api-live"))
    live.worker.start()
    try:
        asyncio.run(wait_ready(BROKER, live.prefix, timeout_s=180))
    except TimeoutError:
        pytest.fail("worker did not become ready:\n" + live.worker.log_tail())
    live.replay_demo()
    live.operator = live.api.token("--operator")
    live.tenant = live.api.token("--tenant", "t-api")
    live.web = live.api.token("--tenant", "web")
    try:
        live.api.start()
        yield live
    finally:
        live.api.stop()
        if live.worker.alive():
            live.worker.terminate()


def _read_topic(
    who: KafkaSettings, prefix: str, name: str
) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed record of `<prefix><name>` up to its current end: (key, value)."""

    async def read() -> list[tuple[bytes | None, bytes | None]]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            **who.aiokafka(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(prefix + name, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            got: list[tuple[bytes | None, bytes | None]] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                positions = [await consumer.position(tp) for tp in tps]
                if all(at >= ends[tp] for at, tp in zip(positions, tps, strict=True)):
                    return got
                for msgs in (await consumer.getmany(timeout_ms=500)).values():
                    got += [(m.key, m.value) for m in msgs]
            raise TimeoutError(f"{prefix}{name} was not read to its end in 30 s")
        finally:
            await consumer.stop()

    return asyncio.run(read())


def _wait_for(predicate: Callable[[], T], timeout_s: float = 30.0, what: str = "it") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_funds_posted_to_the_api_are_applied_once_and_show_in_the_view(live):
    body = {"amount": "5.00", "currency": "USD"}
    first = live.api.call("POST", "/v1/tenants/t-api/funds", live.tenant, body, key="f-1")
    assert first[0] == 202, first
    assert orjson.loads(first[2])["command_id"] == "f-1"
    again = live.api.call("POST", "/v1/tenants/t-api/funds", live.tenant, body, key="f-1")
    assert again[0] == 202 and again[2] == first[2]
    refused = live.api.call(
        "POST", "/v1/tenants/t-api/funds", live.tenant, {"amount": 1.5, "currency": "USD"}, "f-x"
    )
    assert refused[0] == 422 and orjson.loads(refused[2])["reason"] == "bad_field:amount"
    other = live.api.call("POST", "/v1/tenants/web/funds", live.tenant, body, key="f-2")
    assert other[0] == 403

    view = _wait_for(
        lambda: (v := live.view("t-api", live.tenant)) and v["balance"] == "5.0000" and v,
        what="the worker's view of t-api with the funds",
    )
    assert [lot["lot_id"] for lot in view["lots"]] == ["f-1"]
    assert (view["tenant_id"], view["currency"]) == ("t-api", "USD")
    # the key sent twice and the refused body gave one command on `accounts`, nothing else
    commands = [
        orjson.loads(v)
        for k, v in _read_topic(settings("operator"), live.prefix, "accounts")
        if k == b"t-api" and v is not None
    ]
    assert [(c["type"], c["command_id"]) for c in commands] == [("add_funds", "f-1")]


def test_charges_of_a_call_are_served_from_the_charges_topic(live):
    for method, path, body, key in [
        ("POST", "/v1/tenants/t-calls/funds", {"amount": "1.00", "currency": "USD"}, "c-f"),
        ("PUT", "/v1/tenants/t-calls/licences/ann", None, "c-l"),
    ]:
        assert live.api.call(method, path, live.operator, body, key=key)[0] == 202
    _wait_for(
        lambda: (v := live.view("t-calls", live.operator)) and v["licensed_users"] == ["ann"],
        what="the funds and the licence in the view",
    )
    live.call("api-c1", "t-calls", "ann", "+12065550123", seconds=5)

    def page() -> list[dict[str, Any]]:
        status, _, body = live.api.call(
            "GET", "/v1/tenants/t-calls/charges?user=ann&from=2000-01-01", live.operator
        )
        return orjson.loads(body)["items"] if status == 200 else []

    (charge,) = _wait_for(page, what="the charge in the API's store")
    assert (charge["charge_id"], charge["call_id"], charge["user_id"]) == (
        "t-calls:api-c1",
        "api-c1",
        "ann",
    )
    assert charge["status"] == "rated" and charge["disconnected"] is None, charge
    assert charge["billed_seconds"] > 0 and Decimal(charge["charge"]) > 0, charge
    status, _, body = live.api.call("GET", "/v1/tenants/t-calls/charges?user=bob", live.operator)
    assert (status, orjson.loads(body)["items"]) == (200, [])
    status, _, _ = live.api.call("GET", "/v1/tenants/t-calls/charges", live.tenant)
    assert status == 403


def _node_and_playwright() -> str:
    """node and tests/browser's playwright-core (deploy/test.sh runs `npm ci` there)."""
    missing = []
    node = shutil.which("node")
    if node is None:
        missing.append("node")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        missing.append("tests/browser/node_modules (npm ci in tests/browser)")
    if missing:
        if os.environ.get("CI"):
            pytest.fail("missing for the console's browser test: " + ", ".join(missing))
        pytest.skip("missing: " + ", ".join(missing))
    assert node is not None
    return node


@pytest.mark.browser
def test_the_console_signs_in_adds_funds_and_sees_the_worker_apply_them(live, tmp_path):
    chromium = _chromium()
    node = _node_and_playwright()
    for key, method, path, body in [
        ("w-f", "POST", "/v1/tenants/web/funds", {"amount": "10", "currency": "USD"}),
        ("w-p", "PUT", "/v1/tenants/web/pools/domestic", {"country": "GB", "minutes": 1}),
        ("w-l", "PUT", "/v1/tenants/web/licences/ann@web.example", None),
    ]:
        assert live.api.call(method, path, live.web, body, key=key)[0] == 202
    _wait_for(
        lambda: (v := live.view("web", live.web)) and v["pools"] and v["licensed_users"],
        what="the web tenant's set-up in its view",
    )
    live.call("w-c1", "web", "ann@web.example", "+442079460000", seconds=6)  # 10 % of the pool
    _wait_for(
        lambda: orjson.loads(live.api.call("GET", "/v1/tenants/web/charges", live.web)[2])["items"],
        what="the web tenant's charge",
    )
    done = subprocess.run(
        [
            node,
            str(BROWSER_DIR / "console.mjs"),
            live.api.url + "/",
            live.web,
            "2.50",
            "bob@web.example",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BROWSER_DIR,
        env={**os.environ, "HOME": str(tmp_path), "CHROMIUM": chromium},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "failure" not in result, (result["steps"], result["failure"])
    assert result["errors"] == [] and result["external"] == []
    assert result["who"] == "tenant web"
    assert Decimal(result["after"]) == Decimal(result["before"]) + Decimal("2.50")
    assert result["applied"] == f"Applied: the balance is now {result['after']}."
    assert "bob@web.example" in result["licensed"]
    assert result["charges"] >= 1 and result["pools"] == 1 and result["lots"] == 2

    import openpyxl
    from PIL import Image

    book = openpyxl.load_workbook(result["download"], read_only=True)
    assert any(ws.max_row and ws.max_row > 1 for ws in book.worksheets)
    with Image.open(result["screenshot"]) as img:
        assert img.width == 1280 and img.height >= 1000  # the viewport, or the whole page
        raw = img.convert("RGB").tobytes()
    pixels = set(zip(raw[0::3], raw[1::3], raw[2::3], strict=True))
    assert len(pixels) > 50, "the screenshot looks blank"
    for colour in (POOL_GREEN, BUTTON_BLUE):  # the pool's bar and the buttons were drawn
        assert any(all(abs(a - b) <= 3 for a, b in zip(colour, px, strict=True)) for px in pixels)


def _latest_views(prefix: str, tenants: set[str]) -> dict[str, dict[str, Any]]:
    """The last view of each of `tenants` on the compacted topic (read as the API's role)."""
    latest: dict[str, dict[str, Any]] = {}
    for key, value in _read_topic(settings("admin"), prefix, "account-views"):
        if key is not None and value is not None and key.decode() in tenants:
            latest[key.decode()] = orjson.loads(value)
    return latest


def test_the_views_after_the_demo_traffic_are_those_of_the_states_simulate_ends_with(live):
    assert live.demo is not None
    live.demo.join(120)
    assert not live.demo.is_alive() and live.demo_error is None, live.demo_error
    deck = core.load_deck(str(DECK))
    engine = core.Engine(deck)
    for line, raw in enumerate(live.demo_lines, 1):
        engine.feed(raw, line)
    engine.finish()
    expected = {
        tid: orjson.loads(core.account_view(engine.tenant_state(tid), deck.currency))
        for tid in engine.tenant_ids()
    }
    assert set(expected) == {"contoso", "fabrikam"}
    tenants = set(expected)
    try:
        _wait_for(lambda: _latest_views(live.prefix, tenants) == expected, 20, "the demo's views")
    except AssertionError:
        assert _latest_views(live.prefix, tenants) == expected  # shows the difference
    for tid, view in expected.items():
        assert live.view(tid, live.operator) == view
