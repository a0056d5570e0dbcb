"""The worker's duplicate memory across a crash between a batch's `seen` entries and its state.

Edge rule 7 (a duplicate changes nothing and re-emits identical records) must hold for
inputs the switch really sent twice, but an input replayed after a crash whose state was
never saved is not a duplicate: its effect must be applied. No broker: `TableSeen` over a
dict store and the native core's `Tenant`, the same code the Faust agent runs.
"""

from __future__ import annotations

from typing import Any

import orjson

from rating_engine.core import Tenant, TenantView, compile_rows, tenant_view
from rating_engine.stream.worker import TableSeen, apply_input, dump_tenant, load_tenant
from tests.tenant_support import (
    DECK_ROWS,
    HEADER,
    T,
    add_funds,
    assign_licence,
    call_start,
    set_pool,
)


class Topic:
    def get_topic_name(self) -> str:
        return "app-seen-changelog"


class Table:
    """What TableSeen uses of a Faust table: its store and its changelog topic's name."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = Topic()


DECK = compile_rows("tests/literal-deck.csv", HEADER, DECK_ROWS)


def feed(t: Tenant, seen: TableSeen, topic: str, offset: int, ev: dict[str, Any]) -> list[Any]:
    produced, reject = apply_input(t, seen, orjson.dumps(ev), topic, offset)
    assert reject is None
    return produced


def view(t: Tenant) -> TenantView:
    return tenant_view(dump_tenant(t, {}))


def restore(table: Table, saved: bytes) -> tuple[Tenant, TableSeen]:
    seen = TableSeen(table, "t1", [], {})
    t, extra = load_tenant(saved, DECK)
    seen.applied.update(extra["applied"])
    return t, seen


def provisioned() -> tuple[Table, Tenant, TableSeen, bytes]:
    table = Table()
    seen = TableSeen(table, "t1", [], {})
    t = Tenant(DECK, "t1")
    feed(t, seen, "accounts", 0, add_funds("c1", T(0), "10"))
    feed(t, seen, "accounts", 1, assign_licence("c2", T(0)))
    feed(t, seen, "accounts", 2, set_pool("c3", T(0), "domestic", "US", 100))
    return table, t, seen, dump_tenant(t, {"applied": seen.applied})


def test_input_replayed_after_lost_state_is_decided_again() -> None:
    table, t, seen, saved = provisioned()
    first = feed(t, seen, "calls", 5, call_start("k1", T(10)))
    assert "k1" in view(t).live
    # killed after the batch's seen entries reached the changelog, before its state did
    t2, seen2 = restore(table, saved)
    assert "k1" not in view(t2).live
    again = feed(t2, seen2, "calls", 5, call_start("k1", T(10)))
    assert "k1" in view(t2).live  # applied, not taken for a duplicate
    assert again == first  # and the same bytes, ids included


def test_duplicate_sent_twice_is_still_a_duplicate_after_restore() -> None:
    table, t, seen, _ = provisioned()
    first = feed(t, seen, "calls", 5, call_start("k1", T(10)))
    saved = dump_tenant(t, {"applied": seen.applied})
    t2, seen2 = restore(table, saved)
    before = dump_tenant(t2, {"applied": seen2.applied})
    again = feed(t2, seen2, "calls", 9, call_start("k1", T(10)))
    assert again == first
    assert len(view(t2).live) == 1
    assert orjson.loads(dump_tenant(t2, {}))["live"] == orjson.loads(before)["live"]


def test_replay_of_an_older_input_keeps_later_inputs_duplicates() -> None:
    table, t, seen, _ = provisioned()
    feed(t, seen, "calls", 4, call_start("k0", T(5)))
    first = feed(t, seen, "calls", 5, call_start("k1", T(10)))
    saved = dump_tenant(t, {"applied": seen.applied})
    # after a rebalance the partition is read again from the last commit (offset 4)
    t2, seen2 = restore(table, saved)
    feed(t2, seen2, "calls", 4, call_start("k0", T(5)))
    again = feed(t2, seen2, "calls", 5, call_start("k1", T(10)))
    assert again == first
    assert seen2.applied["calls"] == 5
    assert view(t2).pools["domestic:US"].calls == ["k0", "k1"]  # k1 not started twice
