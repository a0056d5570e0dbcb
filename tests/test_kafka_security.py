"""The secure broker's rules, on a real broker of its own (deploy/kafka/broker.sh --secure).

The module starts a private instance on free ports and a fresh data dir, first in plaintext
(a data dir formatted without SCRAM, as every broker before secure mode), then stops it and
starts it again with `--secure`: the users, the certificate and the ACLs are made on that
existing data dir. The shared broker is never touched, whatever its mode. Clients are
confluent-kafka (librdkafka), built from the role env files through
`rating_engine.stream.connection`, as every project client is.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from rating_engine.stream import connection

from .kafka_support import REPO, read_env_file

pytestmark = pytest.mark.kafka

PREFIX = "sec-"
TIMEOUT_S = 20.0


def _ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_port_block(count: int = 4) -> int:
    """A client port with the next `count - 1` free too (controller, internal, local)."""
    for _ in range(200):
        base = random.randrange(20000, 60000)
        if _ports_free(base, count):
            return base
    raise RuntimeError("no block of free ports")


@dataclass(frozen=True)
class SecureBroker:
    env: dict[str, str]  # broker.sh's variables for this instance
    data_dir: Path

    def script(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["bash", str(REPO / "deploy" / "kafka" / "broker.sh"), *args],
            cwd=REPO,
            env=self.env,
            timeout=300,
        )

    def settings(self, role: str) -> connection.KafkaSettings:
        return connection.from_env(read_env_file(self.data_dir / "security" / f"{role}.env"))


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    data_dir = tmp_path_factory.mktemp("kafka-secure") / "data"
    port = _free_port_block()
    env = {
        **os.environ,
        "RATING_ENGINE_KAFKA_PORT": str(port),
        "RATING_ENGINE_KAFKA_DATA": str(data_dir),
        "RATING_ENGINE_KAFKA_SECURE": "0",
    }
    broker = SecureBroker(env, data_dir)
    try:
        # an existing plaintext data dir, with a record in it
        assert broker.script("start", "--topic-prefix", PREFIX, "--partitions", "1").returncode == 0
        plain = connection.from_env({"RATING_ENGINE_BROKER": f"kafka://127.0.0.1:{port}"})
        assert _produce(plain, PREFIX + "charges", b'{"before":"secure"}') is None
        assert broker.script("stop").returncode == 0
        started = broker.script("start", "--secure", "--topic-prefix", PREFIX, "--partitions", "1")
        assert started.returncode == 0, "broker.sh start --secure failed"
        yield broker
    finally:
        broker.script("stop")
        shutil.rmtree(data_dir, ignore_errors=True)


# ------------------------------------------------------------------ clients


def _errors_cb(errors: list[Any]) -> Any:
    return lambda err: errors.append(err)


def _produce(settings: connection.KafkaSettings, topic: str, value: bytes) -> Any:
    """Send one record and wait for its delivery; the delivery error, or None."""
    from confluent_kafka import KafkaError, Producer

    errors: list[Any] = []
    delivered: list[Any] = []
    producer = Producer(
        {
            **settings.librdkafka(),
            "acks": "all",
            "message.timeout.ms": int(TIMEOUT_S * 1000),
            "error_cb": _errors_cb(errors),
        }
    )
    producer.produce(topic, value, key=b"t1", on_delivery=lambda err, msg: delivered.append(err))
    deadline = time.monotonic() + TIMEOUT_S + 5
    while not delivered and time.monotonic() < deadline:
        producer.poll(0.2)
        fatal = [e for e in errors if e.code() in (KafkaError._AUTHENTICATION, KafkaError._SSL)]
        if fatal:
            return fatal[0]
    producer.flush(1)
    assert delivered, f"no delivery report within {TIMEOUT_S} s ({errors})"
    return delivered[0]


def _consume_first(settings: connection.KafkaSettings, topic: str, group: str) -> Any:
    """The first record of the topic (one partition) in a new group, or the broker's error."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **settings.librdkafka(),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            return msg.error() or msg
        raise AssertionError(f"nothing from {topic} within {TIMEOUT_S} s")
    finally:
        consumer.close()


