"""Pricing a call (contracts.md section 2): increments, connection fee, one half-up rounding."""

from __future__ import annotations

import re

from .clock import US_PER_S, Instant
from .deck import Deck, Rate
from .money import round_micros_to_4dp

KINDS = frozenset({"user_outbound", "conference_dialout", "tollfree_inbound", "inbound"})
_E164_RE = re.compile(r"\+[0-9]{8,15}")


def is_e164(number: object) -> bool:
    return isinstance(number, str) and _E164_RE.fullmatch(number) is not None


def billed_seconds(duration_us: Instant, first_s: int, next_s: int) -> int:
    """Whole seconds billed for a duration: 0 if none, the first increment, then whole next ones."""
    if duration_us <= 0:
        return 0
    first_us = first_s * US_PER_S
    if duration_us <= first_us:
        return first_s
    step_us = next_s * US_PER_S
    steps = -((first_us - duration_us) // step_us)  # ceil((d - first) / next)
    return first_s + int(steps) * next_s


def price_micros(rate: Rate, billed_s: int, with_fee: bool = True) -> int:
    """`fee + rate * billed / 60`, exact, rounded once half-up to 4 places (in micros)."""
    if billed_s <= 0:
        return 0
    fee = rate.fee_micros if with_fee else 0
    return round_micros_to_4dp(fee * 60 + rate.rate_micros_per_min * billed_s, 60)


def rate_for(
    deck: Deck, kind: str, from_number: str, to_number: str, start_us: Instant
) -> Rate | None:
    """The deck row pricing a call of `kind`: outbound rows on `to`, toll-free inbound on `from`."""
    if kind == "tollfree_inbound":
        return deck.lookup("tollfree_inbound", from_number[1:], start_us)
    return deck.lookup("outbound", to_number[1:], start_us)
