"""Close /api/v1 routes over a Dataset: paging, `_fields`, lead `query`, filters, event cursors."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .data import Dataset
from .timeutil import fmt_aware, fmt_naive, parse_dt

Obj = dict[str, Any]

DEFAULT_MAX_LIMIT = {
    "lead": 200,
    "contact": 100,
    "opportunity": 250,
    "user": 100,
    "custom_field": 1000,
    "event": 50,
}
OTHER_MAX_LIMIT = 100
DEFAULT_MAX_SKIP = 250_000
CF_TYPES = ("lead", "contact", "opportunity")
DATE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
ORDER_KEYS = ("date_updated", "date_created", "date_won", "value", "confidence")

# lead `query` clauses: date_updated >= "2024-01-01T00:00", sort:-date_updated
_CLAUSE = re.compile(
    r"\b(date_updated|date_created|updated|created)\s*(>=|<=|>|<)\s*"
    r'(?:"([^"]*)"|(\S+))'
)
_SORT = re.compile(r"\bsort:\s*(-?)(date_updated|date_created|updated|created)\b")


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


def _field(name: str) -> str:
    return "date_updated" if name in ("updated", "date_updated") else "date_created"


def _encode_cursor(state: Obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> Obj:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
        if not isinstance(state, dict) or not isinstance(state.get("pos"), int):
            raise ValueError("bad cursor")
        return state
    except (ValueError, binascii.Error) as exc:
        raise ApiError(400, "Invalid cursor") from exc


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


class Api:
    def __init__(
        self,
        data: Dataset,
        max_skip: int | dict[str, int] | None = None,
        max_limit: dict[str, int] | None = None,
    ) -> None:
        self.data = data
        self.max_skip = max_skip
        self.max_limit = {**DEFAULT_MAX_LIMIT, **(max_limit or {})}
        self._json: dict[str, tuple[Obj, str]] = {}  # record id -> (object, its JSON)

    def _dumps(self, obj: Obj) -> str:
        """JSON of a stored object, cached while the object is unchanged (copy-on-write)."""
        hit = self._json.get(obj["id"])
        if hit is not None and hit[0] is obj:
            return hit[1]
        text = json.dumps(obj)
        self._json[obj["id"]] = (obj, text)
        return text

    def encode(self, result: Result) -> bytes:
        if not isinstance(result, Page):
            return json.dumps(result).encode()
        dump = self._dumps if result.cached else json.dumps
        parts = ['{"data": [', ", ".join(dump(o) for o in result.items), "]"]
        parts.extend(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in result.extra.items())
        parts.append("}")
        return "".join(parts).encode()

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
        page = items[skip : skip + limit]
        extra: Obj = {"has_more": skip + len(page) < len(items)}
        if total:
            extra["total_results"] = len(items)
        if fields:
            return Page([project(o, fields) for o in page], extra, cached=False)
        return Page(page, extra)

    @staticmethod
    def _fields(params: dict[str, str]) -> list[str] | None:
        raw = params.get("_fields")
        return [f.strip() for f in raw.split(",") if f.strip()] if raw else None

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

    # --- routing ------------------------------------------------------------------------------

    def handle(self, path: str, params: dict[str, str]) -> Result:
        """GET one /api/v1 path (already stripped of '/api/v1'); raise ApiError on errors."""
        seg = [s for s in path.split("/") if s]
        if not seg:
            raise ApiError(404, "Not found")
        with self.data.lock:
            route = self._routes().get(seg[0])
            if route is None:
                raise ApiError(404, "Not found")
            return route(seg[1:], params)

    def _routes(self) -> dict[str, Callable[[list[str], dict[str, str]], Result]]:
        return {
            "me": self._me,
            "organization": self._organization,
            "user": self._users,
            "lead": self._leads,
            "contact": self._contacts,
            "opportunity": self._opps,
            "status": self._statuses,
            "pipeline": self._pipelines,
            "custom_field": self._custom_fields,
            "custom_field_schema": self._schema,
            "event": self._events,
        }

    def _me(self, rest: list[str], params: dict[str, str]) -> Result:
        if rest:
            raise ApiError(404, "Not found")
        return self._one(self.data.me(), params)

    def _organization(self, rest: list[str], params: dict[str, str]) -> Result:
        if len(rest) != 1 or rest[0] != self.data.org_id:
            raise ApiError(404, "Not found")
        return self._one(self.data.organization(), params)

    def _users(self, rest: list[str], params: dict[str, str]) -> Result:
        if rest:
            return self._one(next((u for u in self.data.users if u["id"] == rest[0]), None), params)
        return self._page("user", self.data.users, params)

    def _leads(self, rest: list[str], params: dict[str, str]) -> Result:
        if rest:
            found = rest[0] in self.data.leads
            return self._one(self.data.lead_view(rest[0]) if found else None, params)
        leads = self.data.lead_list()
        query = params.get("query", "")
        if query:
            leads = self._lead_query(leads, query)
        return self._page("lead", leads, params, total=True)

    @staticmethod
    def _lead_query(leads: list[Obj], query: str) -> list[Obj]:
        for m in _CLAUSE.finditer(query):
            field, op, value = _field(m.group(1)), m.group(2), m.group(3) or m.group(4)
            try:
                dt = parse_dt(value)
            except ValueError as exc:
                raise ApiError(400, f"Invalid date in query: {value!r}") from exc
            # Quirk: Close compares at MINUTE precision; seconds are dropped from the value.
            bound = fmt_aware(dt.replace(second=0, microsecond=0))
            leads = [ld for ld in leads if _compare(ld[field], op, bound)]
        sort = _SORT.search(query)
        if sort:
            key = _field(sort.group(2))
            leads = sorted(leads, key=lambda o: (o[key], o["id"]), reverse=sort.group(1) == "-")
        return leads

    def _contacts(self, rest: list[str], params: dict[str, str]) -> Result:
        if rest:
            return self._one(self.data.contacts.get(rest[0]), params)
        contacts = self.data.contact_list()
        if params.get("lead_id"):
            contacts = [c for c in contacts if c["lead_id"] == params["lead_id"]]
        return self._page("contact", contacts, params)

    def _opps(self, rest: list[str], params: dict[str, str]) -> Result:
        if rest:
            return self._one(self.data.opps.get(rest[0]), params)
        opps = self.data.opp_list()
        for key in (
            "lead_id",
            "user_id",
            "status_id",
            "status_type",
            "status_label",
            "value_period",
        ):
            if params.get(key):
                opps = [o for o in opps if o[key] == params[key]]
        for name_ in ("date_updated", "date_created"):
            for suffix, op in DATE_OPS.items():
                name = f"{name_}__{suffix}"
                if params.get(name):
                    bound = self._bound(name, params[name])
                    opps = [o for o in opps if _compare(o[name_], op, bound)]
        order = params.get("_order_by")
        if order:
            key = order.lstrip("-")
            if key not in ORDER_KEYS:
                raise ApiError(400, f"Invalid _order_by: {order}")
            opps = sorted(
                opps,
                key=lambda o: (o[key] is not None, o[key] or 0, o["id"]),
                reverse=order.startswith("-"),
            )
        return self._page("opportunity", opps, params, total=True)

    def _statuses(self, rest: list[str], params: dict[str, str]) -> Result:
        if not rest or rest[0] not in ("lead", "opportunity"):
            raise ApiError(404, "Not found")
        items = self.data.lead_statuses if rest[0] == "lead" else self.data.opp_statuses
        if len(rest) > 1:
            return self._one(next((s for s in items if s["id"] == rest[1]), None), params)
        return self._page("status", items, params)

    def _pipelines(self, rest: list[str], params: dict[str, str]) -> Result:
        if rest:
            return self._one(
                next((p for p in self.data.pipelines if p["id"] == rest[0]), None), params
            )
        fields = self._fields(params)
        return Page([project(p, fields) for p in self.data.pipelines], cached=False)  # no has_more

    def _custom_fields(self, rest: list[str], params: dict[str, str]) -> Result:
        if not rest or rest[0] not in CF_TYPES:
            raise ApiError(404, "Not found")
        defs = self.data.cfields[rest[0]]
        if len(rest) > 1:
            return self._one(next((f for f in defs if f["id"] == rest[1]), None), params)
        return self._page("custom_field", defs, params)

    def _schema(self, rest: list[str], params: dict[str, str]) -> Result:
        if len(rest) != 1 or rest[0] not in CF_TYPES:
            raise ApiError(404, "Not found")
        return self.data.schema(rest[0])

    # --- event log (cursor paging, newest first) ----------------------------------------------

    def _events(self, rest: list[str], params: dict[str, str]) -> Result:
        events = self.data.events
        if rest:
            return self._one(next((e for e in events if e["id"] == rest[0]), None), params)
        if "_skip" in params:
            raise ApiError(400, "_skip is not supported for the event log; use _cursor")
        limit = self._limit("event", params, default=50)
        cursor = params.get("_cursor")
        if cursor:
            state = _decode_cursor(cursor)
            bounds: dict[str, str] = state.get("b", {})
            pos = min(state["pos"], len(events))
        else:
            bounds = {}
            for suffix in DATE_OPS:
                name = f"date_updated__{suffix}"
                if params.get(name):
                    bounds[suffix] = self._bound(name, params[name], naive=True)
            pos = len(events)
        filters = {
            k: params[k]
            for k in ("object_type", "action", "object_id", "lead_id", "user_id", "request_id")
            if params.get(k)
        }
        lower = [(DATE_OPS[s], b) for s, b in bounds.items() if s in ("gt", "gte")]
        upper = [(DATE_OPS[s], b) for s, b in bounds.items() if s in ("lt", "lte")]
        page: list[Obj] = []
        next_pos: int | None = None
        last = pos
        i = pos - 1
        while i >= 0:  # events are stored oldest first; walk backwards
            ev = events[i]
            du = ev["date_updated"]
            if not all(_compare(du, op, b) for op, b in lower):
                break  # everything further back is older still
            if all(_compare(du, op, b) for op, b in upper) and all(
                ev.get(k) == v for k, v in filters.items()
            ):
                if len(page) == limit:
                    next_pos = i + 1
                    break
                page.append(ev)
                last = i
            i -= 1
        if next_pos is not None:
            next_pos = last
        fields = self._fields(params)
        cursor_next = (
            _encode_cursor({"pos": next_pos, "b": bounds}) if next_pos is not None else None
        )
        return Page(
            [project(e, fields) for e in page],
            {"cursor_next": cursor_next, "cursor_previous": None},
            cached=False,
        )
