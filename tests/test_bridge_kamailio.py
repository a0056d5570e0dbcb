"""A real switch cuts the call: sipp UAC → Kamailio (deploy/kamailio) → sipp UAS, the bridge,
the real broker and `rating-engine worker`, on the test deck (rates/test-deck.csv).

Times come from the two ends' sipp traces (the wall clock, to the microsecond) and from the
records on the broker; a call's instants are the proxy's clock (same host). The first tests
need no proxy: the bridge's binrpc and evapi codecs, and the SIP → `calls` records.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from rating_engine.bridge import binrpc
from rating_engine.bridge.events import (
    CallEvent,
    Handle,
    Netstrings,
    Unreadable,
    dialogs_of,
    from_proxy,
    instant_of,
    missed_of,
)
from rating_engine.bridge.kamailio import reason_header
from rating_engine.bridge.sipcalls import Call, Uac, Uas
from rating_engine.core import US_PER_S, format_instant, parse_instant
from rating_engine.stream.kafkaio import collect, produce_lines, wait_ready

from .kafka_support import BROKER, REPO, WorkerProcess, free_port, now_us, unique_prefix

KAMAILIO_SH = REPO / "deploy" / "kamailio" / "kamailio.sh"
SWITCH = "sw-test"
CALLER = "+14255550100"
NIGERIA = "2348031234567"  # 0.180000/min, 1/1: 0.0030 a second
US = "12125550100"  # 0.006000/min, 1/1: 0.0001 a second
PREMIUM = "19005550100"  # 1.200000/min + 0.05 fee: 0.07 for its first second
CUT_WITHIN_US = 100_000  # the target: BYE to both ends within 100 ms of the disconnect's at
PROMPT_US = 250_000  # refusals and the restarted bridge, on a loaded 2-core machine


# ---------------------------------------------------------------- without a proxy


def test_binrpc_requests_are_encoded_as_kamcmd_sends_them():
    packet = binrpc.encode_request("dlg.end_dlg", (1345, 1117), cookie=7)
    header = binrpc.decode_header(packet)
    assert header is not None and header.kind == binrpc.REQUEST and header.cookie == 7
    body = packet[header.size :]
    assert len(body) == header.body_len
    assert binrpc.decode_body(body) == ["dlg.end_dlg", 1345, 1117]


def test_binrpc_replies_decode_structs_nested_structs_and_arrays_in_structs():
    def rec(kind: int, payload: bytes) -> bytes:
        return binrpc._record(kind, payload)

    def s(text: str) -> bytes:
        return text.encode() + b"\x00"

    struct = (
        bytes([binrpc.T_STRUCT])
        + rec(binrpc.T_AVP, s("h_entry"))
        + rec(binrpc.T_INT, (670).to_bytes(2, "big"))
        + rec(binrpc.T_AVP, s("call-id"))
        + rec(binrpc.T_STR, s("1-7730@127.0.0.1"))
        + rec(binrpc.T_AVP, s("variables"))
        + bytes([binrpc.T_STRUCT])  # an array inside a struct travels as a struct
        + bytes([binrpc.T_STRUCT])
        + rec(binrpc.T_AVP, s("re_ts"))
        + rec(binrpc.T_STR, s("1796626377.574610"))
        + bytes([0x80 | binrpc.T_STRUCT])
        + bytes([0x80 | binrpc.T_STRUCT])
        + bytes([0x80 | binrpc.T_STRUCT])
    )
    assert binrpc.decode_body(struct) == [
        {
            "h_entry": 670,
            "call-id": "1-7730@127.0.0.1",
            "variables": [{"re_ts": "1796626377.574610"}],
        }
    ]


def test_binrpc_refuses_a_truncated_reply_instead_of_guessing():
    with pytest.raises(binrpc.RpcError):
        binrpc.decode_body(bytes([0x91, 13]) + b"short")  # a 13-byte string with 5 bytes left
    with pytest.raises(binrpc.RpcError):
        binrpc.decode_body(bytes([binrpc.T_STRUCT]) + binrpc._record(binrpc.T_AVP, b"x\x00"))


def test_evapi_netstrings_split_across_reads_come_out_whole():
    frames = Netstrings()
    assert frames.feed(b"5:hel") == []
    assert frames.feed(b"lo,3:abc,2") == [b"hello", b"abc"]
    assert frames.feed(b":xy,") == [b"xy"]
    with pytest.raises(ValueError):
        Netstrings().feed(b"3:abcd")


def test_the_proxys_clock_becomes_the_contracts_instant_floored_to_the_millisecond():
    assert instant_of("1796626377.574610") == format_instant(1796626377_574610)
    assert instant_of("1796626377.574610").endswith(".574Z")
    assert instant_of("1796626377") == format_instant(1796626377_000000)
    assert instant_of("soon") is None and instant_of(17) is None


def test_a_proxy_event_becomes_a_calls_record_in_the_contracts_field_order():
    raw = orjson.dumps(
        {
            "call_id": "c1",
            "tenant_id": "acme.example",
            "user_id": "ann",
            "kind": "user_outbound",
            "from": "+14255550100",
            "to": "+442071234567",
            "usage_location": "US",
            "event": "call_start",
            "ts": "1796626377.574610",
            "h_entry": 1,
            "h_id": 2,
        }
    )
    ev = from_proxy(raw, "sw1")
    assert isinstance(ev, CallEvent) and ev.handle == Handle(1, 2) and ev.key == b"acme.example"
    rec = orjson.loads(ev.value)
    assert list(rec) == [
        "type",
        "call_id",
        "tenant_id",
        "user_id",
        "kind",
        "from",
        "to",
        "usage_location",
        "switch_id",
        "ts",
    ]
    assert rec["switch_id"] == "sw1" and rec["ts"] == instant_of("1796626377.574610")
    end = from_proxy(
        b'{"event":"call_end","call_id":"c1","tenant_id":"acme.example","ts":"1796626380.1"}',
        "sw1",
    )
    assert isinstance(end, CallEvent)
    assert orjson.loads(end.value) == {
        "type": "call_end",
        "call_id": "c1",
        "tenant_id": "acme.example",
        "ts": format_instant(1796626380_100000),
    }


def test_an_unreadable_proxy_message_is_passed_on_for_the_engine_to_dead_letter():
    for raw, reason, key in (
        (b"{broken", "invalid_json", None),
        (b"[1]", "not_an_object", None),
        (b'{"event":"call_start","tenant_id":"t1","ts":"1.0"}', "missing_field", b"t1"),
        (b'{"event":"reinvite","tenant_id":"t1"}', "unknown_event", b"t1"),
    ):
        out = from_proxy(raw, "sw1")
        assert isinstance(out, Unreadable) and out.value == raw
        assert (out.reason, out.key) == (reason, key)


def test_live_dialogs_and_missed_events_are_read_from_the_proxys_replies():
    call = {"call_id": "c9", "tenant_id": "t9", "user_id": "u", "kind": "user_outbound"}
    reply = [
        {
            "h_entry": 5,
            "h_id": 6,
            "call-id": "c9",
            "state": 4,
            "variables": [{"re_ts": "1796626377.5"}, {"re_call": orjson.dumps(call).decode()}],
        },
        {"h_entry": 7, "h_id": 8, "call-id": "early", "state": 2, "variables": []},
    ]
    (d,) = dialogs_of(reply, "sw1")
    assert d.handle == Handle(5, 6) and d.start is not None
    assert orjson.loads(d.start.value)["ts"] == instant_of("1796626377.5")
    dump = [
        {"entry": 3, "slot": [{"name": "10", "value": "b"}, {"name": "9", "value": "a"}]},
        {"entry": 1, "slot": [{"name": "11", "value": "c"}]},
    ]
    assert missed_of(dump) == [("9", b"a"), ("10", b"b"), ("11", b"c")]


def test_the_bye_names_the_engines_reason_and_nothing_else():
    assert reason_header("funds_exhausted") == 'Reason: Q.850;cause=16;text="funds_exhausted"\r\n'
    assert 'text="rating"' in reason_header('x"\r\nEvil: 1')


# ---------------------------------------------------------------- the real switch


@dataclass
class Proxy:
    sip: str
    evapi: str
    ctl: str
    env: dict[str, str]


def kamailio_sh(env: dict[str, str], *args: str, timeout: float = 900) -> None:
    done = subprocess.run(["bash", str(KAMAILIO_SH), *args], env=env, timeout=timeout)
    if done.returncode != 0:
        pytest.fail(f"deploy/kamailio/kamailio.sh {' '.join(args)} failed")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """The PSTN side: a sipp UAS."""
    kamailio_sh(dict(os.environ), "install")  # Debian's kamailio and sip-tester, when missing
    uas = Uas(tmp_path_factory.mktemp("gateway"), free_port())
    uas.start()
    yield uas
    uas.stop()


@pytest.fixture(scope="module")
def proxy(gateway, tmp_path_factory):
    """Kamailio with the project's config, on its own ports, relaying to the gateway."""
    home = tmp_path_factory.mktemp("kamailio")
    proxy = Proxy(
        sip=f"127.0.0.1:{free_port()}",
        evapi=f"127.0.0.1:{free_port()}",
        ctl=f"unix:{home}/ctl.sock",
        env={
            **os.environ,
            "RATING_ENGINE_KAMAILIO_DIR": str(home),
            "RATING_ENGINE_KAMAILIO_SIP": "",
            "RATING_ENGINE_KAMAILIO_EVAPI": "",
            "RATING_ENGINE_KAMAILIO_CTL": f"{home}/ctl.sock",
        },
    )
    proxy.env["RATING_ENGINE_KAMAILIO_SIP"] = proxy.sip
    proxy.env["RATING_ENGINE_KAMAILIO_EVAPI"] = proxy.evapi
    kamailio_sh(proxy.env, "start", "--gateway", f"127.0.0.1:{gateway.port}", timeout=120)
    yield proxy
    kamailio_sh(proxy.env, "stop", timeout=60)


