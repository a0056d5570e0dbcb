"""How every project client reaches the broker: address, TLS and SASL/SCRAM, from one place.

The worker, the demo, the replay/collect tools, the bridge, the API, the load test and its
checker all take the same flags (`add_arguments`) or the same `RATING_ENGINE_*` variables
(`from_env`), and build their Kafka clients from one `KafkaSettings`: there is no second
way to say where the broker is or who the client is.

The password is read from a file (never a flag, so it does not show in `ps`), and never
logged: `KafkaSettings.__repr__` leaves it out.
"""

from __future__ import annotations

import argparse
import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Mapping

DEFAULT_BROKER = "kafka://127.0.0.1:9092"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")

# flag name -> (environment variable, default)
_OPTIONS: dict[str, tuple[str, str | None]] = {
    "broker": ("RATING_ENGINE_BROKER", DEFAULT_BROKER),
    "kafka_security_protocol": ("RATING_ENGINE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
    "kafka_sasl_mechanism": ("RATING_ENGINE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
    "kafka_user": ("RATING_ENGINE_KAFKA_USER", None),
    "kafka_password_file": ("RATING_ENGINE_KAFKA_PASSWORD_FILE", None),
    "kafka_ca_file": ("RATING_ENGINE_KAFKA_CA_FILE", None),
}


# flag (as its `_OPTIONS` name), help text, further `add_argument` keywords
_FLAGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("broker", "bootstrap address, kafka://host:port", {}),
    (
        "kafka_security_protocol",
        "PLAINTEXT or SASL_SSL (TLS + SCRAM)",
        {"type": str.upper, "choices": PROTOCOLS},
    ),
    ("kafka_sasl_mechanism", "SASL mechanism", {"type": str.upper, "choices": MECHANISMS}),
    ("kafka_user", "SASL user", {}),
    ("kafka_password_file", "file holding the SASL password", {"metavar": "FILE"}),
    (
        "kafka_ca_file",
        "PEM CA certificate the broker's TLS certificate is checked against",
        {"metavar": "FILE"},
    ),
)


class SettingsError(ValueError):
    """The connection settings are incomplete or unreadable (a usage error, exit 2)."""


@dataclass(frozen=True)
class KafkaSettings:
    """One client identity on one broker."""

    broker: str = DEFAULT_BROKER
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None

    @property
    def bootstrap(self) -> str:
        """`host:port[,host:port]` as the clients want it (a `kafka://` prefix is allowed)."""
        return ",".join(part.removeprefix("kafka://") for part in self.broker.split(","))

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts the configured CA (or the system's) and checks names."""
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            kw["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.user
            kw["sasl_plain_password"] = self.password
        return kw

    def librdkafka(self) -> dict[str, Any]:
        """Configuration properties for a confluent-kafka (librdkafka) client."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.uses_tls and self.ca_file:
            conf["ssl.ca.location"] = self.ca_file
        if self.uses_sasl:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.user
            conf["sasl.password"] = self.password
        return conf


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The broker and identity flags, with their `RATING_ENGINE_*` defaults."""
    g = parser.add_argument_group("broker connection")
    for name, text, extra in _FLAGS:
        var, default = _OPTIONS[name]
        g.add_argument(
            "--" + name.replace("_", "-"),
            default=os.environ.get(var, default),
            help=f"{text} ({var})",
            **extra,
        )


def from_args(args: argparse.Namespace) -> KafkaSettings:
    """Settings from parsed `add_arguments` flags; reads the password file."""
    return _build({name: getattr(args, name, None) for name in _OPTIONS})


def from_env(environ: Mapping[str, str] | None = None, **overrides: str | None) -> KafkaSettings:
    """Settings from `RATING_ENGINE_*` variables (tools and tests without a parser)."""
    env = os.environ if environ is None else environ
    values = {name: env.get(var, default) for name, (var, default) in _OPTIONS.items()}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return _build(values)


def flags_of_env(environ: Mapping[str, str]) -> list[str]:
    """The `--broker`/`--kafka-*` flags that say what `environ`'s `RATING_ENGINE_*` variables
    say: for a child command line that must not inherit the caller's own identity."""
    flags: list[str] = []
    for name, (var, _) in _OPTIONS.items():
        if environ.get(var):
            flags += ["--" + name.replace("_", "-"), environ[var]]
    return flags


def _build(values: Mapping[str, str | None]) -> KafkaSettings:
    protocol = (values.get("kafka_security_protocol") or "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise SettingsError(f"unknown Kafka security protocol {protocol!r}")
    mechanism = (values.get("kafka_sasl_mechanism") or "SCRAM-SHA-512").upper()
    user, password = values.get("kafka_user"), None
    if protocol.startswith("SASL_"):
        path = values.get("kafka_password_file")
        if not user or not path:
            raise SettingsError(f"{protocol} needs a user and a password file")
        try:
            with open(path, encoding="utf-8") as f:
                password = f.read().strip()
        except OSError as exc:
            raise SettingsError(f"cannot read the Kafka password file {path}: {exc}") from None
    ca = values.get("kafka_ca_file")
    if ca and not os.path.isfile(ca):
        raise SettingsError(f"Kafka CA file {ca} does not exist")
    return KafkaSettings(
        broker=values.get("broker") or DEFAULT_BROKER,
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        user=user,
        password=password,
        ca_file=ca,
    )
