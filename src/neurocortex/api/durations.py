"""Scala `Duration` strings as TheHive, Cortex's UI and cortex4py send them in `atMost`."""

from __future__ import annotations

import re

from neurocortex.errors import BadRequestError

UNITS = {
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("ms", "milli", "millis", "millisecond", "milliseconds"), 1e-3),
    **dict.fromkeys(("µs", "micro", "micros", "microsecond", "microseconds"), 1e-6),
    **dict.fromkeys(("ns", "nano", "nanos", "nanosecond", "nanoseconds"), 1e-9),
}
INFINITE = ("inf", "plusinf", "+inf", "duration.inf")
PATTERN = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)([a-zµ]+)$")


def parse_duration(text: str) -> float | None:
    """Seconds, or None for an infinite duration (`Inf`: wait until the job is done)."""
    compact = re.sub(r"\s+", "", text).lower()
    if compact in INFINITE:
        return None
    match = PATTERN.match(compact)
    if not match or match.group(2) not in UNITS:
        raise BadRequestError(f"Invalid duration {text!r}: expected e.g. 1minute, 5s, 1 second or Inf")
    return float(match.group(1)) * UNITS[match.group(2)]