@pytest.fixture(scope="module")
def worker(kafka_broker, tmp_path_factory):
    worker = WorkerProcess(unique_prefix("sip"), tmp_path_factory.mktemp("worker-sip"))
    worker.start()
    try:
        asyncio.run(wait_ready(BROKER, worker.prefix, timeout_s=180))
    except TimeoutError:
        pytest.fail("worker did not become ready:\n" + worker.log_tail())
    yield worker
    if worker.alive():
        worker.terminate()


class BridgeProcess:
    """`rating-engine bridge kamailio` as a child process, killed or stopped by the test."""

    def __init__(self, proxy: Proxy, prefix: str, log_path: Path) -> None:
        self.proxy, self.prefix, self.log_path = proxy, prefix, log_path
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rating_engine.cli",
                "bridge",
                "kamailio",
                "--evapi",
                self.proxy.evapi,
                "--ctl",
                self.proxy.ctl,
                "--switch-id",
                SWITCH,
                "--broker",
                BROKER,
                "--topic-prefix",
                self.prefix,
                "--metrics-port",
                str(self.metrics_port),
            ],
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.wait_ready()

    def metric(self, name: str) -> float | None:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics").read()
        except OSError:
            return None
        for line in text.decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log_tail()
            if self.metric("rating_engine_bridge_ready") == 1.0:
                return
            time.sleep(0.1)
        pytest.fail("bridge not ready:\n" + self.log_tail())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(30)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@pytest.fixture(scope="module")
