"""Activities, tasks and custom activity types of a Dataset: generation, mutations, events."""

from __future__ import annotations

import copy
import random
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import gen_activity as ga
from . import generate as g
from .timeutil import parse_dt

if TYPE_CHECKING:
    from .data import Dataset

Obj = dict[str, Any]

# kinds generated besides `created`, with weights
_KIND_WEIGHTS = {
    "call": 4,
    "email": 4,
    "note": 4,
    "meeting": 2,
    "sms": 2,
    "whatsapp_message": 1,
    "lead_status_change": 2,
    "opportunity_status_change": 2,
    "form_submission": 1,
    "custom": 3,
    "lead_merge": 1,
}
_TASK_WEIGHTS = {t: (8 if t == "lead" else 1) for t in ga.TASK_TYPES}
# truth stream name -> activity kind
ACTIVITY_STREAMS = {
    "call_activities": "call",
    "email_activities": "email",
    "email_thread_activities": "emailthread",
    "note_activities": "note",
    "meeting_activities": "meeting",
    "sms_activities": "sms",
    "whatsapp_message_activities": "whatsapp_message",
    "created_activities": "created",
    "lead_status_change_activities": "lead_status_change",
    "opportunity_status_change_activities": "opportunity_status_change",
    "task_completed_activities": "task_completed",
    "lead_merge_activities": "lead_merge",
    "form_submission_activities": "form_submission",
    "custom_activity_instances": "custom",
}
STREAMS = (
    *ACTIVITY_STREAMS,
    "activities",
    "tasks",
    "activity_custom_fields",
    "custom_activity_types",
)
KIND_ALIASES = {"custom_activity": "custom", "status_change/lead": "lead_status_change"}
KIND_ALIASES["status_change/opportunity"] = "opportunity_status_change"
# task object_type per task _type (what a task points at)
_TASK_REF = {
    "missed_call": "call",
    "answered_detached_call": "call",
    "voicemail": "call",
    "incoming_email": "emailthread",
    "email_followup": "emailthread",
    "incoming_sms": "sms",
}


def kind_of(act: Obj) -> str:
    return ga.KIND_OF_TYPE[act["_type"]]


def event_type(kind: str) -> str:
    """Event-log object_type of an activity kind."""
    return "activity." + ("custom_activity" if kind == "custom" else kind)


def api_path(kind: str) -> str:
    """The /activity/ sub-path of a kind."""
    if kind.endswith("_status_change"):
        return "status_change/" + kind.removesuffix("_status_change")
    return kind


def _diff(old: Obj, new: Obj) -> tuple[list[str], Obj]:
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    return changed, {k: copy.deepcopy(old.get(k)) for k in changed}


