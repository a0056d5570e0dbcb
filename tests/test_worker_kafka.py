"""The streaming worker on a real single-node KRaft broker (deploy/kafka/broker.sh).

These tests wait in real time, on a deck with 1-second increments and tiny
balances, so a disconnect is seconds away.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections import defaultdict

import orjson
import pytest

from rating_engine import core
from rating_engine.core import US_PER_S, format_instant, parse_instant
from rating_engine.stream.kafkaio import collect, is_probe, produce_lines, wait_ready

from .kafka_support import (
    BROKER,
    REPO,
    TEST_DECK,
    WorkerProcess,
    call_start,
    lines_of,
    now_us,
    unique_prefix,
)

pytestmark = pytest.mark.kafka


def _ts(us: int) -> str:
    return format_instant(us)


def traffic(base_us: int) -> list[dict | bytes]:
    """A few tenants: a shared pool running dry, credit calls, refusals, a recharge, bad input.

    Event times sit at odd milliseconds so no event ties a timer instant: on the
    wire a tie could go either way, in `simulate` edge rule 1 settles it.
    """
    s = US_PER_S

    def at(sec: float) -> str:
        return _ts(base_us + int(sec * s))

    def cmd(sec: float, tenant: str, typ: str, cid: str, **kw) -> dict:
        return {"type": typ, "tenant_id": tenant, "command_id": cid, "ts": at(sec), **kw}

    def start(
        sec: float,
        tenant: str,
        cid: str,
        user: str | None,
        to: str,
        kind: str = "user_outbound",
        frm: str = "+14255550100",
        loc: str | None = "US",
    ) -> dict:
        return {
            "type": "call_start",
            "call_id": cid,
            "tenant_id": tenant,
            "user_id": user,
            "kind": kind,
            "from": frm,
            "to": to,
            "usage_location": loc,
            "switch_id": "sw1",
            "ts": at(sec),
        }

    def end(sec: float, tenant: str, cid: str) -> dict:
        return {"type": "call_end", "call_id": cid, "tenant_id": tenant, "ts": at(sec)}

    return [
        # acme: 6-second domestic pool... as minutes are whole, 1 minute shared by calls below.
        cmd(0.011, "acme", "set_pool", "a-p", plan="domestic", country="US", minutes=1),
        cmd(0.013, "acme", "add_funds", "a-f1", amount="0.0030", currency="USD"),
        cmd(0.017, "acme", "assign_licence", "a-l1", user_id="ann"),
        cmd(
            0.019,
            "acme",
            "set_auto_recharge",
            "a-r",
            enabled=True,
            trigger_amount="0.0020",
            recharge_amount="1.00",
        ),
        # globex: credits only, tiny balance: 0.0009 at 0.0001/s runs 9 s.
        cmd(0.023, "globex", "add_funds", "g-f1", amount="0.0009", currency="USD"),
        cmd(0.029, "globex", "assign_licence", "g-l1", user_id="gus"),
        b'{"type": "call_start", broken',
        cmd(0.031, "globex", "add_funds", "g-f2", amount="5", currency="EUR"),
        # 1 minute pool shared by 12 calls of acme: R/n = 60/12 = 5 s after they all run.
        *[
            start(1.101 + i * 0.01, "acme", f"a{i}", "ann" if i % 2 == 0 else "bob", "+12065550100")
            for i in range(12)
        ],
        start(1.301, "globex", "g1", "gus", "+14155550123"),
        start(1.307, "globex", "g1", "gus", "+14155550123"),  # duplicate call_start
        start(1.311, "globex", "g2", "hal", "+14155550124"),  # no licence
        start(1.313, "globex", "g3", "gus", "+19005550100"),  # premium, can't pay fee+first
        start(
            1.317,
            "globex",
            "g4",
            "gus",
            "+5",
        ),  # bad number
        start(1.319, "globex", "g5", "gus", "+99912345678"),  # no rate
        end(8.653, "acme", "a0"),
        end(8.657, "acme", "a1"),
        end(9.661, "acme", "a2"),
        cmd(
            9.701,
            "acme",
            "payment_result",
            "a-pay1",
            request_id="acme:recharge:1",
            status="failed",
            reason="card_expired",
        ),
        end(11.667, "globex", "g1"),  # after the engine's disconnect: nothing new
        end(11.671, "globex", "g1"),  # duplicate call_end
        end(11.673, "globex", "zzz"),  # unknown call
        *[end(11.701 + i * 0.01, "acme", f"a{i}") for i in range(3, 12)],
        cmd(
            12.001,
            "acme",
            "payment_result",
            "a-pay2",
            request_id="acme:recharge:9",
            status="succeeded",
        ),
    ]


def _canonical(records: list[tuple[str, dict]]) -> dict[str, list[str]]:
    by_topic: dict[str, list[str]] = defaultdict(list)
    for topic, rec in records:
        if is_probe(topic, rec):
            continue
        rec = dict(rec)
        rec.pop("topic", None)
        if topic == "dead-letters":
            rec.pop("line", None)  # 1-based line in simulate, partition offset on the wire
        by_topic[topic].append(json.dumps(rec, sort_keys=True))
    return {t: sorted(v) for t, v in by_topic.items()}


def _simulate(lines: list[bytes]) -> list[tuple[str, dict]]:
    """The native core's `simulate` records for the same lines: what the worker must publish."""
    deck = core.load_deck(str(TEST_DECK))
    return [(topic, orjson.loads(payload)) for topic, payload in core.simulate_lines(deck, lines)]


