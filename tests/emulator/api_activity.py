"""Routes for /activity/, /task/, /custom_activity/ and activity custom fields."""

from __future__ import annotations

from collections.abc import Callable

from .activities import api_path
from .apibase import DATE_OPS, ApiBase, ApiError, Obj, Page, Result, _compare, project
from .gen_activity import ACTIVITY_TYPES
from .timeutil import fmt_aware, parse_dt

# /activity/<path>/ -> kind (None = all types)
ACTIVITY_PATHS: dict[str, str | None] = {api_path(k): k for k in ACTIVITY_TYPES}
ACTIVITY_ORDER = ("date_created", "activity_at")
TASK_ORDER = ("date", "date_created")
_TRUE = ("true", "1", "yes")


def _in(params: dict[str, str], name: str) -> set[str] | None:
    """Values of `name` or `name__in` (comma-separated), or None when absent."""
    raw = params.get(name) or params.get(name + "__in")
    return {v.strip() for v in raw.split(",") if v.strip()} if raw else None


class ActivityRoutes(ApiBase):
    def activity_routes(self) -> dict[str, Callable[[list[str], dict[str, str]], Result]]:
        return {
            "activity": self._activities,
            "task": self._tasks,
            "custom_activity": self._custom_activity_types,
        }

    def _gone_or_missing(self, obj_id: str) -> ApiError:
        if obj_id in self.data.acts.gone:
            return ApiError(404, "Empty query: Document has been deleted.")
        return ApiError(404, "Empty query: Document does not exist.")

    def _date_filters(
        self, items: list[Obj], params: dict[str, str], keys: tuple[str, ...]
    ) -> list[Obj]:
        for key in keys:
            for suffix, op in DATE_OPS.items():
                name = f"{key}__{suffix}"
                if params.get(name):
                    bound = self._bound(name, params[name])
                    items = [o for o in items if o.get(key) and _compare(o[key], op, bound)]
        return items

    # --- activities ---------------------------------------------------------------------------

    def _activities(self, rest: list[str], params: dict[str, str]) -> Result:
        kind: str | None = None
        if rest:
            sub = "/".join(rest[:2]) if rest[0] == "status_change" else rest[0]
            if sub not in ACTIVITY_PATHS:
                raise ApiError(404, "Not found")
            kind = ACTIVITY_PATHS[sub]
            rest = rest[len(sub.split("/")) :]
        if rest:
            if len(rest) != 1:
                raise ApiError(404, "Not found")
            act = self.data.acts.items.get(rest[0])
            if act is None or (kind and act["_type"] != ACTIVITY_TYPES[kind]):
                raise self._gone_or_missing(rest[0])
            return project(act, self._fields(params))
        items = self.data.acts.of_kind(kind)
        for key in ("lead_id", "user_id", "contact_id", "_type", "custom_activity_type_id"):
            wanted = _in(params, key)
            if wanted is not None:
                items = [a for a in items if a.get(key) in wanted]
        for key in ("opportunity_id", "form_id", "external_whatsapp_message_id"):
            if params.get(key):
                items = [a for a in items if a.get(key) == params[key]]
        items = self._date_filters(items, params, ACTIVITY_ORDER)
        order = params.get("_order_by")
        if kind and order and "activity_order_by_refused" in self.data.quirks:
            raise ApiError(400, "Unknown parameter: _order_by")
        if kind and "activity_order_ignored" in self.data.quirks:
            order = None  # per-type lists: newest first whatever was asked
        if order:
            key = order.lstrip("-")
            if key not in ACTIVITY_ORDER:
                raise ApiError(400, f"Invalid _order_by: {order}")
            items = sorted(items, key=lambda a: (a[key], a["id"]), reverse=order.startswith("-"))
        return self._page("activity", items, params)

    # --- tasks --------------------------------------------------------------------------------

    def _tasks(self, rest: list[str], params: dict[str, str]) -> Result:
        acts = self.data.acts
        if rest:
            if len(rest) != 1 or rest[0] not in acts.tasks:
                raise self._gone_or_missing(rest[0])
            return project(acts.tasks[rest[0]], self._fields(params))
        if "tasks_edited_during_scan" in self.data.quirks and self._task_scan_continues(params):
            self._edit_a_read_task(params)
        items = acts.task_list()
        types = _in(params, "_type") or {"lead"}  # quirk: no _type -> lead tasks only
        if "all" not in types:
            items = [t for t in items if t["_type"] in types]
        for key in ("lead_id", "contact_id", "assigned_to", "view", "id"):
            wanted = _in(params, key)
            if wanted is not None:
                items = [t for t in items if t.get(key) in wanted]
        if params.get("is_complete"):
            done = params["is_complete"].lower() in _TRUE
            items = [t for t in items if t["is_complete"] == done]
        items = self._date_filters(items, params, ("date_created", "date_updated"))
        for suffix, op in DATE_OPS.items():  # `date` mixes plain dates and datetimes
            name = f"date__{suffix}"
            if params.get(name):
                bound = self._bound(name, params[name])
                items = [t for t in items if _compare(_task_date(t), op, bound)]
        order = params.get("_order_by")
        if order:
            key = order.lstrip("-")
            if key not in TASK_ORDER:
                raise ApiError(400, f"Invalid _order_by: {order}")
            get = _task_date if key == "date" else (lambda t: str(t["date_created"]))
            items = sorted(items, key=lambda t: (get(t), t["id"]), reverse=order.startswith("-"))
        return self._page("task", items, params)

    def _task_scan_continues(self, params: dict[str, str]) -> bool:
        """A later page of a scan: an offset, or a keyset restart after the first page."""
        return self._int(params, "_skip", 0) > 0 or bool(params.get("date_created__gte"))

    def _edit_a_read_task(self, params: dict[str, str]) -> None:
        """Edit the first task (date_created order) the scan has passed: it leaves a
        date_updated window, shifting every later offset by one. At most 20 edits."""
        acts = self.data.acts
        if len(acts.scan_edited) >= 20:
            return
        first = self._tasks([], {**params, "_skip": "0", "_limit": "1", "_order_by": "date_created",
                                 "_fields": "id", "date_created__gte": ""})
        assert isinstance(first, Page)
        if first.items:
            acts.scan_edited.append(first.items[0]["id"])
            acts.update_task(first.items[0]["id"])

    # --- custom activity types and their fields -----------------------------------------------

    def _custom_activity_types(self, rest: list[str], params: dict[str, str]) -> Result:
        types = self.data.acts.ctx.act_types
        if rest:
            return self._one(next((t for t in types if t["id"] == rest[0]), None), params)
        fields = self._fields(params)
        return Page([project(t, fields) for t in types], cached=False)  # no has_more, like Close

    def activity_custom_fields(self, rest: list[str], params: dict[str, str]) -> Result:
        defs = self.data.acts.ctx.act_fields
        if rest:
            return self._one(next((f for f in defs if f["id"] == rest[0]), None), params)
        wanted = _in(params, "custom_activity_type_id")
        if wanted is not None:
            defs = [f for f in defs if f["custom_activity_type_id"] in wanted]
        return self._page("custom_field", defs, params)

    def activity_schema(self, type_id: str) -> Obj:
        ctx = self.data.acts.ctx
        type_obj = next((t for t in ctx.act_types if t["id"] == type_id), None)
        if type_obj is None:
            raise ApiError(404, "Empty query: Document does not exist.")
        return {
            "object_type": "activity",
            "name": type_obj["name"],
            "organization_id": self.data.org_id,
            "fields": [f for f in ctx.act_fields if f["custom_activity_type_id"] == type_id] + [
                f for f in self.data.objects.kinds["shared_custom_fields"]
                if any(a.get("custom_activity_type_id") == type_id for a in f["associations"])],
        }


def _task_date(task: Obj) -> str:
    """A task `date` as an aware timestamp string (plain dates mean midnight UTC)."""
    return fmt_aware(parse_dt(task["date"]))
