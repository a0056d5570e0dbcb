"""The account view (`core.account_view`, docs/account-views.md): what the `account-views`
topic carries for a tenant, computed by the core from the tenant's state bytes.

The expected values are worked out by hand from accounts.md on the literal deck of
`tenant_support` (0.001 a credit second) and cross-checked with the state as decoded by
`core.tenant_view`."""

from __future__ import annotations

from fractions import Fraction

import orjson
import pytest

from rating_engine import core

from .tenant_support import (
    T,
    add_funds,
    assign_licence,
    call_end,
    call_start,
    payment_result,
    set_auto_recharge,
    set_pool,
    to_line,
)

VIEW_KEYS = [
    "tenant_id",
    "currency",
    "balance",
    "held",
    "available",
    "lots",
    "pools",
    "auto_recharge",
    "licensed_users",
    "live_calls",
    "as_of",
]


def _engine(deck, events) -> core.Engine:
    engine = core.Engine(deck)
    for line, event in enumerate(events, 1):
        engine.feed(to_line(event), line)
    return engine


def _view(deck, events, tenant: str = "t1") -> dict:
    state = _engine(deck, events).tenant_state(tenant)
    assert state is not None
    return orjson.loads(core.account_view(state, deck.currency))


def test_a_new_account_shows_its_funds_as_one_lot_expiring_in_twelve_months(deck):
    view = _view(deck, [add_funds("f1", T(0), "5.00")])
    assert list(view) == VIEW_KEYS
    assert view["tenant_id"] == "t1"
    assert view["currency"] == "USD"
    assert (view["balance"], view["held"], view["available"]) == ("5.0000", "0.0000", "5.0000")
    assert view["lots"] == [
        {
            "lot_id": "f1",
            "purchased_at": "2026-11-24T10:00:00.000Z",
            "expires_at": "2027-11-24T10:00:00.000Z",
            "remaining": "5.0000",
            "expired": False,
        }
    ]
    assert view["pools"] == [] and view["live_calls"] == [] and view["licensed_users"] == []
    assert view["auto_recharge"] == {
        "enabled": False,
        "trigger_amount": None,
        "recharge_amount": None,
        "state": "off",
        "request_id": None,
        "request_amount": None,
        "backoff_until": None,
    }
    assert view["as_of"] == "2026-11-24T10:00:00.000Z"


def test_a_pool_shows_what_its_live_calls_used_as_of_the_tenant_clock(deck):
    # two calls share a 1-minute pool from T(10); at T(25) each has talked 15 s: 30 s used
    view = _view(
        deck,
        [
            set_pool("p1", T(0), "domestic", "US", 1),
            add_funds("f1", T(0), "1"),
            call_start("c1", T(10)),
            call_start("c2", T(10), user="bob"),
            add_funds("f2", T(25), "1"),
        ],
    )
    assert view["pools"] == [
        {
            "pool": "domestic:US",
            "month": "2026-11",
            "allowance_seconds": 60,
            "used_seconds": 30,
            "remaining_seconds": 30,
            "live_calls": 2,
        }
    ]
    assert [(c["call_id"], c["pool"], c["held"]) for c in view["live_calls"]] == [
        ("c1", "domestic:US", "0.0000"),
        ("c2", "domestic:US", "0.0000"),
    ]
    assert view["as_of"] == T(25)


def test_pool_seconds_are_exact_numbers(deck):
    # three calls on 1 minute from T(0); at T(1.5) each has talked 1.5 s: 4.5 s used
    view = _view(
        deck,
        [
            set_pool("p1", T(0), "domestic", "US", 1),
            *[call_start(f"c{i}", T(0), user=f"u{i}") for i in range(3)],
            add_funds("f1", T(Fraction(3, 2)), "1"),
        ],
    )
    (pool,) = view["pools"]
    assert (pool["used_seconds"], pool["remaining_seconds"]) == (4.5, 55.5)


def test_a_credit_call_holds_its_prepaid_increment_and_the_balance_stays(deck):
    # licensed credit call: at answer it prepays 1 s (0.0010); at T(3.5) it has prepaid 4 s
    view = _view(
        deck,
        [
            add_funds("f1", T(0), "1"),
            assign_licence("l1", T(0)),
            call_start("c1", T(0)),
            add_funds("f2", T(Fraction(7, 2)), "1"),
        ],
    )
    assert view["balance"] == "2.0000"
    assert view["held"] == "0.0040"
    assert view["available"] == "1.9960"
    assert view["licensed_users"] == ["ann"]
    (call,) = view["live_calls"]
    assert call == {
        "call_id": "c1",
        "user_id": "ann",
        "kind": "user_outbound",
        "started_at": T(0),
        "pool": None,
        "held": "0.0040",
    }


def test_auto_recharge_states_follow_the_requests(deck):
    base = [
        add_funds("f1", T(0), "1"),
        set_auto_recharge("a1", T(1), True, "5", "20"),
    ]
    outstanding = _view(deck, base)["auto_recharge"]
    assert outstanding == {
        "enabled": True,
        "trigger_amount": "5.0000",
        "recharge_amount": "20.0000",
        "state": "outstanding",
        "request_id": "t1:recharge:1",
        "request_amount": "20.0000",
        "backoff_until": None,
    }
    failed = base + [payment_result("r1", T(2), "t1:recharge:1", "failed", "card_expired")]
    backing_off = _view(deck, failed)["auto_recharge"]
    assert backing_off["state"] == "backing_off"
    assert backing_off["backoff_until"] == "2026-11-25T10:00:02.000Z"
    assert backing_off["request_id"] is None
    paid = base + [payment_result("r1", T(2), "t1:recharge:1")]
    view = _view(deck, paid)
    assert view["auto_recharge"]["state"] == "idle"
    assert view["balance"] == "21.0000"
    assert [lot["lot_id"] for lot in view["lots"]] == ["f1", "t1:recharge:1"]


def test_the_view_agrees_with_the_decoded_state(deck):
    engine = _engine(
        deck,
        [
            set_pool("p1", T(0), "international", "US", 2),
            add_funds("f1", T(0), "3.25"),
            assign_licence("l1", T(0), "zed"),
            assign_licence("l2", T(0), "amy"),
            call_start("c1", T(1), user="amy"),
            call_end("c1", T(31)),
        ],
    )
    state = engine.tenant_state("t1")
    decoded = core.tenant_view(state)
    view = orjson.loads(core.account_view(state, "USD"))
    assert view["balance"] == core.format_money(decoded.balance_micros)
    assert view["licensed_users"] == sorted(decoded.licences)
    assert [lot["remaining"] for lot in view["lots"]] == [
        core.format_money(lot.remaining_micros) for lot in decoded.lots
    ]
    assert view["as_of"] == core.format_instant(decoded.clock)
    for pool in view["pools"]:
        p = decoded.pools[pool["pool"]]
        assert pool["remaining_seconds"] == p.remaining_us / core.US_PER_S


def test_without_a_currency_the_view_says_null(deck):
    state = _engine(deck, [add_funds("f1", T(0), "1")]).tenant_state("t1")
    assert orjson.loads(core.account_view(state))["currency"] is None


@pytest.mark.parametrize("state", [b"", b"[]", b'{"v": 9}', b'{"v": 1, "tenant_id": 1}'])
def test_unreadable_state_is_a_value_error(state):
    with pytest.raises(ValueError):
        core.account_view(state)
