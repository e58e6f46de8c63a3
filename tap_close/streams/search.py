"""Advanced Filtering (`POST /data/search/`): every object of a type in a date range, in order.

Close caps one cursor sequence at 10,000 results and expires cursors after 30 seconds. Rows
come sorted by the date key, so a sequence that may have stopped early (a cap, an expired
cursor) is followed by a new query from the last key read: the range is split at that key
as often as needed, and no `_skip` is ever sent. Objects sharing one key value beyond a
whole sequence (10,000 at the same instant) would be cut: not a plausible Close answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tap_close.client import CloseClient
from tap_close.errors import CloseAPIError, LimitTooLargeError, MaxSkipError
from tap_close.streams.base import parse_ts

SEARCH_PAGE = 200


def whole_second(moment: dt.datetime, *, up: bool = False) -> str:
    """A `fixed_utc` value in whole seconds, as the app writes them (`...T21:12:12+00:00`):
    nothing shows Close accepting fractions. Rounded down, or `up`."""
    floor = moment.astimezone(dt.timezone.utc).replace(microsecond=0)
    if up and floor < moment:
        floor += dt.timedelta(seconds=1)
    return floor.isoformat()


def search_body(object_type: str, key: str, lower: dt.datetime | None,
                upper: dt.datetime | None, *, fields: list[str], limit: int,
                exact: bool = False) -> dict[str, Any]:
    """The query: objects of `object_type` with lower <= key < upper, sorted by key (bounds
    widened to whole seconds unless `exact`; `search_range` drops what was read before)."""
    field = {"type": "regular_field", "object_type": object_type, "field_name": key}
    queries: list[dict[str, Any]] = [{"type": "object_type", "object_type": object_type}]
    moment: dict[str, Any] = {}
    if lower:
        value = lower.isoformat() if exact else whole_second(lower)
        moment["on_or_after"] = {"type": "fixed_utc", "value": value}
    if upper:
        moment["before"] = {"type": "fixed_utc", "value": whole_second(upper, up=True)}
    if moment:
        queries.append({"type": "field_condition", "field": field,
                        "condition": {"type": "moment_range", **moment}})
    return {"query": {"type": "and", "queries": queries},
            "sort": [{"direction": "asc", "field": field}],
            "_fields": {object_type: fields}, "_limit": limit}


def search_range(
    client: CloseClient, object_type: str, fields: list[str], lower: dt.datetime | None,
    upper: dt.datetime | None, *, key: str = "date_updated",
    read_at_lower: frozenset[str] | set[str] = frozenset(), limit: int = SEARCH_PAGE,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of every object with lower <= key < upper, in key order (`read_at_lower`: ids
    at `lower` already read).

    A sequence of more than one page may have stopped at the cap, whatever its value: a new
    query follows from the last key read (dropping the rows read there), until one brings
    nothing new. A refused cursor (expired) also restarts from the last key. Bounds go in
    whole seconds; only when one second's rows fill a whole sequence does the next query
    name the exact key (a Close that refuses it then fails the run: nothing is skipped).
    """
    fields = sorted({*fields, "id", key})
    at_lower: set[str] = set(read_at_lower)
    exact = False
    while True:
        total = new = 0
        try:
            for page in client.search_pages(search_body(
                    object_type, key, lower, upper, fields=fields, limit=limit, exact=exact)):
                rows = []
                for row in page:
                    total += 1
                    value, rid = parse_ts(row.get(key)), str(row.get("id"))
                    if value is not None and lower is not None and (
                            value < lower or (value == lower and rid in at_lower)):
                        continue  # read before (the filter may be coarser than the key)
                    if value is not None and upper is not None and value >= upper:
                        continue  # past the range (its bound was rounded up)
                    if value is not None:
                        if value != lower:
                            lower, at_lower = value, set()
                        at_lower.add(rid)
                    rows.append(row)
                new += len(rows)
                yield rows
        except LimitTooLargeError:
            if limit <= 1:
                raise
            limit = math.ceil(limit / 2)
            continue
        except CloseAPIError as exc:
            if exc.status == 400 and exact and not new:
                raise CloseAPIError(
                    f"/data/search/: a whole result sequence of {object_type} objects has "
                    f"{key} in the second of {lower}, and Close refused the exact instant to "
                    f"go on from ({exc}); stopping rather than skipping any", 400) from None
            if exc.status != 400 or "cursor" not in str(exc).lower():
                raise
            if not new:
                raise
            continue  # the cursor expired while we were away: ask again from here
        if total < limit:
            return
        if not new:
            if exact or lower is None or not lower.microsecond:
                return
            exact = True  # a whole sequence inside one second: ask from the exact key


def search_or_else(pages: Iterable[list[dict[str, Any]]], fallback: Callable[[], Iterable[Any]],
                   logger: logging.Logger | logging.LoggerAdapter[Any],
                   instead: str) -> Iterator[Any]:
    """The rows of a search; if Close refuses it before the first page, the fallback's items.

    402/403 (search not on this plan or for this credential) fall back with an INFO line; a
    400 (our query refused: a date format, a field) with one WARNING carrying Close's message,
    so a query Close stopped accepting does not hide behind the slower path."""
    started = False
    try:
        for rows in pages:
            started = True
            yield from rows
        return
    except CloseAPIError as exc:
        if started or isinstance(exc, MaxSkipError) or exc.status not in (400, 402, 403):
            raise
        log = logger.warning if exc.status == 400 else logger.info
        log("/data/search/ refused (%s); %s instead", exc, instead)
    yield from fallback()
