"""Builders for Close-shaped objects. Pure functions of a `random.Random`, so data is seeded."""

from __future__ import annotations

import random
import string
from datetime import datetime, timedelta
from typing import Any

from .timeutil import UTC, fmt_aware, fmt_naive

ALNUM = string.ascii_letters + string.digits
Obj = dict[str, Any]

DATA_START = datetime(2024, 1, 1, tzinfo=UTC)
DATA_END = datetime(2025, 6, 30, 23, 59, 59, tzinfo=UTC)

FIRST = [
    "Ada",
    "Bruce",
    "Clara",
    "Diego",
    "Erin",
    "Farah",
    "Gob",
    "Hana",
    "Ivan",
    "Jun",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
]
LAST = [
    "Bluth",
    "Wayne",
    "Nguyen",
    "Okafor",
    "Silva",
    "Kowalski",
    "Tanaka",
    "Moreau",
    "Haddad",
    "Jensen",
    "Rossi",
    "Patel",
    "Fischer",
    "Lopez",
    "Novak",
    "Ibrahim",
]
WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wonka",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Aperture",
    "Gringotts",
    "Oscorp",
    "Pied",
    "Piper",
]
SUFFIX = ["Inc", "LLC", "GmbH", "Ltd", "Group", "Labs", "Partners", "Co"]
TITLES = ["CEO", "CTO", "Head of Sales", "Buyer", "Office Manager", "VP Engineering", None, ""]
CITIES = [
    ("Palo Alto", "CA", "US", "94301"),
    ("Berlin", "", "DE", "10115"),
    ("Austin", "TX", "US", "73301"),
    ("Lyon", "", "FR", "69001"),
]
SOURCES = ["Website contact form", "Referral", "Cold outreach", "Trade show", None]


def rand_id(rng: random.Random, prefix: str, n: int = 43) -> str:
    return prefix + "".join(rng.choice(ALNUM) for _ in range(n))


def rand_dt(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = int((end - start).total_seconds())
    return start + timedelta(
        seconds=rng.randint(0, max(span, 0)), microseconds=rng.randint(0, 999_999)
    )


def rand_after(rng: random.Random, start: datetime, max_days: int = 200) -> datetime:
    """A time at or after `start`, not later than DATA_END (unless start already is)."""
    end = min(start + timedelta(days=max_days), DATA_END)
    return rand_dt(rng, start, end) if end > start else start


def words(rng: random.Random, n: int) -> str:
    pool = [
        "alpha",
        "renewal",
        "pricing",
        "call back",
        "budget",
        "Q3",
        "pilot",
        "demo",
        "integration",
        "security review",
        "champion",
        "legal",
        "expansion",
    ]
    return " ".join(rng.choice(pool) for _ in range(n)).capitalize()


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


# --- organization, users, statuses, pipelines -------------------------------------------------


def make_users(rng: random.Random, n: int, org_id: str) -> list[Obj]:
    users = []
    for i in range(n):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 3) % len(LAST)]
        created = rand_dt(rng, datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, tzinfo=UTC))
        users.append(
            {
                "id": rand_id(rng, "user_"),
                "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                "first_name": first,
                "last_name": last,
                "image": f"https://secure.gravatar.com/avatar/{rand_id(rng, '', 32).lower()}",
                "date_created": fmt_aware(created),
                "date_updated": fmt_aware(rand_after(rng, created, 300)),
                "organizations": [org_id],
            }
        )
    return users


def make_membership(rng: random.Random, user: Obj, org_id: str, role_id: str) -> Obj:
    return {
        "id": rand_id(rng, "memb_"),
        "organization_id": org_id,
        "user_id": user["id"],
        "role_id": role_id,
        "permissions_granted": ["bulk_edit", "export"],
        "auto_record_calls": "unset",
        "track_email_opens": True,
        "user_email": user["email"],
        "user_first_name": user["first_name"],
        "user_last_name": user["last_name"],
        "user_full_name": f"{user['first_name']} {user['last_name']}",
        "user_phone": "1650" + "".join(rng.choice(string.digits) for _ in range(7)),
    }


def make_lead_statuses(rng: random.Random, org_id: str) -> list[Obj]:
    labels = ["Potential", "Qualified", "Customer", "Bad Fit"]
    return [{"id": rand_id(rng, "stat_"), "label": lb, "organization_id": org_id} for lb in labels]


def make_pipelines(rng: random.Random, org_id: str, user_id: str) -> list[Obj]:
    pipes = []
    for name in ("Sales", "Renewals"):
        created = rand_dt(rng, datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, tzinfo=UTC))
        statuses = [
            {"id": rand_id(rng, "stat_"), "label": lb, "type": tp}
            for lb, tp in (("Active", "active"), ("Won", "won"), ("Lost", "lost"))
        ]
        pipes.append(
            {
                "id": rand_id(rng, "pipe_", 22),
                "name": name,
                "organization_id": org_id,
                "statuses": statuses,
                "date_created": fmt_naive(created),  # naive, like Close
                "date_updated": fmt_naive(rand_after(rng, created, 300)),
                "created_by": user_id,
                "updated_by": user_id,
            }
        )
    return pipes


