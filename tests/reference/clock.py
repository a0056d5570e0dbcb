"""Instants and durations as exact numbers of microseconds since the Unix epoch.

An instant is an `int` of microseconds, or a `Fraction` when a pool shared by
n calls empties at a non-whole microsecond (R/n). Python mixes both exactly,
so every comparison and sum stays exact; only printing floors or rounds.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from functools import lru_cache
from typing import Union

import orjson

Instant = Union[int, Fraction]

US_PER_S = 1_000_000
US_PER_DAY = 86_400 * US_PER_S
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# ASCII digits only, and the whole text must match (`$` alone would let a trailing "\n" in).
_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,12}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))",
    re.ASCII,
)
_TS_MATCH = _TS_RE.fullmatch
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)


class TimestampError(ValueError):
    """A timestamp that is not ISO 8601 with a zone."""


@lru_cache(maxsize=4096)
def _day_us(year: int, month: int, day: int) -> int:
    return (datetime(year, month, day, tzinfo=timezone.utc) - _EPOCH) // timedelta(microseconds=1)


# Already-validated pieces of timestamps. A string matching `_TS_RE` is always date and
# separator (11 chars) + `HH` + `:MM:SS` + tail (fraction and zone), and its instant is the sum
# of the pieces' values, so a text whose pieces are all known valid parses to the same value
# without the regex. All valid `HH` and `:MM:SS` are listed; only the slow path (the full regex)
# adds dates and tails. Hours met are remembered whole ("YYYY-MM-DDTHH"): three small tables,
# probed once each, whatever the spread of the instants (a table of minutes would miss often).
_DAY_BY_TEXT: dict[str, int] = {}  # "YYYY-MM-DDT" (with its separator) -> midnight UTC
_H_BY_TEXT = {f"{h:02d}": h * 3600 * US_PER_S for h in range(24)}
# every valid ":MM:SS", in order (so a text's index is its second of the hour; bulk.py relies on it)
MM_SS_US = {f":{m:02d}:{s:02d}": (m * 60 + s) * US_PER_S for m in range(60) for s in range(60)}
_TAIL_BY_TEXT: dict[str, int] = {"Z": 0, "z": 0}  # ".250+01:00" -> fraction minus offset (us)
_CACHE_MAX = 200_000
_HOUR_BY_TEXT: dict[str, int] = {}  # "YYYY-MM-DDTHH" -> its instant (a known date, a valid hour)
_HOURS_MAX = 100_000  # eleven years of hours


def parse_instant(text: object) -> Instant:
    """Parse ISO 8601 with a zone (`Z` or `±HH:MM`) into exact epoch microseconds."""
    if text.__class__ is str:
        hour = _HOUR_BY_TEXT.get(text[:13])  # type: ignore[index]
        if hour is None:
            hour = _known_hour(text)  # type: ignore[arg-type]
        if hour is not None:
            ms = MM_SS_US.get(text[13:19])  # type: ignore[index]
            if ms is not None:
                tail = _TAIL_BY_TEXT.get(text[19:])  # type: ignore[index]
                if tail is not None:
                    return hour + ms + tail
    elif not isinstance(text, str):
        raise TimestampError("timestamp is not a string")
    return _parse_instant_slow(text)  # type: ignore[arg-type]


def _known_hour(text: str) -> int | None:
    """The instant of `text[:13]` when its date is known valid and its `HH` is; else None."""
    day_us = _DAY_BY_TEXT.get(text[:11])
    h = _H_BY_TEXT.get(text[11:13])
    if day_us is None or h is None:
        return None
    if len(_HOUR_BY_TEXT) < _HOURS_MAX:
        _HOUR_BY_TEXT[text[:13]] = day_us + h
    return day_us + h


def _parse_instant_slow(text: str) -> Instant:
    m = _TS_MATCH(text)
    if m is None:
        raise TimestampError(f"{text!r} is not ISO 8601 with a zone")
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    hour, minute, second = int(h), int(mi), int(s)
    if hour > 23 or minute > 59 or second > 59 or int(oh or 0) > 23 or int(om or 0) > 59:
        raise TimestampError(f"{text!r} has a field out of range")
    try:
        day_us = _day_us(int(y), int(mo), int(d))
    except ValueError as exc:
        raise TimestampError(f"{text!r}: {exc}") from None
    tod = ((hour * 60 + minute) * 60 + second) * US_PER_S
    tail: Instant = 0
    if frac:
        if len(frac) <= 6:
            tail += int(frac.ljust(6, "0"))
        else:
            tail += Fraction(int(frac), 10 ** (len(frac) - 6))
    if not z:
        offset = (int(oh) * 60 + int(om)) * 60 * US_PER_S
        tail = tail - offset if sign == "+" else tail + offset
    if len(_DAY_BY_TEXT) < _CACHE_MAX:
        _DAY_BY_TEXT[text[:11]] = day_us
    if tail.__class__ is int and len(_TAIL_BY_TEXT) < _CACHE_MAX:
        _TAIL_BY_TEXT[text[19:]] = tail  # type: ignore[assignment]
    return day_us + tod + tail


# Printing pieces: "YYYY-MM-DDTHH:MM" by minute since the epoch (filled as minutes are met,
# from "YYYY-MM-DDT" by day), ":SS." by second, "mmmZ" by millisecond; an instant's text is
# their sum.
_MINUTE_TEXT: dict[int, str] = {}
_MINUTE_TEXTS_MAX = 50_000
_DAY_TEXT: dict[int, str] = {}
_HM_TEXT = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
_SEC_TEXT = [f":{s:02d}." for s in range(60)]
_MS_Z_TEXT = [f"{ms:03d}Z" for ms in range(1000)]


def _minute_text(minute: int) -> str:
    day, of_day = divmod(minute, 1440)
    day_text = _DAY_TEXT.get(day)
    if day_text is None:
        day_text = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        if len(_DAY_TEXT) < _CACHE_MAX:
            _DAY_TEXT[day] = day_text
    text = day_text + _HM_TEXT[of_day]
    if len(_MINUTE_TEXT) < _MINUTE_TEXTS_MAX:
        _MINUTE_TEXT[minute] = text
    return text


def format_instant(us: Instant) -> str:
    """`YYYY-MM-DDTHH:MM:SS.mmmZ`, floored to the millisecond."""
    minute, ms = divmod(us // 1000 if us.__class__ is int else int(us // 1000), 60_000)
    sec, ms = divmod(ms, 1000)
    return (_MINUTE_TEXT.get(minute) or _minute_text(minute)) + _SEC_TEXT[sec] + _MS_Z_TEXT[ms]


_MS_TEXT = [""] + [f".{ms:03d}".rstrip("0") for ms in range(1, 1000)]  # ".25" for 250 ms


def seconds_text(us: Instant) -> str:
    """A count of seconds as JSON number text: exact when the decimal ends, else 3 places half-up."""
    if us.__class__ is int:  # whole microseconds: the decimal always ends (fast path, same text)
        if us >= 0 and not us % 1000:  # whole milliseconds, the usual case
            whole, part = divmod(us, US_PER_S)
            return f"{whole}{_MS_TEXT[part // 1000]}"
        if us >= 0:
            whole, part = divmod(us, US_PER_S)
            sign = ""
        else:
            whole, part = divmod(-us, US_PER_S)
            sign = "-"
        if not part:
            return f"{sign}{whole}"
        if not part % 1000:
            return f"{sign}{whole}{_MS_TEXT[part // 1000]}"
        return f"{sign}{whole}.{part:06d}".rstrip("0")
    s = Fraction(us) / US_PER_S
    den = s.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den == 1:
        places = max(twos, fives)
        scaled = s.numerator * (10**places // s.denominator)
    else:
        places = 3
        num = s.numerator * 1000
        q, r = divmod(abs(num), s.denominator)
        if 2 * r >= s.denominator:
            q += 1
        scaled = q if num >= 0 else -q
    sign = "-" if scaled < 0 else ""
    digits = str(abs(scaled))
    if places == 0:
        return sign + digits
    digits = digits.rjust(places + 1, "0")
    whole, part = digits[:-places], digits[-places:].rstrip("0")
    return f"{sign}{whole}.{part}" if part else f"{sign}{whole}"


def seconds_json(us: Instant) -> orjson.Fragment:
    """Seconds as an exact JSON number (an orjson fragment, so no float is involved)."""
    return orjson.Fragment(seconds_text(us))


def to_datetime(us: Instant) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us // 1))


def from_datetime(dt: datetime) -> int:
    return (dt - _EPOCH) // timedelta(microseconds=1)


def day_start_us(iso_date: str) -> int:
    """Midnight UTC of an ISO date `YYYY-MM-DD`."""
    m = _DATE_RE.fullmatch(iso_date)
    if m is None:
        raise ValueError(f"{iso_date!r} is not an ISO date")
    return _day_us(int(m[1]), int(m[2]), int(m[3]))


def next_month_start(us: Instant) -> int:
    """00:00 UTC on the 1st of the month after the one holding `us`."""
    dt = to_datetime(us)
    y, m = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
    return _day_us(y, m, 1)


def month_label(us: Instant) -> str:
    dt = to_datetime(us)
    return f"{dt.year:04d}-{dt.month:02d}"


def add_twelve_months(us: Instant) -> Instant:
    """Same UTC time of day, same day of month, a year later (the month's last day if missing)."""
    dt = to_datetime(us)
    try:
        target = dt.replace(year=dt.year + 1)
    except ValueError:  # 29 February
        target = dt.replace(year=dt.year + 1, day=28)
    return from_datetime(target) + (us - from_datetime(dt))
