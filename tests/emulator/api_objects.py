"""Routes for organization-level objects (groups, sequences, comments, webhooks, exports, ...)."""

from __future__ import annotations

from collections.abc import Callable

from .apibase import ApiBase, ApiError, Obj, Page, Result, project
from .objects import BY_PATH, KINDS

Route = Callable[[list[str], dict[str, str]], Result]
_TRUE = ("true", "1", "yes")
# first path segment -> stream, for kinds that sit directly below /api/v1/
_TOP = {k.path: name for name, k in KINDS.items() if "/" not in k.path}


def _csv(raw: str) -> set[str]:
    return {v.strip() for v in raw.split(",") if v.strip()}


def _bool(params: dict[str, str], name: str) -> bool | None:
    raw = params.get(name)
    return None if raw in (None, "") else raw.lower() in _TRUE


class ObjectRoutes(ApiBase):
    base_url = ""  # set by CloseEmulator.start(); export download URLs point here
    _lead_index: tuple[tuple[int, int], dict[str, list[int]]] | None = None

    def object_routes(self) -> dict[str, Route]:
        routes: dict[str, Route] = {seg: self._top_route(stream) for seg, stream in _TOP.items()}
        routes["bulk_action"] = self._prefixed("bulk_action")
        routes["unsubscribe"] = self._prefixed("unsubscribe")
        routes["export"] = self._exports
        routes["shared_scheduling_link"] = self._top_route("shared_scheduling_links")
        return routes

    def _top_route(self, stream: str) -> Route:
        return lambda rest, params: self.objects_of(stream, rest, params)

    def _prefixed(self, first: str) -> Route:
        def route(rest: list[str], params: dict[str, str]) -> Result:
            stream = BY_PATH.get(f"{first}/{rest[0]}") if rest else None
            if stream is None:
                raise ApiError(404, "Not found")
            return self.objects_of(stream, rest[1:], params)

        return route

    # --- generic list/single ------------------------------------------------------------------

    def objects_of(self, stream: str, rest: list[str], params: dict[str, str]) -> Result:
        shared = stream == "shared_scheduling_links"  # one kind, two lists (USER, SHARED)
        stream = "scheduling_links" if shared else stream
        spec = KINDS[stream]
        store = self.data.objects
        items = store.kinds[stream]
        if stream == "scheduling_links":
            items = [o for o in items if (o["type"] == "SHARED") == shared]
        fields = self._fields(params)
        if rest:
            obj = next((o for o in items if o.get("id") == rest[0]), None)
            if len(rest) != 1 or obj is None:
                raise ApiError(404, "Empty query: Document does not exist.")
            if stream == "sequences":
                obj = {**obj, "subscription_counts_by_status": self._sub_counts(obj["id"])}
            return project(obj, fields)
        items = self._filter(stream, items, params)
        if stream == "groups":  # the list leaves members out; GET /group/{id}/ has them
            items = [{k: v for k, v in o.items() if k != "members"} for o in items]
        if not spec.paged:
            return Page([project(o, fields) for o in items], cached=False)
        group = "custom_field" if spec.path.startswith("custom_field/") else spec.path.split("/")[0]
        return self._page(group, items, params)

    def _sub_counts(self, sequence_id: str) -> Obj:
        counts: dict[str, int] = {}
        for sub in self.data.objects.kinds["sequence_subscriptions"]:
            if sub["sequence_id"] == sequence_id:
                counts[sub["status"]] = counts.get(sub["status"], 0) + 1
        return counts

    def _filter(self, stream: str, items: list[Obj], params: dict[str, str]) -> list[Obj]:
        def eq(*keys: str) -> None:
            nonlocal items
            for key in keys:
                raw = params.get(key) or params.get(key + "__in")
                if raw:
                    wanted = _csv(raw)
                    items = [o for o in items if str(o.get(key)) in wanted]

        def flag(*keys: str) -> None:
            nonlocal items
            for key in keys:
                value = _bool(params, key)
                if value is not None:
                    items = [o for o in items if o.get(key) is value]

        if stream == "smart_views":
            types = _csv(params.get("type__in") or params.get("type") or "lead")
            items = [o for o in items if o["type"] in types]
        elif stream == "email_templates":
            flag("is_archived", "is_shared")
        elif stream == "sequence_subscriptions":
            if not any(params.get(k) for k in ("sequence_id", "contact_id", "lead_id")):
                raise ApiError(400, "One of sequence_id, contact_id or lead_id is required.")
            eq("sequence_id", "contact_id", "lead_id")
        elif stream == "phone_numbers":
            eq("number", "user_id")
            flag("is_group_number")
        elif stream == "connected_accounts":
            eq("user_id", "_type")
        elif stream == "dialers":
            eq("status", "source_type", "source_value", "user_id")
        elif stream == "send_as":
            items = self._send_as(items, params)
        elif stream == "custom_objects":
            if not params.get("lead_id"):
                raise ApiError(400, "lead_id is required.")
            items = self._of_lead(items, params["lead_id"])
            eq("custom_object_type_id")
        elif stream == "custom_object_custom_fields":
            eq("custom_object_type_id")
        elif stream == "comment_threads":
            if params.get("ids"):
                items = [o for o in items if o["id"] in _csv(params["ids"])]
            if params.get("object_ids"):
                items = [o for o in items if o["object_id"] in _csv(params["object_ids"])]
        elif stream == "comments":
            items = self._comments(items, params)
        return items

    def _of_lead(self, items: list[Obj], lead_id: str) -> list[Obj]:
        """`items` whose lead_id is `lead_id`, in order, through a positions index (one lead
        per call of the first-run listing: a scan each time would be quadratic). The index is
        rebuilt when the list is replaced or resized, or a position no longer matches."""
        key = (id(items), len(items))
        cached = self._lead_index
        if cached is None or cached[0] != key:
            index: dict[str, list[int]] = {}
            for pos, obj in enumerate(items):
                index.setdefault(str(obj.get("lead_id")), []).append(pos)
            cached = self._lead_index = (key, index)
        found = [items[pos] for pos in cached[1].get(lead_id, [])]
        if any(o.get("lead_id") != lead_id for o in found):
            self._lead_index = None
            return [o for o in items if o.get("lead_id") == lead_id]
        return found

    def _send_as(self, items: list[Obj], params: dict[str, str]) -> list[Obj]:
        me = self.data.user_ids[0]
        allowing, allowed = params.get("allowing_user_id"), params.get("allowed_user_id")
        if not allowing and not allowed:
            allowing = me  # Close's default
        if me not in (allowing, allowed):
            raise ApiError(400, "allowing_user_id or allowed_user_id must be your own user id.")
        if allowing:
            items = [o for o in items if o["allowing_user_id"] == allowing]
        if allowed:
            items = [o for o in items if o["allowed_user_id"] == allowed]
        return items

    def _comments(self, items: list[Obj], params: dict[str, str]) -> list[Obj]:
        object_id, thread_id = params.get("object_id"), params.get("thread_id")
        if bool(object_id) == bool(thread_id):
            raise ApiError(400, "Exactly one of object_id or thread_id is required.")
        if object_id:
            threads = self.data.objects.kinds["comment_threads"]
            ids = {t["id"] for t in threads if t["object_id"] == object_id}
        else:
            ids = {thread_id or ""}
        return [c for c in items if c["thread_id"] in ids]

    # --- exports ------------------------------------------------------------------------------

    def _exports(self, rest: list[str], params: dict[str, str]) -> Result:
        store = self.data.objects
        if rest and rest[0] in ("lead", "opportunity"):
            kind, rest = rest[0], rest[1:]
            wanted = "leads" if kind == "lead" else "opps"
            views = [store.view_export(i) for i in store.exports]
            views = [v for v in views if (v["type"] == "opps") == (wanted == "opps")]
            if rest:
                found = next((v for v in views if v["id"] == rest[0]), None)
                return self._one(found, params)
            return self._page("export", views, params)
        if rest:
            if len(rest) != 1 or rest[0] not in store.exports:
                raise ApiError(404, "Empty query: Document does not exist.")
            return project(store.poll_export(rest[0]), self._fields(params))
        return self._page("export", [store.view_export(i) for i in store.exports], params)

    def create_export(self, rest: list[str], body: Obj) -> Obj:
        if rest != ["lead"]:
            raise ApiError(404, "Not found")
        if body.get("format") not in ("json", "csv"):
            raise ApiError(400, "format must be one of: csv, json")
        if body.get("format") == "csv":
            raise ApiError(400, "The emulator only produces format=json exports")
        if body.get("type", "leads") not in ("leads", "contacts", "lead_opps"):
            raise ApiError(400, "type must be one of: leads, contacts, lead_opps")
        return self.data.objects.create_export(body, self.base_url)