def opp_statuses(pipelines: list[Obj], org_id: str) -> list[Obj]:
    out = []
    for p in pipelines:
        for s in p["statuses"]:
            out.append(
                {
                    "id": s["id"],
                    "label": s["label"],
                    "type": s["type"],
                    "status_type": s["type"],
                    "pipeline_id": p["id"],
                    "organization_id": org_id,
                }
            )
    return out


# --- custom fields ----------------------------------------------------------------------------

# (name, type, accepts_multiple_values, choices)
CF_SPECS: dict[str, list[tuple[str, str, bool, list[str] | None]]] = {
    "lead": [
        ("Notes", "text", False, None),
        ("Employees", "number", False, None),
        ("Trial Due", "date", False, None),
        ("Next Call At", "datetime", False, None),
        ("Tier", "choices", False, ["Bronze", "Silver", "Gold"]),
        ("Industries", "choices", True, ["Apparel", "Cars", "Cosmetics", "IT"]),
        ("Owner", "user", False, None),
        ("Watchers", "user", True, None),
        ("Main Contact", "contact", False, None),
        ("Sync Blob", "hidden", False, None),
    ],
    "contact": [
        ("Nickname", "text", False, None),
        ("Score", "number", False, None),
        ("Roles", "choices", True, ["Decision Maker", "Champion", "Billing", "Technical"]),
    ],
    "opportunity": [
        ("Seats", "number", False, None),
        ("Close Target", "date", False, None),
        ("Product", "choices", False, ["Starter", "Pro", "Enterprise"]),
    ],
}


def make_custom_fields(rng: random.Random, org_id: str, user_id: str) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for obj_type, specs in CF_SPECS.items():
        defs = []
        for name, typ, multi, choices in specs:
            created = rand_dt(
                rng, datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, tzinfo=UTC)
            )
            defs.append(
                {
                    "id": rand_id(rng, "cf_"),
                    "name": name,
                    "description": f"{name} ({typ})" if rng.random() < 0.5 else None,
                    "type": typ,
                    "choices": list(choices) if choices else None,
                    "accepts_multiple_values": multi,
                    "editable_with_roles": [],
                    "organization_id": org_id,
                    "date_created": fmt_aware(created),
                    "date_updated": fmt_aware(rand_after(rng, created, 100)),
                    "created_by": user_id,
                    "updated_by": user_id,
                }
            )
        out[obj_type] = defs
    return out


def cf_value(rng: random.Random, field: Obj, user_ids: list[str], contact_ids: list[str]) -> Any:
    """A typed value for one custom field; None means 'leave the key out'."""
    typ, multi = field["type"], field["accepts_multiple_values"]
    if typ == "text":
        return words(rng, rng.randint(1, 4))
    if typ == "number":
        return rng.randint(1, 5000) if rng.random() < 0.6 else round(rng.uniform(0, 1000), 2)
    if typ == "date":
        return rand_dt(rng, DATA_START, DATA_END).strftime("%Y-%m-%d")
    if typ == "datetime":
        hours = rng.choice([-8, -5, 0, 1, 2, 9])
        dt = rand_dt(rng, DATA_START, DATA_END).replace(microsecond=0)
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f"{hours:+03d}:00" if hours else "+00:00")
    if typ == "choices":
        choices = field["choices"] or []
        if multi:
            return rng.sample(choices, rng.randint(1, len(choices)))
        return rng.choice(choices)
    if typ == "user":
        if multi:
            return rng.sample(user_ids, rng.randint(1, len(user_ids)))
        return rng.choice(user_ids)
    if typ == "contact":
        if not contact_ids:
            return None
        return (
            rng.sample(contact_ids, rng.randint(1, len(contact_ids)))
            if multi
            else rng.choice(contact_ids)
        )
    if typ == "hidden":
        blob = {
            "external_id": rng.randint(1000, 99999),
            "synced": rng.random() < 0.5,
            "tags": rng.sample(["a", "b", "c", "d"], 2),
        }
        # whatever an integration stored: an object, or plain text (same random draws)
        return blob if blob["external_id"] % 3 else f"ext-{blob['external_id']}"
    return None


def fill_custom(
    rng: random.Random,
    obj: Obj,
    fields: list[Obj],
    user_ids: list[str],
    contact_ids: list[str],
    *,
    share: float = 0.6,
) -> None:
    """Set `custom.cf_*` keys on about `share` of the fields (absent key = empty)."""
    for field in fields:
        if rng.random() < share:
            value = cf_value(rng, field, user_ids, contact_ids)
            if value is not None:
                obj["custom." + field["id"]] = value


# --- leads, contacts, opportunities -----------------------------------------------------------


