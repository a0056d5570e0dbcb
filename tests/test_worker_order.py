"""The worker decides a batch's inputs in `ts` order across `calls` and `accounts`.

The consumer hands out the records of one fetch topic-partition by topic-partition, so an
`accounts` command can come after a `calls` event stamped later that reached the broker after
it ("Events are applied in order per tenant", accounts.md, Time). `in_ts_order` merges them
back; no broker needed, the function is plain code over the events' topic, partition and value.
"""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from rating_engine.stream.worker import commit_due, in_ts_order, undecided_before

Record = tuple[str, int, int, bytes | None, bytes]
NAMES: dict[int, str] = {}


def ev(
    topic: str, ts: str | None, name: str, partition: int = 0, raw: bytes | None = None
) -> Record:
    """A record as the worker hands it to the core: (topic, partition, offset, key, value)."""
    value = raw if raw is not None else orjson.dumps({"name": name, **({"ts": ts} if ts else {})})
    record = (topic, partition, len(NAMES), None, value)
    NAMES[id(record)] = name
    return record


def names(batch: list[Record]) -> list[str]:
    return [NAMES[id(e)] for e in batch]


def test_a_command_stamped_before_a_call_is_decided_first_whatever_the_fetch_order():
    batch = [
        ev("accounts", "2026-11-24T10:00:00Z", "add_funds"),
        ev("calls", "2026-11-24T10:00:00.100Z", "call_start k1"),
        ev("accounts", "2026-11-24T10:00:00Z", "assign_licence"),
        ev("accounts", "2026-11-24T10:00:00Z", "set_pool"),
    ]
    assert names(in_ts_order(batch)) == [
        "add_funds",
        "assign_licence",
        "set_pool",
        "call_start k1",
    ]


def test_each_topic_partition_keeps_its_own_order_even_when_its_stamps_go_back():
    batch = [
        ev("calls", "2026-11-24T10:00:05Z", "late switch clock"),
        ev("calls", "2026-11-24T10:00:01Z", "earlier stamp, later offset"),
        ev("accounts", "2026-11-24T10:00:03Z", "command"),
    ]
    assert names(in_ts_order(batch)) == [
        "command",
        "late switch clock",
        "earlier stamp, later offset",
    ]


def test_equal_stamps_keep_their_arrival_order():
    batch = [
        ev("calls", "2026-11-24T10:00:00Z", "call"),
        ev("accounts", "2026-11-24T10:00:00Z", "command"),
    ]
    assert names(in_ts_order(batch)) == ["call", "command"]


def test_an_offset_stamp_orders_by_its_instant_not_its_text():
    batch = [
        ev("calls", "2026-11-24T10:30:00+01:00", "09:30 UTC"),
        ev("accounts", "2026-11-24T10:00:00Z", "10:00 UTC"),
    ]
    assert names(in_ts_order(batch)) == ["09:30 UTC", "10:00 UTC"]


def test_ticks_keep_their_places_in_the_batch():
    batch = [
        ev("calls", "2026-11-24T10:00:02Z", "call"),
        ev("ticks", None, "tick"),
        ev("accounts", "2026-11-24T10:00:01Z", "command"),
    ]
    assert names(in_ts_order(batch)) == ["command", "tick", "call"]


def test_an_input_without_a_usable_stamp_stays_next_to_its_predecessor():
    batch = [
        ev("calls", "2026-11-24T10:00:02Z", "call"),
        ev("calls", None, "not json", raw=b"{"),
        ev("accounts", "2026-11-24T10:00:03Z", "command"),
        ev("accounts", None, "no ts"),
    ]
    assert names(in_ts_order(batch)) == ["call", "not json", "command", "no ts"]


def test_partitions_are_merged_independently():
    batch = [
        ev("calls", "2026-11-24T10:00:02Z", "call p1", partition=1),
        ev("accounts", "2026-11-24T10:00:01Z", "command p0", partition=0),
        ev("accounts", "2026-11-24T10:00:01Z", "command p1", partition=1),
    ]
    out = names(in_ts_order(batch))
    assert out.index("command p1") < out.index("call p1")


STAMPS = st.one_of(st.none(), st.integers(0, 50).map(lambda s: f"2026-11-24T10:00:{s:02d}Z"))


TOPICS = st.sampled_from(["calls", "accounts", "ticks"])


@given(st.lists(st.tuples(TOPICS, st.integers(0, 2), STAMPS), max_size=30))
def test_the_merge_is_a_permutation_that_keeps_every_partitions_order_and_the_ticks_places(spec):
    batch = [
        ev(topic, ts if topic != "ticks" else None, f"{i}", partition)
        for i, (topic, partition, ts) in enumerate(spec)
    ]
    out = in_ts_order(batch)
    assert sorted(names(out), key=int) == names(batch)
    for i, e in enumerate(batch):
        if e[0] == "ticks":
            assert out[i] is e
    for tp in {e[:2] for e in batch}:
        assert [e for e in out if e[:2] == tp] == [e for e in batch if e[:2] == tp]


# A due timer waits for the inputs that were on the wire before it (`undecided_before`):
# offsets below 0 are what the client reports while it does not know them yet.
UNKNOWN = -1001


def test_a_partition_read_up_to_its_end_holds_nothing_back():
    assert not undecided_before(end=7, position=7, resumed_from=3, low=0)


def test_a_partition_read_short_of_its_end_holds_the_timer():
    assert undecided_before(end=7, position=6, resumed_from=3, low=0)


def test_a_partition_not_fetched_since_its_assignment_holds_the_timer():
    assert undecided_before(end=UNKNOWN, position=UNKNOWN, resumed_from=7, low=0)


def test_a_partition_fetched_but_not_read_yet_resumes_at_its_committed_offset():
    assert undecided_before(end=7, position=UNKNOWN, resumed_from=5, low=0)
    assert not undecided_before(end=7, position=UNKNOWN, resumed_from=7, low=0)


def test_without_a_commit_reading_starts_at_the_log_start():
    assert undecided_before(end=7, position=UNKNOWN, resumed_from=UNKNOWN, low=2)
    assert not undecided_before(end=7, position=UNKNOWN, resumed_from=UNKNOWN, low=7)
    assert not undecided_before(end=0, position=UNKNOWN, resumed_from=UNKNOWN, low=UNKNOWN)


# When the open transaction commits (`commit_due`): a disconnect must reach the switch
# within milliseconds, a charge within the commit interval.
INTERVAL_US, SPACING_US = 100_000, 20_000


def due(now_us: int, *, urgent: bool, last_commit_us: int = -1_000_000) -> bool:
    return commit_due(now_us, 0, INTERVAL_US, urgent, last_commit_us, SPACING_US)


def test_a_transaction_without_a_disconnect_commits_at_the_interval():
    assert not due(99_999, urgent=False, last_commit_us=0)
    assert due(100_000, urgent=False, last_commit_us=99_000)


def test_a_disconnect_commits_at_once_when_the_last_commit_is_not_recent():
    assert due(1_000, urgent=True)


def test_right_after_a_commit_a_disconnect_waits_at_most_the_spacing():
    assert not due(20_999, urgent=True, last_commit_us=1_000)
    assert due(21_000, urgent=True, last_commit_us=1_000)
