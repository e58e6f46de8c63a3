"""Close /api/v1 routes over a Dataset: paging, `_fields`, lead `query`, filters, event cursors."""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Callable, Iterable

from . import gen_activity as ga
from .activities import event_type
from .api_activity import ActivityRoutes
from .api_objects import ObjectRoutes
from .api_search import SearchRoutes
from .apibase import (
    DATE_OPS,
    ApiError,
    Obj,
    Page,
    Result,
    _compare,
    project,
)
from .lag import hidden_tail
from .objects import KINDS as OBJECT_KINDS
from .timeutil import fmt_aware, parse_dt

__all__ = ["DATE_OPS", "Api", "ApiError", "Page", "Result", "project"]

CF_TYPES = ("lead", "contact", "opportunity")
ORDER_KEYS = ("date_updated", "date_created", "date_won", "value", "confidence")

# lead `query` clauses: date_updated >= "2024-01-01T00:00", sort:-date_updated
_CLAUSE = re.compile(
    r"\b(date_updated|date_created|updated|created)\s*(>=|<=|>|<)\s*"
    r'(?:"([^"]*)"|(\S+))'
)
_SORT = re.compile(r"\bsort:\s*(-?)(date_updated|date_created|updated|created)\b")


#: /event/ filter combinations Close documents (any may add date_updated bounds).
EVENT_FILTERS = ("object_type", "action", "object_id", "lead_id", "user_id", "request_id")
EVENT_COMBOS = {frozenset(c.split("+")) for c in (
    "object_type+object_id", "object_type+action", "object_id+action", "lead_id+object_type",
    "lead_id+object_type+action", "lead_id+user_id+object_type",
    "lead_id+user_id+object_type+action", "lead_id+user_id", "user_id+object_id",
    "user_id+object_id+action", "user_id+object_type", "user_id+object_type+action",
    "lead_id", "user_id", "request_id")} | {frozenset()}


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


