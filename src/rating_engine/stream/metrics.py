"""Prometheus metrics of the worker; the dashboard and alert rules use exactly these names."""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("rating_events_in_total", "Input records consumed", ["topic", "type"])
RECORDS_OUT = Counter("rating_records_out_total", "Output records published", ["topic"])
DEAD_LETTERS = Counter(
    "rating_dead_letters_total", "Rejected inputs sent to dead-letters", ["reason"]
)
DISCONNECT_LATENESS = Histogram(
    "rating_disconnect_lateness_seconds",
    "Publish wall time minus the disconnect's due instant",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0),
)
PROCESSING = Histogram(
    "rating_event_processing_seconds",
    "Time the decision core takes for one input (or timer tick)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)
LIVE_CALLS = Gauge("rating_live_calls", "Calls currently live on this worker's tenants")
TENANTS = Gauge("rating_tenants", "Tenants held by this worker")
TIMERS_PENDING = Gauge("rating_timers_pending", "Tenants with a wall-clock timer scheduled")
TIMER_FIRES = Counter("rating_timer_fires_total", "Timer ticks processed")
COMMIT_SECONDS = Histogram(
    "rating_commit_seconds",
    "Time to commit one transaction (outputs, changelogs and input offsets); part of how late "
    "a read_committed reader sees a disconnect",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
RESTORE_SECONDS = Histogram(
    "rating_restore_seconds",
    "Time to restore the tables of newly assigned partitions from their changelogs",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
TICKS_DEFERRED = Counter(
    "rating_ticks_deferred_total",
    "Timer ticks put off because inputs sent before them were not decided yet",
)


def prime() -> None:
    """Expose the known label sets at 0, so rates and absent() work from the first scrape."""
    for topic, types in (
        ("calls", ("call_start", "call_end", "rejected")),
        (
            "accounts",
            (
                "add_funds",
                "set_auto_recharge",
                "payment_result",
                "assign_licence",
                "remove_licence",
                "set_pool",
                "rejected",
            ),
        ),
        ("ticks", ("tick",)),
    ):
        for typ in types:
            EVENTS_IN.labels(topic, typ)
    for topic in ("disconnects", "charges", "notifications", "payments", "dead-letters"):
        RECORDS_OUT.labels(topic)


def observe_many(histogram: Histogram, amount: float, n: int) -> None:
    """`n` observations of one `amount` at the cost of one: a batch's per-event time.

    The client has no weighted observe; this adds to the same bucket and sum that `n` calls of
    `observe(amount)` would (the bucket is the first bound at or above the amount), through
    the client's own value objects.
    """
    if n <= 0:
        return
    histogram._sum.inc(amount * n)  # noqa: SLF001
    bounds = histogram._upper_bounds  # noqa: SLF001
    histogram._buckets[bisect_left(bounds, amount)].inc(n)  # noqa: SLF001
