"""`POST /data/search/`: Close's Advanced Filtering, as far as the tap uses it.

Supported: `and` of `object_type` and `field_condition`s with a `moment_range`
(`on_or_after` / `before` / `after` / `gte` as `fixed_utc` moments) on a regular date field;
`sort` on one regular field; `_fields` per object type; `_limit`; `cursor`. One cursor
sequence stops after `search_cap` results (Close: 10,000) with a null cursor.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable

from .apibase import ApiBase, ApiError, Obj, Page, _compare, project
from .timeutil import fmt_aware, parse_dt

#: object_type -> (its objects, the max `_limit` group)
Lister = Callable[[], list[Obj]]


def _moment(value: object, whole_seconds: bool = False) -> str:
    if isinstance(value, dict):
        if value.get("type") != "fixed_utc":
            raise ApiError(400, f"Unsupported moment type {value.get('type')!r}")
        value = value.get("value")
    try:
        moment = parse_dt(str(value))
    except ValueError as exc:
        raise ApiError(400, f"Invalid moment {value!r}") from exc
    if whole_seconds and moment.microsecond:  # the `search_whole_seconds` quirk
        raise ApiError(400, f"Invalid date value {value!r}: expected YYYY-MM-DDTHH:MM:SS+00:00")
    return fmt_aware(moment)


class SearchRoutes(ApiBase):
    search_cap = 10_000  # results per cursor sequence

    def _searchable(self) -> dict[str, Lister]:
        return {"lead": self.data.lead_list,
                "custom_object": lambda: self.data.objects.kinds["custom_objects"]}

    def search(self, body: Obj) -> Page:
        query = body.get("query")
        if not isinstance(query, dict):
            raise ApiError(400, "query is required")
        parts = query.get("queries") if query.get("type") == "and" else [query]
        object_type = next((q.get("object_type") for q in parts or []
                            if isinstance(q, dict) and q.get("type") == "object_type"), None)
        listers = self._searchable()
        if object_type not in listers:
            raise ApiError(400, f"Unsupported object_type {object_type!r}")
        items = self.data.visible(listers[object_type]())
        for part in parts or []:
            if isinstance(part, dict) and part.get("type") == "field_condition":
                if "search_range_refused" in self.data.quirks:
                    raise ApiError(400, "Invalid filter: unsupported moment_range value")
                items = self._condition(items, part, "search_whole_seconds" in self.data.quirks)
            elif not isinstance(part, dict) or part.get("type") != "object_type":
                raise ApiError(400, f"Unsupported query {part!r}")
        for sort in reversed(body.get("sort") or []):
            key = sort["field"]["field_name"]
            items = sorted(items, key=lambda o, k=key: (o.get(k) or "", o["id"]),
                           reverse=sort.get("direction") == "desc")
        limit = self._limit(object_type, {"_limit": str(body.get("_limit") or 100)})
        start = self._cursor(body.get("cursor"))
        end = min(start + limit, len(items), self.search_cap)
        fields = self.check_fields((body.get("_fields") or {}).get(object_type))
        rows = [project(o, fields) for o in items[start:end]]
        more = end < min(len(items), self.search_cap)
        cursor = base64.urlsafe_b64encode(json.dumps({"at": end}).encode()).decode()
        return Page(rows, {"cursor": cursor if more else None}, cached=False)

    @staticmethod
    def _cursor(cursor: object) -> int:
        if not cursor:
            return 0
        try:
            return int(json.loads(base64.urlsafe_b64decode(str(cursor)))["at"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiError(400, "Invalid cursor") from exc

    @staticmethod
    def _condition(items: list[Obj], part: Obj, whole_seconds: bool) -> list[Obj]:
        field, cond = part.get("field") or {}, part.get("condition") or {}
        if field.get("type") != "regular_field" or cond.get("type") != "moment_range":
            raise ApiError(400, "Only moment_range conditions on regular fields are emulated")
        key = field.get("field_name")
        ops = {"on_or_after": ">=", "gte": ">=", "after": ">", "before": "<"}
        for name, op in ops.items():
            if cond.get(name) is not None:
                bound = _moment(cond[name], whole_seconds)
                items = [o for o in items if o.get(key) and _compare(_aware(o[key]), op, bound)]
        return items


@functools.lru_cache(maxsize=1 << 18)
def _aware(value: str) -> str:
    """A stored timestamp in the bounds' form (memoized: a search compares every row)."""
    return fmt_aware(parse_dt(value))
