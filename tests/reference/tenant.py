"""The per-tenant decision core of accounts.md: pools, credit lots, live calls, auto-recharge.

Pure and deterministic: no I/O and no clock of its own. A driver (simulate,
the Faust agent, a test) hands it an `Event` via `apply`, or asks it to `fire`
the timers due at an instant, and gets back the output records as
`(topic, json_bytes)`; `next_due()` says when it must be woken next.

Units carry their names: `*_us` instants/durations in microseconds (int, or
Fraction when a shared pool empties between microseconds), `*_micros` money.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, MutableMapping, Sequence

from .clock import US_PER_S, Instant, add_twelve_months, month_label, next_month_start, seconds_json
from .deck import Deck, Rate
from .events import Event
from .money import MICROS_PER_CENTI_CENT, format_money
from .pricing import billed_seconds, is_e164, price_micros, rate_for
from .records import (
    CHARGES,
    DISCONNECTS,
    NOTIFICATIONS,
    PAYMENTS,
    charge_json,
    disconnect_json,
    dumps,
    notification_record,
    payment_record,
)

# Phases of one instant (edge rule 1): calendar timers, then input events, then call timers.
CALENDAR, EVENTS, CALL_TIMERS, AFTER = 0, 1, 2, 3

BACKOFF_US = 24 * 3600 * US_PER_S
# How long finished calls and commands are remembered for duplicate detection. Edge rule 7
# sets no limit, so none by default: a redelivered add_funds must never add money twice.
DEDUP_RETENTION_US: int | None = None
LICENSED_KINDS = frozenset({"user_outbound", "conference_dialout"})
_REFUSAL_STATUS = {"no_rate": "unrated", "bad_number": "invalid"}  # else "rated"

Output = tuple[str, bytes]


_RATES_MAX = 100_000
# (id(deck), toll-free?, number) -> (deck, row, lo, hi): `rate_for`'s answer for `at` in [lo, hi)
_RATES: dict[tuple[int, bool, str], tuple[Deck, Rate | None, Instant | None, Instant | None]] = {}


def _rate_for(deck: Deck, kind: str, from_number: str, to_number: str, at: Instant) -> Rate | None:
    """`rate_for`, remembered per number over the span in which its answer cannot change.

    A lookup depends on `at` only through the effective windows of the rows on the
    number's prefixes, so it is constant between two consecutive bounds of them.
    """
    tollfree = kind == "tollfree_inbound"
    number = from_number if tollfree else to_number
    key = (id(deck), tollfree, number)
    hit = _RATES.get(key)
    if hit is not None and hit[0] is deck:  # the entry keeps its deck alive: the id is not reused
        lo, hi = hit[2], hit[3]
        if (lo is None or at >= lo) and (hi is None or at < hi):
            return hit[1]
    row = rate_for(deck, kind, from_number, to_number, at)
    lo, hi = _constant_span(deck, "tollfree_inbound" if tollfree else "outbound", number[1:], at)
    if len(_RATES) >= _RATES_MAX:
        _RATES.clear()
    _RATES[key] = (deck, row, lo, hi)
    return row


def _constant_span(
    deck: Deck, service: str, digits: str, at: Instant
) -> tuple[Instant | None, Instant | None]:
    """The window bounds of rows on any prefix of `digits` nearest `at`: the last <= it, the first > it."""
    lo = hi = None
    by_prefix = deck.table.get(service) or {}
    for n in range(1, min(len(digits), deck.max_prefix_len) + 1):
        for row in by_prefix.get(digits[:n], ()):
            for bound in (row.effective_from_us, row.effective_to_us):
                if bound is None:
                    continue
                if bound <= at:
                    lo = bound if lo is None or bound > lo else lo
                else:
                    hi = bound if hi is None or bound < hi else hi
    return lo, hi


def _div(x: Instant, n: int) -> Instant:
    """Exact x / n, an int when it divides."""
    if isinstance(x, int) and x % n == 0:
        return x // n
    q = Fraction(x) / n
    return q.numerator if q.denominator == 1 else q


def _norm(x: Instant) -> Instant:
    if isinstance(x, Fraction) and x.denominator == 1:
        return x.numerator
    return x


@dataclass(slots=True)
class Pool:
    key: str
    allowance_us: int
    month: str
    settled_at: Instant
    used_us: Instant = 0
    calls: list[str] = field(default_factory=list)  # live calls draining it, in call-start order
    sent_80: bool = False
    sent_100: bool = False

    @property
    def remaining_us(self) -> Instant:
        return max(0, self.allowance_us - self.used_us)

    def settle(self, at: Instant) -> None:
        """Charge the pool for the talk time of its calls up to `at`."""
        if at > self.settled_at:
            if self.calls:
                self.used_us = _norm(self.used_us + len(self.calls) * (at - self.settled_at))
            self.settled_at = at
        assert self.used_us <= self.allowance_us or not self.calls, "pool drained below zero"

    def next_due(self) -> Instant | None:
        n = len(self.calls)
        if not n or self.allowance_us <= 0:
            return None
        due = self.settled_at + _div(self.remaining_us, n)
        mark_80 = self.allowance_us * 4 // 5
        if not self.sent_80 and self.used_us < mark_80:
            due = min(due, self.settled_at + _div(mark_80 - self.used_us, n))
        return due


@dataclass(slots=True)
class Lot:
    lot_id: str
    seq: int
    bought_at: Instant
    expires_at: Instant
    remaining_micros: int
    expired: bool = False
    forfeits: int = 0


@dataclass(slots=True)
class LiveCall:
    call_id: str
    seq: int
    user_id: str | None
    kind: str
    switch_id: Any
    row: Rate | None
    start: Instant
    pool_key: str | None = None  # the pool it started on
    on_pool: bool = False
    pool_end: Instant | None = None  # when it left the pool for credits
    credit_start: Instant | None = None
    with_fee: bool = False
    prepaid_s: int = 0
    hold_micros: int = 0

    def boundary(self) -> Instant | None:
        if self.credit_start is None:
            return None
        return self.credit_start + self.prepaid_s * US_PER_S


class Tenant:
    """All state of one tenant and the rules that change it."""

    def __init__(
        self, tenant_id: str, deck: Deck, seen: MutableMapping[str, Sequence[Output]] | None = None
    ):
        self.tenant_id = tenant_id
        self.deck = deck
        self.currency = deck.currency
        self.clock: Instant | None = None
        self.pools: dict[str, Pool] = {}
        self.month_due: int | None = None
        self.lots: list[Lot] = []
        self.lot_seq = 0
        self.balance_micros = 0
        self.holds_micros = 0
        self.licences: set[str] = set()
        self.auto_enabled = False
        self.trigger_micros: int | None = None
        self.recharge_micros: int | None = None
        self.outstanding: tuple[str, int] | None = None
        self.backoff_until: Instant | None = None
        self.requests_n = 0
        self.plain_notices_n = 0
        self.call_seq = 0
        self.live: dict[str, LiveCall] = {}
        # input key -> what it emitted, for re-emission (edge rule 7); kept as tuples: a long
        # simulate remembers every input, and the garbage collector skips tuples of bytes
        self.seen: MutableMapping[str, Sequence[Output]] = {} if seen is None else seen
        self.forget: deque[tuple[Instant, str]] = deque()

    # ----------------------------------------------------------------- timers

    def next_due(self) -> tuple[Instant, int] | None:
        """The earliest (instant, phase) at which `fire` has work, or None.

        Called after every input, so it skips what cannot be due: without live calls no
        pool drains (a pool's calls are live calls) and no increment is due. On a tie the
        first candidate wins (calendar, pools, credits), as `min` and `(instant, phase)`
        ordering would choose, so the same value is returned.
        """
        at = self._calendar_due()
        if not self.live:
            return None if at is None else (at, CALENDAR)
        phase = CALENDAR
        for pool in self.pools.values():
            if pool.calls:
                due = pool.next_due()
                if due is not None and (at is None or due < at):
                    at, phase = due, CALL_TIMERS
        due = self._credit_due()
        if due is not None and (at is None or due < at):
            at, phase = due, CALL_TIMERS
        return None if at is None else (at, phase)

    def _calendar_due(self) -> Instant | None:
        """The earliest of the month refill (if there are pools), the back-off end, a lot expiry."""
        at = self.month_due if self.pools else None
        backoff = self.backoff_until
        if backoff is not None and (at is None or backoff < at):
            at = backoff
        for lot in self.lots:
            if not lot.expired:
                if at is None or lot.expires_at < at:
                    at = lot.expires_at
                break
        return at

    def _credit_due(self) -> Instant | None:
        """When credit calls next need a look: the first increment boundary that could fail.

        Boundaries that must succeed are not fired one by one. Over the next
        D seconds a call's hold grows by at most rate * (D + next) / 60 plus one
        rounding step, so while the sum of those bounds fits in what is free
        (balance - holds), no boundary can fail: the core sleeps until that
        horizon and then catches the calls up (`_catch_up`). Near the end of
        the money the horizon shrinks below one increment and boundaries fire
        exactly, with their checks, as edge rule 1 orders them.
        """
        earliest: Instant | None = None
        rate_sum = slack = 0
        for call in self.live.values():
            if call.credit_start is None:
                continue
            assert call.row is not None
            b = call.credit_start + call.prepaid_s * US_PER_S
            if earliest is None or b < earliest:
                earliest = b
            rate = call.row.rate_micros_per_min
            rate_sum += rate
            slack += rate * call.row.next_increment_s + 60 * MICROS_PER_CENTI_CENT  # x60
        if earliest is None or rate_sum == 0:
            return None  # nothing can grow: a free call's hold never changes
        free_x60 = (self.balance_micros - self.holds_micros) * 60 - slack
        horizon_us = free_x60 * US_PER_S // rate_sum if free_x60 > 0 else 0
        if horizon_us <= 0 or self.clock is None:
            return earliest
        safe_until = self.clock + horizon_us
        return earliest if earliest > safe_until else safe_until

    def _catch_up(self, until: Instant) -> None:
        """Prepay every boundary before `until`; `_credit_due` proved they all succeed."""
        if not self.live:
            return
        for call in self.live.values():
            if call.credit_start is None:
                continue
            assert call.row is not None
            b = call.credit_start + call.prepaid_s * US_PER_S
            if b < until:
                step_us = call.row.next_increment_s * US_PER_S
                k = -((b - until) // step_us)  # boundaries b, b+step, ... before `until`
                call.prepaid_s += int(k) * call.row.next_increment_s
                self._set_hold(call, price_micros(call.row, call.prepaid_s, call.with_fee))

    def advance(self, until: Instant, phase: int) -> list[Output]:
        """Fire, in order, every timer due before (until, phase)."""
        out: list[Output] = []
        while (due := self.next_due()) is not None and due < (until, phase):
            out.extend(self.fire(*due))
        return out

    def fire(self, at: Instant, phase: int) -> list[Output]:
        """Run the timers of one phase of one instant."""
        self._tick(at)
        self._catch_up(at)
        out: list[Output] = []
        if phase == CALENDAR:
            self._fire_calendar(at, out)
        else:
            self._fire_calls(at, out)
        return out

    def _tick(self, at: Instant) -> None:
        if self.clock is None or at > self.clock:
            self.clock = at

    def _fire_calendar(self, at: Instant, out: list[Output]) -> None:
        if self.month_due is not None and self.month_due == at and self.pools:
            month = month_label(at)
            for pool in self.pools.values():
                pool.settle(at)
                self._pool_notices(pool, at, out)
                pool.used_us, pool.month, pool.sent_80, pool.sent_100 = 0, month, False, False
            self.month_due = next_month_start(at)
        before = self.balance_micros
        for lot in self.lots:
            if lot.expired:
                continue
            if lot.expires_at != at:
                break
            self._expire(lot, at, out)
        self._drop_empty_lots()
        if self.backoff_until is not None and self.backoff_until == at:
            self.backoff_until = None
        self._after_balance(before, at, out)

    def _fire_calls(self, at: Instant, out: list[Output]) -> None:
        for pool in self.pools.values():
            if pool.calls:
                pool.settle(at)
                self._pool_notices(pool, at, out)
        for call in list(self.live.values()):
            if call.on_pool:
                assert call.pool_key is not None
                if self.pools[call.pool_key].remaining_us <= 0:
                    self._move_to_credits(call, at, out)
            elif call.boundary() == at:
                self._next_increment(call, at, out)

    # ------------------------------------------------------------------ pools

    def _pool_notices(self, pool: Pool, at: Instant, out: list[Output]) -> None:
        if pool.allowance_us <= 0:
            return
        if not pool.sent_80 and pool.used_us * 5 >= pool.allowance_us * 4:
            pool.sent_80 = True
            out.append(self._pool_notice("pool_80", pool, at))
        if not pool.sent_100 and pool.remaining_us <= 0:
            pool.sent_100 = True
            out.append(self._pool_notice("pool_100", pool, at))

    def _pool_notice(self, kind: str, pool: Pool, at: Instant) -> Output:
        nid = f"{self.tenant_id}:{kind}:{pool.key}:{pool.month}"
        return NOTIFICATIONS, dumps(
            notification_record(
                nid,
                self.tenant_id,
                kind,
                at,
                pool=pool.key,
                month=pool.month,
                allowance_minutes=pool.allowance_us // (60 * US_PER_S),
                remaining_seconds=seconds_json(pool.remaining_us),
            )
        )

    def _pool_for(self, kind: str, row: Rate, usage_location: str | None) -> Pool | None:
        if row.number_type == "premium":
            return None
        if kind == "user_outbound" and usage_location is not None:
            plan = "domestic" if row.country == usage_location else "international"
            return self.pools.get(f"{plan}:{usage_location}")
        if kind == "conference_dialout" and row.zone == "A":
            return self.pools.get("conferencing")
        return None

    def _set_pool(self, at: Instant, key: str, minutes: int, out: list[Output]) -> None:
        allowance = minutes * 60 * US_PER_S
        pool = self.pools.get(key)
        if pool is None:
            pool = self.pools[key] = Pool(key, allowance, month_label(at), at)
            if self.month_due is None:
                self.month_due = next_month_start(at)
        else:
            pool.settle(at)
            pool.allowance_us = allowance
        self._pool_notices(pool, at, out)
        if pool.remaining_us <= 0:
            for call_id in list(pool.calls):
                self._move_to_credits(self.live[call_id], at, out)

    # ----------------------------------------------------------------- credits

    def _available_for(self, call: LiveCall | None) -> int:
        """Balance minus what the *other* live calls hold (edge rule 2)."""
        own = call.hold_micros if call is not None else 0
        return self.balance_micros - (self.holds_micros - own)

    def _set_hold(self, call: LiveCall, hold: int) -> None:
        self.holds_micros += hold - call.hold_micros
        call.hold_micros = hold
        assert self.holds_micros <= self.balance_micros, "holds exceed balance"

    def _licensed(self, call: LiveCall) -> bool:
        if call.kind == "tollfree_inbound":
            return True
        return (
            call.kind in LICENSED_KINDS
            and call.user_id is not None
            and call.user_id in self.licences
        )

    def _move_to_credits(self, call: LiveCall, at: Instant, out: list[Output]) -> None:
        """The pool ran dry: credits from `at` (increments restart, no fee) or a disconnect."""
        assert call.pool_key is not None and call.row is not None
        self.pools[call.pool_key].calls.remove(call.call_id)
        call.on_pool, call.pool_end = False, at
        hold = price_micros(call.row, call.row.first_increment_s, with_fee=False)
        if self._licensed(call) and hold <= self._available_for(call):
            call.credit_start, call.with_fee, call.prepaid_s = at, False, call.row.first_increment_s
            self._set_hold(call, hold)
        else:
            self._finish(call, at, "funds_exhausted", out)

    def _next_increment(self, call: LiveCall, at: Instant, out: list[Output]) -> None:
        assert call.row is not None
        prepaid = call.prepaid_s + call.row.next_increment_s
        hold = price_micros(call.row, prepaid, call.with_fee)
        if hold <= self._available_for(call):
            call.prepaid_s = prepaid
            self._set_hold(call, hold)
        else:
            self._finish(call, at, "funds_exhausted", out)

    # -------------------------------------------------------------------- lots

    def _add_lot(self, lot_id: str, amount: int, at: Instant) -> None:
        self.lot_seq += 1
        lot = Lot(lot_id, self.lot_seq, at, add_twelve_months(at), amount)
        self.lots.append(lot)
        self.lots.sort(key=lambda x: (x.expires_at, x.seq))
        self.balance_micros += amount

    def _expire(self, lot: Lot, at: Instant, out: list[Output]) -> None:
        """Forfeit what of the lot no live hold needs (edge rule 3)."""
        lot.expired = True
        self._forfeit_unheld(at, out)

    def _forfeit_unheld(self, at: Instant, out: list[Output]) -> None:
        need = self.holds_micros
        for lot in self.lots:
            covered = min(lot.remaining_micros, max(0, need))
            need -= covered
            if not lot.expired:
                break
            excess = lot.remaining_micros - covered
            if excess > 0:
                lot.remaining_micros = covered
                self.balance_micros -= excess
                lot.forfeits += 1
                suffix = "" if lot.forfeits == 1 else f":{lot.forfeits}"
                nid = f"{self.tenant_id}:funds_expired:{lot.lot_id}{suffix}"
                out.append(
                    (
                        NOTIFICATIONS,
                        dumps(
                            notification_record(
                                nid,
                                self.tenant_id,
                                "funds_expired",
                                at,
                                lot_id=lot.lot_id,
                                amount=format_money(excess),
                                currency=self.currency,
                            )
                        ),
                    )
                )

    def _drop_empty_lots(self) -> None:
        for lot in self.lots:
            if lot.remaining_micros == 0:
                self.lots = [lot for lot in self.lots if lot.remaining_micros > 0]
                return

    def _deduct(self, amount: int, at: Instant, out: list[Output]) -> None:
        """Take a finished call's charge from the lots that expire first."""
        assert amount <= self.balance_micros, "charge exceeds balance"
        self.balance_micros -= amount
        for lot in self.lots:
            if amount == 0:
                break
            take = min(lot.remaining_micros, amount)
            lot.remaining_micros -= take
            amount -= take
        if self.lots and self.lots[0].expired:
            self._forfeit_unheld(at, out)
        self._drop_empty_lots()

    # ---------------------------------------------------------- auto-recharge

    def _plain_notice(self, kind: str, at: Instant, **details: Any) -> Output:
        self.plain_notices_n += 1
        nid = f"{self.tenant_id}:{kind}:{self.plain_notices_n}"
        return NOTIFICATIONS, dumps(notification_record(nid, self.tenant_id, kind, at, **details))

    def _after_balance(self, before: int, at: Instant, out: list[Output]) -> None:
        """Edge rule 9: low_balance, balance_zero, then the payments request."""
        after = self.balance_micros
        trigger = self.trigger_micros
        if not self.auto_enabled and trigger is not None and before >= trigger > after:
            out.append(
                self._plain_notice(
                    "low_balance",
                    at,
                    balance=format_money(after),
                    trigger_amount=format_money(trigger),
                )
            )
        if before > 0 and after == 0:
            out.append(self._plain_notice("balance_zero", at, balance=format_money(after)))
        self._maybe_recharge(at, out)

    def _maybe_recharge(self, at: Instant, out: list[Output]) -> None:
        """Level-triggered auto-recharge (edge rules 8 and 21)."""
        if (
            self.auto_enabled
            and self.trigger_micros is not None
            and self.recharge_micros is not None
            and self.balance_micros < self.trigger_micros
            and self.outstanding is None
            and self.backoff_until is None
        ):
            self.requests_n += 1
            request_id = f"{self.tenant_id}:recharge:{self.requests_n}"
            self.outstanding = (request_id, self.recharge_micros)
            out.append(
                (
                    PAYMENTS,
                    dumps(
                        payment_record(
                            request_id, self.tenant_id, self.recharge_micros, self.currency, at
                        )
                    ),
                )
            )

    # ------------------------------------------------------------------ calls

    def _refuse(self, ev: Event, reason: str, row: Rate | None, out: list[Output]) -> None:
        f = ev.fields
        out.append(
            (DISCONNECTS, disconnect_json(self.tenant_id, ev.key, f["switch_id"], reason, ev.ts))
        )
        status = _REFUSAL_STATUS.get(reason, "rated")
        currency = row.currency if row is not None else self.currency
        out.append(
            (
                CHARGES,
                charge_json(
                    self.tenant_id,
                    ev.key,
                    f["user_id"],
                    f["kind"],
                    status,
                    reason,
                    row,
                    ev.ts,
                    ev.ts,
                    0,
                    0,
                    currency,
                    None,
                    0,
                    reason,
                ),
            )
        )

    def _start(self, ev: Event, at: Instant, out: list[Output]) -> None:
        f = ev.fields
        kind = f["kind"]
        self.call_seq += 1
        if kind == "inbound":
            self.live[ev.key] = LiveCall(
                ev.key, self.call_seq, f["user_id"], kind, f["switch_id"], None, at
            )
            return
        if not (is_e164(f["from"]) and is_e164(f["to"])):
            return self._refuse(ev, "bad_number", None, out)
        row = _rate_for(self.deck, kind, f["from"], f["to"], at)
        if row is None:
            return self._refuse(ev, "no_rate", None, out)
        call = LiveCall(ev.key, self.call_seq, f["user_id"], kind, f["switch_id"], row, at)
        pool = self._pool_for(kind, row, f["usage_location"])
        if pool is not None:
            pool.settle(at)
            self._pool_notices(pool, at, out)
            if pool.remaining_us > 0:
                call.pool_key, call.on_pool = pool.key, True
                pool.calls.append(call.call_id)
                self.live[call.call_id] = call
                return
        if not self._licensed(call):
            return self._refuse(ev, "not_licensed", row, out)
        hold = price_micros(row, row.first_increment_s)
        if hold > self._available_for(None):
            return self._refuse(ev, "no_funds", row, out)
        call.credit_start, call.with_fee, call.prepaid_s = at, True, row.first_increment_s
        self.live[call.call_id] = call
        self._set_hold(call, hold)

    def _finish(
        self, call: LiveCall, end: Instant, disconnected: str | None, out: list[Output]
    ) -> None:
        """Close a call at `end` (its call_end ts, or the disconnect instant) and charge its credit part."""
        del self.live[call.call_id]
        pool_us: Instant = 0
        if call.pool_key is not None:
            pool = self.pools[call.pool_key]
            if call.on_pool:
                pool.settle(max(end, pool.settled_at))
                pool.calls.remove(call.call_id)
                call.pool_end = end
                self._pool_notices(pool, end, out)
            assert call.pool_end is not None
            pool_us = max(0, min(end, call.pool_end) - call.start)
        billed, charge = 0, 0
        if call.credit_start is not None:
            assert call.row is not None
            billed = billed_seconds(
                end - call.credit_start, call.row.first_increment_s, call.row.next_increment_s
            )
            charge = price_micros(call.row, billed, call.with_fee)
            assert charge <= call.hold_micros, "a call charged more than it held"
            self._set_hold(call, 0)
        if disconnected is not None:
            out.append(
                (
                    DISCONNECTS,
                    disconnect_json(
                        self.tenant_id, call.call_id, call.switch_id, disconnected, end
                    ),
                )
            )
        row = call.row
        status = "free" if call.kind == "inbound" else "rated"
        out.append(
            (
                CHARGES,
                charge_json(
                    self.tenant_id,
                    call.call_id,
                    call.user_id,
                    call.kind,
                    status,
                    None,
                    row,
                    call.start,
                    end,
                    billed,
                    charge,
                    row.currency if row is not None else self.currency,
                    call.pool_key,
                    pool_us,
                    disconnected,
                ),
            )
        )
        before = self.balance_micros
        if charge:
            self._deduct(charge, end, out)
        self._after_balance(before, end, out)
        if DEDUP_RETENTION_US is not None:
            self._remember_until(self._clock(), "call_start\x1f" + call.call_id)

    # ----------------------------------------------------------------- events

    def _clock(self) -> Instant:
        assert self.clock is not None
        return self.clock

    def apply(self, ev: Event) -> tuple[list[Output], str | None]:
        """Apply one valid input at the tenant's clock; returns outputs and a dead-letter reason."""
        at = ev.ts
        if self.clock is None or at > self.clock:
            self.clock = at
        else:
            at = self.clock  # a late event (on the wire) applies at the tenant's clock
        self._catch_up(at)
        if self.forget:
            self._forget_old(at)
        t = ev.type
        seen_key = (
            f"{t}\x1f{ev.key}" if t == "call_start" or t == "call_end" else f"cmd\x1f{ev.key}"
        )
        previous = self.seen.get(seen_key)
        if previous is not None:
            return list(previous), None
        out: list[Output] = []
        reject = self._dispatch(ev, at, out)
        if reject is not None:
            return out, reject
        self.seen[seen_key] = tuple(out)  # a copy: the caller may extend `out`
        if DEDUP_RETENTION_US is not None and (t != "call_start" or ev.key not in self.live):
            self._remember_until(at, seen_key)
        return out, None

    def _remember_until(self, now: Instant, seen_key: str) -> None:
        if DEDUP_RETENTION_US is not None:
            self.forget.append((now + DEDUP_RETENTION_US, seen_key))

    def _dispatch(self, ev: Event, at: Instant, out: list[Output]) -> str | None:
        f = ev.fields
        t = ev.type
        if t == "call_start":
            self._start(ev, at, out)
        elif t == "call_end":
            call = self.live.get(ev.key)
            if call is not None:
                self._finish(call, ev.ts, None, out)  # a call_end caps the call at its own ts
            elif ("call_start\x1f" + ev.key) not in self.seen:
                return "unknown_call"
        elif t == "add_funds":
            self._add_lot(ev.key, f["amount"], at)
            self.backoff_until = None
            self._maybe_recharge(at, out)
        elif t == "set_auto_recharge":
            self.auto_enabled = f["enabled"]
            if f["trigger"] is not None:
                self.trigger_micros = f["trigger"]
            if f["recharge"] is not None:
                self.recharge_micros = f["recharge"]
            self.backoff_until = None
            self._maybe_recharge(at, out)
        elif t == "payment_result":
            return self._payment_result(f, at, out)
        elif t == "assign_licence":
            self.licences.add(f["user_id"])
        elif t == "remove_licence":
            self.licences.discard(f["user_id"])
        elif t == "set_pool":
            self._set_pool(at, f["pool"], f["minutes"], out)
        return None

    def _payment_result(self, f: dict[str, Any], at: Instant, out: list[Output]) -> str | None:
        if self.outstanding is None or self.outstanding[0] != f["request_id"]:
            return "unknown_request"
        request_id, amount = self.outstanding
        self.outstanding = None
        kind = "recharge_succeeded" if f["status"] == "succeeded" else "recharge_failed"
        details: dict[str, Any] = {"request_id": request_id, "amount": format_money(amount)}
        if kind == "recharge_failed":
            details["reason"] = f["reason"]
        out.append(
            (
                NOTIFICATIONS,
                dumps(
                    notification_record(
                        f"{self.tenant_id}:{kind}:{request_id}", self.tenant_id, kind, at, **details
                    )
                ),
            )
        )
        if kind == "recharge_succeeded":
            self._add_lot(request_id, amount, at)
            self._maybe_recharge(at, out)
        else:
            self.backoff_until = at + BACKOFF_US
        return None

    def _forget_old(self, now: Instant) -> None:
        """Drop dedup memory past its retention, so a long-lived tenant stays bounded."""
        while self.forget and self.forget[0][0] <= now:
            _, key = self.forget.popleft()
            self.seen.pop(key, None)
