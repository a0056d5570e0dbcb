"""Exact money: integer micro-units (1e-6), formatted once, half-up, to 4 places.

No binary float ever holds an amount. Deck rates carry up to 6 decimals, so
micro-units hold them exactly; every amount that leaves the engine is a
multiple of 100 micros (4 decimal places).
"""

from __future__ import annotations

import re

MICROS_PER_UNIT = 1_000_000
MICROS_PER_CENTI_CENT = 100  # one unit of the 4th decimal place

_DECIMAL_RE = re.compile(r"^([+-]?)([0-9]+)(?:\.([0-9]*))?$|^([+-]?)\.([0-9]+)$")


class MoneyError(ValueError):
    """A text that is not an exact decimal amount of the allowed precision."""


def parse_decimal_micros(text: str, max_places: int = 6) -> int:
    """Parse a decimal string into signed micro-units, refusing lost precision."""
    m = _DECIMAL_RE.match(text.strip())
    if m is None:
        raise MoneyError(f"{text!r} is not a decimal number")
    if m.group(2) is not None:
        sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    else:
        sign, whole, frac = m.group(4), "0", m.group(5)
    stripped = frac.rstrip("0")
    if len(stripped) > max_places:
        raise MoneyError(f"{text!r} has more than {max_places} decimal places")
    micros = int(whole) * MICROS_PER_UNIT + int((stripped or "0").ljust(6, "0"))
    return -micros if sign == "-" else micros


def div_round_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero (half-up for amounts >= 0)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if numerator >= 0:
        return (2 * numerator + denominator) // (2 * denominator)
    return -((-2 * numerator + denominator) // (2 * denominator))


def round_micros_to_4dp(micros_times_den: int, den: int = 1) -> int:
    """Round an exact amount `micros_times_den / den` micros to whole 1e-4 units, in micros."""
    return div_round_half_up(micros_times_den, den * MICROS_PER_CENTI_CENT) * MICROS_PER_CENTI_CENT


_PLACES = [f".{i:04d}" for i in range(10_000)]  # the four places' texts, by value


def format_money(micros: int) -> str:
    """Format a 4-place amount held in micros as `"12.3400"`."""
    if micros >= 0 and not micros % MICROS_PER_CENTI_CENT:  # the usual case, without formatting
        whole, part = divmod(micros, MICROS_PER_UNIT)
        return str(whole) + _PLACES[part // MICROS_PER_CENTI_CENT]
    assert micros % MICROS_PER_CENTI_CENT == 0, f"amount {micros} micros is not 4-place"
    q = -micros // MICROS_PER_CENTI_CENT
    return f"-{q // 10_000}" + _PLACES[q % 10_000]


ZERO_MONEY = format_money(0)
