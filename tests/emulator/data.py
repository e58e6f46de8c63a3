"""In-memory Close dataset: seeded generation, lead views, mutations, event log and truth."""

from __future__ import annotations

import copy
import random
import threading
from datetime import datetime, timedelta
from typing import Any

from . import generate as g
from .activities import STREAMS as ACTIVITY_STREAMS
from .activities import ActivityStore
from .documented import fill_documented
from .lag import visible
from .objects import STREAMS as OBJECT_STREAMS
from .objects import ObjectStore
from .timeutil import Clock, fmt_aware, fmt_naive

Obj = dict[str, Any]

STREAMS = (
    "leads",
    "contacts",
    "opportunities",
    "users",
    "lead_statuses",
    "opportunity_statuses",
    "pipelines",
    "lead_custom_fields",
    "contact_custom_fields",
    "opportunity_custom_fields",
    *ACTIVITY_STREAMS,
    *OBJECT_STREAMS,
    "events",
)


def _diff(old: Obj, new: Obj) -> tuple[list[str], Obj]:
    """Changed top-level keys and their previous values (absent -> None)."""
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return changed, {k: copy.deepcopy(old.get(k)) for k in changed}


class Dataset:
    """All objects of one fake Close organization. Every public method takes `self.lock`."""

    quirks: frozenset[str] = frozenset()  # apibase.QUIRKS switched on

    def __init__(self, seed: int, n_leads: int, n_users: int, clock: Clock | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock or Clock()
        rng = random.Random(seed)
        self.mrng = random.Random(f"mutations-{seed}")  # content of later mutations
        self.frng = random.Random(f"future-{seed}")  # which new rows are dated ahead
        self.commit_lag = 0.0  # seconds before a written row shows in lists (lag.py)
        self.future_share = 0.0  # share of new leads/activities dated `future_hours` ahead
        self.future_hours = 3.0
        self.org_id = g.rand_id(rng, "orga_")
        self.users = g.make_users(rng, max(n_users, 1), self.org_id)
        self.user_ids = [u["id"] for u in self.users]
        role_id = g.rand_id(rng, "role_")
        self.memberships = [g.make_membership(rng, u, self.org_id, role_id) for u in self.users]
        self.lead_statuses = g.make_lead_statuses(rng, self.org_id)
        self.pipelines = g.make_pipelines(rng, self.org_id, self.user_ids[0])
        self.opp_statuses = g.opp_statuses(self.pipelines, self.org_id)
        self.cfields = g.make_custom_fields(rng, self.org_id, self.user_ids[0])
        self.leads: dict[str, Obj] = {}  # lead base objects (no contacts/opportunities)
        self.contacts: dict[str, Obj] = {}  # /contact/ shape, with lead_id
        self.opps: dict[str, Obj] = {}
        self.lead_contacts: dict[str, list[str]] = {}
        self.lead_opps: dict[str, list[str]] = {}
        self.events: list[Obj] = []
        self._views: dict[str, Obj] = {}
        self._sorted: dict[str, list[str]] = {}
        self._generate_leads(rng, n_leads)
        self.acts = ActivityStore(self, seed)
        self.objects = ObjectStore(self, seed)
        fill_documented(self)
        self._views.clear()  # lead views built so far lack those fields

    # --- generation ---------------------------------------------------------------------------

    def _generate_leads(self, rng: random.Random, n: int) -> None:
        prev_updated: datetime | None = None
        for i in range(n):
            created = g.rand_dt(rng, g.DATA_START, g.DATA_END)
            updated = g.rand_after(rng, created, 200)
            if i % 5 == 4 and prev_updated is not None:
                # quirk: same minute as the previous lead, different second
                second = (prev_updated.second + rng.randint(1, 58)) % 60
                updated = prev_updated.replace(second=second, microsecond=rng.randint(0, 999_999))
                created = min(created, updated - timedelta(days=rng.randint(0, 90)))
            prev_updated = updated
            self._build_lead(rng, created, updated)

    def _build_lead(
        self,
        rng: random.Random,
        created: datetime,
        updated: datetime,
        n_contacts: int | None = None,
        n_opps: int | None = None,
    ) -> str:
        user = rng.choice(self.users)
        lead = g.make_lead(
            rng,
            org_id=self.org_id,
            status=rng.choice(self.lead_statuses),
            user=user,
            created=created,
            updated=updated,
        )
        lead_id = lead["id"]
        cids: list[str] = []
        for _ in range(rng.randint(0, 3) if n_contacts is None else n_contacts):
            c_created = g.rand_dt(rng, created, updated) if updated > created else created
            c_updated = g.rand_dt(rng, c_created, updated) if updated > c_created else c_created
            contact = g.make_contact(
                rng,
                org_id=self.org_id,
                lead_id=lead_id,
                user_id=user["id"],
                created=c_created,
                updated=c_updated,
            )
            g.fill_custom(rng, contact, self.cfields["contact"], self.user_ids, [])
            self.contacts[contact["id"]] = contact
            cids.append(contact["id"])
        g.fill_custom(rng, lead, self.cfields["lead"], self.user_ids, cids)
        oids: list[str] = []
        for _ in range(rng.randint(0, 2) if n_opps is None else n_opps):
            o_created = g.rand_after(rng, created, 60)
            o_updated = g.rand_after(rng, o_created, 120)
            opp_contact: Obj | None = None
            if cids and rng.random() < 0.7:
                opp_contact = self.contacts[rng.choice(cids)]
            opp = g.make_opportunity(
                rng,
                org_id=self.org_id,
                lead=lead,
                contact=opp_contact,
                user=rng.choice(self.users),
                pipeline=rng.choice(self.pipelines),
                created=o_created,
                updated=o_updated,
            )
            g.fill_custom(rng, opp, self.cfields["opportunity"], self.user_ids, cids)
            self.opps[opp["id"]] = opp
            oids.append(opp["id"])
        self.leads[lead_id] = lead
        self.lead_contacts[lead_id] = cids
        self.lead_opps[lead_id] = oids
        self._sorted.clear()
        return lead_id

    # --- views --------------------------------------------------------------------------------

    def lead_view(self, lead_id: str) -> Obj:
        """A lead as GET /lead/ returns it (cached until the lead or a child changes)."""
        view = self._views.get(lead_id)
        if view is None:
            view = dict(self.leads[lead_id])
            contacts = [
                {k: v for k, v in self.contacts[c].items() if k != "lead_id"}
                for c in self.lead_contacts[lead_id]
            ]
            view["contact_ids"] = list(self.lead_contacts[lead_id])
            view["contacts"] = contacts
            view["opportunities"] = [self.opps[o] for o in self.lead_opps[lead_id]]
            view["primary_email"] = next((c["emails"][0] for c in contacts if c["emails"]), None)
            view["primary_phone"] = next((c["phones"][0] for c in contacts if c["phones"]), None)
            self._views[lead_id] = view
        return view

    def sorted_ids(self, kind: str) -> list[str]:
        ids = self._sorted.get(kind)
        if ids is None:
            source = {"lead": self.leads, "contact": self.contacts, "opportunity": self.opps}[kind]
            ids = self._sorted[kind] = sorted(source)
        return ids

    def lead_list(self) -> list[Obj]:
        return [self.lead_view(i) for i in self.sorted_ids("lead")]

    def contact_list(self) -> list[Obj]:
        return [self.contacts[i] for i in self.sorted_ids("contact")]

    def opp_list(self) -> list[Obj]:
        return [self.opps[i] for i in self.sorted_ids("opportunity")]

    def organization(self) -> Obj:
        return {
            "id": self.org_id,
            "name": "Emulated Org",
            "currency": "USD",
            "currency_symbol": "$",
            "date_created": "2023-01-02T03:04:05.678000+00:00",
            "date_updated": "2023-06-07T08:09:10.111000+00:00",
            "created_by": self.user_ids[0],
            "updated_by": self.user_ids[0],
            "plan_type": "business",
            "lead_statuses": [{"id": s["id"], "label": s["label"]} for s in self.lead_statuses],
            "pipelines": self.pipelines,
            "memberships": self.memberships,
            "inactive_memberships": self.objects.inactive,
        }

    def me(self) -> Obj:
        user = dict(self.users[0])
        m = {k: v for k, v in self.memberships[0].items() if not k.startswith("user_")}
        m["user_id"] = user["id"]
        org = {
            k: v
            for k, v in self.organization().items()
            if k not in ("memberships", "inactive_memberships")
        }
        user.update(
            {
                "email_accounts": [],
                "memberships": [m],
                "organizations": [org],
                "phone_numbers": [],
                "last_used_timezone": "UTC",
            }
        )
        return user

    def schema(self, object_type: str) -> Obj:
        return {
            "object_type": object_type,
            "name": object_type.capitalize(),
            "organization_id": self.org_id,
            "fields": self.cfields[object_type],
        }

    # --- server time -------------------------------------------------------------------------

    def birth(self, ahead: float | None = None) -> datetime:
        """date_created of a new lead or activity: now, or `ahead` hours later (Close
        "regularly" returns date_created later than now); `None` = drawn by future_share."""
        now = self.clock.now()
        if ahead is None and self.future_share and self.frng.random() < self.future_share:
            ahead = self.future_hours
        return now + timedelta(hours=ahead) if ahead else now

    def visible(self, items: list[Obj]) -> list[Obj]:
        """`items` as a list or search shows them now (commit lag)."""
        return visible(items, self.clock.peek(), self.commit_lag)

    # --- truth --------------------------------------------------------------------------------

    def records(self, stream: str) -> list[Obj]:
        with self.lock:
            if stream == "leads":
                out = self.lead_list()
            elif stream == "contacts":
                out = self.contact_list()
            elif stream == "opportunities":
                out = self.opp_list()
            elif stream == "users":
                out = self.users
            elif stream == "lead_statuses":
                out = self.lead_statuses
            elif stream == "opportunity_statuses":
                out = self.opp_statuses
            elif stream == "pipelines":
                out = self.pipelines
            elif stream in ACTIVITY_STREAMS:
                out = self.acts.records(stream)
            elif stream in OBJECT_STREAMS:
                out = self.objects.records(stream)
            elif stream == "events":
                out = self.events
            elif stream.endswith("_custom_fields"):
                out = self.cfields[stream.removesuffix("_custom_fields")]
            else:
                raise KeyError(f"unknown stream {stream!r}; known: {', '.join(STREAMS)}")
            return copy.deepcopy(out)

    def truth(self, stream: str) -> set[str]:
        key = "email" if stream == "unsubscribed_emails" else "id"  # no ids on those
        return {r[key] for r in self.records(stream)}

    # --- event log ----------------------------------------------------------------------------

    def _event(
        self,
        req: Obj,
        object_type: str,
        object_id: str,
        lead_id: str | None,
        action: str,
        *,
        changed: list[str],
        data: Obj | None,
        previous: Obj | None,
        extra_meta: Obj | None = None,
        at: datetime | None = None,
    ) -> None:
        when = fmt_naive(at or self.clock.now())
        meta = {"request_method": req["method"], "request_path": req["path"]}
        meta.update(extra_meta or {})
        self.events.append(
            {
                "id": g.rand_id(self.mrng, "ev_", 22),
                "date_created": when,
                "date_updated": when,
                "organization_id": self.org_id,
                "user_id": self.user_ids[0],
                "request_id": req["id"],
                "api_key_id": None,
                "object_type": object_type,
                "object_id": object_id,
                "lead_id": lead_id,
                "action": action,
                "changed_fields": changed,
                "data": copy.deepcopy(data),
                "previous_data": copy.deepcopy(previous) if previous is not None else {},
                "meta": meta,
            }
        )

    def _req(self, method: str, path: str) -> Obj:
        return {"id": g.rand_id(self.mrng, "req_", 22), "method": method, "path": path}

    # --- mutation helpers ---------------------------------------------------------------------

    def _stamp(self, obj: Obj) -> Obj:
        """Copy with date_updated = now (strictly increasing) and updated_by = API user."""
        new = dict(obj)
        new["date_updated"] = fmt_aware(self.clock.now())
        new["updated_by"] = self.user_ids[0]
        if "updated_by_name" in new:
            user = self.users[0]
            new["updated_by_name"] = f"{user['first_name']} {user['last_name']}"
        return new

    def _touch_lead(self, req: Obj, lead_id: str, old_view: Obj) -> None:
        """Bump a lead after a contact change and log `lead updated`."""
        self.leads[lead_id] = self._stamp(self.leads[lead_id])
        self._views.pop(lead_id, None)
        changed, prev = _diff(old_view, self.lead_view(lead_id))
        self._event(
            req,
            "lead",
            lead_id,
            lead_id,
            "updated",
            changed=changed,
            data=self.lead_view(lead_id),
            previous=prev,
        )

    def _new_contact(self, lead_id: str, when: datetime) -> Obj:
        contact = g.make_contact(
            self.mrng,
            org_id=self.org_id,
            lead_id=lead_id,
            user_id=self.user_ids[0],
            created=when,
            updated=when,
        )
        g.fill_custom(self.mrng, contact, self.cfields["contact"], self.user_ids, [])
        return contact

    def _new_opp(self, lead_id: str, when: datetime) -> Obj:
        cids = self.lead_contacts[lead_id]
        opp = g.make_opportunity(
            self.mrng,
            org_id=self.org_id,
            lead=self.leads[lead_id],
            contact=self.contacts[cids[0]] if cids else None,
            user=self.users[0],
            pipeline=self.mrng.choice(self.pipelines),
            created=when,
            updated=when,
        )
        g.fill_custom(self.mrng, opp, self.cfields["opportunity"], self.user_ids, cids)
        return opp

    # --- mutations ----------------------------------------------------------------------------

    def update_lead(self, lead_id: str) -> None:
        with self.lock:
            req = self._req("PUT", f"/api/v1/lead/{lead_id}/")
            old_view = self.lead_view(lead_id)
            new = self._stamp(self.leads[lead_id])
            new["description"] = g.words(self.mrng, 4) + f" #{self.mrng.randint(1, 10**6)}"
            if self.mrng.random() < 0.5:
                status = self.mrng.choice(self.lead_statuses)
                new["status_id"], new["status_label"] = status["id"], status["label"]
            num = next(f for f in self.cfields["lead"] if f["type"] == "number")
            new["custom." + num["id"]] = self.mrng.randint(1, 5000)
            self.leads[lead_id] = new
            self._views.pop(lead_id, None)
            changed, prev = _diff(old_view, self.lead_view(lead_id))
            self._event(
                req,
                "lead",
                lead_id,
                lead_id,
                "updated",
                changed=changed,
                data=self.lead_view(lead_id),
                previous=prev,
            )

    def update_contact(self, contact_id: str) -> None:
        with self.lock:
            old = self.contacts[contact_id]
            lead_id = old["lead_id"]
            req = self._req("PUT", f"/api/v1/contact/{contact_id}/")
            old_view = self.lead_view(lead_id)
            new = self._stamp(old)
            new["title"] = (
                self.mrng.choice([t for t in g.TITLES if t]) + f" {self.mrng.randint(1, 999)}"
            )
            self.contacts[contact_id] = new
            changed, prev = _diff(old, new)
            self._event(
                req,
                "contact",
                contact_id,
                lead_id,
                "updated",
                changed=changed,
                data=new,
                previous=prev,
            )
            if "contact_edit_no_lead_bump" not in self.quirks:
                self._touch_lead(req, lead_id, old_view)
            else:
                self._views.pop(lead_id, None)

    def update_opportunity(self, opp_id: str) -> None:
        with self.lock:
            old = self.opps[opp_id]
            req = self._req("PUT", f"/api/v1/opportunity/{opp_id}/")
            new = self._stamp(old)
            g.set_opp_value(
                new,
                self.mrng.randint(10, 5000) * 100,
                new["value_period"],
                self.mrng.choice([10, 25, 50, 75, 90]),
            )
            self.opps[opp_id] = new
            self._views.pop(old["lead_id"], None)
            changed, prev = _diff(old, new)
            self._event(
                req,
                "opportunity",
                opp_id,
                old["lead_id"],
                "updated",
                changed=changed,
                data=new,
                previous=prev,
            )

    def add_lead(self, ahead: float | None = None) -> str:
        with self.lock:
            now = self.birth(ahead)
            lead_id = self._build_lead(
                self.mrng,
                now,
                now,
                n_contacts=self.mrng.randint(1, 2),
                n_opps=self.mrng.randint(0, 1),
            )
            req = self._req("POST", "/api/v1/lead/")
            self._event(
                req,
                "lead",
                lead_id,
                lead_id,
                "created",
                changed=[],
                data=self.lead_view(lead_id),
                previous=None,
            )
            for cid in self.lead_contacts[lead_id]:
                self._event(
                    req,
                    "contact",
                    cid,
                    lead_id,
                    "created",
                    changed=[],
                    data=self.contacts[cid],
                    previous=None,
                )
            for oid in self.lead_opps[lead_id]:
                self._event(
                    req,
                    "opportunity",
                    oid,
                    lead_id,
                    "created",
                    changed=[],
                    data=self.opps[oid],
                    previous=None,
                )
            self.acts.add_activity("created", lead_id)
            return lead_id

    def add_contact(self, lead_id: str) -> str:
        with self.lock:
            req = self._req("POST", "/api/v1/contact/")
            old_view = self.lead_view(lead_id)
            contact = self._new_contact(lead_id, self.clock.now())
            self.contacts[contact["id"]] = contact
            self.lead_contacts[lead_id] = [*self.lead_contacts[lead_id], contact["id"]]
            self._sorted.pop("contact", None)
            self._event(
                req,
                "contact",
                contact["id"],
                lead_id,
                "created",
                changed=[],
                data=contact,
                previous=None,
            )
            self._touch_lead(req, lead_id, old_view)
            return str(contact["id"])

    def add_opportunity(self, lead_id: str) -> str:
        with self.lock:
            req = self._req("POST", "/api/v1/opportunity/")
            opp = self._new_opp(lead_id, self.clock.now())
            self.opps[opp["id"]] = opp
            self.lead_opps[lead_id] = [*self.lead_opps[lead_id], opp["id"]]
            self._sorted.pop("opportunity", None)
            self._views.pop(lead_id, None)
            self._event(
                req,
                "opportunity",
                opp["id"],
                lead_id,
                "created",
                changed=[],
                data=opp,
                previous=None,
            )
            return str(opp["id"])

    def delete_contact(self, contact_id: str) -> None:
        with self.lock:
            old = self.contacts[contact_id]
            lead_id = old["lead_id"]
            req = self._req("DELETE", f"/api/v1/contact/{contact_id}/")
            old_view = self.lead_view(lead_id)
            del self.contacts[contact_id]
            self.lead_contacts[lead_id] = [
                c for c in self.lead_contacts[lead_id] if c != contact_id
            ]
            self._sorted.pop("contact", None)
            self._event(
                req, "contact", contact_id, lead_id, "deleted", changed=[], data=None, previous=old
            )
            self._touch_lead(req, lead_id, old_view)

    def delete_opportunity(self, opp_id: str) -> None:
        with self.lock:
            old = self.opps.pop(opp_id)
            lead_id = old["lead_id"]
            req = self._req("DELETE", f"/api/v1/opportunity/{opp_id}/")
            self.lead_opps[lead_id] = [o for o in self.lead_opps[lead_id] if o != opp_id]
            self._sorted.pop("opportunity", None)
            self._views.pop(lead_id, None)
            self._event(
                req, "opportunity", opp_id, lead_id, "deleted", changed=[], data=None, previous=old
            )

    def delete_lead(self, lead_id: str, req: Obj | None = None, meta: Obj | None = None) -> None:
        with self.lock:
            req = req or self._req("DELETE", f"/api/v1/lead/{lead_id}/")
            old_view = self.lead_view(lead_id)
            for cid in self.lead_contacts.pop(lead_id):
                old = self.contacts.pop(cid)
                self._event(
                    req,
                    "contact",
                    cid,
                    lead_id,
                    "deleted",
                    changed=[],
                    data=None,
                    previous=old,
                    extra_meta=meta,
                )
            for oid in self.lead_opps.pop(lead_id):
                old = self.opps.pop(oid)
                self._event(
                    req,
                    "opportunity",
                    oid,
                    lead_id,
                    "deleted",
                    changed=[],
                    data=None,
                    previous=old,
                    extra_meta=meta,
                )
            self.acts.drop_lead(req, lead_id, meta)
            del self.leads[lead_id]
            self._views.pop(lead_id, None)
            self._sorted.clear()
            self._event(
                req,
                "lead",
                lead_id,
                lead_id,
                "deleted",
                changed=[],
                data=None,
                previous=old_view,
                extra_meta=meta,
            )

    def merge_leads(self, source_id: str, destination_id: str) -> None:
        if source_id == destination_id:
            raise ValueError("cannot merge a lead into itself")
        with self.lock:
            req = self._req("POST", "/api/v1/lead/merge/")
            meta = {"merge_source_lead_id": source_id, "merge_destination_lead_id": destination_id}
            dest_view = self.lead_view(destination_id)
            dest_name = self.leads[destination_id]["display_name"]
            moved_c, moved_o = self.lead_contacts[source_id], self.lead_opps[source_id]
            for cid in moved_c:
                old = self.contacts[cid]
                new = self._stamp(old)
                new["lead_id"] = destination_id
                self.contacts[cid] = new
                changed, prev = _diff(old, new)
                self._event(
                    req,
                    "contact",
                    cid,
                    destination_id,
                    "updated",
                    changed=changed,
                    data=new,
                    previous=prev,
                    extra_meta=meta,
                )
            for oid in moved_o:
                old = self.opps[oid]
                new = self._stamp(old)
                new["lead_id"], new["lead_name"] = destination_id, dest_name
                self.opps[oid] = new
                changed, prev = _diff(old, new)
                self._event(
                    req,
                    "opportunity",
                    oid,
                    destination_id,
                    "updated",
                    changed=changed,
                    data=new,
                    previous=prev,
                    extra_meta=meta,
                )
            self.lead_contacts[destination_id] = self.lead_contacts[destination_id] + moved_c
            self.lead_opps[destination_id] = self.lead_opps[destination_id] + moved_o
            self.lead_contacts[source_id], self.lead_opps[source_id] = [], []
            self._views.pop(source_id, None)
            moved_a = [a for a in self.acts.items.values() if a["lead_id"] == source_id]
            self.acts.move_lead(req, source_id, destination_id, meta)
            source_name = self.leads[source_id]["display_name"]
            self.delete_lead(source_id, req, meta)
            self.acts.add_merge_activity(req, source_id, source_name, destination_id, meta)
            self.leads[destination_id] = self._stamp(self.leads[destination_id])
            self._views.pop(destination_id, None)
            changed, prev = _diff(dest_view, self.lead_view(destination_id))
            at = self.clock.now()  # one moment for the request's last events
            self._event(
                req,
                "lead",
                destination_id,
                destination_id,
                "merged",
                changed=changed,
                data=self.lead_view(destination_id),
                previous=prev,
                extra_meta=meta,
                at=at,
            )
            if "merge_deletes_moved_children" in self.quirks:  # moved, same ids, yet "deleted"
                moved = [("contact", i) for i in moved_c] + [("opportunity", i) for i in moved_o]
                moved += [(self.acts.event_type_of(a), a["id"]) for a in moved_a]
                for object_type, object_id in moved:
                    self._event(req, object_type, object_id, source_id, "deleted", changed=[],
                                data=None, previous=None, at=at)

    # --- activities and tasks -----------------------------------------------------------------

    def add_activity(
        self, kind: str, lead_id: str | None = None, ahead: float | None = None
    ) -> str:
        with self.lock:
            return self.acts.add_activity(kind, lead_id, ahead)

    def update_activity(self, activity_id: str) -> None:
        with self.lock:
            self.acts.update_activity(activity_id)

    def delete_activity(self, activity_id: str) -> None:
        with self.lock:
            self.acts.delete_activity(activity_id)

    def add_task(self, lead_id: str, task_type: str = "lead") -> str:
        with self.lock:
            return self.acts.add_task(lead_id, task_type)

    def update_task(self, task_id: str) -> None:
        with self.lock:
            self.acts.update_task(task_id)

    def complete_task(self, task_id: str) -> str:
        with self.lock:
            return self.acts.complete_task(task_id)

    def delete_task(self, task_id: str) -> None:
        with self.lock:
            self.acts.delete_task(task_id)

    def delete_object(self, kind: str, obj_id: str) -> None:
        with self.lock:
            self.objects.delete_object(kind, obj_id)

    def add_custom_object(self, lead_id: str) -> str:
        with self.lock:
            return self.objects.add_custom_object(lead_id)

    def update_custom_object(self, obj_id: str) -> None:
        with self.lock:
            self.objects.update_custom_object(obj_id)

    def seed_event_grid(self, seconds: int, ties: int, newest: timedelta) -> list[str]:
        """`ties` events at each whole second of the `seconds` before now - `newest`: every
        date window bound on a whole second cuts through a group of equal date_updated.
        Returns the new events' ids."""
        top = (self.clock.now() - newest).replace(microsecond=0)
        leads = self.sorted_ids("lead")
        before = len(self.events)
        with self.lock:
            for k in range(seconds, 0, -1):
                for j in range(ties):
                    lead_id = leads[(k * ties + j) % len(leads)]
                    req = self._req("PUT", f"/api/v1/lead/{lead_id}/")
                    self._event(req, "lead", lead_id, lead_id, "updated",
                                changed=["description"], data=self.lead_view(lead_id),
                                previous=None, at=top - timedelta(seconds=k))
            added = [e["id"] for e in self.events[before:]]
            self.events.sort(key=lambda e: e["date_updated"])  # the log is oldest first
        return added

    def seed_event_history(self, n: int) -> None:
        """Pre-fill the log with `n` past events (last 29 days, up to 10 minutes ago), oldest
        first; `data` is the object as it is now."""
        rng = random.Random(f"history-{n}")
        now = self.clock.now()
        pool: list[tuple[str, Obj, str | None]] = [
            ("lead", self.lead_view(i), i) for i in self.sorted_ids("lead")
        ]
        pool += [("contact", c, c["lead_id"]) for c in self.contact_list()]
        pool += [("opportunity", o, o["lead_id"]) for o in self.opp_list()]
        pool += [(self.acts.event_type_of(a), a, a["lead_id"]) for a in self.acts.newest_first()]
        pool += [(f"task.{t['_type']}", t, t["lead_id"]) for t in self.acts.task_list()]
        if not pool:
            return
        stamps = sorted(
            now - timedelta(days=29) + timedelta(seconds=rng.randint(0, 29 * 86400 - 600))
            for _ in range(n)
        )
        with self.lock:
            for at in stamps:
                otype, obj, lead_id = rng.choice(pool)
                action = rng.choice(["created", "updated"])
                req = self._req("POST" if action == "created" else "PUT", "/api/v1/")
                self._event(
                    req,
                    otype,
                    obj["id"],
                    lead_id,
                    action,
                    changed=["date_updated"] if action == "updated" else [],
                    data=obj,
                    previous=None,
                    at=at,
                )