async def _run_paced(
    prefix: str, lines: list[bytes], tail_s: float
) -> list[tuple[str, dict, float]]:
    stop = asyncio.Event()
    collector = asyncio.create_task(collect(BROKER, prefix, idle_s=2.0, max_s=180.0, stop=stop))
    await produce_lines(BROKER, prefix, lines, paced=True)
    await asyncio.sleep(tail_s)
    stop.set()
    return await collector


def _ready_worker(kind: str, state_dir):
    """A worker on fresh topics, deciding (it answered a probe), terminated afterwards."""
    prefix = unique_prefix(kind)
    worker = WorkerProcess(prefix, state_dir)
    worker.start()
    try:
        asyncio.run(wait_ready(BROKER, prefix, timeout_s=180))
    except TimeoutError:
        pytest.fail("worker did not become ready:\n" + worker.log_tail())
    yield worker
    if worker.alive():
        worker.terminate()


@pytest.fixture(scope="module")
def live_worker(kafka_broker, tmp_path_factory):
    yield from _ready_worker("live", tmp_path_factory.mktemp("worker-live"))


def test_worker_gives_the_same_records_as_simulate(live_worker):
    base = now_us() + 3 * US_PER_S
    lines = lines_of(traffic(base))
    got = asyncio.run(_run_paced(live_worker.prefix, lines, tail_s=4.0))
    expected = _simulate(lines)
    assert expected, "the scenario must produce records"
    # No event may tie a timer instant (see `traffic`): guard the scenario itself.
    event_ts = [
        parse_instant(orjson.loads(raw)["ts"])
        for raw in lines
        if raw.startswith(b'{"type"') and b"ts" in raw
    ]
    for topic, rec in expected:
        if topic == "disconnects" and rec["reason"] == "funds_exhausted":
            at = parse_instant(rec["at"])
            assert all(abs(at - ts) > 100_000 for ts in event_ts), rec
    assert _canonical([(t, r) for t, r, _ in got]) == _canonical(expected)
    # Disconnects went out within 1 s of their due instant (receive time includes the consumer).
    for topic, rec, received in got:
        if topic == "disconnects" and rec["reason"] == "funds_exhausted":
            lateness_s = received - parse_instant(rec["at"]) / US_PER_S
            assert lateness_s < 1.0, (rec, lateness_s)


