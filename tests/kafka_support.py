"""Helpers for integration tests against the real broker started by deploy/kafka/broker.sh."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
BROKER = "kafka://127.0.0.1:9092"
TEST_DECK = REPO / "rates" / "test-deck.csv"


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
            "start", "--topic-prefix", self.prefix, "--partitions", "4", timeout=300
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
                "--broker",
                BROKER,
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


def lines_of(events: list[dict | bytes]) -> list[bytes]:
    return [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]


def now_us() -> int:
    return time.time_ns() // 1000


def broker_script(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka" / "broker.sh"), *args],
        cwd=REPO,
        timeout=timeout,
        env=os.environ.copy(),
    )