class ActivityStore:
    """Activities (all kinds), tasks and custom activity types of one Dataset."""

    def __init__(self, ds: Dataset, seed: int) -> None:
        self.ds = ds
        rng = random.Random(f"activities-{seed}")  # separate stream: leads stay as they were
        self.ctx = ga.Ctx(ds.org_id, ds.users, ds.lead_statuses, ds.pipelines)
        self.ctx.act_types, self.ctx.act_fields = ga.make_activity_types(
            rng, ds.org_id, ds.user_ids[0]
        )
        self.items: dict[str, Obj] = {}  # activities by id
        self.tasks: dict[str, Obj] = {}
        self.gone: set[str] = set()  # deleted activity/task ids (404 "has been deleted")
        self.scan_edited: list[str] = []  # by the `tasks_edited_during_scan` quirk
        self._sorted: dict[str, list[Obj]] = {}
        for lead_id in list(ds.leads):
            self._generate(rng, lead_id)
        if ds.leads:
            self._cover(rng)

    def _cover(self, rng: random.Random) -> None:
        """Make sure every activity kind and task _type exists at least once."""
        ds = self.ds
        leads = sorted(ds.leads)
        have = {a["_type"] for a in self.items.values()}
        for kind, type_name in ga.ACTIVITY_TYPES.items():
            if type_name in have:
                continue
            with_opps = [i for i in leads if ds.lead_opps[i]]
            if kind == "opportunity_status_change" and not with_opps:
                continue
            lead_id = rng.choice(with_opps if kind == "opportunity_status_change" else leads)
            when = g.rand_after(rng, parse_dt(ds.leads[lead_id]["date_created"]), 300)
            self._put(self.build(rng, kind, lead_id, when, when))
        have = {t["_type"] for t in self.tasks.values()}
        for ttype in ga.TASK_TYPES:
            if ttype not in have:
                lead_id = rng.choice(leads)
                when = g.rand_after(rng, parse_dt(ds.leads[lead_id]["date_created"]), 300)
                task = self.build_task(rng, ttype, lead_id, when, when)
                self.tasks[task["id"]] = task

    # --- generation ---------------------------------------------------------------------------

    def _generate(self, rng: random.Random, lead_id: str) -> None:
        ds = self.ds
        lead = ds.leads[lead_id]
        start = parse_dt(lead["date_created"])
        creator = next((u for u in ds.users if u["id"] == lead["created_by"]), ds.users[0])
        mine: list[Obj] = []  # this lead's activities: what build_task may refer to

        def put(acts: list[Obj]) -> None:
            self._put(acts)
            mine.extend(acts)

        put(self.build(rng, "created", lead_id, start, start, user=creator))
        kinds, weights = list(_KIND_WEIGHTS), list(_KIND_WEIGHTS.values())
        for _ in range(rng.randint(1, 4)):
            kind = rng.choices(kinds, weights)[0]
            if kind == "opportunity_status_change" and not ds.lead_opps[lead_id]:
                kind = "note"
            when = g.rand_after(rng, start, 300)
            updated = when if rng.random() < 0.5 else g.rand_after(rng, when, 10)
            for act in self.build(rng, kind, lead_id, when, updated):
                put([act])
            if kind == "email" and rng.random() < 0.5:
                put(self.build(rng, "emailthread", lead_id, when, updated)[-1:])
        task_types, task_weights = list(_TASK_WEIGHTS), list(_TASK_WEIGHTS.values())
        for _ in range(rng.randint(1, 2)):
            ttype = rng.choices(task_types, task_weights)[0]
            if ttype == "opportunity_due" and not ds.lead_opps[lead_id]:
                ttype = "lead"
            when = g.rand_after(rng, start, 300)
            task = self.build_task(rng, ttype, lead_id, when, g.rand_after(rng, when, 20),
                                   among=mine)
            if rng.random() < 0.3:
                task["is_complete"], task["view"] = True, "archive"
                done = parse_dt(task["date_updated"])
                put(self.build(rng, "task_completed", lead_id, done, done, task=task))
            self.tasks[task["id"]] = task

    def _put(self, acts: list[Obj]) -> None:
        for act in acts:
            self.items[act["id"]] = act
        self._sorted.clear()

    def build(
        self,
        rng: random.Random,
        kind: str,
        lead_id: str,
        when: datetime,
        updated: datetime,
        *,
        user: Obj | None = None,
        task: Obj | None = None,
        merge_source: tuple[str, str] | None = None,
    ) -> list[Obj]:
        """New activity of `kind` (an email thread also returns its email, first)."""
        ds = self.ds
        lead = ds.leads[lead_id]
        cids = ds.lead_contacts[lead_id]
        contact = ds.contacts[rng.choice(cids)] if cids and rng.random() < 0.8 else None
        user = user or rng.choice(ds.users)
        if kind == "emailthread":
            email = self.build(rng, "email", lead_id, when, updated, user=user)[0]
            thread = ga.base_activity(
                rng,
                kind,
                self.ctx,
                lead=lead,
                contact=None,
                user=user,
                created=when,
                updated=updated,
            )
            email["thread_id"] = thread["id"]
            ga.fill_thread(thread, [email])
            return [email, thread]
        act = ga.base_activity(
            rng,
            kind,
            self.ctx,
            lead=lead,
            contact=contact,
            user=user,
            created=when,
            updated=updated,
        )
        if kind == "call":
            ga.fill_call(rng, act, contact)
        elif kind == "email":
            ga.fill_email(rng, act, contact, user)
        elif kind == "note":
            ga.fill_note(rng, act)
        elif kind == "meeting":
            ga.fill_meeting(rng, act, contact, user)
        elif kind == "sms":
            ga.fill_sms(rng, act, contact)
        elif kind == "whatsapp_message":
            ga.fill_whatsapp(rng, act, contact)
        elif kind == "created":
            act.update(contact_id=None, source=rng.choice(["ui", "api", "import"]), import_id=None)
        elif kind == "lead_status_change":
            ga.fill_lead_status_change(rng, act, self.ctx)
        elif kind == "opportunity_status_change":
            oids = ds.lead_opps[lead_id]
            ga.fill_opp_status_change(
                rng, act, self.ctx, ds.opps[rng.choice(oids)] if oids else None
            )
        elif kind == "task_completed":
            if task is None:
                task = self.build_task(rng, "lead", lead_id, when, when)
            ga.fill_task_completed(act, task)
        elif kind == "lead_merge":
            src = merge_source or (g.rand_id(rng, "lead_"), f"{rng.choice(g.WORDS)} Duplicate")
            ga.fill_lead_merge(rng, act, *src)
            act["destination_display_name"] = lead["display_name"]
        elif kind == "form_submission":
            ga.fill_form_submission(rng, act, contact)
        elif kind == "custom":
            ga.fill_custom(rng, act, self.ctx, rng.choice(self.ctx.act_types))
        else:
            raise ValueError(f"unknown activity kind {kind!r}")
        return [act]

    def build_task(
        self, rng: random.Random, task_type: str, lead_id: str, when: datetime, updated: datetime,
        *, among: list[Obj] | None = None,
    ) -> Obj:
        """A task; `among` (in creation order) narrows the search for the activity it refers
        to (the lead's own activities while it is generated: no scan of every activity)."""
        if task_type not in ga.TASK_TYPES:
            raise ValueError(f"unknown task _type {task_type!r}; known: {', '.join(ga.TASK_TYPES)}")
        ds = self.ds
        cids = ds.lead_contacts[lead_id]
        contact = ds.contacts[rng.choice(cids)] if cids and task_type != "lead" else None
        ref: Obj | None = None
        if task_type == "opportunity_due" and ds.lead_opps[lead_id]:
            ref = ds.opps[rng.choice(ds.lead_opps[lead_id])]
        elif task_type in _TASK_REF:
            want = ga.ACTIVITY_TYPES[_TASK_REF[task_type]]
            refs = [
                a for a in (self.items.values() if among is None else among)
                if a["lead_id"] == lead_id and a["_type"] == want
            ]
            ref = rng.choice(refs) if refs else None
        return ga.make_task(
            rng,
            self.ctx,
            task_type=task_type,
            lead=ds.leads[lead_id],
            contact=contact,
            user=rng.choice(ds.users),
            created=when,
            updated=updated,
            ref=ref,
        )

    # --- views --------------------------------------------------------------------------------

    def newest_first(self) -> list[Obj]:
        """All activities, newest date_created first (ties: higher id first)."""
        out = self._sorted.get("all")
        if out is None:
            out = sorted(self.items.values(), key=lambda a: (a["date_created"], a["id"]))
            out.reverse()
            self._sorted["all"] = out
        return out

    def of_kind(self, kind: str | None) -> list[Obj]:
        if kind is None:
            return self.newest_first()
        out = self._sorted.get(kind)
        if out is None:
            want = ga.ACTIVITY_TYPES[kind]
            out = self._sorted[kind] = [a for a in self.newest_first() if a["_type"] == want]
        return out

    def task_list(self) -> list[Obj]:
        out = self._sorted.get("task")
        if out is None:
            out = sorted(self.tasks.values(), key=lambda t: (t["date_created"], t["id"]))
            self._sorted["task"] = out
        return out

    def event_type_of(self, act: Obj) -> str:
        return event_type(kind_of(act))

    def records(self, stream: str) -> list[Obj]:
        if stream in ACTIVITY_STREAMS:
            want = ga.ACTIVITY_TYPES[ACTIVITY_STREAMS[stream]]
            return [self.items[i] for i in sorted(self.items) if self.items[i]["_type"] == want]
        if stream == "activities":
            return [self.items[i] for i in sorted(self.items)]
        if stream == "tasks":
            return [self.tasks[i] for i in sorted(self.tasks)]
        if stream == "activity_custom_fields":
            return self.ctx.act_fields
        if stream == "custom_activity_types":
            return self.ctx.act_types
        raise KeyError(stream)

    # --- events -------------------------------------------------------------------------------

    def _act_event(
        self, req: Obj, action: str, new: Obj | None, old: Obj | None, **kw: Any
    ) -> None:
        obj = new if new is not None else old
        assert obj is not None
        if action in {"updated", "completed"}:
            assert old is not None and new is not None
            changed, prev = _diff(old, new)
        else:
            changed, prev = [], (old if action == "deleted" else None)
        is_task = obj["id"].startswith(("task_", "noti_"))
        otype = f"task.{obj['_type']}" if is_task else event_type(kind_of(obj))
        self.ds._event(
            req,
            otype,
            obj["id"],
            obj["lead_id"],
            action,
            changed=changed,
            data=new,
            previous=prev,
            extra_meta=kw.get("meta"),
        )

    # --- mutations (callers hold ds.lock) -----------------------------------------------------

    def add_activity(
        self, kind: str, lead_id: str | None = None, ahead: float | None = None
    ) -> str:
        kind = KIND_ALIASES.get(kind, kind)
        if kind not in ga.ACTIVITY_TYPES:
            raise ValueError(
                f"unknown activity kind {kind!r}; known: {', '.join(ga.ACTIVITY_TYPES)}"
            )
        ds = self.ds
        rng = ds.mrng
        lead_id = lead_id or rng.choice(sorted(ds.leads))
        now = ds.birth(ahead)
        acts = self.build(rng, kind, lead_id, now, now, user=ds.users[0])
        for act in acts:
            req = ds._req("POST", f"/api/v1/activity/{api_path(kind_of(act))}/")
            self._put([act])
            self._act_event(req, "created", act, None)
        return str(acts[-1]["id"])

    def update_activity(self, activity_id: str) -> None:
        ds, rng = self.ds, self.ds.mrng
        old = self.items[activity_id]
        kind = kind_of(old)
        req = ds._req("PUT", f"/api/v1/activity/{api_path(kind)}/{activity_id}/")
        new = ds._stamp(old)
        tag = f" #{rng.randint(1, 10**6)}"
        if kind == "note":
            text = g.words(rng, 5) + tag
            new.update(note=text, note_html=ga._html(text))
        elif kind == "call":
            new.update(
                status="completed",
                disposition=rng.choice(["answered", "vm-left", "no-answer"]),
                duration=old.get("duration", 0) + rng.randint(1, 600),
                note=g.words(rng, 3) + tag,
            )
            new["note_html"] = ga._html(new["note"])
        elif kind == "meeting":
            new.update(
                status="completed",
                outcome_id=g.rand_id(rng, "outcome_", 22),
                user_note=g.words(rng, 4) + tag,
            )
            new["user_note_html"] = ga._html(new["user_note"])
            new["user_note_date_updated"] = new["date_updated"]
        elif kind == "email":
            new.update(has_reply=not old["has_reply"], subject=old["subject"] + " (edited)")
        elif kind == "emailthread":
            new["latest_normalized_subject"] = g.words(rng, 3) + tag
        elif kind in ("sms", "whatsapp_message"):
            new["text"] = g.words(rng, 4) + tag
            if kind == "whatsapp_message":
                new.update(message_markdown=new["text"], message_html=f"<p>{new['text']}</p>")
        elif kind == "custom":
            new["status"] = "published"
            new["last_published_at"] = old["last_published_at"] or new["date_updated"]
            type_obj = next(
                t for t in self.ctx.act_types if t["id"] == old["custom_activity_type_id"]
            )
            cf = rng.choice(type_obj["fields"])
            new["custom." + cf["id"]] = ga.act_cf_value(rng, cf, ds.user_ids)
            if new == {**old, "date_updated": new["date_updated"]}:  # same value drawn
                new["pinned"] = not old["pinned"]
        elif kind == "lead_merge":
            new["merge_status"] = "done" if old["merge_status"] != "done" else "in_progress"
        else:  # read-only kinds in Close; touch the participating users
            new["users"] = [rng.choice(ds.user_ids), *old.get("users", [])][:2]
            if new["users"] == old.get("users"):
                new["users"] = []
        self._put([new])
        self._act_event(req, "updated", new, old)

    def delete_activity(
        self, activity_id: str, req: Obj | None = None, meta: Obj | None = None
    ) -> None:
        ds = self.ds
        old = self.items.pop(activity_id)
        self.gone.add(activity_id)
        self._sorted.clear()
        req = req or ds._req("DELETE", f"/api/v1/activity/{api_path(kind_of(old))}/{activity_id}/")
        self._act_event(req, "deleted", None, old, meta=meta)

    def add_task(self, lead_id: str, task_type: str = "lead") -> str:
        ds = self.ds
        now = ds.clock.now()
        task = self.build_task(ds.mrng, task_type, lead_id, now, now)
        task.update(created_by=ds.user_ids[0], created_by_name=ga.uname(ds.users[0]))
        task.update(updated_by=ds.user_ids[0], updated_by_name=ga.uname(ds.users[0]))
        self.tasks[task["id"]] = task
        self._sorted.pop("task", None)
        self._act_event(ds._req("POST", "/api/v1/task/"), "created", task, None)
        return str(task["id"])

    def update_task(self, task_id: str) -> None:
        ds, rng = self.ds, self.ds.mrng
        old = self.tasks[task_id]
        new = ds._stamp(old)
        new["text"] = rng.choice(["Follow up", "Send contract", "Ping again"]) + (
            f" #{rng.randint(1, 10**6)}"
        )
        new["assigned_to"] = rng.choice(ds.user_ids)
        user = next(u for u in ds.users if u["id"] == new["assigned_to"])
        new["assigned_to_name"] = ga.uname(user)
        self._replace_task(ds._req("PUT", f"/api/v1/task/{task_id}/"), "updated", old, new)

    def complete_task(self, task_id: str) -> str:
        """Mark a task complete; returns the id of the new TaskCompleted activity."""
        ds = self.ds
        old = self.tasks[task_id]
        req = ds._req("PUT", f"/api/v1/task/{task_id}/")
        new = ds._stamp(old)
        new.update(is_complete=True, view="archive")
        self._replace_task(req, "completed", old, new)
        now = ds.clock.now()
        act = self.build(
            ds.mrng, "task_completed", old["lead_id"], now, now, user=ds.users[0], task=new
        )
        self._put(act)
        self._act_event(req, "created", act[0], None)
        return str(act[0]["id"])

    def _replace_task(
        self, req: Obj, action: str, old: Obj, new: Obj, meta: Obj | None = None
    ) -> None:
        self.tasks[new["id"]] = new
        self._sorted.pop("task", None)
        self._act_event(req, action, new, old, meta=meta)

    def delete_task(self, task_id: str, req: Obj | None = None, meta: Obj | None = None) -> None:
        ds = self.ds
        old = self.tasks[task_id]
        req = req or ds._req("DELETE", f"/api/v1/task/{task_id}/")
        self._act_event(req, "deleted", None, old, meta=meta)
        del self.tasks[task_id]
        self.gone.add(task_id)
        self._sorted.pop("task", None)

    def drop_lead(self, req: Obj, lead_id: str, meta: Obj | None) -> None:
        """Delete a lead's activities and tasks (each logs its own `deleted` event)."""
        for act in sorted((a for a in self.items.values() if a["lead_id"] == lead_id), key=_key):
            self.delete_activity(act["id"], req, meta)
        for task in sorted((t for t in self.tasks.values() if t["lead_id"] == lead_id), key=_key):
            self.delete_task(task["id"], req, meta)

    def move_lead(self, req: Obj, source_id: str, dest_id: str, meta: Obj) -> None:
        """Merge: re-home the source lead's activities and tasks on the destination."""
        ds = self.ds
        dest_name = ds.leads[dest_id]["display_name"]
        for old in sorted((a for a in self.items.values() if a["lead_id"] == source_id), key=_key):
            new = ds._stamp(old)
            new["lead_id"] = dest_id
            self._put([new])
            self._act_event(req, "updated", new, old, meta=meta)
        for old in sorted((t for t in self.tasks.values() if t["lead_id"] == source_id), key=_key):
            new = ds._stamp(old)
            new.update(lead_id=dest_id, lead_name=dest_name)
            self._replace_task(req, "updated", old, new, meta)

    def add_merge_activity(
        self, req: Obj, source_id: str, source_name: str, dest_id: str, meta: Obj
    ) -> None:
        now = self.ds.clock.now()
        act = self.build(
            self.ds.mrng,
            "lead_merge",
            dest_id,
            now,
            now,
            user=self.ds.users[0],
            merge_source=(source_id, source_name),
        )
        self._put(act)
        self._act_event(req, "created", act[0], None, meta=meta)


def _key(obj: Obj) -> tuple[str, str]:
    return obj["date_created"], obj["id"]
