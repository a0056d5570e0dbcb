"""Prometheus metrics of the switch bridge (`rating-engine bridge kamailio`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RELAYED = Counter(
    "rating_engine_bridge_events_relayed_total",
    "Proxy events published to calls, by type and by how they came (live, missed, dlg_list)",
    ["type", "source"],
)
EVENTS_UNREADABLE = Counter(
    "rating_engine_bridge_events_unreadable_total",
    "Proxy messages published as-is for the engine to dead-letter, by reason",
    ["reason"],
)
DISCONNECTS = Counter(
    "rating_engine_bridge_disconnects_total",
    "Disconnect records read, by outcome: executed (BYE sent), ended (the call had already "
    "ended or been cut), unknown (no such dialog on the proxy), other_switch, invalid",
    ["outcome"],
)
RPC_FAILURES = Counter(
    "rating_engine_bridge_rpc_failures_total",
    "Proxy RPC calls that failed (socket unreachable, timeout, unexpected fault)",
    ["method"],
)
LATENESS = Histogram(
    "rating_engine_bridge_disconnect_lateness_seconds",
    "BYE sent (the proxy's dlg.end_dlg reply) minus the disconnect's at",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LIVE_CALLS = Gauge("rating_engine_bridge_live_calls", "Answered calls the bridge knows are up")
PROXY_CONNECTED = Gauge(
    "rating_engine_bridge_proxy_connected", "1 while the evapi connection to the proxy is up"
)
READY = Gauge(
    "rating_engine_bridge_ready",
    "1 once the bridge has synced with the proxy and reads disconnects",
)
RECONNECTS = Counter(
    "rating_engine_bridge_proxy_reconnects_total", "evapi connections made after the first"
)


def prime() -> None:
    """Expose the known label sets at 0, so rates and absent() work from the first scrape."""
    for typ in ("call_start", "call_end"):
        for source in ("live", "missed", "dlg_list"):
            EVENTS_RELAYED.labels(typ, source)
    for outcome in ("executed", "ended", "unknown", "other_switch", "invalid"):
        DISCONNECTS.labels(outcome)
    for method in ("dlg.end_dlg", "dlg.list", "dlg.dlg_list", "htable.dump"):
        RPC_FAILURES.labels(method)
