"""The worker's duplicate memory across a crash between a batch's `seen` entries and its state.

Edge rule 7 (a duplicate changes nothing and re-emits identical records) must hold for
inputs the switch really sent twice, but an input replayed after a crash whose state was
never saved is not a duplicate: its effect must be applied. No broker: the core's `Driver`
over the worker's `Table`s, the call the worker makes for each batch, with the tables written
the way the worker writes them (a restarted worker is a new `Driver` over the same tables).
"""

from __future__ import annotations

from typing import Any

import orjson

from rating_engine.core import (
    Driver,
    Table,
    TenantView,
    account_view,
    compile_rows,
    parse_instant,
    tenant_view,
)
from tests.tenant_support import (
    DECK_ROWS,
    HEADER,
    T,
    add_funds,
    assign_licence,
    call_end,
    call_start,
    set_pool,
)

DECK = compile_rows("tests/literal-deck.csv", HEADER, DECK_ROWS)


class Tables:
    """The worker's `tenants` and `seen` tables."""

    def __init__(self) -> None:
        self.tenants = Table("tenants-changelog")
        self.seen = Table("seen-changelog")


def feed(
    d: Driver,
    tables: Tables,
    topic: str,
    offset: int,
    ev: dict[str, Any],
    save_state: bool = True,
) -> list[Any]:
    """One input as a batch: its seen entries stored (by `decide`), then (unless killed
    before) its state."""
    raw = orjson.dumps(ev)
    outputs, writes, changed, kinds = d.decide(
        [(topic, 0, offset, ev["tenant_id"].encode(), raw)], tables.tenants, tables.seen
    )
    assert kinds == [(topic, ev["type"])]
    assert all(name != "dead-letters" for _, name, _, _ in outputs)
    for _, key, value in writes:
        assert value.startswith(b"@%s:%d\n" % (topic.encode(), offset))
        assert tables.seen.get(key) == value
    saved = d.take_unsaved()
    assert [u[0] for u in saved] == [c[0] for c in changed]
    for _, _, state, view in saved:  # the view of the tenant in memory is that of its bytes
        assert view == account_view(state, DECK.currency)
    if save_state:
        for tid, _, state, _ in saved:
            tables.tenants.put(0, tid.encode(), state)
    return [(name, payload) for _, name, payload, _ in outputs]


def view(tables: Tables) -> TenantView:
    return tenant_view(tables.tenants.get(b"t1"))


def applied(tables: Tables) -> dict[str, int]:
    return orjson.loads(tables.tenants.get(b"t1"))["extra"]["applied"]


def provisioned() -> tuple[Tables, Driver]:
    tables, d = Tables(), Driver(DECK)
    feed(d, tables, "accounts", 0, add_funds("c1", T(0), "10"))
    feed(d, tables, "accounts", 1, assign_licence("c2", T(0)))
    feed(d, tables, "accounts", 2, set_pool("c3", T(0), "domestic", "US", 100))
    return tables, d


def test_input_replayed_after_lost_state_is_decided_again() -> None:
    tables, d = provisioned()
    first = feed(d, tables, "calls", 5, call_start("k1", T(10)), save_state=False)
    assert "k1" not in view(tables).live
    # killed after the batch's seen entries reached the changelog, before its state did
    again = feed(Driver(DECK), tables, "calls", 5, call_start("k1", T(10)))
    assert "k1" in view(tables).live  # applied, not taken for a duplicate
    assert again == first  # and the same bytes, ids included


def test_duplicate_sent_twice_is_still_a_duplicate_after_restore() -> None:
    tables, d = provisioned()
    first = feed(d, tables, "calls", 5, call_start("k1", T(10)))
    before = orjson.loads(tables.tenants.get(b"t1"))
    again = feed(Driver(DECK), tables, "calls", 9, call_start("k1", T(10)))
    assert again == first
    assert len(view(tables).live) == 1
    assert orjson.loads(tables.tenants.get(b"t1"))["live"] == before["live"]


def test_replay_of_an_older_input_keeps_later_inputs_duplicates() -> None:
    tables, d = provisioned()
    feed(d, tables, "calls", 4, call_start("k0", T(5)))
    first = feed(d, tables, "calls", 5, call_start("k1", T(10)))
    # after a rebalance the partition is read again from the last commit (offset 4)
    d2 = Driver(DECK)
    feed(d2, tables, "calls", 4, call_start("k0", T(5)))
    again = feed(d2, tables, "calls", 5, call_start("k1", T(10)))
    assert again == first
    assert applied(tables)["calls"] == 5
    assert view(tables).pools["domestic:US"].calls == ["k0", "k1"]  # k1 not started twice


def test_one_batch_decides_as_one_input_at_a_time() -> None:
    """A batch, ticks and rejected records included, gives the outputs, entries and state of
    the same records decided one per call."""
    events = [
        ("accounts", add_funds("c1", T(0), "0.01")),  # 10 s of credit
        ("accounts", assign_licence("c2", T(0))),
        ("calls", call_start("k1", T(1))),
        ("calls", call_start("k1", T(1))),  # a duplicate
        ("calls", call_end("k1", T(30))),
    ]
    records: list[Any] = [
        (topic, 0, n, ev["tenant_id"].encode(), orjson.dumps(ev))
        for n, (topic, ev) in enumerate(events)
    ]
    records.insert(
        3,
        ("ticks", 0, 0, b"t1", orjson.dumps({"tenant_id": "t1", "due": str(parse_instant(T(20)))})),
    )
    records.append(
        ("calls", 0, 9, b"t2", orjson.dumps(call_start("k2", T(40))))
    )  # keyed as another
    records.append(("accounts", 0, 9, b"t1", None))  # a tombstone
    whole, one = Tables(), Tables()
    whole_driver = Driver(DECK)
    batch = whole_driver.decide(records, whole.tenants, whole.seen)
    d = Driver(DECK)
    parts: list[Any] = [[], [], [], []]
    for rec in records:
        got = d.decide([rec], one.tenants, one.seen)
        for acc, part in zip(parts, got):
            acc.extend(part)
    outputs, writes, changed, kinds = batch
    assert outputs == parts[0] and writes == parts[1] and kinds == parts[3]
    assert [k for _, k in kinds][-2:] == ["rejected", "rejected"]
    assert changed[-1] == parts[2][-1]
    assert whole_driver.take_unsaved() == d.take_unsaved()  # the same state, the same view
    assert [c[0] for c in changed] == ["t1"]
    assert any(timed for *_, timed in outputs)  # the tick disconnected the call
