"""Organization-level objects of a Dataset (groups, sequences, webhooks, exports, ...)."""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import gen_objects as go
from . import generate as g
from .timeutil import fmt_aware

if TYPE_CHECKING:
    from .data import Dataset

Obj = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    path: str  # API path below /api/v1, e.g. "bulk_action/email"
    event_type: str  # event-log object_type
    paged: bool = True  # list envelope carries has_more


KINDS: dict[str, Kind] = {
    "groups": Kind("group", "group"),
    "roles": Kind("role", "role"),
    "smart_views": Kind("saved_search", "saved_search"),
    "email_templates": Kind("email_template", "email_template"),
    "sms_templates": Kind("sms_template", "sms_template"),
    "sequences": Kind("sequence", "sequence"),
    "sequence_subscriptions": Kind("sequence_subscription", "sequence_subscription"),
    "outcomes": Kind("outcome", "outcome"),
    "phone_numbers": Kind("phone_number", "phone_number"),
    "blocked_phone_numbers": Kind("blocked_phone_number", "blocked_phone_number"),
    "connected_accounts": Kind("connected_account", "connected_account"),
    "dialers": Kind("dialer", "dialer"),
    "send_as": Kind("send_as", "send_as", paged=False),
    "scheduling_links": Kind("scheduling_link", "scheduling_link"),
    "shared_custom_fields": Kind("custom_field/shared", "custom_fields.shared"),
    "custom_object_types": Kind("custom_object_type", "custom_object_type", paged=False),
    "custom_object_custom_fields": Kind(
        "custom_field/custom_object_type", "custom_fields.custom_object_type"
    ),
    "custom_objects": Kind("custom_object", "custom_object"),
    "comment_threads": Kind("comment_thread", "comment_thread"),
    "comments": Kind("comment", "comment"),
    "integration_links": Kind("integration_link", "integration_link"),
    "webhooks": Kind("webhook", "webhook", paged=False),
    "email_bulk_actions": Kind("bulk_action/email", "bulk_action.email"),
    "edit_bulk_actions": Kind("bulk_action/edit", "bulk_action.edit"),
    "delete_bulk_actions": Kind("bulk_action/delete", "bulk_action.delete"),
    "sequence_subscription_bulk_actions": Kind(
        "bulk_action/sequence_subscription", "bulk_action.sequence_subscription"
    ),
    "unsubscribed_emails": Kind("unsubscribe/email", "unsubscribe.email", paged=False),
}
BY_PATH = {k.path: name for name, k in KINDS.items()}
STREAMS = ("organizations", "memberships", *KINDS)
EXPORT_POLLS = 2  # GETs of /export/{id}/ until done: created -> in_progress -> done