def test_disconnect_fires_in_real_time_for_a_short_call(live_worker):
    base = now_us() + 2 * US_PER_S
    s = US_PER_S
    lines = lines_of(
        [
            {
                "type": "add_funds",
                "tenant_id": "rt",
                "command_id": "f",
                "ts": _ts(base),
                "amount": "0.0004",
                "currency": "USD",
            },
            {
                "type": "assign_licence",
                "tenant_id": "rt",
                "command_id": "l",
                "ts": _ts(base),
                "user_id": "u",
            },
            {
                "type": "call_start",
                "call_id": "c",
                "tenant_id": "rt",
                "user_id": "u",
                "kind": "user_outbound",
                "from": "+14255550100",
                "to": "+14255550101",
                "usage_location": None,
                "switch_id": "sw9",
                "ts": _ts(base + s // 2),
            },
        ]
    )
    got = asyncio.run(_run_paced(live_worker.prefix, lines, tail_s=6.0))
    disconnects = [
        (r, t) for topic, r, t in got if topic == "disconnects" and r["tenant_id"] == "rt"
    ]
    assert [r["at"] for r, _ in disconnects] == [_ts(base + s // 2 + 4 * s)]
    record, received = disconnects[0]
    assert record == {
        "call_id": "c",
        "tenant_id": "rt",
        "switch_id": "sw9",
        "reason": "funds_exhausted",
        "at": _ts(base + s // 2 + 4 * s),
    }
    assert received - (base + s // 2 + 4 * s) / s < 1.0


def _dashboard_metric_names() -> set[str]:
    names: set[str] = set()
    for path in [
        REPO / "deploy" / "grafana" / "rating-engine.json",
        REPO / "deploy" / "prometheus" / "alerts.yml",
    ]:
        if path.exists():
            names |= set(re.findall(r"\brating_(?!engine)[a-z_]+", path.read_text()))
    return names


def test_metrics_are_exposed_and_move(live_worker):
    text = (
        urllib.request.urlopen(f"http://127.0.0.1:{live_worker.metrics_port}/metrics", timeout=10)
        .read()
        .decode()
    )
    samples: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+|NaN)$", line)
        if m and m.group(3) != "NaN":
            samples[m.group(1)] += float(m.group(3))
    used = _dashboard_metric_names() | {
        "rating_events_in_total",
        "rating_records_out_total",
        "rating_dead_letters_total",
        "rating_disconnect_lateness_seconds_count",
        "rating_event_processing_seconds_count",
        "rating_tenants",
        "rating_timer_fires_total",
    }
    missing = sorted(n for n in used if n not in samples and f"{n}_bucket" not in samples)
    assert not missing, missing
    for name in (
        "rating_events_in_total",
        "rating_records_out_total",
        "rating_dead_letters_total",
        "rating_disconnect_lateness_seconds_count",
        "rating_event_processing_seconds_count",
        "rating_tenants",
        "rating_timer_fires_total",
    ):
        assert samples[name] > 0, name
    assert "rating_live_calls" in samples and "rating_timers_pending" in samples


def test_worker_exits_zero_on_sigterm(kafka_broker, tmp_path):
    prefix = unique_prefix("term")
    worker = WorkerProcess(prefix, tmp_path)
    worker.start()
    asyncio.run(wait_ready(BROKER, prefix, timeout_s=180))
    assert worker.terminate(timeout_s=90) == 0, worker.log_tail()


def test_restart_recovers_state_and_charges_each_call_once(kafka_broker, tmp_path):
    prefix = unique_prefix("restart")
    s = US_PER_S
    first = WorkerProcess(prefix, tmp_path / "a")
    first.start()
    asyncio.run(wait_ready(BROKER, prefix, timeout_s=180))
    base = now_us() + 1 * s
    # Call k1 runs on 0.0030 of credit at 0.0001/s: disconnected 30 s after it starts.
    # Call k2 runs on the pool and is ended by its call_end after the restart.
    before = lines_of(
        [
            {
                "type": "add_funds",
                "tenant_id": "kill",
                "command_id": "f",
                "ts": _ts(base),
                "amount": "0.0030",
                "currency": "USD",
            },
            {
                "type": "assign_licence",
                "tenant_id": "kill",
                "command_id": "l",
                "ts": _ts(base),
                "user_id": "u",
            },
            {
                "type": "set_pool",
                "tenant_id": "kill",
                "command_id": "p",
                "ts": _ts(base),
                "plan": "domestic",
                "country": "US",
                "minutes": 5,
            },
            call_start("kill", "k1", _ts(base + s // 10)),
            call_start("kill", "k2", _ts(base + s // 5), to="+14255550102", usage_location="US"),
        ]
    )
    asyncio.run(produce_lines(BROKER, prefix, before, paced=True))
    asyncio.run(asyncio.sleep(3))
    first.kill()
    second = WorkerProcess(prefix, tmp_path / "b")
    second.start()
    try:
        asyncio.run(wait_ready(BROKER, prefix, timeout_s=180))
        end_k2 = lines_of(
            [
                {
                    "type": "call_end",
                    "call_id": "k2",
                    "tenant_id": "kill",
                    "ts": _ts(max(now_us(), base + 6 * s)),
                }
            ]
        )
        asyncio.run(produce_lines(BROKER, prefix, end_k2, paced=True))
        due_k1 = base + s // 10 + 30 * s
        wait_s = max(0.0, (due_k1 - now_us()) / s) + 5.0
        got = asyncio.run(collect(BROKER, prefix, idle_s=wait_s, max_s=wait_s + 60))
    finally:
        second.terminate()
    charges: dict[str, set[str]] = defaultdict(set)
    for topic, rec, _ in got:
        if topic == "charges":
            charges[rec["charge_id"]].add(json.dumps(rec, sort_keys=True))
    assert set(charges) == {"kill:k1", "kill:k2"}
    assert all(len(v) == 1 for v in charges.values()), (
        charges
    )  # re-emissions, if any, are identical
    k1 = json.loads(next(iter(charges["kill:k1"])))
    assert (k1["end"], k1["charge"], k1["billed_seconds"], k1["disconnected"]) == (
        _ts(due_k1),
        "0.0030",
        30,
        "funds_exhausted",
    )
    k2 = json.loads(next(iter(charges["kill:k2"])))
    assert k2["pool"] == "domestic:US" and k2["charge"] == "0.0000" and k2["disconnected"] is None
    disconnects = {(r["call_id"], r["at"]) for t, r, _ in got if t == "disconnects"}
    assert disconnects == {("k1", _ts(due_k1))}
    assert [r for t, r, _ in got if t == "dead-letters" and not is_probe(t, r)] == []


def test_a_worker_taking_over_reads_the_backlog_before_an_overdue_timer(kafka_broker, tmp_path):
    """A call_end sent while no worker owned the partition, stamped before the call's
    disconnect instant, ends the call: the new owner must not fire the overdue timer first
    (accounts.md: the same timeline as `simulate`)."""
    prefix = unique_prefix("takeover")
    s = US_PER_S
    first = WorkerProcess(prefix, tmp_path / "a")
    first.start()
    asyncio.run(wait_ready(BROKER, prefix, timeout_s=180))
    base = now_us() + s
    # 0.0005 of credit at 0.0001/s in whole seconds: disconnected 5 s after it starts, unless
    # its call_end (3.007 s, billed 4 s) comes first
    start_us, end_us = base + s // 10, base + s // 10 + 3 * s + 7_000

    def command(typ: str, cid: str, **kw: object) -> dict:
        return {"type": typ, "tenant_id": "over", "command_id": cid, "ts": _ts(base), **kw}

    before = [
        command("add_funds", "f", amount="0.0005", currency="USD"),
        command("assign_licence", "l", user_id="u"),
        call_start("over", "k1", _ts(start_us)),
    ]
    end = {"type": "call_end", "call_id": "k1", "tenant_id": "over", "ts": _ts(end_us)}
    asyncio.run(produce_lines(BROKER, prefix, lines_of(before), paced=True))
    asyncio.run(asyncio.sleep(1.5))
    assert first.terminate(timeout_s=90) == 0, first.log_tail()
    asyncio.run(produce_lines(BROKER, prefix, lines_of([end]), paced=True))
    asyncio.run(asyncio.sleep(max(0.0, (start_us + 5 * s - now_us()) / s) + 1.0))
    second = WorkerProcess(prefix, tmp_path / "b")
    second.start()
    try:
        asyncio.run(wait_ready(BROKER, prefix, timeout_s=180))
        got = asyncio.run(collect(BROKER, prefix, idle_s=3.0, max_s=60))
    finally:
        second.terminate()
    expected = _simulate(lines_of([*before, end]))
    assert _canonical([(t, r) for t, r, _ in got]) == _canonical(expected)
    charge = next(r for t, r, _ in got if t == "charges")
    assert (charge["end"], charge["charge"], charge["disconnected"]) == (
        _ts(end_us),
        "0.0004",
        None,
    )


async def _send_raw(prefix: str, records: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """Send (topic, key, value) records as they are, a null value being a tombstone."""
    from aiokafka import AIOKafkaProducer

    from rating_engine.stream.kafkaio import client_kwargs

    producer = AIOKafkaProducer(**client_kwargs(BROKER), acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send(prefix + topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def test_record_keyed_as_another_tenant_or_tombstone_is_a_dead_letter(live_worker):
    """A record is decided on its key's partition, so a key that is not its `tenant_id` (or no
    key) would give the tenant a second account there: `key_mismatch`, and nothing changes. A
    tombstone (null value) on an input topic is `tombstone`."""
    base = now_us()
    funds = orjson.dumps(
        {
            "type": "add_funds",
            "tenant_id": "km-victim",
            "command_id": "km-f1",
            "ts": _ts(base),
            "amount": "100",
            "currency": "USD",
        }
    )
    call = orjson.dumps(
        {
            "type": "call_start",
            "call_id": "km-c1",
            "tenant_id": "km-victim",
            "user_id": "u",
            "kind": "user_outbound",
            "from": "+14255550100",
            "to": "+442071234567",
            "usage_location": "US",
            "switch_id": "sw",
            "ts": _ts(base),
        }
    )
    asyncio.run(
        _send_raw(
            live_worker.prefix,
            [
                ("accounts", b"km-other", funds),
                ("calls", None, call),
                ("accounts", b"km-victim", None),
            ],
        )
    )
    got = asyncio.run(collect(BROKER, live_worker.prefix, idle_s=3.0, max_s=60.0))
    mine = [(t, r) for t, r, _ in got if r.get("tenant_id") == "km-victim"]
    dead = sorted((r["reason"], r["original"]) for t, r in mine if t == "dead-letters")
    assert dead == sorted(
        [("key_mismatch", funds.decode()), ("key_mismatch", call.decode()), ("tombstone", "")]
    )
    assert [t for t, _ in mine if t != "dead-letters"] == []  # no charge, notice or disconnect


DEAD_LETTER_MAX = 65_536  # bytes of an input a dead letter keeps (then size and SHA-256)
INPUT_MAX = 1_048_576  # a larger record is `too_large`, unread


def _hostile(base_us: int) -> list[tuple[str, bytes | None, bytes, dict]]:
    """(topic, key, value, the dead letter it must give) for records no switch would send."""
    import hashlib
    import random

    deck = core.load_deck(str(TEST_DECK))

    def as_simulate_rejects(value: bytes) -> dict:
        [(topic, payload)] = core.simulate_lines(deck, [value])
        assert topic == "dead-letters", payload[:200]
        return orjson.loads(payload)

    funds = {
        "type": "add_funds",
        "tenant_id": "acme",
        "command_id": "hostile-f1",
        "ts": _ts(base_us),
        "currency": "USD",
    }
    several_mb = b'{"type":"add_funds","tenant_id":"acme","pad":"' + b"x" * (3 << 20) + b'"}'
    keyed_away = orjson.dumps({**funds, "amount": "100"})
    records = [
        ("calls", b"acme", random.Random(7).randbytes(4096).replace(b"\n", b" ")),  # one line
        ("accounts", b"acme", several_mb),
        ("accounts", b"\xff\xfeacme", b'{"type":"add_funds","tenant_id":"acme\xff","x":"\xc0"}'),
        ("calls", b"acme", b"[" * 10_000 + b"]" * 10_000),
        ("accounts", b"acme", orjson.dumps(funds)[:-1] + b',"amount":' + b"9" * 400 + b"}"),
        ("accounts", b"k" * 100_000, keyed_away),
        ("calls", b"k" * (INPUT_MAX - 10), b'{"type":"call_end"}'),
    ]
    out = []
    for topic, key, value in records:
        if key is not None and key.startswith(b"k"):
            if len(key) + len(value) > INPUT_MAX:
                letter = {"reason": "too_large", "original": value.decode(), "tenant_id": None}
            else:
                letter = {"reason": "key_mismatch", "original": value.decode(), "tenant_id": "acme"}
        elif len(value) > INPUT_MAX:
            head = value[:DEAD_LETTER_MAX].decode()
            letter = {"reason": "too_large", "original": head, "tenant_id": None}
            letter["original_size"] = len(value)
            letter["original_sha256"] = hashlib.sha256(value).hexdigest()
        else:
            letter = as_simulate_rejects(value)
            letter.pop("line")
        out.append((topic, key, value, letter))
    return out


@pytest.fixture
def own_worker(kafka_broker, tmp_path):
    """A worker on topics of its own: a test that compares everything it reads."""
    yield from _ready_worker("own", tmp_path / "worker")


def test_hostile_records_are_dead_lettered_and_the_rest_decided_as_without_them(own_worker):
    """Random bytes, a 3 MiB value, invalid UTF-8 in key and value, JSON 10,000 deep, a
    400-digit amount, a 100 KB key, a key of nearly 1 MiB: each is one dead letter with its
    reason and original bytes (a large one's head, size and SHA-256), and the well-formed
    traffic around them gives exactly what `simulate` gives for it alone."""
    from aiokafka import AIOKafkaProducer

    from rating_engine.stream.kafkaio import client_kwargs

    base = now_us() + 4 * US_PER_S
    lines = lines_of(traffic(base))
    hostile = _hostile(base)

    async def send_then_run() -> list[tuple[str, dict, float]]:
        producer = AIOKafkaProducer(**client_kwargs(BROKER), acks="all", max_request_size=8 << 20)
        await producer.start()
        try:
            for topic, key, value, _ in hostile:
                await producer.send(own_worker.prefix + topic, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
        return await _run_paced(own_worker.prefix, lines, tail_s=4.0)

    got = asyncio.run(send_then_run())
    assert own_worker.alive(), own_worker.log_tail()
    expected_letters = sorted(json.dumps(letter, sort_keys=True) for *_, letter in hostile)
    canonical = _canonical([(t, r) for t, r, _ in got])
    hostile_got = [d for d in canonical.get("dead-letters", []) if d in set(expected_letters)]
    assert sorted(hostile_got) == expected_letters
    for d in hostile_got:
        canonical["dead-letters"].remove(d)
    assert canonical == _canonical(_simulate(lines))
