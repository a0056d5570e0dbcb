"""Flags of `rating-engine bridge kamailio` (parsed before anything heavy is imported)."""

from __future__ import annotations

import argparse
from typing import Callable

from ..stream import connection

Env = Callable[[str, "str | None"], "str | None"]

DEFAULT_EVAPI = "127.0.0.1:8448"
DEFAULT_CTL = "unix:var/kamailio/ctl.sock"  # where deploy/kamailio/kamailio.sh puts it
DEFAULT_METRICS_PORT = 9109  # the worker's is 9108: both run on one host


def add_arguments(parser: argparse.ArgumentParser, env: Env) -> None:
    """The bridge's flags; each also reads `RATING_ENGINE_<NAME>` (shown in its help)."""
    parser.add_argument(
        "--evapi",
        default=env("bridge_evapi", DEFAULT_EVAPI),
        metavar="HOST:PORT",
        help="the proxy's evapi address, events in (RATING_ENGINE_BRIDGE_EVAPI)",
    )
    parser.add_argument(
        "--ctl",
        default=env("bridge_ctl", DEFAULT_CTL),
        metavar="unix:PATH",
        help="the proxy's binrpc socket, as for kamcmd -s (RATING_ENGINE_BRIDGE_CTL)",
    )
    parser.add_argument(
        "--switch-id",
        default=env("switch_id", "kamailio"),
        help="switch_id of the calls it publishes and the disconnects it executes "
        "(RATING_ENGINE_SWITCH_ID)",
    )
    connection.add_arguments(parser)
    parser.add_argument(
        "--topic-prefix",
        default=env("topic_prefix", ""),
        help="the worker's topic prefix (RATING_ENGINE_TOPIC_PREFIX)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("bridge_metrics_port", str(DEFAULT_METRICS_PORT)) or DEFAULT_METRICS_PORT),
        help="/metrics on 127.0.0.1 (RATING_ENGINE_BRIDGE_METRICS_PORT; 0: none)",
    )
    parser.add_argument(
        "--rpc-retry-s",
        type=float,
        default=float(env("bridge_rpc_retry_s", "60") or 60),
        help="how long a disconnect is retried while the proxy's RPC socket is away "
        "(RATING_ENGINE_BRIDGE_RPC_RETRY_S)",
    )
