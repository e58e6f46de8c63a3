"""Builders for activities, tasks and custom activity types, shaped like Close's examples."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import generate as g
from .timeutil import UTC, fmt_aware, fmt_naive

Obj = dict[str, Any]

# kind (endpoint name) -> Close `_type`
ACTIVITY_TYPES: dict[str, str] = {
    "call": "Call",
    "email": "Email",
    "emailthread": "EmailThread",
    "note": "Note",
    "meeting": "Meeting",
    "sms": "SMS",
    "whatsapp_message": "WhatsAppMessage",
    "created": "Created",
    "lead_status_change": "LeadStatusChange",
    "opportunity_status_change": "OpportunityStatusChange",
    "task_completed": "TaskCompleted",
    "lead_merge": "LeadMerge",
    "form_submission": "FormSubmission",
    "custom": "CustomActivity",
}
KIND_OF_TYPE = {v: k for k, v in ACTIVITY_TYPES.items()}
TASK_TYPES = (
    "lead",
    "incoming_email",
    "email_followup",
    "missed_call",
    "answered_detached_call",
    "voicemail",
    "opportunity_due",
    "incoming_sms",
    "outgoing_call",
)
# (name, description, api_create_only, [(field name, type, multi, required, choices)])
ACTIVITY_TYPE_SPECS: list[tuple[str, str, bool, list[tuple[str, str, bool, bool, Any]]]] = [
    (
        "Newsletter Signup",
        "Happens when the lead signs up for the newsletter",
        False,
        [
            ("Email Address", "text", False, True, None),
            ("Wants Marketing Materials", "choices", True, False, ["No", "Yes", "Maybe"]),
            ("Signup Score", "number", False, False, None),
        ],
    ),
    (
        "Site Visit",
        "An on-site visit at the customer",
        True,
        [
            ("Visit Date", "date", False, True, None),
            ("Visit Notes", "textarea", False, False, None),
        ],
    ),
]
_SUBJECTS = ["Quick question", "Pricing follow-up", "Demo recap", "Contract draft", "Intro"]
_MEETING_STATUSES = ["upcoming", "completed", "canceled", "declined-by-lead"]


@dataclass
class Ctx:
    """Organization-level data the builders draw from."""

    org_id: str
    users: list[Obj]
    lead_statuses: list[Obj]
    pipelines: list[Obj]
    act_types: list[Obj] = field(default_factory=list)
    act_fields: list[Obj] = field(default_factory=list)


def uname(user: Obj | None) -> str | None:
    return f"{user['first_name']} {user['last_name']}" if user else None


def phone(rng: random.Random, area: str = "650") -> tuple[str, str]:
    d = "".join(rng.choice(string.digits) for _ in range(7))
    return f"+1{area}{d}", f"+1 {area}-{d[:3]}-{d[3:]}"


def _html(text: str) -> str:
    return f"<body><p>{text}</p></body>"


# --- custom activity types --------------------------------------------------------------------


def make_activity_types(
    rng: random.Random, org_id: str, user_id: str
) -> tuple[list[Obj], list[Obj]]:
    """Custom activity types (fields embedded) and their /custom_field/activity/ definitions."""
    types: list[Obj] = []
    defs: list[Obj] = []
    for name, desc, api_only, specs in ACTIVITY_TYPE_SPECS:
        created = g.rand_dt(
            rng, datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, tzinfo=UTC)
        )
        type_id = g.rand_id(rng, "actitype_", 22)
        embedded = []
        for fname, ftype, multi, required, choices in specs:
            f_created = g.rand_after(rng, created, 30)
            cf: Obj = {
                "id": g.rand_id(rng, "cf_"),
                "name": fname,
                "description": f"{fname} of the {name.lower()}" if rng.random() < 0.6 else None,
                "type": ftype,
                "accepts_multiple_values": multi,
                "required": required,
                "editable_with_roles": [],
            }
            if choices:
                cf["choices"] = list(choices)
            embedded.append({**cf, "converting_to_type": None})
            defs.append(
                {
                    **cf,
                    "custom_activity_type_id": type_id,
                    "organization_id": org_id,
                    "date_created": fmt_aware(f_created),
                    "date_updated": fmt_aware(f_created),
                    "created_by": user_id,
                    "updated_by": user_id,
                }
            )
        types.append(
            {
                "id": type_id,
                "name": name,
                "description": desc,
                "api_create_only": api_only,
                "editable_with_roles": [],
                "is_archived": False,
                "fields": embedded,
                "organization_id": org_id,
                "date_created": fmt_naive(created),  # naive, like Close
                "date_updated": fmt_naive(created),
                "created_by": user_id,
                "updated_by": user_id,
            }
        )
    return types, defs


def act_cf_value(rng: random.Random, cf: Obj, user_ids: list[str]) -> Any:
    if cf["type"] == "textarea":
        return g.words(rng, 6) + ".\n" + g.words(rng, 4)
    if cf["type"] == "text" and "Email" in cf["name"]:
        first, last = g.person(rng)
        return f"{first.lower()}.{last.lower()}@example.com"
    return g.cf_value(rng, cf, user_ids, [])


# --- activities -------------------------------------------------------------------------------


def base_activity(
    rng: random.Random,
    kind: str,
    ctx: Ctx,
    *,
    lead: Obj,
    contact: Obj | None,
    user: Obj | None,
    created: datetime,
    updated: datetime,
) -> Obj:
    uid = user["id"] if user else None
    return {
        "id": g.rand_id(rng, "acti_"),
        "_type": ACTIVITY_TYPES[kind],
        "lead_id": lead["id"],
        "contact_id": contact["id"] if contact else None,
        "user_id": uid,
        "user_name": uname(user),
        "users": [],
        "organization_id": ctx.org_id,
        "date_created": fmt_aware(created),
        "date_updated": fmt_aware(updated),
        "activity_at": fmt_aware(created),
        "created_by": uid,
        "created_by_name": uname(user),
        "updated_by": uid,
        "updated_by_name": uname(user),
    }


def _contact_phone(rng: random.Random, contact: Obj | None) -> tuple[str, str]:
    if contact and contact["phones"]:
        p = contact["phones"][0]
        return p["phone"], p["phone_formatted"]
    return phone(rng, rng.choice(["415", "818", "212"]))


def _contact_email(contact: Obj | None) -> str:
    if contact and contact["emails"]:
        return str(contact["emails"][0]["email"])
    return "info@example.com"


def fill_call(rng: random.Random, act: Obj, contact: Obj | None) -> None:
    remote, remote_fmt = _contact_phone(rng, contact)
    local, local_fmt = phone(rng)
    answered = rng.random() < 0.7
    note = g.words(rng, rng.randint(0, 5))
    act.update(
        {
            "call_method": rng.choice(["regular", "regular", "power", "predictive"]),
            "direction": rng.choice(["outbound", "inbound"]),
            "disposition": "answered" if answered else rng.choice(["no-answer", "vm-left", "busy"]),
            "status": "completed",
            "duration": rng.randint(20, 1800) if answered else 0,
            "cost": str(rng.randint(0, 30)),
            "phone": remote,
            "local_phone": local,
            "local_phone_formatted": local_fmt,
            "remote_phone": remote,
            "remote_phone_formatted": remote_fmt,
            "local_country_iso": "US",
            "remote_country_iso": "US",
            "recording_url": None,
            "voicemail_url": None,
            "voicemail_duration": None,
            "note": note,
            "note_html": _html(note),
            "outcome_id": None,
            "source": "Close.io",
            "dialer_id": None,
            "dialer_saved_search_id": None,
        }
    )


def fill_email(rng: random.Random, act: Obj, contact: Obj | None, user: Obj | None) -> None:
    outgoing = rng.random() < 0.6
    user_email = user["email"] if user else "sales@example.com"
    them = _contact_email(contact)
    sender, to = (user_email, them) if outgoing else (them, user_email)
    subject = rng.choice(_SUBJECTS) + f" #{rng.randint(1, 999)}"
    text = g.words(rng, rng.randint(3, 12)) + "."
    msg_id = f"<{g.rand_id(rng, '', 20)}@mail.example.com>"
    act.update(
        {
            "subject": subject,
            "body_text": text,
            "body_html": f"<div>{text}</div>",
            "body_preview": text[:200],
            "body_text_quoted": [{"expand": True, "text": text}],
            "status": "sent" if outgoing else "inbox",
            "direction": "outgoing" if outgoing else "incoming",
            "sender": sender,
            "to": [to],
            "cc": [],
            "bcc": [],
            "envelope": {
                "bcc": [],
                "cc": [],
                "date": act["date_created"],
                "from": [{"email": sender, "name": ""}],
                "in_reply_to": None,
                "message_id": msg_id,
                "reply_to": [],
                "sender": [{"email": sender, "name": ""}],
                "subject": subject,
                "to": [{"email": to, "name": ""}],
            },
            "message_ids": [msg_id],
            "references": [],
            "in_reply_to_id": None,
            "thread_id": act["id"],
            "date_sent": act["date_created"] if outgoing else None,
            "date_scheduled": None,
            "opens": [],
            "opens_summary": None,
            "has_reply": rng.random() < 0.3,
            "attachments": [],
            "template_id": None,
            "template_name": None,
            "bulk_email_action_id": None,
            "email_account_id": g.rand_id(rng, "emailacct_"),
            "send_as_id": None,
            "send_attempts": [],
            "sequence_id": None,
            "sequence_name": None,
            "sequence_subscription_id": None,
            "followup_sequence_add_cc_bcc": False,
            "followup_sequence_delay": None,
            "need_smtp_credentials": False,
        }
    )


def thread_email(email: Obj) -> Obj:
    """An email as embedded in an EmailThread (no bodies, a preview instead)."""
    return {
        k: v for k, v in email.items() if k not in ("body_text", "body_html", "body_text_quoted")
    }


def fill_thread(act: Obj, emails: list[Obj]) -> None:
    participants = sorted({e["sender"] for e in emails} | {t for e in emails for t in e["to"]})
    act.update(
        {
            "emails": [thread_email(e) for e in emails],
            "latest_normalized_subject": emails[-1]["subject"],
            "n_emails": len(emails),
            "participants": [{"email": p, "name": None} for p in participants],
            "users": [act["user_id"]] if act["user_id"] else [],
        }
    )


def fill_note(rng: random.Random, act: Obj) -> None:
    text = g.words(rng, rng.randint(2, 10))
    pinned = rng.random() < 0.15
    act.update(
        {
            "note": text,
            "note_html": _html(text),
            "note_mentions": [],
            "title": g.words(rng, 2) if rng.random() < 0.4 else None,
            "pinned": pinned,
            "pinned_at": act["date_updated"] if pinned else None,
            "attachments": [],
            "source": None,
        }
    )


def fill_meeting(rng: random.Random, act: Obj, contact: Obj | None, user: Obj | None) -> None:
    starts = datetime.fromisoformat(act["date_created"]) + timedelta(days=rng.randint(0, 14))
    starts = starts.replace(minute=rng.choice([0, 30]), second=0, microsecond=0)
    duration = rng.choice([900, 1800, 3600])
    status = rng.choice(_MEETING_STATUSES)
    event_uid = g.rand_id(rng, "", 26).lower()
    attendees = [
        {
            "contact_id": None,
            "email": user["email"] if user else "sales@example.com",
            "is_organizer": True,
            "name": uname(user),
            "status": "yes",
            "user_id": user["id"] if user else None,
        }
    ]
    if contact:
        attendees.append(
            {
                "contact_id": contact["id"],
                "email": _contact_email(contact),
                "is_organizer": False,
                "name": contact["name"],
                "status": rng.choice(["noreply", "yes", "maybe"]),
                "user_id": None,
            }
        )
    act.update(
        {
            "title": f"{rng.choice(['Demo', 'Discovery', 'Check-in'])} with {act['lead_id'][5:9]}",
            "starts_at": fmt_aware(starts),
            "ends_at": fmt_aware(starts + timedelta(seconds=duration)),
            "activity_at": fmt_aware(starts),
            "duration": duration,
            "actual_duration": duration if status == "completed" else None,
            "status": status,
            "attendees": attendees,
            "location": "https://zoom.us/j/emulated",
            "conference_links": [{"type": "ZOOM", "url": "https://zoom.us/j/emulated"}],
            "calendar_event_link": f"https://www.google.com/calendar/event?eid={event_uid}",
            "calendar_event_uids": [event_uid],
            "provider_calendar_event_id": event_uid,
            "provider_calendar_ids": ["primary"],
            "provider_calendar_type": "google",
            "connected_account_id": g.rand_id(rng, "emailacct_"),
            "is_recurring": False,
            "note": g.words(rng, 4),
            "user_note": None,
            "user_note_html": None,
            "user_note_date_updated": None,
            "user_note_mentions": [],
            "outcome_id": None,
            "outcome_reason": None,
            "outcome_autofill_confidence": None,
            "outcome_autofill_reasoning": None,
            "attached_call_ids": [],
            "integrations": [],
            "notetaker_id": None,
            "playbook_id": None,
            "playbook_reason": None,
            "conversation_type_id": None,
            "conversation_type_reason": None,
            "summary": None,
            "source": "calendar",
            "users": [user["id"]] if user else [],
        }
    )


def fill_sms(rng: random.Random, act: Obj, contact: Obj | None) -> None:
    remote, remote_fmt = _contact_phone(rng, contact)
    local, local_fmt = phone(rng)
    outbound = rng.random() < 0.5
    act.update(
        {
            "text": g.words(rng, rng.randint(2, 8)),
            "status": "sent" if outbound else "inbox",
            "direction": "outbound" if outbound else "inbound",
            "local_phone": local,
            "local_phone_formatted": local_fmt,
            "local_country_iso": "US",
            "remote_phone": remote,
            "remote_phone_formatted": remote_fmt,
            "remote_country_iso": "US",
            "cost": str(rng.randint(0, 3)),
            "date_sent": act["date_created"] if outbound else None,
            "date_scheduled": None,
            "error_message": None,
            "template_id": None,
            "attachments": [],
            "source": "Close.io",
        }
    )


def fill_whatsapp(rng: random.Random, act: Obj, contact: Obj | None) -> None:
    remote, remote_fmt = _contact_phone(rng, contact)
    local, local_fmt = phone(rng)
    text = g.words(rng, rng.randint(2, 8))
    ext_id = str(rng.randint(10**9, 10**10))
    act.update(
        {
            "external_whatsapp_message_id": ext_id,
            "message_markdown": text,
            "message_html": f"<p>{text}</p>",
            "text": text,
            "direction": rng.choice(["incoming", "outgoing"]),
            "local_phone": local,
            "local_phone_formatted": local_fmt,
            "remote_phone": remote,
            "remote_phone_formatted": remote_fmt,
            "attachments": [],
            "integration_link": f"https://whatsapp.example.com/messages/{ext_id}",
            "integration_name": "API",
            "response_to_id": None,
            "source": "api",
        }
    )


def fill_lead_status_change(rng: random.Random, act: Obj, ctx: Ctx) -> None:
    old, new = rng.sample(ctx.lead_statuses, 2)
    act.update(
        {
            "contact_id": None,
            "old_status_id": old["id"],
            "old_status_label": old["label"],
            "new_status_id": new["id"],
            "new_status_label": new["label"],
        }
    )


def fill_opp_status_change(rng: random.Random, act: Obj, ctx: Ctx, opp: Obj | None) -> None:
    pipe = next((p for p in ctx.pipelines if opp and p["id"] == opp["pipeline_id"]), None)
    pipe = pipe or rng.choice(ctx.pipelines)
    old, new = rng.sample(pipe["statuses"], 2)
    act.update(
        {
            "contact_id": None,
            "opportunity_id": opp["id"] if opp else g.rand_id(rng, "oppo_"),
            "old_status_id": old["id"],
            "old_status_label": old["label"],
            "old_status_type": old["type"],
            "old_pipeline_id": pipe["id"],
            "old_pipeline_name": pipe["name"],
            "new_status_id": new["id"],
            "new_status_label": new["label"],
            "new_status_type": new["type"],
            "new_pipeline_id": pipe["id"],
            "new_pipeline_name": pipe["name"],
            "opportunity_value": opp["value"] if opp else 0,
            "opportunity_value_currency": "USD",
            "opportunity_value_formatted": opp["value_formatted"] if opp else None,
            "opportunity_value_period": opp["value_period"] if opp else "one_time",
            "opportunity_confidence": opp["confidence"] if opp else 0,
            "opportunity_date_won": (
                act["date_created"][:10] + "T00:00:00+00:00" if new["type"] == "won" else None
            ),
        }
    )


def fill_task_completed(act: Obj, task: Obj) -> None:
    act.pop("contact_id", None)  # TaskCompleted carries no contact_id
    act.update(
        {
            "task_id": task["id"],
            "task_text": task.get("text") or "",
            "task_assigned_to": task["assigned_to"],
            "task_assigned_to_name": task["assigned_to_name"],
        }
    )


def fill_lead_merge(rng: random.Random, act: Obj, source_id: str, source_name: str) -> None:
    act.update(
        {
            "contact_id": None,
            "merge_status": "done",
            "error_message": None,
            "source_lead_id": source_id,
            "source_display_name": source_name,
            "destination_lead_id": act["lead_id"],
            "destination_display_name": None,  # filled by the caller
        }
    )


def fill_form_submission(rng: random.Random, act: Obj, contact: Obj | None) -> None:
    name = contact["name"] if contact else "Jane Doe"
    values = {
        g.rand_id(rng, "formfld_", 22): name,
        g.rand_id(rng, "formfld_", 22): _contact_email(contact),
        g.rand_id(rng, "formfld_", 22): rng.random() < 0.5,
    }
    act.update(
        {
            "form_id": g.rand_id(rng, "form_", 22),
            "form_configuration_id": g.rand_id(rng, "formconf_", 22),
            "form_name": "Contact us",
            "values": values,
            "values_by_name": {},
            "ip_address": f"192.0.2.{rng.randint(1, 254)}",
            "origin": "https://www.example.com",
            "source_url": "https://www.example.com/contact?utm_source=ads",
            "source_url_normalized": "www.example.com/contact",
            "user_id": None,
            "user_name": None,
            "created_by": None,
            "created_by_name": None,
            "updated_by": None,
            "updated_by_name": None,
        }
    )


def fill_custom(rng: random.Random, act: Obj, ctx: Ctx, type_obj: Obj) -> None:
    published = rng.random() < 0.7
    act.update(
        {
            "contact_id": None,
            "custom_activity_type_id": type_obj["id"],
            "status": "published" if published else "draft",
            "last_published_at": act["date_created"] if published else None,
            "pinned": False,
            "pinned_at": None,
            "mentions": [],
            "mentions_updated_at": None,
            "source": rng.choice(["ui", "api"]),
        }
    )
    user_ids = [u["id"] for u in ctx.users]
    for cf in type_obj["fields"]:
        if cf["required"] or rng.random() < 0.7:
            value = act_cf_value(rng, cf, user_ids)
            if value is not None:
                act["custom." + cf["id"]] = value


# --- tasks ------------------------------------------------------------------------------------


def make_task(
    rng: random.Random,
    ctx: Ctx,
    *,
    task_type: str,
    lead: Obj,
    contact: Obj | None,
    user: Obj,
    created: datetime,
    updated: datetime,
    ref: Obj | None = None,
) -> Obj:
    """A task; `ref` is the call/emailthread/sms activity or opportunity it points at."""
    auto = task_type != "lead"
    creator = None if auto and task_type != "opportunity_due" else user
    if task_type in ("lead", "opportunity_due", "outgoing_call"):
        date = (created + timedelta(days=rng.randint(0, 20))).strftime("%Y-%m-%dT00:00:00+00:00")
    elif task_type == "incoming_sms":
        date = created.strftime("%Y-%m-%d")  # a plain date, as in Close's example
    else:
        date = fmt_aware(created)
    task: Obj = {
        "id": g.rand_id(rng, "noti_" if auto else "task_"),
        "_type": task_type,
        "organization_id": ctx.org_id,
        "lead_id": lead["id"],
        "lead_name": lead["display_name"],
        "contact_id": contact["id"] if contact else None,
        "contact_name": contact["name"] if contact else None,
        "assigned_to": user["id"],
        "assigned_to_name": uname(user),
        "text": None,
        "date": date,
        "is_complete": False,
        "view": "inbox",
        "object_type": None,
        "object_id": None,
        "date_created": fmt_aware(created),
        "date_updated": fmt_aware(updated),
        "created_by": creator["id"] if creator else None,
        "created_by_name": uname(creator),
        "updated_by": creator["id"] if creator else None,
        "updated_by_name": uname(creator),
    }
    if task_type == "lead":
        task.update(
            text=rng.choice(["Follow up", "Send proposal", "Call back", "Check budget"]),
            is_dateless=False,
            due_date=date,
        )
    elif task_type in ("missed_call", "answered_detached_call", "voicemail"):
        num, num_fmt = _contact_phone(rng, contact)
        task.update(object_type="call", phone=num, phone_formatted=num_fmt)
        task["local_phone"] = phone(rng)[0]
        task["phone_number_description"] = "California"
        if task_type == "voicemail":
            task.update(voicemail_duration=rng.randint(5, 90), voicemail_url=None)
        if task_type == "answered_detached_call":
            task["recording_url"] = None
    elif task_type in ("incoming_email", "email_followup"):
        subject = rng.choice(_SUBJECTS)
        task.update(object_type="emailthread", subject=subject, body_preview=g.words(rng, 5))
        if task_type == "incoming_email":
            task["emails"] = [ref["emails"][-1]["id"]] if ref and ref.get("emails") else []
        else:
            task["email_id"] = ref["emails"][-1]["id"] if ref and ref.get("emails") else None
    elif task_type == "opportunity_due":
        task.update(
            object_type="opportunity",
            opportunity_note=ref["note"] if ref else "",
            opportunity_value=ref["value"] if ref else 0,
            opportunity_value_currency="USD",
            opportunity_value_formatted=ref["value_formatted"] if ref else "$0",
            opportunity_value_period=ref["value_period"] if ref else "one_time",
        )
    elif task_type == "incoming_sms":
        num, num_fmt = _contact_phone(rng, contact)
        task.update(
            object_type="sms",
            text=ref["text"] if ref else g.words(rng, 4),
            attachments=[],
            local_phone=phone(rng)[0],
            remote_phone=num,
            remote_phone_formatted=num_fmt,
            remote_phone_description="California",
        )
    elif task_type == "outgoing_call":
        task.update(
            text="Call this lead",
            agent_config_id=None,
            deduplication_key=None,
            is_primary_lead_notification=True,
            resolution=None,
            sequence_id=None,
            sequence_subscription_id=None,
            step_id=None,
        )
    if task["object_type"] is not None:
        task["object_id"] = ref["id"] if ref else g.rand_id(rng, "acti_")
    return task
