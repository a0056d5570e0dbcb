"""Helpers for integration tests against the real broker started by deploy/kafka/broker.sh.

The broker is the one broker.sh runs for `RATING_ENGINE_KAFKA_PORT` / `RATING_ENGINE_KAFKA_DATA`.
`settings(role)` reads the env file `broker.sh env ROLE` names: on a secure broker (TLS +
SCRAM + ACLs) the role's own, on a plaintext one the plain address for every role. After
`broker_script("start", ...)` on a secure broker, this process's `RATING_ENGINE_KAFKA_*`
variables are the `operator`'s, so a harness that names only `BROKER` (the tests' producers
and collectors, which act for every role at once) connects with TLS and SCRAM too; the
worker gets its own `worker` identity by flags.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

from rating_engine.stream import connection

REPO = Path(__file__).resolve().parents[1]
BROKER = f"kafka://127.0.0.1:{os.environ.get('RATING_ENGINE_KAFKA_PORT', '9092')}"
TEST_DECK = REPO / "rates" / "test-deck.csv"
IDENTITY_VARS = (
    "RATING_ENGINE_BROKER",
    "RATING_ENGINE_KAFKA_SECURITY_PROTOCOL",
    "RATING_ENGINE_KAFKA_SASL_MECHANISM",
    "RATING_ENGINE_KAFKA_USER",
    "RATING_ENGINE_KAFKA_PASSWORD_FILE",
    "RATING_ENGINE_KAFKA_CA_FILE",
)


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines of a broker.sh env file (shell-quoted values, `#` comments)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, raw = line.partition("=")
        words = shlex.split(raw)
        values[key.strip()] = words[0] if words else ""
    return values


def role_env(role: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The role's `RATING_ENGINE_*` connection variables, from the running broker's env file
    (`environ`: the broker.sh variables of another instance)."""
    found = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka" / "broker.sh"), "env", role],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy() if environ is None else environ,
    )
    if found.returncode != 0:
        raise RuntimeError(f"broker.sh env {role}: {found.stderr.strip()}")
    return read_env_file(Path(found.stdout.strip()))


def settings(
    role: str = "operator", environ: dict[str, str] | None = None
) -> connection.KafkaSettings:
    """How `role` (worker, switch, admin, billing, ops, operator) reaches the test broker."""
    return connection.from_env(role_env(role, environ))


def connection_flags(role: str = "worker", environ: dict[str, str] | None = None) -> list[str]:
    """The `--broker`/`--kafka-*` flags of `role` for a project command line."""
    return connection.flags_of_env(role_env(role, environ))


def use_broker_identity() -> None:
    """Make the `operator` this process's default identity (and its children's, unless their
    flags say otherwise): TLS + SCRAM on a secure broker, the plain address otherwise."""
    env = role_env("operator")
    for var in IDENTITY_VARS:
        os.environ.pop(var, None)
    os.environ.update(env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_prefix(name: str) -> str:
    return f"t{uuid.uuid4().hex[:8]}-{name}-"


class WorkerProcess:
    """`rating-engine worker` as a child process, killed or stopped by the test."""

    def __init__(
        self, prefix: str, state_dir: Path, deck: Path = TEST_DECK, app_id: str = "rating-engine"
    ):
        self.prefix, self.state_dir, self.deck, self.app_id = prefix, state_dir, deck, app_id
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir / "worker.log"

    def start(self) -> None:
        """Create the prefix's topics (as operators do with broker.sh), then launch the worker."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        created = broker_script(
            "start",
            "--topic-prefix",
            self.prefix,
            "--app-id",
            self.app_id,
            "--partitions",
            "4",
            timeout=300,
        )
        assert created.returncode == 0, "broker.sh could not create the topics"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rating_engine.cli",
                "worker",
                "--rates",
                str(self.deck),
                *connection_flags("worker"),
                "--topic-prefix",
                self.prefix,
                "--partitions",
                "4",
                "--metrics-port",
                str(self.metrics_port),
                "--state-dir",
                str(self.state_dir),
                "--app-id",
                self.app_id,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout_s: float = 60) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def call_start(
    tenant_id: str, call_id: str, ts: str, to: str = "+14255550101", usage_location: str = "GB"
) -> dict:
    """User `u`'s outbound call_start from +14255550100 through switch `sw`."""
    return {
        "type": "call_start",
        "call_id": call_id,
        "tenant_id": tenant_id,
        "user_id": "u",
        "kind": "user_outbound",
        "from": "+14255550100",
        "to": to,
        "usage_location": usage_location,
        "switch_id": "sw",
        "ts": ts,
    }


def lines_of(events: list[dict | bytes]) -> list[bytes]:
    return [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]


def now_us() -> int:
    return time.time_ns() // 1000


def broker_script(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[bytes]:
    """`deploy/kafka/broker.sh ARGS`; after a successful `start`, `use_broker_identity()`."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka" / "broker.sh"), *args],
        cwd=REPO,
        timeout=timeout,
        env=os.environ.copy(),
    )
    if args[:1] == ("start",) and done.returncode == 0:
        use_broker_identity()
    return done