def bridge(proxy, worker, tmp_path_factory):
    bridge = BridgeProcess(proxy, worker.prefix, tmp_path_factory.mktemp("bridge") / "bridge.log")
    bridge.start()
    yield bridge
    if bridge.proc is not None and bridge.proc.poll() is None:
        assert bridge.terminate() == 0, bridge.log_tail()


@pytest.fixture
def calls_dir(tmp_path) -> Path:
    return tmp_path


def fund(prefix: str, tenant: str, amount: str | None, users: tuple[str, ...] = ("ann",)) -> None:
    """The tenant's funds and licences (accounts commands), on the broker before its calls."""
    ts = format_instant(now_us())
    cmds: list[dict[str, Any]] = []
    if amount is not None:
        cmds.append(
            {
                "type": "add_funds",
                "tenant_id": tenant,
                "command_id": f"{tenant}-funds",
                "ts": ts,
                "amount": amount,
                "currency": "USD",
            }
        )
    for user in users:
        cmds.append(
            {
                "type": "assign_licence",
                "tenant_id": tenant,
                "command_id": f"{tenant}-licence-{user}",
                "ts": ts,
                "user_id": user,
            }
        )
    asyncio.run(produce_lines(BROKER, prefix, [orjson.dumps(c) for c in cmds]))


def records(prefix: str, call_ids: set[str], want: int, max_s: float = 30) -> dict[str, list]:
    """The `disconnects` and `charges` records of these calls, once `want` of them are there."""
    deadline = time.monotonic() + max_s
    while True:
        got = asyncio.run(collect(BROKER, prefix, idle_s=0.5, max_s=5))
        out: dict[str, list] = {"disconnects": [], "charges": []}
        for topic, rec, _ in got:
            if topic in out and rec.get("call_id") in call_ids:
                out[topic].append(rec)
        if sum(map(len, out.values())) >= want or time.monotonic() > deadline:
            return out
        time.sleep(0.5)


def by_call(recs: list[dict]) -> dict[str, dict]:
    return {r["call_id"]: r for r in recs}


def us(instant: str) -> int:
    return int(parse_instant(instant))