def make_lead(
    rng: random.Random, *, org_id: str, status: Obj, user: Obj, created: datetime, updated: datetime
) -> Obj:
    lead_id = rand_id(rng, "lead_")
    name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(SUFFIX)}"
    addresses: list[Obj] = []
    if rng.random() < 0.7:
        city, state, country, zipcode = rng.choice(CITIES)
        addresses.append(
            {
                "label": rng.choice(["business", "mailing", "other"]),
                "address_1": f"{rng.randint(1, 999)} Main St",
                "address_2": None,
                "city": city,
                "state": state,
                "zipcode": zipcode,
                "country": country,
                "tz_ids": [],
            }
        )
    uname = f"{user['first_name']} {user['last_name']}"
    return {
        "id": lead_id,
        "display_name": name,
        "name": name,
        "description": words(rng, rng.randint(0, 6)),
        "url": f"https://{name.split(maxsplit=1)[0].lower()}.example.com"
        if rng.random() < 0.6
        else None,
        "status_id": status["id"],
        "status_label": status["label"],
        "organization_id": org_id,
        "html_url": f"https://app.close.com/lead/{lead_id}/",
        "date_created": fmt_aware(created),
        "date_updated": fmt_aware(updated),
        "created_by": user["id"],
        "created_by_name": uname,
        "updated_by": user["id"],
        "updated_by_name": uname,
        "source": rng.choice(SOURCES),
        "addresses": addresses,
        "tasks": [],
        "integration_links": [],
    }


def make_contact(
    rng: random.Random,
    *,
    org_id: str,
    lead_id: str,
    user_id: str,
    created: datetime,
    updated: datetime,
) -> Obj:
    first, last = person(rng)
    name = f"{first} {last}"
    digits = "".join(rng.choice(string.digits) for _ in range(7))
    phones = []
    if rng.random() < 0.7:
        phones.append(
            {
                "phone": f"+1650{digits}",
                "phone_formatted": f"+1 650-{digits[:3]}-{digits[3:]}",
                "type": rng.choice(["office", "mobile"]),
                "country": "US",
            }
        )
    emails = [
        {
            "email": f"{first.lower()}.{last.lower()}{rng.randint(1, 999)}@example.com",
            "type": rng.choice(["office", "home"]),
            "is_unsubscribed": rng.random() < 0.1,
        }
    ]
    if rng.random() < 0.2:
        emails = []
    urls = (
        [{"url": f"https://linkedin.example.com/{first.lower()}", "type": "url"}]
        if rng.random() < 0.3
        else []
    )
    return {
        "id": rand_id(rng, "cont_"),
        "lead_id": lead_id,
        "organization_id": org_id,
        "name": name,
        "title": rng.choice(TITLES),
        "display_name": name,
        "emails": emails,
        "phones": phones,
        "urls": urls,
        "integration_links": [],
        "date_created": fmt_aware(created),
        "date_updated": fmt_aware(updated),
        "created_by": user_id,
        "updated_by": user_id,
    }


def money(cents: int) -> str:
    return f"${cents // 100:,}" if cents % 100 == 0 else f"${cents / 100:,.2f}"


def set_opp_value(opp: Obj, value: int, period: str, confidence: int) -> None:
    """Set value fields plus the derived ones, as Close computes them."""
    annual = value * 12 if period == "monthly" else value
    opp.update(
        {
            "value": value,
            "value_period": period,
            "value_currency": "USD",
            "value_formatted": money(value),
            "confidence": confidence,
            "annualized_value": annual,
            "expected_value": value * confidence // 100,
            "annualized_expected_value": annual * confidence // 100,
        }
    )


def set_opp_status(opp: Obj, status: Obj, pipeline: Obj, when: datetime) -> None:
    kind = status["type"]
    opp.update(
        {
            "status_id": status["id"],
            "status_label": status["label"],
            "status_type": kind,
            "status_display_name": status["label"],
            "pipeline_id": pipeline["id"],
            "pipeline_name": pipeline["name"],
            "date_won": when.strftime("%Y-%m-%d") if kind == "won" else None,
            "date_lost": when.strftime("%Y-%m-%d") if kind == "lost" else None,
        }
    )


def make_opportunity(
    rng: random.Random,
    *,
    org_id: str,
    lead: Obj,
    contact: Obj | None,
    user: Obj,
    pipeline: Obj,
    created: datetime,
    updated: datetime,
) -> Obj:
    note = words(rng, rng.randint(1, 5))
    uname = f"{user['first_name']} {user['last_name']}"
    opp: Obj = {
        "id": rand_id(rng, "oppo_"),
        "lead_id": lead["id"],
        "lead_name": lead["display_name"],
        "contact_id": contact["id"] if contact else None,
        "contact_name": contact["name"] if contact else None,
        "user_id": user["id"],
        "user_name": uname,
        "organization_id": org_id,
        "note": note,
        "note_html": f"<body><p>{note}</p></body>",
        "attachments": [],
        "integration_links": [],
        "date_created": fmt_aware(created),
        "date_updated": fmt_aware(updated),
        "created_by": user["id"],
        "created_by_name": uname,
        "updated_by": user["id"],
        "updated_by_name": uname,
    }
    set_opp_value(
        opp,
        rng.randint(10, 5000) * 100 + rng.choice([0, 0, 50]),
        rng.choice(["one_time", "monthly", "annual"]),
        rng.choice([10, 25, 50, 75, 90]),
    )
    set_opp_status(opp, rng.choice(pipeline["statuses"]), pipeline, updated)
    return opp
