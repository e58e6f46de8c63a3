"""Builders for Close's organization-level objects (groups, templates, sequences, webhooks, ...)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import generate as g
from .activities import event_type, kind_of
from .gen_activity import phone, uname
from .timeutil import UTC, fmt_aware, fmt_naive

Obj = dict[str, Any]

START = datetime(2023, 1, 1, tzinfo=UTC)
END = datetime(2024, 12, 31, tzinfo=UTC)
_S_QUERY = {"query": {"negate": False, "type": "match_all"}, "results_limit": None, "sort": []}


@dataclass
class Org:
    """What the builders need from the dataset."""

    org_id: str
    users: list[Obj]
    leads: list[Obj]  # lead views (with contacts)
    activities: list[Obj]
    role_id: str  # the role every membership has


def _dates(rng: random.Random, naive: bool = False) -> Obj:
    created = g.rand_dt(rng, START, END)
    fmt = fmt_naive if naive else fmt_aware
    return {"date_created": fmt(created), "date_updated": fmt(g.rand_after(rng, created, 90))}


def _account_state(account: Obj) -> Obj:
    """The rest of a connected account's documented default fields (own random stream: the
    rest of the dataset is unchanged)."""
    rng = random.Random(account["id"])
    ident = (account["identities"] or [{"email": account.get("email"), "name": None}])[0]
    created = g.rand_dt(rng, START, END)
    calendars = [{"id": ident["email"], "name": "Main", "primary": True}]
    return {
        "email": account.get("email"), "smtp": None, "imap": None,
        "synced_calendars": account.get("synced_calendars"),
        "available_calendars": calendars if account["_type"] != "zoom" else [],
        "available_features": ["email", "calendar"],
        "enabled_features": rng.choice([["email"], ["email", "calendar"], []]),
        "calendar_receive_status": rng.choice(["ok", "error", None]),
        "email_receive_status": rng.choice(["ok", "syncing"]),
        "receive_status": rng.choice(["ok", "error"]),
        "send_status": rng.choice(["ok", "error"]),
        "calendly": None,
        "date_created": fmt_aware(created),
        "default_identity": ident,
        "has_meeting_creation_scopes": rng.random() < 0.5,
        "is_imap_archive_sync_enabled": rng.random() < 0.5,
        "latest_receive_error": rng.choice([None, {"code": "auth", "message": "Token expired"}]),
        "latest_send_error": rng.choice([None, "SMTP 535 authentication failed"]),
        "lead_suggestions_updated_at": fmt_aware(g.rand_after(rng, created, 30)),
        "sync_all_calendars": rng.random() < 0.5,
        "zoom_account_plan": "pro" if account["_type"] == "zoom" else None,
    }


def _by(org: Org, rng: random.Random, suffix: str = "") -> Obj:
    uid = rng.choice(org.users)["id"]
    return {f"created_by{suffix}": uid, f"updated_by{suffix}": uid}


def _bulk_base(rng: random.Random, org: Org, prefix: str) -> Obj:
    n = rng.randint(5, 500)
    done = rng.random() < 0.6
    return {
        "id": g.rand_id(rng, prefix),
        "organization_id": org.org_id,
        "status": "done" if done else rng.choice(["created", "processing", "paused"]),
        "query": "lead_status:Potential",
        "s_query": _S_QUERY,
        "results_limit": None,
        "sort": [],
        "send_done_email": False,
        "n_leads": n,
        "n_leads_processed": n if done else rng.randint(0, n),
        "n_objects": n,
        "n_objects_processed": n if done else rng.randint(0, n),
        **_dates(rng),
        **_by(org, rng),
    }


def inactive_memberships(rng: random.Random, org: Org) -> list[Obj]:
    out = []
    for _ in range(2):
        first, last = g.person(rng)
        out.append(
            {
                "id": g.rand_id(rng, "memb_"),
                "organization_id": org.org_id,
                "user_id": g.rand_id(rng, "user_"),
                "role_id": org.role_id,
                "permissions_granted": [],
                "auto_record_calls": "unset",
                "track_email_opens": False,
                "user_email": f"{first.lower()}.{last.lower()}@former.example.com",
                "user_first_name": first,
                "user_last_name": last,
                "user_full_name": f"{first} {last}",
                "user_phone": None,
            }
        )
    return out


def make_all(rng: random.Random, org: Org) -> dict[str, list[Obj]]:
    """Every organization-level kind, keyed by truth stream name."""
    users, uids, oid = org.users, [u["id"] for u in org.users], org.org_id
    out: dict[str, list[Obj]] = {}
    out["groups"] = [
        {
            "id": g.rand_id(rng, "group_", 22),
            "name": name,
            "organization_id": oid,
            "members": [{"user_id": u} for u in rng.sample(uids, rng.randint(1, len(uids)))],
        }
        for name in ("Sales", "Support", "Onboarding")
    ]
    perms = ["bulk_edit", "export", "manage_organization", "view_all_leads"]
    out["roles"] = [
        {
            "id": rid,
            "name": name,
            "editable": editable,
            "permissions": perms[:n],
            "visibility_user_lcf_behavior": None,
            "visibility_user_lcf_ids": None,
        }
        for rid, name, editable, n in (
            (org.role_id, "Admin", False, 4),
            (g.rand_id(rng, "role_"), "User", False, 2),
            (g.rand_id(rng, "role_"), "Restricted Rep", True, 0),
        )
    ]
    out["smart_views"] = [
        {
            "id": g.rand_id(rng, "save_"),
            "name": name,
            "description": "",
            "type": typ,
            "query": None,
            "s_query": _S_QUERY,
            "is_shared": rng.random() < 0.5,
            "is_user_dependent": False,
            "user_id": rng.choice(uids),
            "organization_id": oid,
            **_dates(rng),
        }
        for name, typ in (
            ("All Leads", "lead"),
            ("Hot Leads", "lead"),
            ("No Contact 30d", "lead"),
            ("Customers", "lead"),
            ("Champions", "contact"),
            ("Unsubscribed", "contact"),
        )
    ]
    out["email_templates"] = [
        {
            "id": g.rand_id(rng, "tmpl_"),
            "name": f"Cold {i + 1}",
            "subject": g.words(rng, 4),
            "body": g.words(rng, 12) + ".",
            "is_shared": rng.random() < 0.6,
            "is_archived": i == 4,
            "attachments": [],
            "organization_id": oid,
            **_dates(rng),
            **_by(org, rng),
        }
        for i in range(5)
    ]
    out["sms_templates"] = [
        {
            "id": g.rand_id(rng, "smstmpl_", 22),
            "name": f"SMS {i + 1}",
            "text": "Hey {{ contact.first_name }}, " + g.words(rng, 5),
            "status": "active",
            "is_shared": rng.random() < 0.5,
            "owned_by": rng.choice(uids),
            "organization_id": oid,
            **_dates(rng, naive=True),
            **_by(org, rng),
        }
        for i in range(3)
    ]
    out["sequences"] = []
    for name in ("Outbound", "Trial Nurture", "Re-engage"):
        by = rng.choice(uids)
        steps = [
            {
                "id": g.rand_id(rng, "seqstep_", 22),
                "step_type": "email" if k % 2 == 0 else "call",
                "delay": 86400 * k,
                "email_template_id": rng.choice(out["email_templates"])["id"]
                if k % 2 == 0
                else None,
                "threading": "old_thread" if k else "new_thread",
                "required": True,
                "step_allowed_delay": None,
                "created_by_id": by,
                "updated_by_id": by,
                **_dates(rng, naive=True),
            }
            for k in range(rng.randint(2, 4))
        ]
        out["sequences"].append(
            {
                "id": g.rand_id(rng, "seq_", 22),
                "name": name,
                "status": rng.choice(["active", "active", "paused"]),
                "timezone": "US/Eastern",
                "schedule": None,
                "steps": steps,
                "organization_id": oid,
                "created_by_id": by,
                "updated_by_id": by,
                **_dates(rng, naive=True),  # naive, like Close
            }
        )
    out["sequence_subscriptions"] = []
    with_email = [(ld, c) for ld in org.leads for c in ld["contacts"] if c["emails"]]
    for lead, contact in rng.sample(with_email, min(20, len(with_email))):
        user = rng.choice(users)
        out["sequence_subscriptions"].append(
            {
                "id": g.rand_id(rng, "sub_", 22),
                "sequence_id": rng.choice(out["sequences"])["id"],
                "contact_id": contact["id"],
                "lead_id": lead["id"],
                "contact_email": contact["emails"][0]["email"],
                "sender_account_id": g.rand_id(rng, "emailacct_"),
                "sender_email": user["email"],
                "sender_name": uname(user),
                "calls_assigned_to": [user["id"]],
                "status": rng.choice(["active", "paused", "finished", "goal"]),
                "status_reason": None,
                "start_date": None,
                "organization_id": oid,
                "created_by_id": user["id"],
                "updated_by_id": user["id"],
                **_dates(rng, naive=True),
            }
        )
    out["outcomes"] = [
        {
            "id": g.rand_id(rng, "outcome_", 22),
            "name": name,
            "description": g.words(rng, 5),
            "type": typ,
            "applies_to": applies,
            "organization_id": oid,
            **_dates(rng),
            **_by(org, rng),
        }
        for name, typ, applies in (
            ("Demo Booked", "custom", ["calls", "meetings"]),
            ("Not Interested", "custom", ["calls"]),
            ("Follow-up Needed", "custom", ["meetings"]),
            ("Voicemail Dropped", "vm-dropped", ["calls"]),
        )
    ]
    out["phone_numbers"] = []
    for user in [*users, None]:
        num, fmt = phone(rng, "415")
        out["phone_numbers"].append(
            {
                "id": g.rand_id(rng, "phon_"),
                "number": num,
                "number_formatted": fmt,
                "type": "internal" if user else "virtual",
                "label": f"{user['first_name']}'s line" if user else "Sales team",
                "user_id": user["id"] if user else None,
                "is_group_number": user is None,
                "participants": [] if user else uids,
                "sms_enabled": True,
                "mms_enabled": user is not None,
                "carrier": None,
                "country": "US",
                "is_verified": True,
                "forward_to": None,
                "forward_to_enabled": False,
                "organization_id": oid,
                **_dates(rng),
            }
        )
    out["blocked_phone_numbers"] = [
        {
            "id": g.rand_id(rng, "blkph_", 22),
            "phone": phone(rng, "555")[0],
            "reason": rng.choice(["Unwanted Caller", "Spam", None]),
            "organization_id": oid,
            **_dates(rng),
            **_by(org, rng),
        }
        for _ in range(3)
    ]
    out["connected_accounts"] = []
    for i, user in enumerate(users):
        ident = [{"email": user["email"], "name": uname(user)}]
        out["connected_accounts"].append(
            {
                "id": g.rand_id(rng, "emailacct_"),
                "_type": "google" if i % 2 == 0 else "microsoft",
                "user_id": user["id"],
                "organization_id": oid,
                "identities": ident,
                "synced_calendars": [user["email"]],
            }
        )
    out["connected_accounts"].append(
        {
            "id": g.rand_id(rng, "emailacct_"),
            "_type": "zoom",
            "email": users[0]["email"],
            "user_id": users[0]["id"],
            "organization_id": oid,
            "identities": [],
        }
    )
    for account in out["connected_accounts"]:
        account.update(_account_state(account))
    out["dialers"] = [
        {
            "id": g.rand_id(rng, "dial_", 22),
            "type": rng.choice(["power", "predictive"]),
            "status": rng.choice(["active", "inactive"]),
            "source_type": "saved-search",
            "source_value": rng.choice(out["smart_views"])["id"],
            "caller_id": "",
            "is_user_dependent": False,
            "music_preference": "tone1",
            "ring_mode": "more-voicemails",
            "user_id": (uid := rng.choice(uids)),
            "users": [{"is_active": False, "state": "inactive", "user_id": uid}],
            "organization_id": oid,
            **_dates(rng, naive=True),
        }
        for _ in range(3)
    ]
    me, others = uids[0], uids[1:] or uids
    pairs = [(me, others[0]), (me, others[-1]), (others[0], me), (others[-1], others[0])]
    out["send_as"] = [
        {
            "id": g.rand_id(rng, "sdas_", 22),
            "allowing_user_id": allowing,
            "allowed_user_id": allowed,
            "organization_id": oid,
        }
        for allowing, allowed in dict.fromkeys(pairs)
    ]
    out["scheduling_links"] = [
        {
            "id": g.rand_id(rng, "schlnk_", 22),
            "name": f"Meet {user['first_name']}",
            "description": None,
            "url": f"https://calendly.example.com/{user['first_name'].lower()}",
            "duration_in_minutes": rng.choice([15, 30, None]),
            "type": "USER",
            "source": "MANUAL",
            "source_id": None,
            "source_type": None,
            "template_tag": None,
            "oauth_client_id": None,
            "user_id": user["id"],
            "organization_id": oid,
        }
        for user in users
    ]
    shared = random.Random(f"shared-links-{oid}")  # own stream: other objects stay the same
    out["scheduling_links"] += [  # listed by /shared_scheduling_link/ only
        {
            "id": g.rand_id(shared, "schlnk_", 22),
            "name": name,
            "description": None,
            "url": f"https://calendly.example.com/team/{name.lower().replace(' ', '-')}",
            "duration_in_minutes": 30,
            "type": "SHARED",
            "source": "MANUAL",
            "source_id": None,
            "source_type": None,
            "template_tag": None,
            "oauth_client_id": None,
            "user_id": None,
            "organization_id": oid,
        }
        for name in ("Sales Team", "Support Team", "Demo Desk")
    ]
    out["shared_custom_fields"] = [
        _shared_field(rng, org, "Account Owner", "user", None),
        _shared_field(rng, org, "Region", "choices", ["EMEA", "AMER", "APAC"]),
    ]
    out["custom_object_types"], out["custom_object_custom_fields"] = _cotypes(rng, org)
    out["custom_objects"] = _custom_objects(rng, org, out["custom_object_types"])
    out["comment_threads"], out["comments"] = _comments(rng, org)
    out["integration_links"] = [
        {
            "id": g.rand_id(rng, "ilink_"),
            "name": name,
            "url": url,
            "type": typ,
            "organization_id": oid,
            **_dates(rng),
            **_by(org, rng),
        }
        for name, url, typ in (
            ("Google Search", "https://google.com/search?q={{lead.display_name}}", "lead"),
            ("LinkedIn", "https://linkedin.example.com/search?q={{contact.name}}", "contact"),
            ("Billing", "https://billing.example.com/opp/{{opportunity.id}}", "opportunity"),
        )
    ]
    out["webhooks"] = [
        {
            "id": g.rand_id(rng, "whsub_", 22),
            "url": f"https://hooks.example.com/close/{i}",
            "events": [
                {"object_type": "lead", "action": "created"},
                {"object_type": "activity.call", "action": "created"},
            ],
            "status": "active" if i == 0 else "paused",
            "verify_ssl": True,
            "signature_key": "".join(rng.choice("0123456789abcdef") for _ in range(64)),
            "health_status": "healthy",
            "pause_reason": None if i == 0 else "manual",
            "latest_error": None,
            "recent_consecutive_fail_buckets_cnt": 0,
            "counters": {},
            **_dates(rng, naive=True),
            **_by(org, rng),
        }
        for i in range(2)
    ]
    out["email_bulk_actions"] = [
        {
            **_bulk_base(rng, org, "bulkemail_"),
            "contact_preference": "lead",
            "email_account_id": g.rand_id(rng, "emailacct_"),
            "sender": users[0]["email"],
            "template_id": rng.choice(out["email_templates"])["id"],
        }
        for _ in range(2)
    ]
    out["edit_bulk_actions"] = [
        {
            **_bulk_base(rng, org, "bulkedit_"),
            "type": "set_lead_status",
            "lead_status_id": g.rand_id(rng, "stat_"),
            "custom_field_name": None,
            "custom_field_value": None,
        }
        for _ in range(2)
    ]
    out["delete_bulk_actions"] = [
        {**_bulk_base(rng, org, "bulkdelete_"), "bulk_object_type": "lead"} for _ in range(2)
    ]
    out["sequence_subscription_bulk_actions"] = [
        {
            **_bulk_base(rng, org, "bulkseqsub_"),
            "action_type": rng.choice(["subscribe", "resume", "pause"]),
            "sequence_id": rng.choice(out["sequences"])["id"],
            "contact_preference": "lead",
            "calls_assigned_to": None,
            "from_phone_number_id": None,
            "sender_account_id": g.rand_id(rng, "emailacct_"),
            "sender_email": users[0]["email"],
            "sender_name": uname(users[0]),
        }
        for _ in range(2)
    ]
    unsub = sorted(
        {
            e["email"]
            for ld in org.leads
            for c in ld["contacts"]
            for e in c["emails"]
            if e["is_unsubscribed"]
        }
    )
    out["unsubscribed_emails"] = [{"email": e} for e in [*unsub, "noreply@example.org"]]
    return out


def _shared_field(
    rng: random.Random, org: Org, name: str, typ: str, choices: list[str] | None
) -> Obj:
    return {
        "id": g.rand_id(rng, "cf_"),
        "name": name,
        "description": None,
        "type": typ,
        "choices": choices,
        "accepts_multiple_values": False,
        "associations": [
            {"object_type": "lead", "editable_with_roles": [], "required": False},
            {"object_type": "contact", "editable_with_roles": [], "required": False},
        ],
        "organization_id": org.org_id,
        **_dates(rng),
        **_by(org, rng),
    }


def share_field(rng: random.Random, org: Org, kinds: dict[str, list[Obj]],
                activity_types: list[Obj]) -> None:
    """A shared field associated with a custom activity type and a custom object type (as in
    Close's example), with its values set on their instances as `custom.cf_...`."""
    act_type, co_type = activity_types[0], kinds["custom_object_types"][0]
    cf = _shared_field(rng, org, "Priority Tier", "choices", ["Gold", "Silver"])
    cf["associations"] = [
        {"object_type": "custom_activity_type", "custom_activity_type_id": act_type["id"],
         "editable_with_roles": [], "required": False},
        {"object_type": "custom_object_type", "custom_object_type_id": co_type["id"],
         "editable_with_roles": [], "required": False},
    ]
    kinds["shared_custom_fields"].append(cf)
    for obj in [*org.activities, *kinds["custom_objects"]]:
        if act_type["id"] == obj.get("custom_activity_type_id") or (
                co_type["id"] == obj.get("custom_object_type_id")):
            obj["custom." + cf["id"]] = rng.choice(cf["choices"])


def _cotypes(rng: random.Random, org: Org) -> tuple[list[Obj], list[Obj]]:
    types, defs = [], []
    for name, plural, specs in (
        ("Resource", "Resources", [("Serial", "text"), ("Seats", "number")]),
        ("Subscription", "Subscriptions", [("Plan", "choices"), ("Renews On", "date")]),
    ):
        type_id = g.rand_id(rng, "cotype_", 22)
        by = _by(org, rng)
        fields = []
        for fname, ftype in specs:
            cf: Obj = {
                "id": g.rand_id(rng, "cf_"),
                "name": fname,
                "description": None,
                "type": ftype,
                "choices": ["Basic", "Pro"] if ftype == "choices" else None,
                "accepts_multiple_values": False,
                "required": fname in ("Serial", "Plan"),
                "editable_with_roles": [],
                "back_reference_is_visible": False,
            }
            fields.append(cf)
            defs.append(
                {
                    **cf,
                    "custom_object_type_id": type_id,
                    "organization_id": org.org_id,
                    **_dates(rng),
                    **by,
                }
            )
        types.append(
            {
                "id": type_id,
                "name": name,
                "name_plural": plural,
                "description": f"{plural} tracked in another system",
                "api_create_only": False,
                "editable_with_roles": [],
                "fields": fields,
                "back_reference_fields": [],
                "organization_id": org.org_id,
                **_dates(rng, naive=True),
                **by,
            }
        )
    return types, defs


def _custom_objects(rng: random.Random, org: Org, types: list[Obj]) -> list[Obj]:
    uids = [u["id"] for u in org.users]
    out = []
    for lead in org.leads:
        if rng.random() > 0.35:
            continue
        for _ in range(rng.randint(1, 2)):
            cotype = rng.choice(types)
            obj: Obj = {
                "id": g.rand_id(rng, "custobj_"),
                "custom_object_type_id": cotype["id"],
                "lead_id": lead["id"],
                "name": f"{cotype['name']} {rng.randint(100, 999)}",
                "organization_id": org.org_id,
                **_dates(rng),
                **_by(org, rng),
            }
            for cf in cotype["fields"]:
                if cf["required"] or rng.random() < 0.6:
                    obj["custom." + cf["id"]] = g.cf_value(rng, cf, uids, [])
            out.append(obj)
    return out


def _comments(rng: random.Random, org: Org) -> tuple[list[Obj], list[Obj]]:
    threads, comments = [], []
    targets = rng.sample(org.activities, min(10, len(org.activities)))
    for act in targets:
        thread_id = g.rand_id(rng, "comthr_", 22)
        created = g.rand_dt(rng, START, END)
        n = rng.randint(1, 3)
        stamps = sorted(g.rand_after(rng, created, 10) for _ in range(n))
        authors = [rng.choice(org.users)["id"] for _ in range(n)]
        for when, author in zip(stamps, authors, strict=True):
            body = g.words(rng, rng.randint(2, 8))
            comments.append(
                {
                    "id": g.rand_id(rng, "comm_", 22),
                    "thread_id": thread_id,
                    "lead_id": act["lead_id"],
                    "body": f"<body><p>{body}</p></body>",
                    "mentions": [],
                    "created_at": fmt_aware(when),
                    "created_by": author,
                    "updated_at": fmt_aware(when),
                    "updated_by": author,
                    "removed_at": None,
                    "removed_by": None,
                    "organization_id": org.org_id,
                }
            )
        threads.append(
            {
                "id": thread_id,
                "object_id": act["id"],
                "object_type": event_type(kind_of(act)),
                "lead_id": act["lead_id"],
                "num_comments": n,
                "participating": sorted(set(authors)),
                "created_at": fmt_aware(created),
                "updated_at": fmt_aware(stamps[-1]),
                "organization_id": org.org_id,
            }
        )
    return threads, comments
