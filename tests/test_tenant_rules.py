"""Rule tests for the tenant state machine, driven through `simulate` (accounts.md,
contracts.md §2, §4, §5).

Every expected instant and amount is computed by hand from the spec; the
arithmetic is in the comments. Unless said otherwise the deck row is
0.060000/min = 0.001/s, no fee, 1 s / 1 s increments, so a credit second is
"0.0010". T(s) is s seconds after 2026-11-24T10:00:00Z, printed `...SS.mmmZ`.
Users: "ann" gets a Communications Credits licence where a test says so, "bob" never.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from .tenant_support import (
    DE_DEST,
    FR_FREE,
    GB_DEST,
    JP_NO_RATE,
    US_CALLER,
    US_DEST,
    US_PREMIUM,
    US_TOLLFREE,
    T,
    add_funds,
    assign_licence,
    briefs,
    call_end,
    call_start,
    of,
    payment_result,
    remove_licence,
    set_auto_recharge,
    set_pool,
    subset,
)

US = 1_000_000  # micros per unit of money / microseconds per second


def funded(amount: str = "1.0000", ts: str = T(-100), user: str = "ann", tenant: str = "t1"):
    """A tenant with one lot and one licensed user."""
    return [
        add_funds(f"{tenant}-f0", ts, amount, tenant=tenant),
        assign_licence(f"{tenant}-l0", ts, user, tenant=tenant),
    ]


def only_charge(out: list[dict]) -> dict:
    charges = of(out, "charges")
    assert len(charges) == 1, briefs(out)
    return charges[0]


# =========================================================== which pool pays a call


ALL_POOLS = [
    set_pool("p-dus", T(-100), "domestic", "US", 10),
    set_pool("p-ius", T(-100), "international", "US", 10),
    set_pool("p-dgb", T(-100), "domestic", "GB", 10),
    set_pool("p-igb", T(-100), "international", "GB", 10),
    set_pool("p-conf", T(-100), "conferencing", None, 10),
]


@pytest.mark.parametrize(
    "loc,to,pool",
    [
        ("US", US_DEST, "domestic:US"),  # usage_location US, destination US
        (
            "US",
            GB_DEST,
            "international:US",
        ),  # destination GB != US: international of the user's country
        ("GB", US_DEST, "international:GB"),  # keyed by usage_location, not by the destination
        ("GB", GB_DEST, "domestic:GB"),
        ("US", US_TOLLFREE, "domestic:US"),  # toll-free *outbound* numbers may use a pool (edge 4)
    ],
)
def test_pool_user_outbound_domestic_or_international_by_usage_location(run, loc, to, pool):
    # bob has no licence and the tenant no credits: only the pool can pay.
    out = run(
        ALL_POOLS + [call_start("c1", T(0), user="bob", to=to, loc=loc), call_end("c1", T(30))]
    )
    rec = only_charge(out)
    assert out == [rec]
    # 30 s of talk, all of it paid by the pool: credits pay nothing.
    assert {
        k: rec[k]
        for k in (
            "pool",
            "pool_seconds",
            "billed_seconds",
            "charge",
            "duration_seconds",
            "status",
            "reason",
            "disconnected",
        )
    } == {
        "pool": pool,
        "pool_seconds": 30,
        "billed_seconds": 0,
        "charge": "0.0000",
        "duration_seconds": 30,
        "status": "rated",
        "reason": None,
        "disconnected": None,
    }


@pytest.mark.parametrize("to", [US_DEST, GB_DEST])
def test_pool_conference_dialout_zone_a_uses_conferencing(run, to):
    out = run(
        ALL_POOLS
        + [
            call_start("c1", T(0), user="bob", kind="conference_dialout", to=to),
            call_end("c1", T(30)),
        ]
    )
    rec = only_charge(out)
    assert (rec["pool"], rec["pool_seconds"], rec["charge"]) == ("conferencing", 30, "0.0000")


@pytest.mark.parametrize(
    "case", ["conference_zone_b", "premium", "null_location", "no_such_pool", "tollfree_inbound"]
)
def test_no_pool_pays_these_calls_credits_do(run, case):
    call = {
        # DE is zone B: no conferencing pool even though one exists.
        "conference_zone_b": call_start("c1", T(0), kind="conference_dialout", to=DE_DEST),
        # premium never uses a pool, even a domestic one with time left
        "premium": call_start("c1", T(0), to=US_PREMIUM, loc="US"),
        # null usage_location gives no pool (edge 16)
        "null_location": call_start("c1", T(0), to=US_DEST, loc=None),
        # a user in DE calling the US would need international:DE, which does not exist
        "no_such_pool": call_start("c1", T(0), to=US_DEST, loc="DE"),
        # toll-free inbound never uses a pool (priced on the caller's number)
        "tollfree_inbound": call_start(
            "c1", T(0), user=None, kind="tollfree_inbound", frm=US_CALLER, to=US_TOLLFREE
        ),
    }[case]
    out = run(ALL_POOLS + funded() + [call, call_end("c1", T(30))])
    rec = only_charge(out)
    # credits: 30 s x 0.001/s = 0.0300, billed 30 (1 s increments), no pool.
    assert (rec["pool"], rec["pool_seconds"], rec["billed_seconds"], rec["charge"]) == (
        None,
        0,
        30,
        "0.0300",
    )


def test_premium_never_uses_a_pool_so_unlicensed_user_is_refused(run):
    out = run(ALL_POOLS + [call_start("c1", T(0), user="bob", to=US_PREMIUM)])
    assert briefs(out) == [("disconnect", "c1", "not_licensed", T(0)), ("charge", "c1", "0.0000")]


# =========================================================== shared pools: empty after R/n


def test_two_calls_share_a_pool_and_empty_it_after_R_over_n(run):
    # Pool 1 min = 60 s. A alone from T0; B joins at T10: used 10, R = 50 s, n = 2
    # -> empty after 50/2 = 25 s, at T35. pool_80 at 48 s used: 38 s more at 2 s/s = 19 s -> T29.
    # bob has no licence, so both calls are disconnected (funds_exhausted) at T35,
    # in call-start order. A paid 35 s of pool, B 25 s.
    out = run(
        [
            set_pool("p1", T(-60), "domestic", "US", 1),
            call_start("A", T(0), user="bob"),
            call_start("B", T(10), user="bob"),
            call_end("A", T(40)),
            call_end("B", T(40)),
        ]
    )
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-11", T(29)),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", T(35)),
        ("disconnect", "A", "funds_exhausted", T(35)),
        ("charge", "A", "0.0000"),
        ("disconnect", "B", "funds_exhausted", T(35)),
        ("charge", "B", "0.0000"),
    ]
    a, b = of(out, "charges")
    assert (a["pool_seconds"], a["duration_seconds"], a["end"], a["disconnected"]) == (
        35,
        35,
        T(35),
        "funds_exhausted",
    )
    assert (b["pool_seconds"], b["duration_seconds"], b["start"], b["end"]) == (
        25,
        25,
        T(10),
        T(35),
    )
    assert of(out, "disconnects")[0] == {
        "topic": "disconnects",
        "call_id": "A",
        "tenant_id": "t1",
        "switch_id": "sw-1",
        "reason": "funds_exhausted",
        "at": T(35),
    }


def test_three_calls_share_a_pool_non_terminating_R_over_3(run):
    # Pool 60 s. A from T0; B and C join at T10: used 10, R = 50, n = 3 -> empty after
    # 50/3 = 16.666... s, at T26.666...: printed floored to ms "10:00:26.666Z".
    # pool_80: 38 s more at 3 s/s = 12.666... s -> T22.666... -> "10:00:22.666Z".
    # A (ann, licensed, funded) goes on credits from 26.666...; B and C (bob) are disconnected.
    # A's pool seconds 26.666... -> 26.667; B's and C's 16.666... -> 16.667 (3 places, half-up).
    # A ends at T30: credit part 30 - 26.666... = 3.333... s -> billed 1 + ceil(2.333...) = 4 s
    # -> 0.0040, no fee.
    out = run(
        funded()
        + [
            set_pool("p1", T(-60), "domestic", "US", 1),
            call_start("A", T(0), user="ann"),
            call_start("B", T(10), user="bob"),
            call_start("C", T(10), user="bob"),
            call_end("A", T(30)),
            call_end("B", T(30)),
            call_end("C", T(30)),
        ]
    )
    empty = "2026-11-24T10:00:26.666Z"
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-11", "2026-11-24T10:00:22.666Z"),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", empty),
        ("disconnect", "B", "funds_exhausted", empty),
        ("charge", "B", "0.0000"),
        ("disconnect", "C", "funds_exhausted", empty),
        ("charge", "C", "0.0000"),
        ("charge", "A", "0.0040"),
    ]
    b, c, a = of(out, "charges")
    for rec in (b, c):
        assert (rec["pool_seconds"], rec["duration_seconds"], rec["end"]) == (
            Decimal("16.667"),
            Decimal("16.667"),
            empty,
        )
    assert (a["pool"], a["pool_seconds"], a["billed_seconds"], a["duration_seconds"]) == (
        "domestic:US",
        Decimal("26.667"),
        4,
        30,
    )


def test_pool_drain_rate_follows_the_number_of_live_calls(run):
    # 60 s pool; A and B from T0 drain 2 s/s; B ends at T10 (used 20). A alone: 40 s left
    # -> empty at T50; pool_80 at 48 s used: 28 s more at 1 s/s -> T38. bob: cut at T50.
    out = run(
        [
            set_pool("p1", T(-60), "domestic", "US", 1),
            call_start("A", T(0), user="bob"),
            call_start("B", T(0), user="bob"),
            call_end("B", T(10)),
            call_end("A", T(60)),
        ]
    )
    assert briefs(out) == [
        ("charge", "B", "0.0000"),
        ("pool_80", "t1:pool_80:domestic:US:2026-11", T(38)),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", T(50)),
        ("disconnect", "A", "funds_exhausted", T(50)),
        ("charge", "A", "0.0000"),
    ]
    assert [c["pool_seconds"] for c in of(out, "charges")] == [10, 50]


def test_set_pool_raising_the_allowance_re_plans_the_empty_instant(run):
    # 1 min pool, bob from T0; at T30 (used 30) the allowance becomes 2 min: 90 s left
    # -> empty at T120 instead of T60; pool_80 at 96 s used -> T96.
    out = run(
        [
            set_pool("p1", T(-60), "domestic", "US", 1),
            call_start("A", T(0), user="bob"),
            set_pool("p2", T(30), "domestic", "US", 2),
            call_end("A", T(200)),
        ]
    )
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-11", T(96)),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", T(120)),
        ("disconnect", "A", "funds_exhausted", T(120)),
        ("charge", "A", "0.0000"),
    ]
    assert (out[0]["allowance_minutes"], out[0]["remaining_seconds"]) == (2, 24)


def test_non_terminating_pool_seconds_printed_with_three_places(run_raw):
    out = run_raw(
        [
            set_pool("p1", T(-60), "domestic", "US", 1),
            call_start("A", T(0), user="bob"),
            call_start("B", T(10), user="bob"),
            call_start("C", T(10), user="bob"),
            call_end("A", T(30)),
        ]
    )
    charges = [p for t, p in out if t == "charges"]
    assert b'"pool_seconds":26.667' in charges[0]  # 26.666... half-up to 3 places
    assert b'"pool_seconds":16.667' in charges[1]
    assert b'"at":"2026-11-24T10:00:26.666Z"' in [p for t, p in out if t == "disconnects"][0]


# =========================================================== pool empties mid-call


def test_pool_empty_mid_call_continues_on_credits_increments_restart_no_fee(sim):
    # GB row: 0.060000/min, fee 0.010000, 60 s first increment, 6 s next.
    # domestic:GB 1 min; the call starts at T0 on the pool, which empties at T60 (pool_80 at T48).
    # From T60 it is a credit call: increments restart (first increment 60 s), no fee:
    # hold 0.06 * 60/60 = 0.0600. It ends at T65: credit part 5 s -> billed 60 -> 0.0600.
    # (With the fee it would be 0.0700; without the restart, a 6 s increment 0.0060.)
    s = sim()
    for e in funded() + [
        set_pool("p1", T(-60), "domestic", "GB", 1),
        call_start("c1", T(0), loc="GB", to=GB_DEST),
    ]:
        assert s.feed(e) == []
    out = s.feed(assign_licence("probe", T(61), "zed", tenant="t2"))
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:GB:2026-11", T(48)),
        ("pool_100", "t1:pool_100:domestic:GB:2026-11", T(60)),
    ]
    assert s.tenant().holds_micros == 60_000  # 0.0600 held since T60
    out = s.feed(call_end("c1", T(65)))
    rec = only_charge(out)
    assert out == [rec]
    assert {
        k: rec[k]
        for k in (
            "pool",
            "pool_seconds",
            "billed_seconds",
            "charge",
            "duration_seconds",
            "disconnected",
            "rate_per_minute",
            "connection_fee",
        )
    } == {
        "pool": "domestic:GB",
        "pool_seconds": 60,
        "billed_seconds": 60,
        "charge": "0.0600",
        "duration_seconds": 65,
        "disconnected": None,
        "rate_per_minute": "0.060000",
        "connection_fee": "0.010000",
    }
    assert s.tenant().balance_micros == 1_000_000 - 60_000
    assert s.tenant().holds_micros == 0


def test_pool_empty_mid_call_then_credits_run_out_at_a_boundary(run):
    # As above with a balance of 0.0700. Credits from T60: hold 0.0600 (60 s) <= 0.0700.
    # T120: 66 s -> 0.0660 <= 0.0700. T126: 72 s -> 0.0720 > 0.0700 -> disconnect at T126.
    # Charge = 66 s without fee = 0.0660; the pool paid 60 s.
    out = run(
        funded("0.0700")
        + [
            set_pool("p1", T(-60), "domestic", "GB", 1),
            call_start("c1", T(0), loc="GB", to=GB_DEST),
            call_end("c1", T(130)),
        ]
    )
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:GB:2026-11", T(48)),
        ("pool_100", "t1:pool_100:domestic:GB:2026-11", T(60)),
        ("disconnect", "c1", "funds_exhausted", T(126)),
        ("charge", "c1", "0.0660"),
    ]
    rec = only_charge(out)
    assert (rec["billed_seconds"], rec["pool_seconds"], rec["duration_seconds"], rec["end"]) == (
        66,
        60,
        126,
        T(126),
    )


# =========================================================== pool_80 / pool_100


def test_pool_80_and_pool_100_once_per_pool_per_month(run):
    # domestic:US 1 min. c1 0..50 s on the pool: pool_80 at 48 s used (T48), 12 s left.
    # c2 from T100 has 10 s of pool: empty at T110 -> pool_100, then credits 10 s = 0.0100.
    # c3 at T200 starts with the pool empty: a credit call from answer, no notices.
    # set_pool with the same allowance at T300: nothing new (already sent this month).
    # international:US is another pool: its own pool_80 (c5 from T300, 48 s -> T348).
    # December: the pool refilled; c4 crosses 80 % again -> a new pool_80 for 2026-12.
    out = run(
        funded()
        + [
            set_pool("p1", T(-60), "domestic", "US", 1),
            set_pool("p2", T(-60), "international", "US", 1),
            call_start("c1", T(0)),
            call_end("c1", T(50)),
            call_start("c2", T(100)),
            call_end("c2", T(120)),
            call_start("c3", T(200)),
            call_end("c3", T(210)),
            set_pool("p3", T(300), "domestic", "US", 1),
            call_start("c5", T(300), to=GB_DEST),
            call_end("c5", T(350)),
            call_start("c4", "2026-12-01T10:00:00.000Z"),
            call_end("c4", "2026-12-01T10:00:50.000Z"),
        ]
    )
    notes = of(out, "notifications")
    assert [n["notification_id"] for n in notes] == [
        "t1:pool_80:domestic:US:2026-11",
        "t1:pool_100:domestic:US:2026-11",
        "t1:pool_80:international:US:2026-11",
        "t1:pool_80:domestic:US:2026-12",
    ]
    assert notes[0] == {
        "topic": "notifications",
        "notification_id": "t1:pool_80:domestic:US:2026-11",
        "tenant_id": "t1",
        "kind": "pool_80",
        "ts": T(48),
        "pool": "domestic:US",
        "month": "2026-11",
        "allowance_minutes": 1,
        "remaining_seconds": 12,
    }
    assert notes[1] == {
        "topic": "notifications",
        "notification_id": "t1:pool_100:domestic:US:2026-11",
        "tenant_id": "t1",
        "kind": "pool_100",
        "ts": T(110),
        "pool": "domestic:US",
        "month": "2026-11",
        "allowance_minutes": 1,
        "remaining_seconds": 0,
    }
    assert (notes[2]["ts"], notes[2]["pool"], notes[2]["remaining_seconds"]) == (
        T(348),
        "international:US",
        12,
    )
    assert (notes[3]["ts"], notes[3]["month"], notes[3]["remaining_seconds"]) == (
        "2026-12-01T10:00:48.000Z",
        "2026-12",
        12,
    )
    by_call = {c["call_id"]: c for c in of(out, "charges")}
    assert (by_call["c2"]["pool"], by_call["c2"]["pool_seconds"], by_call["c2"]["charge"]) == (
        "domestic:US",
        10,
        "0.0100",
    )
    assert (by_call["c3"]["pool"], by_call["c3"]["pool_seconds"], by_call["c3"]["charge"]) == (
        None,
        0,
        "0.0100",
    )


def test_no_pool_notices_for_a_zero_minute_pool(run):
    out = run(
        funded()
        + [
            set_pool("p1", T(-60), "domestic", "US", 0),
            call_start("c1", T(0)),
            call_end("c1", T(10)),
        ]
    )
    # no time left at start: a credit call from answer, 10 s = 0.0100, no pool_80/pool_100
    assert briefs(out) == [("charge", "c1", "0.0100")]
    assert only_charge(out)["pool"] is None


# =========================================================== month refill


def test_month_refill_during_a_live_pool_call_keeps_draining_the_refilled_pool(sim):
    # 1 min pool; bob (no licence) from 2026-11-30T23:59:30. At 2026-12-01T00:00:00 the pool has
    # 30 s used (50 %: no notice) and refills. The call keeps draining December's pool:
    # 48 s used at 00:00:48 -> pool_80 for 2026-12 with 12 s left. It ends at 00:00:50:
    # pool paid 30 + 50 = 80 s, nothing charged, not disconnected (without the refill bob
    # would have been cut off at 00:00:30).
    s = sim()
    events = [
        set_pool("p1", "2026-11-30T23:00:00.000Z", "domestic", "US", 1),
        call_start("c1", "2026-11-30T23:59:30.000Z", user="bob"),
    ]
    for e in events:
        assert s.feed(e) == []
    out = s.feed(call_end("c1", "2026-12-01T00:00:50.000Z"))
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-12", "2026-12-01T00:00:48.000Z"),
        ("charge", "c1", "0.0000"),
    ]
    note, rec = out
    assert (note["month"], note["remaining_seconds"], note["allowance_minutes"]) == (
        "2026-12",
        12,
        1,
    )
    assert (rec["pool"], rec["pool_seconds"], rec["duration_seconds"], rec["disconnected"]) == (
        "domestic:US",
        80,
        80,
        None,
    )
    assert s.tenant().pools["domestic:US"].used_us == 50 * US  # December's usage


def test_call_on_credits_stays_on_credits_after_the_month_refill(sim):
    # 1 min pool; ann (licensed, 1.0000) from 23:58:30. pool_80 at 23:59:18 (48 s),
    # empty at 23:59:30 -> credits. The refill at 00:00:00 does not bring it back:
    # it ends at 00:01:00 with 90 s on credits = 0.0900, 60 s on the pool, and
    # December's pool is untouched.
    s = sim()
    for e in funded(ts="2026-11-30T23:00:00.000Z") + [
        set_pool("p1", "2026-11-30T23:00:00.000Z", "domestic", "US", 1),
        call_start("c1", "2026-11-30T23:58:30.000Z"),
    ]:
        s.feed(e)
    out = s.feed(call_end("c1", "2026-12-01T00:01:00.000Z"))
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-11", "2026-11-30T23:59:18.000Z"),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", "2026-11-30T23:59:30.000Z"),
        ("charge", "c1", "0.0900"),
    ]
    rec = out[-1]
    assert (rec["pool"], rec["pool_seconds"], rec["billed_seconds"], rec["duration_seconds"]) == (
        "domestic:US",
        60,
        90,
        150,
    )
    t = s.tenant()
    assert t.pools["domestic:US"].used_us == 0
    assert t.balance_micros == 1_000_000 - 90_000


# =========================================================== set_pool


def test_set_pool_on_an_existing_pool_keeps_this_months_usage(run):
    # 10 min pool; bob uses 180 s (c1). set_pool 5 min at T200: used stays 180 s,
    # remaining 300 - 180 = 120 s; 180/300 = 60 %: no notice.
    # ann's c2 from T300: 80 % of 300 s = 240 s used after 60 s -> pool_80 at T360 (60 s left);
    # empty at T420 -> pool_100; credits from T420; ends T430: 10 s = 0.0100, pool paid 120 s.
    out = run(
        funded()
        + [
            set_pool("p1", T(-60), "domestic", "US", 10),
            call_start("c1", T(0), user="bob"),
            call_end("c1", T(180)),
            set_pool("p2", T(200), "domestic", "US", 5),
            call_start("c2", T(300)),
            call_end("c2", T(430)),
        ]
    )
    assert briefs(out) == [
        ("charge", "c1", "0.0000"),
        ("pool_80", "t1:pool_80:domestic:US:2026-11", T(360)),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", T(420)),
        ("charge", "c2", "0.0100"),
    ]
    p80, p100 = of(out, "notifications")
    assert (p80["allowance_minutes"], p80["remaining_seconds"]) == (5, 60)
    assert (p100["allowance_minutes"], p100["remaining_seconds"]) == (5, 0)
    c2 = of(out, "charges")[1]
    assert (c2["pool_seconds"], c2["billed_seconds"], c2["duration_seconds"]) == (120, 10, 130)


def test_set_pool_below_used_moves_live_calls_to_credits_at_once(run):
    # 10 min pool; ann's c1 from T0, bob's c2 from T10. At T100: used 100 + 90 = 190 s.
    # set_pool 3 min (180 s) < 190: nothing left. At T100: pool_80 and pool_100 (the new
    # allowance crosses both), then in call-start order c1 -> credits (no output),
    # c2 (no licence) disconnected: pool paid 90 s. c1 ends T110: 10 s credits = 0.0100.
    out = run(
        funded()
        + [
            set_pool("p1", T(-60), "domestic", "US", 10),
            call_start("c1", T(0)),
            call_start("c2", T(10), user="bob"),
            set_pool("p2", T(100), "domestic", "US", 3),
            call_end("c1", T(110)),
            call_end("c2", T(110)),
        ]
    )
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-11", T(100)),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", T(100)),
        ("disconnect", "c2", "funds_exhausted", T(100)),
        ("charge", "c2", "0.0000"),
        ("charge", "c1", "0.0100"),
    ]
    p80, p100 = of(out, "notifications")
    assert (p80["allowance_minutes"], p80["remaining_seconds"]) == (3, 0)
    assert (p100["allowance_minutes"], p100["remaining_seconds"]) == (3, 0)
    c2, c1 = of(out, "charges")
    assert (c2["pool_seconds"], c2["duration_seconds"]) == (90, 90)
    assert (c1["pool_seconds"], c1["billed_seconds"], c1["duration_seconds"]) == (100, 10, 110)


# =========================================================== credit prepay


def test_credit_call_prepays_fee_and_first_increment_then_each_increment_at_its_boundary(sim):
    # GB row (fee 0.010000, 0.060000/min, 60 s then 6 s); balance 0.0800.
    # Answer T0: hold 0.0100 + 0.06*60/60 = 0.0700 <= 0.0800.
    # T60: 66 s -> 0.0100 + 0.0660 = 0.0760 <= 0.0800.
    # T66: 72 s -> 0.0100 + 0.0720 = 0.0820 > 0.0800 -> disconnect at T66, charge 0.0760.
    s = sim()
    for e in funded("0.0800"):
        s.feed(e)
    assert s.feed(call_start("c1", T(0), to=GB_DEST)) == []
    assert s.tenant().holds_micros == 70_000
    probe = iter(range(100))

    def at(ts):
        return s.feed(assign_licence(f"probe{next(probe)}", ts, "zed", tenant="t2"))

    assert at(T(59)) == [] and s.tenant().holds_micros == 70_000
    # an input at T60 is applied before the call timers of T60 (edge 1)
    assert at(T(60)) == [] and s.tenant().holds_micros == 70_000
    assert at(T(61)) == [] and s.tenant().holds_micros == 76_000
    out = at(T(70))
    assert briefs(out) == [
        ("disconnect", "c1", "funds_exhausted", T(66)),
        ("charge", "c1", "0.0760"),
    ]
    rec = out[1]
    assert (rec["billed_seconds"], rec["duration_seconds"], rec["connection_fee"], rec["end"]) == (
        66,
        66,
        "0.010000",
        T(66),
    )
    assert (s.tenant().balance_micros, s.tenant().holds_micros) == (4_000, 0)  # 0.0800 - 0.0760


def test_credit_call_refused_when_fee_plus_first_increment_exceeds_balance(run):
    # 0.0100 + 0.0600 = 0.0700 > 0.0699
    out = run(funded("0.0699") + [call_start("c1", T(0), to=GB_DEST)])
    assert briefs(out) == [("disconnect", "c1", "no_funds", T(0)), ("charge", "c1", "0.0000")]


def test_concurrent_credit_calls_the_first_boundary_takes_the_last_cents(run):
    # Balance 0.0090. A from T0, B from T0.5; each second of either holds 0.0010 more.
    # A's holds: T0 1, T1 2, T2 3, T3 4, T4 5 (x 0.0010); B's: T0.5 1, ..., T3.5 4.
    # T4: A wants 0.0050; free for A = 0.0090 - 0.0040 (B) = 0.0050 -> ok.
    # T4.5: B wants 0.0050; free for B = 0.0090 - 0.0050 (A) = 0.0040 -> B cut at T4.5,
    #   charged 4 s = 0.0040; balance 0.0050.
    # T5: A wants 0.0060 > 0.0050 -> A cut at T5, charged 0.0050; balance 0 -> balance_zero.
    out = run(
        funded("0.0090")
        + [
            call_start("A", T(0)),
            call_start("B", T("0.5")),
            call_end("A", T(10)),
            call_end("B", T(10)),
        ]
    )
    assert briefs(out) == [
        ("disconnect", "B", "funds_exhausted", "2026-11-24T10:00:04.500Z"),
        ("charge", "B", "0.0040"),
        ("disconnect", "A", "funds_exhausted", T(5)),
        ("charge", "A", "0.0050"),
        ("balance_zero", "t1:balance_zero:1", T(5)),
    ]
    b, a = of(out, "charges")
    assert (b["billed_seconds"], a["billed_seconds"]) == (4, 5)


@pytest.mark.parametrize("first,second", [("A", "B"), ("B", "A")])
def test_concurrent_credit_calls_tie_at_a_boundary_in_call_start_order(run, first, second):
    # Balance 0.0090; both start at T0, `first` first. At T4 both want 0.0050:
    # `first`: free 0.0090 - 0.0040 = 0.0050 -> ok; `second`: free 0.0090 - 0.0050 = 0.0040 -> cut
    # at T4 (charge 0.0040). T5: `first` wants 0.0060 > 0.0050 -> cut (0.0050); balance 0.
    out = run(
        funded("0.0090")
        + [
            call_start(first, T(0)),
            call_start(second, T(0)),
            call_end("A", T(10)),
            call_end("B", T(10)),
        ]
    )
    assert briefs(out) == [
        ("disconnect", second, "funds_exhausted", T(4)),
        ("charge", second, "0.0040"),
        ("disconnect", first, "funds_exhausted", T(5)),
        ("charge", first, "0.0050"),
        ("balance_zero", "t1:balance_zero:1", T(5)),
    ]


def test_call_end_exactly_at_a_boundary_pays_no_new_increment_and_is_not_disconnected(run):
    # Balance 0.0030: holds 0.0010 at T0, 0.0020 at T1, 0.0030 at T2; the boundary at T3 would
    # need 0.0040 and cut the call, but the call_end at T3 comes first (calls cover [start, end)):
    # charge 3 s = 0.0030, not disconnected; the balance reaches 0.
    out = run(funded("0.0030") + [call_start("c1", T(0)), call_end("c1", T(3))])
    assert briefs(out) == [("charge", "c1", "0.0030"), ("balance_zero", "t1:balance_zero:1", T(3))]
    rec = out[0]
    assert (rec["billed_seconds"], rec["duration_seconds"], rec["disconnected"], rec["end"]) == (
        3,
        3,
        None,
        T(3),
    )


# =========================================================== refusals at start


REFUSAL_COMMON = {
    "billed_seconds": 0,
    "charge": "0.0000",
    "start": T(0),
    "end": T(0),
    "duration_seconds": 0,
    "pool": None,
    "pool_seconds": 0,
    "currency": "USD",
    "charge_id": "t1:c1",
    "call_id": "c1",
    "tenant_id": "t1",
    "kind": "user_outbound",
}
NO_ROW = {
    "prefix": None,
    "destination": None,
    "country": None,
    "rate_per_minute": None,
    "connection_fee": None,
}
US_ROW = {
    "prefix": "1",
    "destination": "United States",
    "country": "US",
    "rate_per_minute": "0.060000",
    "connection_fee": "0.000000",
}


@pytest.mark.parametrize(
    "name,setup,call,reason,status,row",
    [
        # bad `from` beats no_rate, no licence and no funds
        (
            "bad_number",
            [],
            call_start("c1", T(0), user="bob", frm="12065550100", to=JP_NO_RATE),
            "bad_number",
            "invalid",
            NO_ROW,
        ),
        (
            "bad_number_null_to",
            [],
            call_start("c1", T(0), user="bob", to=None),
            "bad_number",
            "invalid",
            NO_ROW,
        ),
        (
            "bad_number_16_digits",
            [],
            call_start("c1", T(0), user="bob", to="+1234567890123456"),
            "bad_number",
            "invalid",
            NO_ROW,
        ),
        # no_rate beats no licence and no funds
        (
            "no_rate",
            [],
            call_start("c1", T(0), user="bob", to=JP_NO_RATE),
            "no_rate",
            "unrated",
            NO_ROW,
        ),
        # not_licensed beats no funds
        ("not_licensed", [], call_start("c1", T(0), user="bob"), "not_licensed", "rated", US_ROW),
        (
            "not_licensed_null_user",
            [],
            call_start("c1", T(0), user=None),
            "not_licensed",
            "rated",
            US_ROW,
        ),
        (
            "no_funds",
            [assign_licence("l1", T(-1))],
            call_start("c1", T(0)),
            "no_funds",
            "rated",
            US_ROW,
        ),
    ],
)
def test_refusals_at_start_in_order_with_their_charges_record(
    run, name, setup, call, reason, status, row
):
    out = run(setup + [call, call_end("c1", T(5))])  # the later call_end emits nothing new
    assert [r["topic"] for r in out] == ["disconnects", "charges"]
    disc, rec = out
    assert disc == {
        "topic": "disconnects",
        "call_id": "c1",
        "tenant_id": "t1",
        "switch_id": "sw-1",
        "reason": reason,
        "at": T(0),
    }
    expected = {
        **REFUSAL_COMMON,
        **row,
        "status": status,
        "reason": reason,
        "disconnected": reason,
        "user_id": call["user_id"],
    }
    assert subset(rec, expected) == expected


def test_pool_with_time_is_checked_before_licence_and_funds(run):
    # bob: no licence, no credits, but the pool has time: accepted.
    out = run(
        [
            set_pool("p1", T(-1), "domestic", "US", 1),
            call_start("c1", T(0), user="bob"),
            call_end("c1", T(10)),
        ]
    )
    assert briefs(out) == [("charge", "c1", "0.0000")]


def test_first_increment_costing_zero_is_accepted_at_balance_zero(run):
    # FR row: rate 0 and fee 0. ann is licensed, the tenant has no credits at all:
    # hold 0 <= 0 -> accepted; 30 s billed for 0.0000. The balance stays 0 (no balance_zero).
    out = run(
        [assign_licence("l1", T(-1)), call_start("c1", T(0), to=FR_FREE), call_end("c1", T(30))]
    )
    assert briefs(out) == [("charge", "c1", "0.0000")]
    rec = out[0]
    assert (rec["billed_seconds"], rec["disconnected"], rec["status"], rec["rate_per_minute"]) == (
        30,
        None,
        "rated",
        "0.000000",
    )


def test_plain_inbound_is_free_and_not_checked(run):
    out = run(
        [
            call_start("c1", T(0), user=None, kind="inbound", frm="anonymous", to="ext-12"),
            call_end("c1", T(30)),
        ]
    )
    rec = only_charge(out)
    assert out == [rec]
    assert (
        rec["status"],
        rec["charge"],
        rec["billed_seconds"],
        rec["disconnected"],
        rec["duration_seconds"],
    ) == ("free", "0.0000", 0, None, 30)


# =========================================================== licences


@pytest.mark.parametrize("organizer,accepted", [("org", True), ("guest", False), (None, False)])
def test_conference_dialout_needs_the_organizers_licence(run, organizer, accepted):
    # DE (zone B): no pool; credits pay only if the organizer (user_id) is licensed.
    out = run(
        [
            add_funds("f1", T(-10), "1.0000"),
            assign_licence("l1", T(-10), "org"),
            call_start("c1", T(0), user=organizer, kind="conference_dialout", to=DE_DEST),
            call_end("c1", T(30)),
        ]
    )
    if accepted:
        assert briefs(out) == [("charge", "c1", "0.0300")]  # 30 s x 0.0010
    else:
        assert briefs(out) == [
            ("disconnect", "c1", "not_licensed", T(0)),
            ("charge", "c1", "0.0000"),
        ]


def test_tollfree_inbound_draws_on_tenant_credits_without_a_licence(run):
    # Nobody holds a licence. Priced on the caller's number with the tollfree_inbound row:
    # 30 s x 0.0010 = 0.0300.
    out = run(
        ALL_POOLS
        + [
            add_funds("f1", T(-10), "1.0000"),
            call_start(
                "c1",
                T(0),
                user=None,
                kind="tollfree_inbound",
                frm=US_CALLER,
                to=US_TOLLFREE,
                loc=None,
            ),
            call_end("c1", T(30)),
        ]
    )
    rec = only_charge(out)
    assert out == [rec]
    assert {
        k: rec[k] for k in ("status", "prefix", "destination", "billed_seconds", "charge", "pool")
    } == {
        "status": "rated",
        "prefix": "1",
        "destination": "United States - toll-free caller",
        "billed_seconds": 30,
        "charge": "0.0300",
        "pool": None,
    }


@pytest.mark.parametrize("funds", [[], [add_funds("f1", T(-10), "0.0005")]])
def test_tollfree_inbound_refused_no_funds_when_the_balance_cannot_pay(run, funds):
    # first increment 1 s = 0.0010 > balance (0 or 0.0005)
    out = run(
        funds
        + [
            call_start(
                "c1", T(0), user=None, kind="tollfree_inbound", frm=US_CALLER, to=US_TOLLFREE
            )
        ]
    )
    assert briefs(out) == [("disconnect", "c1", "no_funds", T(0)), ("charge", "c1", "0.0000")]
    assert (out[1]["status"], out[1]["reason"], out[1]["kind"]) == (
        "rated",
        "no_funds",
        "tollfree_inbound",
    )


def test_licence_removed_during_a_credit_call_does_not_stop_it(run):
    # 20 s x 0.0010 = 0.0200, no disconnect
    out = run(
        funded() + [call_start("c1", T(0)), remove_licence("r1", T(5)), call_end("c1", T(20))]
    )
    assert briefs(out) == [("charge", "c1", "0.0200")]
    assert out[0]["disconnected"] is None


def test_pool_call_moving_to_credits_after_licence_removed_is_disconnected(run):
    # 1 min pool from T0; the licence goes at T10; the pool empties at T60, where the
    # licence is checked again: none -> funds_exhausted at T60 (credits would have paid).
    out = run(
        funded()
        + [
            set_pool("p1", T(-60), "domestic", "US", 1),
            call_start("c1", T(0)),
            remove_licence("r1", T(10)),
            call_end("c1", T(70)),
        ]
    )
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-11", T(48)),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", T(60)),
        ("disconnect", "c1", "funds_exhausted", T(60)),
        ("charge", "c1", "0.0000"),
    ]
    assert (out[3]["pool_seconds"], out[3]["end"]) == (60, T(60))


# =========================================================== lots and expiry


@pytest.mark.parametrize(
    "bought,just_before,expires",
    [
        ("2026-03-31T10:00:00.000Z", "2027-03-31T09:59:59.999Z", "2027-03-31T10:00:00.000Z"),
        # 29 February -> the month's last day a year later
        ("2028-02-29T10:00:00.000Z", "2029-02-28T09:59:59.999Z", "2029-02-28T10:00:00.000Z"),
        # same UTC time of day, to the millisecond
        ("2026-11-24T10:00:00.250Z", "2027-11-24T10:00:00.249Z", "2027-11-24T10:00:00.250Z"),
        ("2027-01-31T23:59:59.999Z", "2028-01-31T23:59:59.998Z", "2028-01-31T23:59:59.999Z"),
    ],
)
def test_lot_expires_twelve_months_after_purchase(sim, bought, just_before, expires):
    s = sim()
    assert s.feed(add_funds("f1", bought, "1.0000")) == []
    assert s.feed(assign_licence("probe1", just_before, "zed")) == []
    assert s.tenant().balance_micros == 1_000_000
    out = s.feed(
        assign_licence("probe2", expires, "zed")
    )  # calendar timers of T fire before inputs at T
    assert out == [
        {
            "topic": "notifications",
            "notification_id": "t1:funds_expired:f1",
            "tenant_id": "t1",
            "kind": "funds_expired",
            "ts": expires,
            "lot_id": "f1",
            "amount": "1.0000",
            "currency": "USD",
        },
        {
            "topic": "notifications",
            "notification_id": "t1:balance_zero:1",
            "tenant_id": "t1",
            "kind": "balance_zero",
            "ts": expires,
            "balance": "0.0000",
        },
    ]
    assert s.tenant().balance_micros == 0


def test_lot_expiry_keeps_the_money_a_live_call_holds(run):
    # Lot f1 1.0000 bought 2026-01-10T00:00:00Z expires 2027-01-10T00:00:00Z.
    # The call started 10 s before, at 2027-01-09T23:59:50: at the expiry instant (calendar
    # timers first) it holds 10 s = 0.0100. Forfeited: 1.0000 - 0.0100 = 0.9900.
    # Then its boundary at 00:00:00 wants 0.0110 > 0.0100 -> cut there, charged 0.0100 -> 0.
    exp = "2027-01-10T00:00:00.000Z"
    out = run(
        [
            add_funds("f1", "2026-01-10T00:00:00.000Z", "1.0000"),
            assign_licence("l1", "2026-01-10T00:00:00.000Z"),
            call_start("c1", "2027-01-09T23:59:50.000Z"),
            call_end("c1", "2027-01-10T00:00:30.000Z"),
        ]
    )
    assert briefs(out) == [
        ("funds_expired", "t1:funds_expired:f1", exp),
        ("disconnect", "c1", "funds_exhausted", exp),
        ("charge", "c1", "0.0100"),
        ("balance_zero", "t1:balance_zero:1", exp),
    ]
    assert (out[0]["amount"], out[0]["lot_id"], out[0]["currency"]) == ("0.9900", "f1", "USD")
    assert out[2]["billed_seconds"] == 10


def test_lot_expiring_during_a_credit_call_the_call_goes_on_with_the_next_lot(run):
    # f1 1.0000 (2026-01-10) and f2 0.5000 (2026-02-01). At f1's expiry the call holds 0.0100:
    # f1 forfeits 0.9900. The call goes on (0.5100 left) and ends at 00:00:05: 15 s = 0.0150,
    # drawn from f1's kept 0.0100 first, then 0.0050 from f2 -> f2 keeps 0.4950, forfeited
    # at 2027-02-01T00:00:00Z, and the balance reaches 0.
    out = run(
        [
            add_funds("f1", "2026-01-10T00:00:00.000Z", "1.0000"),
            add_funds("f2", "2026-02-01T00:00:00.000Z", "0.5000"),
            assign_licence("l1", "2026-02-01T00:00:00.000Z"),
            call_start("c1", "2027-01-09T23:59:50.000Z"),
            call_end("c1", "2027-01-10T00:00:05.000Z"),
            assign_licence("probe", "2027-02-02T00:00:00.000Z", "zed"),
        ]
    )
    assert briefs(out) == [
        ("funds_expired", "t1:funds_expired:f1", "2027-01-10T00:00:00.000Z"),
        ("charge", "c1", "0.0150"),
        ("funds_expired", "t1:funds_expired:f2", "2027-02-01T00:00:00.000Z"),
        ("balance_zero", "t1:balance_zero:1", "2027-02-01T00:00:00.000Z"),
    ]
    assert [n["amount"] for n in of(out, "notifications")[:2] if n["kind"] == "funds_expired"] == [
        "0.9900",
        "0.4950",
    ]


def test_no_funds_expired_when_live_holds_cover_the_whole_lot(run):
    # f1 0.0100 expires 2027-01-10T00:00:00Z while the call holds exactly 0.0100: nothing to forfeit.
    # The call ends at 00:00:05: 15 s = 0.0150 (0.0100 from f1, 0.0050 from f2).
    out = run(
        [
            add_funds("f1", "2026-01-10T00:00:00.000Z", "0.0100"),
            add_funds("f2", "2026-06-01T00:00:00.000Z", "1.0000"),
            assign_licence("l1", "2026-06-01T00:00:00.000Z"),
            call_start("c1", "2027-01-09T23:59:50.000Z"),
            call_end("c1", "2027-01-10T00:00:05.000Z"),
            assign_licence("probe", "2027-01-11T00:00:00.000Z", "zed"),
        ]
    )
    assert briefs(out) == [("charge", "c1", "0.0150")]


def test_spending_draws_on_the_lot_that_expires_first(run):
    # fA bought 2028-02-28T12:00 expires 2029-02-28T12:00; fB bought later, 2028-02-29T00:00,
    # expires *earlier*: 2029-02-28T00:00. A 500 s call (0.5000) draws on fB first:
    # fB forfeits 0.5000 at 00:00, fA its whole 1.0000 at 12:00 (then the balance is 0).
    out = run(
        [
            add_funds("fA", "2028-02-28T12:00:00.000Z", "1.0000"),
            add_funds("fB", "2028-02-29T00:00:00.000Z", "1.0000"),
            assign_licence("l1", "2028-02-29T00:00:00.000Z"),
            call_start("c1", "2028-03-01T00:00:00.000Z"),
            call_end("c1", "2028-03-01T00:08:20.000Z"),
            assign_licence("probe", "2029-03-01T00:00:00.000Z", "zed"),
        ]
    )
    assert briefs(out) == [
        ("charge", "c1", "0.5000"),
        ("funds_expired", "t1:funds_expired:fB", "2029-02-28T00:00:00.000Z"),
        ("funds_expired", "t1:funds_expired:fA", "2029-02-28T12:00:00.000Z"),
        ("balance_zero", "t1:balance_zero:1", "2029-02-28T12:00:00.000Z"),
    ]
    assert [n["amount"] for n in of(out, "notifications") if n["kind"] == "funds_expired"] == [
        "0.5000",
        "1.0000",
    ]


def test_lots_with_the_same_expiry_expire_in_purchase_order(run):
    out = run(
        [
            add_funds("f1", T(0), "0.2000"),
            add_funds("f2", T(0), "0.3000"),
            assign_licence("probe", "2027-11-25T00:00:00.000Z", "zed"),
        ]
    )
    exp = "2027-11-24T10:00:00.000Z"
    assert briefs(out) == [
        ("funds_expired", "t1:funds_expired:f1", exp),
        ("funds_expired", "t1:funds_expired:f2", exp),
        ("balance_zero", "t1:balance_zero:1", exp),
    ]
    assert [n.get("amount") for n in out[:2]] == ["0.2000", "0.3000"]


# =========================================================== low_balance / balance_zero


def test_low_balance_and_balance_zero_with_their_ids(run):
    # Auto-recharge off with a trigger of 0.5000. c1: 600 s = 0.6000 -> 1.0000 -> 0.4000,
    # below the trigger: low_balance #1. c2 from T700 on 0.4000: cut at T1100 (the 401st second
    # would need 0.4010), charged 0.4000 -> 0: balance_zero #2 (one counter for both kinds).
    out = run(
        funded()
        + [
            set_auto_recharge("a1", T(-50), False, "0.5000", "1.0000"),
            call_start("c1", T(0)),
            call_end("c1", T(600)),
            call_start("c2", T(700)),
            call_end("c2", T(1200)),
        ]
    )
    assert briefs(out) == [
        ("charge", "c1", "0.6000"),
        ("low_balance", "t1:low_balance:1", T(600)),
        ("disconnect", "c2", "funds_exhausted", T(1100)),
        ("charge", "c2", "0.4000"),
        ("balance_zero", "t1:balance_zero:2", T(1100)),
    ]
    assert out[1] == {
        "topic": "notifications",
        "notification_id": "t1:low_balance:1",
        "tenant_id": "t1",
        "kind": "low_balance",
        "ts": T(600),
        "balance": "0.4000",
        "trigger_amount": "0.5000",
    }
    assert out[4] == {
        "topic": "notifications",
        "notification_id": "t1:balance_zero:2",
        "tenant_id": "t1",
        "kind": "balance_zero",
        "ts": T(1100),
        "balance": "0.0000",
    }


# =========================================================== auto-recharge


def test_auto_recharge_request_id_and_no_second_request_while_outstanding(sim):
    s = sim()
    assert s.feed(add_funds("f1", T(0), "0.1000")) == []
    # 0.1000 < trigger 0.5000 -> request #1 at once (edge 21)
    assert s.feed(set_auto_recharge("a1", T(1), True, "0.5000", "2.0000")) == [
        {
            "topic": "payments",
            "request_id": "t1:recharge:1",
            "tenant_id": "t1",
            "amount": "2.0000",
            "currency": "USD",
            "ts": T(1),
        }
    ]
    # still below the trigger, but #1 is outstanding
    assert s.feed(add_funds("f2", T(2), "0.1000")) == []
    assert s.feed(set_auto_recharge("a2", T(3), True, "0.5000", "2.0000")) == []
    # succeeded: a new lot of 2.0000 -> 2.2000 >= 0.5000, no new request
    assert s.feed(payment_result("r1", T(4), "t1:recharge:1", "succeeded")) == [
        {
            "topic": "notifications",
            "notification_id": "t1:recharge_succeeded:t1:recharge:1",
            "tenant_id": "t1",
            "kind": "recharge_succeeded",
            "ts": T(4),
            "request_id": "t1:recharge:1",
            "amount": "2.0000",
        }
    ]
    assert s.tenant().balance_micros == 2_200_000
    # the recharge is a lot bought at the payment_result's ts, named by its request_id:
    # f1 expires 2027-11-24T10:00:00, f2 at 10:00:02, the recharge lot at 10:00:04 (balance 0,
    # below the trigger again -> request #2 in the same step, after balance_zero).
    out = s.feed(assign_licence("probe", "2027-11-25T00:00:00.000Z", "zed"))
    assert briefs(out) == [
        ("funds_expired", "t1:funds_expired:f1", "2027-11-24T10:00:00.000Z"),
        ("funds_expired", "t1:funds_expired:f2", "2027-11-24T10:00:02.000Z"),
        ("funds_expired", "t1:funds_expired:t1:recharge:1", "2027-11-24T10:00:04.000Z"),
        ("balance_zero", "t1:balance_zero:1", "2027-11-24T10:00:04.000Z"),
        ("payment", "t1:recharge:2", "2027-11-24T10:00:04.000Z"),
    ]
    assert (out[2]["lot_id"], out[2]["amount"]) == ("t1:recharge:1", "2.0000")


def test_successful_recharge_still_below_trigger_asks_again_at_once(run):
    # trigger 5.0000, recharge 2.0000, balance 0: 0 -> 2 -> 4 -> 6.
    out = run(
        [
            set_auto_recharge("a1", T(0), True, "5.0000", "2.0000"),
            payment_result("r1", T(10), "t1:recharge:1"),
            payment_result("r2", T(20), "t1:recharge:2"),
            payment_result("r3", T(30), "t1:recharge:3"),
        ]
    )
    assert briefs(out) == [
        ("payment", "t1:recharge:1", T(0)),
        ("recharge_succeeded", "t1:recharge_succeeded:t1:recharge:1", T(10)),
        ("payment", "t1:recharge:2", T(10)),
        ("recharge_succeeded", "t1:recharge_succeeded:t1:recharge:2", T(20)),
        ("payment", "t1:recharge:3", T(20)),
        ("recharge_succeeded", "t1:recharge_succeeded:t1:recharge:3", T(30)),
    ]


def test_failed_recharge_backs_off_then_asks_again_exactly_24h_later(sim):
    s = sim()
    assert briefs(s.feed(set_auto_recharge("a1", T(0), True, "0.5000", "1.0000"))) == [
        ("payment", "t1:recharge:1", T(0))
    ]
    assert s.feed(payment_result("r1", T(60), "t1:recharge:1", "failed", "card_expired")) == [
        {
            "topic": "notifications",
            "notification_id": "t1:recharge_failed:t1:recharge:1",
            "tenant_id": "t1",
            "kind": "recharge_failed",
            "ts": T(60),
            "request_id": "t1:recharge:1",
            "amount": "1.0000",
            "reason": "card_expired",
        }
    ]
    # back-off until T60 + 86400 s = 2026-11-25T10:01:00Z
    assert s.feed(assign_licence("p1", "2026-11-25T10:00:59.999Z", "zed")) == []
    assert briefs(s.feed(assign_licence("p2", "2026-11-25T10:01:00.000Z", "zed"))) == [
        ("payment", "t1:recharge:2", "2026-11-25T10:01:00.000Z")
    ]


def test_failed_recharge_new_request_is_stamped_at_the_end_of_the_back_off(run):
    out = run(
        [
            set_auto_recharge("a1", T(0), True, "0.5000", "1.0000"),
            payment_result("r1", T(60), "t1:recharge:1", "failed", "card_expired"),
            assign_licence("probe", "2026-11-26T00:00:00.000Z", "zed"),
        ]
    )
    assert briefs(out)[-1] == ("payment", "t1:recharge:2", "2026-11-25T10:01:00.000Z")
    assert len(of(out, "payments")) == 2


@pytest.mark.parametrize(
    "ender",
    [
        add_funds("f1", T(3600), "0.1000"),  # 0.1000 is still below the trigger
        set_auto_recharge("a2", T(3600), True, "0.5000", "1.0000"),
    ],
)
def test_back_off_ended_early_by_add_funds_or_set_auto_recharge(run, ender):
    out = run(
        [
            set_auto_recharge("a1", T(0), True, "0.5000", "1.0000"),
            payment_result("r1", T(60), "t1:recharge:1", "failed", "card_expired"),
            ender,
            # 24 h after the failure: #2 is outstanding, so no #3
            assign_licence("probe", "2026-11-26T00:00:00.000Z", "zed"),
        ]
    )
    assert briefs(out) == [
        ("payment", "t1:recharge:1", T(0)),
        ("recharge_failed", "t1:recharge_failed:t1:recharge:1", T(60)),
        ("payment", "t1:recharge:2", T(3600)),
    ]


def test_payment_result_without_reason_is_accepted(run):
    out = run(
        [
            set_auto_recharge("a1", T(0), True, "0.5000", "1.0000"),
            {
                "type": "payment_result",
                "tenant_id": "t1",
                "command_id": "r1",
                "ts": T(1),
                "request_id": "t1:recharge:1",
                "status": "failed",
            },
        ]
    )
    assert [b[0] for b in briefs(out)] == ["payment", "recharge_failed"]


@pytest.mark.parametrize(
    "events,line",
    [
        # nothing was ever requested
        ([payment_result("r1", T(0), "t1:recharge:1")], 1),
        # #1 was already settled
        (
            [
                set_auto_recharge("a1", T(0), True, "0.5000", "1.0000"),
                payment_result("r1", T(1), "t1:recharge:1"),
                payment_result("r2", T(2), "t1:recharge:1"),
            ],
            3,
        ),
        # #1 is outstanding, #7 is not
        (
            [
                set_auto_recharge("a1", T(0), True, "0.5000", "1.0000"),
                payment_result("r1", T(1), "t1:recharge:7"),
            ],
            2,
        ),
    ],
)
def test_payment_result_for_no_outstanding_request_is_dead_lettered(run, events, line):
    out = run(events)
    dead = of(out, "dead-letters")
    assert len(dead) == 1
    import orjson

    assert dead[0] == {
        "topic": "dead-letters",
        "reason": "unknown_request",
        "original": orjson.dumps(events[line - 1]).decode(),
        "line": line,
        "tenant_id": "t1",
    }


def test_unknown_request_is_not_remembered(run):
    # r1 is dead-lettered (nothing outstanding); the same command later, when #1 is
    # outstanding, is applied (it is not a duplicate).
    out = run(
        [
            payment_result("r1", T(0), "t1:recharge:1"),
            set_auto_recharge("a1", T(1), True, "0.5000", "1.0000"),
            payment_result("r1", T(2), "t1:recharge:1"),
        ]
    )
    assert briefs(out) == [
        ("dead", "unknown_request", 1),
        ("payment", "t1:recharge:1", T(1)),
        ("recharge_succeeded", "t1:recharge_succeeded:t1:recharge:1", T(2)),
    ]


# =========================================================== dead-letters


def _line(obj) -> str:
    import orjson

    return orjson.dumps(obj).decode()


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


CS = call_start("c1", T(0))
AF = add_funds("f1", T(0), "1.0000")
SP = set_pool("p1", T(0), "domestic", "US", 10)
SAR = set_auto_recharge("a1", T(0), True, "0.5000", "1.0000")
PR = payment_result("r1", T(0), "t1:recharge:1")

DEAD_CASES = [
    ("invalid_json", "{not json", "invalid_json", None),
    ("truncated_json", '{"type": "call_end", "tenant_id": "t1"', "invalid_json", None),
    ("array", "[1, 2, 3]", "not_an_object", None),
    ("string", '"call_start"', "not_an_object", None),
    (
        "unknown_type",
        _line({"type": "teleport", "tenant_id": "t1", "ts": T(0)}),
        "unknown_type",
        "t1",
    ),
    ("no_type", _line(_without(AF, "type")), "missing_field:type", "t1"),
    (
        "no_usage_location",
        _line(_without(CS, "usage_location")),
        "missing_field:usage_location",
        "t1",
    ),
    ("no_switch_id", _line(_without(CS, "switch_id")), "missing_field:switch_id", "t1"),
    ("call_end_no_ts", _line(_without(call_end("c1", T(0)), "ts")), "missing_field:ts", "t1"),
    (
        "no_tenant",
        _line(_without(call_end("c1", T(0)), "tenant_id")),
        "missing_field:tenant_id",
        None,
    ),
    ("no_amount", _line(_without(AF, "amount")), "missing_field:amount", "t1"),
    ("no_command_id", _line(_without(AF, "command_id")), "missing_field:command_id", "t1"),
    ("no_minutes", _line(_without(SP, "minutes")), "missing_field:minutes", "t1"),
    ("bad_kind", _line({**CS, "kind": "outbound"}), "bad_field:kind", "t1"),
    ("ts_without_zone", _line({**AF, "ts": "2026-11-24T10:00:00"}), "bad_field:ts", "t1"),
    ("ts_not_a_date", _line({**call_end("c1", T(0)), "ts": "yesterday"}), "bad_field:ts", "t1"),
    ("negative_amount", _line({**AF, "amount": "-1.0000"}), "bad_field:amount", "t1"),
    ("zero_amount", _line({**AF, "amount": "0"}), "bad_field:amount", "t1"),
    ("float_amount", _line({**AF, "amount": 1.5}), "bad_field:amount", "t1"),
    ("text_amount", _line({**AF, "amount": "ten"}), "bad_field:amount", "t1"),
    ("negative_minutes", _line({**SP, "minutes": -1}), "bad_field:minutes", "t1"),
    ("bad_plan", _line({**SP, "plan": "gold"}), "bad_field:plan", "t1"),
    ("bad_status", _line({**PR, "status": "pending"}), "bad_field:status", "t1"),
    ("bad_enabled", _line({**SAR, "enabled": "yes"}), "bad_field:enabled", "t1"),
    (
        "negative_trigger",
        _line({**SAR, "trigger_amount": "-0.0100"}),
        "bad_field:trigger_amount",
        "t1",
    ),
    ("zero_recharge", _line({**SAR, "recharge_amount": "0"}), "bad_field:recharge_amount", "t1"),
    ("currency_mismatch", _line({**AF, "currency": "EUR"}), "currency_mismatch", "t1"),
]


@pytest.mark.parametrize("name,raw,reason,tenant", DEAD_CASES, ids=[c[0] for c in DEAD_CASES])
def test_dead_letter_reasons_with_line_original_and_tenant(run, name, raw, reason, tenant):
    # a blank first line still counts: the bad line is line 2
    out = run(["", raw])
    assert out == [
        {"topic": "dead-letters", "reason": reason, "original": raw, "line": 2, "tenant_id": tenant}
    ]


@pytest.mark.parametrize(
    "raw,reason",
    [
        (_line({"type": [], "tenant_id": "t1", "ts": T(0)}), "unknown_type"),
        (_line({**CS, "kind": ["user_outbound"]}), "bad_field:kind"),
        (_line({**SP, "plan": {"name": "domestic"}}), "bad_field:plan"),
    ],
)
def test_unhashable_type_kind_or_plan_is_dead_lettered_not_a_crash(run, raw, reason):
    # a JSON array/object where a name is expected is a bad value, not a crash (edge 11)
    out = run([raw])
    assert out == [
        {"topic": "dead-letters", "reason": reason, "original": raw, "line": 1, "tenant_id": "t1"}
    ]


def test_set_auto_recharge_missing_amounts_is_a_missing_field_even_when_disabled(run):
    # the contract lists enabled, trigger_amount, recharge_amount; only payment_result.reason
    # is optional (edge 16), and a missing field is dead-lettered (edge 11)
    raw = _line(
        {
            "type": "set_auto_recharge",
            "tenant_id": "t1",
            "command_id": "a1",
            "ts": T(0),
            "enabled": False,
        }
    )
    out = run([raw])
    assert out == [
        {
            "topic": "dead-letters",
            "reason": "missing_field:trigger_amount",
            "original": raw,
            "line": 1,
            "tenant_id": "t1",
        }
    ]


def test_accepted_amount_forms_and_nulls(sim):
    s = sim()
    assert s.feed(add_funds("f1", T(0), 5)) == []  # a JSON integer is an amount
    assert s.tenant().balance_micros == 5_000_000
    # trigger_amount may be 0, minutes may be 0
    assert s.feed(set_auto_recharge("a1", T(1), True, "0", "1.0000")) == []
    assert s.feed(set_pool("p1", T(2), "domestic", "US", 0)) == []
    # present-but-null user_id / usage_location are not missing (edge 16): refused, not dead-lettered
    out = s.feed(call_start("c1", T(3), user=None, loc=None))
    assert briefs(out) == [("disconnect", "c1", "not_licensed", T(3)), ("charge", "c1", "0.0000")]


def test_currency_mismatch_adds_nothing(run):
    out = run(
        [
            add_funds("f1", T(0), "1.0000", currency="EUR"),
            assign_licence("l1", T(1)),
            call_start("c1", T(2)),
        ]
    )
    assert briefs(out) == [
        ("dead", "currency_mismatch", 1),
        ("disconnect", "c1", "no_funds", T(2)),
        ("charge", "c1", "0.0000"),
    ]


def test_dead_lettered_line_does_not_move_the_clock(run):
    # Balance 0.0030: the call would be cut at T3. A bad line stamped T100 neither fires that
    # timer nor makes the next line (T2) out of order; the call ends at T2 (2 s = 0.0020).
    bad = _line({**add_funds("f9", T(100), "-1"), "amount": "-1"})
    out = run(funded("0.0030") + [call_start("c1", T(0)), bad, call_end("c1", T(2))])
    assert briefs(out) == [("dead", "bad_field:amount", 4), ("charge", "c1", "0.0020")]


def test_out_of_order_is_dead_lettered_and_does_not_move_the_clock(sim):
    s = sim()
    assert s.feed(add_funds("f1", T(10), "1.0000")) == []
    f2 = add_funds("f2", T(5), "1.0000")
    assert s.feed(f2) == [
        {
            "topic": "dead-letters",
            "reason": "out_of_order",
            "original": _line(f2),
            "line": 2,
            "tenant_id": "t1",
        }
    ]
    assert s.feed(add_funds("f3", T(10), "1.0000")) == []  # the clock is still T10
    assert briefs(s.feed(add_funds("f4", T(7), "1.0000"))) == [("dead", "out_of_order", 4)]
    assert s.tenant().balance_micros == 2_000_000
    # not remembered: f2 again, now in order, is applied
    assert s.feed(add_funds("f2", T(20), "1.0000")) == []
    assert s.tenant().balance_micros == 3_000_000


def test_out_of_order_is_checked_before_duplicates(run):
    start = call_start("c1", T(5))  # refused: no licence
    out = run([start, assign_licence("l1", T(10)), {**start, "ts": T(6)}])
    assert briefs(out) == [
        ("disconnect", "c1", "not_licensed", T(5)),
        ("charge", "c1", "0.0000"),
        ("dead", "out_of_order", 3),
    ]


# =========================================================== duplicates


def test_duplicate_call_start_re_emits_identical_bytes(run_raw):
    start = call_start("c1", T(0))  # licensed, no credits: no_funds
    out = run_raw([assign_licence("l1", T(-1)), start, start, {**start, "ts": T(5)}])
    assert [t for t, _ in out] == ["disconnects", "charges"] * 3
    assert out[0:2] == out[2:4] == out[4:6]
    assert b'"at":"2026-11-24T10:00:00.000Z"' in out[4][1]  # the first emission, not T5


def test_duplicate_call_end_re_emits_identical_bytes_and_charges_once(sim, run_raw):
    end = call_end("c1", T(5))
    events = funded("0.0050") + [call_start("c1", T(0)), end, end, {**end, "ts": T(9)}]
    out = run_raw(events)
    # 5 s = 0.0050 -> balance 0
    assert [t for t, _ in out] == ["charges", "notifications"] * 3
    assert out[0:2] == out[2:4] == out[4:6]
    s = sim()
    for e in events:
        s.feed(e)
    assert s.tenant().balance_micros == 0


def test_duplicate_commands_re_emit_and_change_nothing(sim):
    s = sim()
    sar = set_auto_recharge("a1", T(0), True, "0.5000", "1.0000")
    first = s.feed(sar)
    assert briefs(first) == [("payment", "t1:recharge:1", T(0))]
    pr = payment_result("r1", T(1), "t1:recharge:1")
    ok = s.feed(pr)
    assert briefs(ok) == [("recharge_succeeded", "t1:recharge_succeeded:t1:recharge:1", T(1))]
    assert s.feed(pr) == ok  # not unknown_request, no second lot
    af = add_funds("f1", T(2), "1.0000")
    assert s.feed(af) == [] and s.feed({**af, "ts": T(3)}) == []
    assert s.tenant().balance_micros == 2_000_000
    # the old set_auto_recharge again: the same payments record (#1, stamped T0), no #2
    assert s.feed({**sar, "ts": T(4)}) == first
    assert s.tenant().requests_n == 1


def test_duplicate_command_a_week_later_still_changes_nothing(sim):
    # edge 7 sets no time limit on duplicates
    s = sim()
    s.feed(add_funds("f1", T(0), "1.0000"))
    s.feed(add_funds("f1", "2026-12-02T10:00:00.000Z", "1.0000"))  # 8 days later
    assert s.tenant().balance_micros == 1_000_000


def test_call_end_after_an_engine_disconnect_emits_nothing(run):
    out = run(
        funded("0.0030") + [call_start("c1", T(0)), call_end("c1", T(10)), call_end("c1", T(11))]
    )
    assert briefs(out) == [
        ("disconnect", "c1", "funds_exhausted", T(3)),
        ("charge", "c1", "0.0030"),
        ("balance_zero", "t1:balance_zero:1", T(3)),
    ]


def test_call_end_for_an_unknown_call_is_dead_lettered_after_moving_the_clock(run):
    # The unknown call_end at T10 first moves the clock (edge 19): c1's disconnect at T3 comes
    # out before the dead-letter.
    stray = call_end("c9", T(10))
    out = run(funded("0.0030") + [call_start("c1", T(0)), stray])
    assert briefs(out) == [
        ("disconnect", "c1", "funds_exhausted", T(3)),
        ("charge", "c1", "0.0030"),
        ("balance_zero", "t1:balance_zero:1", T(3)),
        ("dead", "unknown_call", 4),
    ]
    assert out[-1] == {
        "topic": "dead-letters",
        "reason": "unknown_call",
        "original": _line(stray),
        "line": 4,
        "tenant_id": "t1",
    }


def test_unknown_call_is_not_remembered(run):
    out = run(funded() + [call_end("c5", T(0)), call_start("c5", T(1)), call_end("c5", T(6))])
    assert briefs(out) == [("dead", "unknown_call", 3), ("charge", "c5", "0.0050")]


# =========================================================== output order


def test_output_order_in_one_step_auto_recharge_off(run):
    # Trigger 0.5000, auto-recharge off, balance 1.0000: the call is cut at T1000 and charged
    # 1.0000 -> disconnect, charges, low_balance (crossed 0.5000), balance_zero (edge 9).
    out = run(
        funded()
        + [
            set_auto_recharge("a1", T(-50), False, "0.5000", "1.0000"),
            call_start("c1", T(0)),
            call_end("c1", T(1001)),
        ]
    )
    assert briefs(out) == [
        ("disconnect", "c1", "funds_exhausted", T(1000)),
        ("charge", "c1", "1.0000"),
        ("low_balance", "t1:low_balance:1", T(1000)),
        ("balance_zero", "t1:balance_zero:2", T(1000)),
    ]
    assert (out[2]["balance"], out[2]["trigger_amount"]) == ("0.0000", "0.5000")


def test_output_order_in_one_step_auto_recharge_on(run):
    # Same with auto-recharge on (1.0000 >= 0.5000: no request until the charge):
    # disconnect, charges, balance_zero, payments request (edge 9).
    out = run(
        funded()
        + [
            set_auto_recharge("a1", T(-50), True, "0.5000", "1.0000"),
            call_start("c1", T(0)),
            call_end("c1", T(1001)),
        ]
    )
    assert briefs(out) == [
        ("disconnect", "c1", "funds_exhausted", T(1000)),
        ("charge", "c1", "1.0000"),
        ("balance_zero", "t1:balance_zero:1", T(1000)),
        ("payment", "t1:recharge:1", T(1000)),
    ]


def test_output_order_pool_notices_first_then_call_by_call_in_call_start_order(run):
    # C1 (ann, credits: DE via international:US, which does not exist) from T0 on 0.0610:
    # it holds k+1 x 0.0010 after its boundary at Tk; at T61 it wants 0.0620 -> cut, 0.0610 -> 0.
    # P2 (bob) on a 1 min pool from T1: pool_80 at T49, empty at T61 -> cut (no licence).
    # At T61: pool_100 first, then C1's disconnect/charge/balance_zero, then P2's (edge 13).
    out = run(
        funded("0.0610")
        + [
            set_pool("p1", T(-60), "domestic", "US", 1),
            call_start("C1", T(0), to=DE_DEST),
            call_start("P2", T(1), user="bob"),
            call_end("C1", T(70)),
            call_end("P2", T(70)),
        ]
    )
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-11", T(49)),
        ("pool_100", "t1:pool_100:domestic:US:2026-11", T(61)),
        ("disconnect", "C1", "funds_exhausted", T(61)),
        ("charge", "C1", "0.0610"),
        ("balance_zero", "t1:balance_zero:1", T(61)),
        ("disconnect", "P2", "funds_exhausted", T(61)),
        ("charge", "P2", "0.0000"),
    ]


def test_output_order_calendar_step_pool_notice_funds_expired_balance_zero_payment(run):
    # 2027-01-01T00:00:00Z is both the month refill and the expiry of f1 (bought 2026-01-01).
    # bob's pool call from 2026-12-31T23:59:12 has used 48 s = 80 % of December's 60 s at that
    # instant: settling the pool for the refill gives pool_80 (month 2026-12, 12 s left), then f1
    # forfeits 1.0000, the balance is 0 (balance_zero), below the 0.5000 trigger -> request #1.
    # The call goes on on January's pool and ends at 00:00:10: pool paid 48 + 10 = 58 s.
    at = "2027-01-01T00:00:00.000Z"
    out = run(
        [
            add_funds("f1", "2026-01-01T00:00:00.000Z", "1.0000"),
            set_auto_recharge("a1", "2026-01-01T00:00:01.000Z", True, "0.5000", "1.0000"),
            set_pool("p1", "2026-12-31T00:00:00.000Z", "domestic", "US", 1),
            call_start("c1", "2026-12-31T23:59:12.000Z", user="bob"),
            call_end("c1", "2027-01-01T00:00:10.000Z"),
        ]
    )
    assert briefs(out) == [
        ("pool_80", "t1:pool_80:domestic:US:2026-12", at),
        ("funds_expired", "t1:funds_expired:f1", at),
        ("balance_zero", "t1:balance_zero:1", at),
        ("payment", "t1:recharge:1", at),
        ("charge", "c1", "0.0000"),
    ]
    assert (out[0]["month"], out[0]["remaining_seconds"]) == ("2026-12", 12)
    assert out[-1]["pool_seconds"] == 58


def test_timers_of_tenants_at_one_instant_fire_in_first_appearance_order(run):
    # zulu appears first, alpha second; alpha's call starts first. Both are cut at T3
    # (0.0030 each): zulu's records come first.
    out = run(
        [
            add_funds("z1", T(-10), "0.0030", tenant="zulu"),
            add_funds("a1", T(-9), "0.0030", tenant="alpha"),
            assign_licence("al", T(-8), tenant="alpha"),
            assign_licence("zl", T(-7), tenant="zulu"),
            call_start("c1", T(0), tenant="alpha"),
            call_start("c1", T(0), tenant="zulu"),
            call_end("c1", T(10), tenant="alpha"),
            call_end("c1", T(10), tenant="zulu"),
        ]
    )
    assert [(r["topic"], r["tenant_id"]) for r in out] == [
        ("disconnects", "zulu"),
        ("charges", "zulu"),
        ("notifications", "zulu"),
        ("disconnects", "alpha"),
        ("charges", "alpha"),
        ("notifications", "alpha"),
    ]
    assert {r["at"] for r in of(out, "disconnects")} == {T(3)}
    assert [r["notification_id"] for r in of(out, "notifications")] == [
        "zulu:balance_zero:1",
        "alpha:balance_zero:1",
    ]


def test_end_of_input_fires_call_timers_due_at_the_last_instant_only(sim):
    # t1 is cut at T3 (0.0030), t2 would be at T4 (0.0040), t3's pool empties at T3.5
    # (1 min pool from T-56.5; pool_80 at T-8.5). The last input is at T3.
    s = sim()
    events = (
        funded("0.0030", tenant="t1", ts=T(-60))
        + funded("0.0040", tenant="t2", ts=T(-60))
        + [
            set_pool("p3", T(-60), "domestic", "US", 1, tenant="t3"),
            call_start("c3", T("-56.5"), user="bob", tenant="t3"),
            call_start("c1", T(0), tenant="t1"),
            call_start("c2", T(0), tenant="t2"),
            assign_licence("last", T(3), "zed", tenant="t2"),
        ]
    )
    out = []
    for e in events:
        out += s.feed(e)
    assert briefs(out) == [
        ("pool_80", "t3:pool_80:domestic:US:2026-11", "2026-11-24T09:59:51.500Z")
    ]
    # the input at T3 comes before the call timers of T3; end of input fires those and stops
    assert briefs(s.finish()) == [
        ("disconnect", "c1", "funds_exhausted", T(3)),
        ("charge", "c1", "0.0030"),
        ("balance_zero", "t1:balance_zero:1", T(3)),
    ]
    assert list(s.tenant("t2").live) == ["c2"] and list(s.tenant("t3").live) == ["c3"]


def test_simulate_end_of_input_same_as_step_by_step(run):
    out = run(funded("0.0030") + [call_start("c1", T(0)), assign_licence("last", T(3), "zed")])
    assert briefs(out) == [
        ("disconnect", "c1", "funds_exhausted", T(3)),
        ("charge", "c1", "0.0030"),
        ("balance_zero", "t1:balance_zero:1", T(3)),
    ]
    out = run(
        funded("0.0030") + [call_start("c1", T(0)), assign_licence("last", T("2.999"), "zed")]
    )
    assert out == []


# =========================================================== balance vs holds, formats


def test_auto_recharge_and_notices_look_at_the_balance_not_at_holds(run):
    # Balance 1.0000, trigger 0.5000 (auto on). A 900 s call holds up to 0.9000, but the
    # balance stays 1.0000 until it ends; only then (0.1000) is a recharge requested.
    out = run(
        funded()
        + [
            set_auto_recharge("a1", T(-50), True, "0.5000", "1.0000"),
            call_start("c1", T(0)),
            call_end("c1", T(900)),
        ]
    )
    assert briefs(out) == [("charge", "c1", "0.9000"), ("payment", "t1:recharge:1", T(900))]


def test_durations_print_exactly_when_the_decimal_ends(run):
    # 2.25 s: billed 1 + ceil(1.25 / 1) = 3 s = 0.0030; duration printed 2.25
    out = run(funded() + [call_start("c1", T(0)), call_end("c1", T("2.25"))])
    rec = only_charge(out)
    assert (rec["duration_seconds"], rec["billed_seconds"], rec["charge"]) == (
        Decimal("2.25"),
        3,
        "0.0030",
    )


def test_credit_call_ending_at_its_answer_instant_costs_nothing(run):
    # d = 0: billed 0, charge 0, no connection fee (contracts §2), although 0.0700 was held.
    out = run(funded("0.0700") + [call_start("c1", T(0), to=GB_DEST), call_end("c1", T(0))])
    rec = only_charge(out)
    assert out == [rec]
    assert (rec["duration_seconds"], rec["billed_seconds"], rec["charge"], rec["disconnected"]) == (
        0,
        0,
        "0.0000",
        None,
    )


@pytest.mark.parametrize("b_start,accepted", [(930, True), (931, False)])
def test_a_new_call_sees_what_a_long_running_call_holds(run, b_start, accepted):
    # Balance 1.0000. A (0.0010/s, 1 s increments) from T0: before the call timers of Tk it has
    # prepaid k s (its boundaries T1..T(k-1) plus the first second), i.e. holds k x 0.0010.
    # B (GB: fee 0.0100 + 60 s = 0.0700 at answer) starting at T930 sees 1.0000 - 0.9300 = 0.0700:
    # accepted. Then A's boundary at T930 wants 0.9310 > 1.0000 - 0.0700 -> A cut at T930 (0.9300);
    # B's boundary at T990 wants 0.0760 > 0.0700 -> B cut at T990 (0.0700) -> balance 0.
    # At T931 B sees 1.0000 - 0.9310 = 0.0690 < 0.0700: no_funds; A runs to T1000 (1.0000).
    out = run(
        funded()
        + [
            call_start("A", T(0)),
            call_start("B", T(b_start), to=GB_DEST),
            call_end("A", T(2000)),
            call_end("B", T(2000)),
        ]
    )
    if accepted:
        assert briefs(out) == [
            ("disconnect", "A", "funds_exhausted", T(930)),
            ("charge", "A", "0.9300"),
            ("disconnect", "B", "funds_exhausted", T(990)),
            ("charge", "B", "0.0700"),
            ("balance_zero", "t1:balance_zero:1", T(990)),
        ]
    else:
        assert briefs(out) == [
            ("disconnect", "B", "no_funds", T(931)),
            ("charge", "B", "0.0000"),
            ("disconnect", "A", "funds_exhausted", T(1000)),
            ("charge", "A", "1.0000"),
            ("balance_zero", "t1:balance_zero:1", T(1000)),
        ]