def _connection_errors(settings: connection.KafkaSettings) -> list[Any]:
    """What a client with these settings is told when it asks for metadata (no answer)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    admin = AdminClient({**settings.librdkafka(), "error_cb": _errors_cb(errors)})
    deadline = time.monotonic() + TIMEOUT_S
    while not errors and time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1)
        except KafkaException as exc:
            errors.append(exc.args[0])
        else:
            raise AssertionError("the broker answered this client")
        admin.poll(0.1)
    return errors


def _codes(errors: list[Any]) -> set[int]:
    return {e.code() for e in errors}


# ------------------------------------------------------------------ rules


def test_switch_writes_calls_but_not_accounts(secure_broker: SecureBroker) -> None:
    from confluent_kafka import KafkaError

    switch = secure_broker.settings("switch")
    assert _produce(switch, PREFIX + "calls", b'{"type":"call_start"}') is None
    refused = _produce(switch, PREFIX + "accounts", b'{"type":"add_funds"}')
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_switch_reads_disconnects_in_its_groups(secure_broker: SecureBroker) -> None:
    """Its own groups (`<prefix>switch...`) and the Kamailio bridge's."""
    disconnect = b'{"call_id":"c1","reason":"insufficient_funds"}'
    assert _produce(secure_broker.settings("operator"), PREFIX + "disconnects", disconnect) is None
    switch = secure_broker.settings("switch")
    for group in (f"{PREFIX}switch-a", f"{PREFIX}switch-bridge-sw1"):
        got = _consume_first(switch, PREFIX + "disconnects", group)
        assert not hasattr(got, "code"), (group, got)
        assert got.value() == disconnect


def test_switch_cannot_read_charges(secure_broker: SecureBroker) -> None:
    from confluent_kafka import KafkaError

    switch = secure_broker.settings("switch")
    got = _consume_first(switch, PREFIX + "charges", f"{PREFIX}switch-{uuid.uuid4().hex[:6]}")
    assert got.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_admin_writes_accounts_and_reads_charges(secure_broker: SecureBroker) -> None:
    """What the API does: commands to `accounts`, charges (and account views) read back."""
    admin = secure_broker.settings("admin")
    assert _produce(admin, PREFIX + "accounts", b"{}") is None
    got = _consume_first(admin, PREFIX + "charges", f"{PREFIX}admin-{uuid.uuid4().hex[:6]}")
    assert not hasattr(got, "code"), got


def test_worker_cannot_write_its_own_inputs(secure_broker: SecureBroker) -> None:
    """The worker reads `calls`: a compromised worker still cannot forge a switch's events."""
    from confluent_kafka import KafkaError

    refused = _produce(secure_broker.settings("worker"), PREFIX + "calls", b"{}")
    assert refused is not None and refused.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_records_of_the_plaintext_data_dir_are_read_over_tls_by_billing(
    secure_broker: SecureBroker,
) -> None:
    billing = secure_broker.settings("billing")
    got = _consume_first(billing, PREFIX + "charges", f"{PREFIX}billing-{uuid.uuid4().hex[:6]}")
    assert not hasattr(got, "code"), got
    assert got.value() == b'{"before":"secure"}'


def test_a_wrong_password_is_refused(secure_broker: SecureBroker, tmp_path: Path) -> None:
    from confluent_kafka import KafkaError

    wrong = tmp_path / "wrong.password"
    wrong.write_text(uuid.uuid4().hex)
    env = read_env_file(secure_broker.data_dir / "security" / "admin.env")
    settings = connection.from_env({**env, "RATING_ENGINE_KAFKA_PASSWORD_FILE": str(wrong)})
    assert KafkaError._AUTHENTICATION in _codes(_connection_errors(settings))


def test_a_client_without_tls_is_refused_even_with_the_right_password(
    secure_broker: SecureBroker,
) -> None:
    """The listener speaks TLS first: a client that does not is disconnected before its
    first request, SCRAM or not."""
    from confluent_kafka import KafkaError

    for protocol in ("SASL_PLAINTEXT", "PLAINTEXT"):
        without_tls = replace(secure_broker.settings("admin"), security_protocol=protocol)
        errors = _codes(_connection_errors(without_tls))
        assert errors & {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}, (protocol, errors)


def test_a_client_that_does_not_trust_the_local_ca_is_refused(
    secure_broker: SecureBroker,
) -> None:
    from confluent_kafka import KafkaError

    untrusting = replace(secure_broker.settings("admin"), ca_file=None)
    assert KafkaError._SSL in _codes(_connection_errors(untrusting))


def test_credentials_and_keys_are_readable_by_their_owner_only(
    secure_broker: SecureBroker,
) -> None:
    security = secure_broker.data_dir / "security"
    assert stat.S_IMODE(security.stat().st_mode) == 0o700
    files = sorted(security.iterdir())
    roles = ("worker", "switch", "admin", "billing", "ops", "operator")
    names = {f.name for f in files}
    assert {f"{r}.{kind}" for r in roles for kind in ("env", "password")} <= names
    assert {"ca.pem", "ca.p12", "broker.p12", "truststore.p12", "store.password"} <= names
    modes = {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
    assert set(modes.values()) == {"0o600"}, modes
    server = secure_broker.data_dir / "server.properties"  # holds the key store password
    assert stat.S_IMODE(server.stat().st_mode) == 0o600