def ms(x_us: int) -> str:
    return f"{x_us / 1000:.1f} ms"


@pytest.mark.kafka
def test_a_call_out_of_funds_is_cut_by_bye_to_both_ends_within_100ms_of_its_at(
    worker, proxy, gateway, bridge, calls_dir
):
    tenant = "cut.example"
    fund(worker.prefix, tenant, "0.05")  # 16 s to Nigeria at 0.0030/s; the 17th can't be paid
    uac = Uac(calls_dir, "cut", proxy.sip, [Call(NIGERIA, "ann", tenant, CALLER)], hold_s=40)
    uac.start()
    (call_id,) = uac.call_ids()
    assert uac.wait(90) == 0
    recs = records(worker.prefix, {call_id}, want=2)
    (cut,) = recs["disconnects"]
    (charge,) = recs["charges"]
    assert (cut["reason"], cut["switch_id"], cut["tenant_id"]) == (
        "funds_exhausted",
        SWITCH,
        tenant,
    )
    at = us(cut["at"])
    assert at - us(charge["start"]) == 16 * US_PER_S
    assert (charge["charge"], charge["disconnected"], charge["end"]) == (
        "0.0480",
        "funds_exhausted",
        cut["at"],
    )
    caller_bye, gateway_bye = uac.byes().get(call_id), gateway.byes().get(call_id)
    assert caller_bye is not None and gateway_bye is not None, "BYE must reach both ends"
    assert call_id not in uac.hangups(), "the caller did not hang up: the proxy cut the call"
    for end, bye in (("caller", caller_bye), ("gateway", gateway_bye)):
        assert 0 <= bye - at <= CUT_WITHIN_US, f"BYE at the {end} {ms(bye - at)} after its at"
    assert (bridge.metric("rating_engine_bridge_disconnect_lateness_seconds_count") or 0) >= 1


@pytest.mark.kafka
def test_a_call_that_ends_normally_is_charged_once_with_its_sip_duration(
    worker, proxy, gateway, bridge, calls_dir
):
    tenant = "normal.example"
    fund(worker.prefix, tenant, "1.00")
    uac = Uac(calls_dir, "normal", proxy.sip, [Call(US, "ann", tenant, CALLER)], hold_s=3.2)
    uac.start()
    (call_id,) = uac.call_ids()
    assert uac.wait(60) == 0
    records(worker.prefix, {call_id}, want=1)
    time.sleep(1.0)  # a second charge or a disconnect would be there by now
    recs = records(worker.prefix, {call_id}, want=1)
    assert recs["disconnects"] == []
    (charge,) = recs["charges"]  # once
    sip_s = (uac.hangups()[call_id] - uac.answers()[call_id]) / US_PER_S
    duration = Decimal(str(charge["duration_seconds"]))
    assert abs(duration - Decimal(str(sip_s))) < Decimal("0.020"), (duration, sip_s)
    billed = int(duration.to_integral_value(ROUND_CEILING))
    assert charge["billed_seconds"] == billed
    assert charge["charge"] == f"{Decimal(billed) * Decimal('0.0001'):.4f}"
    assert charge["disconnected"] is None and charge["reason"] is None


@pytest.mark.kafka
def test_a_refused_call_is_cut_right_after_answer(worker, proxy, gateway, bridge, calls_dir):
    tenant = "refused.example"
    fund(worker.prefix, tenant, "0.05", users=("ann",))
    calls = [
        Call(US, "bob", tenant, "+14255550101"),  # bob holds no licence: not_licensed
        Call(PREMIUM, "ann", tenant, CALLER),  # 0.07 for the first second: no_funds
        Call(US, "ann", tenant, "anonymous"),  # no number to rate: bad_number
    ]
    uac = Uac(calls_dir, "refused", proxy.sip, calls, hold_s=20, rate=20)
    uac.start()
    ids = uac.call_ids()
    assert uac.wait(60) == 0
    recs = records(worker.prefix, set(ids), want=6)
    cuts, charges = by_call(recs["disconnects"]), by_call(recs["charges"])
    expected = dict(zip(ids, ("not_licensed", "no_funds", "bad_number")))
    assert {c: r["reason"] for c, r in cuts.items()} == expected
    answered = uac.answers()
    for call_id, reason in expected.items():
        assert charges[call_id]["disconnected"] == reason and charges[call_id]["charge"] == "0.0000"
        at = us(cuts[call_id]["at"])
        assert at == us(charges[call_id]["start"])  # refused at its call_start
        assert abs(at - answered[call_id]) < 10_000  # ... which is the answer
        for end, bye in (
            ("caller", uac.byes().get(call_id)),
            ("gateway", gateway.byes().get(call_id)),
        ):
            assert bye is not None, f"{reason}: no BYE at the {end}"
            assert 0 <= bye - at <= PROMPT_US, f"{reason}: BYE at the {end} {ms(bye - at)} late"