class ObjectStore:
    def __init__(self, ds: Dataset, seed: int) -> None:
        self.ds = ds
        rng = random.Random(f"objects-{seed}")  # separate stream: other data stays as it was
        org = go.Org(
            ds.org_id,
            ds.users,
            ds.lead_list(),
            ds.acts.records("activities"),
            ds.memberships[0]["role_id"],
        )
        self.inactive = go.inactive_memberships(rng, org)
        self.kinds = go.make_all(rng, org)
        go.share_field(random.Random(f"shared-{seed}"), org, self.kinds, ds.acts.ctx.act_types)
        self.exports: dict[str, Obj] = {}
        self._polls: dict[str, int] = {}
        self._blobs: dict[str, bytes] = {}

    def kind(self, name: str) -> str:
        """Truth stream name from a stream name, API path or event object_type."""
        if name in KINDS:
            return name
        for stream, k in KINDS.items():
            if name in (k.path, k.event_type):
                return stream
        raise KeyError(f"unknown object kind {name!r}; known: {', '.join(KINDS)}")

    def records(self, stream: str) -> list[Obj]:
        if stream == "organizations":
            return [self.ds.organization()]
        if stream == "memberships":
            return [*self.ds.memberships, *self.inactive]
        return self.kinds[stream]

    def truth(self, stream: str) -> set[str]:
        key = "email" if stream == "unsubscribed_emails" else "id"
        return {r[key] for r in self.records(stream)}

    def delete_object(self, kind: str, obj_id: str) -> None:
        stream = self.kind(kind)
        key = "email" if stream == "unsubscribed_emails" else "id"
        items = self.kinds[stream]
        old = next(o for o in items if o[key] == obj_id)
        self.kinds[stream] = [o for o in items if o is not old]
        spec = KINDS[stream]
        req = self.ds._req("DELETE", f"/api/v1/{spec.path}/{obj_id}/")
        self.ds._event(
            req,
            self.event_type(stream),
            obj_id,
            old.get("lead_id"),
            "deleted",
            changed=[],
            data=None,
            previous=old,
        )
        if stream == "comment_threads":  # a thread takes its comments along
            for comment in [c for c in self.kinds["comments"] if c["thread_id"] == obj_id]:
                self.delete_object("comments", comment["id"])

    def event_type(self, stream: str) -> str:
        """Event object_type; custom objects' is not documented (quirk: another spelling)."""
        if stream == "custom_objects" and "custom_object_event_type_other" in self.ds.quirks:
            return "custom_object_instance"
        return KINDS[stream].event_type

    def add_custom_object(self, lead_id: str) -> str:
        """A new custom object of the first type (with the shared field), logged `created`."""
        rng, ds = self.ds.mrng, self.ds
        cotype = self.kinds["custom_object_types"][0]
        when = fmt_aware(ds.clock.now())
        obj: Obj = {"id": g.rand_id(rng, "custobj_"), "custom_object_type_id": cotype["id"],
                    "lead_id": lead_id, "name": f"{cotype['name']} {rng.randint(100, 999)}",
                    "organization_id": ds.org_id, "date_created": when, "date_updated": when,
                    "created_by": ds.user_ids[0], "updated_by": ds.user_ids[0]}
        for cf in cotype["fields"]:
            obj["custom." + cf["id"]] = g.cf_value(rng, cf, ds.user_ids, [])
        self.kinds["custom_objects"].append(obj)
        req = ds._req("POST", "/api/v1/custom_object/")
        ds._event(req, self.event_type("custom_objects"), obj["id"], lead_id, "created",
                  changed=[], data=obj, previous=None)
        return str(obj["id"])

    def update_custom_object(self, obj_id: str) -> None:
        """Rename a custom object (date_updated moves), logged `updated`."""
        items = self.kinds["custom_objects"]
        index = next(i for i, o in enumerate(items) if o["id"] == obj_id)
        old = items[index]
        new = self.ds._stamp(old)
        new["name"] = f"{old['name']} (edited)"
        items[index] = new
        req = self.ds._req("PUT", f"/api/v1/custom_object/{obj_id}/")
        self.ds._event(req, self.event_type("custom_objects"), obj_id, old.get("lead_id"),
                       "updated", changed=["date_updated", "name"], data=new,
                       previous={"name": old["name"], "date_updated": old["date_updated"]})

    # --- exports ------------------------------------------------------------------------------

    def create_export(self, body: Obj, base_url: str) -> Obj:
        ds = self.ds
        now = fmt_aware(ds.clock.now())
        leads = ds.lead_list()
        fields = body.get("fields") or None
        rows = []
        for lead in leads:
            row = {k: v for k, v in lead.items() if not fields or k in fields or k == "id"}
            if fields and "custom" in fields:
                row.update((k, v) for k, v in lead.items() if k.startswith("custom."))
            if body.get("include_activities"):
                row["activities"] = [
                    a for a in ds.acts.newest_first() if a["lead_id"] == lead["id"]
                ]
            rows.append(row)
        export_id = g.rand_id(ds.mrng, "expo_")
        self._blobs[export_id] = gzip.compress(json.dumps(rows).encode())
        self._polls[export_id] = 0
        export = {
            "id": export_id,
            "status": "created",
            "format": body.get("format", "json"),
            "type": body.get("type", "leads"),
            "fields": fields or [],
            "date_format": body.get("date_format", "original"),
            "s_query": body.get("s_query"),
            "results_limit": body.get("results_limit"),
            "sort": body.get("sort", []),
            "n_docs": len(rows),
            "n_docs_processed": 0,
            "download_url": None,
            "send_done_email": body.get("send_done_email", True),
            "organization_id": ds.org_id,
            "created_by": ds.user_ids[0],
            "updated_by": ds.user_ids[0],
            "date_created": now,
            "date_updated": now,
            "_url": f"{base_url}/_download/{export_id}",
        }
        self.exports[export_id] = export
        return self.view_export(export_id)

    def view_export(self, export_id: str) -> Obj:
        return {k: v for k, v in self.exports[export_id].items() if k != "_url"}

    def poll_export(self, export_id: str) -> Obj:
        """One GET /export/{id}/: advances created -> in_progress -> done."""
        export = dict(self.exports[export_id])
        n = self._polls[export_id] = self._polls[export_id] + 1
        if export["status"] != "done":
            done = n >= EXPORT_POLLS
            export.update(
                status="done" if done else "in_progress",
                n_docs_processed=export["n_docs"] if done else export["n_docs"] // 2,
                download_url=export["_url"] if done else None,
                date_updated=fmt_aware(self.ds.clock.now()),
            )
            self.exports[export_id] = export
        return self.view_export(export_id)

    def download(self, export_id: str) -> bytes | None:
        export = self.exports.get(export_id)
        if export is None or export["status"] != "done":
            return None
        return self._blobs[export_id]
