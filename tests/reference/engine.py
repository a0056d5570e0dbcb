"""Many tenants on one virtual clock: the driver behind `simulate` (and the tests).

It owns what spans tenants: validation, the global clock of a sorted input,
`out_of_order`, and the order in which tenants' timers fire at one instant
(the order tenants first appeared, edge rule 13).
"""

from __future__ import annotations

import heapq
from typing import Iterable, Iterator

from .clock import Instant
from .deck import Deck
from .events import Event, Rejection, parse_event
from .records import DEAD_LETTERS, dead_letter_record, dumps
from .tenant import AFTER, EVENTS, Output, Tenant


class Engine:
    def __init__(self, deck: Deck) -> None:
        self.deck = deck
        self.tenants: dict[str, Tenant] = {}
        self._order: dict[str, int] = {}
        self._heap: list[tuple[Instant, int, int, str]] = []
        self._queued: dict[str, tuple[Instant, int]] = {}
        self.clock: Instant | None = None

    def tenant(self, tenant_id: str) -> Tenant:
        t = self.tenants.get(tenant_id)
        if t is None:
            t = self.tenants[tenant_id] = Tenant(tenant_id, self.deck)
            self._order[tenant_id] = len(self._order)
        return t

    def _reschedule(self, tenant: Tenant) -> None:
        due = tenant.next_due()
        tid = tenant.tenant_id
        if due is None:
            self._queued.pop(tid, None)
        elif self._queued.get(tid) != due:
            self._queued[tid] = due
            heap = self._heap
            heapq.heappush(heap, (due[0], due[1], self._order[tid], tid))
            if len(heap) > 4 * len(self._queued) + 1024:
                self._compact()

    def _compact(self) -> None:
        """Rebuild the heap from the plans: one entry per tenant, stale ones dropped.

        Plans that flip (a far refill, a near call timer, back again) would otherwise pile
        up entries that only leave when their instant passes. An older entry equal to a
        plan fires nothing the plan's own entry does not: after a fire the tenant is
        re-planned, so a second equal entry is either stale or re-pushed anyway.
        """
        order = self._order
        self._heap = [(at, ph, order[tid], tid) for tid, (at, ph) in self._queued.items()]
        heapq.heapify(self._heap)

    def run_until(self, until: Instant, phase: int) -> list[Output]:
        """Fire every tenant's timers due before (until, phase), globally in time order."""
        out: list[Output] = []
        heap = self._heap
        while heap:
            top = heap[0]
            at = top[0]
            if at > until or (at == until and top[1] >= phase):  # not before (until, phase)
                break
            at, ph, _, tid = heapq.heappop(heap)
            if self._queued.get(tid) != (at, ph):
                continue  # stale entry: the tenant was re-planned since
            del self._queued[tid]
            tenant = self.tenants[tid]
            out.extend(tenant.fire(at, ph))
            self._reschedule(tenant)
            heap = self._heap  # `_reschedule` may have compacted it
        return out

    def feed(self, raw: bytes, line: int) -> list[Output]:
        """One input line: validate, move the clock (firing timers), apply."""
        parsed = parse_event(raw, self.deck.currency)
        if parsed.__class__ is Rejection:
            return [dead_letter(parsed.reason, raw, line, parsed.tenant_id)]
        ev: Event = parsed
        ts = ev.ts
        if self.clock is not None and ts < self.clock:
            return [dead_letter("out_of_order", raw, line, ev.tenant_id)]
        heap = self._heap
        out = self.run_until(ts, EVENTS) if heap and heap[0][0] <= ts else []  # else nothing is due
        self.clock = ts
        tenant = self.tenants.get(ev.tenant_id) or self.tenant(ev.tenant_id)
        emitted, reject = tenant.apply(ev)
        if out:
            out.extend(emitted)
        else:
            out = emitted  # apply's own list: nothing else holds it
        if reject is not None:
            out.append(dead_letter(reject, raw, line, ev.tenant_id))
        self._reschedule(tenant)
        return out

    def finish(self) -> list[Output]:
        """End of input: call timers due at the last instant still fire (edge rule 12)."""
        if self.clock is None:
            return []
        return self.run_until(self.clock, AFTER)


def dead_letter(reason: str, raw: bytes, line: int | None, tenant_id: str | None) -> Output:
    """A rejected input as a dead-letters output; `line` is the file line or the partition offset."""
    return DEAD_LETTERS, dumps(dead_letter_record(reason, raw, line, tenant_id))


def simulate_lines(deck: Deck, lines: Iterable[bytes]) -> Iterator[Output]:
    """Run an event file; blank lines count for line numbers and give nothing."""
    engine = Engine(deck)
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r\n")
        if not raw or raw.isspace():  # `not raw.strip()` without the copy: the same ASCII spaces
            continue
        yield from engine.feed(raw, number)
    yield from engine.finish()


def with_topic(topic: str, payload: bytes) -> bytes:
    """The simulate line: the record with `"topic"` added first."""
    return b'{"topic":"' + topic.encode() + b'",' + payload[1:]