@pytest.mark.kafka
def test_a_restarted_bridge_still_cuts_its_calls(worker, proxy, gateway, bridge, calls_dir):
    """Killed mid-call; while it is down one call hangs up and another runs out of funds."""
    on_time, while_down, hangs_up = "restart-a.example", "restart-b.example", "restart-c.example"
    fund(worker.prefix, on_time, "0.05")  # cut at 16 s, after the restart
    fund(worker.prefix, while_down, "0.02")  # cut at 6 s, while the bridge is down
    fund(worker.prefix, hangs_up, "1.00")  # hangs up at 4 s, while the bridge is down
    uacs = [
        Uac(calls_dir, "restart-a", proxy.sip, [Call(NIGERIA, "ann", on_time, CALLER)], 40),
        Uac(calls_dir, "restart-b", proxy.sip, [Call(NIGERIA, "ann", while_down, CALLER)], 40),
        Uac(calls_dir, "restart-c", proxy.sip, [Call(US, "ann", hangs_up, CALLER)], 4.0),
    ]
    for uac in uacs:
        uac.start()
    ids = [uac.call_ids()[0] for uac in uacs]
    time.sleep(1.5)
    bridge.kill()
    time.sleep(7.5)  # the 6 s disconnect is published; the 4 s call has ended
    restarted = now_us()
    bridge.start()
    for uac in uacs:
        assert uac.wait(60) == 0
    recs = records(worker.prefix, set(ids), want=5)
    cuts, charges = by_call(recs["disconnects"]), by_call(recs["charges"])
    assert set(cuts) == set(ids[:2]) and set(charges) == set(ids)
    a, b, c = ids
    # cut on time by the restarted bridge, which learnt the dialog from dlg.list
    at = us(cuts[a]["at"])
    for end, bye in (("caller", uacs[0].byes().get(a)), ("gateway", gateway.byes().get(a))):
        assert bye is not None and 0 <= bye - at <= PROMPT_US, f"{end}: {bye and ms(bye - at)}"
    # its disconnect came while it was down: read from the committed offset after the restart
    assert us(cuts[b]["at"]) < restarted
    for end, bye in (("caller", uacs[1].byes().get(b)), ("gateway", gateway.byes().get(b))):
        assert bye is not None and restarted < bye < restarted + 10 * US_PER_S, end
    assert (charges[b]["end"], charges[b]["charge"]) == (cuts[b]["at"], "0.0180")
    # its call_end was kept by the proxy while no bridge was connected
    sip_s = (uacs[2].hangups()[c] - uacs[2].answers()[c]) / US_PER_S
    assert abs(Decimal(str(charges[c]["duration_seconds"])) - Decimal(str(sip_s))) < Decimal(
        "0.020"
    )
    assert charges[c]["disconnected"] is None


@pytest.mark.kafka
def test_a_call_outlives_a_proxy_restart_and_is_still_cut(
    worker, proxy, gateway, bridge, calls_dir
):
    """The proxy keeps its dialogs over a restart (db_text); the bridge reconnects to it."""
    tenant = "proxy-restart.example"
    fund(worker.prefix, tenant, "0.02")  # cut at 6 s
    reconnects = bridge.metric("rating_engine_bridge_proxy_reconnects_total") or 0
    uac = Uac(calls_dir, "proxy-restart", proxy.sip, [Call(NIGERIA, "ann", tenant, CALLER)], 30)
    uac.start()
    (call_id,) = uac.call_ids()
    time.sleep(1.5)
    kamailio_sh(proxy.env, "stop", timeout=60)
    kamailio_sh(proxy.env, "start", "--gateway", f"127.0.0.1:{gateway.port}", timeout=120)
    assert uac.wait(60) == 0
    (cut,) = records(worker.prefix, {call_id}, want=2)["disconnects"]
    at = us(cut["at"])
    for end, bye in (("caller", uac.byes().get(call_id)), ("gateway", gateway.byes().get(call_id))):
        assert bye is not None and 0 <= bye - at <= PROMPT_US, f"{end}: {bye and ms(bye - at)}"
    assert (bridge.metric("rating_engine_bridge_proxy_reconnects_total") or 0) > reconnects
    assert bridge.metric("rating_engine_bridge_proxy_connected") == 1.0
