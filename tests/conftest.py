"""Fixtures for the tenant rule and property tests (helpers live in `tenant_support`).

- `deck`: the literal deck of `tenant_support.DECK_ROWS`, compiled by the native core
  (1 s increments at 0.060000/min = 0.001/s, and a GB row with 60/6 increments and a fee).
- `run(events) -> list[dict]`: events (dicts or raw lines) as JSON lines through
  the native `Simulation`; decoded output records, each with its `"topic"`.
- `run_raw(events) -> list[(topic, bytes)]`: the same, as published bytes.
- `sim()`: a fresh step-by-step `Engine` (feed one line, inspect `Engine.tenants`).
- `ev`: the input builders (`ev.call_start`, `ev.call_end`, `ev.add_funds`, ...).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rating_engine.core import Deck

from .tenant_support import (
    Sim,
    add_funds,
    assign_licence,
    build_deck,
    call_end,
    call_start,
    payment_result,
    remove_licence,
    run_raw_with,
    run_with,
    set_auto_recharge,
    set_pool,
)


@pytest.fixture(scope="session")
def deck() -> Deck:
    return build_deck()


@pytest.fixture(scope="session")
def ev() -> SimpleNamespace:
    """Input builders: `ev.call_start(...)`, `ev.add_funds(...)`, ..."""
    return SimpleNamespace(
        call_start=call_start,
        call_end=call_end,
        add_funds=add_funds,
        assign_licence=assign_licence,
        remove_licence=remove_licence,
        set_pool=set_pool,
        set_auto_recharge=set_auto_recharge,
        payment_result=payment_result,
    )


@pytest.fixture(scope="session")
def run(deck):
    """`run(events) -> list[dict]`: simulate the events, decoded records with their topic."""
    return lambda events: run_with(deck, events)


@pytest.fixture(scope="session")
def run_raw(deck):
    """`run_raw(events) -> list[(topic, bytes)]`: the exact published payloads."""
    return lambda events: run_raw_with(deck, events)


@pytest.fixture
def sim(deck):
    """`sim()` -> a fresh step-by-step simulator over `deck`."""
    return lambda: Sim(deck)


@pytest.fixture(scope="session")
def kafka_broker():
    """The project's own broker: started once for the session, stopped if we started it."""
    from .kafka_support import BROKER, broker_script

    was_running = broker_script("status").returncode == 0
    started = broker_script("start")
    if started.returncode != 0:
        pytest.fail("deploy/kafka/broker.sh start failed")
    yield BROKER
    if not was_running:
        broker_script("stop")
