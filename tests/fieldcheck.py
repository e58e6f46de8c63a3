"""Field-level comparison of a tap record with the emulator's object (the allowed differences).

Allowed: `custom.X` arrives as `custom_X`; timestamps as the same instant (any format); free-form
values (`contentMediaType: application/json`) as JSON text; numbers by value. Anything else must
be equal, nested objects and arrays included.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.emulator.timeutil import parse_dt


def _diff(prop: dict[str, Any], truth: Any, got: Any, where: str) -> list[str]:
    """Where `got` (what the tap sent for a property) is not Close's `truth`."""
    if prop.get("contentMediaType") == "application/json":
        ok = (None if got is None else json.loads(got)) == truth
    elif truth is None or got is None:
        ok = truth is got
    elif prop.get("format") == "date-time" and isinstance(truth, str):
        ok = parse_dt(truth) == parse_dt(got)
    elif isinstance(truth, bool) or isinstance(got, bool):
        ok = truth is got
    elif isinstance(truth, (int, float)) and isinstance(got, (int, float)):
        ok = float(truth) == float(got)
    elif isinstance(truth, list) and isinstance(got, list) and "items" in prop:
        if len(truth) != len(got):
            return [f"{where}: {len(truth)} items != {len(got)}"]
        return [d for i, (t, g) in enumerate(zip(truth, got, strict=True))
                for d in _diff(prop["items"], t, g, f"{where}[{i}]")]
    elif isinstance(truth, dict) and isinstance(got, dict) and "properties" in prop:
        return _object_diff(prop["properties"], truth, got, where + ".")
    else:
        ok = truth == got
    return [] if ok else [f"{where}: {truth!r} != {got!r}"]


def _object_diff(props: dict[str, Any], truth: dict[str, Any], got: dict[str, Any],
                 prefix: str = "", column: Callable[[str], str] | None = None) -> list[str]:
    out = []
    for key, value in truth.items():
        name = column(key) if column and key.startswith("custom.") else key
        if name not in props:
            out.append(f"{prefix}{key}: not in the schema")
        else:
            out += _diff(props[name], value, got.get(name), prefix + key)
    return out


def differences(schema: dict[str, Any], truth: dict[str, Any], got: dict[str, Any],
                column: Callable[[str], str] | None = None) -> list[str]:
    """The fields of `truth` (an emulator object) that the record `got` lacks or carries with
    another value (`column` maps a `custom.X` key to its column)."""
    return _object_diff(schema["properties"], truth, got, "", column)
