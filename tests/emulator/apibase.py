"""Shared pieces of the /api/v1 layer: Page, ApiError, `_fields` projection, paging helpers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .data import Dataset
from .timeutil import fmt_aware, fmt_naive, parse_dt

Obj = dict[str, Any]
_encode = msgspec.json.encode  # about 5x json.dumps: the emulator shares the tap's cores

DEFAULT_MAX_LIMIT = {
    "lead": 200,
    "contact": 100,
    "opportunity": 250,
    "user": 100,
    "custom_field": 1000,
    "event": 50,
    "task": 1000,  # Airbyte observed 1000 accepted on /task/
}
OTHER_MAX_LIMIT = 100
DEFAULT_MAX_SKIP = 250_000
FIELDS_LIST_LIMIT = 60  # names in one `_fields` list, under the `fields_list_limit` quirk
DATE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
#: Readings of behaviours Close's docs leave open (default: none = today's answers).
QUIRKS = {
    "activity_order_by_refused": "per-type /activity/<type>/ lists answer 400 to _order_by",
    "activity_order_ignored": "per-type /activity/<type>/ lists ignore _order_by (newest first)",
    "event_cursor_unbounded": "an /event/ cursor forgets the date_updated lower bound",
    "custom_object_event_type_other": "custom-object events spelled `custom_object_instance`",
    "event_type_bare": "event object_type without `activity.` (`note`, not `activity.note`)",
    "event_filter_unknown_refused": "an /event/ object_type filter Close does not know: 400 "
    "(default: no events)",
    "event_filters_refused": "every /event/ filter but date_updated answered 400",
    "contact_edit_no_lead_bump": "editing a contact leaves its lead's date_updated alone",
    "tasks_edited_during_scan": "each later /task/ page request first edits a task already read",
    "fields_list_limit": f"over {FIELDS_LIST_LIMIT} names in `_fields`: 400 List is too long",
    "merge_deletes_moved_children": "a merge also logs `deleted` (no merge meta, same second) "
    "for the children it moved (ids kept)",
    "limit_error_bare": "a refused _limit's 400 does not say the largest one allowed",
    "search_range_refused": "/data/search/ answers 400 to a moment_range condition",
    "search_whole_seconds": "/data/search/ refuses a fixed_utc moment with a fraction of a second",
}


def check_quirks(quirks: Iterable[str]) -> frozenset[str]:
    unknown = sorted(set(quirks) - QUIRKS.keys())
    if unknown:
        raise ValueError(f"unknown quirks {unknown}; known: {sorted(QUIRKS)}")
    return frozenset(quirks)


@dataclass
class Page:
    """A list response; `encode` reuses cached JSON of unprojected items."""

    items: list[Obj]
    extra: Obj = field(default_factory=dict)  # has_more, total_results, cursor_next, ...
    cached: bool = True


Result = Obj | Page


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _compare(value: str, op: str, bound: str) -> bool:
    # Close timestamps of one kind share a fixed format, so string order == time order.
    if op == ">":
        return value > bound
    if op == ">=":
        return value >= bound
    if op == "<":
        return value < bound
    return value <= bound


def project(obj: Obj, fields: list[str] | None) -> Obj:
    """Apply `_fields`: keep `id`; `custom` = every `custom.*` key."""
    if not fields:
        return obj
    out: Obj = {"id": obj["id"]} if "id" in obj else {}
    for f in fields:
        if f == "custom":
            out.update((k, v) for k, v in obj.items() if k.startswith("custom."))
        elif f in obj:
            out[f] = obj[f]
    return out


class ApiBase:
    """Request-independent helpers shared by every route group."""

    def __init__(
        self,
        data: Dataset,
        max_skip: int | dict[str, int] | None = None,
        max_limit: dict[str, int] | None = None,
        *,
        event_payloads: bool = True,
        denied: Iterable[str] = (),
        plan_limited: Iterable[str] = (),
    ) -> None:
        self.data = data
        self.denied = frozenset(denied)  # first path segments answering 403
        self.plan_limited = frozenset(plan_limited)  # ... answering 402
        self.max_skip = max_skip
        self.max_limit = {**DEFAULT_MAX_LIMIT, **(max_limit or {})}
        self.event_payloads = event_payloads
        self._json: dict[str, tuple[Obj, bytes]] = {}  # record id -> (object, its JSON)

    def _dumps(self, obj: Obj) -> bytes:
        """JSON of a stored object, cached while the object is unchanged (copy-on-write)."""
        hit = self._json.get(obj["id"])
        if hit is not None and hit[0] is obj:
            return hit[1]
        text = _encode(obj)
        self._json[obj["id"]] = (obj, text)
        return text

    def encode(self, result: Result) -> bytes:
        if not isinstance(result, Page):
            return _encode(result)
        dump = self._dumps if result.cached else _encode
        parts = [b'{"data":[', b",".join(dump(o) for o in result.items), b"]"]
        parts.extend(b"," + _encode(k) + b":" + _encode(v) for k, v in result.extra.items())
        parts.append(b"}")
        return b"".join(parts)

    # --- helpers ------------------------------------------------------------------------------

    def skip_cap(self, group: str) -> int:
        if self.max_skip is None:
            return DEFAULT_MAX_SKIP
        if isinstance(self.max_skip, int):
            return self.max_skip
        return self.max_skip.get(group, DEFAULT_MAX_SKIP)

    def limit_cap(self, group: str) -> int:
        return self.max_limit.get(group, OTHER_MAX_LIMIT)

    @staticmethod
    def _int(params: dict[str, str], name: str, default: int) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise ApiError(400, f"{name} must be an integer") from exc
        if value < 0:
            raise ApiError(400, f"{name} must be a non-negative integer")
        return value

    def _limit(self, group: str, params: dict[str, str], default: int = 100) -> int:
        cap = self.limit_cap(group)
        limit = self._int(params, "_limit", min(default, cap))
        if limit > cap:
            if "limit_error_bare" in self.data.quirks:
                raise ApiError(400, "_limit is too large")
            raise ApiError(400, f"_limit must be at most {cap}")
        return limit

    def _page(
        self, group: str, items: list[Obj], params: dict[str, str], total: bool = False
    ) -> Page:
        limit = self._limit(group, params)
        skip = self._int(params, "_skip", 0)
        cap = self.skip_cap(group)
        if skip > cap:
            raise ApiError(
                400,
                "The skip you set is larger than the maximum skip for this "
                f"resource (max_skip = {cap}). Please refine your search query.",
            )
        fields = self._fields(params)
        items = self.data.visible(items)  # commit lag: rows not committed yet are left out
        page = items[skip : skip + limit]
        extra: Obj = {"has_more": skip + len(page) < len(items)}
        if total:
            extra["total_results"] = len(items)
        if fields:
            return Page([project(o, fields) for o in page], extra, cached=False)
        return Page(page, extra)

    def _fields(self, params: dict[str, str]) -> list[str] | None:
        raw = params.get("_fields")
        return self.check_fields([f.strip() for f in raw.split(",") if f.strip()] if raw
                                 else None)

    def check_fields(self, fields: list[str] | None) -> list[str] | None:
        """The `fields_list_limit` quirk: more than FIELDS_LIST_LIMIT names are refused."""
        if fields and len(fields) > FIELDS_LIST_LIMIT and "fields_list_limit" in self.data.quirks:
            raise ApiError(400, "_fields: List is too long.")
        return fields

    @staticmethod
    def _bound(name: str, value: str, naive: bool = False) -> str:
        try:
            dt = parse_dt(value)
        except ValueError as exc:
            raise ApiError(400, f"Invalid datetime for {name}: {value!r}") from exc
        return fmt_naive(dt) if naive else fmt_aware(dt)

    def _one(self, obj: Obj | None, params: dict[str, str]) -> Obj:
        if obj is None:
            raise ApiError(404, "Empty query: Document does not exist.")
        return project(obj, self._fields(params))