class Api(ActivityRoutes, ObjectRoutes, SearchRoutes):
    """All GET routes; route groups live in mixins over ApiBase."""

    #: (the log's length and last event, positions per (object_type, action)): see /event/
    _event_index: tuple[tuple[int, int], dict[tuple[str, str], list[int]]] = ((-1, 0), {})

    # --- routing ------------------------------------------------------------------------------

    def handle(self, path: str, params: dict[str, str]) -> Result:
        """GET one /api/v1 path (already stripped of '/api/v1'); raise ApiError on errors."""
        seg = [s for s in path.split("/") if s]
        if not seg:
            raise ApiError(404, "Not found")
        if seg[0] == "custom_fields":  # Close's old URLs still work
            seg[0] = "custom_field"
        self._gate(seg[0])
        with self.data.lock:
            route = self._routes().get(seg[0])
            if route is None:
                raise ApiError(404, "Not found")
            return route(seg[1:], params)

    def handle_post(self, path: str, params: dict[str, str], body: bytes) -> Result:
        """POST: /export/lead/ and /data/search/ (everything else is read-only here)."""
        seg = [s for s in path.split("/") if s]
        if not seg or (seg[0] != "export" and seg != ["data", "search"]):
            raise ApiError(405, "Method not allowed (the emulator is read-only)")
        self._gate(seg[0])
        try:
            payload = json.loads(body or b"{}")
        except ValueError as exc:
            raise ApiError(400, "Request body must be JSON") from exc
        if not isinstance(payload, dict):
            raise ApiError(400, "Request body must be a JSON object")
        with self.data.lock:
            if seg[0] == "data":
                return self.search(payload)
            return self.create_export(seg[1:], payload)

    def _gate(self, first: str) -> None:
        if first in self.denied:
            raise ApiError(403, "Not allowed")
        if first in self.plan_limited:
            raise ApiError(402, "This feature is not available on your current plan")

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
            **self.activity_routes(),
            **self.object_routes(),
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
        if rest and rest[0] == "activity":
            return self.activity_custom_fields(rest[1:], params)
        if rest and rest[0] in ("shared", "custom_object_type"):
            stream = (
                "shared_custom_fields" if rest[0] == "shared" else "custom_object_custom_fields"
            )
            return self.objects_of(stream, rest[1:], params)
        if not rest or rest[0] not in CF_TYPES:
            raise ApiError(404, "Not found")
        defs = self.data.cfields[rest[0]]
        if len(rest) > 1:
            return self._one(next((f for f in defs if f["id"] == rest[1]), None), params)
        return self._page("custom_field", defs, params)

    def _schema(self, rest: list[str], params: dict[str, str]) -> Result:
        if len(rest) == 2 and rest[0] == "activity":
            return self.activity_schema(rest[1])
        if len(rest) != 1 or rest[0] not in CF_TYPES:
            raise ApiError(404, "Not found")
        return self.data.schema(rest[0])

    # --- event log (cursor paging, newest first) ----------------------------------------------

    def _events(self, rest: list[str], params: dict[str, str]) -> Result:
        events = self.data.events
        if rest:
            found = next((e for e in events if e["id"] == rest[0]), None)
            return self._one(self._payload(found) if found else None, params)
        hidden = hidden_tail(events, self.data.clock.peek(), self.data.commit_lag)
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
        filters = {k: params[k] for k in EVENT_FILTERS if params.get(k)}
        self._check_event_filters(filters)
        served = self._served_type
        lower = [(DATE_OPS[s], b) for s, b in bounds.items() if s in ("gt", "gte")]
        upper = [(DATE_OPS[s], b) for s, b in bounds.items() if s in ("lt", "lte")]
        page: list[Obj] = []
        next_pos: int | None = None
        last = pos
        for i in self._event_positions(filters, pos):  # oldest first stored: walk backwards
            ev = events[i]
            du = ev["date_updated"]
            if not all(_compare(du, op, b) for op, b in lower):
                break  # everything further back is older still
            if id(ev) not in hidden and all(_compare(du, op, b) for op, b in upper) and all(
                (served(ev) if k == "object_type" else ev.get(k)) == v
                for k, v in filters.items()
            ):
                if len(page) == limit:
                    next_pos = i + 1
                    break
                page.append(ev)
                last = i
        if next_pos is not None:
            next_pos = last
        fields = self._fields(params)
        if "event_cursor_unbounded" in self.data.quirks:  # the cursor keeps no lower bound
            bounds = {s: b for s, b in bounds.items() if s not in ("gt", "gte")}
        cursor_next = (
            _encode_cursor({"pos": next_pos, "b": bounds}) if next_pos is not None else None
        )
        return Page(
            [project(self._payload(e), fields) for e in page],
            {"cursor_next": cursor_next, "cursor_previous": None},
            cached=False,
        )

    def _event_positions(self, filters: dict[str, str], pos: int) -> Iterable[int]:
        """Positions below `pos` to look at, newest first: with object_type+action, those of
        that pair only (an index, as Close's database has; rebuilt when the log changes)."""
        if set(filters) != {"object_type", "action"}:
            return range(pos - 1, -1, -1)
        events = self.data.events
        mark = (len(events), id(events[-1]) if events else 0)
        if self._event_index[0] != mark:
            index: dict[tuple[str, str], list[int]] = {}
            for i, event in enumerate(events):
                index.setdefault((self._served_type(event), event["action"]), []).append(i)
            self._event_index = (mark, index)
        positions = self._event_index[1].get((filters["object_type"], filters["action"]), [])
        return reversed(positions[:bisect.bisect_left(positions, pos)])

    def _check_event_filters(self, filters: dict[str, str]) -> None:
        """Only the combinations Close documents; under `event_filter_unknown_refused`, an
        object_type Close does not know is refused too (else it matches nothing)."""
        if filters and "event_filters_refused" in self.data.quirks:
            raise ApiError(400, "Filtering the event log is not available")
        if frozenset(filters) not in EVENT_COMBOS:
            raise ApiError(400, "This combination of filters is not supported: "
                           + ", ".join(sorted(filters)))
        wanted = filters.get("object_type")
        if wanted and "event_filter_unknown_refused" in self.data.quirks and (
                wanted not in self._known_types()):
            raise ApiError(400, f"Invalid object_type: {wanted!r}")

    def _known_types(self) -> set[str]:
        """Every object_type the event log may serve (as served)."""
        types = {"lead", "contact", "opportunity", *(f"task.{t}" for t in ga.TASK_TYPES),
                 *(kind.event_type for kind in OBJECT_KINDS.values())}
        types.update(self._served_type({"object_type": event_type(kind)})
                     for kind in ga.ACTIVITY_TYPES)
        if "custom_object_event_type_other" in self.data.quirks:
            types.add("custom_object_instance")
        return types

    def _served_type(self, event: Obj) -> str:
        """The object_type as served: bare activity types (`note`) under `event_type_bare`."""
        if "event_type_bare" in self.data.quirks:
            return str(event["object_type"]).removeprefix("activity.")
        return str(event["object_type"])

    def _payload(self, event: Obj) -> Obj:
        """Hide data/previous_data like Close does for non-admin callers (event_payloads=False);
        spell activity object types bare (`note`) under the `event_type_bare` quirk."""
        if "event_type_bare" in self.data.quirks and event["object_type"].startswith("activity."):
            event = {**event, "object_type": self._served_type(event)}
        if self.event_payloads:
            return event
        return {**event, "data": None, "previous_data": None}
