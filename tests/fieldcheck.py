"""Field-level comparison of a tap record with the emulator's object (the allowed differences).

Allowed: `custom.X` arrives as `custom_X`; timestamps as the same instant (any format); free-form
values (`contentMediaType: application/json`) as JSON text; numbers by value. Anything else must
be equal.
"""

from __future__ import annotations

import json
from typing import Any

from tests.emulator.timeutil import parse_dt


def same(prop: dict[str, Any], truth: Any, got: Any) -> bool:
    """Is `got` (what the tap sent for a property) Close's `truth`?"""
    if prop.get("contentMediaType") == "application/json":
        return (None if got is None else json.loads(got)) == truth
    if truth is None or got is None:
        return truth is got
    if prop.get("format") == "date-time" and isinstance(truth, str):
        return parse_dt(truth) == parse_dt(got)
    if isinstance(truth, bool) or isinstance(got, bool):
        return truth is got
    if isinstance(truth, (int, float)) and isinstance(got, (int, float)):
        return float(truth) == float(got)
    return truth == got


def differences(schema: dict[str, Any], truth: dict[str, Any], got: dict[str, Any],
                column: Any = None) -> list[str]:
    """The fields of `truth` that `got` lacks or carries with another value (`column` maps a
    `custom.X` key to its column)."""
    props = schema["properties"]
    out = []
    for key, value in truth.items():
        name = column(key) if column and key.startswith("custom.") else key
        if name not in props:
            out.append(f"{key}: not in the schema")
        elif not same(props[name], value, got.get(name)):
            out.append(f"{key}: {value!r} != {got.get(name)!r}")
    return out
