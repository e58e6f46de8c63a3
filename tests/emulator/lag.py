"""Commit lag: a row written less than a moment ago is not yet in lists and searches.

A database commits a row a little after the server stamps its `date_updated`; until then a
list does not show it (neither the old nor the new version: the stricter reading). Each
row's lag lies in [lag/2, lag], fixed by its id; an event of the row's change has the same
lag (committed with the row). Rows stamped in the future (more
than a second ahead of the server's clock) are not affected.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta
from typing import Any

from .timeutil import fmt_naive, parse_dt

Obj = dict[str, Any]


def _hidden(obj: Obj, now: datetime, lag: float) -> bool:
    stamp = obj.get("date_updated")
    if not isinstance(stamp, str):
        return False
    age = (now - parse_dt(stamp)).total_seconds()
    # an event shares its object's lag: written with it, committed with it
    share = zlib.crc32(str(obj.get("object_id") or obj.get("id")).encode()) / 2**32
    return -1.0 < age < lag * (0.5 + 0.5 * share)


def visible(items: list[Obj], now: datetime, lag: float) -> list[Obj]:
    """`items` without the rows whose write is not committed yet at `now`."""
    if lag <= 0:
        return items
    # stamps share the `YYYY-MM-DDTHH:MM:SS` prefix: cheap pre-check, parse only recent rows
    floor = fmt_naive(now - timedelta(seconds=lag + 1))[:19]
    return [
        o for o in items
        if not (isinstance(o.get("date_updated"), str) and o["date_updated"][:19] >= floor
                and _hidden(o, now, lag))
    ]


def hidden_tail(log: list[Obj], now: datetime, lag: float) -> set[int]:
    """`id()`s of the not yet committed entries at the end of an oldest-first log."""
    out: set[int] = set()
    if lag <= 0:
        return out
    floor = fmt_naive(now - timedelta(seconds=lag + 1))[:19]
    for entry in reversed(log):
        if str(entry.get("date_updated"))[:19] < floor:
            break
        if _hidden(entry, now, lag):
            out.add(id(entry))
    return out
